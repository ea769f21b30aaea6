//! Proves the real `node-mcp-server` binary, spawned on its own loopback address per
//! test, serves both MCP eras over HTTP as the specification requires:
//!
//! - every bad-input rule, for both eras: malformed JSON (400, -32700, id null), valid JSON
//!   that is not a request (-32600), unknown method (-32601; 404 in 2026-07-28), wrong
//!   Accept (406), wrong Content-Type (415), body over 4 MiB (413), bad Origin (403; a
//!   loopback Origin passes), unsupported MCP-Protocol-Version (400; -32022 with
//!   `data.supported` for 2026-07-28), header/body mismatch (400, -32020), missing /
//!   unknown / deleted session (400 / 404 / 404), 2025-03-26 batches answered and later
//!   batches refused, GET without a session (400) and GET in 2026-07-28 (405),
//!   notifications (202) — and after all of it, and interleaved with it, good requests
//!   still succeed;
//! - the tools: each one called in 2025-03-26, 2025-06-18 and 2025-11-25 sessions and
//!   stateless 2026-07-28; definitions valid as `Tool` in every revision, results valid
//!   as `CallToolResult` and `structuredContent` valid against the tool's `outputSchema`;
//!   invalid arguments are `isError` results naming the argument; an unknown tool is
//!   -32602; `cpu_usage` streams one progress notification per second before its result;
//!   legacy `notifications/cancelled` and a closed 2026-07-28 response stream both stop a
//!   long `cpu_usage` call.
//!
//! Every wait has a deadline; nothing asserts how long something took.

use bytes::Bytes;
use mcp_protocol::sse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

// ------------------------------------------------------------------------------------
// The process under test
// ------------------------------------------------------------------------------------

/// A running `node-mcp-server`; killed on drop.
struct Backend {
    child: Child,
    /// `http://127.0.0.x:port`.
    base: String,
    /// `{base}/mcp`.
    url: String,
    /// NODE_NAME given to the process.
    node: String,
    /// Everything the process wrote to stderr (its logs).
    log: Arc<Mutex<String>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Backend {
    /// Starts the binary on 127.0.0.`host` (distinct per test) and waits for /healthz.
    async fn start(host: u8) -> Backend {
        Self::start_with(host, "info").await
    }

    async fn start_with(host: u8, rust_log: &str) -> Backend {
        let ip = Ipv4Addr::new(127, 0, 0, host);
        let node = format!("test-node-{host}");
        for _attempt in 0..3 {
            // A free port: bind :0, read it, release it.
            let port = std::net::TcpListener::bind(SocketAddr::from((ip, 0)))
                .expect("loopback address")
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_node-mcp-server"))
                .args(["--bind", &ip.to_string(), "--port", &port.to_string()])
                .env("NODE_NAME", &node)
                .env("RUST_LOG", rust_log)
                .env("NO_COLOR", "1")
                .env_remove("BACKEND_PORT")
                .env_remove("BIND_ADDRESS")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn node-mcp-server");
            let log = Arc::new(Mutex::new(String::new()));
            let stderr = child.stderr.take().unwrap();
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
            let base = format!("http://{ip}:{port}");
            let backend = Backend {
                child,
                url: format!("{base}/mcp"),
                base,
                node: node.clone(),
                log,
            };
            if backend.wait_healthy().await {
                return backend;
            }
            // The port was taken in between (or the process failed): try another.
            eprintln!("backend did not come up:\n{}", backend.logs());
        }
        panic!("node-mcp-server did not start on {ip}");
    }

    async fn wait_healthy(&self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let http = http();
        while tokio::time::Instant::now() < deadline {
            if let Ok(r) = http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                return true;
            }
            if let Ok(mut guard) = self.log.lock()
                && guard.contains("cannot listen")
            {
                guard.clear();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

// ------------------------------------------------------------------------------------
// HTTP helpers
// ------------------------------------------------------------------------------------

const DEADLINE: Duration = Duration::from_secs(30);
const MODERN: &str = "2026-07-28";

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {DEADLINE:?}"))
}

fn http() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| reqwest::Client::builder().no_proxy().build().unwrap())
        .clone()
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

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Every JSON-RPC message of the answer (JSON body or SSE events).
    fn messages(&self) -> Vec<Value> {
        if self.is_sse() {
            let mut d = sse::Decoder::new(1 << 24);
            d.push(&self.body)
                .unwrap()
                .into_iter()
                .map(|e| serde_json::from_str(&e.data).unwrap())
                .collect()
        } else if self.body.is_empty() {
            Vec::new()
        } else {
            vec![self.json()]
        }
    }

    /// The final message: the response.
    fn response(&self) -> Value {
        self.messages()
            .pop()
            .unwrap_or_else(|| panic!("HTTP {}: no answer", self.status))
    }

    /// Asserts status and JSON-RPC error code; returns the error response.
    #[track_caller]
    fn expect_error(&self, status: StatusCode, code: i64) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let r = self.response();
        assert_eq!(r["error"]["code"], code, "{r}");
        assert_eq!(r["jsonrpc"], "2.0");
        r
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    within("HTTP exchange", async {
        let resp = req.send().await.expect("request sent");
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body read"),
        }
    })
    .await
}

/// Sends a raw HTTP/1.1 request head and then `body` (write errors ignored: the server
/// may answer before reading it all), and returns the response's status code. Used where
/// a client library would insist on sending a whole oversized body first.
async fn raw_status(b: &Backend, head: &str, body: Vec<Vec<u8>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within("raw HTTP exchange", async {
        let addr = b.base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        for part in body {
            if s.write_all(&part).await.is_err() {
                break;
            }
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.expect("read the status line");
            assert!(n > 0, "connection closed without a response");
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        line.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    })
    .await
}

/// The head of a POST to /mcp with extra header lines.
fn raw_head(extra: &[String]) -> String {
    let mut head = String::from(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// The node server's body limit: 4 MiB plus room for what the gateway adds when it re-wraps a request.
const BODY_LIMIT: usize = 4 * 1024 * 1024 + 64 * 1024;

/// A request announcing a body one byte over the limit: refused before it is read.
async fn too_large_by_length(b: &Backend, extra: &[String]) -> u16 {
    let mut lines = extra.to_vec();
    lines.push(format!("Content-Length: {}", BODY_LIMIT + 1));
    raw_status(b, &raw_head(&lines), Vec::new()).await
}

/// A POST with JSON content type and the Accept a client must send.
fn post(b: &Backend) -> reqwest::RequestBuilder {
    http()
        .post(&b.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

/// Replaces a header already set by the helpers (`header` would add a second value).
trait Set {
    fn set(self, name: &'static str, value: &str) -> Self;
}

impl Set for reqwest::RequestBuilder {
    fn set(self, name: &'static str, value: &str) -> Self {
        let mut map = reqwest::header::HeaderMap::new();
        map.insert(name, value.parse().unwrap());
        self.headers(map)
    }
}

/// A legacy-era POST inside `session`, negotiated at `rev`.
fn legacy(b: &Backend, rev: &str, session: &str) -> reqwest::RequestBuilder {
    let req = post(b).header("mcp-session-id", session);
    if rev == "2025-03-26" {
        req
    } else {
        req.set("mcp-protocol-version", rev)
    }
}

/// A 2026-07-28 request body: `params` plus the required `_meta`.
fn modern_body(id: Value, method: &str, mut params: Value) -> Value {
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A 2026-07-28 POST of `body` with the headers derived from it.
fn modern(b: &Backend, body: &Value) -> reqwest::RequestBuilder {
    let method = body["method"].as_str().unwrap();
    let mut req = post(b)
        .set("mcp-protocol-version", MODERN)
        .set("mcp-method", method)
        .body(body.to_string());
    if let Some(name) = body["params"]["name"].as_str() {
        req = req.set("mcp-name", name);
    }
    req
}

/// Runs initialize + initialized at `rev`; returns the session id.
async fn session(b: &Backend, rev: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": rev, "capabilities": {}, "clientInfo": {"name":"http-test","version":"0"}}});
    let a = send(post(b).body(init.to_string())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", b.logs());
    assert_eq!(a.json()["result"]["protocolVersion"], rev);
    let sid = a.headers["mcp-session-id"].to_str().unwrap().to_string();
    assert!(sid.len() >= 16 && sid.bytes().all(|c| (0x21..=0x7e).contains(&c)));
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let a = send(legacy(b, rev, &sid).body(note.to_string())).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert!(a.body.is_empty());
    sid
}

fn call_body(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

/// One era to talk in: a legacy session at a revision, or stateless 2026-07-28.
#[derive(Clone, Debug)]
enum Era {
    Legacy { rev: &'static str, session: String },
    Modern,
}

impl Era {
    async fn legacy(b: &Backend, rev: &'static str) -> Era {
        Era::Legacy {
            rev,
            session: session(b, rev).await,
        }
    }

    fn rev(&self) -> &'static str {
        match self {
            Era::Legacy { rev, .. } => rev,
            Era::Modern => MODERN,
        }
    }

    /// POSTs a request in this era (`params` without `_meta` protocol fields).
    async fn request(&self, b: &Backend, id: Value, method: &str, params: Value) -> Answer {
        match self {
            Era::Legacy { rev, session } => {
                let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
                send(legacy(b, rev, session).body(body.to_string())).await
            }
            Era::Modern => send(modern(b, &modern_body(id, method, params))).await,
        }
    }

    async fn call(&self, b: &Backend, tool: &str, args: Value) -> Value {
        let a = self
            .request(
                b,
                json!(7),
                "tools/call",
                json!({"name": tool, "arguments": args}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{tool}: {:?}", a.body);
        let r = a.response();
        assert_eq!(r["id"], 7);
        r
    }
}

// ------------------------------------------------------------------------------------
// Schemas
// ------------------------------------------------------------------------------------

const REVS: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/mcp-schema")
}

fn schema_doc(rev: &str) -> Value {
    static DOCS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        REVS.iter()
            .map(|rev| {
                let text =
                    std::fs::read_to_string(schema_dir().join(format!("{rev}.json"))).unwrap();
                (rev.to_string(), serde_json::from_str(&text).unwrap())
            })
            .collect()
    })[rev]
        .clone()
}

fn validator(rev: &str, def: &str) -> Arc<jsonschema::Validator> {
    type Cache = Mutex<HashMap<(String, String), Arc<jsonschema::Validator>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (rev.to_string(), def.to_string());
    if let Some(v) = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .get(&key)
    {
        return v.clone();
    }
    let doc = schema_doc(rev);
    let defs_key = if doc.get("$defs").is_some() {
        "$defs"
    } else {
        "definitions"
    };
    assert!(doc[defs_key].get(def).is_some(), "{rev} has no {def}");
    let schema = json!({
        "$schema": doc["$schema"].clone(),
        defs_key: doc[defs_key].clone(),
        "$ref": format!("#/{defs_key}/{def}"),
    });
    let v = Arc::new(jsonschema::validator_for(&schema).unwrap());
    CACHE.get().unwrap().lock().unwrap().insert(key, v.clone());
    v
}

#[track_caller]
fn assert_valid(rev: &str, def: &str, instance: &Value) {
    let errors: Vec<String> = validator(rev, def)
        .iter_errors(instance)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not a valid {rev} {def}: {errors:#?}\n{instance:#}"
    );
}

#[track_caller]
fn assert_matches_schema(schema: &Value, instance: &Value, what: &str) {
    let v = jsonschema::validator_for(schema).expect("outputSchema compiles");
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: structuredContent does not match outputSchema: {errors:#?}\n{instance:#}"
    );
}

// ------------------------------------------------------------------------------------
// Bad input
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_and_non_requests_in_both_eras() {
    let b = Backend::start(20).await;
    let sid = session(&b, "2025-11-25").await;
    let builders = |b: &Backend| {
        vec![
            ("no headers", post(b)),
            ("legacy", legacy(b, "2025-11-25", &sid)),
            ("legacy 2025-03-26", post(b).header("mcp-session-id", &sid)),
            (
                "modern",
                post(b)
                    .set("mcp-protocol-version", MODERN)
                    .set("mcp-method", "tools/list"),
            ),
        ]
    };
    for (era, req) in builders(&b) {
        let a = send(req.body("{\"jsonrpc\":\"2.0\",\"id\":1,")).await;
        let r = a.expect_error(StatusCode::BAD_REQUEST, -32700);
        assert!(r.get("id").is_some() && r["id"].is_null(), "{era}: {r}");
    }
    for body in [
        "42",
        "\"tools/list\"",
        "null",
        "{}",
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        r#"{"id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":42}"#,
        r#"{"jsonrpc":"2.0","result":{}}"#,
    ] {
        for (era, req) in builders(&b) {
            let a = send(req.body(body)).await;
            let r = a.expect_error(StatusCode::BAD_REQUEST, -32600);
            assert!(r["id"].is_null(), "{era} {body}: {r}");
        }
    }
}

#[tokio::test]
async fn unknown_methods_are_32601_and_404_in_2026() {
    let b = Backend::start(21).await;
    // A method only clients serve (resources/* and prompts/* are served now).
    for rev in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let era = Era::legacy(&b, rev).await;
        let a = era
            .request(&b, json!("m-1"), "sampling/createMessage", json!({}))
            .await;
        let r = a.expect_error(StatusCode::OK, -32601);
        assert_eq!(r["id"], "m-1");
    }
    let a = Era::Modern
        .request(&b, json!("m-2"), "sampling/createMessage", json!({}))
        .await;
    let r = a.expect_error(StatusCode::NOT_FOUND, -32601);
    assert_eq!(r["id"], "m-2");
    // Methods removed in 2026-07-28 are unknown there too.
    for method in ["ping", "initialize-nope", "logging/setLevel"] {
        let a = Era::Modern.request(&b, json!(3), method, json!({})).await;
        a.expect_error(StatusCode::NOT_FOUND, -32601);
    }
}

#[tokio::test]
async fn accept_and_content_type_are_enforced() {
    let b = Backend::start(22).await;
    let sid = session(&b, "2025-11-25").await;
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let mlist = modern_body(json!(1), "tools/list", json!({}));
    for accept in [
        "text/html",
        "image/png",
        "application/json;q=0, text/event-stream;q=0",
    ] {
        let a = send(
            legacy(&b, "2025-11-25", &sid)
                .set("accept", accept)
                .body(list.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_ACCEPTABLE, "{accept}");
        let a = send(modern(&b, &mlist).set("accept", accept)).await;
        assert_eq!(a.status, StatusCode::NOT_ACCEPTABLE, "{accept}");
    }
    // Either acceptable type alone is enough for a list.
    for accept in ["application/json", "text/event-stream", "*/*"] {
        let a = send(
            legacy(&b, "2025-11-25", &sid)
                .set("accept", accept)
                .body(list.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{accept}");
        assert!(a.response()["result"]["tools"].is_array());
    }
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let a = send(
            legacy(&b, "2025-11-25", &sid)
                .set("content-type", ct)
                .body(list.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        let a = send(modern(&b, &mlist).set("content-type", ct)).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
    }
    // Parameters on the media type are fine.
    let a = send(
        legacy(&b, "2025-11-25", &sid)
            .set("content-type", "application/json; charset=utf-8")
            .body(list.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    // No Content-Type at all.
    let a = send(
        http()
            .post(&b.url)
            .set("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &sid)
            .body(list.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let b = Backend::start(23).await;
    let sid = session(&b, "2025-11-25").await;
    // Just under the limit: a valid (padded) request is served.
    let mut under =
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"pad":""}}});
    let overhead = under.to_string().len();
    under["params"]["_meta"]["pad"] = json!("x".repeat(BODY_LIMIT - overhead - 16));
    let a = send(legacy(&b, "2025-11-25", &sid).body(under.to_string())).await;
    assert_eq!(a.status, StatusCode::OK);
    // Over it by Content-Length, in both eras: refused at once.
    let legacy_lines = vec![
        format!("Mcp-Session-Id: {sid}"),
        "MCP-Protocol-Version: 2025-11-25".to_string(),
    ];
    let modern_lines = vec![
        format!("MCP-Protocol-Version: {MODERN}"),
        "Mcp-Method: tools/list".to_string(),
    ];
    for lines in [&legacy_lines, &modern_lines, &Vec::new()] {
        assert_eq!(too_large_by_length(&b, lines).await, 413, "{lines:?}");
    }
    // Over it without a Content-Length (chunked): counted while reading. The body is
    // exactly the limit in four chunks, then the byte too many.
    let mut lines = legacy_lines.clone();
    lines.push("Transfer-Encoding: chunked".to_string());
    let quarter = BODY_LIMIT / 4;
    let mut parts: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            let mut p = format!("{quarter:x}\r\n").into_bytes();
            p.extend(std::iter::repeat_n(b' ', quarter));
            p.extend_from_slice(b"\r\n");
            p
        })
        .collect();
    parts.push(b"1\r\n \r\n".to_vec());
    assert_eq!(raw_status(&b, &raw_head(&lines), parts).await, 413);
    // Still serving, in both eras.
    assert_node_info(&b, &Era::Modern).await;
    let a = send(legacy(&b, "2025-11-25", &sid).body(under.to_string())).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn foreign_origins_are_403_and_loopback_origins_pass() {
    let b = Backend::start(24).await;
    let sid = session(&b, "2025-11-25").await;
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let mlist = modern_body(json!(1), "tools/list", json!({}));
    for origin in [
        "http://evil.example",
        "https://attacker.test:8443",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "null",
    ] {
        let a = send(
            legacy(&b, "2025-11-25", &sid)
                .header("origin", origin)
                .body(list.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin}");
        let a = send(modern(&b, &mlist).header("origin", origin)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin}");
        // Even the handshake and GET are refused.
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"0"}}});
        let a = send(post(&b).header("origin", origin).body(init.to_string())).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin}");
    }
    for origin in [
        "http://localhost:6274",
        "http://127.0.0.1",
        "https://127.0.0.24:9000",
        "http://[::1]:3000",
    ] {
        let a = send(
            legacy(&b, "2025-11-25", &sid)
                .header("origin", origin)
                .body(list.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{origin}");
        let a = send(modern(&b, &mlist).header("origin", origin)).await;
        assert_eq!(a.status, StatusCode::OK, "{origin}");
    }
}

#[tokio::test]
async fn unsupported_protocol_versions_are_400() {
    let b = Backend::start(25).await;
    let sid = session(&b, "2025-11-25").await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    for v in ["1999-01-01", "2024-11-05", "latest"] {
        let a = send(
            post(&b)
                .header("mcp-session-id", &sid)
                .set("mcp-protocol-version", v)
                .body(ping.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{v}");
    }
    // 2026-07-28 request naming a version nobody speaks, in header and body alike.
    let mut body = modern_body(json!("v"), "tools/list", json!({}));
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let a = send(
        post(&b)
            .set("mcp-protocol-version", "2099-01-01")
            .set("mcp-method", "tools/list")
            .body(body.to_string()),
    )
    .await;
    let r = a.expect_error(StatusCode::BAD_REQUEST, -32022);
    assert_eq!(r["id"], "v");
    assert_eq!(r["error"]["data"]["requested"], "2099-01-01");
    let supported = r["error"]["data"]["supported"].as_array().unwrap();
    assert!(supported.contains(&json!(MODERN)), "{r}");
    assert_valid(MODERN, "UnsupportedProtocolVersionError", &r);
    // A legacy revision inside a 2026-07-28 body is not a 2026-07-28 request either.
    let mut body = modern_body(json!("w"), "tools/list", json!({}));
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2025-11-25");
    let a = send(
        post(&b)
            .set("mcp-protocol-version", "2025-11-25")
            .set("mcp-method", "tools/list")
            .body(body.to_string()),
    )
    .await;
    a.expect_error(StatusCode::BAD_REQUEST, -32022);
}

#[tokio::test]
async fn header_and_body_must_agree_in_2026() {
    let b = Backend::start(26).await;
    let call = modern_body(
        json!(1),
        "tools/call",
        json!({"name":"node_info","arguments":{}}),
    );
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "Mcp-Method differs",
            modern(&b, &call).set("mcp-method", "tools/list"),
        ),
        (
            "Mcp-Name differs",
            modern(&b, &call).set("mcp-name", "disk_usage"),
        ),
        (
            "MCP-Protocol-Version differs",
            modern(&b, &call).set("mcp-protocol-version", "2025-11-25"),
        ),
        (
            "Mcp-Method missing",
            post(&b)
                .set("mcp-protocol-version", MODERN)
                .set("mcp-name", "node_info")
                .body(call.to_string()),
        ),
        (
            "Mcp-Name missing",
            post(&b)
                .set("mcp-protocol-version", MODERN)
                .set("mcp-method", "tools/call")
                .body(call.to_string()),
        ),
        (
            "MCP-Protocol-Version missing",
            post(&b)
                .set("mcp-method", "tools/call")
                .set("mcp-name", "node_info")
                .body(call.to_string()),
        ),
        (
            "Mcp-Name invalid Base64",
            modern(&b, &call).set("mcp-name", "=?base64?***?="),
        ),
    ];
    for (what, req) in cases {
        let a = send(req).await;
        let r = a.expect_error(StatusCode::BAD_REQUEST, -32020);
        assert_eq!(r["id"], 1, "{what}");
        assert_valid(MODERN, "HeaderMismatchError", &r);
    }
    // The Base64 form of the right name is accepted.
    let a = send(modern(&b, &call).set("mcp-name", "=?base64?bm9kZV9pbmZv?=")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.response()["result"]["isError"], Value::Null);
}

#[tokio::test]
async fn session_rules() {
    let b = Backend::start(27).await;
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    // Missing: 400.
    let a = send(
        post(&b)
            .set("mcp-protocol-version", "2025-11-25")
            .body(list.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = send(post(&b).body(list.to_string())).await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "no header: assumed 2025-03-26"
    );
    // Unknown: 404.
    let a = send(legacy(&b, "2025-11-25", "no-such-session").body(list.to_string())).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // A live session works, then DELETE ends it: 404 afterwards.
    let sid = session(&b, "2025-11-25").await;
    let a = send(legacy(&b, "2025-11-25", &sid).body(list.to_string())).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(http().delete(&b.url).header("mcp-session-id", &sid)).await;
    assert!(a.status.is_success(), "{}", a.status);
    let a = send(legacy(&b, "2025-11-25", &sid).body(list.to_string())).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = send(http().delete(&b.url).header("mcp-session-id", &sid)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = send(http().delete(&b.url)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Sessions are independent: another one is unaffected.
    let s2 = session(&b, "2025-06-18").await;
    let a = send(legacy(&b, "2025-06-18", &s2).body(list.to_string())).await;
    assert_eq!(a.status, StatusCode::OK);
    // 2026-07-28 ignores a session header and never mints one.
    let a = send(
        modern(&b, &modern_body(json!(2), "tools/list", json!({})))
            .header("mcp-session-id", "whatever"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get("mcp-session-id").is_none());
}

#[tokio::test]
async fn batches_only_in_2025_03_26() {
    let b = Backend::start(28).await;
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"node_info","arguments":{}}},
        {"jsonrpc":"2.0","id":3,"method":"nope"}
    ]);
    let sid = session(&b, "2025-03-26").await;
    let a = send(legacy(&b, "2025-03-26", &sid).body(batch.to_string())).await;
    assert_eq!(a.status, StatusCode::OK);
    let answers = a.json();
    assert_valid("2025-03-26", "JSONRPCBatchResponse", &answers);
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(
        answers[1]["result"]["structuredContent"]["node_name"],
        b.node.as_str()
    );
    assert_eq!(answers[2]["error"]["code"], -32601);
    for rev in ["2025-06-18", "2025-11-25"] {
        let sid = session(&b, rev).await;
        let a = send(legacy(&b, rev, &sid).body(batch.to_string())).await;
        a.expect_error(StatusCode::BAD_REQUEST, -32600);
    }
    let a = send(
        post(&b)
            .set("mcp-protocol-version", MODERN)
            .set("mcp-method", "tools/list")
            .body(json!([modern_body(json!(1), "tools/list", json!({}))]).to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_needs_a_session_and_is_405_in_2026() {
    let b = Backend::start(29).await;
    let a = send(http().get(&b.url).set("accept", "text/event-stream")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = send(
        http()
            .get(&b.url)
            .set("accept", "text/event-stream")
            .set("mcp-protocol-version", MODERN),
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = send(
        http()
            .get(&b.url)
            .set("accept", "text/event-stream")
            .header("mcp-session-id", "unknown"),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // With a session: an SSE stream opens (read its first bytes, then hang up).
    let sid = session(&b, "2025-11-25").await;
    let mut resp = within(
        "GET stream",
        http()
            .get(&b.url)
            .set("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .set("mcp-protocol-version", "2025-11-25")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = within("first bytes", resp.chunk()).await.unwrap().unwrap();
    assert!(first.starts_with(b":"), "a comment opens the stream");
    drop(resp);
    // Other verbs.
    let a = send(http().put(&b.url)).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn notifications_and_responses_are_202() {
    let b = Backend::start(30).await;
    for rev in ["2025-03-26", "2025-11-25"] {
        let sid = session(&b, rev).await;
        for body in [
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}),
            json!({"jsonrpc":"2.0","method":"notifications/whatever"}),
            json!({"jsonrpc":"2.0","id":5,"result":{}}),
        ] {
            let a = send(legacy(&b, rev, &sid).body(body.to_string())).await;
            assert_eq!(a.status, StatusCode::ACCEPTED, "{rev} {body}");
            assert!(a.body.is_empty());
        }
    }
    let body = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{
        "requestId":1,"_meta":{"io.modelcontextprotocol/protocolVersion":MODERN}}});
    let a = send(
        post(&b)
            .set("mcp-protocol-version", MODERN)
            .body(body.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert!(a.body.is_empty());
}

async fn assert_node_info(b: &Backend, era: &Era) {
    let r = era.call(b, "node_info", json!({})).await;
    assert_eq!(
        r["result"]["structuredContent"]["node_name"],
        b.node.as_str(),
        "{r}"
    );
}

#[tokio::test]
async fn good_requests_succeed_after_and_among_bad_ones() {
    let b = Backend::start(31).await;
    let legacy_era = Era::legacy(&b, "2025-11-25").await;
    let old_era = Era::legacy(&b, "2025-03-26").await;
    let b = &b;
    // Bad requests of every kind, each with its expected status.
    let bad = |i: usize| -> (reqwest::RequestBuilder, StatusCode) {
        let call = modern_body(json!(i), "tools/call", json!({"name":"node_info"}));
        match i % 10 {
            0 => (post(b).body("{oops"), StatusCode::BAD_REQUEST),
            1 => (post(b).body("[]"), StatusCode::BAD_REQUEST),
            2 => (
                modern(b, &call).set("accept", "text/html"),
                StatusCode::NOT_ACCEPTABLE,
            ),
            3 => (
                modern(b, &call).set("content-type", "text/plain"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            4 => (
                modern(b, &call).set("mcp-protocol-version", "2099-01-01"),
                StatusCode::BAD_REQUEST,
            ),
            5 => (
                modern(b, &call).header("origin", "http://evil.example"),
                StatusCode::FORBIDDEN,
            ),
            6 => (
                modern(b, &call).set("mcp-name", "disk_usage"),
                StatusCode::BAD_REQUEST,
            ),
            7 => (
                legacy(b, "2025-11-25", "gone").body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
                StatusCode::NOT_FOUND,
            ),
            8 => (
                modern(b, &modern_body(json!(i), "nope/nope", json!({}))),
                StatusCode::NOT_FOUND,
            ),
            _ => (http().get(&b.url), StatusCode::BAD_REQUEST),
        }
    };
    // First: all the bad input, one after the other.
    for i in 0..10 {
        let (req, status) = bad(i);
        assert_eq!(send(req).await.status, status, "bad request kind {i}");
    }
    assert_eq!(too_large_by_length(b, &[]).await, 413);
    for era in [&legacy_era, &old_era, &Era::Modern] {
        assert_node_info(b, era).await;
    }
    // Then good and bad interleaved, all at once.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let legacy_era = legacy_era.clone();
        let old_era = old_era.clone();
        tasks.push(async move {
            match i % 5 {
                0 => assert_node_info(b, &legacy_era).await,
                1 => assert_node_info(b, &Era::Modern).await,
                2 => assert_node_info(b, &old_era).await,
                3 => {
                    let (req, status) = bad(i / 5);
                    assert_eq!(send(req).await.status, status, "bad request kind {}", i / 5);
                }
                _ => assert_eq!(too_large_by_length(b, &[]).await, 413),
            }
        });
    }
    within("interleaved", futures_util::future::join_all(tasks)).await;
    assert_node_info(b, &Era::Modern).await;
    assert!(!b.logs().contains("panicked"), "{}", b.logs());
}

// ------------------------------------------------------------------------------------
// Tools
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn every_tool_in_every_revision_is_schema_valid() {
    let b = Backend::start(32).await;
    let mut eras = Vec::new();
    for rev in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        eras.push(Era::legacy(&b, rev).await);
    }
    eras.push(Era::Modern);
    let args = [
        ("node_info", json!({})),
        ("list_processes", json!({"limit": 5, "sort_by": "cpu"})),
        ("list_processes", json!({"name_filter": "node-mcp"})),
        ("disk_usage", json!({})),
        ("disk_usage", json!({"include_pseudo": true})),
        ("cpu_usage", json!({"seconds": 1})),
    ];
    for era in &eras {
        let rev = era.rev();
        let a = era.request(&b, json!("l"), "tools/list", json!({})).await;
        assert_eq!(a.status, StatusCode::OK);
        let list = a.response();
        if rev == MODERN {
            assert_valid(rev, "ListToolsResultResponse", &list);
        } else {
            assert_valid(rev, "ListToolsResult", &list["result"]);
        }
        assert!(list["result"].get("nextCursor").is_none());
        let tools = list["result"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["node_info", "list_processes", "disk_usage", "cpu_usage"]
        );
        let mut output_schemas = HashMap::new();
        for t in tools {
            // The same definition is a valid Tool in every revision.
            for any in REVS {
                assert_valid(any, "Tool", t);
            }
            assert_eq!(t["inputSchema"]["type"], "object");
            assert_eq!(t["inputSchema"]["additionalProperties"], false);
            assert_eq!(t["annotations"]["readOnlyHint"], true);
            assert!(t["title"].is_string() && t["description"].is_string());
            output_schemas.insert(
                t["name"].as_str().unwrap().to_string(),
                t["outputSchema"].clone(),
            );
        }
        for (tool, arguments) in &args {
            let r = era.call(&b, tool, arguments.clone()).await;
            let result = &r["result"];
            assert_valid(rev, "CallToolResult", result);
            if rev == MODERN {
                assert_valid(rev, "CallToolResultResponse", &r);
            } else {
                assert!(result.get("resultType").is_none());
            }
            assert_ne!(result["isError"], true, "{tool} {arguments}: {result}");
            assert_matches_schema(
                &output_schemas[*tool],
                &result["structuredContent"],
                &format!("{rev} {tool}"),
            );
            let text = result["content"][0]["text"].as_str().unwrap();
            assert!(!text.is_empty());
        }
        assert_node_info(&b, era).await;
    }
}

#[tokio::test]
async fn invalid_arguments_are_error_results_naming_the_argument() {
    let b = Backend::start(33).await;
    let cases = [
        ("node_info", json!({"verbose": true}), "verbose"),
        ("list_processes", json!({"limit": 0}), "limit"),
        ("list_processes", json!({"limit": 100_000}), "limit"),
        ("list_processes", json!({"limit": "ten"}), "limit"),
        ("list_processes", json!({"sort_by": "colour"}), "sort_by"),
        ("list_processes", json!({"name_filter": 5}), "name_filter"),
        ("list_processes", json!({"bogus": 1}), "bogus"),
        (
            "disk_usage",
            json!({"include_pseudo": "yes"}),
            "include_pseudo",
        ),
        ("cpu_usage", json!({"seconds": 0}), "seconds"),
        ("cpu_usage", json!({"seconds": 31}), "seconds"),
        ("cpu_usage", json!({"seconds": 1.5}), "seconds"),
        ("cpu_usage", json!({"interval": 1}), "interval"),
    ];
    for era in [Era::legacy(&b, "2025-11-25").await, Era::Modern] {
        for (tool, args, name) in &cases {
            let r = era.call(&b, tool, args.clone()).await;
            let result = &r["result"];
            assert_eq!(result["isError"], true, "{tool} {args}: {r}");
            assert_valid(era.rev(), "CallToolResult", result);
            let text = result["content"][0]["text"].as_str().unwrap();
            assert!(
                text.contains(&format!("`{name}`")),
                "{tool} {args}: message does not name `{name}`: {text}"
            );
            assert!(result.get("structuredContent").is_none());
        }
    }
}

#[tokio::test]
async fn unknown_tools_are_32602() {
    let b = Backend::start(34).await;
    for era in [
        Era::legacy(&b, "2025-11-25").await,
        Era::legacy(&b, "2025-03-26").await,
        Era::Modern,
    ] {
        let a = era
            .request(
                &b,
                json!(9),
                "tools/call",
                json!({"name":"rm_rf","arguments":{}}),
            )
            .await;
        let r = a.expect_error(StatusCode::OK, -32602);
        assert_eq!(r["id"], 9);
        assert!(r["error"]["message"].as_str().unwrap().contains("rm_rf"));
        // No name at all: -32602 (in 2026-07-28 the missing Mcp-Name header is noticed
        // first: 400 with -32020). Arguments that are not an object: -32602.
        let a = era
            .request(&b, json!(10), "tools/call", json!({"arguments":{}}))
            .await;
        match era {
            Era::Modern => a.expect_error(StatusCode::BAD_REQUEST, -32020),
            Era::Legacy { .. } => a.expect_error(StatusCode::OK, -32602),
        };
        let a = era
            .request(
                &b,
                json!(11),
                "tools/call",
                json!({"name":"node_info","arguments":[1]}),
            )
            .await;
        a.expect_error(a.status, -32602);
    }
}

/// Reads a streaming SSE answer message by message.
struct SseReader {
    resp: reqwest::Response,
    decoder: sse::Decoder,
    pending: std::collections::VecDeque<Value>,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> Self {
        SseReader {
            resp,
            decoder: sse::Decoder::new(1 << 20),
            pending: Default::default(),
        }
    }

    /// The next message; None when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Some(v);
            }
            let chunk = within("SSE message", self.resp.chunk()).await.ok()??;
            for e in self.decoder.push(&chunk).unwrap() {
                self.pending
                    .push_back(serde_json::from_str(&e.data).unwrap());
            }
        }
    }
}

async fn open_stream(req: reqwest::RequestBuilder) -> SseReader {
    let resp = within("open stream", req.send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    SseReader::new(resp)
}

fn cpu_call(
    era: &Era,
    b: &Backend,
    id: Value,
    seconds: u64,
    token: Value,
) -> reqwest::RequestBuilder {
    let params =
        json!({"name":"cpu_usage","arguments":{"seconds":seconds},"_meta":{"progressToken":token}});
    match era {
        Era::Legacy { rev, session } => {
            let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params});
            legacy(b, rev, session).body(body.to_string())
        }
        Era::Modern => modern(b, &modern_body(id, "tools/call", params)),
    }
}

#[tokio::test]
async fn cpu_usage_streams_one_progress_notification_per_second_before_its_result() {
    let b = Backend::start(35).await;
    let eras = [
        Era::legacy(&b, "2025-11-25").await,
        Era::legacy(&b, "2025-03-26").await,
        Era::Modern,
    ];
    let runs = eras.iter().enumerate().map(|(i, era)| {
        let b = &b;
        async move {
            let token = if i % 2 == 0 {
                json!(format!("tok-{i}"))
            } else {
                json!(i)
            };
            let mut s = open_stream(cpu_call(era, b, json!(100 + i), 3, token.clone())).await;
            let mut progress = Vec::new();
            let response = loop {
                let m = s.next().await.expect("the stream ends with the response");
                if m.get("id").is_some() {
                    break m;
                }
                assert_valid(era.rev(), "ProgressNotification", &m);
                assert_eq!(m["params"]["progressToken"], token);
                assert_eq!(m["params"]["total"], 3);
                progress.push(m["params"]["progress"].as_f64().unwrap());
            };
            assert!(s.next().await.is_none(), "nothing after the response");
            assert_eq!(response["id"], 100 + i);
            assert_valid(era.rev(), "CallToolResult", &response["result"]);
            assert_eq!(
                response["result"]["structuredContent"]["sampled_seconds"],
                3
            );
            // One per second, increasing, all before the result.
            assert_eq!(progress, [1.0, 2.0, 3.0], "{:?}", era);
        }
    });
    within("progress runs", futures_util::future::join_all(runs)).await;
    // Without a progress token (and with JSON acceptable) a legacy answer is plain JSON.
    let a = send(
        legacy(
            &b,
            "2025-11-25",
            match &eras[0] {
                Era::Legacy { session, .. } => session,
                Era::Modern => unreachable!(),
            },
        )
        .set("accept", "application/json")
        .body(call_body(json!(1), "cpu_usage", json!({"seconds":1})).to_string()),
    )
    .await;
    assert!(!a.is_sse());
    assert_eq!(
        a.json()["result"]["structuredContent"]["sampled_seconds"],
        1
    );
}

#[tokio::test]
async fn legacy_cancellation_stops_a_long_cpu_usage_call() {
    let b = Backend::start_with(36, "info,mcp_protocol=debug").await;
    for rev in ["2025-11-25", "2025-03-26"] {
        let era = Era::legacy(&b, rev).await;
        let Era::Legacy { session, .. } = &era else {
            unreachable!()
        };
        let mut s = open_stream(cpu_call(&era, &b, json!("long-1"), 30, json!("t"))).await;
        // The call is running once its first progress arrives.
        let first = s.next().await.expect("first progress");
        assert_eq!(first["method"], "notifications/progress");
        let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled",
            "params":{"requestId":"long-1","reason":"test"}});
        let a = send(legacy(&b, rev, session).body(cancel.to_string())).await;
        assert_eq!(a.status, StatusCode::ACCEPTED);
        // The stream ends without a result (or with a cancellation error), long before
        // 30 progress notifications.
        let mut more = 0;
        while let Some(m) = s.next().await {
            if m.get("id").is_some() {
                assert!(
                    m.get("result").is_none(),
                    "a cancelled call has no result: {m}"
                );
                assert_eq!(m["id"], "long-1");
                break;
            }
            more += 1;
            assert!(more < 5, "progress keeps coming after the cancellation");
        }
        assert_node_info(&b, &era).await;
    }
    let logs = b.logs();
    assert!(
        logs.contains("client cancelled a request") && logs.contains("found=true"),
        "the server saw the cancellation reach the call:\n{logs}"
    );
}

/// A client of its own, so that closing its connection is what the server sees.
fn own_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .build()
        .unwrap()
}

/// A 2026-07-28 `cpu_usage` call of 30 s with request id `id` and `_meta` `meta`.
fn long_modern_call(
    own: &reqwest::Client,
    b: &Backend,
    id: &str,
    meta: Value,
) -> reqwest::RequestBuilder {
    let body = modern_body(
        json!(id),
        "tools/call",
        json!({"name":"cpu_usage","arguments":{"seconds":30},"_meta":meta}),
    );
    own.post(&b.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .set("mcp-protocol-version", MODERN)
        .set("mcp-method", "tools/call")
        .set("mcp-name", "cpu_usage")
        .body(body.to_string())
}

/// Waits (10 s at most) for the server's debug line `what` naming request `id`.
async fn await_cancellation_log(b: &Backend, what: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let cancelled = |logs: &str| logs.lines().any(|l| l.contains(what) && l.contains(id));
    while tokio::time::Instant::now() < deadline && !cancelled(&b.logs()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cancelled(&b.logs()),
        "no sign the server cancelled the call:\n{}",
        b.logs()
    );
}

#[tokio::test]
async fn closing_the_connection_of_a_2026_json_answer_cancels_the_call() {
    let mut b = Backend::start_with(38, "debug").await;
    let own = own_client();
    // No progress token: the answer would come as JSON, once the call is done.
    let req = long_modern_call(&own, &b, "hang-up", json!({}));
    let sent = tokio::spawn(async move { req.send().await.map(|r| r.status()) });
    // Hang up once the server has the call in hand.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline && !b.logs().contains("tool call started") {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sent.abort();
    drop(own);
    await_cancellation_log(&b, "client gone before the answer", "hang-up").await;
    assert_node_info(&b, &Era::Modern).await;
    assert!(b.alive());
}

#[tokio::test]
async fn closing_a_2026_response_stream_cancels_the_call() {
    let mut b = Backend::start_with(37, "debug").await;
    let own = own_client();
    let req = long_modern_call(&own, &b, "drop-me", json!({"progressToken":"t"}));
    let mut s = open_stream(req).await;
    let first = s.next().await.expect("first progress");
    assert_eq!(first["method"], "notifications/progress");
    drop(s);
    drop(own);
    // The server is fine and answers at once, in both eras.
    assert_node_info(&b, &Era::Modern).await;
    assert_node_info(&b, &Era::legacy(&b, "2025-11-25").await).await;
    // Its next progress write finds the stream closed, the stream is dropped, and with
    // it the call: the server logs that it cancelled exactly this request.
    await_cancellation_log(&b, "response stream closed before the answer", "drop-me").await;
    assert!(b.alive());
}
