//! `confirm_cpu_usage`, an optional tool (`INTERACTIVE_TOOLS=true`) that talks back
//! to the client mid-call, so the gateway's relay of log messages and elicitation is
//! tested against this real server in both eras: it logs what it is about to do,
//! asks the client to confirm (form-mode elicitation) before a CPU sample, then
//! samples or reports the refusal.
//!
//! Legacy era: the question is an `elicitation/create` request on the call's stream.
//! 2026-07-28: the first call answers `input_required` with the question and a
//! `requestState`; the client's retry carries the answer in `inputResponses`.

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
    fn the_question_is_a_form_elicitation() {
        let q = question("n1", 2);
        assert_eq!(q["mode"], "form");
        assert_eq!(
            q["requestedSchema"]["properties"]["proceed"]["type"],
            "boolean"
        );
    }
}
