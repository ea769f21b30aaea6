//! Interop with code nobody here wrote, against the real binaries:
//! - the official MCP Python SDK client (PyPI `mcp` 2.x), legacy and auto (2026-07-28
//!   first) modes, against the node server and through the gateway, progress included;
//! - the MCP conformance suite's server scenarios against both servers, and its client
//!   scenarios with `mcp-call`, our command-line client;
//! - the MCP Inspector CLI calling `node_info`;
//! - a FastMCP backend behind the gateway, whose rich schema must come out unchanged but
//!   for `node`.
//!
//! The peers are installed by `.ci/install-interop` into `.interop/`; a missing peer fails
//! the test with that instruction, it is never skipped.

#[path = "support/interop.rs"]
mod interop;
mod support;

use interop::SdkCall;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use support::cluster::Cluster;
use support::fake_kube::FakeKube;
use support::mcp::assert_backend_tool_plus_node;
use support::procs::{self, Proc};

const SERVER_SCENARIOS: [&str; 5] = [
    "server-initialize",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 20, net, host))
}

/// Runs blocking peer processes off the async runtime (the fake API server lives on it).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("peer task")
}

/// A node server on 127.0.0.1 (the conformance suite's DNS-rebinding scenario wants a
/// loopback host name).
async fn local_backend(node: &str) -> Proc {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    procs::spawn_backend(node, lo, procs::common_free_port(&[lo])).await
}

/// Node servers on 127.20.net.2.. behind a gateway on 127.0.0.1 (a loopback host name,
/// as the conformance suite's DNS-rebinding scenario wants), found through the fake API.
async fn gateway_over_node_servers(net: u8, n: u8) -> Cluster {
    let ips: Vec<IpAddr> = (2..2 + n).map(|h| ip(net, h)).collect();
    Cluster::start(&ips, IpAddr::V4(Ipv4Addr::LOCALHOST), &[]).await
}

fn node_tool_calls(node: Option<&str>) -> Vec<SdkCall> {
    let with = |mut args: Value| {
        if let Some(n) = node {
            args["node"] = n.into();
        }
        args
    };
    vec![
        SdkCall::new("node_info", with(json!({}))),
        SdkCall::new(
            "list_processes",
            with(json!({"limit": 3, "sort_by": "cpu"})),
        ),
        SdkCall::new("disk_usage", with(json!({}))),
        SdkCall::with_progress("cpu_usage", with(json!({"seconds": 2}))),
    ]
}

/// Checks an SDK client document: every call succeeded, progress arrived before the result.
fn assert_sdk_calls(doc: &Value, mode: &str) {
    let version = doc["protocol_version"].as_str().unwrap_or("");
    match mode {
        "legacy" => assert_eq!(version, "2025-11-25", "{doc}"),
        _ => assert_eq!(version, "2026-07-28", "{doc}"),
    }
    let calls = doc["calls"].as_array().expect("calls");
    for c in calls {
        let result = &c["result"];
        assert_ne!(result["isError"], json!(true), "{mode}: {c}");
        assert!(result["structuredContent"].is_object(), "{mode}: {c}");
    }
    let cpu = calls
        .iter()
        .find(|c| c["name"] == "cpu_usage")
        .expect("cpu_usage call");
    assert!(
        cpu["progress_before_result"].as_u64().unwrap_or(0) >= 1,
        "{mode}: {cpu}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_uses_every_node_server_tool_in_both_modes() {
    let backend = local_backend("sdk-node").await;
    for mode in ["legacy", "auto"] {
        let url = backend.url();
        let doc = blocking(move || interop::sdk_client(&url, mode, &node_tool_calls(None))).await;
        let names: Vec<_> = doc["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(
            names,
            ["node_info", "list_processes", "disk_usage", "cpu_usage"],
            "{mode}"
        );
        assert_sdk_calls(&doc, mode);
        assert_eq!(
            doc["calls"][0]["result"]["structuredContent"]["node_name"],
            "sdk-node"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_server_scenarios_pass_against_the_node_server() {
    let backend = local_backend("conformance-node").await;
    for scenario in SERVER_SCENARIOS {
        let url = backend.url();
        let out = blocking(move || interop::conformance_server(&url, scenario)).await;
        assert!(out.is_ok(), "{scenario}: {}", out.unwrap_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_client_scenarios_pass_with_mcp_call() {
    let cli = procs::bin("mcp-call").display().to_string();
    let cases: [(&str, Vec<String>); 2] = [
        ("initialize", vec![cli.clone()]),
        (
            "tools_call",
            ["--call", "add_numbers", "--arg", "a=2", "--arg", "b=3"]
                .iter()
                .map(|s| s.to_string())
                .fold(vec![cli.clone()], |mut v, s| {
                    v.push(s);
                    v
                }),
        ),
    ];
    for (scenario, cmd) in cases {
        let out = blocking(move || {
            let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
            interop::conformance_client(scenario, &cmd)
        })
        .await;
        assert!(out.is_ok(), "{scenario}: {}", out.unwrap_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_cli_calls_node_info_on_the_node_server_and_through_the_gateway() {
    let backend = local_backend("inspector-node").await;
    let url = backend.url();
    let result =
        blocking(move || interop::inspector_call(&url, "legacy", "node_info", &json!({}))).await;
    let result = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        result["structuredContent"]["node_name"], "inspector-node",
        "{result}"
    );
    let c = gateway_over_node_servers(1, 2).await;
    for era in ["legacy", "auto"] {
        let url = c.url();
        let result = blocking(move || {
            interop::inspector_call(&url, era, "node_info", &json!({"node": "node-2"}))
        })
        .await;
        let result = result.unwrap_or_else(|e| panic!("{era}: {e}"));
        assert_eq!(
            result["structuredContent"]["node_name"], "node-2",
            "{era}: {result}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_through_the_gateway_sees_node_first_and_reaches_each_node() {
    let c = gateway_over_node_servers(2, 2).await;
    for mode in ["legacy", "auto"] {
        for node in ["node-1", "node-2"] {
            let url = c.url();
            let calls = node_tool_calls(Some(node));
            let doc = blocking(move || interop::sdk_client(&url, mode, &calls)).await;
            assert_sdk_calls(&doc, mode);
            assert_eq!(
                doc["calls"][0]["result"]["structuredContent"]["node_name"], node,
                "{mode}"
            );
            for tool in &support::mcp::backend_tools(doc["tools_wire"].as_array().unwrap()) {
                let schema = &tool["inputSchema"];
                let first = schema["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .next()
                    .cloned();
                assert_eq!(first.as_deref(), Some("node"), "{mode}: {tool}");
                assert_eq!(schema["required"][0], "node", "{mode}: {tool}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_server_scenarios_pass_against_the_gateway() {
    let c = gateway_over_node_servers(3, 1).await;
    for scenario in SERVER_SCENARIOS {
        let url = c.url();
        let out = blocking(move || interop::conformance_server(&url, scenario)).await;
        assert!(out.is_ok(), "{scenario}: {}", out.unwrap_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fastmcp_backend_behind_the_gateway_keeps_its_rich_schema_but_for_node() {
    let kube = FakeKube::start().await;
    let ips = [ip(4, 2), ip(4, 3)];
    let port = procs::common_free_port(&ips);
    let mut backends = Vec::new();
    for (i, addr) in ips.iter().enumerate() {
        let node = format!("fast-{}", i + 1);
        let opts = interop::FastMcpOptions {
            node_name: Some(node.clone()),
            ..Default::default()
        };
        let host = addr.to_string();
        backends
            .push(blocking(move || interop::spawn_fastmcp_backend_with(&host, port, opts)).await);
        kube.set_node(&node, *addr, true);
    }
    let env = [
        ("KUBECONFIG", kube.kubeconfig_path().display().to_string()),
        ("BACKEND_PORT", port.to_string()),
    ];
    let gateway = procs::spawn_gateway(ip(4, 1), &env).await;

    // What FastMCP itself lists, straight from the backend, in the era the gateway
    // learned it in (FastMCP orders schema keys differently per era).
    let direct_url = backends[0].url.clone();
    let direct = blocking(move || interop::sdk_client(&direct_url, "auto", &[])).await;
    for mode in ["legacy", "auto"] {
        let url = gateway.url();
        let calls = vec![
            SdkCall::new("echo_node", json!({"node": "fast-2", "message": "hi"})),
            SdkCall::new(
                "plan_inspection",
                json!({"node": "fast-1", "checks": [{"name": "disk", "severity": "high"}], "mode": "deep"}),
            ),
            SdkCall::with_progress("slow_count", json!({"node": "fast-2", "steps": 3})),
        ];
        let via = blocking(move || interop::sdk_client(&url, mode, &calls)).await;
        let direct_tools = direct["tools_wire"].as_array().unwrap();
        let served_tools = &support::mcp::backend_tools(via["tools_wire"].as_array().unwrap());
        assert_eq!(direct_tools.len(), served_tools.len(), "{mode}");
        for (d, s) in direct_tools.iter().zip(served_tools) {
            assert_backend_tool_plus_node(d, s);
        }
        let plan = served_tools
            .iter()
            .find(|t| t["name"] == "plan_inspection")
            .unwrap();
        assert!(
            plan["inputSchema"]["$defs"].is_object(),
            "$defs kept: {plan}"
        );
        let calls = via["calls"].as_array().unwrap();
        assert!(
            calls[0]["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("fast-2: hi"),
            "{via}"
        );
        assert_eq!(
            calls[1]["result"]["structuredContent"]["node"], "fast-1",
            "{via}"
        );
        assert!(
            calls[2]["progress_before_result"].as_u64().unwrap_or(0) >= 2,
            "{mode}: {}",
            calls[2]
        );
    }
    drop(gateway);
}
