//! Benchmarks of the catalog and the fan-out (figures, not timed tests: they are `#[ignore]`d and print
//! what they measured). Run them with
//!
//! ```sh
//! cargo nextest run --release -E 'binary(bench_catalog)' --run-ignored only --no-capture
//! ```
//!
//! Every simulated node is a real node server (in this process, one listener per
//! loopback address: 127.60.x.y for the fan-out, 127.61.x.y for the catalog), found by
//! the real gateway through the fake Kubernetes API.

mod support;

use mcp_protocol::client::ClientMode;
use node_mcp_server::tools::{HostPaths, ToolContext};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::fake_kube::FakeKube;
use support::mcp::{call, client};
use support::procs::{self, Proc};

fn addr(net: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        net,
        (i / 250) as u8,
        (i % 250 + 2) as u8,
    ))
}

/// `n` node servers on 127.net.x.y:port in this process; build `b` of node `i` is
/// `builds(i)` (tools hidden).
async fn nodes(kube: &FakeKube, net: u8, n: usize, builds: impl Fn(usize) -> Vec<String>) -> u16 {
    let ips: Vec<IpAddr> = (0..n).map(|i| addr(net, i)).collect();
    let port = procs::common_free_port(&ips);
    for (i, ip) in ips.iter().enumerate() {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(*ip, port))
            .await
            .unwrap();
        let ctx = ToolContext {
            node_name: format!("node-{i:05}"),
            host: HostPaths::default(),
            cmdline: Default::default(),
            hidden_tools: builds(i),
        };
        tokio::spawn(node_mcp_server::server::run(
            listener,
            ctx,
            std::future::pending(),
        ));
    }
    // Slices of 1000 endpoints, as the EndpointSlice controller caps them (one
    // set_node per node would rewrite a slice per node).
    for (k, chunk) in ips.chunks(1000).enumerate() {
        let endpoints: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(j, ip)| {
                let node = format!("node-{:05}", k * 1000 + j);
                json!({
                    "addresses": [ip.to_string()],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "nodeName": node,
                    "targetRef": {"kind": "Pod", "name": format!("node-mcp-server-{node}")}
                })
            })
            .collect();
        kube.put_slice(
            &format!("bench-{k}"),
            json!({"addressType": "IPv4", "endpoints": endpoints}),
        );
    }
    port
}

fn rss_kib(p: &Proc) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", p.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the gateway's RSS until dropped; the peak is kept.
fn sample_rss(p: &Proc) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let pid = p.child.id();
    let out = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            let kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0);
            out.fetch_max(kib, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (peak, task)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn bench_fan_out_of_node_info_over_1000_nodes() {
    let kube = FakeKube::start().await;
    let port = nodes(&kube, 60, 1000, |_| Vec::new()).await;
    let gw = procs::spawn_gateway(
        IpAddr::V4(Ipv4Addr::new(127, 60, 250, 1)),
        &[
            ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
            ("BACKEND_PORT", port.to_string()),
            ("FANOUT_CONCURRENCY", "64".into()),
            ("RUST_LOG", "warn".into()),
        ],
    )
    .await;
    let c = client(&gw.url(), ClientMode::Modern);
    procs::eventually("1000 nodes", Duration::from_secs(120), || async {
        call(
            &c,
            "list_nodes",
            json!({"state": "ready", "limit": 1}),
            None,
        )
        .await
        .result
        .unwrap()["structuredContent"]["total"]
            == 1000
    })
    .await;
    for round in 0..3 {
        let (peak, sampler) = sample_rss(&gw);
        let before = rss_kib(&gw);
        let started = Instant::now();
        let out = call(
            &c,
            "fan_out",
            json!({"tool": "node_info", "target": "all"}),
            None,
        )
        .await;
        let wall = started.elapsed();
        sampler.abort();
        let r = out.result.unwrap();
        let s = &r["structuredContent"];
        let mut ms: Vec<f64> = s["results"]
            .as_object()
            .unwrap()
            .values()
            .map(|e| e["durationMs"].as_f64().unwrap())
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "fan-out round {round}: {} nodes, summary {}, wall {:.0} ms, per node p50 {:.1} ms p99 {:.1} ms, gateway RSS {} MiB before, peak {} MiB",
            ms.len(),
            s["summary"],
            wall.as_secs_f64() * 1000.0,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            before / 1024,
            peak.load(Ordering::Relaxed) / 1024
        );
        assert_eq!(s["summary"]["ok"], 1000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn bench_catalog_of_3_builds_over_5000_nodes() {
    let kube = FakeKube::start().await;
    let port = nodes(&kube, 61, 5000, |i| match i % 3 {
        0 => Vec::new(),
        1 => vec!["cpu_usage".into()],
        _ => vec!["disk_usage".into()],
    })
    .await;
    let mut env = vec![
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
        ("RUST_LOG", "warn".into()),
    ];
    // To compare settings: CATALOG_LEARN_CONCURRENCY=64 cargo nextest run ...
    if let Ok(n) = std::env::var("CATALOG_LEARN_CONCURRENCY") {
        env.push(("CATALOG_LEARN_CONCURRENCY", n));
    }
    let started = Instant::now();
    let gw = procs::spawn_gateway(IpAddr::V4(Ipv4Addr::new(127, 61, 250, 1)), &env).await;
    let ready = started.elapsed();
    let base = gw.url().trim_end_matches("/mcp").to_string();
    let readyz = || async {
        let b = reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&b).unwrap()
    };
    let report = readyz().await;
    let builds = report["catalog"]["builds"].as_array().unwrap().len();
    let c = client(&gw.url(), ClientMode::Modern);
    c.connect().await.unwrap();
    let mut ms = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let tools = c.list_tools().await.unwrap().unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(tools.len(), 4 + 2);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "catalog: 5000 nodes, {builds} builds, start to ready {:.2} s, tools/list p50 {:.2} ms p99 {:.2} ms (500 calls, one client), gateway RSS {} MiB",
        ready.as_secs_f64(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        rss_kib(&gw) / 1024
    );
    assert_eq!(builds, 3, "{report}");
}
