//! The per-request outbound channel of the protocol server, driven
//! in-process through [`McpServer::handle`]: log messages on a call's stream filtered
//! by `logging/setLevel`, a server-to-client request answered by the client's POSTed
//! response in the same session, refusal at once without the capability, a call that
//! sends nothing still answered with JSON, and the 2026-07-28 `input_required` shape.
//! Every message emitted is validated against the schema of its revision.

mod common;
use bytes::Bytes;
use common::schema::assert_valid;
use http::{Request as HttpRequest, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_protocol::body::Body;
use mcp_protocol::headers::ParamHeader;
use mcp_protocol::jsonrpc::{ErrorObject, MISSING_CLIENT_CAPABILITY};
use mcp_protocol::mcp::{self, Era, LogLevel, method};
use mcp_protocol::server::{BoxFuture, McpHandler, McpServer, ServerConfig, ToolCall};
use mcp_protocol::sse;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// `log`: info and warning messages; `ask`: elicits and returns the answer (or the
/// refusal's code).
struct Talker;

impl McpHandler for Talker {
    fn list_tools(&self, _era: Era, _cursor: Option<&str>) -> Result<Bytes, ErrorObject> {
        Ok(Bytes::from_static(br#"{"tools":[]}"#))
    }
    fn param_headers(&self, _tool: &str) -> Option<Arc<[ParamHeader]>> {
        Some(Arc::from(Vec::new()))
    }
    fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        Box::pin(async move {
            let era = call.version.era();
            let text = match call.name.as_str() {
                "log" => {
                    call.outbound
                        .log(LogLevel::Info, Some("t"), json!("info line"));
                    call.outbound
                        .log(LogLevel::Warning, Some("t"), json!("warning line"));
                    "logged".to_string()
                }
                "quiet" => "nothing sent".to_string(),
                "ask" => {
                    let params = json!({"mode": "form", "message": "Proceed?",
                        "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}});
                    let params = params.as_object().cloned().unwrap_or_default();
                    match call
                        .outbound
                        .request(method::ELICIT, params, Duration::from_secs(10))
                        .await
                    {
                        Ok(raw) => format!("answer {}", raw.get()),
                        Err(e) => format!("refused {}", e.code),
                    }
                }
                other => return Err(ErrorObject::invalid_params(other)),
            };
            Ok(Bytes::from(
                serde_json::to_vec(&mcp::tool_result(era, &text, None, false)).unwrap(),
            ))
        })
    }
}

fn server() -> McpServer<Talker> {
    McpServer::new(ServerConfig::new("outbound-test", "0"), Talker)
}

fn post(session: Option<&str>, body: Value) -> HttpRequest<Full<Bytes>> {
    let mut b = HttpRequest::post("/mcp")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(s) = session {
        b = b
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

async fn initialize(s: &McpServer<Talker>, capabilities: Value) -> String {
    let resp = s
        .handle(post(
            None,
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": capabilities,
                "clientInfo": {"name": "t", "version": "0"}}}),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string()
}

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

/// Reads SSE events from a response body, one at a time.
struct Events {
    body: Body,
    decoder: sse::Decoder,
    queue: std::collections::VecDeque<Value>,
}

impl Events {
    fn new(body: Body) -> Self {
        Events {
            body,
            decoder: sse::Decoder::new(1 << 20),
            queue: Default::default(),
        }
    }
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return Some(v);
            }
            let frame = tokio::time::timeout(DEADLINE, self.body.frame())
                .await
                .expect("an event within the deadline")?
                .ok()?;
            if let Ok(data) = frame.into_data() {
                for e in self.decoder.push(&data).unwrap() {
                    if !e.data.is_empty() {
                        self.queue.push_back(serde_json::from_str(&e.data).unwrap());
                    }
                }
            }
        }
    }
}

fn result_text(v: &Value) -> &str {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
}

#[tokio::test]
async fn a_legacy_request_goes_out_on_the_call_stream_and_the_posted_answer_comes_back() {
    let s = server();
    let session = initialize(&s, json!({"elicitation": {}})).await;
    let resp = s.handle(post(Some(&session), call(1, "ask"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = Events::new(resp.into_body());
    let asked = events.next().await.expect("the request");
    assert_eq!(asked["method"], "elicitation/create");
    assert_valid("2025-11-25", "JSONRPCRequest", &asked);
    assert_valid("2025-11-25", "ElicitRequest", &asked);
    // The answer, POSTed in the session, is accepted with 202 ...
    let answer = json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"ok": true}}});
    let ack = s.handle(post(Some(&session), answer)).await;
    assert_eq!(ack.status(), StatusCode::ACCEPTED);
    // ... and reaches the handler, whose result ends the stream.
    let done = events.next().await.expect("the response");
    assert_eq!(done["id"], 1);
    assert_eq!(
        result_text(&done),
        r#"answer {"action":"accept","content":{"ok":true}}"#
    );
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn an_answer_from_another_session_does_not_reach_the_request() {
    let s = server();
    let mine = initialize(&s, json!({"elicitation": {}})).await;
    let other = initialize(&s, json!({"elicitation": {}})).await;
    let resp = s.handle(post(Some(&mine), call(1, "ask"))).await;
    let mut events = Events::new(resp.into_body());
    let asked = events.next().await.expect("the request");
    let forged = json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "decline"}});
    assert_eq!(
        s.handle(post(Some(&other), forged)).await.status(),
        StatusCode::ACCEPTED
    );
    let real = json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "cancel"}});
    assert_eq!(
        s.handle(post(Some(&mine), real)).await.status(),
        StatusCode::ACCEPTED
    );
    let done = events.next().await.expect("the response");
    assert_eq!(result_text(&done), r#"answer {"action":"cancel"}"#);
}

#[tokio::test]
async fn without_the_capability_the_request_is_refused_at_once() {
    let s = server();
    let session = initialize(&s, json!({})).await;
    let resp = s.handle(post(Some(&session), call(1, "ask"))).await;
    // Nothing was sent on the stream, so the answer is plain JSON.
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        result_text(&body),
        format!("refused {MISSING_CLIENT_CAPABILITY}")
    );
}

#[tokio::test]
async fn log_messages_follow_the_level_set_by_the_client() {
    let s = server();
    let session = initialize(&s, json!({})).await;
    // Before any logging/setLevel: every message.
    let resp = s.handle(post(Some(&session), call(1, "log"))).await;
    let mut events = Events::new(resp.into_body());
    let first = events.next().await.unwrap();
    assert_valid("2025-11-25", "LoggingMessageNotification", &first);
    assert_eq!(first["params"]["level"], "info");
    assert_eq!(events.next().await.unwrap()["params"]["level"], "warning");
    assert_eq!(events.next().await.unwrap()["id"], 1);
    // After setLevel warning: info is filtered out.
    let set = json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "warning"}});
    let resp = s.handle(post(Some(&session), set)).await;
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["result"], json!({}));
    let resp = s.handle(post(Some(&session), call(3, "log"))).await;
    let mut events = Events::new(resp.into_body());
    assert_eq!(events.next().await.unwrap()["params"]["level"], "warning");
    assert_eq!(events.next().await.unwrap()["id"], 3);
    // An unknown level is an invalid-params error.
    let bad = json!({"jsonrpc": "2.0", "id": 4, "method": "logging/setLevel", "params": {"level": "loud"}});
    let resp = s.handle(post(Some(&session), bad)).await;
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], -32602);
}

#[tokio::test]
async fn a_call_that_sends_nothing_is_answered_with_json_and_logging_is_advertised() {
    let s = server();
    let resp = s
        .handle(post(
            None,
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"}}}),
        ))
        .await;
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["result"]["capabilities"]["logging"], json!({}));
    let resp = s.handle(post(Some(&session), call(1, "quiet"))).await;
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[test]
fn input_required_results_and_capability_checks_match_the_2026_schema() {
    let mut requests = Map::new();
    requests.insert(
        "q".into(),
        json!({"method": "elicitation/create", "params": {"mode": "form", "message": "ok?",
            "requestedSchema": {"type": "object", "properties": {}}}}),
    );
    requests.insert("r".into(), json!({"method": "roots/list", "params": {}}));
    let v = mcp::input_required_result(requests, Some("state-1"));
    assert_valid("2026-07-28", "InputRequiredResult", &v);
    let form = Map::new();
    let mut url = Map::new();
    url.insert("mode".into(), "url".into());
    let need = |m: &str, p: &Map<String, Value>| mcp::required_client_capability(m, p).unwrap();
    assert!(mcp::has_capability(
        &json!({"elicitation": {}}),
        &need("elicitation/create", &form)
    ));
    assert!(!mcp::has_capability(
        &json!({"elicitation": {}}),
        &need("elicitation/create", &url)
    ));
    assert!(mcp::has_capability(
        &json!({"elicitation": {"url": {}}}),
        &need("elicitation/create", &url)
    ));
    assert!(!mcp::has_capability(
        &json!({}),
        &need("sampling/createMessage", &form)
    ));
    assert!(mcp::has_capability(
        &json!({"roots": {"listChanged": true}}),
        &need("roots/list", &form)
    ));
    assert!(mcp::required_client_capability("ping", &form).is_none());
}
