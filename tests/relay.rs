//! Relaying what happens during a call (issue 9), through the real gateway binary
//! to a FastMCP backend (PyPI `fastmcp`) the gateway speaks the legacy era to
//! (`BACKEND_PROTOCOL=legacy`: FastMCP's `ctx.elicit` needs a session), driven by the
//! official MCP Python SDK client in legacy and auto (2026-07-28) mode: log messages
//! filtered by the client's level, elicitation, sampling and roots answered by the
//! calling client, a client without the elicitation capability refused at once, and
//! two clients eliciting at once on one node without crossed answers.
//!
//! Loopback range: 127.50.x.y.

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
    let kube = FakeKube::start().await;
    let addr = ip(net, 2);
    let port = procs::common_free_port(&[addr]);
    let opts = interop::FastMcpOptions {
        node_name: Some("fast-1".into()),
        stateful: true,
        script: Some("fastmcp_relay_backend.py"),
        ..Default::default()
    };
    let host = addr.to_string();
    let backend = blocking(move || interop::spawn_fastmcp_backend_with(&host, port, opts)).await;
    kube.set_node("fast-1", addr, true);
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("BACKEND_PROTOCOL", "legacy".to_string()),
    ];
    let gateway = procs::spawn_gateway(ip(net, 1), &env).await;
    Setup {
        _kube: kube,
        _backend: backend,
        gateway,
    }
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
    // A 2026-07-28 client is not sent legacy requests (part 2: input_required).
    let doc = call(s.gateway.url(), "auto", "confirm", vec![]).await;
    assert_eq!(doc["protocol_version"], "2026-07-28", "{doc}");
    assert!(
        text(&doc).starts_with("fast-1: elicitation failed:"),
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_eliciting_at_once_on_one_node_get_their_own_answers() {
    let s = setup(4).await;
    let url = s.gateway.url();
    let one = {
        let url = url.clone();
        tokio::spawn(async move {
            blocking(move || {
                interop::sdk_relay_client(
                    &url,
                    "legacy",
                    "confirm",
                    &json!({"node": "fast-1"}),
                    &["--answer", "alpha"],
                )
            })
            .await
        })
    };
    let two = tokio::spawn(async move {
        blocking(move || {
            interop::sdk_relay_client(
                &url,
                "legacy",
                "confirm",
                &json!({"node": "fast-1"}),
                &["--answer", "beta"],
            )
        })
        .await
    });
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    assert_eq!(
        text(&one),
        "fast-1: accepted proceed=True note=alpha",
        "{one}"
    );
    assert_eq!(
        text(&two),
        "fast-1: accepted proceed=True note=beta",
        "{two}"
    );
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
