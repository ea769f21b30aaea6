//! Prompts, resources and completion per node, through the real gateway binary to two
//! FastMCP backends (nodes `fast-1`, `fast-2`), driven by the official MCP Python SDK
//! client in legacy and auto (2026-07-28) mode: prompts/list gains `node` first,
//! prompts/get is routed by it, completion of `node` comes from the gateway and of
//! any other argument from the node named in the context; resources listed per node
//! under `k8s-node://` URIs that round-trip, read routed by the node in the URI.
//!
//! Loopback range: 127.90.20.y and up.

#[path = "support/interop.rs"]
mod interop;
#[path = "../protocol/tests/common/schema.rs"]
mod schema;
mod support;

use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use support::fake_kube::FakeKube;
use support::procs;

fn ip90(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 90, net, host))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("peer task")
}

fn client(
    url: &str,
    mode: &'static str,
    prompt: &'static str,
    args: Value,
    extra: Vec<String>,
) -> impl FnOnce() -> Value + Send + 'static {
    let url = url.to_string();
    move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        interop::sdk_relay_client(&url, mode, prompt, &args, &extra)
    }
}

/// Completes `arg` (typed so far: `value`) of prompt `diagnose` with `context`.
async fn complete(url: &str, mode: &'static str, arg: &str, value: &str, context: Value) -> Value {
    let extra = [
        "--op",
        "complete",
        "--complete-arg",
        arg,
        "--complete-value",
        value,
    ]
    .map(String::from)
    .into_iter()
    .chain(["--context".to_string(), context.to_string()])
    .collect();
    blocking(client(url, mode, "diagnose", json!({}), extra)).await
}

/// Two FastMCP relay backends (fast-1, fast-2) behind the gateway.
struct Setup {
    _kube: FakeKube,
    backends: Vec<interop::FastMcpBackend>,
    gateway: procs::Proc,
}

async fn setup(net: u8) -> Setup {
    let kube = FakeKube::start().await;
    let addrs = [ip90(net, 2), ip90(net, 3)];
    let port = procs::common_free_port(&addrs);
    let mut backends = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let node = format!("fast-{}", i + 1);
        let opts = interop::FastMcpOptions {
            node_name: Some(node.clone()),
            stateful: true,
            script: Some("fastmcp_relay_backend.py"),
            ..Default::default()
        };
        let host = addr.to_string();
        backends
            .push(blocking(move || interop::spawn_fastmcp_backend_with(&host, port, opts)).await);
        kube.set_node(&node, *addr, true);
    }
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("BACKEND_PROTOCOL", "legacy".to_string()),
    ];
    let gateway = procs::spawn_gateway(ip90(net, 1), &env).await;
    Setup {
        _kube: kube,
        backends,
        gateway,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_completions_are_served_per_node_in_both_eras() {
    let s = setup(20).await;
    let (backends, gateway) = (&s.backends, &s.gateway);
    let prompts = vec!["--op".to_string(), "prompts".to_string()];
    let direct = blocking(client(
        &backends[1].url,
        "legacy",
        "diagnose",
        json!({"service": "kubelet"}),
        prompts.clone(),
    ))
    .await;
    assert_eq!(direct["ok"], true, "{direct}");
    for mode in ["legacy", "auto"] {
        let via = blocking(client(
            &gateway.url(),
            mode,
            "diagnose",
            json!({"node": "fast-2", "service": "kubelet"}),
            prompts.clone(),
        ))
        .await;
        assert_eq!(via["ok"], true, "{mode}: {via}");
        // The same prompt, `node` first and required.
        let named = |doc: &Value| {
            doc["prompts"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "diagnose").cloned())
                .unwrap_or_else(|| panic!("no prompt diagnose: {doc}"))
        };
        let served = &named(&via);
        assert_eq!(served["arguments"][0]["name"], "node", "{via}");
        assert_eq!(served["arguments"][0]["required"], true, "{via}");
        let theirs = &named(&direct)["arguments"];
        assert_eq!(
            &Value::Array(served["arguments"].as_array().unwrap()[1..].to_vec()),
            theirs,
            "{mode}"
        );
        // Routed to fast-2: the same messages as directly.
        assert_eq!(
            via["text"], "On node fast-2, diagnose kubelet (severity warning).",
            "{via}"
        );
        assert_eq!(
            via["prompt"]["messages"], direct["prompt"]["messages"],
            "{mode}"
        );
        // A prompt without arguments of its own, embedding a resource and an image.
        let shown = blocking(client(
            &gateway.url(),
            mode,
            "show_node",
            json!({"node": "fast-2"}),
            prompts.clone(),
        ))
        .await;
        let shown_direct = blocking(client(
            &backends[1].url,
            mode,
            "show_node",
            json!({}),
            prompts.clone(),
        ))
        .await;
        let messages = &shown["prompt"]["messages"];
        assert_eq!(messages, &shown_direct["prompt"]["messages"], "{mode}");
        assert_eq!(messages[0]["content"]["type"], "resource", "{shown}");
        assert_eq!(messages[1]["content"]["type"], "image", "{shown}");
        // `node` is completed by the gateway.
        let nodes = complete(&gateway.url(), mode, "node", "fast-", json!({})).await;
        assert_eq!(nodes["ok"], true, "{mode}: {nodes}");
        assert_eq!(
            nodes["completion"]["values"],
            json!(["fast-1", "fast-2"]),
            "{nodes}"
        );
        assert_eq!(nodes["completion"]["total"], 2, "{nodes}");
        assert_eq!(nodes["completion"]["hasMore"], false, "{nodes}");
        // Another argument: by the backend on the node in the context.
        let context = json!({"node": "fast-2"});
        let service = complete(&gateway.url(), mode, "service", "fast", context).await;
        assert_eq!(service["ok"], true, "{mode}: {service}");
        assert_eq!(
            service["completion"]["values"],
            json!(["fast-2-agent"]),
            "{service}"
        );
    }
}

/// A legacy backend's question during prompts/get reaches a legacy client on its
/// request's stream, and the answer comes back to the backend: the same prompt as
/// directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompts_questions_reach_the_legacy_client_through_the_gateway() {
    let s = setup(24).await;
    let extra = strs(&["--op", "prompts", "--answer", "yes"]);
    let direct = blocking(client(
        &s.backends[0].url,
        "legacy",
        "confirmed_diagnosis",
        json!({"service": "kubelet"}),
        extra.clone(),
    ))
    .await;
    let via = blocking(client(
        &s.gateway.url(),
        "legacy",
        "confirmed_diagnosis",
        json!({"node": "fast-1", "service": "kubelet"}),
        extra,
    ))
    .await;
    assert_eq!(via["ok"], true, "{via}");
    assert_eq!(via["asked"], json!(["elicitation/create"]), "{via}");
    assert_eq!(
        via["text"], "fast-1: accept diagnosis of kubelet (yes)",
        "{via}"
    );
    assert_eq!(via["prompt"]["messages"], direct["prompt"]["messages"]);
}

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_listed_and_read_per_node_with_uris_that_round_trip() {
    let s = setup(21).await;
    let direct = blocking(client(
        &s.backends[1].url,
        "legacy",
        "-",
        json!({}),
        strs(&["--op", "resources", "--uri", "node://info"]),
    ))
    .await;
    assert_eq!(direct["ok"], true, "{direct}");
    let info = "k8s-node://fast-2/node%3A%2F%2Finfo";
    for mode in ["legacy", "auto"] {
        let via = blocking(client(
            &s.gateway.url(),
            mode,
            "-",
            json!({}),
            strs(&["--op", "resources", "--uri", info]),
        ))
        .await;
        assert_eq!(via["ok"], true, "{mode}: {via}");
        // Every backend resource once per node, nodes in name order.
        let uris: Vec<&str> = via["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["uri"].as_str().unwrap())
            .collect();
        assert_eq!(
            uris,
            [
                "k8s-node://fast-1/node%3A%2F%2Finfo",
                "k8s-node://fast-1/node%3A%2F%2Fbadge",
                info,
                "k8s-node://fast-2/node%3A%2F%2Fbadge"
            ],
            "{mode}: {via}"
        );
        assert_eq!(via["next_cursor"], Value::Null, "{via}");
        // Read on fast-2: the backend's contents, its URI wrapped again.
        let mut want = direct["contents"].clone();
        want[0]["uri"] = info.into();
        assert_eq!(via["contents"], want, "{mode}: {via}");
        assert_eq!(via["contents"][0]["text"], "node fast-2", "{via}");
        // The template gains {node}; expanded by the client, it reads on that node.
        assert_eq!(
            via["templates"][0]["uriTemplate"], "k8s-node://{node}/node%3A%2F%2Flogs%2F{name}",
            "{via}"
        );
        // A binary resource: the same blob as directly.
        let badge = "k8s-node://fast-2/node%3A%2F%2Fbadge";
        let (direct_badge, via_badge) = (
            blocking(client(
                &s.backends[1].url,
                mode,
                "-",
                json!({}),
                strs(&["--op", "resources", "--uri", "node://badge"]),
            ))
            .await,
            blocking(client(
                &s.gateway.url(),
                mode,
                "-",
                json!({}),
                strs(&["--op", "resources", "--uri", badge]),
            ))
            .await,
        );
        let mut want = direct_badge["contents"].clone();
        assert!(want[0]["blob"].is_string(), "{direct_badge}");
        want[0]["uri"] = badge.into();
        assert_eq!(via_badge["contents"], want, "{mode}: {via_badge}");
        let log = "k8s-node://fast-1/node%3A%2F%2Flogs%2Fkubelet";
        let read = blocking(client(
            &s.gateway.url(),
            mode,
            "-",
            json!({}),
            strs(&["--op", "resources", "--uri", log]),
        ))
        .await;
        assert_eq!(
            read["contents"][0]["text"], "fast-1 log of kubelet",
            "{read}"
        );
        assert_eq!(read["contents"][0]["uri"], log, "{read}");
        // Completing the template's own variable goes to the node in the context.
        let template = "k8s-node://{node}/node%3A%2F%2Flogs%2F{name}";
        let done = blocking(client(
            &s.gateway.url(),
            mode,
            "-",
            json!({}),
            strs(&[
                "--op",
                "complete",
                "--uri",
                template,
                "--complete-arg",
                "name",
                "--complete-value",
                "fast",
                "--context",
                r#"{"node": "fast-1"}"#,
            ]),
        ))
        .await;
        assert_eq!(
            done["completion"]["values"],
            json!(["fast-1-agent"]),
            "{done}"
        );
    }
}

/// One request by our own client in `mode`; the result (panics on an error).
async fn request(c: &mcp_protocol::client::McpClient, method: &str, params: Value) -> Value {
    let params = params.as_object().cloned().unwrap_or_default();
    let reply = c
        .request(method, params, Default::default())
        .await
        .expect("transport");
    let raw = reply.unwrap_or_else(|e| panic!("{method}: {e:?}"));
    serde_json::from_str(raw.get()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_prompt_resource_and_completion_answer_is_valid_in_its_revision() {
    use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, http_client};
    let s = setup(22).await;
    for (mode, rev) in [
        (ClientMode::Legacy, "2025-11-25"),
        (ClientMode::Modern, "2026-07-28"),
    ] {
        let mut opts = ClientOptions::new("schema-tests", "0");
        opts.mode = mode;
        let c = McpClient::new(
            http_client(std::time::Duration::from_secs(5)),
            s.gateway.url(),
            opts,
        );
        let checks = [
            ("prompts/list", json!({}), "ListPromptsResult"),
            (
                "prompts/get",
                json!({"name": "diagnose", "arguments": {"node": "fast-1", "service": "kubelet"}}),
                "GetPromptResult",
            ),
            ("resources/list", json!({}), "ListResourcesResult"),
            (
                "resources/templates/list",
                json!({}),
                "ListResourceTemplatesResult",
            ),
            (
                "resources/read",
                json!({"uri": "k8s-node://fast-2/node%3A%2F%2Finfo"}),
                "ReadResourceResult",
            ),
            (
                "resources/read",
                json!({"uri": "k8s-node://fast-1/node%3A%2F%2Fbadge"}),
                "ReadResourceResult",
            ),
            (
                "prompts/get",
                json!({"name": "show_node", "arguments": {"node": "fast-2"}}),
                "GetPromptResult",
            ),
            (
                "completion/complete",
                json!({"ref": {"type": "ref/prompt", "name": "diagnose"},
                       "argument": {"name": "node", "value": "fast"}}),
                "CompleteResult",
            ),
            (
                "completion/complete",
                json!({"ref": {"type": "ref/prompt", "name": "diagnose"},
                       "argument": {"name": "service", "value": "k"},
                       "context": {"arguments": {"node": "fast-1"}}}),
                "CompleteResult",
            ),
        ];
        for (method, params, def) in checks {
            let result = request(&c, method, params).await;
            schema::assert_valid(rev, def, &result);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_2026_node_servers_prompt_and_resource_are_served_per_node() {
    let kube = FakeKube::start().await;
    let addr = ip90(23, 2);
    let port = procs::common_free_port(&[addr]);
    let backend = procs::spawn_backend("n1", addr, port).await;
    kube.set_node("n1", addr, true);
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
    ];
    let gateway = procs::spawn_gateway(ip90(23, 1), &env).await;
    let served = "k8s-node://n1/node%3A%2F%2Fos-release";
    for mode in ["legacy", "auto"] {
        let direct = blocking(client(
            &backend.url(),
            mode,
            "triage_node",
            json!({"symptom": "load"}),
            strs(&["--op", "prompts"]),
        ))
        .await;
        let via = blocking(client(
            &gateway.url(),
            mode,
            "triage_node",
            json!({"node": "n1", "symptom": "load"}),
            strs(&["--op", "prompts"]),
        ))
        .await;
        assert_eq!(via["ok"], true, "{mode}: {via}");
        assert_eq!(via["prompts"][0]["arguments"][0]["name"], "node", "{via}");
        assert_eq!(
            via["prompt"]["messages"], direct["prompt"]["messages"],
            "{mode}"
        );
        assert!(
            via["text"].as_str().unwrap().starts_with("Triage node n1"),
            "{via}"
        );
        let direct = blocking(client(
            &backend.url(),
            mode,
            "-",
            json!({}),
            strs(&["--op", "resources", "--uri", "node://os-release"]),
        ))
        .await;
        let via = blocking(client(
            &gateway.url(),
            mode,
            "-",
            json!({}),
            strs(&["--op", "resources", "--uri", served]),
        ))
        .await;
        assert_eq!(via["ok"], true, "{mode}: {via}");
        assert_eq!(via["resources"][0]["uri"], served, "{via}");
        assert_eq!(
            via["contents"][0]["text"], direct["contents"][0]["text"],
            "{mode}"
        );
        assert_eq!(via["contents"][0]["uri"], served, "{via}");
    }
}

/// A node server saying its prompts or resources changed reaches clients of the
/// gateway in both eras (legacy GET stream, 2026-07-28 `subscriptions/listen`), and
/// the gateway's next list asks the pods again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_and_resource_list_changes_reach_clients_and_refresh_the_lists() {
    use mcp_protocol::client::{ClientMode, ClientOptions, ListKind, McpClient, http_client};
    use std::time::{Duration, Instant};
    let kube = FakeKube::start().await;
    let addr = ip90(25, 2);
    let port = procs::common_free_port(&[addr]);
    let hide = std::env::temp_dir().join(format!("hide-lists-{}", std::process::id()));
    std::fs::write(&hide, "").unwrap();
    let _backend = procs::spawn_backend_with(
        "n1",
        addr,
        port,
        &[("HIDE_TOOLS_FILE", hide.display().to_string())],
    )
    .await;
    kube.set_node("n1", addr, true);
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
    ];
    let gateway = procs::spawn_gateway(ip90(25, 1), &env).await;
    let client = |mode| {
        let mut opts = ClientOptions::new("list-tests", "0");
        opts.mode = mode;
        McpClient::new(http_client(Duration::from_secs(5)), gateway.url(), opts)
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut listening = Vec::new();
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let (c, tx) = (client(mode), tx.clone());
        listening.push(tokio::spawn(async move {
            let mut on = |kind: ListKind| {
                let _ = tx.send((mode, kind));
            };
            c.listen_lists_changed(Duration::from_secs(60), &mut on)
                .await
        }));
    }
    // Heard by both clients, in both lists: toggles the file until each pair arrived
    // (the gateway's own listener on the pod may still be connecting at first).
    let mut want: std::collections::HashSet<(ClientMode, ListKind)> = [
        (ClientMode::Legacy, ListKind::Prompts),
        (ClientMode::Modern, ListKind::Prompts),
        (ClientMode::Legacy, ListKind::Resources),
        (ClientMode::Modern, ListKind::Resources),
    ]
    .into();
    let start = Instant::now();
    let mut hidden = false;
    while !want.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never heard {want:?}:\n{}",
            gateway.log_text()
        );
        hidden = !hidden;
        std::fs::write(
            &hide,
            if hidden {
                "triage_node,node://os-release"
            } else {
                ""
            },
        )
        .unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some(heard)) = tokio::time::timeout_at(until, rx.recv()).await {
            want.remove(&heard);
        }
    }
    // The lists follow the node server's now (its cached answer was dropped).
    let c = client(ClientMode::Modern);
    let prompts = request(&c, "prompts/list", json!({})).await;
    let resources = request(&c, "resources/list", json!({})).await;
    let expected = if hidden { 0 } else { 1 };
    assert_eq!(
        prompts["prompts"].as_array().unwrap().len(),
        expected,
        "{prompts}"
    );
    assert_eq!(
        resources["resources"].as_array().unwrap().len(),
        expected,
        "{resources}"
    );
    for l in listening {
        l.abort();
    }
    let _ = std::fs::remove_file(&hide);
}

/// A subscribed resource's changes reach clients of the gateway in both eras
/// (2025-11-25 `resources/subscribe` and the session's GET stream; 2026-07-28
/// `subscriptions/listen` with `resourceSubscriptions`), against node servers spoken
/// to in either era, with the gateway's URI in each notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_subscriptions_are_relayed_in_both_eras() {
    use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, http_client};
    use std::time::{Duration, Instant};
    let root = std::env::temp_dir().join(format!("sub-root-{}", std::process::id()));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let file = root.join("etc/os-release");
    std::fs::write(&file, "ID=test\n").unwrap();
    let served = "k8s-node://n1/node%3A%2F%2Fos-release";
    for (net, backend) in [(26u8, "legacy"), (27, "modern")] {
        let kube = FakeKube::start().await;
        let addr = ip90(net, 2);
        let port = procs::common_free_port(&[addr]);
        let _node = procs::spawn_backend_with(
            "n1",
            addr,
            port,
            &[("HOST_ROOT", root.display().to_string())],
        )
        .await;
        kube.set_node("n1", addr, true);
        let env = [
            ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
            ("BACKEND_PORT", port.to_string()),
            ("BACKEND_PROTOCOL", backend.to_string()),
        ];
        let gateway = procs::spawn_gateway(ip90(net, 1), &env).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut listening = Vec::new();
        for mode in [ClientMode::Legacy, ClientMode::Modern] {
            let mut opts = ClientOptions::new("subscription-tests", "0");
            opts.mode = mode;
            let c = McpClient::new(http_client(Duration::from_secs(5)), gateway.url(), opts);
            if mode == ClientMode::Legacy {
                let caps = c.connect().await.expect("initialize").capabilities.clone();
                assert_eq!(caps["resources"]["subscribe"], true, "{caps}");
                request(&c, "resources/subscribe", json!({"uri": served})).await;
            }
            let tx = tx.clone();
            listening.push(tokio::spawn(async move {
                let rev = if mode == ClientMode::Legacy {
                    "2025-11-25"
                } else {
                    "2026-07-28"
                };
                let mut on = |note: bytes::Bytes| {
                    let v: Value = serde_json::from_slice(&note).unwrap_or_default();
                    if v["method"] == "notifications/subscriptions/acknowledged" {
                        schema::assert_valid(rev, "SubscriptionsAcknowledgedNotification", &v);
                    }
                    if v["method"] == "notifications/resources/updated" {
                        schema::assert_valid(rev, "ResourceUpdatedNotification", &v);
                        let _ = tx.send((mode, v["params"]["uri"].clone()));
                    }
                };
                let filter = json!({"resourceSubscriptions": [served]});
                c.listen_notifications(Duration::from_secs(60), filter, &mut on)
                    .await
            }));
        }
        let mut heard = std::collections::HashSet::new();
        let start = Instant::now();
        let mut n = 0;
        while heard.len() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{backend}: only {heard:?} heard:\n{}",
                gateway.log_text()
            );
            n += 1;
            std::fs::write(&file, format!("ID=test\nVERSION_ID={n}\n")).unwrap();
            let until = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(Some((mode, uri))) = tokio::time::timeout_at(until, rx.recv()).await {
                assert_eq!(uri, served, "{backend}/{mode:?}");
                heard.insert(mode);
            }
        }
        for l in listening {
            l.abort();
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Our node server asks for the symptom when `triage_node` gets none: a legacy
/// client is asked through the gateway whether the gateway speaks 2025-11-25 to the
/// node server (the question relayed on the request's stream) or 2026-07-28 (its
/// `input_required` asked of the client, then the request sent again), and gets the
/// same prompt as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_servers_prompt_question_reaches_a_legacy_client_from_either_era() {
    let extra = strs(&["--op", "prompts", "--answer", "disk pressure"]);
    for (net, backend) in [(28u8, "modern"), (29, "legacy")] {
        let kube = FakeKube::start().await;
        let addr = ip90(net, 2);
        let port = procs::common_free_port(&[addr]);
        let node = procs::spawn_backend("n1", addr, port).await;
        kube.set_node("n1", addr, true);
        let env = [
            ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
            ("BACKEND_PORT", port.to_string()),
            ("BACKEND_PROTOCOL", backend.to_string()),
        ];
        let gateway = procs::spawn_gateway(ip90(net, 1), &env).await;
        let direct = blocking(client(
            &node.url(),
            "legacy",
            "triage_node",
            json!({}),
            extra.clone(),
        ))
        .await;
        let via = blocking(client(
            &gateway.url(),
            "legacy",
            "triage_node",
            json!({"node": "n1"}),
            extra.clone(),
        ))
        .await;
        assert_eq!(via["ok"], true, "{backend}: {via}");
        assert_eq!(direct["asked"], json!(["elicitation/create"]), "{direct}");
        assert_eq!(
            via["asked"],
            json!(["elicitation/create"]),
            "{backend}: {via}"
        );
        assert!(
            via["text"]
                .as_str()
                .unwrap_or("")
                .contains("look for disk pressure"),
            "{backend}: {via}"
        );
        assert_eq!(
            via["prompt"]["messages"], direct["prompt"]["messages"],
            "{backend}"
        );
    }
}
