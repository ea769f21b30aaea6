//! The no-cluster mode: three example node servers in-process on 127.0.0.2-127.0.0.4
//! as nodes demo-node-1..3, and the gateway in front of them with a fixed node list.

use anyhow::Context;
use node_mcp_server::tools::{HostPaths, ToolContext};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Discovery, NodeEndpoint, NodeMap};
use crate::config::Config;

/// The demo nodes: name and loopback address.
pub fn demo_nodes() -> Vec<(String, IpAddr)> {
    (1..=3u8)
        .map(|i| {
            (
                format!("demo-node-{i}"),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, i + 1)),
            )
        })
        .collect()
}

/// Runs the demo until Ctrl-C.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let mut endpoints = Vec::new();
    for (node, ip) in demo_nodes() {
        let addr = SocketAddr::new(ip, config.backend_port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot start the demo node server on {addr}"))?;
        let ctx = ToolContext {
            node_name: node.clone(),
            host: HostPaths {
                proc: "/proc".into(),
                root: "/".into(),
            },
            // The demo shows this machine's processes: keep their secrets hidden.
            cmdline: Default::default(),
            hidden_tools: Vec::new(),
        };
        let stop = stop.clone();
        tokio::spawn(node_mcp_server::server::run(listener, ctx, async move {
            stop.cancelled().await
        }));
        endpoints.push(NodeEndpoint {
            node,
            ip,
            ready: true,
            pod: None,
            zone: None,
            terminating: false,
        });
    }
    if config.listen.ip().is_unspecified() {
        config.listen.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let discovery = Discovery::fixed(NodeMap::from_endpoints(endpoints));
    let app = crate::server::start(&config, discovery).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (FRONTEND_PORT)", config.listen))?;
    println!("{}", banner(&config.listen.to_string()));
    crate::server::serve(app, listener, mcp_protocol::serve::shutdown_signal()).await;
    stop.cancel();
    Ok(())
}

fn banner(addr: &str) -> String {
    let url = format!("http://{addr}/mcp");
    format!(
        r#"k8s-aggregator-mcp demo: gateway on {url}
nodes: demo-node-1 (127.0.0.2), demo-node-2 (127.0.0.3), demo-node-3 (127.0.0.4)

Try it (2026-07-28, stateless):
  curl -s {url} -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: node_info' -H 'Mcp-Param-Node: demo-node-2' \
    -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"node_info","arguments":{{"node":"demo-node-2"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}'

Or with a session (2025-11-25): scripts/smoke.sh {url}
MCP Inspector: npx @modelcontextprotocol/inspector --cli {url} --transport http --method tools/list
Ctrl-C stops."#
    )
}
