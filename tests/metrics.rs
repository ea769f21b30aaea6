//! `/metrics` of the real gateway, read by a Prometheus text parser (not by substrings):
//! calls counted by tool and outcome, their duration histogram, and the node gauges.

mod support;

use mcp_protocol::client::ClientMode;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use support::mcp::{call, client};
use support::procs;

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 78, 1, host))
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
    let resp = reqwest::get(format!("http://{}/metrics", gw.addr))
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let counter = |metric: &str, labels: &[(&str, &str)]| {
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
    };
    let calls = "mcp_gateway_tool_calls_total";
    assert_eq!(
        counter(calls, &[("tool", "node_info"), ("outcome", "ok")]),
        Some(3.0)
    );
    assert_eq!(
        counter(calls, &[("tool", "node_info"), ("outcome", "unknown_node")]),
        Some(1.0)
    );
    assert_eq!(
        counter("mcp_gateway_nodes", &[("state", "ready")]),
        Some(2.0)
    );
    // The node server's four tools plus the gateway's own `fan_out` and `list_nodes`.
    assert_eq!(counter("mcp_gateway_tools", &[]), Some(6.0));
    let hist = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "mcp_gateway_tool_call_duration_seconds"
                && s.labels.get("outcome") == Some("ok")
        })
        .expect("a call duration histogram");
    let prometheus_parse::Value::Histogram(buckets) = &hist.value else {
        panic!("{:?}", hist.value);
    };
    assert_eq!(buckets.last().map(|b| b.count), Some(3.0), "{buckets:?}");
}
