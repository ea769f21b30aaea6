//! `confirm_cpu_usage`, an optional tool (`INTERACTIVE_TOOLS=true`) that talks back
//! to the client mid-call, so the gateway's relay of log messages and elicitation is
//! tested against this real server in both eras: it logs what it is about to do,
//! asks the client to confirm (form-mode elicitation) before a CPU sample, then
//! samples or reports the refusal.
//!
//! Legacy era: the question is an `elicitation/create` request on the call's stream.
//! 2026-07-28: the first call answers `input_required` with the question and a
//! `requestState`; the client's retry carries the answer in `inputResponses`.
//!
//! `ask_client` (same setting) relays the other mid-call questions the same way, one
//! per call: URL-mode elicitation, sampling or roots, and reports what the client
//! answered, so each kind is tested through a relay against a 2026-07-28 server.

use mcp_protocol::jsonrpc::ErrorObject;
use mcp_protocol::mcp::{self, LogLevel, method};
use mcp_protocol::server::{Outbound, ToolCall};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The tool's name.
pub const NAME: &str = "confirm_cpu_usage";

/// Key of the question in `inputRequests` / `inputResponses`.
const QUESTION_KEY: &str = "confirm";

/// The `requestState` of the question (this server keeps no state: the retry needs
/// nothing but the answer).
const STATE: &str = "confirm_cpu_usage/v1";

/// How long the client may take to answer (a person reads the question).
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// The tool definition.
pub fn definition() -> Value {
    json!({
        "name": NAME,
        "title": "CPU usage, after confirmation",
        "description": "Asks the user to confirm (elicitation), then samples CPU usage like cpu_usage. Logs what it does.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "seconds": {"type": "integer", "minimum": 1, "maximum": 30, "default": 1,
                            "description": "Sampling window in seconds."}
            },
            "additionalProperties": false
        },
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "openWorldHint": false}
    })
}

/// What the client answered.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Confirmed: sample.
    Proceed,
    /// Declined, cancelled or refused: the text says which.
    Stop(String),
    /// 2026-07-28 first round: answer with this `input_required` result.
    Ask(Value),
}

/// The elicitation params of the question.
fn question(node: &str, seconds: u64) -> Map<String, Value> {
    let v = json!({
        "mode": "form",
        "message": format!("Sample CPU usage on node {node} for {seconds} s?"),
        "requestedSchema": {
            "type": "object",
            "properties": {"proceed": {"type": "boolean", "title": "Proceed"}},
            "required": ["proceed"]
        }
    });
    v.as_object().cloned().unwrap_or_default()
}

/// Reads an `ElicitResult`.
fn decide(answer: &Value) -> Decision {
    match answer.get("action").and_then(Value::as_str) {
        Some("accept") if answer["content"]["proceed"] == Value::Bool(true) => Decision::Proceed,
        Some("accept") => Decision::Stop("not confirmed (proceed is false)".into()),
        Some(other) => Decision::Stop(format!("the user chose {other}")),
        None => Decision::Stop("the client's answer has no action".into()),
    }
}

/// Logs, asks and reads the answer, in the client's era.
pub async fn confirm(call: &ToolCall, node: &str, seconds: u64) -> Decision {
    let out: &Outbound = &call.outbound;
    out.log(
        LogLevel::Info,
        Some(NAME),
        json!(format!("asking to sample CPU on {node} for {seconds} s")),
    );
    let params = question(node, seconds);
    if let Some((responses, _state)) = out.input_responses() {
        return match responses.get(QUESTION_KEY) {
            Some(answer) => decide(answer),
            None => Decision::Stop("the retry carries no answer to the question".into()),
        };
    }
    if let Some(e) = out.refusal(method::ELICIT, &params)
        && e.code == mcp_protocol::jsonrpc::MISSING_CLIENT_CAPABILITY
    {
        return Decision::Stop(format!("the client cannot be asked: {}", e.message));
    }
    if out.version().era() == mcp::Era::Modern {
        let mut requests = Map::new();
        requests.insert(
            QUESTION_KEY.into(),
            json!({"method": method::ELICIT, "params": params}),
        );
        return Decision::Ask(mcp::input_required_result(requests, Some(STATE)));
    }
    match out.request(method::ELICIT, params, ANSWER_DEADLINE).await {
        Ok(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(answer) => decide(&answer),
            Err(e) => Decision::Stop(format!("unreadable answer: {e}")),
        },
        Err(ErrorObject { message, .. }) => {
            Decision::Stop(format!("the client cannot be asked: {message}"))
        }
    }
}

/// The name of the tool that asks the client one question of a chosen kind.
pub const ASK: &str = "ask_client";

/// Key of `ask_client`'s question in `inputRequests` / `inputResponses`.
const ASK_KEY: &str = "answer";

/// The `ask_client` tool definition.
pub fn ask_definition() -> Value {
    json!({
        "name": ASK,
        "title": "Ask the client one question",
        "description": "Asks the calling client one mid-call question and reports its answer: `url` (open a link, URL-mode elicitation), `sampling` (the client's model), `roots` (the client's roots). For testing what a relay passes on.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["url", "sampling", "roots"],
                         "description": "What to ask."}
            },
            "required": ["kind"],
            "additionalProperties": false
        },
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "openWorldHint": false}
    })
}

/// The method and params of `ask_client`'s question of `kind` in `era`.
fn ask_question(
    kind: &str,
    node: &str,
    era: mcp::Era,
) -> Option<(&'static str, Map<String, Value>)> {
    let (m, v) = match kind {
        "url" => {
            let mut v = json!({"mode": "url",
                "message": format!("Open the page of node {node} to go on"),
                "url": format!("https://{node}.nodes.example/acknowledge")});
            if era == mcp::Era::Legacy {
                // Legacy revisions name each URL elicitation.
                v["elicitationId"] = format!("{ASK}-{node}").into();
            }
            (method::ELICIT, v)
        }
        "sampling" => (
            method::SAMPLING,
            json!({"messages": [{"role": "user", "content": {"type": "text",
                   "text": format!("Say something about node {node}")}}], "maxTokens": 32}),
        ),
        "roots" => (method::ROOTS_LIST, json!({})),
        _ => return None,
    };
    Some((m, v.as_object().cloned().unwrap_or_default()))
}

/// What the client answered, in a line.
fn describe(kind: &str, answer: &Value) -> String {
    match kind {
        "url" => format!("url {}", answer["action"].as_str().unwrap_or("?")),
        "sampling" => format!(
            "model said {}",
            answer["content"]["text"].as_str().unwrap_or("?")
        ),
        _ => {
            let uris: Vec<&str> = answer["roots"]
                .as_array()
                .map(|r| r.iter().filter_map(|x| x["uri"].as_str()).collect())
                .unwrap_or_default();
            format!("roots {}", uris.join(","))
        }
    }
}

/// Runs `ask_client` on `node`: the serialized result (`input_required` on a
/// 2026-07-28 first round).
pub async fn ask_client(call: &ToolCall, node: &str) -> Value {
    let era = call.version.era();
    let out = &call.outbound;
    let kind = call
        .arguments()
        .and_then(|a| a.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let text = |t: String| mcp::tool_result(era, &format!("{node}: {t}"), None, false);
    let Some((m, params)) = ask_question(kind, node, era) else {
        return mcp::tool_result(
            era,
            &format!("{node}: kind must be url, sampling or roots, not {kind:?}"),
            None,
            true,
        );
    };
    if let Some((responses, _)) = out.input_responses() {
        return match responses.get(ASK_KEY) {
            Some(answer) => text(describe(kind, answer)),
            None => text("the retry carries no answer".into()),
        };
    }
    if let Some(e) = out.missing_capability(m, &params) {
        return text(format!("cannot ask: {}", e.message));
    }
    if era == mcp::Era::Modern {
        let mut requests = Map::new();
        requests.insert(ASK_KEY.into(), json!({"method": m, "params": params}));
        return mcp::input_required_result(requests, Some("ask_client/v1"));
    }
    match out.request(m, params, ANSWER_DEADLINE).await {
        Ok(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(answer) => text(describe(kind, &answer)),
            Err(e) => text(format!("unreadable answer: {e}")),
        },
        Err(e) => text(format!("cannot ask: {}", e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_decisions() {
        assert_eq!(
            decide(&json!({"action": "accept", "content": {"proceed": true}})),
            Decision::Proceed
        );
        assert!(matches!(
            decide(&json!({"action": "accept", "content": {"proceed": false}})),
            Decision::Stop(_)
        ));
        assert_eq!(
            decide(&json!({"action": "decline"})),
            Decision::Stop("the user chose decline".into())
        );
    }

    #[test]
    fn ask_client_questions_and_answers() {
        let (m, p) = ask_question("url", "n1", mcp::Era::Legacy).unwrap();
        assert_eq!((m, p["mode"].as_str()), (method::ELICIT, Some("url")));
        assert!(p.contains_key("elicitationId"));
        let (_, p) = ask_question("url", "n1", mcp::Era::Modern).unwrap();
        assert!(!p.contains_key("elicitationId"));
        assert!(ask_question("files", "n1", mcp::Era::Modern).is_none());
        assert_eq!(describe("url", &json!({"action": "accept"})), "url accept");
        assert_eq!(
            describe(
                "roots",
                &json!({"roots": [{"uri": "file:///a"}, {"uri": "file:///b"}]})
            ),
            "roots file:///a,file:///b"
        );
    }

    #[test]
    fn the_question_is_a_form_elicitation() {
        let q = question("n1", 2);
        assert_eq!(q["mode"], "form");
        assert_eq!(
            q["requestedSchema"]["properties"]["proceed"]["type"],
            "boolean"
        );
    }
}
