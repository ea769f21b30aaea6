//! Proves that [`McpClient`] talks to real servers of both eras over real sockets:
//!
//! - modern-first: against our dual-era [`McpServer`] it settles on 2026-07-28 after
//!   `server/discover` (and in legacy mode on an initialize-based session);
//! - fallback: against a legacy-only server that refuses the modern probe (400 with a
//!   non-modern body, 400/404/405 without a body, a 200 JSON-RPC "method not found") it
//!   falls back to `initialize` and then works inside the session;
//! - sessions: the session id is sent on every request, and when the server forgets it
//!   (404) the client initialises again exactly once and retries;
//! - pagination: `list_tools` follows `nextCursor` over many pages, and a cursor that
//!   repeats is an error, not a hang;
//! - SSE: notifications that precede the response reach the callback, in order, however
//!   the stream is cut into chunks (CRLF, CR, comments, multi-line data, interleaved
//!   server requests and stray responses);
//! - failure: a server that never answers yields `ClientError::Timeout` within the
//!   deadline; a server answering garbage yields `ClientError::Protocol`, never a panic.
//!
//! Every wait is bounded; no test asserts a duration.

mod common;
use bytes::Bytes;
use common::{Running, spawn_http};
use http::{Method, Request as HttpRequest, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mcp_protocol::body::{self, Body};
use mcp_protocol::client::{
    ClientError, ClientMode, ClientOptions, McpClient, Reply, RequestOptions,
};
use mcp_protocol::headers::ParamHeader;
use mcp_protocol::jsonrpc::{ErrorObject, RequestId};
use mcp_protocol::mcp::{self, Era, Implementation, ProtocolVersion};
use mcp_protocol::server::{BoxFuture, McpHandler, McpServer, ServerConfig, ToolCall};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

// ------------------------------------------------------------------------------------
// Plumbing
// ------------------------------------------------------------------------------------

const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {DEADLINE:?}"))
}

fn client(url: &str, mode: ClientMode, timeout: Duration) -> McpClient {
    let mut opts = ClientOptions::new("client-test", "0.0.1");
    opts.mode = mode;
    opts.request_timeout = timeout;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    McpClient::new(http, url, opts)
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

fn result_of(reply: Reply) -> Value {
    let raw = reply.unwrap_or_else(|e| panic!("JSON-RPC error: {e}"));
    serde_json::from_str(raw.get()).unwrap()
}

/// A channel-fed body stream (Sync, as hyper's boxed body wants).
struct ChanStream(mpsc::Receiver<Bytes>);

impl futures_util::Stream for ChanStream {
    type Item = Bytes;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.get_mut().0.poll_recv(cx)
    }
}

/// A response whose body is `bytes` cut into chunks of the given sizes (cycled), sent
/// one by one with a pause so they really travel apart; `stall` keeps the stream open
/// after the last chunk.
fn chunked_response(
    content_type: &str,
    bytes: Vec<u8>,
    sizes: Vec<usize>,
    stall: bool,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut rest = &bytes[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            i += 1;
            if tx.send(Bytes::copy_from_slice(&rest[..n])).await.is_err() {
                return;
            }
            rest = &rest[n..];
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stall {
            tx.closed().await;
        }
    });
    let mut resp = body::sse_response(ChanStream(rx));
    resp.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    resp
}

// ------------------------------------------------------------------------------------
// Our own server, for the modern-first path
// ------------------------------------------------------------------------------------

/// `echo` and `count` (progress) on two pages.
struct Tools;

fn tool(name: &str) -> Value {
    json!({"name": name, "inputSchema": {"type": "object"}})
}

impl McpHandler for Tools {
    fn list_tools(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, ErrorObject> {
        let page = match cursor {
            None => mcp::tools_list_result(era, &[tool("echo")], Some("2"), 1000),
            Some("2") => mcp::tools_list_result(era, &[tool("count")], None, 1000),
            Some(_) => return Err(ErrorObject::invalid_params("bad cursor")),
        };
        Ok(Bytes::from(page.to_string()))
    }

    fn param_headers(&self, tool: &str) -> Option<Arc<[ParamHeader]>> {
        matches!(tool, "echo" | "count").then(|| Arc::from(Vec::new()))
    }

    fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        Box::pin(async move {
            let era = call.version.era();
            let args = Value::Object(call.arguments().cloned().unwrap_or_default());
            let result = match call.name.as_str() {
                "echo" => mcp::tool_result(
                    era,
                    "echo",
                    Some(json!({"args": args, "era": format!("{era:?}")})),
                    false,
                ),
                "count" => {
                    for i in 1..=3 {
                        if let Some(p) = &call.progress {
                            p.progress(f64::from(i), Some(3.0), None);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    mcp::tool_result(era, "counted", None, false)
                }
                other => {
                    return Err(ErrorObject::invalid_params(format!(
                        "Unknown tool: {other}"
                    )));
                }
            };
            Ok(Bytes::from(result.to_string()))
        })
    }
}

async fn our_server() -> (McpServer<Tools>, Running) {
    let server = McpServer::new(ServerConfig::new("ours", "1.0.0"), Tools);
    let s = server.clone();
    let running = spawn_http(move |req| {
        let s = s.clone();
        async move { s.handle(req).await }
    })
    .await;
    (server, running)
}

#[tokio::test]
async fn auto_mode_speaks_2026_07_28_to_our_dual_era_server() {
    let (server, running) = our_server().await;
    let c = client(&running.url, ClientMode::Auto, Duration::from_secs(10));
    within("modern conversation", async {
        let conn = c.connect().await.unwrap();
        assert_eq!(conn.version, ProtocolVersion::V2026_07_28);
        assert!(conn.session.is_none());
        assert_eq!(conn.server_info["name"], "ours");
        assert_eq!(conn.capabilities["tools"]["listChanged"], true);
        let tools = c.list_tools().await.unwrap().unwrap();
        let names: Vec<_> = tools.iter().map(|t| t["name"].clone()).collect();
        assert_eq!(names, ["echo", "count"]);
        let r = result_of(
            c.call_tool(
                obj(json!({"name":"echo","arguments":{"a":1}})),
                RequestOptions::default(),
            )
            .await
            .unwrap(),
        );
        assert_eq!(r["resultType"], "complete");
        assert_eq!(
            r["structuredContent"],
            json!({"args":{"a":1},"era":"Modern"})
        );
        let mut notes = Vec::new();
        let mut cb = |b: Bytes| notes.push(serde_json::from_slice::<Value>(&b).unwrap());
        let r = result_of(
            c.call_tool(
                obj(json!({"name":"count","_meta":{"progressToken":"t"}})),
                RequestOptions {
                    on_notification: Some(&mut cb),
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
        assert_eq!(r["content"][0]["text"], "counted");
        let progress: Vec<_> = notes
            .iter()
            .map(|n| n["params"]["progress"].clone())
            .collect();
        assert_eq!(progress, [json!(1), json!(2), json!(3)]);
        // Unknown tool: the JSON-RPC error reaches the caller as such.
        let err = c
            .call_tool(obj(json!({"name":"nope"})), RequestOptions::default())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code, -32602);
    })
    .await;
    assert_eq!(server.session_count(), 0, "2026-07-28 never mints sessions");
}

#[tokio::test]
async fn legacy_mode_opens_a_session_on_our_server_and_closes_it() {
    let (server, running) = our_server().await;
    let c = client(&running.url, ClientMode::Legacy, Duration::from_secs(10));
    within("legacy conversation", async {
        let conn = c.connect().await.unwrap();
        assert_eq!(conn.version, ProtocolVersion::V2025_11_25);
        assert!(conn.session.is_some());
        assert_eq!(server.session_count(), 1);
        assert_eq!(c.list_tools().await.unwrap().unwrap().len(), 2);
        let r = result_of(
            c.call_tool(obj(json!({"name":"echo"})), RequestOptions::default())
                .await
                .unwrap(),
        );
        assert!(r.get("resultType").is_none());
        assert_eq!(r["structuredContent"]["era"], "Legacy");
        c.close().await;
        assert_eq!(server.session_count(), 0, "DELETE ended the session");
        assert!(c.connection().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_session_our_server_forgot_is_reinitialised_once() {
    // Our own server answers an unknown session with 404 and an id-less JSON-RPC error
    // body, as the TypeScript and Python SDKs do.
    let (server, running) = our_server().await;
    let c = client(&running.url, ClientMode::Legacy, Duration::from_secs(10));
    within("re-initialise", async {
        let first = c.connect().await.unwrap();
        let old = first.session.clone().unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = http
            .delete(&running.url)
            .header("mcp-session-id", &old)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let tools = c.list_tools().await.expect("no transport error");
        assert_eq!(tools.expect("tools after re-initialising").len(), 2);
        let now = c.connection().unwrap();
        assert_ne!(now.session.as_deref(), Some(old.as_str()));
    })
    .await;
    assert_eq!(server.session_count(), 1);
}

// ------------------------------------------------------------------------------------
// A scripted server: legacy-only or modern, with per-test behaviour
// ------------------------------------------------------------------------------------

/// How a legacy-only server answers a 2026-07-28 request.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// 400 with the TypeScript SDK's "no valid session" JSON-RPC error.
    BadRequestBody,
    /// 400, no body.
    BadRequestEmpty,
    /// 404, no body.
    NotFoundEmpty,
    /// 405, no body.
    MethodNotAllowed,
    /// 200 with a JSON-RPC -32601 (a server that takes requests without a session).
    MethodNotFound,
}

/// What tools/list answers.
#[derive(Clone, Copy, Debug)]
enum Pages {
    /// `n` pages of two tools each.
    Count(usize),
    /// Every page says the next cursor is "again".
    Repeat,
}

/// What tools/call answers.
#[derive(Clone, Debug)]
enum Call {
    /// A normal result echoing the arguments.
    Echo,
    /// A scripted SSE stream, cut as `arguments.chunks` says.
    Sse,
    /// Never answers.
    Hang,
    /// One notification on an SSE stream, then silence.
    SseStall,
    /// This exact answer.
    Raw {
        status: StatusCode,
        content_type: &'static str,
        body: Vec<u8>,
    },
}

/// (method, session header, cursor) of one POST.
type Logged = (String, Option<String>, Option<String>);

struct Script {
    /// Legacy-only (refuses modern requests) or modern-only.
    legacy: bool,
    refusal: Refusal,
    /// Answer 404 to every request that carries a session.
    always_404: bool,
    /// Answer 404 to every ping (as if the session had just expired).
    ping_404: bool,
    /// 404s carry an id-less JSON-RPC error body (as the SDKs send) instead of none.
    not_found_body: bool,
    pages: Pages,
    call: Call,
    /// protocolVersion answered to initialize (None: echo the client's).
    init_version: Option<&'static str>,
    sessions: Mutex<HashSet<String>>,
    initializes: AtomicUsize,
    /// (method, session header, cursor) of every POST, in order.
    log: Mutex<Vec<Logged>>,
}

impl Script {
    fn legacy() -> Script {
        Script {
            legacy: true,
            refusal: Refusal::BadRequestBody,
            always_404: false,
            ping_404: false,
            not_found_body: false,
            pages: Pages::Count(1),
            call: Call::Echo,
            init_version: None,
            sessions: Mutex::default(),
            initializes: AtomicUsize::new(0),
            log: Mutex::default(),
        }
    }

    fn modern() -> Script {
        Script {
            legacy: false,
            ..Script::legacy()
        }
    }

    fn methods(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.0.clone())
            .collect()
    }

    fn forget_sessions(&self) {
        self.sessions.lock().unwrap().clear();
    }
}

fn rpc_result(id: &Value, result: Value) -> Response<Body> {
    body::json_response(
        StatusCode::OK,
        json!({"jsonrpc":"2.0","id":id,"result":result}).to_string(),
    )
}

async fn scripted(script: Arc<Script>, req: HttpRequest<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return body::status_response(StatusCode::METHOD_NOT_ALLOWED);
    }
    let (parts, incoming) = req.into_parts();
    let bytes = incoming.collect().await.unwrap().to_bytes();
    let Ok(msg) = serde_json::from_slice::<Value>(&bytes) else {
        return body::status_response(StatusCode::BAD_REQUEST);
    };
    let method = msg["method"].as_str().unwrap_or("").to_string();
    let id = msg["id"].clone();
    let session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    script.log.lock().unwrap().push((
        method.clone(),
        session.clone(),
        msg["params"]["cursor"].as_str().map(str::to_owned),
    ));
    let modern = parts.headers.contains_key("mcp-method")
        || msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"].is_string();
    let era = if script.legacy {
        Era::Legacy
    } else {
        Era::Modern
    };
    let info = Implementation {
        name: "scripted".into(),
        version: "0".into(),
        title: None,
    };
    if script.legacy && modern {
        return match script.refusal {
            Refusal::BadRequestBody => body::json_response(
                StatusCode::BAD_REQUEST,
                r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}"#,
            ),
            Refusal::BadRequestEmpty => body::status_response(StatusCode::BAD_REQUEST),
            Refusal::NotFoundEmpty => body::status_response(StatusCode::NOT_FOUND),
            Refusal::MethodNotAllowed => body::status_response(StatusCode::METHOD_NOT_ALLOWED),
            Refusal::MethodNotFound => body::json_response(
                StatusCode::OK,
                json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"Method not found"}})
                    .to_string(),
            ),
        };
    }
    if script.legacy && method == "initialize" {
        let n = script.initializes.fetch_add(1, Ordering::SeqCst) + 1;
        let sid = format!("session-{n}");
        script.sessions.lock().unwrap().insert(sid.clone());
        let requested = msg["params"]["protocolVersion"].as_str().unwrap_or("");
        let version = script.init_version.unwrap_or(requested);
        let mut result = mcp::initialize_result(
            ProtocolVersion::V2025_11_25,
            &info,
            &mcp::tools_capabilities(false),
            Some("scripted"),
        );
        result["protocolVersion"] = json!(version);
        let mut resp = rpc_result(&id, result);
        resp.headers_mut()
            .insert("mcp-session-id", sid.parse().unwrap());
        return resp;
    }
    if script.legacy {
        match &session {
            None => return body::status_response(StatusCode::BAD_REQUEST),
            Some(s)
                if script.always_404
                    || (script.ping_404 && method == "ping")
                    || !script.sessions.lock().unwrap().contains(s) =>
            {
                return if script.not_found_body {
                    body::json_response(
                        StatusCode::NOT_FOUND,
                        r#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}"#,
                    )
                } else {
                    body::status_response(StatusCode::NOT_FOUND)
                };
            }
            Some(_) => {}
        }
    }
    if id.is_null() {
        return body::status_response(StatusCode::ACCEPTED);
    }
    match method.as_str() {
        "server/discover" if !script.legacy => rpc_result(
            &id,
            mcp::discover_result(&info, &mcp::tools_capabilities(false), None, 0),
        ),
        "tools/list" => {
            let page = match script.pages {
                Pages::Repeat => mcp::tools_list_result(era, &[tool("loop")], Some("again"), 0),
                Pages::Count(n) => {
                    let k: usize = msg["params"]["cursor"]
                        .as_str()
                        .and_then(|c| c.strip_prefix("page-"))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    let tools = [
                        tool(&format!("t{}", 2 * k)),
                        tool(&format!("t{}", 2 * k + 1)),
                    ];
                    let next = (k + 1 < n).then(|| format!("page-{}", k + 1));
                    mcp::tools_list_result(era, &tools, next.as_deref(), 0)
                }
            };
            rpc_result(&id, page)
        }
        "tools/call" => match &script.call {
            Call::Echo => rpc_result(
                &id,
                mcp::tool_result(era, "echo", Some(msg["params"]["arguments"].clone()), false),
            ),
            Call::Sse => {
                let sizes: Vec<usize> = msg["params"]["arguments"]["chunks"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_u64())
                            .map(|v| v as usize)
                            .collect()
                    })
                    .unwrap_or_else(|| vec![usize::MAX]);
                chunked_response("text/event-stream", sse_script(&id, era), sizes, false)
            }
            Call::SseStall => {
                let note = json!({"jsonrpc":"2.0","method":"notifications/progress",
                    "params":{"progressToken":"t","progress":1}});
                let bytes = format!("data: {note}\n\n").into_bytes();
                chunked_response("text/event-stream", bytes, vec![usize::MAX], true)
            }
            Call::Hang => std::future::pending().await,
            Call::Raw {
                status,
                content_type,
                body: bytes,
            } => {
                let mut resp = body::json_response(*status, bytes.clone());
                resp.headers_mut()
                    .insert("content-type", content_type.parse().unwrap());
                resp
            }
        },
        _ => body::json_response(
            StatusCode::OK,
            json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"Method not found"}})
                .to_string(),
        ),
    }
}

/// An SSE answer exercising the decoder: a comment, CRLF and CR line ends, an event id,
/// multi-line data, a server-to-client request and a stray response (both to be
/// ignored), three progress notifications, the response, and a late notification.
fn sse_script(id: &Value, era: Era) -> Vec<u8> {
    let progress = |n: u32| {
        json!({"jsonrpc":"2.0","method":"notifications/progress",
            "params":{"progressToken":"tok","progress":n,"total":3,"message":format!("step {n}")}})
        .to_string()
    };
    let result = json!({"jsonrpc":"2.0","id":id,"result":mcp::tool_result(era, "streamed ünïcödé", None, false)});
    let mut s = String::new();
    s.push_str(": stream opened\r\n\r\n");
    s.push_str(&format!(
        "id: 1\r\nevent: message\r\ndata: {}\r\n\r\n",
        progress(1)
    ));
    s.push_str(r#"data: {"jsonrpc":"2.0","id":"srv-1","method":"ping"}"#);
    s.push_str("\n\n");
    // One JSON message over three data lines, cut between tokens (joined with LF, it is
    // still valid JSON), the second without the optional space.
    s.push_str("data: {\"jsonrpc\":\"2.0\",\ndata:\"method\":\"notifications/progress\",\n");
    s.push_str("data: \"params\":{\"progressToken\":\"tok\",\"progress\":2}}\n\n");
    s.push_str(r#"data: {"jsonrpc":"2.0","id":"not-ours","result":{}}"#);
    s.push_str("\r\r");
    s.push_str(&format!(": keep-alive\ndata: {}\r\r", progress(3)));
    s.push_str(&format!("event: message\ndata: {result}\n\n"));
    s.push_str(&format!("data: {}\n\n", progress(4)));
    s.into_bytes()
}

async fn start(script: Script) -> (Arc<Script>, Running) {
    let script = Arc::new(script);
    let s = script.clone();
    let running = spawn_http(move |req| scripted(s.clone(), req)).await;
    (script, running)
}

// ------------------------------------------------------------------------------------
// Fallback, sessions, pagination
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn falls_back_to_initialize_when_a_legacy_only_server_refuses_the_modern_probe() {
    for refusal in [
        Refusal::BadRequestBody,
        Refusal::BadRequestEmpty,
        Refusal::NotFoundEmpty,
        Refusal::MethodNotAllowed,
        Refusal::MethodNotFound,
    ] {
        let mut s = Script::legacy();
        s.refusal = refusal;
        let (script, running) = start(s).await;
        let c = client(&running.url, ClientMode::Auto, Duration::from_secs(10));
        within("fallback", async {
            let conn = c
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{refusal:?}: {e}"));
            assert_eq!(conn.version, ProtocolVersion::V2025_11_25, "{refusal:?}");
            assert_eq!(conn.session.as_deref(), Some("session-1"));
            assert_eq!(conn.instructions.as_deref(), Some("scripted"));
            let tools = c.list_tools().await.unwrap().unwrap();
            assert_eq!(tools.len(), 2);
            let r = result_of(
                c.call_tool(
                    obj(json!({"name":"t0","arguments":{"x":1}})),
                    RequestOptions::default(),
                )
                .await
                .unwrap(),
            );
            assert_eq!(r["structuredContent"], json!({"x":1}));
        })
        .await;
        assert_eq!(
            script.methods(),
            [
                "server/discover",
                "initialize",
                "notifications/initialized",
                "tools/list",
                "tools/call"
            ],
            "{refusal:?}"
        );
        let log = script.log.lock().unwrap().clone();
        for (method, session, _) in &log[2..] {
            assert_eq!(session.as_deref(), Some("session-1"), "{method}");
        }
    }
}

#[tokio::test]
async fn the_negotiated_older_revision_is_kept() {
    let mut s = Script::legacy();
    s.init_version = Some("2025-03-26");
    let (_script, running) = start(s).await;
    let c = client(&running.url, ClientMode::Auto, Duration::from_secs(10));
    let conn = within("connect", c.connect()).await.unwrap();
    assert_eq!(conn.version, ProtocolVersion::V2025_03_26);
}

#[tokio::test]
async fn a_forgotten_session_is_reinitialised_once_and_the_request_retried() {
    for not_found_body in [false, true] {
        let mut s = Script::legacy();
        s.not_found_body = not_found_body;
        let (script, running) = start(s).await;
        let c = client(&running.url, ClientMode::Legacy, Duration::from_secs(10));
        within("session renewal", async {
            c.connect().await.unwrap();
            assert_eq!(c.list_tools().await.unwrap().unwrap().len(), 2);
            script.forget_sessions();
            let tools = c
                .list_tools()
                .await
                .unwrap_or_else(|e| panic!("body {not_found_body}: {e}"));
            let tools = tools.unwrap_or_else(|e| panic!("body {not_found_body}: {e}"));
            assert_eq!(tools.len(), 2);
            assert_eq!(
                c.connection().unwrap().session.as_deref(),
                Some("session-2")
            );
        })
        .await;
        assert_eq!(script.initializes.load(Ordering::SeqCst), 2);
        let log = script.log.lock().unwrap().clone();
        let last = log.last().unwrap();
        assert_eq!(
            (last.0.as_str(), last.1.as_deref()),
            ("tools/list", Some("session-2"))
        );
    }
}

#[tokio::test]
async fn a_server_that_keeps_answering_404_gets_one_reinitialisation_not_a_loop() {
    let mut s = Script::legacy();
    s.always_404 = true;
    let (script, running) = start(s).await;
    let c = client(&running.url, ClientMode::Legacy, Duration::from_secs(10));
    let outcome = within("404 loop", async {
        // initialized itself is refused with 404: the handshake fails.
        let first = c.connect().await;
        assert!(first.is_err(), "{first:?}");
        c.request("ping", Map::new(), RequestOptions::default())
            .await
    })
    .await;
    match outcome {
        Err(ClientError::Http { status, .. }) => assert_eq!(status, StatusCode::NOT_FOUND),
        other => panic!("expected HTTP 404, got {other:?}"),
    }
    let inits = script.initializes.load(Ordering::SeqCst);
    assert!(inits <= 3, "bounded re-initialisation, got {inits}");
}

#[tokio::test]
async fn a_request_that_keeps_getting_404_is_retried_exactly_once() {
    let mut s = Script::legacy();
    s.ping_404 = true;
    let (script, running) = start(s).await;
    let c = client(&running.url, ClientMode::Legacy, Duration::from_secs(10));
    within("connect", c.connect()).await.unwrap();
    assert_eq!(script.initializes.load(Ordering::SeqCst), 1);
    let outcome = within(
        "ping",
        c.request("ping", Map::new(), RequestOptions::default()),
    )
    .await;
    match outcome {
        Err(ClientError::Http { status, .. }) => assert_eq!(status, StatusCode::NOT_FOUND),
        other => panic!("expected HTTP 404, got {other:?}"),
    }
    // One initialize for the connection, one for the renewal; nothing more.
    assert_eq!(script.initializes.load(Ordering::SeqCst), 2);
    assert_eq!(
        script.methods(),
        [
            "initialize",
            "notifications/initialized",
            "ping",
            "initialize",
            "notifications/initialized",
            "ping"
        ]
    );
}

#[tokio::test]
async fn list_tools_follows_next_cursor_across_many_pages() {
    let mut s = Script::legacy();
    s.pages = Pages::Count(7);
    let (script, running) = start(s).await;
    let c = client(&running.url, ClientMode::Auto, Duration::from_secs(10));
    let tools = within("list", c.list_tools()).await.unwrap().unwrap();
    let names: Vec<String> = tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..14).map(|i| format!("t{i}")).collect();
    assert_eq!(names, expected);
    let cursors: Vec<Option<String>> = script
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.0 == "tools/list")
        .map(|l| l.2.clone())
        .collect();
    let mut want = vec![None];
    want.extend((1..7).map(|k| Some(format!("page-{k}"))));
    assert_eq!(cursors, want);
}

#[tokio::test]
async fn a_repeating_cursor_is_an_error_not_a_hang() {
    for legacy in [true, false] {
        let mut s = if legacy {
            Script::legacy()
        } else {
            Script::modern()
        };
        s.pages = Pages::Repeat;
        let (script, running) = start(s).await;
        let c = client(&running.url, ClientMode::Auto, Duration::from_secs(10));
        let outcome = within("repeating cursor", c.list_tools()).await;
        assert!(
            matches!(outcome, Err(ClientError::Protocol { .. })),
            "{outcome:?}"
        );
        let lists = script
            .methods()
            .iter()
            .filter(|m| *m == "tools/list")
            .count();
        assert!(lists <= 3, "gave up promptly ({lists} pages)");
    }
}

// ------------------------------------------------------------------------------------
// SSE
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn sse_notifications_reach_the_callback_before_the_result_at_any_chunk_boundary() {
    for legacy in [true, false] {
        let mut s = if legacy {
            Script::legacy()
        } else {
            Script::modern()
        };
        s.call = Call::Sse;
        let (_script, running) = start(s).await;
        let c = client(&running.url, ClientMode::Auto, Duration::from_secs(10));
        let patterns: [&[usize]; 7] = [
            &[usize::MAX],
            &[1],
            &[2],
            &[3, 7],
            &[5, 1, 13],
            &[64, 1],
            &[11, 17, 2, 1, 4],
        ];
        for sizes in patterns {
            let mut notes: Vec<Value> = Vec::new();
            let mut cb = |b: Bytes| notes.push(serde_json::from_slice(&b).unwrap());
            let reply = within(
                "SSE call",
                c.call_tool(
                    obj(json!({"name":"s","arguments":{"chunks":sizes},"_meta":{"progressToken":"tok"}})),
                    RequestOptions {
                        on_notification: Some(&mut cb),
                        ..Default::default()
                    },
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("{sizes:?}: {e}"));
            let result = result_of(reply);
            assert_eq!(
                result["content"][0]["text"], "streamed ünïcödé",
                "{sizes:?}"
            );
            let seen: Vec<(Value, Value)> = notes
                .iter()
                .map(|n| (n["method"].clone(), n["params"]["progress"].clone()))
                .collect();
            // Exactly the notifications before the response, in order; the server's
            // request and the stray response are not notifications; the one after the
            // response is never delivered.
            assert_eq!(
                seen,
                [1, 2, 3].map(|n| (json!("notifications/progress"), json!(n))),
                "legacy {legacy}, chunks {sizes:?}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------
// Timeouts
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_times_out() {
    let running = spawn_http(|_req| async { std::future::pending::<Response<Body>>().await }).await;
    for mode in [ClientMode::Auto, ClientMode::Legacy, ClientMode::Modern] {
        let c = client(&running.url, mode, Duration::from_millis(300));
        let outcome = within("handshake timeout", c.connect()).await;
        assert!(
            matches!(outcome, Err(ClientError::Timeout { .. })),
            "{mode:?}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn a_call_that_never_answers_times_out_and_the_client_stays_usable() {
    for legacy in [true, false] {
        let mut s = if legacy {
            Script::legacy()
        } else {
            Script::modern()
        };
        s.call = Call::Hang;
        let (_script, running) = start(s).await;
        let c = client(&running.url, ClientMode::Auto, Duration::from_secs(10));
        within("connect", c.connect()).await.unwrap();
        let outcome = within(
            "call timeout",
            c.call_tool(
                obj(json!({"name":"t0"})),
                RequestOptions {
                    timeout: Some(Duration::from_millis(300)),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert!(
            matches!(outcome, Err(ClientError::Timeout { .. })),
            "{outcome:?}"
        );
        // The connection survives: the next request is answered.
        assert_eq!(
            within("list", c.list_tools()).await.unwrap().unwrap().len(),
            2
        );
    }
}

#[tokio::test]
async fn an_sse_stream_that_stalls_times_out_after_delivering_what_came() {
    let mut s = Script::modern();
    s.call = Call::SseStall;
    let (_script, running) = start(s).await;
    let c = client(&running.url, ClientMode::Auto, Duration::from_millis(500));
    within("connect", c.connect()).await.unwrap();
    let mut notes = 0;
    let mut cb = |_: Bytes| notes += 1;
    let outcome = within(
        "stalled stream",
        c.call_tool(
            obj(json!({"name":"t0","_meta":{"progressToken":"t"}})),
            RequestOptions {
                on_notification: Some(&mut cb),
                ..Default::default()
            },
        ),
    )
    .await;
    assert!(
        matches!(outcome, Err(ClientError::Timeout { .. })),
        "{outcome:?}"
    );
    assert_eq!(notes, 1);
}

// ------------------------------------------------------------------------------------
// Garbage
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_answering_garbage_to_everything_is_a_protocol_error() {
    let answers: [(&'static str, &'static [u8]); 5] = [
        ("text/html", b"<html><body>It works!</body></html>"),
        ("application/json", b"{\"jsonrpc\":\"2.0\",\"id\":"),
        ("application/json", b"[1,2,3]"),
        ("application/json", b"\xff\xfe\x00garbage"),
        ("text/event-stream", b"data: this is not json\n\n"),
    ];
    for (ct, bytes) in answers {
        let running = spawn_http(move |_req| async move {
            let mut resp = body::json_response(StatusCode::OK, bytes);
            resp.headers_mut()
                .insert("content-type", ct.parse().unwrap());
            resp
        })
        .await;
        for mode in [ClientMode::Auto, ClientMode::Legacy, ClientMode::Modern] {
            let c = client(&running.url, mode, Duration::from_secs(5));
            let outcome = within("garbage handshake", c.connect()).await;
            assert!(
                matches!(outcome, Err(ClientError::Protocol { .. })),
                "{ct} {:?} {mode:?}: {outcome:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

#[tokio::test]
async fn garbage_answers_to_a_call_are_protocol_errors() {
    let progress = r#"data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text/plain", b"hello".to_vec()),
        (
            "application/json",
            b"{\"jsonrpc\":\"2.0\",\"id\":12345,\"result\":{}}".to_vec(),
        ),
        (
            "application/json",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}".to_vec(),
        ),
        ("application/json", b"{\"truncated\":".to_vec()),
        ("application/json", Vec::new()),
        ("text/event-stream", b"data: {nope}\n\n".to_vec()),
        // The stream ends before the response.
        ("text/event-stream", format!("{progress}\n\n").into_bytes()),
        // Only comments and events without data.
        ("text/event-stream", b": hi\n\nevent: message\n\n".to_vec()),
    ];
    for legacy in [true, false] {
        for (ct, bytes) in &cases {
            let mut s = if legacy {
                Script::legacy()
            } else {
                Script::modern()
            };
            s.call = Call::Raw {
                status: StatusCode::OK,
                content_type: ct,
                body: bytes.clone(),
            };
            let (_script, running) = start(s).await;
            let c = client(&running.url, ClientMode::Auto, Duration::from_secs(5));
            within("connect", c.connect()).await.unwrap();
            let outcome = within(
                "garbage call",
                c.call_tool(obj(json!({"name":"t0"})), RequestOptions::default()),
            )
            .await;
            assert!(
                matches!(outcome, Err(ClientError::Protocol { .. })),
                "{ct} {:?}: {outcome:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

#[tokio::test]
async fn an_http_error_without_a_json_rpc_body_is_an_http_error() {
    let mut s = Script::modern();
    s.call = Call::Raw {
        status: StatusCode::BAD_GATEWAY,
        content_type: "text/html",
        body: b"<h1>502 Bad Gateway</h1>".to_vec(),
    };
    let (_script, running) = start(s).await;
    let c = client(&running.url, ClientMode::Auto, Duration::from_secs(5));
    let outcome = within(
        "502",
        c.call_tool(obj(json!({"name":"t0"})), RequestOptions::default()),
    )
    .await;
    match outcome {
        Err(ClientError::Http { status, body, .. }) => {
            assert_eq!(status, StatusCode::BAD_GATEWAY);
            assert!(body.contains("502"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let mut s = Script::modern();
    let big = json!({"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"x".repeat(10_000)}]}});
    s.call = Call::Raw {
        status: StatusCode::OK,
        content_type: "application/json",
        body: big.to_string().into_bytes(),
    };
    let (_script, running) = start(s).await;
    let mut opts = ClientOptions::new("client-test", "0");
    opts.max_message_bytes = 2_000;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let c = McpClient::new(http, &running.url, opts);
    within("connect", c.connect()).await.unwrap();
    let outcome = within(
        "big",
        c.call_tool(
            obj(json!({"name":"t0"})),
            RequestOptions {
                id: Some(RequestId::Number(2)),
                ..Default::default()
            },
        ),
    )
    .await;
    assert!(
        matches!(outcome, Err(ClientError::Protocol { .. })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_initialize_answer_with_an_unknown_revision_is_refused() {
    for version in ["1999-01-01", "2026-07-28"] {
        let mut s = Script::legacy();
        s.init_version = Some(version);
        let (_script, running) = start(s).await;
        let c = client(&running.url, ClientMode::Legacy, Duration::from_secs(5));
        let outcome = within("bad version", c.connect()).await;
        assert!(
            matches!(outcome, Err(ClientError::Protocol { .. })),
            "{version}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such() {
    // Bind, learn the port, close: nothing listens there now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener);
    let c = client(&url, ClientMode::Auto, Duration::from_secs(5));
    let outcome = within("unreachable", c.connect()).await;
    assert!(
        matches!(outcome, Err(ClientError::Unreachable { .. })),
        "{outcome:?}"
    );
}

/// Request ids are fresh per request and the caller's id is used when given.
#[tokio::test]
async fn ids_are_fresh_or_the_callers() {
    let (_script, running) = start(Script::modern()).await;
    let c = client(&running.url, ClientMode::Auto, Duration::from_secs(5));
    let a = c.next_id();
    let b = c.next_id();
    assert_ne!(a, b);
    let reply = within(
        "call with id",
        c.call_tool(
            obj(json!({"name":"t0","arguments":{}})),
            RequestOptions {
                id: Some(RequestId::String("mine".into())),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    assert!(reply.is_ok());
}
