//! Relaying what happens during a call between the calling client and the backend,
//! across eras: log messages (filtered per client at the gateway, since the backend
//! session is pooled and shared), and the backend's questions to the client
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`).
//!
//! - Legacy backend: its request arrives on the call's SSE stream; the upstream client
//!   asks the calling client through the call's [`Outbound`] and POSTs the answer in
//!   the backend session. A client that cannot be asked (capability not declared, a
//!   2026-07-28 client, a JSON-only request) is refused at once, so the backend gets an
//!   error it handles itself and nothing waits for the call timeout.
//! - 2026-07-28 backend, 2026-07-28 client: `input_required` results pass through
//!   untouched; the retry carries the same `node` argument, so it reaches the same node.
//! - 2026-07-28 backend, legacy client: each `inputRequests` entry becomes a request on
//!   the client's stream, and the gateway retries the backend with `inputResponses`
//!   (and the backend's `requestState`), at most [`MAX_INPUT_ROUNDS`] times.

use mcp_protocol::client::{McpClient, Reply};
use mcp_protocol::jsonrpc::{self, ErrorObject, Message};
use mcp_protocol::mcp::{Era, ProtocolVersion, meta, method};
use mcp_protocol::server::{BoxFuture, Outbound, ProgressSink};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::upstream::{self, ForwardError};

/// Rounds of `input_required` the gateway answers for a legacy client before it gives
/// up with an error (a backend that keeps asking must not loop forever).
pub const MAX_INPUT_ROUNDS: usize = 8;

/// The capabilities the gateway declares to backends: it can relay every
/// server-to-client request (refusing it at once for a client that lacks it).
pub fn upstream_capabilities() -> Value {
    json!({ "elicitation": { "form": {}, "url": {} }, "sampling": {}, "roots": {} })
}

/// Puts what a 2026-07-28 backend needs to know about the calling client into the
/// forwarded request's `_meta`: the client's own capabilities (so a backend does not
/// ask what the client cannot answer) and log level `debug` (the gateway filters by
/// the client's level itself). The upstream client drops both for a legacy backend.
pub fn pass_client_meta(params: &mut Map<String, Value>, outbound: &Outbound) {
    let meta_obj = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = meta_obj {
        if outbound.client_capabilities().is_object() {
            m.insert(
                meta::CLIENT_CAPABILITIES.into(),
                outbound.client_capabilities().clone(),
            );
        }
        m.entry(meta::LOG_LEVEL).or_insert_with(|| "debug".into());
    }
}

/// Whether a serialized notification is `notifications/progress`.
pub fn is_progress(notification: &[u8]) -> bool {
    matches!(Message::from_slice(notification), Ok(Message::Notification(n)) if n.method == method::PROGRESS)
}

/// Answers a backend's server-to-client request by asking the calling client, with
/// `deadline` for the client's answer.
pub fn asker(
    outbound: Outbound,
    deadline: Duration,
) -> impl Fn(jsonrpc::Request) -> BoxFuture<Result<Value, ErrorObject>> + Send + Sync {
    move |req: jsonrpc::Request| {
        let outbound = outbound.clone();
        Box::pin(async move {
            tracing::debug!(method = %req.method, "backend asks the client");
            let raw = outbound
                .request(&req.method, req.params.unwrap_or_default(), deadline)
                .await?;
            serde_json::from_str(raw.get()).map_err(ErrorObject::internal)
        })
    }
}

/// Forwards a call like [`upstream::forward`], and answers a 2026-07-28 backend's
/// `input_required` results for a legacy client by asking it and retrying.
pub async fn forward_call(
    client: Arc<McpClient>,
    mut params: Map<String, Value>,
    progress: Option<&ProgressSink>,
    outbound: &Outbound,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Result<(Reply, ProtocolVersion), ForwardError> {
    for _ in 0..MAX_INPUT_ROUNDS {
        let (reply, version) = upstream::forward(
            client.clone(),
            params.clone(),
            progress,
            outbound,
            cancel,
            timeout,
        )
        .await?;
        if version.era() != Era::Modern || outbound.version().era() != Era::Legacy {
            return Ok((reply, version));
        }
        let Some((requests, state)) = reply
            .as_ref()
            .ok()
            .and_then(|raw| input_required(raw.get()))
        else {
            return Ok((reply, version));
        };
        match ask_all(outbound, requests, timeout).await {
            Ok(responses) => {
                params.insert("inputResponses".into(), Value::Object(responses));
                match state {
                    Some(s) => params.insert("requestState".into(), s.into()),
                    None => params.shift_remove("requestState"),
                };
            }
            Err(e) => return Ok((Err(e), version)),
        }
    }
    let version = client
        .connection()
        .map_or(ProtocolVersion::LATEST_MODERN, |c| c.version);
    Ok((
        Err(ErrorObject::internal(format!(
            "the backend asked for input more than {MAX_INPUT_ROUNDS} times"
        ))),
        version,
    ))
}

/// The `inputRequests` and `requestState` of an `input_required` result, if it is one.
pub fn input_required(raw: &str) -> Option<(Map<String, Value>, Option<String>)> {
    let v: Value = serde_json::from_str(raw).ok()?;
    if v.get("resultType").and_then(Value::as_str) != Some("input_required") {
        return None;
    }
    let requests = v
        .get("inputRequests")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let state = v
        .get("requestState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((requests, state))
}

/// Asks the client each input request in turn (legacy: on its stream); the first
/// refusal or error ends the call with that error.
async fn ask_all(
    outbound: &Outbound,
    requests: Map<String, Value>,
    deadline: Duration,
) -> Result<Map<String, Value>, ErrorObject> {
    let mut responses = Map::new();
    for (key, request) in requests {
        let Some(method_name) = request.get("method").and_then(Value::as_str) else {
            return Err(ErrorObject::internal(format!(
                "the backend's input request {key} has no method"
            )));
        };
        let params = request
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let raw = outbound.request(method_name, params, deadline).await?;
        let answer: Value = serde_json::from_str(raw.get()).map_err(ErrorObject::internal)?;
        responses.insert(key, answer);
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_required_results_are_recognised_with_their_state() {
        let raw = r#"{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list","params":{}}},"requestState":"s1"}"#;
        let (requests, state) = input_required(raw).expect("an input_required result");
        assert_eq!(requests["a"]["method"], "roots/list");
        assert_eq!(state.as_deref(), Some("s1"));
        assert!(input_required(r#"{"resultType":"complete","content":[]}"#).is_none());
        assert!(input_required(r#"{"content":[]}"#).is_none());
    }

    #[test]
    fn the_client_meta_carries_capabilities_and_debug_level() {
        let mut params = Map::new();
        pass_client_meta(
            &mut params,
            &Outbound::detached(ProtocolVersion::LATEST_LEGACY),
        );
        assert_eq!(params["_meta"][meta::LOG_LEVEL], "debug");
        let mut params = json!({"_meta": {(meta::LOG_LEVEL): "error"}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        pass_client_meta(
            &mut params,
            &Outbound::detached(ProtocolVersion::LATEST_MODERN),
        );
        assert_eq!(params["_meta"][meta::LOG_LEVEL], "error");
    }

    #[test]
    fn progress_is_told_from_other_notifications() {
        assert!(is_progress(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#
        ));
        assert!(!is_progress(
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#
        ));
    }
}
