//! A real round-robin load balancer for replica tests: nginx (Debian `nginx-light`,
//! installed by `.ci/install-proxy`) in the foreground as one process (no master, no
//! daemon), on a loopback address, with its config, logs and temporary files in a
//! folder of its own; stopped by its PID when the handle drops.
//!
//! Its access log names the upstream that served each request and the request's
//! `Mcp-Session-Id`, so a test can prove that one session went to both replicas.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where nginx is found (the Debian package's path first).
fn nginx_binary() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("nginx is missing: run .ci/install-proxy (Debian: apt-get install nginx-light)");
}

/// One request as the access log saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The upstream that answered (`host:port`), or what nginx tried, comma-separated.
    pub upstream: String,
    /// The request's `Mcp-Session-Id` (`-` when none).
    pub session: String,
    /// The HTTP method.
    pub method: String,
    /// The status sent to the client.
    pub status: u16,
}

/// A running nginx; killed when dropped.
pub struct Nginx {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx on `addr` balancing round-robin over `upstreams`, and waits until
    /// it accepts connections.
    pub async fn start(addr: SocketAddr, upstreams: &[SocketAddr]) -> Nginx {
        let dir = std::env::temp_dir().join(format!(
            "k8s-aggregator-mcp-nginx-{}-{}",
            std::process::id(),
            addr.ip()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).expect("nginx folder");
        let servers: String = upstreams
            .iter()
            .map(|u| format!("    server {u} max_fails=0;\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  log_format replicas '$upstream_addr|$http_mcp_session_id|$request_method|$status';
  access_log {d}/access.log replicas;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  upstream gateways {{
{servers}  }}
  server {{
    listen {addr};
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 120s;
    }}
  }}
}}
"#
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut n = Nginx { child, addr, dir };
        let start = Instant::now();
        loop {
            if let Some(status) = n.child.try_wait().ok().flatten() {
                panic!("nginx exited ({status}):\n{}", n.error_log());
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return n;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nginx did not listen on {addr}:\n{}",
                n.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The MCP endpoint through the balancer.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Every request logged so far.
    pub fn requests(&self) -> Vec<Logged> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split('|');
                Some(Logged {
                    upstream: f.next()?.to_string(),
                    session: f.next()?.to_string(),
                    method: f.next()?.to_string(),
                    status: f.next()?.parse().ok()?,
                })
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
