//! One cluster, one catalog, against real parts: node servers of different
//! builds (the real binary with HIDE_TOOLS) on their own loopback addresses, the fake
//! Kubernetes API with zones, and the real gateway.
//!
//! Addresses: 127.50.net.host (net 1: rollout, 2: a hanging pod, 3: fan-out, 4: node map,
//! 5: fan-out cancelled); 127.91.net.host (net 2: two builds with a differing schema
//! rolled over and pods that change their tools, 2026-07-28 backends; 3: the same,
//! legacy backends).

mod support;

use mcp_protocol::client::ClientMode;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::fake_kube::FakeKube;
use support::mcp::{backend_tools, call, client, is_error, text};
use support::procs::{self, Proc};

const DEADLINE: Duration = Duration::from_secs(30);

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 50, net, host))
}

/// Build A lacks cpu_usage, build B lacks disk_usage.
const BUILD_A: &str = "cpu_usage";
const BUILD_B: &str = "disk_usage";

async fn backend(kube: &FakeKube, node: &str, addr: IpAddr, port: u16, hide: &str) -> Proc {
    let p = procs::spawn_backend_with(node, addr, port, &[("HIDE_TOOLS", hide.to_string())]).await;
    kube.set_node(node, addr, true);
    p
}

async fn gateway(kube: &FakeKube, net: u8, port: u16, extra: &[(&str, String)]) -> Proc {
    let mut env = vec![
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("CATALOG_DEBOUNCE_MS", "200".to_string()),
    ];
    env.extend(extra.iter().cloned());
    procs::spawn_gateway(ip(net, 1), &env).await
}

async fn tools(url: &str, mode: ClientMode) -> Vec<Value> {
    backend_tools(&client(url, mode).list_tools().await.unwrap().unwrap())
}

fn names(tools: &[Value]) -> Vec<&str> {
    tools.iter().map(|t| t["name"].as_str().unwrap()).collect()
}

fn availability(tools: &[Value], name: &str) -> Value {
    tools
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t.pointer("/_meta/k8s-aggregator-mcp~1availability"))
        .cloned()
        .unwrap_or(Value::Null)
}

async fn readyz(url: &str) -> Value {
    let base = url.trim_end_matches("/mcp");
    let body = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Collects what arrives on a legacy session's GET stream.
async fn listen_legacy(url: &str) -> Arc<Mutex<String>> {
    let http = reqwest::Client::new();
    let init = http
        .post(url)
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
    let stream = http
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    collect(stream)
}

/// Everything an open stream sends, gathered as it arrives.
fn collect(mut stream: reqwest::Response) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = stream.chunk().await {
            out.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    seen
}

fn list_changed(seen: &Mutex<String>) -> usize {
    seen.lock()
        .unwrap()
        .matches("notifications/tools/list_changed")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_serves_the_union_names_the_nodes_that_have_a_tool_and_ends_with_one_build() {
    let kube = FakeKube::start().await;
    let addrs: Vec<IpAddr> = (2..=6).chain(14..=15).map(|h| ip(1, h)).collect();
    let port = procs::common_free_port(&addrs);
    let mut pods = Vec::new();
    for n in 1..=5u8 {
        let hide = if n <= 3 { BUILD_A } else { BUILD_B };
        pods.push(backend(&kube, &format!("node-{n}"), ip(1, n + 1), port, hide).await);
    }
    let gw = gateway(&kube, 1, port, &[]).await;
    let url = gw.url();
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let served = tools(&url, mode).await;
        // Build A is on most nodes: its tools in its order, then what only B has.
        assert_eq!(
            names(&served),
            ["node_info", "list_processes", "disk_usage", "cpu_usage"],
            "{mode:?}"
        );
        assert_eq!(availability(&served, "node_info"), Value::Null);
        assert_eq!(
            availability(&served, "disk_usage"),
            json!({"nodes": 3, "of": 5})
        );
        assert_eq!(
            availability(&served, "cpu_usage"),
            json!({"nodes": 2, "of": 5})
        );
        let cpu = served.iter().find(|t| t["name"] == "cpu_usage").unwrap();
        assert!(
            cpu["description"]
                .as_str()
                .unwrap()
                .ends_with("(Available on 2 of 5 nodes.)"),
            "{cpu}"
        );
        let gw = client(&url, mode);
        let out = call(&gw, "cpu_usage", json!({"node": "node-1"}), None).await;
        let r = out.result.unwrap();
        assert!(is_error(&r), "{r}");
        assert!(text(&r).contains("Nodes that do: node-4, node-5."), "{r}");
        let out = call(&gw, "disk_usage", json!({"node": "node-5"}), None).await;
        let r = out.result.unwrap();
        assert!(
            text(&r).contains("Nodes that do: node-1, node-2, node-3."),
            "{r}"
        );
        let out = call(&gw, "disk_usage", json!({"node": "node-2"}), None).await;
        assert!(!is_error(&out.result.unwrap()), "{mode:?}");
    }
    let report = readyz(&url).await;
    assert_eq!(
        report["catalog"]["builds"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    assert_eq!(report["catalog"]["builds"][0]["readyNodes"], 3, "{report}");

    // Roll node-4 and node-5 over to build A, one at a time (new pod, new IP).
    let seen = listen_legacy(&url).await;
    for (i, n) in [4u8, 5].into_iter().enumerate() {
        let node = format!("node-{n}");
        let old = &mut pods[n as usize - 1];
        old.child.kill().ok();
        let _ = old.child.wait();
        pods.push(backend(&kube, &node, ip(1, n + 10), port, BUILD_A).await);
        let want = if n == 4 {
            json!({"nodes": 1, "of": 5})
        } else {
            Value::Null
        };
        procs::eventually("the catalog follows the rollout", DEADLINE, || async {
            availability(&tools(&url, ClientMode::Modern).await, "cpu_usage") == want
                && list_changed(&seen) == i + 1
        })
        .await;
    }
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let served = tools(&url, mode).await;
        assert_eq!(
            names(&served),
            ["node_info", "list_processes", "disk_usage"],
            "{mode:?}"
        );
        assert_eq!(availability(&served, "disk_usage"), Value::Null);
        let out = call(
            &client(&url, mode),
            "disk_usage",
            json!({"node": "node-5"}),
            None,
        )
        .await;
        let r = out.result.unwrap();
        assert!(!is_error(&r), "{r}");
    }
    assert_eq!(list_changed(&seen), 2, "one list_changed per real change");
}

/// A "pod" that accepts connections and never answers.
async fn hanging_pod(addr: SocketAddr) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_pod_does_not_hold_the_catalog_and_times_out_alone_in_a_fan_out() {
    let kube = FakeKube::start().await;
    let port = procs::common_free_port(&[ip(2, 2), ip(2, 3), ip(2, 4)]);
    let _a = backend(&kube, "node-1", ip(2, 2), port, "").await;
    hanging_pod(SocketAddr::new(ip(2, 3), port)).await;
    kube.set_node("node-2", ip(2, 3), true);
    let _c = backend(&kube, "node-3", ip(2, 4), port, "").await;
    let gw = gateway(
        &kube,
        2,
        port,
        &[
            // Far longer than the test: the catalog must not wait for it.
            ("CATALOG_LEARN_TIMEOUT_SECONDS", "600".into()),
            ("FANOUT_NODE_TIMEOUT_SECONDS", "1".into()),
        ],
    )
    .await;
    let url = gw.url();
    // Served while the hanging pod is still being asked.
    assert_eq!(tools(&url, ClientMode::Modern).await.len(), 4);
    let report = readyz(&url).await;
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(
        report["catalog"]["learning"],
        json!({"pods": 1, "nodes": ["node-2"]}),
        "{report}"
    );
    assert_eq!(report["catalog"]["builds"][0]["readyNodes"], 2, "{report}");
    let out = call(
        &client(&url, ClientMode::Modern),
        "fan_out",
        json!({"tool": "node_info", "target": "all"}),
        None,
    )
    .await;
    let r = out.result.unwrap();
    assert!(!is_error(&r), "{r}");
    let s = &r["structuredContent"];
    assert_eq!(
        s["summary"],
        json!({"nodes": 3, "ok": 2, "failed": 0, "timedOut": 1}),
        "{r}"
    );
    assert_eq!(s["results"]["node-2"]["status"], "timed_out");
    assert_eq!(s["results"]["node-3"]["result"]["node_name"], "node-3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_all_a_list_a_glob_and_a_zone_with_progress_and_a_cap() {
    let kube = FakeKube::start().await;
    let addrs: Vec<IpAddr> = (2..=5).map(|h| ip(3, h)).collect();
    let port = procs::common_free_port(&addrs);
    let mut pods = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let node = format!("node-{}", i + 1);
        pods.push(backend(&kube, &node, *a, port, "").await);
        kube.set_node_zone(&node, if i % 2 == 0 { "zone-a" } else { "zone-b" });
    }
    let gw = gateway(
        &kube,
        3,
        port,
        &[
            ("FANOUT_TOOL_NAME", "everywhere".into()),
            ("FANOUT_MAX_NODES", "4".into()),
        ],
    )
    .await;
    let url = gw.url();
    let keys = |r: &Value| -> Vec<String> {
        r["structuredContent"]["results"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let c = client(&url, mode);
        let listed = c.list_tools().await.unwrap().unwrap();
        assert!(listed.iter().any(|t| t["name"] == "everywhere"), "{mode:?}");
        let out = call(
            &c,
            "everywhere",
            json!({"tool": "node_info", "arguments": {}, "target": "all"}),
            Some(json!("p1")),
        )
        .await;
        let r = out.result.unwrap();
        assert_eq!(keys(&r), ["node-1", "node-2", "node-3", "node-4"], "{r}");
        for (node, entry) in r["structuredContent"]["results"].as_object().unwrap() {
            assert_eq!(entry["status"], "ok");
            // Each answer comes from that node's own server.
            assert_eq!(entry["result"]["node_name"], *node, "{mode:?}");
        }
        assert!(text(&r).starts_with("node_info on 4 nodes: 4 ok, 0 failed, 0 timed out."));
        let progress = out
            .notifications
            .iter()
            .filter(|(_, n)| n["method"] == "notifications/progress")
            .count();
        assert_eq!(progress, 4, "{mode:?}: {:?}", out.notifications);

        // A zone.
        let out = call(
            &c,
            "everywhere",
            json!({"tool": "node_info", "target": {"zone": "zone-b"}}),
            None,
        )
        .await;
        assert_eq!(keys(&out.result.unwrap()), ["node-2", "node-4"]);
        // A glob.
        let out = call(
            &c,
            "everywhere",
            json!({"tool": "node_info", "target": {"glob": "*-3"}}),
            None,
        )
        .await;
        assert_eq!(keys(&out.result.unwrap()), ["node-3"]);
        // A list with an unknown node: its entry fails, the rest answer.
        let out = call(
            &c,
            "everywhere",
            json!({"tool": "node_info", "target": {"nodes": ["node-2", "ghost"]}}),
            None,
        )
        .await;
        let r = out.result.unwrap();
        assert!(!is_error(&r), "{r}");
        let results = &r["structuredContent"]["results"];
        assert_eq!(results["node-2"]["status"], "ok");
        assert_eq!(results["ghost"]["status"], "failed");
        assert!(
            results["ghost"]["error"]
                .as_str()
                .unwrap()
                .contains("Unknown node \"ghost\"")
        );
        // Nothing worked: an error result.
        let out = call(
            &c,
            "everywhere",
            json!({"tool": "node_info", "target": {"nodes": ["ghost"]}}),
            None,
        )
        .await;
        assert!(is_error(&out.result.unwrap()));
        // Over the cap: refused, not truncated.
        let out = call(
            &c,
            "everywhere",
            json!({"tool": "node_info", "target": {"nodes": ["a", "b", "c", "d", "e"]}}),
            None,
        )
        .await;
        let r = out.result.unwrap();
        assert!(is_error(&r));
        assert!(text(&r).contains("at most 4"), "{r}");
        // The fan-out cannot run itself, and `node` is the gateway's to set.
        for args in [
            json!({"tool": "everywhere", "target": "all"}),
            json!({"tool": "node_info", "arguments": {"node": "node-1"}, "target": "all"}),
            json!({"tool": "nope", "target": "all"}),
        ] {
            let out = call(&c, "everywhere", args.clone(), None).await;
            assert!(is_error(&out.result.unwrap()), "{args}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_map_shows_state_zone_pod_and_build_filtered_and_paged() {
    let kube = FakeKube::start().await;
    let addrs: Vec<IpAddr> = (2..=4).map(|h| ip(4, h)).collect();
    let port = procs::common_free_port(&addrs);
    let mut pods = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let node = format!("node-{}", i + 1);
        let hide = if i == 2 { BUILD_A } else { "" };
        pods.push(backend(&kube, &node, *a, port, hide).await);
        kube.set_node_zone(&node, if i == 0 { "zone-a" } else { "zone-b" });
    }
    // An unready node and a terminating pod, as the EndpointSlice controller writes them.
    kube.set_node("node-4", ip(4, 9), false);
    kube.put_slice(
        "extra",
        json!({
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": [ip(4, 10).to_string()],
                "conditions": {"ready": false, "serving": true, "terminating": true},
                "nodeName": "node-5",
                "zone": "zone-a",
                "targetRef": {"kind": "Pod", "name": "node-mcp-server-old"}
            }]
        }),
    );
    let gw = gateway(&kube, 4, port, &[]).await;
    let url = gw.url();
    let c = client(&url, ClientMode::Modern);
    procs::eventually("all five nodes are known", DEADLINE, || async {
        let out = call(&c, "list_nodes", json!({}), None).await;
        out.result.unwrap()["structuredContent"]["total"] == 5
    })
    .await;
    let out = call(&c, "list_nodes", json!({}), None).await;
    let r = out.result.unwrap();
    let nodes = r["structuredContent"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes[0]["name"], "node-1");
    assert_eq!(nodes[0]["ready"], true);
    assert_eq!(nodes[0]["zone"], "zone-a");
    assert_eq!(nodes[0]["pod"], "node-mcp-server-node-1");
    assert_eq!(nodes[0]["ip"], ip(4, 2).to_string());
    assert_eq!(nodes[0]["build"]["tools"], 4);
    assert!(
        nodes[0]["build"]["server"]
            .as_str()
            .unwrap()
            .starts_with("node-mcp-server ")
    );
    assert_eq!(
        nodes[2]["build"]["tools"], 3,
        "node-3 runs the smaller build"
    );
    assert_ne!(nodes[0]["build"]["digest"], nodes[2]["build"]["digest"]);
    assert_eq!(nodes[3]["ready"], false);
    assert_eq!(nodes[3]["build"], Value::Null);
    assert_eq!(nodes[4]["terminating"], true);
    assert!(
        text(&r).contains("node-5: not ready, terminating, zone zone-a"),
        "{r}"
    );
    let names_of = |r: &Value| -> Vec<String> {
        r["structuredContent"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (args, want) in [
        (
            json!({"state": "ready"}),
            vec!["node-1", "node-2", "node-3"],
        ),
        (json!({"state": "not_ready"}), vec!["node-4", "node-5"]),
        (json!({"state": "terminating"}), vec!["node-5"]),
        (json!({"zone": "zone-a"}), vec!["node-1", "node-5"]),
        (json!({"glob": "*-2"}), vec!["node-2"]),
    ] {
        let r = call(&c, "list_nodes", args.clone(), None)
            .await
            .result
            .unwrap();
        assert_eq!(names_of(&r), want, "{args}");
    }
    // Pages of two, with the opaque cursor.
    let mut seen = Vec::new();
    let mut args = json!({"limit": 2});
    loop {
        let r = call(&c, "list_nodes", args.clone(), None)
            .await
            .result
            .unwrap();
        assert_eq!(r["structuredContent"]["total"], 5);
        seen.extend(names_of(&r));
        match r["structuredContent"]["nextCursor"].as_str() {
            Some(cursor) => args = json!({"limit": 2, "cursor": cursor}),
            None => break,
        }
    }
    assert_eq!(seen, ["node-1", "node-2", "node-3", "node-4", "node-5"]);
    for bad in [
        json!({"state": "up"}),
        json!({"limit": 0}),
        json!({"cursor": "%%%"}),
        json!({"x": 1}),
    ] {
        let r = call(&c, "list_nodes", bad.clone(), None)
            .await
            .result
            .unwrap();
        assert!(is_error(&r), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_fan_out_cancels_the_node_calls_still_running() {
    let kube = FakeKube::start().await;
    let addrs: Vec<IpAddr> = (2..=3).map(|h| ip(5, h)).collect();
    let port = procs::common_free_port(&addrs);
    let mut pods = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        pods.push(backend(&kube, &format!("node-{}", i + 1), *a, port, "").await);
    }
    let gw = gateway(&kube, 5, port, &[]).await;
    let c = client(&gw.url(), ClientMode::Legacy);
    c.connect().await.unwrap();
    let id = c.next_id();
    let mut params = serde_json::Map::new();
    params.insert("name".into(), "fan_out".into());
    params.insert(
        "arguments".into(),
        json!({"tool": "cpu_usage", "arguments": {"seconds": 30}, "target": {"nodes": ["ghost", "node-1", "node-2"]}}),
    );
    params.insert("_meta".into(), json!({"progressToken": "fan"}));
    // "ghost" fails at once: its progress note says the node calls are under way.
    let started = Arc::new(tokio::sync::Notify::new());
    let seen = started.clone();
    let mut on = move |b: bytes::Bytes| {
        if String::from_utf8_lossy(&b).contains("notifications/progress") {
            seen.notify_one();
        }
    };
    let opts = mcp_protocol::client::RequestOptions {
        id: Some(id.clone()),
        on_notification: Some(&mut on),
        ..Default::default()
    };
    let pending = c.call_tool(params, opts);
    let canceller = async {
        started.notified().await;
        // Both real node calls are running on their nodes.
        for pod in &pods {
            procs::eventually("the node call started", DEADLINE, || async {
                pod.log_text().contains("tool call started")
            })
            .await;
        }
        c.cancel(&id, "test").await.unwrap();
    };
    let (reply, ()) = tokio::join!(pending, canceller);
    assert!(
        reply.is_err(),
        "a cancelled call is not answered: {reply:?}"
    );
    for pod in &pods {
        procs::eventually("each node's call was cancelled", DEADLINE, || async {
            pod.log_text().contains("cancelled")
        })
        .await;
    }
}

/// Collects what arrives on a 2026-07-28 `subscriptions/listen` stream (returns once
/// the stream is open).
async fn listen_modern(url: &str) -> Arc<Mutex<String>> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}}}});
    let stream = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    if stream.status() != 200 {
        panic!("{}: {}", stream.status(), stream.text().await.unwrap());
    }
    collect(stream)
}

fn schema_props(tools: &[Value], name: &str) -> Vec<String> {
    let t = tools.iter().find(|t| t["name"] == name).unwrap();
    t["inputSchema"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_builds_with_a_differing_schema_roll_over_and_changed_pods_are_relearned_modern_backends()
 {
    two_builds_roll_over(2, "modern").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_builds_with_a_differing_schema_roll_over_and_changed_pods_are_relearned_legacy_backends()
 {
    two_builds_roll_over(3, "legacy").await;
}

/// Build A on 3 nodes, build B (another list_processes schema, no disk_usage) on 2:
/// the union, availability errors, every A pod replaced by a B pod with one
/// list_changed per step on both client eras, then B's pods change their tools and
/// say so (`BACKEND_PROTOCOL` is `backend`; heard on subscriptions/listen or the legacy
/// GET stream) and the gateway re-learns them.
async fn two_builds_roll_over(net: u8, backend: &str) {
    let at = |h: u8| IpAddr::V4(Ipv4Addr::new(127, 91, net, h));
    let kube = FakeKube::start().await;
    let addrs: Vec<IpAddr> = (2..=6).chain(12..=14).map(at).collect();
    let port = procs::common_free_port(&addrs);
    // Build B: list_processes with another schema, no disk_usage (hidden through a
    // file its pods re-read, so they can change their tools later).
    let dir = std::env::temp_dir().join(format!("catalog-builds-{backend}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hide_file = dir.join("hide");
    std::fs::write(&hide_file, "disk_usage").unwrap();
    let build_b = vec![
        ("TOOL_VARIANT", "b".to_string()),
        ("HIDE_TOOLS_FILE", hide_file.display().to_string()),
    ];
    let spawn = |node: String, addr: IpAddr, b: bool| {
        let env = if b { build_b.clone() } else { Vec::new() };
        let kube = &kube;
        async move {
            let p = procs::spawn_backend_with(&node, addr, port, &env).await;
            kube.set_node(&node, addr, true);
            p
        }
    };
    let mut pods = Vec::new();
    for n in 1..=5u8 {
        pods.push(spawn(format!("node-{n}"), at(n + 1), n > 3).await);
    }
    let gw = procs::spawn_gateway(
        at(1),
        &[
            ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
            ("BACKEND_PORT", port.to_string()),
            ("CATALOG_DEBOUNCE_MS", "300".to_string()),
            ("BACKEND_PROTOCOL", backend.to_string()),
        ],
    )
    .await;
    let url = gw.url();
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let served = tools(&url, mode).await;
        // A is on 3 of 5 nodes: its definition of list_processes is served.
        assert!(!schema_props(&served, "list_processes").contains(&"variant".into()));
        assert_eq!(
            availability(&served, "list_processes"),
            json!({"nodes": 3, "of": 5})
        );
        assert_eq!(
            availability(&served, "disk_usage"),
            json!({"nodes": 3, "of": 5})
        );
        let out = call(
            &client(&url, mode),
            "list_processes",
            json!({"node": "node-4"}),
            None,
        )
        .await;
        let r = out.result.unwrap();
        assert!(is_error(&r), "{r}");
        assert!(
            text(&r).contains("Nodes that do: node-1, node-2, node-3."),
            "{r}"
        );
    }
    // Five nodes (under NODE_ENUM_MAX_NODES): `node` lists them.
    let served = tools(&url, ClientMode::Modern).await;
    let node = &served[0]["inputSchema"]["properties"]["node"];
    assert_eq!(
        node["enum"],
        json!(["node-1", "node-2", "node-3", "node-4", "node-5"]),
        "{node}"
    );
    let report = readyz(&url).await;
    assert_eq!(
        report["catalog"]["conflicts"][0]["tool"], "list_processes",
        "{report}"
    );
    assert_eq!(report["catalog"]["listening"], 5, "{report}");

    // Replace every pod of build A by a pod of build B, one at a time.
    let legacy = listen_legacy(&url).await;
    let modern = listen_modern(&url).await;
    let steps = [
        (json!({"nodes": 3, "of": 5}), json!({"nodes": 2, "of": 5})),
        (json!({"nodes": 4, "of": 5}), json!({"nodes": 1, "of": 5})),
        (Value::Null, Value::Null),
    ];
    for (i, (n, (procs_avail, disk_avail))) in (1..=3u8).zip(steps).enumerate() {
        let old = &mut pods[n as usize - 1];
        old.child.kill().ok();
        let _ = old.child.wait();
        pods.push(spawn(format!("node-{n}"), at(n + 11), true).await);
        procs::eventually("the catalog follows the rollout", DEADLINE, || async {
            let served = tools(&url, ClientMode::Modern).await;
            let has_disk = served.iter().any(|t| t["name"] == "disk_usage");
            schema_props(&served, "list_processes").contains(&"variant".into())
                && availability(&served, "list_processes") == procs_avail
                && (if disk_avail.is_null() {
                    !has_disk
                } else {
                    availability(&served, "disk_usage") == disk_avail
                })
                && list_changed(&legacy) == i + 1
                && list_changed(&modern) == i + 1
        })
        .await;
    }
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let served = tools(&url, mode).await;
        assert_eq!(
            names(&served),
            ["node_info", "list_processes", "cpu_usage"],
            "{mode:?}"
        );
        let out = call(
            &client(&url, mode),
            "list_processes",
            json!({"node": "node-1", "limit": 1}),
            None,
        )
        .await;
        assert!(!is_error(&out.result.unwrap()), "{mode:?}");
    }
    assert_eq!(list_changed(&legacy), 3, "one list_changed per real change");
    assert_eq!(list_changed(&modern), 3, "one list_changed per real change");

    // The pods now drop cpu_usage and say so: the gateway hears it and re-learns.
    std::fs::write(&hide_file, "disk_usage,cpu_usage").unwrap();
    procs::eventually("the pods' change reaches the catalog", DEADLINE, || async {
        let served = tools(&url, ClientMode::Legacy).await;
        !served.iter().any(|t| t["name"] == "cpu_usage")
            && list_changed(&legacy) > 3
            && list_changed(&modern) > 3
    })
    .await;
    let report = readyz(&url).await;
    assert_eq!(
        report["catalog"]["builds"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
