//! Benchmark (not a test): tools/call `node_info` throughput and p50/p99 latency on
//! loopback against one node server four ways, measured in one run: directly, through
//! nginx as a plain reverse proxy (the cost of a dumb hop), through `bench_proxy` (a
//! relay-only proxy on the gateway's own HTTP stack: the floor of that stack), and
//! through the gateway; at 1 and at CONCURRENCY callers, for a legacy session and for
//! 2026-07-28. Prints what each hop adds to the median at one caller and the throughput
//! ratios gateway / nginx and gateway / bare hyper proxy.
//!
//! `just bench` or: `cargo build --release --workspace --bins --examples && target/release/examples/bench [SECONDS] [CONCURRENCY]`
//!
//! The node server, nginx (Debian `nginx-light`; when it is not installed the bench says
//! so and measures the rest) and the gateway (static node list, no cluster) run as real
//! processes on loopback; nginx's configuration is written under `.bench/nginx/` and
//! each process is stopped by its PID. The load comes from this process with the
//! project's own MCP client. With two or more CPUs and `taskset` present, the measured
//! processes are pinned to CPU 0 and this process to the others (BENCH_PIN=0 turns it
//! off), so the load generator does not compete with what it measures. BENCH_TARGETS
//! (e.g. `gateway`, or `direct,gateway`) runs only the hops it names, for profiling.
//! Each target's SECONDS are split into BENCH_ROUNDS (default 4) short runs taken in
//! turn with the other targets', so a noisy stretch of a shared machine weighs on every
//! hop alike; the figures are over all rounds.

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
    built(path)
}

/// An example program beside this one (target/<profile>/examples/<name>).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    built(exe.with_file_name(name))
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} missing: cargo build --release --workspace --bins --examples",
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

/// The calls of one target at one concurrency, over all its rounds.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

struct Stats {
    calls: usize,
    errors: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

impl Samples {
    fn stats(mut self) -> Stats {
        self.latencies.sort();
        let all = &self.latencies;
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Stats {
            calls: all.len(),
            errors: self.errors,
            per_sec: all.len() as f64 / self.elapsed.as_secs_f64().max(1e-9),
            p50: pct(0.50),
            p99: pct(0.99),
        }
    }
}

/// `concurrency` callers calling `url` for `run`, after a warm-up; adds their calls
/// to `into`.
async fn load(
    url: &str,
    mode: ClientMode,
    args: &Value,
    run: Duration,
    concurrency: usize,
    into: &mut Samples,
) {
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
        let _ = call(&client, args).await;
    }
    let deadline = Instant::now() + run;
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
    for w in workers {
        let (lat, e) = w.await.expect("worker");
        into.latencies.extend(lat);
        into.errors += e;
    }
    into.elapsed += started.elapsed();
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

/// The CPUs for the measured processes and for the load generator, when pinning helps.
fn pinning() -> Option<(String, String)> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = std::env::var("BENCH_PIN").map_or(true, |v| v != "0");
    let has_taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (wanted && cpus >= 2 && has_taskset).then(|| ("0".to_string(), format!("1-{}", cpus - 1)))
}

/// A command for a measured process, pinned when `pin` is set.
fn measured(program: &std::path::Path, pin: &Option<(String, String)>) -> Command {
    match pin {
        Some((servers, _)) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(servers).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Starts nginx as a plain keep-alive reverse proxy to `upstream` on `listen`; None (with
/// the reason printed) when nginx is not installed or does not start.
fn start_nginx(listen: &str, upstream: &str, pin: &Option<(String, String)>) -> Option<Killed> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(nginx) = nginx else {
        println!("nginx: not installed (apt-get install nginx-light); measuring without it\n");
        return None;
    };
    let dir = std::env::current_dir().ok()?.join(".bench/nginx");
    std::fs::create_dir_all(dir.join("tmp")).ok()?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
           fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
           upstream node {{ server {upstream}; keepalive 64; }}\n\
           server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://node;\n\
               proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n\
               proxy_buffering off;\n    }}\n  }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).ok()?;
    let child = measured(&nginx, pin)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(c) => Some(Killed(c)),
        Err(e) => {
            println!("nginx: cannot start ({e}); measuring without it\n");
            None
        }
    }
}

/// Whether BENCH_TARGETS (comma-separated: direct, nginx, hyper, gateway; all when unset) names
/// `label`, so one hop can be run alone, e.g. under a profiler.
fn wanted(label: &str) -> bool {
    std::env::var("BENCH_TARGETS").map_or(true, |v| v.split(',').any(|t| t.trim() == label))
}

/// Pins this process (the load generator) to `cpus`.
fn pin_self(cpus: &str) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
}

#[tokio::main]
async fn main() {
    let mut argv = std::env::args().skip(1);
    let secs: u64 = argv.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rounds: u32 = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(4);
    let run = Duration::from_secs(secs) / rounds;
    let concurrency: usize = argv.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pin = pinning();
    if let Some((_, load_cpus)) = &pin {
        pin_self(load_cpus);
    }
    let backend_ip = "127.0.0.2";
    let port = free_port(backend_ip);
    let gw_port = free_port("127.0.0.1");
    let nginx_port = free_port("127.0.0.1");
    let _backend = Killed(
        measured(&binary("node-mcp-server"), &pin)
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
        measured(&binary("k8s-aggregator-mcp"), &pin)
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
    let nginx = start_nginx(
        &format!("127.0.0.1:{nginx_port}"),
        &format!("{backend_ip}:{port}"),
        &pin,
    );
    let hyper_port = free_port("127.0.0.1");
    let _hyper_proxy = Killed(
        measured(&example("bench_proxy"), &pin)
            .arg(format!("127.0.0.1:{hyper_port}"))
            .arg(format!("{backend_ip}:{port}"))
            .spawn()
            .expect("spawn bench_proxy"),
    );
    wait_ready(&format!("http://127.0.0.1:{hyper_port}/healthz")).await;
    let via_hyper = format!("http://127.0.0.1:{hyper_port}/mcp");
    let via_nginx = format!("http://127.0.0.1:{nginx_port}/mcp");
    if nginx.is_some() {
        wait_ready(&format!("http://127.0.0.1:{nginx_port}/healthz")).await;
    }
    let direct = format!("http://{backend_ip}:{port}/mcp");
    let via = format!("http://127.0.0.1:{gw_port}/mcp");
    println!(
        "tools/call node_info, {secs} s per target and concurrency in {rounds} interleaved rounds, 1 and {concurrency} concurrent callers, loopback, {cpus} CPUs{}",
        match &pin {
            Some((s, l)) => format!(", servers pinned to CPU {s}, load generator to CPU {l}"),
            None => ", no pinning".into(),
        }
    );
    for (era, mode) in [
        ("2025-11-25", ClientMode::Legacy),
        ("2026-07-28", ClientMode::Modern),
    ] {
        println!("\n{era}:");
        let targets: Vec<_> = [
            ("direct", &direct, json!({}), true),
            ("nginx", &via_nginx, json!({}), nginx.is_some()),
            ("hyper", &via_hyper, json!({}), true),
            ("gateway", &via, json!({"node": "bench-node"}), true),
        ]
        .into_iter()
        .filter(|(label, _, _, present)| *present && wanted(label))
        .collect();
        // Short rounds, every target in turn, so a noisy stretch of the machine
        // falls on all of them alike rather than on one.
        let mut one: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
        let mut many: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
        for _ in 0..rounds {
            for (i, (_, url, args, _)) in targets.iter().enumerate() {
                load(url, mode, args, run, 1, &mut one[i]).await;
                load(url, mode, args, run, concurrency, &mut many[i]).await;
            }
        }
        let labels = targets.iter().map(|(label, ..)| *label);
        let one: Vec<(&str, Stats)> = labels
            .clone()
            .zip(one.into_iter().map(Samples::stats))
            .collect();
        let many: Vec<(&str, Stats)> = labels.zip(many.into_iter().map(Samples::stats)).collect();
        for ((label, s1), (_, sn)) in one.iter().zip(&many) {
            row(&format!("{label}, 1 caller"), s1);
            row(&format!("{label}, {concurrency} callers"), sn);
        }
        let find = |v: &[(&str, Stats)], l: &str| v.iter().position(|(x, _)| *x == l);
        let (Some(d), Some(g)) = (find(&one, "direct"), find(&one, "gateway")) else {
            continue;
        };
        let added = |i: usize| (one[i].1.p50.as_secs_f64() - one[d].1.p50.as_secs_f64()) * 1e6;
        print!("  added p50 at 1 caller: gateway {:+.0} µs", added(g));
        match find(&one, "nginx") {
            Some(n) => println!(
                ", nginx {:+.0} µs; throughput at {concurrency}: gateway / nginx {:.2}, gateway / direct {:.2}",
                added(n),
                many[g].1.per_sec / many[n].1.per_sec,
                many[g].1.per_sec / many[d].1.per_sec
            ),
            None => println!(
                "; throughput at {concurrency}: gateway / direct {:.2} (no nginx)",
                many[g].1.per_sec / many[d].1.per_sec
            ),
        }
        if let Some(h) = find(&one, "hyper") {
            println!(
                "  bare hyper proxy (the gateway's HTTP stack, relaying only): added p50 {:+.0} µs; throughput at {concurrency}: gateway / hyper {:.2}{}",
                added(h),
                many[g].1.per_sec / many[h].1.per_sec,
                find(&one, "nginx").map_or(String::new(), |n| format!(
                    ", hyper / nginx {:.2}",
                    many[h].1.per_sec / many[n].1.per_sec
                ))
            );
        }
    }
}
