//! Proves that every message kind `mcp-protocol` puts on the wire is valid against the
//! official JSON Schema of its MCP revision (`tests/mcp-schema/<rev>.json`).
//!
//! Nothing here is built by hand to look like our output: server messages are captured
//! from a real [`McpServer`] (over a small test [`McpHandler`]) served by
//! [`mcp_protocol::serve::serve`] on 127.0.0.1:0, and client messages are captured by
//! pointing a real [`McpClient`] at a tiny recording hyper server. Covered, per revision
//! where the message exists there: initialize / discover results, tools/list pages and
//! their `Tool`s, tools/call results (success and `isError`), progress notifications,
//! error responses (parse, method, params, -32020 header mismatch, -32022 unsupported
//! version), the 2025-03-26 batch answer, the legacy GET stream's `list_changed`, the
//! 2026-07-28 listen stream (acknowledgement, `list_changed`, closing result), and the
//! client's initialize / initialized / discover / tools/list / tools/call / cancelled.
//!
//! The 2026-07-28 examples shipped with the schemas are used as test vectors: each is
//! valid against its own definition (which proves the harness), parses with
//! [`Message::from_slice`] into the right kind, passes our header/body checks, and — fed
//! to our server — gets an answer that is itself schema-valid.
//!
//! Known, documented deviation: errors answered to unparseable requests carry
//! `"id": null` (JSON-RPC 2.0 §5). The MCP schemas type `id` as string|integer (2025-11-25
//! and 2026-07-28 make it optional instead), so those answers are validated with the null
//! id removed, after asserting it is null.

mod common;
use bytes::Bytes;
use common::schema::*;
use common::{Running, spawn_http};
use http::{Request as HttpRequest, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mcp_protocol::body::{self, Body};
use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, RequestOptions};
use mcp_protocol::headers::{self, ParamHeader};
use mcp_protocol::jsonrpc::{ErrorObject, Message, RequestId};
use mcp_protocol::mcp::{self, Era, Implementation, ProtocolVersion};
use mcp_protocol::server::{BoxFuture, McpHandler, McpServer, ServerConfig, ToolCall};
use mcp_protocol::sse;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;

use std::sync::{Arc, Mutex};
use std::time::Duration;

// ------------------------------------------------------------------------------------
// A small tool server
// ------------------------------------------------------------------------------------

fn weather_tool() -> Value {
    // The tool of the 2026-07-28 examples, so the example requests can be served.
    json!({
        "name": "get_weather",
        "title": "Weather Information Provider",
        "description": "Get current weather information for a location",
        "inputSchema": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "City name or zip code"}},
            "required": ["location"]
        }
    })
}

fn echo_tool() -> Value {
    json!({
        "name": "echo",
        "title": "Echo",
        "description": "Returns its arguments as structured content.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "text": {"type": "string"}
            },
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {"echo": {"type": "object"}},
            "required": ["echo"]
        },
        "annotations": {"readOnlyHint": true, "openWorldHint": false}
    })
}

fn count_tool() -> Value {
    json!({
        "name": "count",
        "description": "Reports progress `steps` times, then answers.",
        "inputSchema": {
            "type": "object",
            "properties": {"steps": {"type": "integer", "minimum": 0, "maximum": 10}}
        }
    })
}

/// Three tools on two pages; `get_weather` fails (isError) without a location.
struct TestTools {
    pages: HashMap<(bool, Option<String>), Bytes>,
    params: HashMap<String, Arc<[ParamHeader]>>,
}

impl TestTools {
    fn new() -> Self {
        let tools = [weather_tool(), echo_tool(), count_tool()];
        let mut pages = HashMap::new();
        for era in [Era::Legacy, Era::Modern] {
            let modern = era == Era::Modern;
            let p1 = mcp::tools_list_result(era, &tools[..2], Some("page-2"), 60_000);
            let p2 = mcp::tools_list_result(era, &tools[2..], None, 60_000);
            pages.insert((modern, None), Bytes::from(p1.to_string()));
            pages.insert(
                (modern, Some("page-2".to_string())),
                Bytes::from(p2.to_string()),
            );
        }
        let params = tools
            .iter()
            .map(|t| {
                let ps = headers::param_headers(&t["inputSchema"]).expect("valid x-mcp-header");
                (t["name"].as_str().unwrap().to_string(), Arc::from(ps))
            })
            .collect();
        TestTools { pages, params }
    }
}

impl McpHandler for TestTools {
    fn list_tools(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, ErrorObject> {
        self.pages
            .get(&(era == Era::Modern, cursor.map(str::to_owned)))
            .cloned()
            .ok_or_else(|| ErrorObject::invalid_params("unknown cursor"))
    }

    fn param_headers(&self, tool: &str) -> Option<Arc<[ParamHeader]>> {
        self.params.get(tool).cloned()
    }

    fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        Box::pin(async move {
            let era = call.version.era();
            let args = call.arguments().cloned().unwrap_or_default();
            let result = match call.name.as_str() {
                "get_weather" => match args.get("location").and_then(Value::as_str) {
                    Some(loc) => mcp::tool_result(
                        era,
                        &format!("Current weather in {loc}: 22°C, partly cloudy"),
                        None,
                        false,
                    ),
                    None => mcp::tool_result(
                        era,
                        "missing argument `location`: pass a city name or zip code",
                        None,
                        true,
                    ),
                },
                "echo" => {
                    let echo = Value::Object(args.clone());
                    mcp::tool_result(
                        era,
                        &json!({ "echo": echo }).to_string(),
                        Some(json!({ "echo": echo })),
                        false,
                    )
                }
                "count" => {
                    let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3);
                    for i in 1..=steps {
                        if let Some(p) = &call.progress {
                            p.progress(i as f64, Some(steps as f64), Some("counting"));
                        }
                        // Let the transport flush the notification before the answer.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    mcp::tool_result(
                        era,
                        &format!("counted to {steps}"),
                        Some(json!({"steps": steps})),
                        false,
                    )
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

async fn start_server() -> (McpServer<TestTools>, Running) {
    let mut cfg = ServerConfig::new("schema-test-server", "1.2.3");
    cfg.instructions = Some("Test tools.".into());
    let server = McpServer::new(cfg, TestTools::new());
    let s = server.clone();
    let running = spawn_http(move |req| {
        let s = s.clone();
        async move { s.handle(req).await }
    })
    .await;
    (server, running)
}

// ------------------------------------------------------------------------------------
// Raw HTTP
// ------------------------------------------------------------------------------------

const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {DEADLINE:?}"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn is_sse(&self) -> bool {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }

    /// The JSON-RPC messages of the answer: the JSON body, or every SSE event.
    fn messages(&self) -> Vec<Value> {
        if self.is_sse() {
            let mut d = sse::Decoder::new(1 << 24);
            d.push(&self.body)
                .unwrap()
                .into_iter()
                .map(|e| serde_json::from_str(&e.data).expect("SSE data is JSON"))
                .collect()
        } else if self.body.is_empty() {
            Vec::new()
        } else {
            vec![self.json()]
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The last message (the response of a request).
    fn response(&self) -> Value {
        self.messages().pop().expect("an answer")
    }
}

async fn post(url: &str, headers: &[(&str, String)], body: impl Into<reqwest::Body>) -> Answer {
    within("POST", async {
        let mut req = http().post(url).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("POST");
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body"),
        }
    })
    .await
}

fn base_headers() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("accept", "application/json, text/event-stream".into()),
    ]
}

fn legacy_headers(rev: &str, session: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = base_headers();
    if rev != "2025-03-26" {
        h.push(("mcp-protocol-version", rev.into()));
    }
    if let Some(s) = session {
        h.push(("mcp-session-id", s.into()));
    }
    h
}

/// Headers a 2026-07-28 client sends for a body: derived from the body itself.
fn modern_headers_for(body: &Value) -> Vec<(&'static str, String)> {
    let mut h = base_headers();
    if let Some(v) = body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"].as_str() {
        h.push(("mcp-protocol-version", v.into()));
    }
    let method = body["method"].as_str().unwrap_or_default();
    h.push(("mcp-method", method.into()));
    if let Some(field) = headers::name_field(method)
        && let Some(name) = body["params"][field].as_str()
    {
        h.push(("mcp-name", headers::encode_header_value(name).into_owned()));
    }
    h
}

fn modern_body(id: Value, method: &str, mut params: Value) -> Value {
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    params["_meta"]["io.modelcontextprotocol/clientInfo"] =
        json!({"name": "schema-test", "version": "0"});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

async fn post_json(url: &str, headers: &[(&str, String)], body: &Value) -> Answer {
    post(url, headers, body.to_string()).await
}

/// Runs the legacy handshake at `rev` and returns the session id.
async fn legacy_session(url: &str, rev: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion": rev, "capabilities": {}, "clientInfo": {"name":"schema-test","version":"0"}}});
    let a = post_json(url, &base_headers(), &init).await;
    assert_eq!(a.status, StatusCode::OK);
    let session = a.headers["mcp-session-id"].to_str().unwrap().to_string();
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let a = post_json(url, &legacy_headers(rev, Some(&session)), &note).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    session
}

/// Reads SSE events from a streaming response until `n` data events have arrived.
async fn read_events(resp: &mut reqwest::Response, n: usize) -> Vec<Value> {
    let mut decoder = sse::Decoder::new(1 << 20);
    let mut out = Vec::new();
    within("SSE events", async {
        while out.len() < n {
            let chunk = resp.chunk().await.expect("stream").expect("stream open");
            for e in decoder.push(&chunk).unwrap() {
                out.push(serde_json::from_str(&e.data).expect("SSE data is JSON"));
            }
        }
    })
    .await;
    out
}

// ------------------------------------------------------------------------------------
// The examples as test vectors
// ------------------------------------------------------------------------------------

/// (definition name, file name, parsed JSON) of every 2026-07-28 example.
fn examples() -> Vec<(String, String, Value)> {
    let dir = schema_dir().join("examples").join(MODERN);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let def = entry.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                let value: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                out.push((def.clone(), name, value));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert!(out.len() > 100, "the examples folder looks incomplete");
    out
}

fn example(def: &str) -> Value {
    examples()
        .into_iter()
        .find(|(d, _, _)| d == def)
        .map(|(_, _, v)| v)
        .unwrap_or_else(|| panic!("no example for {def}"))
}

#[test]
fn every_example_is_valid_against_its_definition_and_the_harness_rejects_broken_ones() {
    for (def, file, value) in examples() {
        let v = validator(MODERN, &def);
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{def}/{file}: {errors:?}");
    }
    // The harness is not vacuous: the same examples with a required field removed fail.
    let mut list = example("ListToolsResultResponse");
    list["result"]
        .as_object_mut()
        .unwrap()
        .shift_remove("ttlMs");
    assert_invalid(MODERN, "ListToolsResultResponse", &list);
    let mut call = example("CallToolRequest");
    call["params"]
        .as_object_mut()
        .unwrap()
        .shift_remove("_meta");
    assert_invalid(MODERN, "CallToolRequest", &call);
    let mut unsupported = example("UnsupportedProtocolVersionError");
    unsupported["error"]["data"]
        .as_object_mut()
        .unwrap()
        .shift_remove("supported");
    assert_invalid(MODERN, "UnsupportedProtocolVersionError", &unsupported);
    assert_invalid(
        MODERN,
        "HeaderMismatchError",
        &json!({"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"x"}}),
    );
    assert_invalid(
        "2025-03-26",
        "InitializeResult",
        &json!({"protocolVersion":"2025-03-26","capabilities":{}}),
    );
    // A null id is what JSON-RPC prescribes for parse errors, but no MCP schema allows it.
    for rev in ALL {
        assert_invalid(
            rev,
            error_envelope(rev),
            &json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}),
        );
    }
}

#[test]
fn example_messages_parse_into_the_right_kind_and_pass_the_header_checks() {
    let mut seen = (0, 0, 0);
    for (def, file, value) in examples() {
        if value.get("jsonrpc").is_none() {
            continue; // a params object, a content block, ...: not a message
        }
        let bytes = serde_json::to_vec(&value).unwrap();
        let parsed = Message::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{def}/{file} does not parse: {e}"));
        match parsed {
            Message::Request(req) => {
                seen.0 += 1;
                assert!(def.ends_with("Request"), "{def}/{file} parsed as a request");
                assert_eq!(req.method, value["method"]);
                assert_eq!(req.id.to_value(), value["id"]);
                let meta = req.meta().expect("modern requests carry _meta");
                assert_eq!(meta["io.modelcontextprotocol/protocolVersion"], MODERN);
                // The headers a client derives from the body pass our checks...
                let good = header_map(&modern_headers_for(&value));
                headers::check_standard_headers(&good, &req)
                    .unwrap_or_else(|e| panic!("{def}/{file}: {e}"));
                // ...and any disagreement is a -32020.
                let mut wrong_method = good.clone();
                wrong_method.insert("mcp-method", "tools/nothing".parse().unwrap());
                assert_eq!(
                    headers::check_standard_headers(&wrong_method, &req)
                        .unwrap_err()
                        .code,
                    -32020
                );
                if let Some(field) = headers::name_field(&req.method) {
                    let mut wrong_name = good.clone();
                    wrong_name.insert("mcp-name", "someone-else".parse().unwrap());
                    let err = headers::check_standard_headers(&wrong_name, &req).unwrap_err();
                    assert_eq!(err.code, -32020, "{def}/{file}");
                    let mut missing = good.clone();
                    missing.remove("mcp-name");
                    assert_eq!(
                        headers::check_standard_headers(&missing, &req)
                            .unwrap_err()
                            .code,
                        -32020
                    );
                    // The Base64 sentinel form of the same name is accepted.
                    let name = value["params"][field].as_str().unwrap();
                    let mut encoded = good.clone();
                    encoded.insert(
                        "mcp-name",
                        format!("=?base64?{}?=", base64_encode(name.as_bytes()))
                            .parse()
                            .unwrap(),
                    );
                    headers::check_standard_headers(&encoded, &req)
                        .unwrap_or_else(|e| panic!("{def}/{file} base64 name: {e}"));
                }
            }
            Message::Notification(n) => {
                seen.1 += 1;
                assert!(
                    def.ends_with("Notification"),
                    "{def}/{file} parsed as a notification"
                );
                assert_eq!(n.method, value["method"]);
            }
            Message::Response(r) => {
                seen.2 += 1;
                assert_eq!(
                    r.id.as_ref().map(RequestId::to_value),
                    Some(value["id"].clone())
                );
                match r.outcome {
                    Ok(raw) => {
                        assert!(def.ends_with("ResultResponse"), "{def}/{file}");
                        let result: Value = serde_json::from_str(raw.get()).unwrap();
                        assert_eq!(result, value["result"]);
                    }
                    Err(e) => {
                        assert!(def.ends_with("Error"), "{def}/{file}");
                        assert_eq!(json!(e.code), value["error"]["code"]);
                    }
                }
            }
        }
    }
    assert!(
        seen.0 >= 8 && seen.1 >= 6 && seen.2 >= 10,
        "too few messages: {seen:?}"
    );
}

fn header_map(pairs: &[(&str, String)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

/// Standard Base64 (the crate's encoder only encodes when it must).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_helper_matches_the_spec_example() {
    assert_eq!(
        base64_encode("Hello, 世界".as_bytes()),
        "SGVsbG8sIOS4lueVjA=="
    );
    assert_eq!(
        headers::encode_header_value("Hello, 世界"),
        format!("=?base64?{}?=", base64_encode("Hello, 世界".as_bytes()))
    );
}

#[tokio::test]
async fn example_requests_fed_to_our_server_get_schema_valid_answers() {
    let (_server, running) = start_server().await;
    let url = &running.url;
    let mut answered = 0;
    for (def, file, value) in examples() {
        if !def.ends_with("Request") || value.get("jsonrpc").is_none() {
            continue;
        }
        let method = value["method"].as_str().unwrap().to_string();
        if method == "subscriptions/listen" {
            continue; // a stream; covered by its own test
        }
        let a = post_json(url, &modern_headers_for(&value), &value).await;
        let response = a.response();
        assert_eq!(response["id"], value["id"], "{def}/{file}");
        match method.as_str() {
            "server/discover" | "tools/list" | "tools/call" => {
                assert_eq!(a.status, StatusCode::OK, "{def}/{file}: {response}");
                let response_def = def.replace("Request", "ResultResponse");
                assert_valid(MODERN, &response_def, &response);
            }
            _ => {
                // Methods a tools-only server does not implement: 404 and -32601.
                assert_eq!(a.status, StatusCode::NOT_FOUND, "{def}/{file}");
                assert_error(MODERN, &response, -32601);
                assert_valid(MODERN, "MethodNotFoundError", &response["error"]);
            }
        }
        answered += 1;
    }
    assert!(answered >= 8);
}

// ------------------------------------------------------------------------------------
// What the server emits, legacy era
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn legacy_server_messages_are_valid_in_every_legacy_revision() {
    let (server, running) = start_server().await;
    let url = &running.url;
    for rev in LEGACY {
        // initialize
        let init = json!({"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{
            "protocolVersion": rev, "capabilities": {}, "clientInfo": {"name":"t","version":"0"}}});
        assert_valid(rev, "InitializeRequest", &init);
        let a = post_json(url, &base_headers(), &init).await;
        assert_eq!(a.status, StatusCode::OK);
        let r = a.json();
        assert_result(rev, "InitializeResult", &r);
        assert_eq!(r["result"]["protocolVersion"], rev);
        assert!(r["result"].get("resultType").is_none());
        let session = legacy_session(url, rev).await;
        let h = legacy_headers(rev, Some(&session));

        // ping
        let a = post_json(url, &h, &json!({"jsonrpc":"2.0","id":2,"method":"ping"})).await;
        assert_result(rev, "EmptyResult", &a.json());

        // tools/list, both pages; every tool
        let mut cursor = None;
        let mut names = Vec::new();
        for page in 0.. {
            let mut params = json!({});
            if let Some(c) = &cursor {
                params["cursor"] = json!(c);
            }
            let body =
                json!({"jsonrpc":"2.0","id":10 + page,"method":"tools/list","params":params});
            let r = post_json(url, &h, &body).await.json();
            assert_result(rev, "ListToolsResult", &r);
            assert!(r["result"].get("ttlMs").is_none());
            for t in r["result"]["tools"].as_array().unwrap() {
                assert_valid(rev, "Tool", t);
                names.push(t["name"].as_str().unwrap().to_string());
            }
            cursor = r["result"]["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(names, ["get_weather", "echo", "count"]);

        // tools/call: success with structured content, and isError
        let body = json!({"jsonrpc":"2.0","id":20,"method":"tools/call",
            "params":{"name":"echo","arguments":{"text":"hi"}}});
        let a = post_json(url, &h, &body).await;
        let r = a.response();
        assert_result(rev, "CallToolResult", &r);
        assert_eq!(r["result"]["structuredContent"]["echo"]["text"], "hi");
        let body = json!({"jsonrpc":"2.0","id":21,"method":"tools/call",
            "params":{"name":"get_weather","arguments":{}}});
        let r = post_json(url, &h, &body).await.response();
        assert_result(rev, "CallToolResult", &r);
        assert_eq!(r["result"]["isError"], true);

        // progress over SSE, then the response
        let body = json!({"jsonrpc":"2.0","id":22,"method":"tools/call",
            "params":{"name":"count","arguments":{"steps":3},"_meta":{"progressToken":"tok-22"}}});
        let a = post_json(url, &h, &body).await;
        assert!(a.is_sse(), "progress needs an SSE answer");
        let msgs = a.messages();
        assert_eq!(msgs.len(), 4, "{msgs:#?}");
        for (i, n) in msgs[..3].iter().enumerate() {
            assert_valid(rev, "ProgressNotification", n);
            assert_valid(rev, "JSONRPCNotification", n);
            assert_eq!(n["params"]["progressToken"], "tok-22");
            assert_eq!(n["params"]["progress"], json!(i + 1));
        }
        assert_result(rev, "CallToolResult", &msgs[3]);
        assert_eq!(msgs[3]["id"], 22);

        // errors
        let r = post_json(
            url,
            &h,
            &json!({"jsonrpc":"2.0","id":30,"method":"no/such"}),
        )
        .await
        .json();
        assert_eq!(r["id"], 30);
        assert_error(rev, &r, -32601);
        let body = json!({"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"nope"}});
        let r = post_json(url, &h, &body).await.response();
        assert_eq!(r["id"], 31);
        assert_error(rev, &r, -32602);
        let a = post(url, &h, "{\"jsonrpc\":").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        let r = a.json();
        assert_eq!(r["id"], Value::Null);
        assert_error(rev, &r, -32700);
        let a = post(url, &h, r#"{"jsonrpc":"2.0","id":1}"#).await;
        assert_error(rev, &a.json(), -32600);
        let mut bad_version = h.clone();
        bad_version.retain(|(k, _)| *k != "mcp-protocol-version");
        bad_version.push(("mcp-protocol-version", "1999-01-01".into()));
        let a = post_json(
            url,
            &bad_version,
            &json!({"jsonrpc":"2.0","id":32,"method":"ping"}),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        let r = assert_error(rev, &a.json(), -32602);
        assert_eq!(r["error"]["data"]["requested"], "1999-01-01");
    }
    drop(server);
}

#[tokio::test]
async fn the_2025_03_26_batch_answer_is_a_valid_batch_response() {
    let (_server, running) = start_server().await;
    let rev = "2025-03-26";
    let session = legacy_session(&running.url, rev).await;
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":2,"method":"tools/list"},
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}},
        {"jsonrpc":"2.0","id":4,"method":"no/such"}
    ]);
    assert_valid(rev, "JSONRPCBatchRequest", &batch);
    let a = post_json(&running.url, &legacy_headers(rev, Some(&session)), &batch).await;
    assert_eq!(a.status, StatusCode::OK);
    let answers = a.json();
    assert_valid(rev, "JSONRPCBatchResponse", &answers);
    let answers = answers.as_array().unwrap();
    assert_eq!(
        answers.len(),
        4,
        "one answer per request, none for the notification"
    );
    assert_valid(rev, "EmptyResult", &answers[0]["result"]);
    assert_valid(rev, "ListToolsResult", &answers[1]["result"]);
    assert_valid(rev, "CallToolResult", &answers[2]["result"]);
    assert_error(rev, &answers[3], -32601);
}

#[tokio::test]
async fn the_legacy_get_stream_carries_a_valid_list_changed_notification() {
    let (server, running) = start_server().await;
    for rev in LEGACY {
        let session = legacy_session(&running.url, rev).await;
        let mut req = http()
            .get(&running.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session);
        if rev != "2025-03-26" {
            req = req.header("mcp-protocol-version", rev);
        }
        let mut resp = within("GET", req.send()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // The stream opens with a comment; wait for it so the change is not missed.
        within("first comment", resp.chunk())
            .await
            .unwrap()
            .unwrap();
        server.notify_tools_changed();
        let events = read_events(&mut resp, 1).await;
        assert_valid(rev, "ToolListChangedNotification", &events[0]);
        assert_valid(rev, "JSONRPCNotification", &events[0]);
    }
}

// ------------------------------------------------------------------------------------
// What the server emits, 2026-07-28
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn modern_server_messages_are_valid_2026_07_28() {
    let (_server, running) = start_server().await;
    let url = &running.url;

    // server/discover
    let body = modern_body(json!("d-1"), "server/discover", json!({}));
    assert_valid(MODERN, "DiscoverRequest", &body);
    let a = post_json(url, &modern_headers_for(&body), &body).await;
    assert_eq!(a.status, StatusCode::OK);
    let r = a.response();
    assert_valid(MODERN, "DiscoverResultResponse", &r);
    assert_eq!(r["result"]["resultType"], "complete");
    assert!(
        r["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );
    assert_eq!(
        r["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "schema-test-server"
    );
    assert!(
        a.headers.get("mcp-session-id").is_none(),
        "no sessions in 2026"
    );

    // tools/list, both pages
    let mut cursor: Option<String> = None;
    let mut names = Vec::new();
    for page in 0.. {
        let mut params = json!({});
        if let Some(c) = &cursor {
            params["cursor"] = json!(c);
        }
        let body = modern_body(json!(100 + page), "tools/list", params);
        assert_valid(MODERN, "ListToolsRequest", &body);
        let r = post_json(url, &modern_headers_for(&body), &body)
            .await
            .response();
        assert_valid(MODERN, "ListToolsResultResponse", &r);
        for t in r["result"]["tools"].as_array().unwrap() {
            assert_valid(MODERN, "Tool", t);
            names.push(t["name"].clone());
        }
        cursor = r["result"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(names, ["get_weather", "echo", "count"]);

    // tools/call: structured, isError, progress
    let body = modern_body(
        json!("c-1"),
        "tools/call",
        json!({"name":"echo","arguments":{"region":"eu-west","text":"hi"}}),
    );
    let mut h = modern_headers_for(&body);
    h.push(("mcp-param-region", "eu-west".into()));
    let r = post_json(url, &h, &body).await.response();
    assert_valid(MODERN, "CallToolResultResponse", &r);
    assert_eq!(
        r["result"]["structuredContent"]["echo"]["region"],
        "eu-west"
    );
    let body = modern_body(json!("c-2"), "tools/call", json!({"name":"get_weather"}));
    let r = post_json(url, &modern_headers_for(&body), &body)
        .await
        .response();
    assert_valid(MODERN, "CallToolResultResponse", &r);
    assert_eq!(r["result"]["isError"], true);
    let mut body = modern_body(
        json!(7),
        "tools/call",
        json!({"name":"count","arguments":{"steps":2}}),
    );
    body["params"]["_meta"]["progressToken"] = json!(99);
    let a = post_json(url, &modern_headers_for(&body), &body).await;
    assert!(a.is_sse());
    assert_eq!(a.headers["x-accel-buffering"], "no");
    let msgs = a.messages();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    for n in &msgs[..2] {
        assert_valid(MODERN, "ProgressNotification", n);
        assert_eq!(n["params"]["progressToken"], 99);
    }
    assert_valid(MODERN, "CallToolResultResponse", &msgs[2]);
}

#[tokio::test]
async fn modern_error_answers_are_valid_2026_07_28() {
    let (_server, running) = start_server().await;
    let url = &running.url;
    let call = modern_body(
        json!(1),
        "tools/call",
        json!({"name":"echo","arguments":{"region":"eu"}}),
    );
    let mut good = modern_headers_for(&call);
    good.push(("mcp-param-region", "eu".into()));
    let with = |name: &'static str, value: Option<&str>| {
        let mut h: Vec<(&str, String)> = good.iter().filter(|(k, _)| *k != name).cloned().collect();
        if let Some(v) = value {
            h.push((name, v.to_string()));
        }
        h
    };

    // -32020: each header that disagrees with the body, or is missing.
    for h in [
        with("mcp-method", Some("tools/list")),
        with("mcp-method", None),
        with("mcp-name", Some("get_weather")),
        with("mcp-name", None),
        with("mcp-protocol-version", Some("2025-11-25")),
        with("mcp-param-region", Some("us")),
        with("mcp-param-region", None),
    ] {
        let a = post_json(url, &h, &call).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{h:?}");
        let r = a.json();
        assert_eq!(r["id"], 1);
        assert_valid(MODERN, "HeaderMismatchError", &r);
        assert_error(MODERN, &r, -32020);
    }

    // -32022: a version we do not speak, in header and body alike.
    let mut body = call.clone();
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let a = post_json(
        url,
        &with("mcp-protocol-version", Some("2099-01-01")),
        &body,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let r = a.json();
    assert_valid(MODERN, "UnsupportedProtocolVersionError", &r);
    assert_eq!(r["error"]["data"]["requested"], "2099-01-01");
    assert!(
        r["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );

    // -32601 with 404.
    let body = modern_body(json!("m"), "prompts/list", json!({}));
    let a = post_json(url, &modern_headers_for(&body), &body).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let r = a.json();
    assert_error(MODERN, &r, -32601);
    assert_valid(MODERN, "MethodNotFoundError", &r["error"]);

    // -32602: unknown tool; missing required _meta.
    let body = modern_body(json!("u"), "tools/call", json!({"name":"nope"}));
    let r = post_json(url, &modern_headers_for(&body), &body)
        .await
        .response();
    assert_eq!(r["id"], "u");
    assert_error(MODERN, &r, -32602);
    assert_valid(MODERN, "InvalidParamsError", &r["error"]);
    let mut body = modern_body(json!("caps"), "tools/list", json!({}));
    body["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .shift_remove("io.modelcontextprotocol/clientCapabilities");
    let a = post_json(url, &modern_headers_for(&body), &body).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let r = a.json();
    assert_error(MODERN, &r, -32602);
    assert_valid(MODERN, "InvalidParamsError", &r["error"]);

    // -32700 and -32600 (id null).
    let a = post(url, &modern_headers_for(&call), "{]").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let r = a.json();
    assert_eq!(r["id"], Value::Null);
    assert_error(MODERN, &r, -32700);
    assert_valid(MODERN, "ParseError", &r["error"]);
    let a = post(
        url,
        &modern_headers_for(&call),
        r#"{"jsonrpc":"2.0","result":{}}"#,
    )
    .await;
    let r = a.json();
    assert_error(MODERN, &r, -32600);
    assert_valid(MODERN, "InvalidRequestError", &r["error"]);
}

#[tokio::test]
async fn the_listen_stream_is_valid_2026_07_28() {
    let (server, running) = start_server().await;
    let body = example("SubscriptionsListenRequest");
    let mut req = http().post(&running.url).body(body.to_string());
    for (k, v) in modern_headers_for(&body) {
        req = req.header(k, v);
    }
    let mut resp = within("listen", req.send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let ack = read_events(&mut resp, 1).await.remove(0);
    assert_valid(MODERN, "SubscriptionsAcknowledgedNotification", &ack);
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        body["id"]
    );
    // Only what the server honours is acknowledged (it has no resources).
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );

    server.notify_tools_changed();
    let changed = read_events(&mut resp, 1).await.remove(0);
    assert_valid(MODERN, "ToolListChangedNotification", &changed);
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        body["id"]
    );

    server.shutdown();
    let closing = read_events(&mut resp, 1).await.remove(0);
    assert_valid(MODERN, "SubscriptionsListenResultResponse", &closing);
    assert_eq!(closing["id"], body["id"]);
    let rest = within("end of stream", resp.chunk()).await.unwrap();
    assert!(rest.is_none(), "the stream ends after the closing result");
}

// ------------------------------------------------------------------------------------
// What the client sends
// ------------------------------------------------------------------------------------

/// One request as the recording server saw it.
#[derive(Debug, Clone)]
struct Recorded {
    headers: http::HeaderMap,
    body: Value,
}

/// A server that records every POST and answers like a legacy-only server (`rev` set) or
/// a modern-only one (`rev` None).
#[derive(Clone)]
struct Recorder {
    legacy_rev: Option<&'static str>,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    async fn handle(self, req: HttpRequest<Incoming>) -> Response<Body> {
        let (parts, incoming) = req.into_parts();
        let bytes = incoming.collect().await.unwrap().to_bytes();
        let msg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.log.lock().unwrap().push(Recorded {
            headers: parts.headers.clone(),
            body: msg.clone(),
        });
        let method = msg["method"].as_str().unwrap_or_default();
        let id = msg["id"].clone();
        let modern_request =
            msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"].is_string();
        let era = if self.legacy_rev.is_some() {
            Era::Legacy
        } else {
            Era::Modern
        };
        if self.legacy_rev.is_some() && modern_request {
            // What the TypeScript SDK's legacy transport answers a session-less request.
            return body::json_response(
                StatusCode::BAD_REQUEST,
                r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}"#,
            );
        }
        if id.is_null() {
            return body::status_response(StatusCode::ACCEPTED);
        }
        let info = Implementation {
            name: "recorder".into(),
            version: "0".into(),
            title: None,
        };
        let result = match method {
            "initialize" => {
                let v = ProtocolVersion::parse(self.legacy_rev.unwrap_or("2025-11-25")).unwrap();
                mcp::initialize_result(v, &info, &mcp::tools_capabilities(false), None)
            }
            "server/discover" => {
                mcp::discover_result(&info, &mcp::tools_capabilities(false), None, 1000)
            }
            "tools/list" => match msg["params"]["cursor"].as_str() {
                None => mcp::tools_list_result(era, &[weather_tool(), echo_tool()], Some("p2"), 0),
                Some(_) => mcp::tools_list_result(era, &[count_tool()], None, 0),
            },
            "tools/call" => mcp::tool_result(era, "ok", None, false),
            _ => json!({}),
        };
        let answer = json!({"jsonrpc":"2.0","id":id,"result":result});
        let mut resp = body::json_response(StatusCode::OK, answer.to_string());
        if method == "initialize" {
            resp.headers_mut()
                .insert("mcp-session-id", "recorded-session-1".parse().unwrap());
        }
        resp
    }
}

async fn start_recorder(legacy_rev: Option<&'static str>) -> (Recorder, Running) {
    let rec = Recorder {
        legacy_rev,
        log: Arc::default(),
    };
    let r = rec.clone();
    let running = spawn_http(move |req| r.clone().handle(req)).await;
    (rec, running)
}

fn client(url: &str, mode: ClientMode) -> McpClient {
    let mut opts = ClientOptions::new("schema-test-client", "0.0.1");
    opts.mode = mode;
    opts.request_timeout = Duration::from_secs(10);
    McpClient::new(http(), url, opts)
}

/// Drives a client through everything it sends, and returns what the server saw.
async fn client_conversation(c: &McpClient) {
    within("client conversation", async {
        c.connect().await.expect("connect");
        let tools = c.list_tools().await.expect("list").expect("list result");
        assert_eq!(tools.len(), 3);
        let params = json!({"name":"echo","arguments":{"region":"Zürich","text":"x"},
            "_meta":{"progressToken":"p-1"}});
        let reply = c
            .call_tool(
                params.as_object().cloned().unwrap(),
                RequestOptions {
                    id: Some(RequestId::String("call-1".into())),
                    ..Default::default()
                },
            )
            .await
            .expect("call");
        assert!(reply.is_ok());
        c.cancel(&RequestId::String("call-1".into()), "test is done")
            .await
            .expect("cancel");
    })
    .await;
}

#[tokio::test]
async fn client_requests_are_valid_in_every_legacy_revision() {
    for rev in LEGACY {
        let (rec, running) = start_recorder(Some(rev)).await;
        let c = client(&running.url, ClientMode::Auto);
        client_conversation(&c).await;
        let log = rec.log.lock().unwrap().clone();
        let methods: Vec<&str> = log
            .iter()
            .map(|r| r.body["method"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            methods,
            [
                "server/discover",
                "initialize",
                "notifications/initialized",
                "tools/list",
                "tools/list",
                "tools/call",
                "notifications/cancelled"
            ],
            "{rev}"
        );
        // The modern probe that came first is a valid 2026-07-28 request.
        assert_valid(MODERN, "DiscoverRequest", &log[0].body);
        assert_valid(MODERN, "JSONRPCRequest", &log[0].body);
        let defs = [
            "InitializeRequest",
            "InitializedNotification",
            "ListToolsRequest",
            "ListToolsRequest",
            "CallToolRequest",
            "CancelledNotification",
        ];
        for (r, def) in log[1..].iter().zip(defs) {
            assert_valid(rev, def, &r.body);
            let envelope = if def.ends_with("Notification") {
                "JSONRPCNotification"
            } else {
                "JSONRPCRequest"
            };
            assert_valid(rev, envelope, &r.body);
        }
        assert_eq!(log[4].body["params"]["cursor"], "p2");
        assert_eq!(log[6].body["params"]["requestId"], "call-1");
        // Headers: session on every request after initialize; the version header from
        // 2025-06-18 on; no 2026-07-28 headers.
        assert!(log[1].headers.get("mcp-session-id").is_none());
        for r in &log[2..] {
            assert_eq!(r.headers["mcp-session-id"], "recorded-session-1", "{rev}");
            match rev {
                "2025-03-26" => assert!(r.headers.get("mcp-protocol-version").is_none()),
                _ => assert_eq!(r.headers["mcp-protocol-version"], rev),
            }
            assert!(r.headers.get("mcp-method").is_none());
            assert!(
                r.body["params"]["_meta"]
                    .get("io.modelcontextprotocol/protocolVersion")
                    .is_none()
            );
            let accept = r.headers["accept"].to_str().unwrap();
            assert!(accept.contains("application/json") && accept.contains("text/event-stream"));
            assert_eq!(r.headers["content-type"], "application/json");
        }
        assert_eq!(c.connection().unwrap().version.as_str(), rev);
    }
}

#[tokio::test]
async fn client_requests_are_valid_2026_07_28() {
    let (rec, running) = start_recorder(None).await;
    let c = client(&running.url, ClientMode::Auto);
    client_conversation(&c).await;
    let log = rec.log.lock().unwrap().clone();
    let methods: Vec<&str> = log
        .iter()
        .map(|r| r.body["method"].as_str().unwrap_or("?"))
        .collect();
    // No initialize, and no notifications/cancelled: closing the stream cancels in 2026.
    assert_eq!(
        methods,
        ["server/discover", "tools/list", "tools/list", "tools/call"]
    );
    let defs = [
        "DiscoverRequest",
        "ListToolsRequest",
        "ListToolsRequest",
        "CallToolRequest",
    ];
    for (r, def) in log.iter().zip(defs) {
        assert_valid(MODERN, def, &r.body);
        assert_valid(MODERN, "JSONRPCRequest", &r.body);
        let meta = &r.body["params"]["_meta"];
        assert_eq!(meta["io.modelcontextprotocol/protocolVersion"], MODERN);
        assert_eq!(
            meta["io.modelcontextprotocol/clientCapabilities"],
            json!({})
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientInfo"]["name"],
            "schema-test-client"
        );
        // The headers mirror the body, as our own server checks them.
        let parsed = match Message::from_value(r.body.clone()).unwrap() {
            Message::Request(req) => req,
            other => panic!("{other:?}"),
        };
        headers::check_standard_headers(&r.headers, &parsed).unwrap();
        assert_eq!(r.headers["mcp-protocol-version"], MODERN);
        assert!(r.headers.get("mcp-session-id").is_none());
    }
    // The call kept the caller's _meta and mirrored the x-mcp-header parameter, Base64
    // encoded because it is not ASCII.
    let call = &log[3];
    assert_eq!(call.body["params"]["_meta"]["progressToken"], "p-1");
    assert_eq!(call.headers["mcp-name"], "echo");
    let region = call.headers["mcp-param-region"].clone();
    assert_eq!(
        region,
        format!("=?base64?{}?=", base64_encode("Zürich".as_bytes()))
    );
    assert_eq!(headers::decode_header_value(&region).unwrap(), "Zürich");
    let declared = headers::param_headers(&echo_tool()["inputSchema"]).unwrap();
    headers::check_param_headers(
        &call.headers,
        &declared,
        call.body["params"]["arguments"].as_object(),
    )
    .unwrap();
}
