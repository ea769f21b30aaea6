//! Tasks through the real gateway binary to real node servers, in every pairing of
//! client and backend revision: `cpu_usage` started as a task (2025-11-25
//! `params.task`, or the 2026-07-28 tasks extension), followed by `tasks/get`,
//! `tasks/result`, `tasks/list` and `tasks/cancel` through the gateway, with the ids
//! the gateway hands out: they name the owning node, survive a gateway restart (a
//! second gateway with the same keys follows them) and cannot be forged. And a
//! FastMCP backend's task tool (`fastmcp-tasks`), run by the official MCP Python SDK
//! client through the gateway in auto and legacy mode, answers as it does directly.
//!
//! Loopback range: 127.62.x.y.

#[path = "support/interop.rs"]
mod interop;
#[path = "../protocol/tests/common/schema.rs"]
mod schema;
mod support;

use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, http_client};
use mcp_protocol::mcp::meta;
use mcp_protocol::tasks;
use serde_json::{Map, Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_kube::FakeKube;
use support::procs;

fn ip62(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 62, net, host))
}

/// A client in `mode` that has listed the tools (a 2026-07-28 call mirrors the
/// `node` argument into a header it learns from the listing).
async fn client(url: &str, mode: ClientMode) -> McpClient {
    let mut opts = ClientOptions::new("tasks-tests", "0");
    opts.mode = mode;
    let c = McpClient::new(http_client(Duration::from_secs(5)), url, opts);
    c.list_tools().await.expect("tools/list").expect("tools");
    c
}

/// One request; its result object, or the JSON-RPC error.
async fn request(c: &McpClient, method: &str, params: Value) -> Result<Value, Value> {
    let params = params.as_object().cloned().unwrap_or_default();
    let reply = c
        .request(method, params, Default::default())
        .await
        .unwrap_or_else(|e| panic!("{method}: transport: {e}"));
    match reply {
        Ok(raw) => Ok(serde_json::from_str(raw.get()).unwrap()),
        Err(e) => Err(serde_json::to_value(e).unwrap()),
    }
}

/// The params of a `cpu_usage` call over `seconds` that asks for a task in the
/// shape of `modern`.
fn task_call(node: &str, seconds: u64, modern: bool) -> Value {
    let mut p = json!({"name": "cpu_usage", "arguments": {"node": node, "seconds": seconds}});
    if modern {
        p["_meta"] = json!({ meta::CLIENT_CAPABILITIES: {"extensions": {tasks::EXTENSION: {}}} });
    } else {
        p["task"] = json!({"ttl": 60000});
    }
    p
}

/// The task in a CreateTaskResult of either shape.
fn created_task(result: &Value, modern: bool) -> Map<String, Value> {
    let task = if modern {
        assert_eq!(result["resultType"], "task", "{result}");
        result
    } else {
        &result["task"]
    };
    task.as_object()
        .cloned()
        .unwrap_or_else(|| panic!("no task: {result}"))
}

/// Polls `tasks/get` until the task ends (within 30 s); the last answer.
async fn until_done(c: &McpClient, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let t = request(c, tasks::GET, json!({"taskId": id}))
            .await
            .expect("tasks/get");
        assert_eq!(t["taskId"], id, "the gateway's id comes back: {t}");
        if tasks::is_terminal(t["status"].as_str().unwrap_or("")) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "task never ended: {t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Cluster {
    _kube: FakeKube,
    backends: Vec<procs::Proc>,
    env: Vec<(&'static str, String)>,
    _keys: std::path::PathBuf,
}

/// Two node servers (n1, n2) and the settings of a gateway speaking `backend` to
/// them, with a key file shared by every gateway started on it.
async fn cluster(net: u8, backend: &str) -> Cluster {
    let kube = FakeKube::start().await;
    let addrs = [ip62(net, 2), ip62(net, 3)];
    let port = procs::common_free_port(&addrs);
    let mut backends = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let node = format!("n{}", i + 1);
        backends.push(procs::spawn_backend(&node, *addr, port).await);
        kube.set_node(&node, *addr, true);
    }
    let keys = std::env::temp_dir().join(format!("task-keys-{}-{net}", std::process::id()));
    std::fs::write(&keys, mcp_protocol::seal::new_key_line() + "\n").unwrap();
    let env = vec![
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("BACKEND_PROTOCOL", backend.to_string()),
        ("SESSION_KEYS_FILE", keys.display().to_string()),
    ];
    Cluster {
        _kube: kube,
        backends,
        env,
        _keys: keys,
    }
}

/// A `cpu_usage` task on each node, in each client revision, against node servers
/// spoken to in `backend`: created, polled to completion, its result the tool's.
async fn tasks_run_to_completion(net: u8, backend: &str) {
    let c = cluster(net, backend).await;
    let gateway = procs::spawn_gateway(ip62(net, 1), &c.env).await;
    let mut started = [0, 0];
    for (mode, modern, rev) in [
        (ClientMode::Legacy, false, "2025-11-25"),
        (ClientMode::Modern, true, "2026-07-28"),
    ] {
        let cl = client(&gateway.url(), mode).await;
        for (i, node) in ["n1", "n2"].into_iter().enumerate() {
            let created = request(&cl, "tools/call", task_call(node, 1, modern))
                .await
                .unwrap_or_else(|e| panic!("{backend}/{rev}: {e}"));
            if !modern {
                schema::assert_valid(rev, "CreateTaskResult", &created);
            }
            let task = created_task(&created, modern);
            let id = task["taskId"].as_str().unwrap().to_owned();
            assert_eq!(task["status"], "working", "{created}");
            assert!(id.len() > 40, "a sealed id, not the backend's: {id}");
            let done = until_done(&cl, &id).await;
            assert_eq!(done["status"], "completed", "{backend}/{rev}: {done}");
            let result = if modern {
                assert_eq!(done["resultType"], "complete");
                assert!(done.get("pollIntervalMs").is_some(), "{done}");
                done["result"].clone()
            } else {
                schema::assert_valid(rev, "GetTaskResult", &done);
                let r = request(&cl, tasks::RESULT, json!({"taskId": id}))
                    .await
                    .expect("tasks/result");
                schema::assert_valid(rev, "CallToolResult", &r);
                assert_eq!(r["_meta"][tasks::RELATED_TASK]["taskId"], id, "{r}");
                r
            };
            assert_ne!(result["isError"], true, "{result}");
            assert_eq!(
                result["structuredContent"]["sampled_seconds"], 1,
                "{result}"
            );
            started[i] += 1;
            for (b, n) in c.backends.iter().zip(started) {
                assert_eq!(
                    b.log_text().matches("task started").count(),
                    n,
                    "each task ran on the node it was started for"
                );
            }
        }
        if !modern {
            let listed = request(&cl, tasks::LIST, json!({}))
                .await
                .expect("tasks/list");
            schema::assert_valid(rev, "ListTasksResult", &listed);
            assert_eq!(listed["tasks"].as_array().unwrap().len(), 2, "{listed}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_to_completion_on_2026_backends() {
    tasks_run_to_completion(1, "modern").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_to_completion_on_2025_backends() {
    tasks_run_to_completion(2, "legacy").await;
}

/// A 30 s sample outlives the client's connection and the gateway that started it:
/// a second gateway with the same keys follows the task and cancels it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outlives_its_gateway_and_is_cancelled_through_another() {
    let c = cluster(3, "modern").await;
    for (mode, modern) in [(ClientMode::Modern, true), (ClientMode::Legacy, false)] {
        let first = procs::spawn_gateway(ip62(3, 1), &c.env).await;
        let cl = client(&first.url(), mode).await;
        let created = request(&cl, "tools/call", task_call("n2", 30, modern))
            .await
            .expect("created");
        let id = created_task(&created, modern)["taskId"]
            .as_str()
            .unwrap()
            .to_owned();
        drop(cl);
        drop(first);
        let second = procs::spawn_gateway(ip62(3, 4), &c.env).await;
        let cl = client(&second.url(), mode).await;
        let t = request(&cl, tasks::GET, json!({"taskId": id}))
            .await
            .expect("the other gateway follows the task");
        assert_eq!(t["status"], "working", "{t}");
        let cancelled = request(&cl, tasks::CANCEL, json!({"taskId": id}))
            .await
            .expect("cancel");
        if !modern {
            schema::assert_valid("2025-11-25", "CancelTaskResult", &cancelled);
        }
        let done = until_done(&cl, &id).await;
        assert_eq!(done["status"], "cancelled", "{done}");
        // Forged and tampered ids name no task.
        let mut tampered = id.clone();
        tampered.replace_range(10..11, if &id[10..11] == "A" { "B" } else { "A" });
        for bad in ["0123456789abcdef", tampered.as_str()] {
            let e = request(&cl, tasks::GET, json!({"taskId": bad}))
                .await
                .expect_err("refused");
            assert_eq!(e["code"], -32602, "{e}");
        }
    }
}

/// The gateway announces tasks in each revision's shape when its node servers offer
/// them, and a call that does not ask for a task is answered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_announced_per_revision_and_plain_calls_stay_plain() {
    let c = cluster(5, "modern").await;
    let gateway = procs::spawn_gateway(ip62(5, 1), &c.env).await;
    let legacy = client(&gateway.url(), ClientMode::Legacy).await;
    let conn = legacy.connect().await.expect("initialize");
    let caps = conn.capabilities.clone();
    assert!(
        caps["tasks"]["requests"]["tools"]["call"].is_object(),
        "{caps}"
    );
    assert!(caps.get("extensions").is_none(), "{caps}");
    let modern = client(&gateway.url(), ClientMode::Modern).await;
    let conn = modern.connect().await.expect("discover");
    let caps = conn.capabilities.clone();
    assert!(caps["extensions"][tasks::EXTENSION].is_object(), "{caps}");
    assert!(caps.get("tasks").is_none(), "{caps}");
    for cl in [&legacy, &modern] {
        let plain = request(
            cl,
            "tools/call",
            json!({"name": "cpu_usage", "arguments": {"node": "n1", "seconds": 1}}),
        )
        .await
        .expect("plain call");
        assert_eq!(plain["structuredContent"]["sampled_seconds"], 1, "{plain}");
    }
    // 2025-11-25 methods are not 2026-07-28 ones, and the other way round.
    let e = request(&modern, tasks::LIST, json!({}))
        .await
        .expect_err("no list");
    assert_eq!(e["code"], -32601, "{e}");
    let e = request(
        &legacy,
        tasks::UPDATE,
        json!({"taskId": "x", "inputResponses": {}}),
    )
    .await
    .expect_err("no update");
    assert_eq!(e["code"], -32601, "{e}");
}

/// Two FastMCP task backends (fast-1, fast-2): the SDK client in auto mode gets a
/// task from each through the gateway and polls it to the same answer as directly;
/// in legacy mode the call is answered at once, as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fastmcp_task_runs_through_the_gateway_as_it_does_directly() {
    let kube = FakeKube::start().await;
    let addrs = [ip62(6, 2), ip62(6, 3)];
    let port = procs::common_free_port(&addrs);
    let mut backends = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let opts = interop::FastMcpOptions {
            node_name: Some(format!("fast-{}", i + 1)),
            script: Some("fastmcp_tasks_backend.py"),
            tasks_venv: true,
            ..Default::default()
        };
        let host = addr.to_string();
        backends.push(
            tokio::task::spawn_blocking(move || {
                interop::spawn_fastmcp_backend_with(&host, port, opts)
            })
            .await
            .unwrap(),
        );
        kube.set_node(&format!("fast-{}", i + 1), *addr, true);
    }
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
    ];
    let gateway = procs::spawn_gateway(ip62(6, 1), &env).await;
    let sdk = |url: String, mode: &'static str, args: Value| {
        tokio::task::spawn_blocking(move || {
            interop::sdk_tasks_client(&url, mode, "slow_sum", &args)
        })
    };
    for (i, backend) in backends.iter().enumerate() {
        let node = format!("fast-{}", i + 1);
        for mode in ["auto", "legacy"] {
            let args = json!({"a": 2, "b": i + 3, "seconds": 1});
            let direct = sdk(backend.url.clone(), mode, args.clone()).await.unwrap();
            let mut via_args = args.clone();
            via_args["node"] = node.clone().into();
            let via = sdk(gateway.url(), mode, via_args).await.unwrap();
            assert_eq!(via["ok"], true, "{mode}: {via}");
            assert_eq!(via["text"], direct["text"], "{mode}: {via} vs {direct}");
            assert_eq!(
                via["text"],
                format!("{node}: a+b={}", 2 + i + 3),
                "{mode}: {via}"
            );
            if mode == "auto" {
                let (d, v) = (&direct["created"], &via["created"]);
                assert_eq!(v["status"], "working", "{via}");
                assert_eq!(v["pollIntervalMs"], d["pollIntervalMs"], "{via}");
                assert_ne!(v["taskId"], d["taskId"]);
                assert_eq!(via["final"]["status"], "completed", "{via}");
                assert_eq!(via["final"]["taskId"], v["taskId"], "{via}");
                assert!(
                    via["capabilities"]["extensions"][tasks::EXTENSION].is_object(),
                    "{via}"
                );
            } else {
                assert!(via["created"].is_null(), "{via}");
            }
        }
    }
}

/// A 2026-07-28 client following its task on `subscriptions/listen` hears its end as
/// `notifications/tasks` under the gateway's id, with the result; without the tasks
/// extension declared, asking for task notifications is -32021.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_status_reaches_a_listening_client() {
    let c = cluster(7, "modern").await;
    let gateway = procs::spawn_gateway(ip62(7, 1), &c.env).await;
    let cl = client(&gateway.url(), ClientMode::Modern).await;
    let created = request(&cl, "tools/call", task_call("n1", 2, true))
        .await
        .expect("created");
    let id = created_task(&created, true)["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = client(&gateway.url(), ClientMode::Modern).await;
    let filter = json!({ "taskIds": [id.clone()] });
    let following = tokio::spawn(async move {
        let mut on = |note: bytes::Bytes| {
            let _ = tx.send(serde_json::from_slice::<Value>(&note).unwrap_or_default());
        };
        listener
            .listen_notifications(Duration::from_secs(30), filter, &mut on)
            .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut acked = false;
    let done = loop {
        let note = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("no task notification in time")
            .expect("stream ended");
        if note["method"] == "notifications/subscriptions/acknowledged" {
            assert_eq!(
                note["params"]["notifications"]["taskIds"],
                json!([id]),
                "{note}"
            );
            acked = true;
        }
        if note["method"] == tasks::NOTIFICATION {
            break note;
        }
    };
    assert!(acked, "acknowledged first");
    assert_eq!(done["params"]["taskId"], id, "{done}");
    assert_eq!(done["params"]["status"], "completed", "{done}");
    assert_eq!(
        done["params"]["result"]["structuredContent"]["sampled_seconds"], 2,
        "{done}"
    );
    assert!(
        done["params"]["_meta"][meta::SUBSCRIPTION_ID].is_number()
            || done["params"]["_meta"][meta::SUBSCRIPTION_ID].is_string(),
        "{done}"
    );
    following.abort();
    // Without the extension declared: refused.
    let e = request(
        &cl,
        "subscriptions/listen",
        json!({"notifications": {"taskIds": [id]}}),
    )
    .await
    .expect_err("refused");
    assert_eq!(e["code"], tasks::MISSING_CAPABILITY, "{e}");
}

/// A 2025-11-25 client hears its task end as `notifications/tasks/status` on its
/// session's GET stream, under the gateway's id, whichever revision the gateway
/// speaks to the node server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_status_reaches_a_legacy_session() {
    for (net, backend) in [(8u8, "modern"), (9, "legacy")] {
        let c = cluster(net, backend).await;
        let gateway = procs::spawn_gateway(ip62(net, 1), &c.env).await;
        let cl = Arc::new(client(&gateway.url(), ClientMode::Legacy).await);
        let created = request(&cl, "tools/call", task_call("n2", 1, false))
            .await
            .expect("created");
        let id = created_task(&created, false)["taskId"]
            .as_str()
            .unwrap()
            .to_owned();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = cl.clone();
        let following = tokio::spawn(async move {
            let mut on = |note: bytes::Bytes| {
                let _ = tx.send(serde_json::from_slice::<Value>(&note).unwrap_or_default());
            };
            reader
                .listen_notifications(Duration::from_secs(30), json!({}), &mut on)
                .await
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            let note = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{backend}: no status in time:\n{}", gateway.log_text()))
                .expect("stream ended");
            if note["method"] == tasks::STATUS_NOTIFICATION {
                break note;
            }
        };
        schema::assert_valid("2025-11-25", "TaskStatusNotification", &status);
        assert_eq!(status["params"]["taskId"], id, "{backend}: {status}");
        assert_eq!(
            status["params"]["status"], "completed",
            "{backend}: {status}"
        );
        following.abort();
    }
}
