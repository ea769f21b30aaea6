//! Benchmark (not a test): tools/call `node_info` throughput and p50/p99 latency on
//! loopback, directly against a node server and through the gateway, measured in one
//! run; prints the gateway's added latency and the throughput ratio.
//!
//! `just bench` or: `cargo build --release --workspace && cargo run --release --example bench -- [SECONDS] [CONCURRENCY]`
//!
//! The node server and the gateway run as real release-built processes (the gateway with
//! a static node list, so no cluster is needed); the load comes from this process with
//! the project's own MCP client, one pooled client per era shared by all workers.

use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, RequestOptions, http_client};
use serde_json::{Map, Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/bench -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join(name))
        .expect("target dir");
    assert!(
        path.exists(),
        "{} missing: cargo build --release --workspace",
        path.display()
    );
    path
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

struct Stats {
    calls: usize,
    errors: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(url: &str, mode: ClientMode, args: Value, secs: u64, concurrency: usize) -> Stats {
    let mut opts = ClientOptions::new("bench", "0");
    opts.mode = mode;
    let client = Arc::new(McpClient::new(
        http_client(Duration::from_secs(5)),
        url,
        opts,
    ));
    client.connect().await.expect("connect");
    // Warm-up: pools, sessions, caches.
    for _ in 0..50 {
        let _ = call(&client, &args).await;
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let args = args.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if call(&client, &args).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, e) = w.await.expect("worker");
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        calls: all.len(),
        errors,
        per_sec: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

async fn call(client: &McpClient, args: &Value) -> bool {
    let mut params = Map::new();
    params.insert("name".into(), "node_info".into());
    params.insert("arguments".into(), args.clone());
    matches!(
        client.call_tool(params, RequestOptions::default()).await,
        Ok(Ok(_))
    )
}

fn row(label: &str, s: &Stats) {
    println!(
        "{label:<34} {:>9.0} calls/s   p50 {:>7.0} µs   p99 {:>7.0} µs   ({} calls, {} errors)",
        s.per_sec,
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.calls,
        s.errors
    );
}

#[tokio::main]
async fn main() {
    let mut argv = std::env::args().skip(1);
    let secs: u64 = argv.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = argv.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let backend_ip = "127.0.0.2";
    let port = free_port(backend_ip);
    let gw_port = free_port("127.0.0.1");
    let _backend = Killed(
        Command::new(binary("node-mcp-server"))
            .env("NODE_NAME", "bench-node")
            .env("BIND_ADDRESS", backend_ip)
            .env("BACKEND_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node-mcp-server"),
    );
    wait_ready(&format!("http://{backend_ip}:{port}/healthz")).await;
    let _gateway = Killed(
        Command::new(binary("k8s-aggregator-mcp"))
            .env("STATIC_NODES", format!("bench-node={backend_ip}"))
            .env("BACKEND_PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("FRONTEND_PORT", gw_port.to_string())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gateway"),
    );
    wait_ready(&format!("http://127.0.0.1:{gw_port}/readyz")).await;
    let direct = format!("http://{backend_ip}:{port}/mcp");
    let via = format!("http://127.0.0.1:{gw_port}/mcp");
    println!(
        "tools/call node_info, {secs} s per run, {concurrency} concurrent callers, loopback, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (era, mode) in [
        ("2025-11-25", ClientMode::Legacy),
        ("2026-07-28", ClientMode::Modern),
    ] {
        let d = load(&direct, mode, json!({}), secs, concurrency).await;
        let g = load(&via, mode, json!({"node": "bench-node"}), secs, concurrency).await;
        row(&format!("direct to node server ({era})"), &d);
        row(&format!("through the gateway   ({era})"), &g);
        let added50 = g.p50.as_secs_f64() - d.p50.as_secs_f64();
        let added99 = g.p99.as_secs_f64() - d.p99.as_secs_f64();
        println!(
            "  gateway adds p50 {:+.0} µs, p99 {:+.0} µs; throughput ratio gateway/direct {:.2}\n",
            added50 * 1e6,
            added99 * 1e6,
            g.per_sec / d.per_sec
        );
    }
    // Sequential latency (one caller): the per-call cost without queueing.
    for (label, url, args) in [
        ("direct, 1 caller", &direct, json!({})),
        ("gateway, 1 caller", &via, json!({"node": "bench-node"})),
    ] {
        let s = load(url, ClientMode::Legacy, args, 2, 1).await;
        row(label, &s);
    }
}
