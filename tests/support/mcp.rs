//! MCP client helpers for tests: our own protocol crate's client in a chosen era, and a
//! tool call that records the notifications that arrive before the result.
#![allow(dead_code)]

use bytes::Bytes;
use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, RequestOptions, http_client};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// A client of `url` speaking `mode`.
pub fn client(url: &str, mode: ClientMode) -> McpClient {
    let mut opts = ClientOptions::new("gateway-tests", "0");
    opts.mode = mode;
    opts.request_timeout = Duration::from_secs(30);
    McpClient::new(http_client(Duration::from_secs(5)), url, opts)
}

/// What a tools/call produced.
#[derive(Debug)]
pub struct CallOutcome {
    /// The result object, or the JSON-RPC error as JSON.
    pub result: Result<Value, Value>,
    /// Notifications received before the result, with their arrival time.
    pub notifications: Vec<(Instant, Value)>,
    /// When the result arrived.
    pub finished: Instant,
}

/// Calls `tool` with `args`, optionally asking for progress.
pub async fn call(
    c: &McpClient,
    tool: &str,
    args: Value,
    progress_token: Option<Value>,
) -> CallOutcome {
    let mut params = Map::new();
    params.insert("name".into(), tool.into());
    params.insert("arguments".into(), args);
    if let Some(t) = progress_token {
        params.insert("_meta".into(), json!({ "progressToken": t }));
    }
    let mut notes = Vec::new();
    let mut on = |b: Bytes| {
        if let Ok(v) = serde_json::from_slice::<Value>(&b) {
            notes.push((Instant::now(), v));
        }
    };
    let opts = RequestOptions {
        on_notification: Some(&mut on),
        ..Default::default()
    };
    let reply = c.call_tool(params, opts).await.expect("transport failure");
    let finished = Instant::now();
    let result = match reply {
        Ok(raw) => Ok(serde_json::from_str(raw.get()).expect("result is JSON")),
        Err(e) => Err(serde_json::to_value(e).expect("error is JSON")),
    };
    CallOutcome {
        result,
        notifications: notes,
        finished,
    }
}

/// The text of a result's first content block.
pub fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or("")
}

/// Whether a result is a tool error.
pub fn is_error(result: &Value) -> bool {
    result["isError"] == json!(true)
}

/// Asserts that `served` is the backend's tool `direct` with only `node` added (first
/// property, first `required` entry), byte for byte and in order otherwise; returns the
/// `node` property for further checks.
pub fn assert_backend_tool_plus_node(direct: &Value, served: &Value) -> Value {
    let mut s = served.clone();
    let schema = s["inputSchema"]
        .as_object_mut()
        .expect("inputSchema object");
    let props = schema["properties"]
        .as_object_mut()
        .expect("properties object");
    assert_eq!(
        props.keys().next().map(String::as_str),
        Some("node"),
        "node first: {served}"
    );
    let node = props.shift_remove("node").expect("node property");
    let required = schema["required"].as_array_mut().expect("required array");
    assert_eq!(
        required.first(),
        Some(&json!("node")),
        "node first in required: {served}"
    );
    required.remove(0);
    if required.is_empty() && direct["inputSchema"].get("required").is_none() {
        schema.shift_remove("required");
    }
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        serde_json::to_string(direct).unwrap(),
        "served tool differs from the backend's beyond node"
    );
    node
}

/// The tools of a tools/list that come from backends: without the gateway's own
/// tools (the fan-out tool, marked in `_meta`), which have no `node` parameter.
pub fn backend_tools(tools: &[Value]) -> Vec<Value> {
    tools
        .iter()
        .filter(|t| {
            t.pointer("/_meta/k8s-aggregator-mcp~1gateway-tool")
                .is_none()
        })
        .cloned()
        .collect()
}
