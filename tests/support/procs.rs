//! Real processes for integration tests: node servers on their own loopback addresses
//! (one per simulated node) and the gateway binary, each killed when its handle drops.
//!
//! Every test uses its own 127.N.M.x range, so tests run in parallel without sharing
//! ports; all backends of one test share one port, as DaemonSet pods do.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for a process to come up on a loaded 2-core machine.
pub const STARTUP: Duration = Duration::from_secs(30);

/// A binary of this workspace (the node server is built next to the gateway).
pub fn bin(name: &str) -> PathBuf {
    let gateway = PathBuf::from(env!("CARGO_BIN_EXE_k8s-aggregator-mcp"));
    let path = gateway.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// A port free on every given address.
pub fn common_free_port(ips: &[IpAddr]) -> u16 {
    for _ in 0..200 {
        let Ok(first) = TcpListener::bind(SocketAddr::new(ips[0], 0)) else {
            continue;
        };
        let Ok(addr) = first.local_addr() else {
            continue;
        };
        let port = addr.port();
        let others: Vec<_> = ips[1..]
            .iter()
            .map(|ip| TcpListener::bind(SocketAddr::new(*ip, port)))
            .collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no common free port on {ips:?}");
}

/// A child process, killed on drop; stderr kept in a file for failure messages.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its address (MCP endpoint host:port).
    pub addr: SocketAddr,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Proc {
    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The MCP endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Whether the process has exited (and with what status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(tag: &str) -> (PathBuf, std::fs::File) {
    let dir = std::env::temp_dir().join("k8s-aggregator-mcp-tests");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!(
        "{tag}-{}-{}.log",
        std::process::id(),
        rand_suffix()
    ));
    let file = std::fs::File::create(&path).expect("create log file");
    (path, file)
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// Starts `node-mcp-server` for `node` on `ip:port` and waits for /healthz.
pub async fn spawn_backend(node: &str, ip: IpAddr, port: u16) -> Proc {
    let (log, file) = log_file(&format!("backend-{node}"));
    let child = Command::new(bin("node-mcp-server"))
        .env("NODE_NAME", node)
        .env("BIND_ADDRESS", ip.to_string())
        .env("BACKEND_PORT", port.to_string())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn node-mcp-server");
    let mut p = Proc {
        child,
        addr: SocketAddr::new(ip, port),
        log,
    };
    wait_http(&mut p, "/healthz").await;
    p
}

/// Starts the gateway with `env` (plus RUST_LOG) and waits until /readyz answers 200.
pub async fn spawn_gateway(ip: IpAddr, env: &[(&str, String)]) -> Proc {
    let mut p = launch_gateway(ip, env);
    wait_http(&mut p, "/readyz").await;
    p
}

/// Starts the gateway without waiting (for start-up failure tests).
pub fn launch_gateway(ip: IpAddr, env: &[(&str, String)]) -> Proc {
    let port = common_free_port(&[ip]);
    let (log, file) = log_file("gateway");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8s-aggregator-mcp"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("BIND_ADDRESS", ip.to_string())
        .env("FRONTEND_PORT", port.to_string())
        .env("RUST_LOG", "info,k8s_aggregator_mcp=debug")
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn k8s-aggregator-mcp");
    Proc {
        child,
        addr: SocketAddr::new(ip, port),
        log,
    }
}

/// Polls `path` until it answers 200; panics with the process log if it exits or times out.
pub async fn wait_http(p: &mut Proc, path: &str) {
    let url = format!("http://{}{path}", p.addr);
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Some(status) = p.exited() {
            panic!(
                "process exited ({status}) before {url} answered:\n{}",
                p.log_text()
            );
        }
        if let Ok(r) = http.get(&url).timeout(Duration::from_secs(2)).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < STARTUP,
            "{url} did not answer in time:\n{}",
            p.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a process to exit; returns its status and log.
pub async fn wait_exit(p: &mut Proc, deadline: Duration) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = p.exited() {
            return (status, p.log_text());
        }
        assert!(
            start.elapsed() < deadline,
            "process did not exit:\n{}",
            p.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a condition until it holds, within `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `node-mcp-server` like [`spawn_backend`] with extra settings (`CLIENT_AUTH`...).
pub async fn spawn_backend_with(node: &str, ip: IpAddr, port: u16, env: &[(&str, String)]) -> Proc {
    let (log, file) = log_file(&format!("backend-{node}"));
    let mut cmd = Command::new(bin("node-mcp-server"));
    cmd.env("NODE_NAME", node)
        .env("BIND_ADDRESS", ip.to_string())
        .env("BACKEND_PORT", port.to_string())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn node-mcp-server");
    let mut p = Proc {
        child,
        addr: SocketAddr::new(ip, port),
        log,
    };
    wait_http(&mut p, "/healthz").await;
    p
}

/// Starts the gateway on a port the caller chose (so its settings can name the
/// gateway's own URL, e.g. OAUTH_RESOURCE) and waits until /readyz answers 200.
pub async fn spawn_gateway_on(ip: IpAddr, port: u16, env: &[(&str, String)]) -> Proc {
    let mut env = env.to_vec();
    env.push(("FRONTEND_PORT", port.to_string()));
    let mut p = launch_gateway(ip, &env);
    p.addr = SocketAddr::new(ip, port);
    wait_http(&mut p, "/readyz").await;
    p
}
