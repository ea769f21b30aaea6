//! Only the gateway may call a node server, end to end with the real binaries.
//!
//! Proves: a node server with `CLIENT_AUTH=serviceaccount` answers 401 with
//! `WWW-Authenticate: Bearer` to MCP requests of both eras (POST, GET, DELETE) without
//! the gateway's token, refuses other audiences / issuers / expired tokens (401) and
//! other ServiceAccounts (403), keeps /healthz open, and serves every tool to the
//! gateway's ServiceAccount token (a JWT signed here, key set from JWKS_FILE); the
//! gateway sends its own token (BACKEND_TOKEN_FILE) and extra headers to the node
//! server and never the caller's token (a recording pass-through sees every request);
//! a rotated token file is picked up by both sides without a restart.

mod support;

use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, SharedHeaders, http_client};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::jwt::{self, JwksServer, KEY_EC, KEY_RSA, claims, sign};
use support::mcp::{call, is_error, text};
use support::procs::{self, Proc};
use support::recorder::Recorder;

const K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const GATEWAY_SA: &str = "system:serviceaccount:mcp-server:k8s-aggregator-mcp";
const DEADLINE: Duration = Duration::from_secs(20);

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 31, net, host))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "k8s-aggregator-mcp-auth-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `contents` to `path` the way the kubelet does: a new file renamed over it.
fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The gateway's projected ServiceAccount token (audience node-mcp-server).
fn sa_token(sub: &str, aud: &str) -> String {
    sign(KEY_RSA, &claims(K8S_ISSUER, aud, sub, ""))
}

/// A node server that accepts only the gateway's ServiceAccount token.
async fn guarded_backend(dir: &Path, node: &str, ip: IpAddr, port: u16) -> Proc {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, jwt::jwks(&[KEY_RSA])).unwrap();
    procs::spawn_backend_with(
        node,
        ip,
        port,
        &[
            ("CLIENT_AUTH", "serviceaccount".into()),
            ("JWKS_FILE", jwks.display().to_string()),
        ],
    )
    .await
}

fn client_with(url: &str, mode: ClientMode, token: &str) -> McpClient {
    let mut opts = ClientOptions::new("auth-tests", "0");
    opts.mode = mode;
    opts.request_timeout = Duration::from_secs(30);
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    opts.extra_headers = SharedHeaders::new(h);
    McpClient::new(http_client(Duration::from_secs(5)), url, opts)
}

/// One raw MCP request of each kind, with an optional token.
async fn raw(url: &str, kind: &str, token: Option<&str>) -> reqwest::Response {
    let http = reqwest::Client::new();
    let mut req = match kind {
        "legacy-initialize" => http
            .post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"t","version":"0"}}})
                .to_string(),
            ),
        "modern-discover" => http
            .post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "server/discover")
            .body(
                json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":{}}}})
                .to_string(),
            ),
        "get-stream" => http
            .get(url)
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", "x"),
        "delete" => http.delete(url).header("Mcp-Session-Id", "x"),
        other => panic!("unknown request kind {other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("node server reachable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_server_refuses_everyone_but_the_gateway_in_both_eras() {
    let dir = scratch("refuse");
    let port = procs::common_free_port(&[ip(1, 2)]);
    let backend = guarded_backend(&dir, "node-1", ip(1, 2), port).await;
    let url = backend.url();
    for kind in [
        "legacy-initialize",
        "modern-discover",
        "get-stream",
        "delete",
    ] {
        let r = raw(&url, kind, None).await;
        assert_eq!(r.status(), 401, "{kind} without a token");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Bearer"), "{kind}: {challenge}");
    }
    let expired = sign(
        KEY_RSA,
        &json!({"iss": K8S_ISSUER, "aud": "node-mcp-server", "sub": GATEWAY_SA,
                "exp": jwt::now() - 300}),
    );
    let refusals = [
        (
            "another audience",
            sa_token(GATEWAY_SA, "https://gw.example/mcp"),
            401,
        ),
        (
            "another issuer",
            sign(
                KEY_RSA,
                &claims("https://evil.test", "node-mcp-server", GATEWAY_SA, ""),
            ),
            401,
        ),
        (
            "a key not in the cluster's set",
            sign(
                KEY_EC,
                &claims(K8S_ISSUER, "node-mcp-server", GATEWAY_SA, ""),
            ),
            401,
        ),
        ("expired", expired, 401),
        (
            "another ServiceAccount",
            sa_token("system:serviceaccount:default:intruder", "node-mcp-server"),
            403,
        ),
    ];
    for (what, token, status) in &refusals {
        for kind in ["legacy-initialize", "modern-discover"] {
            let r = raw(&url, kind, Some(token)).await;
            assert_eq!(r.status().as_u16(), *status, "{what} ({kind})");
            let body = r.text().await.unwrap();
            assert!(
                !body.contains(token.as_str()),
                "{what}: the body echoes the token"
            );
        }
    }
    let health = reqwest::get(format!("http://{}/healthz", backend.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "/healthz stays open");

    // The gateway's token: every tool works, in both eras.
    let token = sa_token(GATEWAY_SA, "node-mcp-server");
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let c = client_with(&url, mode, &token);
        let tools = c.list_tools().await.expect("transport").expect("tools");
        assert!(tools.len() >= 4, "{tools:?}");
        for t in &tools {
            let name = t["name"].as_str().unwrap();
            let out = call(&c, name, json!({}), None).await;
            let result = out
                .result
                .unwrap_or_else(|e| panic!("{mode:?} {name}: {e}"));
            assert!(!is_error(&result), "{mode:?} {name}: {}", text(&result));
        }
    }
    assert!(
        !backend.log_text().contains(&token),
        "the node server logged the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_sends_its_own_credential_and_never_the_callers_token() {
    let dir = scratch("forward");
    // The node as the gateway sees it (a recorder) and the real node server behind it.
    let (node_ip, real_ip, gip) = (ip(2, 2), ip(2, 3), ip(2, 1));
    let port = procs::common_free_port(&[node_ip, real_ip]);
    let _backend = guarded_backend(&dir, "node-1", real_ip, port).await;
    let recorder = Recorder::start(
        SocketAddr::new(node_ip, port),
        SocketAddr::new(real_ip, port),
    )
    .await;
    let gateway_token = sa_token(GATEWAY_SA, "node-mcp-server");
    let token_file = dir.join("gateway-token");
    std::fs::write(&token_file, format!("{gateway_token}\n")).unwrap();
    // Callers authenticate with OAuth tokens of their own.
    let issuer = JwksServer::start(&[KEY_EC]).await;
    let gport = procs::common_free_port(&[gip]);
    let resource = format!("http://{gip}:{gport}/mcp");
    let gateway = procs::spawn_gateway_on(
        gip,
        gport,
        &[
            ("AUTH_MODE", "oauth".into()),
            ("OAUTH_ISSUER", "https://issuer.test".into()),
            ("OAUTH_RESOURCE", resource.clone()),
            ("OAUTH_JWKS_URL", issuer.url.clone()),
            ("STATIC_NODES", format!("node-1={node_ip}")),
            ("BACKEND_PORT", port.to_string()),
            ("BACKEND_TOKEN_FILE", token_file.display().to_string()),
            (
                "BACKEND_EXTRA_HEADERS",
                "X-Tenant: blue; X-Team: nodes".into(),
            ),
        ],
    )
    .await;
    let caller_token = sign(
        KEY_EC,
        &claims("https://issuer.test", &resource, "alice", ""),
    );
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let c = client_with(&gateway.url(), mode, &caller_token);
        let out = call(&c, "node_info", json!({"node": "node-1"}), None).await;
        let result = out.result.expect("node_info");
        assert!(!is_error(&result), "{mode:?}: {}", text(&result));
        assert_eq!(result["structuredContent"]["node_name"], "node-1");
    }
    let seen = recorder.requests();
    assert!(
        seen.len() >= 3,
        "the recorder saw the gateway's requests: {}",
        seen.len()
    );
    for (method, headers) in &seen {
        assert_eq!(
            headers["authorization"].to_str().unwrap(),
            format!("Bearer {gateway_token}"),
            "{method}: the gateway's own token"
        );
        assert_eq!(headers["x-tenant"], "blue");
        assert_eq!(headers["x-team"], "nodes");
        for (name, value) in headers {
            assert!(
                !String::from_utf8_lossy(value.as_bytes()).contains(&caller_token),
                "{method}: the caller's token reached the node server in {name}"
            );
        }
    }
    let log = gateway.log_text();
    assert!(!log.contains(&caller_token) && !log.contains(&gateway_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_is_picked_up_by_both_sides_without_a_restart() {
    let dir = scratch("rotate");
    let (bip, gip) = (ip(3, 2), ip(3, 1));
    let port = procs::common_free_port(&[bip]);
    let backend_file = dir.join("backend-token");
    let gateway_file = dir.join("gateway-token");
    std::fs::write(&backend_file, "token-one\n").unwrap();
    std::fs::write(&gateway_file, "token-one\n").unwrap();
    let backend = procs::spawn_backend_with(
        "node-1",
        bip,
        port,
        &[
            ("CLIENT_AUTH", "static".into()),
            ("CLIENT_TOKEN_FILE", backend_file.display().to_string()),
        ],
    )
    .await;
    let gateway = procs::spawn_gateway(
        gip,
        &[
            ("STATIC_NODES", format!("node-1={bip}")),
            ("BACKEND_PORT", port.to_string()),
            ("BACKEND_TOKEN_FILE", gateway_file.display().to_string()),
        ],
    )
    .await;
    let c = support::mcp::client(&gateway.url(), ClientMode::Modern);
    let works = || async {
        let out = call(&c, "node_info", json!({"node": "node-1"}), None).await;
        out.result.map(|r| !is_error(&r)).unwrap_or(false)
    };
    assert!(works().await, "token-one works at first");

    // The Secret changes on the node server's side: the old token stops working there.
    replace_file(&backend_file, "token-two\n");
    let url = backend.url();
    procs::eventually("the node server refuses token-one", DEADLINE, || async {
        raw(&url, "modern-discover", Some("token-one"))
            .await
            .status()
            == 401
    })
    .await;
    assert_eq!(
        raw(&url, "modern-discover", Some("token-two"))
            .await
            .status(),
        200
    );
    assert!(!works().await, "the gateway still sends token-one");

    // The gateway's file rotates too: it picks the new token up without a restart.
    replace_file(&gateway_file, "token-two\n");
    procs::eventually("the gateway sends token-two", DEADLINE, works).await;
    assert!(gateway.log_text().contains("token file changed"));
    assert!(!gateway.log_text().contains("token-two"));
}
