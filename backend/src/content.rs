//! What the node server offers beside tools, so a relay's resources and prompts are
//! tested against a 2026-07-28 server too: the resource `node://os-release` (the
//! host's `/etc/os-release`, at most [`MAX_RESOURCE_BYTES`]) and the prompt
//! `triage_node` (asks a model to triage this node, optionally about one symptom; a
//! client that can answer a form is asked for the symptom when it gives none, see
//! [`ask_symptom`]).

use mcp_protocol::jsonrpc::ErrorObject;
use mcp_protocol::mcp::{self, Era, method};
use serde_json::{Map, Value, json};

use crate::tools::ToolContext;

/// The resource's URI.
pub const OS_RELEASE: &str = "node://os-release";
/// The prompt's name.
pub const TRIAGE: &str = "triage_node";
/// Most bytes of a file served as a resource.
pub const MAX_RESOURCE_BYTES: u64 = 64 * 1024;

/// The methods served here.
pub fn handles(method_name: &str) -> bool {
    matches!(
        method_name,
        method::PROMPTS_LIST
            | method::PROMPTS_GET
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// The capabilities the server announces with them, and tasks in both shapes (each
/// revision sees its own, see [`mcp_protocol::tasks::capabilities_for`]).
pub fn capabilities() -> Value {
    let mut c = mcp::tools_capabilities(true);
    c["logging"] = json!({});
    c["resources"] = json!({ "listChanged": true, "subscribe": true });
    c["prompts"] = json!({ "listChanged": true });
    c["tasks"] = mcp_protocol::tasks::legacy_capability();
    c["extensions"] = json!({ mcp_protocol::tasks::EXTENSION: {} });
    c
}

fn list(era: Era, key: &str, items: Value) -> Value {
    let mut v = json!({ key: items });
    if era == Era::Modern {
        v["resultType"] = "complete".into();
        v["ttlMs"] = 60_000.into();
        v["cacheScope"] = "public".into();
    }
    v
}

/// Answers one of the methods [`handles`] names.
/// `hidden` names what is not offered now (the `HIDE_TOOLS_FILE` test knob may name
/// the prompt or the resource URI too).
pub fn answer(
    ctx: &ToolContext,
    era: Era,
    method_name: &str,
    params: &Map<String, Value>,
    hidden: &[String],
) -> Result<Value, ErrorObject> {
    let offered = |name: &str| !hidden.iter().any(|h| h == name);
    let mut v = match method_name {
        "resources/list" => {
            let items = if offered(OS_RELEASE) {
                json!([{"uri": OS_RELEASE, "name": "os-release", "title": "The node's OS release",
                        "mimeType": "text/plain"}])
            } else {
                json!([])
            };
            return Ok(list(era, "resources", items));
        }
        "resources/templates/list" => return Ok(list(era, "resourceTemplates", json!([]))),
        method::PROMPTS_LIST => {
            let items = if offered(TRIAGE) {
                json!([{"name": TRIAGE, "description": "Triage this node with its own tools.",
                        "arguments": [{"name": "symptom", "description": "What looks wrong.", "required": false}]}])
            } else {
                json!([])
            };
            return Ok(list(era, "prompts", items));
        }
        "resources/read" => {
            let uri = params.get("uri").and_then(Value::as_str).unwrap_or("");
            if uri != OS_RELEASE {
                return Err(
                    ErrorObject::new(-32002, format!("Resource not found: {uri}"))
                        .with_data(json!({"uri": uri})),
                );
            }
            let text = read_bounded(&ctx.host.root.join("etc/os-release"))
                .map_err(|e| ErrorObject::internal(format!("cannot read os-release: {e}")))?;
            json!({"contents": [{"uri": OS_RELEASE, "mimeType": "text/plain", "text": text}]})
        }
        method::PROMPTS_GET => {
            if params.get("name").and_then(Value::as_str) != Some(TRIAGE) {
                return Err(ErrorObject::invalid_params("Unknown prompt"));
            }
            let symptom = params
                .get("arguments")
                .and_then(|a| a.get("symptom"))
                .and_then(Value::as_str)
                .unwrap_or("anything unusual");
            json!({"description": "Triage this node", "messages": [{"role": "user", "content": {"type": "text",
                "text": format!("Triage node {}: look for {symptom} with node_info, cpu_usage and list_processes.", ctx.node_name)}}]})
        }
        other => return Err(ErrorObject::method_not_found(other)),
    };
    if era == Era::Modern {
        v["resultType"] = "complete".into();
        if method_name == "resources/read" {
            v["ttlMs"] = 0.into();
            v["cacheScope"] = "private".into();
        }
    }
    Ok(v)
}

/// A text file's first [`MAX_RESOURCE_BYTES`] (lossy UTF-8).
fn read_bounded(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_RESOURCE_BYTES)
        .read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Key of the symptom question in `inputRequests` / `inputResponses`.
const SYMPTOM_KEY: &str = "symptom";

/// `triage_node` asked without a symptom by a client that can answer a form: the
/// symptom is asked for (2025-11-25: an `elicitation/create` on the request's stream;
/// 2026-07-28: an `input_required` result, then the retry's `inputResponses`). The
/// arguments to use, or the `input_required` result to answer with.
pub async fn ask_symptom(
    outbound: &mcp_protocol::server::Outbound,
    params: &Map<String, Value>,
) -> Result<Map<String, Value>, Value> {
    let mut params = params.clone();
    let asked = params
        .get("arguments")
        .and_then(|a| a.get("symptom"))
        .is_some_and(Value::is_string)
        || outbound.client_capabilities().get("elicitation").is_none();
    if asked {
        return Ok(params);
    }
    let question = json!({
        "mode": "form",
        "message": "What looks wrong on this node?",
        "requestedSchema": {"type": "object",
            "properties": {"note": {"type": "string", "title": "What looks wrong"}},
            "required": ["note"]}
    });
    let answer = match outbound.version().era() {
        Era::Modern => match outbound.input_responses() {
            Some((responses, _)) => responses.get(SYMPTOM_KEY).cloned(),
            None => {
                let mut requests = Map::new();
                requests.insert(
                    SYMPTOM_KEY.into(),
                    json!({"method": method::ELICIT, "params": question}),
                );
                return Err(mcp::input_required_result(requests, None));
            }
        },
        Era::Legacy => {
            let q = question.as_object().cloned().unwrap_or_default();
            outbound
                .request(method::ELICIT, q, std::time::Duration::from_secs(60))
                .await
                .ok()
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
        }
    };
    if let Some(s) = answer
        .as_ref()
        .filter(|a| a["action"] == "accept")
        .and_then(|a| a["content"]["note"].as_str())
    {
        let args = params.entry("arguments").or_insert_with(|| json!({}));
        if !args.is_object() {
            *args = json!({});
        }
        if let Some(a) = args.as_object_mut() {
            a.insert("symptom".into(), s.into());
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_prompt_request_without_arguments_is_answered() {
        let ctx = ToolContext {
            node_name: "n1".into(),
            host: crate::tools::HostPaths::default(),
            cmdline: Default::default(),
            hidden_tools: Vec::new(),
        };
        let params = json!({"name": TRIAGE}).as_object().cloned().unwrap();
        let out = mcp_protocol::server::Outbound::detached(mcp::ProtocolVersion::V2025_11_25);
        let asked = ask_symptom(&out, &params).await.expect("nothing to ask");
        let v = answer(&ctx, Era::Legacy, method::PROMPTS_GET, &asked, &[]).unwrap();
        let text = v["messages"][0]["content"]["text"].as_str().unwrap();
        assert!(text.contains("anything unusual"), "{text}");
    }
}
