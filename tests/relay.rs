//! Relaying what happens during a call, through the real gateway binary
//! to a FastMCP backend (PyPI `fastmcp`) the gateway speaks the legacy era to
//! (`BACKEND_PROTOCOL=legacy`: FastMCP's `ctx.elicit` needs a session), driven by the
//! official MCP Python SDK client in legacy and auto (2026-07-28) mode: log messages
//! filtered by the client's level, elicitation, sampling and roots answered by the
//! calling client, a client without the elicitation capability refused at once, and
//! two clients eliciting at once on one node without crossed answers.
//!
//! The same through the legacy backend to 2026-07-28 clients (the backend's questions
//! become `input_required` results, the backend call parked until the retry), URL-mode
//! elicitation, retries that cannot be served, the cap and expiry of parked calls, and
//! the capabilities the gateway announces.
//!
//! Loopback ranges: 127.50.x.y (the first tests), 127.90.x.y (the rest).

#[path = "support/interop.rs"]
mod interop;
mod support;

use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use support::fake_kube::FakeKube;
use support::procs::{self, Proc};

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 50, net, host))
}

/// Runs blocking peer processes off the async runtime (the fake API server lives on it).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("peer task")
}

/// A gateway over one stateful FastMCP relay backend on node `fast-1`.
struct Setup {
    _kube: FakeKube,
    _backend: interop::FastMcpBackend,
    gateway: Proc,
}

async fn setup(net: u8) -> Setup {
    setup_at(ip(net, 1), ip(net, 2), &[]).await
}

/// [`setup`] with the gateway on `gateway`, the backend on `addr` and extra gateway
/// settings.
async fn setup_at(gateway: IpAddr, addr: IpAddr, extra: &[(&str, String)]) -> Setup {
    let kube = FakeKube::start().await;
    let port = procs::common_free_port(&[addr]);
    let backend = relay_backend(addr, port).await;
    kube.set_node("fast-1", addr, true);
    let mut env = vec![
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("BACKEND_PROTOCOL", "legacy".to_string()),
    ];
    env.extend(extra.iter().cloned());
    let gateway = procs::spawn_gateway(gateway, &env).await;
    Setup {
        _kube: kube,
        _backend: backend,
        gateway,
    }
}

/// The stateful FastMCP relay backend as node `fast-1` on `addr:port`.
async fn relay_backend(addr: IpAddr, port: u16) -> interop::FastMcpBackend {
    let opts = interop::FastMcpOptions {
        node_name: Some("fast-1".into()),
        stateful: true,
        script: Some("fastmcp_relay_backend.py"),
        ..Default::default()
    };
    let host = addr.to_string();
    blocking(move || interop::spawn_fastmcp_backend_with(&host, port, opts)).await
}

async fn call(
    url: String,
    mode: &'static str,
    tool: &'static str,
    extra: Vec<&'static str>,
) -> Value {
    blocking(move || {
        interop::sdk_relay_client(&url, mode, tool, &json!({"node": "fast-1"}), &extra)
    })
    .await
}

fn text(doc: &Value) -> &str {
    doc["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text: {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_messages_reach_the_client_filtered_by_its_level_in_both_eras() {
    let s = setup(1).await;
    for mode in ["legacy", "auto"] {
        let doc = call(
            s.gateway.url(),
            mode,
            "log_steps",
            vec!["--log-level", "info"],
        )
        .await;
        assert_eq!(doc["ok"], true, "{mode}: {doc}");
        assert_eq!(text(&doc), "fast-1: logged run", "{mode}");
        let levels: Vec<&str> = doc["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["level"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            levels,
            ["info", "warning"],
            "{mode}: debug filtered out: {doc}"
        );
        let doc = call(
            s.gateway.url(),
            mode,
            "log_steps",
            vec!["--log-level", "warning"],
        )
        .await;
        let levels: Vec<&str> = doc["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["level"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(levels, ["warning"], "{mode}: {doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_client_answers_elicitation_sampling_and_roots_of_a_legacy_backend() {
    let s = setup(2).await;
    let cases = [
        (
            "confirm",
            "elicitation/create",
            "fast-1: accepted proceed=True note=from-client",
        ),
        (
            "ask_model",
            "sampling/createMessage",
            "fast-1: model said sampled from-client",
        ),
        (
            "show_roots",
            "roots/list",
            "fast-1: roots file:///from-client",
        ),
    ];
    for (tool, method, want) in cases {
        let doc = call(s.gateway.url(), "legacy", tool, vec![]).await;
        assert_eq!(doc["ok"], true, "{tool}: {doc}");
        assert_eq!(text(&doc), want, "{doc}");
        assert_eq!(doc["asked"], json!([method]), "{doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_answer_gets_the_backends_own_refusal_at_once() {
    let s = setup(3).await;
    // A legacy client without the elicitation capability.
    let doc = call(
        s.gateway.url(),
        "legacy",
        "confirm",
        vec!["--no-elicitation"],
    )
    .await;
    assert_eq!(doc["ok"], true, "{doc}");
    assert!(
        text(&doc).starts_with("fast-1: elicitation failed:"),
        "the backend handled the refusal: {doc}"
    );
    assert_eq!(doc["asked"], json!([]), "{doc}");
    // A 2026-07-28 client without it: the question is not put into inputRequests.
    let doc = call(s.gateway.url(), "auto", "confirm", vec!["--no-elicitation"]).await;
    assert_eq!(doc["protocol_version"], "2026-07-28", "{doc}");
    assert!(
        text(&doc).starts_with("fast-1: elicitation failed:"),
        "{doc}"
    );
    assert_eq!(doc["asked"], json!([]), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_eliciting_at_once_on_one_node_get_their_own_answers() {
    let s = setup(4).await;
    // Legacy clients: requests on each client's own stream; 2026-07-28 clients: each
    // its own input_required and parked backend call.
    for mode in ["legacy", "auto"] {
        let calls: Vec<_> = ["alpha", "beta"]
            .into_iter()
            .map(|answer| {
                let url = s.gateway.url();
                tokio::spawn(async move {
                    blocking(move || {
                        interop::sdk_relay_client(
                            &url,
                            mode,
                            "confirm",
                            &json!({"node": "fast-1"}),
                            &["--answer", answer],
                        )
                    })
                    .await
                })
            })
            .collect();
        for (call, answer) in calls.into_iter().zip(["alpha", "beta"]) {
            let doc = call.await.unwrap();
            assert_eq!(
                text(&doc),
                format!("fast-1: accepted proceed=True note={answer}"),
                "{mode}: {doc}"
            );
        }
    }
}

/// A gateway (speaking 2026-07-28 to its backends, the default `auto`) over our own
/// node server with `INTERACTIVE_TOOLS=true` on node `n1`.
async fn node_server_setup(net: u8) -> (FakeKube, Proc, Proc) {
    let kube = FakeKube::start().await;
    let addr = ip(net, 2);
    let port = procs::common_free_port(&[addr]);
    let backend =
        procs::spawn_backend_with("n1", addr, port, &[("INTERACTIVE_TOOLS", "true".into())]).await;
    kube.set_node("n1", addr, true);
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
    ];
    let gateway = procs::spawn_gateway(ip(net, 1), &env).await;
    (kube, backend, gateway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_backend_confirmation_reaches_clients_of_both_eras() {
    let (_kube, backend, gateway) = node_server_setup(5).await;
    let args = json!({"node": "n1", "seconds": 1});
    for mode in ["legacy", "auto"] {
        // Directly first: the node server's own answer.
        let direct = {
            let (url, a) = (backend.url(), json!({"seconds": 1}));
            blocking(move || {
                interop::sdk_relay_client(
                    &url,
                    mode,
                    "confirm_cpu_usage",
                    &a,
                    &["--log-level", "info"],
                )
            })
            .await
        };
        let via = {
            let (url, a) = (gateway.url(), args.clone());
            blocking(move || {
                interop::sdk_relay_client(
                    &url,
                    mode,
                    "confirm_cpu_usage",
                    &a,
                    &["--log-level", "info"],
                )
            })
            .await
        };
        for doc in [&direct, &via] {
            assert_eq!(doc["ok"], true, "{mode}: {doc}");
            assert!(text(doc).starts_with("n1: confirmed;"), "{mode}: {doc}");
            assert_eq!(doc["asked"], json!(["elicitation/create"]), "{mode}: {doc}");
        }
        // Legacy client: the gateway turned the backend's input_required into a
        // request on the client's stream; both eras see the log messages.
        let logs = via["logs"].as_array().unwrap();
        assert!(!logs.is_empty(), "{mode}: log messages relayed: {via}");
        assert!(logs.iter().all(|l| l["level"] == "info"), "{mode}: {via}");
    }
    // Without the elicitation capability: the tool says so at once.
    for mode in ["legacy", "auto"] {
        let (url, a) = (gateway.url(), args.clone());
        let doc = blocking(move || {
            interop::sdk_relay_client(&url, mode, "confirm_cpu_usage", &a, &["--no-elicitation"])
        })
        .await;
        assert!(
            text(&doc).starts_with("n1: not sampled: the client cannot be asked"),
            "{mode}: {doc}"
        );
    }
}

fn ip90(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 90, net, host))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_answers_a_legacy_backends_questions_through_input_required() {
    let s = setup_at(ip90(1, 1), ip90(1, 2), &[]).await;
    let cases = [
        (
            "confirm",
            vec!["elicitation/create"],
            "fast-1: accepted proceed=True note=from-client",
        ),
        (
            "ask_model",
            vec!["sampling/createMessage"],
            "fast-1: model said sampled from-client",
        ),
        (
            "show_roots",
            vec!["roots/list"],
            "fast-1: roots file:///from-client",
        ),
        // Two questions in turn: two input_required rounds of one backend call.
        (
            "confirm_then_sample",
            vec!["elicitation/create", "sampling/createMessage"],
            "fast-1: note=from-client model said sampled from-client",
        ),
    ];
    for (tool, asked, want) in cases {
        for mode in ["auto", "legacy"] {
            let doc = call(s.gateway.url(), mode, tool, vec![]).await;
            assert_eq!(doc["ok"], true, "{mode} {tool}: {doc}");
            let version = if mode == "auto" {
                "2026-07-28"
            } else {
                "2025-11-25"
            };
            assert_eq!(doc["protocol_version"], version, "{doc}");
            assert_eq!(text(&doc), want, "{mode}: {doc}");
            assert_eq!(doc["asked"], json!(asked), "{mode}: {doc}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_mode_elicitation_reaches_clients_of_both_eras() {
    let s = setup_at(ip90(2, 1), ip90(2, 2), &[]).await;
    let url = "https://accounts.example.com/connect?account=demo&node=fast-1";
    for mode in ["legacy", "auto"] {
        let doc = call(s.gateway.url(), mode, "connect_account", vec![]).await;
        assert_eq!(doc["ok"], true, "{mode}: {doc}");
        assert_eq!(text(&doc), "fast-1: url accept", "{mode}: {doc}");
        assert_eq!(doc["urls"], json!([url]), "{mode}: {doc}");
    }
}

/// Our own client in the 2026-07-28 era, declaring elicitation and roots.
fn modern_client(url: &str) -> mcp_protocol::client::McpClient {
    use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, http_client};
    let mut opts = ClientOptions::new("relay-tests", "0");
    opts.mode = ClientMode::Modern;
    opts.request_timeout = std::time::Duration::from_secs(30);
    opts.capabilities = json!({"elicitation": {"form": {}}, "roots": {}});
    McpClient::new(http_client(std::time::Duration::from_secs(5)), url, opts)
}

/// One tools/call on node fast-1 with `extra` params (`inputResponses`,
/// `requestState`): the result, or the JSON-RPC error as JSON.
async fn raw_call(
    c: &mcp_protocol::client::McpClient,
    tool: &str,
    extra: Value,
) -> Result<Value, Value> {
    let mut params = serde_json::Map::new();
    params.insert("name".into(), tool.into());
    params.insert("arguments".into(), json!({"node": "fast-1"}));
    if let Value::Object(m) = extra {
        params.extend(m);
    }
    let reply = c
        .call_tool(params, Default::default())
        .await
        .expect("transport");
    match reply {
        Ok(raw) => Ok(serde_json::from_str(raw.get()).unwrap()),
        Err(e) => Err(serde_json::to_value(e).unwrap()),
    }
}

/// The `requestState` and the only question key of an `input_required` result.
fn question(result: &Value) -> (String, String) {
    assert_eq!(result["resultType"], "input_required", "{result}");
    let requests = result["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(requests.len(), 1, "{result}");
    let (key, request) = requests.iter().next().unwrap();
    assert!(
        request.get("id").is_none(),
        "no JSON-RPC envelope: {result}"
    );
    let state = result["requestState"].as_str().expect("requestState");
    (state.to_string(), key.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_the_gateway_cannot_serve_get_an_error_saying_why() {
    let s = setup_at(ip90(3, 1), ip90(3, 2), &[]).await;
    let c = modern_client(&s.gateway.url());
    let first = raw_call(&c, "confirm", json!({})).await.expect("a result");
    let (state, key) = question(&first);
    assert_eq!(
        first["inputRequests"][&key]["method"], "elicitation/create",
        "{first}"
    );
    let answer =
        json!({(key.clone()): {"action": "accept", "content": {"proceed": true, "note": "raw"}}});
    let reason = |r: Result<Value, Value>| -> String {
        let e = r.expect_err("a JSON-RPC error");
        assert_eq!(e["code"], -32602, "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("call the tool again"),
            "{e}"
        );
        e["data"]["reason"].as_str().unwrap_or("").to_string()
    };
    // Altered state.
    let mut forged = state.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let r = raw_call(
        &c,
        "confirm",
        json!({"inputResponses": answer, "requestState": forged}),
    )
    .await;
    assert_eq!(reason(r), "invalid");
    // Not ours at all, to a legacy backend that keeps no state.
    let r = raw_call(
        &c,
        "confirm",
        json!({"inputResponses": answer, "requestState": "made-up"}),
    )
    .await;
    assert_eq!(reason(r), "invalid");
    // The state of a call of another tool.
    let r = raw_call(
        &c,
        "show_roots",
        json!({"inputResponses": answer, "requestState": state}),
    )
    .await;
    assert_eq!(reason(r), "mismatch");
    // The right retry: the parked call goes on and finishes.
    let done = raw_call(
        &c,
        "confirm",
        json!({"inputResponses": answer, "requestState": state}),
    )
    .await
    .expect("a result");
    assert_eq!(done["resultType"], "complete", "{done}");
    assert_eq!(
        done["content"][0]["text"], "fast-1: accepted proceed=True note=raw",
        "{done}"
    );
    // Replayed: nothing waits for it any more.
    let r = raw_call(
        &c,
        "confirm",
        json!({"inputResponses": answer, "requestState": state}),
    )
    .await;
    assert_eq!(reason(r), "unknown");
    // A retry without the answer is asked again (same call, same question).
    let first = raw_call(&c, "confirm", json!({})).await.expect("a result");
    let (state, key) = question(&first);
    let again = raw_call(
        &c,
        "confirm",
        json!({"inputResponses": {}, "requestState": state}),
    )
    .await
    .expect("a result");
    let (state, key2) = question(&again);
    assert_eq!(key, key2, "{again}");
    let done = raw_call(
        &c,
        "confirm",
        json!({"inputResponses": {(key): {"action": "decline"}}, "requestState": state}),
    )
    .await
    .expect("a result");
    assert_eq!(done["content"][0]["text"], "fast-1: decline", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_calls_are_capped_and_expire_cancelling_the_backend_call() {
    let s = setup_at(
        ip90(4, 1),
        ip90(4, 2),
        &[
            ("MAX_WAITING_CALLS", "1".into()),
            ("CALL_TIMEOUT_SECONDS", "6".into()),
        ],
    )
    .await;
    let c = modern_client(&s.gateway.url());
    let first = raw_call(&c, "confirm", json!({})).await.expect("a result");
    let (state, key) = question(&first);
    // The one waiting place is taken: the next question is refused at once and the
    // backend answers in its own words.
    let doc = call(s.gateway.url(), "auto", "confirm", vec![]).await;
    assert!(
        text(&doc).starts_with("fast-1: elicitation failed:"),
        "{doc}"
    );
    assert_eq!(doc["asked"], json!([]), "{doc}");
    // The waiting call expires at its deadline, and the backend call is cancelled.
    procs::eventually(
        "the parked call expires",
        std::time::Duration::from_secs(30),
        || {
            let log = s.gateway.log_text();
            async move { log.contains("expired; backend call cancelled") }
        },
    )
    .await;
    let r = raw_call(
        &c,
        "confirm",
        json!({"inputResponses": {(key): {"action": "accept", "content": {"proceed": true}}}, "requestState": state}),
    )
    .await
    .expect_err("an error");
    assert!(
        ["expired", "unknown"].contains(&r["data"]["reason"].as_str().unwrap_or("")),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_announces_the_union_of_its_backends_capabilities() {
    let kube = FakeKube::start().await;
    let (fast, node) = (ip90(5, 2), ip90(5, 3));
    let port = procs::common_free_port(&[fast, node]);
    let _fastmcp = relay_backend(fast, port).await;
    let ours = procs::spawn_backend("n1", node, port).await;
    kube.set_node("fast-1", fast, true);
    kube.set_node("n1", node, true);
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("BACKEND_PROTOCOL", "legacy".to_string()),
    ];
    let gateway = procs::spawn_gateway(ip90(5, 1), &env).await;
    let capabilities = |url: String, mode: &'static str| {
        blocking(move || {
            let doc =
                interop::sdk_relay_client(&url, mode, "-", &json!({}), &["--capabilities-only"]);
            assert_eq!(doc["ok"], true, "{doc}");
            doc["capabilities"].clone()
        })
    };
    let fast_url = format!("http://{fast}:{port}/mcp");
    let mut offered = std::collections::BTreeSet::new();
    for direct in [
        capabilities(fast_url, "legacy").await,
        capabilities(ours.url(), "legacy").await,
    ] {
        offered.extend(direct.as_object().unwrap().keys().cloned());
    }
    // What the gateway relays of what some backend offers, and its own tools.
    let relayed = ["logging", "prompts", "completions", "resources", "tasks"];
    let mut want: std::collections::BTreeSet<String> = offered
        .iter()
        .filter(|k| relayed.contains(&k.as_str()))
        .cloned()
        .collect();
    want.insert("tools".into());
    assert!(want.contains("logging"), "both backends log: {offered:?}");
    // Both backends have the node server's catalog learned once the gateway is ready;
    // wait until it has connected to both (its capabilities follow the catalog).
    procs::eventually(
        "both backends learned",
        std::time::Duration::from_secs(30),
        || {
            let log = gateway.log_text();
            async move { log.matches("learned the pod's build").count() >= 2 }
        },
    )
    .await;
    for mode in ["legacy", "auto"] {
        let got = capabilities(gateway.url(), mode).await;
        let keys: std::collections::BTreeSet<String> =
            got.as_object().unwrap().keys().cloned().collect();
        // 2026-07-28 announces tasks as an extension.
        let mut want = want.clone();
        if mode == "auto" && want.remove("tasks") {
            want.insert("extensions".into());
        }
        assert_eq!(keys, want, "{mode}: {got} (backends offer {offered:?})");
        assert_eq!(got["tools"]["listChanged"], true, "{mode}: {got}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_backends_url_sampling_and_roots_questions_reach_clients_of_both_eras() {
    let (_kube, backend, gateway) = node_server_setup(6).await;
    let cases = [
        ("url", "n1: url accept", "elicitation/create"),
        (
            "sampling",
            "n1: model said sampled from-client",
            "sampling/createMessage",
        ),
        ("roots", "n1: roots file:///from-client", "roots/list"),
    ];
    for mode in ["legacy", "auto"] {
        for (kind, want, method) in cases {
            for (url, args) in [
                (backend.url(), json!({"kind": kind})),
                (gateway.url(), json!({"node": "n1", "kind": kind})),
            ] {
                let doc = blocking(move || {
                    interop::sdk_relay_client(&url, mode, "ask_client", &args, &[])
                })
                .await;
                assert_eq!(doc["ok"], true, "{mode} {kind}: {doc}");
                assert_eq!(text(&doc), want, "{mode} {kind}: {doc}");
                assert_eq!(doc["asked"], json!([method]), "{mode} {kind}: {doc}");
            }
        }
    }
    // Two clients at once through the gateway: each gets its own model's answer.
    for mode in ["legacy", "auto"] {
        let calls: Vec<_> = ["alpha", "beta"]
            .into_iter()
            .map(|answer| {
                let url = gateway.url();
                tokio::spawn(blocking(move || {
                    interop::sdk_relay_client(
                        &url,
                        mode,
                        "ask_client",
                        &json!({"node": "n1", "kind": "sampling"}),
                        &["--answer", answer],
                    )
                }))
            })
            .collect();
        for (call, answer) in calls.into_iter().zip(["alpha", "beta"]) {
            let doc = call.await.unwrap();
            assert_eq!(
                text(&doc),
                format!("n1: model said sampled {answer}"),
                "{mode}: {doc}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_backends_progress_reaches_clients_of_both_eras() {
    let s = setup_at(ip90(7, 1), ip90(7, 2), &[]).await;
    for mode in ["legacy", "auto"] {
        let doc = call(s.gateway.url(), mode, "count_steps", vec!["--progress"]).await;
        assert_eq!(doc["ok"], true, "{mode}: {doc}");
        assert_eq!(text(&doc), "fast-1: counted 3", "{mode}: {doc}");
        assert_eq!(doc["progress"], json!([1.0, 2.0, 3.0]), "{mode}: {doc}");
    }
}
