//! The gateway end to end: the real gateway binary finds real node-server processes
//! (one per loopback address) through the fake Kubernetes API, exactly as on a laptop
//! with a kubeconfig, and routes every call to the node it names.
//!
//! Proves: per-node routing in both eras; the schema rewrite against the backend's own
//! tools/list; every routing error as a tool error; nodes added, removed and unreadied
//! while running; progress relayed as it happens; cancellation reaching the backend;
//! start-up refusal without ready endpoints; the API calls the gateway makes (what the
//! RBAC Role must grant).

mod support;

use mcp_protocol::client::ClientMode;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use support::cluster::Cluster;
use support::fake_kube::FakeKube;
use support::mcp::{assert_backend_tool_plus_node, call, client, is_error, text};
use support::procs;

const DEADLINE: Duration = Duration::from_secs(20);

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 10, net, host))
}

/// `n` node servers on 127.10.net.2.. behind a gateway on 127.10.net.1.
async fn cluster(net: u8, n: u8, extra_env: &[(&str, String)]) -> Cluster {
    let ips: Vec<IpAddr> = (2..2 + n).map(|h| ip(net, h)).collect();
    Cluster::start(&ips, ip(net, 1), extra_env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_is_answered_by_its_own_pod_in_both_eras() {
    let c = cluster(1, 3, &[]).await;
    for mode in [ClientMode::Legacy, ClientMode::Modern, ClientMode::Auto] {
        let gw = client(&c.url(), mode);
        for n in 1..=3 {
            let node = format!("node-{n}");
            let out = call(&gw, "node_info", json!({ "node": node }), None).await;
            let result = out.result.expect("node_info result");
            assert!(!is_error(&result), "{mode:?} {node}: {result}");
            assert_eq!(result["structuredContent"]["node_name"], node, "{mode:?}");
            assert!(text(&result).contains(&node));
            let modern = gw.connection().unwrap().version.as_str() == "2026-07-28";
            assert_eq!(
                result.get("resultType").is_some(),
                modern,
                "{mode:?}: {result}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_schemas_are_the_backends_with_node_prepended() {
    let c = cluster(2, 1, &[]).await;
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let direct = client(&c.backends[0].url(), mode)
            .list_tools()
            .await
            .unwrap()
            .unwrap();
        let served = client(&c.url(), mode).list_tools().await.unwrap().unwrap();
        let served = support::mcp::backend_tools(&served);
        assert_eq!(direct.len(), served.len());
        assert!(!served.is_empty());
        for (d, s) in direct.iter().zip(&served) {
            let node = assert_backend_tool_plus_node(d, s);
            assert_eq!(node["type"], "string");
            assert_eq!(
                node["description"],
                "The name of the Kubernetes node to target."
            );
            assert_eq!(
                node.get("x-mcp-header").is_some(),
                mode == ClientMode::Modern
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_failures_are_tool_errors_a_model_can_act_on() {
    // node-3 points at an address where nothing listens.
    let c = cluster(3, 2, &[]).await;
    c.kube.set_node("node-3", ip(3, 40), true);
    c.kube.set_node("node-2", ip(3, 3), false);
    let gw = client(&c.url(), ClientMode::Legacy);
    procs::eventually("node-2 unready", DEADLINE, || async {
        let out = call(&gw, "node_info", json!({"node":"node-2"}), None).await;
        text(&out.result.unwrap()).contains("not ready")
    })
    .await;
    let dead = ip(3, 40).to_string();
    let cases = [
        (
            json!({"node": "nope"}),
            vec!["Unknown node \"nope\"", "node-1"],
        ),
        (
            json!({}),
            vec!["Missing required argument \"node\"", "node-1"],
        ),
        (json!({"node": 7}), vec!["must be a non-empty string"]),
        (json!({"node": "node-2"}), vec!["not ready"]),
        (
            json!({"node": "node-3"}),
            vec!["unreachable", dead.as_str()],
        ),
    ];
    for (args, needles) in cases {
        let out = call(&gw, "node_info", args.clone(), None).await;
        let result = out.result.expect("a tool result, not a protocol error");
        assert!(is_error(&result), "{args}: {result}");
        for n in needles {
            assert!(
                text(&result).contains(n),
                "{args}: {:?} lacks {n:?}",
                text(&result)
            );
        }
    }
    let unknown = call(&gw, "no_such_tool", json!({"node":"node-1"}), None).await;
    assert_eq!(unknown.result.unwrap_err()["code"], -32602);
    // The backend's own argument validation is relayed as it came.
    let bad = call(
        &gw,
        "cpu_usage",
        json!({"node":"node-1","seconds":99}),
        None,
    )
    .await;
    let bad = bad.result.unwrap();
    assert!(is_error(&bad) && text(&bad).contains("seconds"), "{bad}");
    // And after all that, a good call still works.
    let ok = call(&gw, "node_info", json!({"node":"node-1"}), None)
        .await
        .result
        .unwrap();
    assert_eq!(ok["structuredContent"]["node_name"], "node-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_added_and_removed_while_running_are_routed_without_restart() {
    let mut c = cluster(4, 2, &[]).await;
    let gw = client(&c.url(), ClientMode::Auto);
    c.kube.remove_node("node-2");
    procs::eventually("node-2 gone", DEADLINE, || async {
        let r = call(&gw, "node_info", json!({"node":"node-2"}), None)
            .await
            .result
            .unwrap();
        text(&r).contains("Unknown node")
    })
    .await;
    let extra = procs::spawn_backend("node-9", ip(4, 9), c.port).await;
    c.backends.push(extra);
    c.kube.set_node("node-9", ip(4, 9), true);
    procs::eventually("node-9 routed", DEADLINE, || async {
        let r = call(&gw, "node_info", json!({"node":"node-9"}), None)
            .await
            .result
            .unwrap();
        r["structuredContent"]["node_name"] == "node-9"
    })
    .await;
    // The watch breaking (410, dropped connection) keeps the map served.
    c.kube.expire_watches();
    c.kube.drop_watches();
    let r = call(&gw, "node_info", json!({"node":"node-1"}), None)
        .await
        .result
        .unwrap();
    assert_eq!(r["structuredContent"]["node_name"], "node-1");
    let ready = reqwest::get(format!("http://{}/readyz", c.gateway.addr))
        .await
        .unwrap();
    let ready: Value = serde_json::from_slice(&ready.bytes().await.unwrap()).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_arrives_while_the_call_runs_and_cancellation_reaches_the_backend() {
    let c = cluster(5, 1, &[]).await;
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let gw = client(&c.url(), mode);
        let out = call(
            &gw,
            "cpu_usage",
            json!({"node":"node-1","seconds":3}),
            Some(json!("tok")),
        )
        .await;
        let result = out.result.unwrap();
        assert!(!is_error(&result), "{result}");
        let progress: Vec<_> = out
            .notifications
            .iter()
            .filter(|(_, n)| n["method"] == "notifications/progress")
            .collect();
        assert!(progress.len() >= 2, "{mode:?}: {:?}", out.notifications);
        assert!(
            progress
                .iter()
                .all(|(_, n)| n["params"]["progressToken"] == "tok")
        );
        // The first one arrived well before the result (streamed, not batched at the end).
        assert!(
            progress[0].0 < out.finished - Duration::from_millis(500),
            "{mode:?}"
        );
    }
    // Legacy cancellation: the gateway forwards notifications/cancelled upstream.
    let gw = client(&c.url(), ClientMode::Legacy);
    gw.connect().await.unwrap();
    let id = gw.next_id();
    let mut params = serde_json::Map::new();
    params.insert("name".into(), "cpu_usage".into());
    params.insert("arguments".into(), json!({"node":"node-1","seconds":30}));
    let opts = mcp_protocol::client::RequestOptions {
        id: Some(id.clone()),
        ..Default::default()
    };
    let pending = gw.call_tool(params, opts);
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        gw.cancel(&id, "test").await.unwrap();
    };
    let (reply, ()) = tokio::join!(pending, canceller);
    // A cancelled request gets no JSON-RPC response (neither a result nor -32800).
    assert!(
        reply.is_err(),
        "a cancelled call must not be answered: {reply:?}"
    );
    procs::eventually("backend saw the cancellation", DEADLINE, || async {
        c.backends[0].log_text().contains("cancel")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_without_ready_backends() {
    let kube = FakeKube::start().await;
    kube.set_node("node-1", ip(6, 2), false);
    let env = [("KUBECONFIG", kube.kubeconfig_path().display().to_string())];
    let mut gw = procs::launch_gateway(ip(6, 1), &env);
    let (status, log) = procs::wait_exit(&mut gw, DEADLINE).await;
    assert!(!status.success());
    assert!(
        log.contains("backend-mcp-service") && log.contains("mcp-server"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_only_lists_and_watches_endpointslices_of_its_namespace() {
    let c = cluster(7, 1, &[]).await;
    let gw = client(&c.url(), ClientMode::Legacy);
    call(&gw, "node_info", json!({"node":"node-1"}), None)
        .await
        .result
        .unwrap();
    let requests = c.kube.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(matches!(r.verb().as_str(), "list" | "watch"), "{r:?}");
        assert_eq!(r.resource(), Some("endpointslices"), "{r:?}");
        assert!(
            r.path
                .starts_with("/apis/discovery.k8s.io/v1/namespaces/mcp-server/"),
            "{r:?}"
        );
        assert_eq!(
            r.param("labelSelector").as_deref(),
            Some("kubernetes.io/service-name=backend-mcp-service")
        );
    }
}

/// A backend that misbehaves on purpose: one tool hangs, one answers with a JSON-RPC
/// error, one with a result that is not even JSON-RPC's. Built on our own server crate,
/// listening on its own loopback address like a pod.
mod liar {
    use bytes::Bytes;
    use mcp_protocol::headers::ParamHeader;
    use mcp_protocol::jsonrpc::ErrorObject;
    use mcp_protocol::mcp::{self, Era};
    use mcp_protocol::server::{BoxFuture, McpHandler, McpServer, ServerConfig, ToolCall};
    use serde_json::json;
    use std::sync::Arc;

    pub struct Liar;

    impl McpHandler for Liar {
        fn list_tools(&self, era: Era, _cursor: Option<&str>) -> Result<Bytes, ErrorObject> {
            let tools = ["hang", "rpc_error", "node_info"]
                .map(|n| json!({"name": n, "description": n, "inputSchema": {"type": "object"}}));
            Ok(Bytes::from(
                serde_json::to_vec(&mcp::tools_list_result(era, &tools, None, 0)).unwrap(),
            ))
        }
        fn param_headers(&self, _tool: &str) -> Option<Arc<[ParamHeader]>> {
            Some(Arc::from(Vec::new()))
        }
        fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
            Box::pin(async move {
                match call.name.as_str() {
                    "hang" => {
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                    "rpc_error" => Err(ErrorObject::new(-32042, "backend says no")
                        .with_data(json!({"why": "test"}))),
                    _ => Ok(Bytes::from_static(b"\"not a result object\"")),
                }
            })
        }
    }

    pub async fn start(addr: std::net::SocketAddr) {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let server = McpServer::new(ServerConfig::new("liar", "0"), Liar);
        tokio::spawn(mcp_protocol::serve::serve(
            listener,
            move |req| {
                let server = server.clone();
                async move { server.handle(req).await }
            },
            std::future::pending(),
            std::time::Duration::from_secs(1),
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_that_hang_refuse_or_lie_give_clear_answers() {
    let kube = FakeKube::start().await;
    let liar_ip = ip(8, 2);
    let port = procs::common_free_port(&[liar_ip]);
    liar::start(std::net::SocketAddr::new(liar_ip, port)).await;
    kube.set_node("liar", liar_ip, true);
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("CALL_TIMEOUT_SECONDS", "2".to_string()),
    ];
    let gateway = procs::spawn_gateway(ip(8, 1), &env).await;
    for mode in [ClientMode::Legacy, ClientMode::Modern] {
        let gw = client(&gateway.url(), mode);
        let hang = call(&gw, "hang", json!({"node":"liar"}), None)
            .await
            .result
            .unwrap();
        assert!(
            is_error(&hang) && text(&hang).contains("did not answer within 2 s"),
            "{hang}"
        );
        let refused = call(&gw, "rpc_error", json!({"node":"liar"}), None)
            .await
            .result
            .unwrap_err();
        assert_eq!(
            refused,
            json!({"code": -32042, "message": "backend says no", "data": {"why": "test"}})
        );
        // A lie is relayed as it came (the gateway does not rewrite results) and breaks nothing.
        let lie = call(&gw, "node_info", json!({"node":"liar"}), None)
            .await
            .result
            .unwrap();
        assert_eq!(lie, json!("not a result object"));
    }
    let health = reqwest::get(format!("http://{}/healthz", gateway.addr))
        .await
        .unwrap();
    assert!(health.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_header_rules_hold_at_the_gateway_and_closing_the_stream_cancels_upstream() {
    let c = cluster(9, 1, &[]).await;
    let http = reqwest::Client::new();
    let body = |args: Value| {
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"node_info","arguments":args,
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}})
        .to_string()
    };
    let post = |param_node: Option<&str>, body: String| {
        let mut r = http
            .post(c.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "node_info");
        if let Some(n) = param_node {
            r = r.header("mcp-param-node", n);
        }
        r.body(body).send()
    };
    let args = json!({"node":"node-1"});
    let missing = post(None, body(args.clone())).await.unwrap();
    assert_eq!(missing.status(), 400);
    let v: Value = serde_json::from_slice(&missing.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], -32020, "{v}");
    let wrong = post(Some("node-2"), body(args.clone())).await.unwrap();
    assert_eq!(wrong.status(), 400);
    let ok = post(Some("node-1"), body(args)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let text = String::from_utf8(ok.bytes().await.unwrap().to_vec()).unwrap();
    assert!(text.contains("\"node_name\":\"node-1\""), "{text}");

    // A 2026-07-28 client that closes its stream mid-call cancels the backend's work.
    let gw = client(&c.url(), ClientMode::Modern);
    let long = call(
        &gw,
        "cpu_usage",
        json!({"node":"node-1","seconds":30}),
        Some(json!(1)),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), long)
            .await
            .is_err()
    );
    procs::eventually("backend saw its stream close", DEADLINE, || async {
        c.backends[0]
            .log_text()
            .contains("response stream closed before the answer")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pod_with_other_tools_changes_the_catalog_and_clients_are_told() {
    let c = cluster(10, 1, &[]).await;
    let http = reqwest::Client::new();
    // A legacy session with its GET stream open.
    let init = http
        .post(c.url())
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
        .get(c.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // A pod that sorts first and serves other tools joins: the gateway re-learns them.
    let liar_ip = ip(10, 20);
    liar::start(std::net::SocketAddr::new(liar_ip, c.port)).await;
    c.kube.set_node("a-new-node", liar_ip, true);
    let mut seen = String::new();
    let got = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("notifications/tools/list_changed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "no list_changed on the GET stream: {seen:?}");
    let tools = client(&c.url(), ClientMode::Modern)
        .list_tools()
        .await
        .unwrap()
        .unwrap();
    let names: Vec<_> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"hang"), "{names:?}");
}
