//! `/metrics` of the real gateway, read by a Prometheus text parser (not by substrings):
//! calls counted by tool and outcome, their duration histogram, the node gauges, the
//! request histogram by JSON-RPC method, calls in flight, backend latency by build, the
//! catalog's builds, and the discovery watch's restarts and staleness.

mod support;

use mcp_protocol::client::ClientMode;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use support::cluster::Cluster;
use support::mcp::{call, client};
use support::procs;

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 78, 1, host))
}

fn ip96(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 96, net, host))
}

/// Upper bound of each wait on an event.
const DEADLINE: Duration = Duration::from_secs(60);

/// One scrape of `/metrics`, parsed.
async fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of a counter or gauge sample with these labels.
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// How many observations a histogram with these labels holds (its +Inf bucket).
fn observed(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .and_then(|s| match &s.value {
            prometheus_parse::Value::Histogram(b) => b.last().map(|b| b.count),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_tool_and_outcome() {
    let port = procs::common_free_port(&[ip(2)]);
    let _backend = procs::spawn_backend("node-1", ip(2), port).await;
    let gw = procs::spawn_gateway(
        ip(1),
        &[
            ("STATIC_NODES", format!("node-1={},node-2={}", ip(2), ip(3))),
            ("BACKEND_PORT", port.to_string()),
        ],
    )
    .await;
    let c = client(&gw.url(), ClientMode::Modern);
    for _ in 0..3 {
        call(&c, "node_info", json!({"node": "node-1"}), None).await;
    }
    call(&c, "node_info", json!({"node": "nowhere"}), None).await;
    let scrape = scrape(gw.addr).await;
    let calls = "mcp_gateway_tool_calls_total";
    assert_eq!(
        value(&scrape, calls, &[("tool", "node_info"), ("outcome", "ok")]),
        Some(3.0)
    );
    assert_eq!(
        value(
            &scrape,
            calls,
            &[("tool", "node_info"), ("outcome", "unknown_node")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "mcp_gateway_nodes", &[("state", "ready")]),
        Some(2.0)
    );
    // The node server's four tools plus the gateway's own `fan_out` and `list_nodes`.
    assert_eq!(value(&scrape, "mcp_gateway_tools", &[]), Some(6.0));
    assert_eq!(
        observed(
            &scrape,
            "mcp_gateway_tool_call_duration_seconds",
            &[("outcome", "ok")]
        ),
        Some(3.0)
    );
    // A two-node cluster is small: calls are also timed by node, and only by nodes of
    // the node map (a caller's made-up name never becomes a label).
    let by_node = "mcp_gateway_node_call_duration_seconds";
    assert_eq!(
        observed(&scrape, by_node, &[("node", "node-1"), ("outcome", "ok")]),
        Some(3.0)
    );
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.labels.get("node") == Some("nowhere")),
        "an unknown node became a label"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_larger_than_metrics_node_labels_has_no_node_label() {
    let port = procs::common_free_port(&[ip(5)]);
    let _backend = procs::spawn_backend("node-1", ip(5), port).await;
    let gw = procs::spawn_gateway(
        ip(4),
        &[
            ("STATIC_NODES", format!("node-1={},node-2={}", ip(5), ip(6))),
            ("BACKEND_PORT", port.to_string()),
            ("METRICS_NODE_LABELS", "1".to_string()),
        ],
    )
    .await;
    let c = client(&gw.url(), ClientMode::Modern);
    call(&c, "node_info", json!({"node": "node-1"}), None).await;
    let scrape = scrape(gw.addr).await;
    assert_eq!(
        value(
            &scrape,
            "mcp_gateway_tool_calls_total",
            &[("tool", "node_info"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("mcp_gateway_node_call_duration")),
        "two nodes are more than METRICS_NODE_LABELS=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_by_method_calls_in_flight_and_backend_latency_by_build() {
    let port = procs::common_free_port(&[ip96(1, 2)]);
    let _backend = procs::spawn_backend("node-1", ip96(1, 2), port).await;
    let gw = procs::spawn_gateway(
        ip96(1, 1),
        &[
            ("STATIC_NODES", format!("node-1={}", ip96(1, 2))),
            ("BACKEND_PORT", port.to_string()),
        ],
    )
    .await;
    let legacy = client(&gw.url(), ClientMode::Legacy);
    call(&legacy, "node_info", json!({"node": "node-1"}), None).await;
    let modern = client(&gw.url(), ClientMode::Modern);
    call(&modern, "node_info", json!({"node": "node-1"}), None).await;
    // A slow call: in flight while it runs.
    let slow = {
        let url = gw.url();
        tokio::spawn(async move {
            let c = client(&url, ClientMode::Modern);
            call(
                &c,
                "cpu_usage",
                json!({"node": "node-1", "seconds": 3}),
                None,
            )
            .await
        })
    };
    procs::eventually("a call in flight", DEADLINE, || async {
        value(&scrape(gw.addr).await, "mcp_gateway_calls_in_flight", &[]) == Some(1.0)
    })
    .await;
    slow.await.unwrap();
    let s = scrape(gw.addr).await;
    assert_eq!(value(&s, "mcp_gateway_calls_in_flight", &[]), Some(0.0));
    let requests = "mcp_gateway_request_duration_seconds";
    assert_eq!(
        observed(&s, requests, &[("method", "initialize"), ("status", "2xx")]),
        Some(1.0),
        "the legacy handshake"
    );
    assert!(
        observed(&s, requests, &[("method", "tools/call"), ("status", "2xx")]) >= Some(3.0),
        "legacy and 2026-07-28 calls"
    );
    // A made-up method is not a label of its own.
    let r = reqwest::Client::new()
        .post(gw.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "made/up")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"made/up","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let s = scrape(gw.addr).await;
    assert_eq!(
        observed(&s, requests, &[("method", "(other)"), ("status", "4xx")]),
        Some(1.0)
    );
    assert!(
        s.samples
            .iter()
            .all(|x| x.labels.get("method") != Some("made/up"))
    );
    // Backend latency is labelled by the build /readyz reports.
    let ready: Value = serde_json::from_str(
        &reqwest::get(format!("http://{}/readyz", gw.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let build = ready["catalog"]["builds"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(value(&s, "mcp_gateway_catalog_builds", &[]), Some(1.0));
    assert_eq!(
        observed(
            &s,
            "mcp_gateway_backend_call_duration_seconds",
            &[("build", build.as_str()), ("outcome", "ok")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&s, "mcp_gateway_discovery_stale_seconds", &[]),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_watch_restarts_and_staleness_are_measured() {
    let cluster = Cluster::start(&[ip96(2, 2)], ip96(2, 1), &[]).await;
    let addr = cluster.gateway.addr;
    let restarts = "mcp_gateway_discovery_watch_restarts_total";
    assert_eq!(value(&scrape(addr).await, restarts, &[]), Some(0.0));
    cluster.kube.set_down(true);
    procs::eventually("the map is stale", DEADLINE, || async {
        let s = scrape(addr).await;
        value(&s, "mcp_gateway_discovery_healthy", &[]) == Some(0.0)
            && value(&s, "mcp_gateway_discovery_stale_seconds", &[]) > Some(0.0)
    })
    .await;
    cluster.kube.set_down(false);
    procs::eventually("the watch is back", DEADLINE, || async {
        let s = scrape(addr).await;
        value(&s, restarts, &[]) == Some(1.0)
            && value(&s, "mcp_gateway_discovery_stale_seconds", &[]) == Some(0.0)
    })
    .await;
    // A node-set change rebuilds the catalog (the served list stays the same).
    cluster.kube.set_node("node-9", ip96(2, 9), false);
    procs::eventually("a catalog rebuild", DEADLINE, || async {
        value(
            &scrape(addr).await,
            "mcp_gateway_catalog_rebuilds_total",
            &[("changed", "false")],
        ) >= Some(1.0)
    })
    .await;
}
