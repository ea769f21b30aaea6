//! A whole simulated cluster: the fake Kubernetes API, one real node server per loopback
//! address (nodes `node-1..n`), and the real gateway finding them through a kubeconfig.
#![allow(dead_code)]

use std::net::IpAddr;

use super::fake_kube::FakeKube;
use super::procs::{self, Proc};

/// The running parts; everything stops when this drops.
pub struct Cluster {
    /// The fake API server (add, remove, unready nodes through it).
    pub kube: FakeKube,
    /// The node servers, in node order.
    pub backends: Vec<Proc>,
    /// The gateway process.
    pub gateway: Proc,
    /// The port every node server listens on (BACKEND_PORT).
    pub port: u16,
}

impl Cluster {
    /// Starts node servers on `backend_ips` and the gateway on `gateway_ip` with
    /// `extra_env`, and waits until the gateway is ready.
    pub async fn start(
        backend_ips: &[IpAddr],
        gateway_ip: IpAddr,
        extra_env: &[(&str, String)],
    ) -> Cluster {
        let kube = FakeKube::start().await;
        let port = procs::common_free_port(backend_ips);
        let mut backends = Vec::new();
        for (i, addr) in backend_ips.iter().enumerate() {
            let node = format!("node-{}", i + 1);
            backends.push(procs::spawn_backend(&node, *addr, port).await);
            kube.set_node(&node, *addr, true);
        }
        let mut env = vec![
            ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
            ("BACKEND_PORT", port.to_string()),
        ];
        env.extend(extra_env.iter().cloned());
        let gateway = procs::spawn_gateway(gateway_ip, &env).await;
        Cluster {
            kube,
            backends,
            gateway,
            port,
        }
    }

    /// The gateway's MCP endpoint.
    pub fn url(&self) -> String {
        self.gateway.url()
    }
}
