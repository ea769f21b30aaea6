//! Two real gateway replicas sharing a SESSION_KEYS_FILE behind a real round-robin
//! balancer (nginx, loopback, stopped by PID), as `replicas: 2` behind a ClusterIP
//! Service gives:
//! - the official MCP Python SDK client, legacy and auto mode, runs whole sessions
//!   (list, calls, progress, DELETE) whose requests land on both replicas;
//! - tampered, foreign-key, wrong-purpose, expired and ended ids are refused with 404
//!   (a missing one with 400), and a DELETE is refused by the replica that ended the
//!   session for the rest of its lifetime (another replica still serves it: the
//!   documented trade-off);
//! - a key rotation loses no session, and ids of a key rotated out are refused;
//! - a replica killed mid-call: that call fails cleanly, every later call of the same
//!   session succeeds on the other replica;
//! - SIGTERM drains: a call in flight finishes before the replica exits.
//!
//! Addresses: 127.95.N.x, one N per test.

#[path = "support/interop.rs"]
mod interop;
mod support;

use base64::Engine;
use interop::SdkCall;
use mcp_protocol::seal::{Sealer, new_key_line};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use support::nginx::Nginx;
use support::procs::{self, Proc};

/// Upper bound of every wait on an event in these tests.
const DEADLINE: Duration = Duration::from_secs(60);
/// The key file is re-read this often (mcp_protocol::seal::RELOAD_INTERVAL), plus slack.
const RELOAD: Duration = Duration::from_secs(30);

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 95, net, host))
}

/// Two node servers, two gateways sharing one key file, nginx in front.
struct Replicas {
    _backends: Vec<Proc>,
    gateways: Vec<Proc>,
    nginx: Nginx,
    keys: PathBuf,
}

impl Replicas {
    async fn start(net: u8, extra: &[(&str, String)]) -> Replicas {
        let ips = [ip(net, 2), ip(net, 3)];
        let port = procs::common_free_port(&ips);
        let mut backends = Vec::new();
        for (i, a) in ips.iter().enumerate() {
            backends.push(procs::spawn_backend(&format!("node-{}", i + 1), *a, port).await);
        }
        let dir = std::env::temp_dir().join(format!(
            "k8s-aggregator-mcp-keys-{}-{net}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("session-keys");
        std::fs::write(&keys, format!("{}\n", new_key_line())).unwrap();
        let mut env = vec![
            (
                "STATIC_NODES",
                format!("node-1={},node-2={}", ips[0], ips[1]),
            ),
            ("BACKEND_PORT", port.to_string()),
            ("SESSION_KEYS_FILE", keys.display().to_string()),
        ];
        env.extend(extra.iter().cloned());
        let mut gateways = Vec::new();
        for host in [10, 11] {
            gateways.push(procs::spawn_gateway(ip(net, host), &env).await);
        }
        let upstreams: Vec<SocketAddr> = gateways.iter().map(|g| g.addr).collect();
        let lb = SocketAddr::new(ip(net, 1), procs::common_free_port(&[ip(net, 1)]));
        let nginx = Nginx::start(lb, &upstreams).await;
        Replicas {
            _backends: backends,
            gateways,
            nginx,
            keys,
        }
    }
}

/// A legacy client on raw HTTP (our own client would re-initialise on 404 and hide it).
struct Raw {
    http: reqwest::Client,
}

impl Raw {
    fn new() -> Raw {
        Raw {
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .unwrap(),
        }
    }

    /// initialize + notifications/initialized; returns the session id.
    async fn initialize(&self, url: &str) -> String {
        let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25",
            "capabilities":{"elicitation":{}},
            "clientInfo":{"name":"replica-test","version":"1"}}});
        let r = self.post(url, None, &body).await.unwrap();
        assert_eq!(r.status(), 200);
        let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        let r = self.post(url, Some(&sid), &note).await.unwrap();
        assert_eq!(r.status(), 202);
        sid
    }

    async fn post(
        &self,
        url: &str,
        sid: Option<&str>,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(sid) = sid {
            req = req.header("mcp-session-id", sid);
        }
        req.body(body.to_string()).send().await
    }

    /// The status of a ping on `sid`.
    async fn ping(&self, url: &str, sid: &str) -> u16 {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
        self.post(url, Some(sid), &body)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A tools/call on `sid`: the HTTP status and the JSON-RPC answer (read from the
    /// JSON body or the last SSE event), or the transport error.
    async fn call(
        &self,
        url: &str,
        sid: &str,
        tool: &str,
        args: Value,
    ) -> Result<(u16, Value), String> {
        let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
            "params":{"name":tool,"arguments":args}});
        let r = self
            .post(url, Some(sid), &body)
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        let answer = serde_json::from_str(&text).ok().or_else(|| {
            text.lines()
                .rev()
                .filter_map(|l| l.strip_prefix("data:"))
                .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .filter(|v| v.get("id").is_some())
        });
        answer
            .map(|a| (status, a))
            .ok_or_else(|| format!("status {status}, no answer in {text:?}"))
    }

    async fn delete(&self, url: &str, sid: &str) -> u16 {
        self.http
            .delete(url)
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Whether a call answer is a successful tool result naming `node`.
fn ran_on(answer: &Value, node: &str) -> bool {
    answer["result"]["isError"] != json!(true)
        && answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(node))
}

/// The official SDK client, off the async runtime.
async fn sdk(url: String, mode: &'static str, calls: Vec<SdkCall>) -> Value {
    tokio::task::spawn_blocking(move || interop::sdk_client(&url, mode, &calls))
        .await
        .expect("sdk task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_sdk_sessions_run_across_two_replicas_behind_round_robin() {
    let r = Replicas::start(1, &[]).await;
    let calls = vec![
        SdkCall::new("node_info", json!({"node": "node-1"})),
        SdkCall::new("node_info", json!({"node": "node-2"})),
        SdkCall::with_progress("cpu_usage", json!({"node": "node-1", "seconds": 1})),
        SdkCall::new("disk_usage", json!({"node": "node-2"})),
        SdkCall::new("node_info", json!({"node": "node-1"})),
    ];
    for mode in ["legacy", "auto"] {
        let doc = sdk(r.nginx.url(), mode, calls.clone()).await;
        let results: Vec<&Value> = doc["calls"].as_array().unwrap().iter().collect();
        assert_eq!(results.len(), calls.len(), "{doc}");
        assert!(
            results
                .iter()
                .all(|c| c["ok"] == json!(true) && c["result"]["isError"] != json!(true)),
            "{mode}: {doc}"
        );
        let progress = results
            .iter()
            .find(|c| c["name"] == "cpu_usage")
            .expect("the progress call");
        assert!(
            progress["progress_before_result"].as_u64() > Some(0),
            "{mode}: progress through the balancer: {progress}"
        );
    }
    // The legacy session's requests were served by both replicas, and its DELETE
    // (sent by the SDK on close) was answered.
    let log = r.nginx.requests();
    let mut by_session: std::collections::HashMap<&str, HashSet<&str>> = Default::default();
    for l in log.iter().filter(|l| l.session != "-") {
        by_session
            .entry(&l.session)
            .or_default()
            .insert(l.upstream.as_str());
    }
    assert!(
        by_session.values().any(|ups| ups.len() >= 2),
        "one session reached both replicas: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.method == "DELETE" && l.status == 204),
        "the SDK ended its session: {log:?}"
    );
    assert!(
        log.iter().all(|l| l.status != 404),
        "no request was refused for an unknown session: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_expired_and_ended_ids_are_refused() {
    let r = Replicas::start(2, &[]).await;
    let (a, b) = (r.gateways[0].url(), r.gateways[1].url());
    let raw = Raw::new();
    let sid = raw.initialize(&a).await;
    // Replica b never saw it: it serves it from the id alone.
    let (status, answer) = raw
        .call(&b, &sid, "node_info", json!({"node": "node-2"}))
        .await
        .unwrap();
    assert!(status == 200 && ran_on(&answer, "node-2"), "{answer}");
    // Altered: one character of the sealed part flipped.
    let mut bytes = sid.clone().into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(bytes).unwrap();
    // Made up, sealed with another key, sealed for another purpose.
    let keys = Sealer::from_file(&r.keys).unwrap();
    let payload = |expires: u64| {
        json!({"s": "0123456789abcdef0123456789abcdef", "v": "2025-11-25",
               "o": ip(2, 99).to_string(), "b": false, "t": 0, "e": expires,
               "c": {}, "i": {}})
        .to_string()
    };
    let far = 4_000_000_000_000u64;
    let foreign = Sealer::random().seal("mcp-session", payload(far).as_bytes());
    let other_purpose = keys.seal("request-state", payload(far).as_bytes());
    let expired = keys.seal("mcp-session", payload(1).as_bytes());
    let good_forgery_check = keys.seal("mcp-session", payload(far).as_bytes());
    let junk = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 64]);
    for (what, id) in [
        ("altered", altered.as_str()),
        ("foreign key", &foreign),
        ("other purpose", &other_purpose),
        ("expired", &expired),
        ("junk", &junk),
        ("not base64", "not a session!"),
    ] {
        for url in [&a, &b] {
            assert_eq!(raw.ping(url, id).await, 404, "{what} id at {url}");
        }
    }
    // The crafted payload is the real format: with the right key and a future expiry
    // it opens (so the expired one was refused for its expiry).
    assert_eq!(raw.ping(&a, &good_forgery_check).await, 200);
    // No id at all: 400.
    let no_id = raw
        .post(&a, None, &json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await
        .unwrap();
    assert_eq!(no_id.status(), 400);
    // DELETE on a: a refuses the id (POST, GET and DELETE) for the rest of its
    // lifetime; b, which was not told, still serves it until its expiry.
    assert_eq!(raw.delete(&a, &sid).await, 204);
    assert_eq!(raw.ping(&a, &sid).await, 404);
    assert_eq!(raw.delete(&a, &sid).await, 404);
    let get = raw
        .http
        .get(&a)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    assert_eq!(raw.ping(&b, &sid).await, 200, "the documented trade-off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_keeps_every_session_and_a_rotated_out_key_ends_its_ids() {
    let r = Replicas::start(3, &[]).await;
    let lb = r.nginx.url();
    let raw = Raw::new();
    let old_key = std::fs::read_to_string(&r.keys).unwrap();
    let before = raw.initialize(&lb).await;
    // Rotate: the new key seals, the old one still opens.
    let new_key = new_key_line();
    std::fs::write(&r.keys, format!("{new_key}\n{old_key}")).unwrap();
    let reloaded = |n: usize| {
        let logs: Vec<String> = r.gateways.iter().map(Proc::log_text).collect();
        async move {
            logs.iter()
                .all(|l| l.matches("sealing keys reloaded").count() >= n)
        }
    };
    procs::eventually("both replicas reload the keys", RELOAD, || reloaded(1)).await;
    for _ in 0..4 {
        assert_eq!(
            raw.ping(&lb, &before).await,
            200,
            "a session of the old key"
        );
    }
    let after = raw.initialize(&lb).await;
    let only_new = Sealer::from_text(&new_key).unwrap();
    assert!(
        only_new.open("mcp-session", &after).is_ok(),
        "new sessions are sealed with the new key"
    );
    let (status, answer) = raw
        .call(&lb, &after, "node_info", json!({"node": "node-1"}))
        .await
        .unwrap();
    assert!(status == 200 && ran_on(&answer, "node-1"), "{answer}");
    // The old key leaves the ring: its ids end everywhere; the new ones live on.
    std::fs::write(&r.keys, format!("{new_key}\n")).unwrap();
    procs::eventually("both replicas drop the old key", RELOAD, || reloaded(2)).await;
    for url in [r.gateways[0].url(), r.gateways[1].url()] {
        assert_eq!(raw.ping(&url, &before).await, 404);
        assert_eq!(raw.ping(&url, &after).await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_costs_only_its_calls_in_flight() {
    let mut r = Replicas::start(4, &[]).await;
    let lb = r.nginx.url();
    let raw = Raw::new();
    let sid = raw.initialize(&lb).await;
    let forwarded = |g: &Proc| g.log_text().matches("forwarding call").count();
    let before: Vec<usize> = r.gateways.iter().map(forwarded).collect();
    let slow = {
        let (raw, lb, sid) = (Raw::new(), lb.clone(), sid.clone());
        tokio::spawn(async move {
            raw.call(
                &lb,
                &sid,
                "cpu_usage",
                json!({"node": "node-1", "seconds": 10}),
            )
            .await
        })
    };
    // Which replica carries the call?
    let mut victim = None;
    let start = std::time::Instant::now();
    while victim.is_none() {
        victim = (0..2).find(|&i| forwarded(&r.gateways[i]) > before[i]);
        assert!(start.elapsed() < DEADLINE, "no replica forwarded the call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = victim.unwrap();
    let _ = r.gateways[victim].child.kill();
    let _ = r.gateways[victim].child.wait();
    // The call in flight fails cleanly: an HTTP error from the balancer, or a
    // transport error; never a hang or a wrong answer.
    let outcome = tokio::time::timeout(DEADLINE, slow)
        .await
        .expect("the call in flight ends")
        .unwrap();
    match &outcome {
        Err(_) => {}
        Ok((status, answer)) => assert!(
            *status >= 500 || answer.get("error").is_some(),
            "{status} {answer}"
        ),
    }
    // Every later call of the same session succeeds on the surviving replica.
    for node in ["node-1", "node-2", "node-1", "node-2"] {
        let (status, answer) = raw
            .call(&lb, &sid, "node_info", json!({"node": node}))
            .await
            .unwrap();
        assert!(status == 200 && ran_on(&answer, node), "{status} {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_finish() {
    let mut r = Replicas::start(5, &[]).await;
    let a = r.gateways[0].url();
    let raw = Raw::new();
    let sid = raw.initialize(&a).await;
    let before = r.gateways[0].log_text().matches("forwarding call").count();
    let slow = {
        let (raw, a, sid) = (Raw::new(), a.clone(), sid.clone());
        tokio::spawn(async move {
            raw.call(
                &a,
                &sid,
                "cpu_usage",
                json!({"node": "node-2", "seconds": 3}),
            )
            .await
        })
    };
    procs::eventually("the call is forwarded", DEADLINE, || {
        let n = r.gateways[0].log_text().matches("forwarding call").count();
        async move { n > before }
    })
    .await;
    let pid = r.gateways[0].child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, answer) = tokio::time::timeout(DEADLINE, slow)
        .await
        .expect("the call finishes")
        .unwrap()
        .expect("answered, not cut");
    assert!(
        status == 200 && answer["result"]["structuredContent"]["sampled_seconds"] == 3,
        "{status} {answer}"
    );
    let (exit, log) = procs::wait_exit(&mut r.gateways[0], DEADLINE).await;
    assert!(exit.success(), "{exit}:\n{log}");
    // The other replica serves the session on.
    assert_eq!(raw.ping(&r.gateways[1].url(), &sid).await, 200);
}
