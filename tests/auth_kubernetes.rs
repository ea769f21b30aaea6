//! Kubernetes authentication and the policy, end to end: the real gateway binary with
//! `AUTH_MODE=kubernetes` checks each caller's token with TokenReview against the fake
//! API server (which answers as kube-apiserver does), and enforces a POLICY_FILE.
//!
//! Proves: a valid token for the gateway's audience is accepted (and cached: one review
//! for repeated requests), an unknown token or one for another audience gets 401, an
//! API server that errors, forbids the review or is down fails closed with 503 and a
//! clear error; tools/list is filtered per caller in both eras; an allowed call runs; a
//! denied call is a tool error naming what is missing and never reaches a node server;
//! a policy file change takes effect without a restart and clients are told
//! (`notifications/tools/list_changed`; a broken file is ignored); `tools: read-only`
//! against a FastMCP backend; Kubernetes mode with STATIC_NODES; one
//! audit line per call; the official MCP Python SDK client with a bearer token sees the
//! same.

#[path = "support/interop.rs"]
mod interop;
mod support;

use mcp_protocol::client::{ClientMode, ClientOptions, McpClient};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::cluster::Cluster;
use support::fake_kube::{TokenReviewMode, TokenUser};
use support::mcp::{call, is_error, text};
use support::procs;

const DEADLINE: Duration = Duration::from_secs(20);
const AUDIENCE: &str = "k8s-aggregator-mcp";

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 42, net, host))
}

const POLICY: &str = r#"
default: deny
rules:
  - name: reader
    subjects: [{serviceAccount: agents/reader}]
    tools: ["node_info"]
    nodes: ["node-*"]
  - name: ops
    subjects: [{group: ops}]
    tools: ["*"]
"#;

/// A policy file in a fresh temporary directory.
fn policy_file(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "auth-kubernetes-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Two node servers behind a gateway in Kubernetes mode with `policy`, and the tokens
/// every test uses registered in the fake API server.
async fn secured(net: u8, policy: &std::path::Path, extra: &[(&str, String)]) -> Cluster {
    let mut env = vec![
        ("AUTH_MODE", "kubernetes".to_string()),
        ("POLICY_FILE", policy.display().to_string()),
        ("POLICY_RELOAD_SECONDS", "1".to_string()),
    ];
    env.extend(extra.iter().cloned());
    let c = Cluster::start(&[ip(net, 2), ip(net, 3)], ip(net, 1), &env).await;
    c.kube.add_token(
        "reader-token",
        TokenUser::service_account("agents", "reader", &[AUDIENCE]),
    );
    c.kube.add_token(
        "stranger-token",
        TokenUser::service_account("other", "stranger", &[AUDIENCE]),
    );
    c.kube.add_token(
        "api-audience-token",
        TokenUser::service_account(
            "agents",
            "reader",
            &["https://kubernetes.default.svc.cluster.local"],
        ),
    );
    c.kube.add_token(
        "ops-token",
        TokenUser {
            username: "olivia".into(),
            uid: "u-olivia".into(),
            groups: vec!["ops".into(), "system:authenticated".into()],
            audiences: vec![AUDIENCE.into()],
        },
    );
    c
}

/// Our protocol crate's client sending `Authorization: Bearer <token>`.
fn client_with_token(url: &str, mode: ClientMode, token: &str) -> McpClient {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .build()
        .unwrap();
    let mut opts = ClientOptions::new("auth-tests", "0");
    opts.mode = mode;
    opts.request_timeout = Duration::from_secs(30);
    McpClient::new(http, url, opts)
}

/// A raw 2026-07-28 tools/list POST with an optional token: (status, headers, body).
async fn raw_list(url: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":{}}}})
            .to_string(),
        );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("gateway answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn tool_names(tools: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = tools
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_tokenreview_accepts_valid_tokens_and_refuses_invalid_or_wrong_audience() {
    let policy = policy_file("tr", POLICY);
    let c = secured(1, &policy, &[]).await;
    let url = c.url();

    let (status, headers, body) = raw_list(&url, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
        "{headers:?}"
    );

    let before = c.kube.token_reviews();
    let (status, headers, body) = raw_list(&url, Some("not-a-known-token")).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""),
        "{headers:?}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Kubernetes refused the token"),
        "{body}"
    );
    // Refusals are not cached: the same bad token is reviewed again.
    let _ = raw_list(&url, Some("not-a-known-token")).await;
    assert_eq!(c.kube.token_reviews(), before + 2);

    // A real ServiceAccount token, but minted for the API server's audience.
    let (status, _, body) = raw_list(&url, Some("api-audience-token")).await;
    assert_eq!(status, 401, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("invalid for the target audiences") && msg.contains(AUDIENCE),
        "{msg}"
    );

    // Valid: accepted, and the answer is cached (one review for two requests).
    let before = c.kube.token_reviews();
    let (status, _, body) = raw_list(&url, Some("reader-token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        tool_names(body["result"]["tools"].as_array().unwrap()),
        ["node_info"]
    );
    let (status, _, _) = raw_list(&url, Some("reader-token")).await;
    assert_eq!(status, 200);
    assert_eq!(
        c.kube.token_reviews(),
        before + 1,
        "positive answers are cached"
    );

    // What the gateway asked of the API server: create tokenreviews, nothing else new.
    for r in c.kube.requests() {
        if r.resource() == Some("tokenreviews") {
            assert_eq!(r.verb(), "create", "{r:?}");
            assert_eq!(r.query, "", "{r:?}");
        } else {
            assert!(matches!(r.verb().as_str(), "list" | "watch"), "{r:?}");
        }
    }
    let log = c.gateway.log_text();
    for secret in ["reader-token", "not-a-known-token", "api-audience-token"] {
        assert!(!log.contains(secret), "a token reached the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_api_server_trouble_fails_closed_with_503() {
    let policy = policy_file("down", POLICY);
    let c = secured(2, &policy, &[("TOKEN_REVIEW_TIMEOUT_SECONDS", "5".into())]).await;
    let url = c.url();

    c.kube.set_token_review(TokenReviewMode::Error);
    let (status, headers, body) = raw_list(&url, Some("reader-token")).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.get("www-authenticate").is_none());
    let msg = body["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("cannot check the token now"), "{msg}");
    assert!(msg.contains("500"), "{msg}");

    c.kube.set_token_review(TokenReviewMode::Forbidden);
    let (status, _, body) = raw_list(&url, Some("reader-token")).await;
    assert_eq!(status, 503, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("system:auth-delegator"), "{msg}");

    c.kube.set_token_review(TokenReviewMode::Normal);
    c.kube.set_down(true);
    let (status, _, body) = raw_list(&url, Some("ops-token")).await;
    assert_eq!(status, 503, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("unreachable"), "{msg}");

    // Back up: the same token works (it was never cached as refused).
    c.kube.set_down(false);
    let (status, _, body) = raw_list(&url, Some("ops-token")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!c.gateway.log_text().contains("ops-token"));
}

/// Counts connections to an address where a node server would be: proof that a refused
/// call never reached the node.
struct Tripwire {
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tripwire {
    async fn start(addr: SocketAddr) -> Tripwire {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                drop(s);
            }
        });
        Tripwire { hits, task }
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn audit_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_filters_tools_list_per_caller_and_refuses_calls_outside_it() {
    let policy = policy_file("filter", POLICY);
    let c = secured(3, &policy, &[("LOG_FORMAT", "json".into())]).await;
    let url = c.url();
    // "zz-tripwire": a node no rule allows, whose "server" only counts connections.
    let tripwire = Tripwire::start(SocketAddr::new(ip(3, 9), c.port)).await;
    c.kube.set_node("zz-tripwire", ip(3, 9), true);
    procs::eventually("the gateway knows zz-tripwire", DEADLINE, || async {
        let ops = client_with_token(&url, ClientMode::Modern, "ops-token");
        let out = call(&ops, "node_info", json!({"node": "unknown-node"}), None).await;
        out.result.is_ok_and(|r| text(&r).contains("zz-tripwire"))
    })
    .await;
    // The gateway asks every new pod for its tools (in the background, not a call):
    // count only what comes after that attempt failed.
    let readyz = format!("{}/readyz", url.trim_end_matches("/mcp"));
    procs::eventually("the tripwire pod's tools/list failed", DEADLINE, || async {
        let body = reqwest::get(&readyz).await.unwrap().bytes().await.unwrap();
        let report: Value = serde_json::from_slice(&body).unwrap();
        report["catalog"]["notLearned"]
            .as_array()
            .is_some_and(|n| n.iter().any(|e| e["node"] == "zz-tripwire"))
    })
    .await;
    let learned_hits = tripwire.hits.load(Ordering::SeqCst);

    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let reader = client_with_token(&url, mode, "reader-token");
        let tools = reader.list_tools().await.unwrap().unwrap();
        assert_eq!(tool_names(&tools), ["node_info"], "{mode:?}");
        let ops = client_with_token(&url, mode, "ops-token");
        let all = ops.list_tools().await.unwrap().unwrap();
        assert!(all.len() > 1, "{mode:?}: {all:?}");
        assert!(tool_names(&all).contains(&"list_processes".to_string()));
        let stranger = client_with_token(&url, mode, "stranger-token");
        assert!(stranger.list_tools().await.unwrap().unwrap().is_empty());

        // Allowed.
        let out = call(&reader, "node_info", json!({"node": "node-2"}), None).await;
        let r = out.result.expect("result");
        assert!(!is_error(&r), "{r}");
        assert_eq!(r["structuredContent"]["node_name"], "node-2");
        // Denied tool.
        let out = call(&reader, "list_processes", json!({"node": "node-1"}), None).await;
        let r = out.result.expect("a tool error, not a JSON-RPC error");
        assert!(is_error(&r), "{r}");
        assert!(
            text(&r).contains("may not call tool \"list_processes\""),
            "{r}"
        );
        assert!(
            text(&r).contains("system:serviceaccount:agents:reader"),
            "{r}"
        );
        // Denied node (and it never reached the node).
        let out = call(&reader, "node_info", json!({"node": "zz-tripwire"}), None).await;
        let r = out.result.expect("result");
        assert!(is_error(&r), "{r}");
        assert!(
            text(&r).contains("only on nodes matching node-*")
                && text(&r).contains("\"zz-tripwire\""),
            "{r}"
        );
        // Nobody named.
        let out = call(&stranger, "node_info", json!({"node": "node-1"}), None).await;
        let r = out.result.expect("result");
        assert!(is_error(&r) && text(&r).contains("no rule names it"), "{r}");
    }
    assert_eq!(
        tripwire.hits.load(Ordering::SeqCst),
        learned_hits,
        "a refused call reached the node"
    );
    // The control: a caller allowed on every node does reach it.
    let ops = client_with_token(&url, ClientMode::Modern, "ops-token");
    let out = call(&ops, "node_info", json!({"node": "zz-tripwire"}), None).await;
    assert!(out.result.is_ok_and(|r| is_error(&r)));
    assert!(tripwire.hits.load(Ordering::SeqCst) >= 1);

    // One audit line per call, without argument values.
    let log = c.gateway.log_text();
    let lines = audit_lines(&log);
    let denied: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 6, "{lines:#?}");
    let d = denied
        .iter()
        .find(|l| l["tool"] == "list_processes")
        .unwrap();
    assert_eq!(d["subject"], "system:serviceaccount:agents:reader");
    assert_eq!(d["node"], "node-1");
    assert!(
        d["duration_ms"].is_number() && d["request_id"].is_string(),
        "{d}"
    );
    assert!(d.get("arguments").is_none(), "{d}");
    assert!(
        lines
            .iter()
            .any(|l| l["outcome"] == "ok" && l["subject"] == "system:serviceaccount:agents:reader")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_change_takes_effect_without_restart() {
    let policy = policy_file("reload", POLICY);
    let c = secured(
        4,
        &policy,
        &[
            ("AUDIT_ARGUMENTS", "true".into()),
            ("LOG_FORMAT", "json".into()),
        ],
    )
    .await;
    let url = c.url();
    let reader = client_with_token(&url, ClientMode::Modern, "reader-token");
    assert_eq!(
        tool_names(&reader.list_tools().await.unwrap().unwrap()),
        ["node_info"]
    );
    // A legacy session of the reader with its GET stream open, to hear list_changed.
    let http = reqwest::Client::new();
    let init = http
        .post(&url)
        .bearer_auth("reader-token")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)
        .send()
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut stream = http
        .get(&url)
        .bearer_auth("reader-token")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // A ConfigMap update: a new file swapped in (rename, as the kubelet's symlink swap).
    let tmp = policy.with_extension("new");
    std::fs::write(
        &tmp,
        "default: deny\nrules:\n  - subjects: [{serviceAccount: agents/*}]\n    tools: [\"*\"]\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    let mut seen = String::new();
    let told = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("notifications/tools/list_changed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        told,
        Ok(true),
        "no list_changed after the policy changed: {seen:?}"
    );
    procs::eventually("the new policy shows every tool", DEADLINE, || async {
        reader
            .list_tools()
            .await
            .ok()
            .and_then(Result::ok)
            .is_some_and(|t| t.len() > 1)
    })
    .await;
    let out = call(
        &reader,
        "list_processes",
        json!({"node": "node-1", "limit": 1}),
        None,
    )
    .await;
    assert!(!is_error(&out.result.unwrap()));

    // A broken file keeps the previous policy (and says so in the log).
    std::fs::write(&policy, "default: [oops\n").unwrap();
    procs::eventually("the broken policy is reported", DEADLINE, || {
        let log = c.gateway.log_text();
        async move { log.contains("not a valid policy") }
    })
    .await;
    assert!(reader.list_tools().await.unwrap().unwrap().len() > 1);

    // AUDIT_ARGUMENTS=true: argument values (without `node`) in the audit line.
    let lines = audit_lines(&c.gateway.log_text());
    let l = lines
        .iter()
        .find(|l| l["tool"] == "list_processes")
        .expect("audit line");
    assert_eq!(l["arguments"], r#"{"limit":1}"#, "{l}");
}

/// Runs tests/interop/sdk_policy_client.py (the official MCP Python SDK).
async fn sdk_bearer(url: &str, token: &str, mode: &str, calls: &[(&str, Value)]) -> Value {
    let t = interop::tools();
    let mut cmd = Command::new(&t.python);
    cmd.arg(t.root.join("tests/interop/sdk_policy_client.py"))
        .args(["--url", url, "--mode", mode, "--timeout", "60"]);
    if !token.is_empty() {
        cmd.args(["--token", token]);
    }
    for (name, args) in calls {
        cmd.arg("--call").arg(name).arg(args.to_string());
    }
    let out =
        tokio::task::spawn_blocking(move || interop::run_bounded(cmd, interop::SDK_CLIENT_TIMEOUT))
            .await
            .unwrap();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON document ({e}):\n{}", out.describe()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_with_a_kubernetes_token_sees_its_tools_and_is_refused_the_rest() {
    let policy = policy_file("sdk", POLICY);
    let c = secured(5, &policy, &[]).await;
    let url = c.url();
    for mode in ["legacy", "auto"] {
        let doc = sdk_bearer(
            &url,
            "reader-token",
            mode,
            &[
                ("node_info", json!({"node": "node-1"})),
                ("list_processes", json!({"node": "node-1"})),
            ],
        )
        .await;
        assert_eq!(doc["ok"], true, "{mode}: {doc:#}");
        assert_eq!(doc["tools"], json!(["node_info"]), "{mode}: {doc:#}");
        let calls = doc["calls"].as_array().unwrap();
        assert_eq!(calls[0]["is_error"], false, "{mode}: {doc:#}");
        assert!(calls[0]["text"].as_str().unwrap().contains("node-1"));
        assert_eq!(calls[1]["is_error"], true, "{mode}: {doc:#}");
        assert!(
            calls[1]["text"]
                .as_str()
                .unwrap()
                .contains("may not call tool \"list_processes\""),
            "{mode}: {doc:#}"
        );
    }
    let doc = sdk_bearer(&url, "", "auto", &[]).await;
    assert_eq!(doc["ok"], false, "{doc:#}");
    assert!(doc.get("tools").is_none(), "{doc:#}");
    let doc = sdk_bearer(&url, "ops-token", "auto", &[]).await;
    assert!(doc["tools"].as_array().unwrap().len() > 1, "{doc:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_with_static_nodes_infers_its_own_client() {
    // No discovery client (STATIC_NODES): the gateway still finds the API server
    // through KUBECONFIG for TokenReview.
    let kube = support::fake_kube::FakeKube::start().await;
    kube.add_token(
        "reader-token",
        TokenUser::service_account("agents", "reader", &[AUDIENCE]),
    );
    let port = procs::common_free_port(&[ip(6, 2)]);
    let _backend = procs::spawn_backend("static-1", ip(6, 2), port).await;
    let gateway = procs::spawn_gateway(
        ip(6, 1),
        &[
            ("AUTH_MODE", "kubernetes".into()),
            ("STATIC_NODES", format!("static-1={}", ip(6, 2))),
            ("BACKEND_PORT", port.to_string()),
            ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ],
    )
    .await;
    let (status, _, _) = raw_list(&gateway.url(), None).await;
    assert_eq!(status, 401);
    let (status, _, body) = raw_list(&gateway.url(), Some("reader-token")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body["result"]["tools"].as_array().unwrap().is_empty());
    assert_eq!(kube.token_reviews(), 1);
    // scripts/smoke.sh (what `just smoke` runs) with and without --token-file.
    let token = policy_file("smoke-token", "reader-token\n");
    let url = gateway.url();
    let smoke = move |token: Option<PathBuf>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("bash");
            cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smoke.sh"))
                .arg(&url);
            if let Some(t) = token {
                cmd.arg("--token-file").arg(t);
            }
            cmd.output().unwrap()
        })
    };
    let out = smoke(Some(token)).await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("smoke: PASS"), "{text}");
    let out = smoke(None).await.unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("HTTP 401") && text.contains("--token-file"),
        "{text}"
    );
    assert!(
        kube.requests()
            .iter()
            .all(|r| r.resource() == Some("tokenreviews")),
        "no discovery with STATIC_NODES"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_read_only_builtin_allows_exactly_the_read_only_tools_of_a_fastmcp_backend() {
    // A backend nobody here wrote: FastMCP's plan_inspection says readOnlyHint: true,
    // echo_node and slow_count say nothing.
    let kube = support::fake_kube::FakeKube::start().await;
    kube.add_token(
        "reader-token",
        TokenUser::service_account("agents", "reader", &[AUDIENCE]),
    );
    let port = procs::common_free_port(&[ip(7, 2)]);
    let opts = interop::FastMcpOptions {
        node_name: Some("fast-1".into()),
        ..Default::default()
    };
    let host = ip(7, 2).to_string();
    let _backend =
        tokio::task::spawn_blocking(move || interop::spawn_fastmcp_backend_with(&host, port, opts))
            .await
            .unwrap();
    kube.set_node("fast-1", ip(7, 2), true);
    let policy = policy_file(
        "readonly",
        "default: deny\nrules:\n  - subjects: [{serviceAccount: agents/reader}]\n    tools: read-only\n",
    );
    let gateway = procs::spawn_gateway(
        ip(7, 1),
        &[
            ("AUTH_MODE", "kubernetes".into()),
            ("POLICY_FILE", policy.display().to_string()),
            ("BACKEND_PORT", port.to_string()),
            ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ],
    )
    .await;
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let reader = client_with_token(&gateway.url(), mode, "reader-token");
        let tools = reader.list_tools().await.unwrap().unwrap();
        assert_eq!(
            tool_names(&support::mcp::backend_tools(&tools)),
            ["plan_inspection"],
            "{mode:?}"
        );
        // Of the gateway's own tools only the read-only node map is in the set.
        let names = tool_names(&tools);
        assert!(names.iter().any(|n| n == "list_nodes"), "{names:?}");
        assert!(!names.iter().any(|n| n == "fan_out"), "{names:?}");
        let out = call(
            &reader,
            "plan_inspection",
            json!({"node": "fast-1", "checks": [{"name": "disk", "severity": "high"}], "mode": "deep"}),
            None,
        )
        .await;
        let r = out.result.expect("result");
        assert!(!is_error(&r), "{mode:?}: {r}");
        let out = call(&reader, "echo_node", json!({"node": "fast-1"}), None).await;
        let r = out.result.expect("result");
        assert!(is_error(&r), "{mode:?}: {r}");
        assert!(text(&r).contains("not read-only"), "{mode:?}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_reaches_only_the_nodes_and_tools_the_policy_allows_with_an_audit_line_per_node()
{
    let policy = policy_file(
        "fanout",
        "default: deny\nrules:\n  - subjects: [{serviceAccount: agents/reader}]\n    tools: [node_info, fan_out]\n    nodes: [node-1]\n",
    );
    let c = secured(8, &policy, &[]).await;
    let reader = client_with_token(&c.url(), ClientMode::Modern, "reader-token");
    // A selector leaves out the nodes the caller may not call, and says so.
    let out = call(
        &reader,
        "fan_out",
        json!({"tool": "node_info", "target": "all"}),
        None,
    )
    .await;
    let r = out.result.unwrap();
    let results = r["structuredContent"]["results"].as_object().unwrap();
    assert_eq!(results.keys().collect::<Vec<_>>(), ["node-1"], "{r}");
    assert_eq!(results["node-1"]["result"]["node_name"], "node-1");
    assert!(text(&r).contains("1 matching nodes were left out"), "{r}");
    // A list naming a forbidden node: that entry is the policy's refusal.
    let out = call(
        &reader,
        "fan_out",
        json!({"tool": "node_info", "target": {"nodes": ["node-1", "node-2"]}}),
        None,
    )
    .await;
    let r = out.result.unwrap();
    let results = &r["structuredContent"]["results"];
    assert_eq!(results["node-1"]["status"], "ok", "{r}");
    assert_eq!(results["node-2"]["status"], "failed", "{r}");
    assert!(results["node-2"].get("result").is_none());
    // A tool outside the policy reaches no node at all.
    let out = call(
        &reader,
        "fan_out",
        json!({"tool": "disk_usage", "target": {"nodes": ["node-1"]}}),
        None,
    )
    .await;
    let r = out.result.unwrap();
    assert!(is_error(&r), "{r}");
    assert_eq!(
        r["structuredContent"]["results"]["node-1"]["status"],
        "failed"
    );
    // A caller the policy does not give the fan-out tool cannot call it.
    let policy_no_fan = policy_file(
        "nofanout",
        "default: deny\nrules:\n  - subjects: [{serviceAccount: agents/reader}]\n    tools: [node_info]\n",
    );
    std::fs::copy(&policy_no_fan, &policy).unwrap();
    procs::eventually("the fan-out tool is refused", DEADLINE, || async {
        let out = call(
            &reader,
            "fan_out",
            json!({"tool": "node_info", "target": {"nodes": ["node-1"]}}),
            None,
        )
        .await;
        let r = out.result.unwrap();
        is_error(&r) && r.get("structuredContent").is_none()
    })
    .await;
    // Every node call left its own audit line, attributed to the caller.
    procs::eventually("audit lines per node call", DEADLINE, || async {
        let log = strip_ansi(&c.gateway.log_text());
        let per_node = |node: &str, tool: &str, outcome: &str| {
            log.lines().any(|l| {
                l.contains("audit: tools/call")
                    && l.contains("subject=system:serviceaccount:agents:reader")
                    && l.contains(&format!(
                        "tool={tool} node=\"{node}\" outcome=\"{outcome}\""
                    ))
            })
        };
        per_node("node-1", "node_info", "ok")
            && per_node("node-2", "node_info", "denied")
            && per_node("node-1", "disk_usage", "denied")
    })
    .await;
}

/// The log without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_resources_are_served_only_to_callers_the_policy_does_not_limit() {
    let policy = policy_file("content", POLICY);
    let c = secured(11, &policy, &[]).await;
    let url = c.url();
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let ops = client_with_token(&url, mode, "ops-token");
        let listed = ops
            .request("prompts/list", serde_json::Map::new(), Default::default())
            .await
            .unwrap()
            .expect("ops may list prompts");
        assert!(listed.get().contains("triage_node"), "{mode:?}: {listed}");
        let reader = client_with_token(&url, mode, "reader-token");
        let mut params = serde_json::Map::new();
        params.insert(
            "uri".into(),
            "k8s-node://node-1/node%3A%2F%2Fos-release".into(),
        );
        let refused = reader
            .request("resources/read", params, Default::default())
            .await
            .unwrap()
            .expect_err("the reader's policy names one tool only");
        assert!(
            refused.message.contains("Not allowed"),
            "{mode:?}: {refused:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_map_lists_only_the_nodes_the_caller_may_call_and_pages_tools_list() {
    let policy = policy_file(
        "nodemap",
        "default: deny\nrules:\n  - subjects: [{serviceAccount: agents/reader}]\n    tools: [node_info, list_nodes]\n    nodes: [node-2]\n  - subjects: [{user: olivia}]\n    tools: [\"*\"]\n",
    );
    let c = secured(9, &policy, &[("CATALOG_PAGE_SIZE", "2".into())]).await;
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let reader = client_with_token(&c.url(), mode, "reader-token");
        let out = call(&reader, "list_nodes", json!({}), None).await;
        let r = out.result.unwrap();
        let s = &r["structuredContent"];
        assert_eq!(s["total"], 1, "{mode:?}: {r}");
        assert_eq!(s["nodes"][0]["name"], "node-2", "{r}");
        assert!(!text(&r).contains("node-1"), "{r}");
        // Someone the policy gives everything sees every node, and the tools in
        // pages of two that the client follows to the end.
        let ops = client_with_token(&c.url(), mode, "ops-token");
        let out = call(&ops, "list_nodes", json!({}), None).await;
        assert_eq!(out.result.unwrap()["structuredContent"]["total"], 2);
        let all = ops.list_tools().await.unwrap().unwrap();
        assert_eq!(all.len(), 6, "{mode:?}: {all:?}");
        let mine = reader.list_tools().await.unwrap().unwrap();
        assert_eq!(tool_names(&mine), ["list_nodes", "node_info"], "{mode:?}");
        // A cursor that is not one of ours: -32602.
        let mut params = serde_json::Map::new();
        params.insert("cursor".into(), "bm8tc3VjaC1jdXJzb3I".into());
        let reply = ops
            .request(
                "tools/list",
                params,
                mcp_protocol::client::RequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(reply.unwrap_err().code, -32602, "{mode:?}");
    }
}
