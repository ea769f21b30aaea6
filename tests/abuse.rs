//! Attacks on the real gateway binary, each bounded in count and time, on loopback
//! only, and each showing the gateway still answering `/healthz` and a normal
//! `tools/call` while it runs:
//!
//! - a megabyte-long `node` on a 201-node cluster is refused before any work;
//! - bodies that stall just before their end hold no more than the body budget (RSS
//!   read from /proc), get 503 beyond one client's share, and are cut off when they
//!   fall behind the minimum rate;
//! - connections that send nothing, half an HTTP/2 preface, or a preface and then
//!   silence are closed; beyond the connection cap a connection gets 503 (and a
//!   liveness probe still gets 200);
//! - long-lived streams are capped in total and per session;
//! - a flood of `initialize` from one client churns only that client's sessions, and
//!   pings keep a session alive only up to its absolute lifetime;
//! - batches are capped, and refused with -32600 in 2026-07-28;
//! - a foreign `Host`, or a second `Origin` that is not allowed, is refused; a body at
//!   the gateway's limit still fits the node server's.
//! - a request lost on a backend connection that closes just as it is reused is sent
//!   again when that is safe (tools/list), never when it may have effects (tools/call);
//! - the node server bounds stalled bodies and `initialize` floods the same way.
//!
//! The attackers bind their own loopback source address, so per-client limits see
//! them as one client and the legitimate client (127.0.0.1) as another.

mod support;

use mcp_protocol::client::ClientMode;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use support::mcp::{call, client, is_error, text};
use support::procs::{self, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DEADLINE: Duration = Duration::from_secs(30);
const MODERN: &str = "2026-07-28";

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 77, net, host))
}

/// One node server (node-1 on 127.77.net.2) behind a gateway on 127.77.net.1 with
/// static nodes: node-1 plus `extra` names that point at unused addresses.
async fn gateway(net: u8, extra: usize, env: &[(&str, &str)]) -> (Proc, Proc) {
    let port = procs::common_free_port(&[ip(net, 2)]);
    let backend = procs::spawn_backend("node-1", ip(net, 2), port).await;
    let mut nodes = vec![format!("node-1={}", ip(net, 2))];
    nodes.extend((0..extra).map(|i| format!("worker-{i}={}", ip(net, 200))));
    let mut vars: Vec<(&str, String)> = vec![
        ("STATIC_NODES", nodes.join(",")),
        ("BACKEND_PORT", port.to_string()),
    ];
    vars.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let gw = procs::spawn_gateway(ip(net, 1), &vars).await;
    (gw, backend)
}

/// A TCP connection to `to` from the source address `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// `/healthz` and a normal call both answer (each within a short deadline).
async fn still_serving(gw: &Proc) {
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{}/healthz", gw.addr))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("/healthz answers during the attack");
    assert_eq!(health.status(), 200);
    let c = client(&gw.url(), ClientMode::Modern);
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        call(&c, "node_info", json!({"node": "node-1"}), None),
    )
    .await
    .expect("a normal call answers during the attack");
    let result = out.result.expect("a result");
    assert!(!is_error(&result), "{result}");
}

/// Resident memory of a process, in bytes.
fn rss(p: &Proc) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// The status code of a raw HTTP/1.1 answer (0 when the connection closed first).
async fn read_status(stream: &mut TcpStream) -> u16 {
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    let read = async {
        while got < 12 {
            match stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    };
    let _ = tokio::time::timeout(DEADLINE, read).await;
    std::str::from_utf8(&buf[..got])
        .ok()
        .and_then(|t| t.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Whether the server closes `stream` (read returns end of file or an error) before
/// the deadline.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.is_ok()
}

fn modern_post(addr: SocketAddr, body: &str, extra: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: {MODERN}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn modern_call_body(node: &str) -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"node_info","arguments":{"node": node},
        "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,
                 "io.modelcontextprotocol/clientCapabilities":{}}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_node_name_is_refused_before_any_work() {
    let (gw, _b) = gateway(1, 200, &[]).await;
    // Legacy: a 2026-07-28 client would also mirror `node` into a header, which the
    // header size limit refuses before the body is read.
    let c = client(&gw.url(), ClientMode::Legacy);
    let long = "n".repeat(1 << 20);
    let attack = async {
        let (a, b) = tokio::join!(
            call(&c, "node_info", json!({"node": long}), None),
            call(&c, "node_info", json!({"node": long}), None),
        );
        [a, b]
    };
    let started = std::time::Instant::now();
    let (answers, ()) = tokio::join!(attack, still_serving(&gw));
    eprintln!(
        "figures: two 1 MiB `node` calls on 201 nodes answered, and /healthz + a call served, in {:?}",
        started.elapsed()
    );
    for out in answers {
        let result = out.result.expect("a tool result");
        assert!(is_error(&result));
        assert!(text(&result).contains("at most 253"), "{}", text(&result));
    }
    // A near miss on the big cluster still gets the closest names.
    let near = call(&c, "node_info", json!({"node": "worker-19x"}), None).await;
    let t = text(near.result.as_ref().unwrap()).to_string();
    assert!(t.contains("Closest") && t.contains("worker-19"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_hold_no_more_than_the_budget_and_are_cut_off() {
    let (gw, _b) = gateway(
        2,
        0,
        &[
            ("BODY_BUDGET_BYTES", "8388608"),
            ("BODY_MIN_BYTES_PER_SECOND", "1048576"),
        ],
    )
    .await;
    let before = rss(&gw);
    let attacker = ip(2, 50);
    let size = 1024 * 1024;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {size}\r\n\r\n",
        gw.addr
    );
    let mut attacks = Vec::new();
    for _ in 0..40 {
        let mut s = connect_from(attacker, gw.addr).await;
        s.write_all(head.as_bytes()).await.unwrap();
        // All but the last byte: the request never completes.
        let _ = s.write_all(&vec![b' '; size - 1]).await;
        attacks.push(s);
    }
    still_serving(&gw).await;
    let grown = rss(&gw).saturating_sub(before);
    // The budget is 8 MiB, of which one client may hold a quarter or one largest body
    // (4 MiB): the rest of the attack was refused, not buffered.
    assert!(
        grown < 32 * 1024 * 1024,
        "the gateway grew by {grown} bytes during the attack"
    );
    let mut statuses = Vec::new();
    for s in &mut attacks {
        statuses.push(read_status(s).await);
    }
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    let slow = statuses.iter().filter(|&&s| s == 408).count();
    eprintln!(
        "figures: 40 stalled 1 MiB bodies: gateway RSS +{} KiB, {busy} refused 503, {slow} cut off 408",
        grown / 1024
    );
    assert!(busy >= 30, "503s: {busy} of {statuses:?}");
    assert!(slow >= 1, "the held bodies are cut off: {statuses:?}");
    assert_eq!(busy + slow, attacks.len(), "{statuses:?}");
    still_serving(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_the_cap_answers_503() {
    // The idle timeout must outlast the set-up below (20 connections and a probe),
    // or the bare preface is closed before the cap is reached; on a loaded machine
    // 2 s was not enough. It stays below the 10 s first-bytes deadline.
    let (gw, _b) = gateway(
        3,
        0,
        &[("MAX_CONNECTIONS", "20"), ("IDLE_TIMEOUT_SECONDS", "6")],
    )
    .await;
    let attacker = ip(3, 50);
    let mut silent = Vec::new();
    for _ in 0..17 {
        silent.push(connect_from(attacker, gw.addr).await);
    }
    let mut partial = connect_from(attacker, gw.addr).await;
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut preface_only = connect_from(attacker, gw.addr).await;
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut idle_h1 = connect_from(attacker, gw.addr).await;
    idle_h1
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_status(&mut idle_h1).await, 200);
    // 20 connections open: the next one is refused with 503, a probe still gets 200.
    let mut over = connect_from(attacker, gw.addr).await;
    over.write_all(modern_post(gw.addr, &modern_call_body("node-1"), "").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    let _ = tokio::time::timeout(DEADLINE, over.read_to_string(&mut text)).await;
    assert!(
        text.starts_with("HTTP/1.1 503") && text.contains("Retry-After: 1"),
        "{text}"
    );
    let mut probe = connect_from(attacker, gw.addr).await;
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_status(&mut probe).await, 200);
    // Every one of them is closed by the gateway: silence and half a preface at the
    // first-bytes deadline, the bare preface and the idle keep-alive when idle.
    for s in silent
        .iter_mut()
        .chain([&mut partial, &mut preface_only, &mut idle_h1])
    {
        assert!(closed_by_server(s).await, "a silent connection stayed open");
    }
    eprintln!("figures: 20 silent/partial/idle connections all closed by the gateway");
    still_serving(&gw).await;
}

/// Opens a 2026-07-28 `subscriptions/listen` stream; returns the response.
async fn listen(http: &reqwest::Client, gw: &Proc, id: u32) -> reqwest::Response {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"subscriptions/listen","params":{
        "notifications":{"toolsListChanged":true},
        "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,
                 "io.modelcontextprotocol/clientCapabilities":{}}}});
    http.post(gw.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A legacy session id.
async fn initialize(http: &reqwest::Client, gw: &Proc) -> String {
    let body = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-03-26","capabilities":{},
        "clientInfo":{"name":"abuse","version":"0"}}});
    let r = http
        .post(gw.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["mcp-session-id"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_in_total_and_per_session() {
    let (gw, _b) = gateway(4, 0, &[("MAX_STREAMS", "10")]).await;
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for id in 0..10 {
        let r = listen(&http, &gw, id).await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = listen(&http, &gw, 99).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("busy"));
    still_serving(&gw).await;
    // Closing streams frees their slots.
    open.clear();
    procs::eventually("a stream slot is free again", DEADLINE, || async {
        listen(&http, &gw, 100).await.status() == 200
    })
    .await;
    // Per session: 4 GET streams, the fifth is 429.
    let sid = initialize(&http, &gw).await;
    let get = || {
        http.get(gw.url())
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .send()
    };
    let mut gets = Vec::new();
    for _ in 0..4 {
        let r = get().await.unwrap();
        assert_eq!(r.status(), 200);
        gets.push(r);
    }
    assert_eq!(get().await.unwrap().status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initialize_flood_only_churns_the_flooders_sessions() {
    let (gw, _b) = gateway(
        5,
        0,
        &[
            ("MAX_SESSIONS", "50"),
            ("MAX_SESSIONS_PER_CLIENT", "20"),
            ("SESSION_MAX_LIFETIME_SECONDS", "3"),
        ],
    )
    .await;
    let victim_http = reqwest::Client::new();
    let victim = initialize(&victim_http, &gw).await;
    let flooder = reqwest::Client::builder()
        .local_address(ip(5, 50))
        .build()
        .unwrap();
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(initialize(&flooder, &gw).await);
    }
    let ping = |http: &reqwest::Client, sid: &str| {
        http.post(gw.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", sid)
            .body(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
            .send()
    };
    // The victim's session survived; a new legitimate client gets one; the flooder
    // holds only its last 20 in the gateway's cache (ids are sealed, so its older ones
    // cost no memory and are rebuilt from the id when used).
    assert_eq!(ping(&victim_http, &victim).await.unwrap().status(), 200);
    let legit = client(&gw.url(), ClientMode::Legacy);
    let out = call(&legit, "node_info", json!({"node": "node-1"}), None).await;
    assert!(!is_error(&out.result.unwrap()));
    assert_eq!(ping(&flooder, &flood[299]).await.unwrap().status(), 200);
    assert_eq!(ping(&flooder, &flood[0]).await.unwrap().status(), 200);
    let metrics = reqwest::get(format!("http://{}/metrics", gw.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).unwrap();
    let cached = scrape
        .samples
        .iter()
        .find(|s| s.metric == "mcp_gateway_sessions")
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .expect("the sessions gauge");
    assert!(
        cached <= 22.0,
        "20 of the flooder's, the victim's, the legit client's: {cached}"
    );
    // Pings keep a session alive only up to its lifetime.
    procs::eventually(
        "a pinged session reaches its lifetime",
        DEADLINE,
        || async { ping(&victim_http, &victim).await.unwrap().status() == 404 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_capped_and_refused_in_2026() {
    let (gw, _b) = gateway(6, 0, &[]).await;
    let http = reqwest::Client::new();
    let sid = initialize(&http, &gw).await;
    let batch = |n: usize| {
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"ping"}))
            .collect();
        http.post(gw.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &sid)
            .body(Value::Array(items).to_string())
            .send()
    };
    let ok = batch(32).await.unwrap();
    assert_eq!(ok.status(), 200);
    let answers: Vec<Value> = serde_json::from_slice(&ok.bytes().await.unwrap()).unwrap();
    assert_eq!(answers.len(), 32);
    let over = batch(33).await.unwrap();
    assert_eq!(over.status(), 400);
    let e: Value = serde_json::from_slice(&over.bytes().await.unwrap()).unwrap();
    assert_eq!(e["error"]["code"], -32600);
    let modern = http
        .post(gw.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .body(format!("[{}]", modern_call_body("node-1")))
        .send()
        .await
        .unwrap();
    assert_eq!(modern.status(), 400);
    let e: Value = serde_json::from_slice(&modern.bytes().await.unwrap()).unwrap();
    assert_eq!(e["error"]["code"], -32600, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_and_extra_origins_are_refused_and_big_bodies_fit_the_backend() {
    let (gw, _b) = gateway(7, 0, &[]).await;
    let raw = |extra: String, host: String| {
        let addr = gw.addr;
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = modern_post(addr, &modern_call_body("node-1"), &extra).replacen(
                &format!("Host: {addr}"),
                &format!("Host: {host}"),
                1,
            );
            s.write_all(req.as_bytes()).await.unwrap();
            read_status(&mut s).await
        }
    };
    let own = gw.addr.to_string();
    let mcp =
        "Mcp-Method: tools/call\r\nMcp-Name: node_info\r\nMcp-Param-Node: node-1\r\n".to_string();
    assert_eq!(raw(mcp.clone(), own.clone()).await, 200);
    assert_eq!(
        raw(mcp.clone(), format!("localhost:{}", gw.addr.port())).await,
        200
    );
    // The gateway is bound to loopback: only loopback names.
    assert_eq!(raw(mcp.clone(), "evil.example".into()).await, 403);
    assert_eq!(raw(mcp.clone(), "10.1.2.3".into()).await, 403);
    let one = format!("{mcp}Origin: http://localhost:3000\r\n");
    assert_eq!(raw(one, own.clone()).await, 200);
    let two = format!("{mcp}Origin: http://localhost:3000\r\nOrigin: https://evil.example\r\n");
    assert_eq!(raw(two, own.clone()).await, 403);
    // A request at the gateway's 4 MiB limit (padded `_meta`) still fits the node
    // server's limit once the gateway has re-wrapped it.
    let mut body: Value = serde_json::from_str(&modern_call_body("node-1")).unwrap();
    let overhead = body.to_string().len() + r#","pad":"""#.len();
    body["params"]["_meta"]["pad"] = json!("x".repeat(4 * 1024 * 1024 - overhead));
    let body = body.to_string();
    assert_eq!(body.len(), 4 * 1024 * 1024);
    let r = reqwest::Client::new()
        .post(gw.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "node_info")
        .header("mcp-param-node", "node-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("node-1") && !text.contains("\"isError\":true"),
        "{}",
        &text[..text.len().min(500)]
    );
}

#[test]
fn pooled_backend_connections_are_dropped_before_the_server_drops_them() {
    assert!(
        mcp_protocol::client::POOL_IDLE_TIMEOUT < mcp_protocol::serve::HEADER_READ_TIMEOUT,
        "the client must give up an idle connection before the server closes it"
    );
}

/// Stalled bodies of 1 MiB from one client address, `count` connections: returns the
/// connections (still open unless refused).
async fn stall_bodies(from: IpAddr, to: SocketAddr, count: usize) -> Vec<TcpStream> {
    let size = 1024 * 1024;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {size}\r\n\r\n"
    );
    let mut attacks = Vec::new();
    for _ in 0..count {
        let mut s = connect_from(from, to).await;
        s.write_all(head.as_bytes()).await.unwrap();
        let _ = s.write_all(&vec![b' '; size - 1]).await;
        attacks.push(s);
    }
    attacks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_server_bounds_stalled_bodies_and_initialize_floods() {
    let port = procs::common_free_port(&[ip(8, 2)]);
    let backend = procs::spawn_backend("node-1", ip(8, 2), port).await;
    let before = rss(&backend);
    let mut attacks = stall_bodies(ip(8, 50), backend.addr, 40).await;
    let served = |url: String| async move {
        let c = client(&url, ClientMode::Modern);
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            call(&c, "node_info", json!({}), None),
        )
        .await
        .expect("the node server answers during the attack");
        assert!(!is_error(&out.result.unwrap()));
    };
    served(backend.url()).await;
    let grown = rss(&backend).saturating_sub(before);
    assert!(
        grown < 40 * 1024 * 1024,
        "the node server grew by {grown} bytes during the attack"
    );
    // Its budget is 16 MiB, one client's share 4 MiB and a bit (a refused body gives
    // its part back, so a few more than four get some way): most were refused.
    let mut statuses = Vec::new();
    for s in attacks.iter_mut() {
        statuses.push(read_status(s).await);
    }
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    eprintln!(
        "figures: node server, 40 stalled 1 MiB bodies: RSS +{} KiB, {busy} refused 503",
        grown / 1024
    );
    assert!(busy >= 30, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 503 || s == 408),
        "{statuses:?}"
    );
    drop(attacks);
    // An initialize flood from one address churns only that address's cached sessions.
    let flooder = reqwest::Client::builder()
        .local_address(ip(8, 51))
        .build()
        .unwrap();
    let proc_like = |addr: SocketAddr| format!("http://{addr}/mcp");
    let init = |http: &reqwest::Client| {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-03-26","capabilities":{},
            "clientInfo":{"name":"abuse","version":"0"}}});
        http.post(proc_like(backend.addr))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .send()
    };
    let mut first = None;
    for _ in 0..150 {
        let r = init(&flooder).await.unwrap();
        assert_eq!(r.status(), 200);
        first.get_or_insert(r.headers()["mcp-session-id"].to_str().unwrap().to_string());
    }
    let legit = client(&backend.url(), ClientMode::Legacy);
    let out = call(&legit, "node_info", json!({}), None).await;
    assert!(!is_error(&out.result.unwrap()));
    let r = flooder
        .post(backend.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", first.unwrap())
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    // Its cache entry went, but a sealed id stays valid: it is rebuilt from the id.
    assert_eq!(
        r.status(),
        200,
        "the flooder's oldest id is rebuilt, not ended"
    );
}

/// A TCP proxy in front of `upstream` that plays a server closing an idle keep-alive
/// connection at the worst moment: a request that arrives on a connection which has
/// already carried an answer is read and then the connection is closed, before any
/// byte of an answer.
async fn closing_proxy(listen: SocketAddr, upstream: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cbuf, mut sbuf) = (vec![0u8; 65536], vec![0u8; 65536]);
                let mut answered = false;
                loop {
                    tokio::select! {
                        n = client.read(&mut cbuf) => match n {
                            Ok(n) if n > 0 && !answered => {
                                if server.write_all(&cbuf[..n]).await.is_err() { return; }
                            }
                            _ => return,
                        },
                        n = server.read(&mut sbuf) => match n {
                            Ok(n) if n > 0 => {
                                answered = true;
                                if client.write_all(&sbuf[..n]).await.is_err() { return; }
                            }
                            _ => return,
                        },
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_lost_on_a_closing_connection_is_retried_only_when_safe() {
    let port = procs::common_free_port(&[ip(9, 2), ip(9, 3)]);
    let _backend = procs::spawn_backend("node-1", ip(9, 2), port).await;
    let proxy = closing_proxy(
        SocketAddr::new(ip(9, 3), port),
        SocketAddr::new(ip(9, 2), port),
    )
    .await;
    // The gateway's start-up (discover, then tools/list on the reused connection) only
    // succeeds because the lost tools/list is sent again on a fresh connection.
    let gw = procs::spawn_gateway(
        ip(9, 1),
        &[
            ("STATIC_NODES", format!("node-1={}", ip(9, 3))),
            ("BACKEND_PORT", port.to_string()),
        ],
    )
    .await;
    // A tools/call lost the same way is not sent twice (it may have side effects): the
    // caller gets a tool error instead.
    let c = client(&gw.url(), ClientMode::Modern);
    let out = call(&c, "node_info", json!({"node": "node-1"}), None).await;
    let result = out.result.expect("a tool result");
    assert!(is_error(&result), "{result}");
    assert!(text(&result).contains("unreachable"), "{}", text(&result));
    proxy.abort();
}
