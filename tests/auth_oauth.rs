//! `AUTH_MODE=oauth` end to end: the real gateway binary in front of a real node
//! server, JWTs signed here (RSA and EC test keys), the issuer's key set served by a
//! test server on 127.0.0.1 that can rotate its keys while the gateway runs.
//!
//! Proves: valid tokens list and call tools in both eras; every bad token refused with
//! the right status and `WWW-Authenticate` (expired, not yet valid, wrong issuer,
//! wrong audience, wrong signature, `alg: none`, HS256 keyed with the RSA public key,
//! garbage, missing scope -> 403 insufficient_scope); an unknown kid refreshes the key
//! set and a rotated-in key is then accepted; a 401 without a token points at RFC 9728
//! metadata that the gateway serves; /healthz and /readyz stay open; no token shows up
//! in the gateway's log; the official Python MCP SDK client connects with a token.

#[path = "support/interop.rs"]
mod interop;
mod support;

use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, SharedHeaders, http_client};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use support::jwt::{
    self, JwksServer, KEY_EC, KEY_ROTATED, KEY_RSA, Key, claims, hs256_with_rsa_public_key, sign,
    unsigned,
};
use support::mcp::{call, is_error};
use support::procs::{self, Proc};

const ISS: &str = "https://issuer.test";
const SCOPE: &str = "mcp:tools";

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 30, net, host))
}

/// A node server on 127.30.net.2 behind an oauth gateway on 127.30.net.1.
struct OAuthSetup {
    jwks: JwksServer,
    _backend: Proc,
    gateway: Proc,
    /// OAUTH_RESOURCE: the gateway's real MCP URL.
    resource: String,
}

impl OAuthSetup {
    async fn start(net: u8, extra: &[(&str, String)]) -> Self {
        let jwks = JwksServer::start(&[KEY_RSA, KEY_EC]).await;
        let (bip, gip) = (ip(net, 2), ip(net, 1));
        let bport = procs::common_free_port(&[bip]);
        let backend = procs::spawn_backend("node-1", bip, bport).await;
        let gport = procs::common_free_port(&[gip]);
        let resource = format!("http://{gip}:{gport}/mcp");
        let mut env = vec![
            ("AUTH_MODE", "oauth".to_string()),
            ("OAUTH_ISSUER", ISS.to_string()),
            ("OAUTH_RESOURCE", resource.clone()),
            ("OAUTH_JWKS_URL", jwks.url.clone()),
            ("OAUTH_REQUIRED_SCOPES", SCOPE.to_string()),
            ("STATIC_NODES", format!("node-1={bip}")),
            ("BACKEND_PORT", bport.to_string()),
        ];
        env.extend(extra.iter().cloned());
        let gateway = procs::spawn_gateway_on(gip, gport, &env).await;
        OAuthSetup {
            jwks,
            _backend: backend,
            gateway,
            resource,
        }
    }

    fn token(&self, key: Key) -> String {
        sign(key, &self.claims())
    }

    fn claims(&self) -> Value {
        claims(ISS, &self.resource, "alice", &format!("openid {SCOPE}"))
    }
}

/// Our own MCP client sending `token` on every request.
fn authed_client(url: &str, mode: ClientMode, token: &str) -> McpClient {
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

/// A 2026-07-28 tools/list POST with an optional bearer token.
async fn list_raw(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/list")
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":{}}}})
            .to_string(),
        );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("gateway reachable")
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The value of `param="..."` in a challenge.
fn param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let end = challenge[start..].find('"')? + start;
    Some(challenge[start..end].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_rsa_and_ec_tokens_list_and_call_tools_in_both_eras() {
    let s = OAuthSetup::start(1, &[("OAUTH_ISSUER", format!("{ISS},https://second.test"))]).await;
    for key in [KEY_RSA, KEY_EC] {
        for mode in [ClientMode::Legacy, ClientMode::Modern] {
            let c = authed_client(&s.gateway.url(), mode, &s.token(key));
            let tools = c.list_tools().await.expect("transport").expect("tools");
            assert!(tools.iter().any(|t| t["name"] == "node_info"), "{tools:?}");
            let out = call(&c, "node_info", json!({"node": "node-1"}), None).await;
            let result = out.result.expect("node_info result");
            assert!(!is_error(&result), "{:?} {mode:?}: {result}", key.alg);
            assert_eq!(result["structuredContent"]["node_name"], "node-1");
        }
    }
    let r = list_raw(&s.gateway.url(), Some(&s.token(KEY_RSA))).await;
    assert_eq!(r.status(), 200);
    // Several issuers: each token is checked against its own issuer's settings.
    let mut second = s.claims();
    second["iss"] = json!("https://second.test");
    let r = list_raw(&s.gateway.url(), Some(&sign(KEY_EC, &second))).await;
    assert_eq!(r.status(), 200);
    second["iss"] = json!("https://third.test");
    let r = list_raw(&s.gateway.url(), Some(&sign(KEY_EC, &second))).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_with_the_right_status_and_challenge() {
    let s = OAuthSetup::start(2, &[]).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = s.claims();
        f(&mut c);
        c
    };
    let wrong_signer = Key {
        pem: jwt::RSA_B,
        ..KEY_RSA
    };
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        (
            "expired",
            sign(KEY_RSA, &with(&|c| c["exp"] = json!(jwt::now() - 120))),
            401,
            Some("invalid_token"),
        ),
        (
            "not yet valid",
            sign(KEY_EC, &with(&|c| c["nbf"] = json!(jwt::now() + 600))),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong issuer",
            sign(KEY_RSA, &with(&|c| c["iss"] = json!("https://evil.test"))),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong audience (a token for another resource)",
            sign(
                KEY_RSA,
                &with(&|c| c["aud"] = json!("https://other.example/mcp")),
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong signature",
            sign(wrong_signer, &s.claims()),
            401,
            Some("invalid_token"),
        ),
        (
            "alg none",
            unsigned(KEY_RSA.kid, &s.claims()),
            401,
            Some("invalid_token"),
        ),
        (
            "HS256 keyed with the RSA public key",
            hs256_with_rsa_public_key(KEY_RSA.kid, &s.claims()),
            401,
            Some("invalid_token"),
        ),
        (
            "not a JWT",
            "opaque.garbage".into(),
            401,
            Some("invalid_token"),
        ),
        (
            "missing scope",
            sign(KEY_EC, &with(&|c| c["scope"] = json!("openid"))),
            403,
            Some("insufficient_scope"),
        ),
    ];
    let metadata_url = format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        s.gateway.addr
    );
    for (what, token, status, error) in &cases {
        let r = list_raw(&s.gateway.url(), Some(token)).await;
        assert_eq!(r.status().as_u16(), *status, "{what}");
        let challenge = www_authenticate(&r);
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        assert_eq!(
            param(&challenge, "error").as_deref(),
            *error,
            "{what}: {challenge}"
        );
        assert_eq!(
            param(&challenge, "resource_metadata").as_deref(),
            Some(metadata_url.as_str()),
            "{what}: {challenge}"
        );
        assert_eq!(param(&challenge, "scope").as_deref(), Some(SCOPE), "{what}");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains(token.as_str()),
            "{what}: body echoes the token"
        );
    }
    // No token at all: 401 without an error code (RFC 6750 3.1).
    let r = list_raw(&s.gateway.url(), None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(param(&www_authenticate(&r), "error"), None);
    // Nothing refused reached the backend, and no token is in the gateway's log.
    let log = s.gateway.log_text();
    for (what, token, ..) in &cases {
        let signature = token.rsplit('.').next().unwrap_or("");
        assert!(
            !log.contains(token.as_str()) && (signature.len() < 8 || !log.contains(signature)),
            "{what}: the gateway log holds the token"
        );
    }
    assert!(!log.contains(&s.token(KEY_RSA)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refreshes_the_keys_and_a_rotated_key_is_then_accepted() {
    let s = OAuthSetup::start(3, &[("OAUTH_JWKS_MIN_REFRESH_SECONDS", "0".into())]).await;
    let url = s.gateway.url();
    assert_eq!(list_raw(&url, Some(&s.token(KEY_RSA))).await.status(), 200);
    let loaded = s.jwks.hits();
    assert!(loaded >= 1);
    // A key the issuer has not published (yet): refused after one refresh.
    let rotated = s.token(KEY_ROTATED);
    let r = list_raw(&url, Some(&rotated)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        param(&www_authenticate(&r), "error").as_deref(),
        Some("invalid_token")
    );
    assert_eq!(
        s.jwks.hits(),
        loaded + 1,
        "the unknown kid caused one refresh"
    );
    // The issuer rotates: the new key is published, the old one withdrawn.
    s.jwks.publish(&[KEY_ROTATED, KEY_EC]);
    assert_eq!(list_raw(&url, Some(&rotated)).await.status(), 200);
    assert_eq!(s.jwks.hits(), loaded + 2);
    let c = authed_client(&url, ClientMode::Modern, &rotated);
    let out = call(&c, "node_info", json!({"node": "node-1"}), None).await;
    assert!(!is_error(&out.result.expect("result")));
    // Tokens of the withdrawn key are refused once the set no longer has it.
    assert_eq!(list_raw(&url, Some(&s.token(KEY_RSA))).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_points_at_rfc_9728_metadata_served_by_the_gateway() {
    let s = OAuthSetup::start(
        4,
        &[("OAUTH_SCOPES_SUPPORTED", "mcp:tools mcp:admin".into())],
    )
    .await;
    let r = list_raw(&s.gateway.url(), None).await;
    assert_eq!(r.status(), 401);
    let url = param(&www_authenticate(&r), "resource_metadata").expect("resource_metadata");
    let http = reqwest::Client::new();
    let meta = http.get(&url).send().await.unwrap();
    assert_eq!(meta.status(), 200, "{url}");
    assert_eq!(
        meta.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Value = serde_json::from_slice(&meta.bytes().await.unwrap()).unwrap();
    // RFC 9728 section 3.3: `resource` is the identifier the client asked about.
    assert_eq!(doc["resource"], s.resource);
    assert_eq!(doc["authorization_servers"], json!([ISS]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert_eq!(doc["scopes_supported"], json!(["mcp:tools", "mcp:admin"]));
    assert!(doc["resource_name"].is_string());
    // The root form serves the same document; health endpoints need no token.
    let root = format!(
        "http://{}/.well-known/oauth-protected-resource",
        s.gateway.addr
    );
    let root_doc: Value =
        serde_json::from_slice(&http.get(&root).send().await.unwrap().bytes().await.unwrap())
            .unwrap();
    assert_eq!(root_doc, doc);
    for path in ["/healthz", "/readyz"] {
        let r = http
            .get(format!("http://{}{path}", s.gateway.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let other = http
        .get(format!(
            "http://{}/.well-known/oauth-protected-resource/elsewhere",
            s.gateway.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    // METRICS_AUTH=none (the default): Prometheus scrapes without a token.
    let m = http
        .get(format!("http://{}/metrics", s.gateway.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);

    // Without oauth mode there is no metadata.
    let (bip, gip) = (ip(5, 2), ip(5, 1));
    let port = procs::common_free_port(&[bip]);
    let _b = procs::spawn_backend("node-1", bip, port).await;
    let open = procs::spawn_gateway(
        gip,
        &[
            ("STATIC_NODES", format!("node-1={bip}")),
            ("BACKEND_PORT", port.to_string()),
        ],
    )
    .await;
    let r = http
        .get(format!(
            "http://{}/.well-known/oauth-protected-resource",
            open.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_client_connects_with_a_bearer_token() {
    let s = OAuthSetup::start(6, &[]).await;
    let t = interop::tools();
    let script = t.root.join("tests/interop/sdk_bearer_client.py");
    let run = |token: Option<String>, mode: &str| {
        let mut cmd = std::process::Command::new(&t.python);
        cmd.arg(&script).args([
            "--url",
            &s.gateway.url(),
            "--mode",
            mode,
            "--call",
            "node_info",
            r#"{"node":"node-1"}"#,
        ]);
        cmd.env_remove("MCP_BEARER_TOKEN");
        if let Some(tok) = token {
            cmd.env("MCP_BEARER_TOKEN", tok);
        }
        let out = interop::run_bounded(cmd, Duration::from_secs(90));
        let doc: Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("no JSON from the SDK client ({e})\n{}", out.describe()));
        doc
    };
    for mode in ["auto", "legacy"] {
        let doc = run(Some(s.token(KEY_RSA)), mode);
        assert_eq!(doc["ok"], true, "{mode}: {doc}");
        assert!(
            doc["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "node_info"),
            "{doc}"
        );
        assert_eq!(doc["result"]["structuredContent"]["node_name"], "node-1");
    }
    assert_eq!(run(Some(s.token(KEY_RSA)), "auto")["era"], "modern");
    // Without a token the SDK gets the 401 and cannot proceed.
    let doc = run(None, "auto");
    assert_eq!(doc["ok"], false, "{doc}");
    assert!(doc["result"].is_null(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_fails_closed_and_metrics_can_require_a_token() {
    // A key-set URL where nothing listens: tokens cannot be checked -> 503, never 200.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let s = OAuthSetup::start(
        7,
        &[
            ("OAUTH_JWKS_URL", dead_url),
            ("METRICS_AUTH", "required".into()),
        ],
    )
    .await;
    let r = list_raw(&s.gateway.url(), Some(&s.token(KEY_RSA))).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("cannot check the token now"), "{body}");
    // /metrics now asks for a token like /mcp does; health stays open.
    let http = reqwest::Client::new();
    let m = http
        .get(format!("http://{}/metrics", s.gateway.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 401);
    assert!(www_authenticate(&m).starts_with("Bearer "));
    let h = http
        .get(format!("http://{}/healthz", s.gateway.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
}
