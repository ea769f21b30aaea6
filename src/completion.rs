//! `completion/complete` through the gateway: the `node` argument (of any served
//! prompt or resource template) is completed by the gateway itself from the ready
//! nodes; any other argument is completed by the backend on the node named in
//! `context.arguments.node` (the `node` entry taken out), so its suggestions fit
//! that node.

use bytes::Bytes;
use mcp_protocol::jsonrpc::ErrorObject;
use mcp_protocol::mcp::{Era, method};
use mcp_protocol::server::ClientRequest;
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::prompts::{NODE_ARGUMENT, node_ip};

/// Most values in one completion (the spec's limit).
pub const MAX_VALUES: usize = 100;

/// Answers `completion/complete`.
pub async fn complete(gw: &Gateway, request: ClientRequest) -> Result<Bytes, ErrorObject> {
    let era = request.outbound.version().era();
    let argument = request.params.get("argument").and_then(Value::as_object);
    let (Some(name), Some(value)) = (
        argument.and_then(|a| a.get("name")).and_then(Value::as_str),
        argument
            .and_then(|a| a.get("value"))
            .and_then(Value::as_str),
    ) else {
        return Err(ErrorObject::invalid_params(
            "completion/complete needs params.argument with a name and a value (strings)",
        ));
    };
    if name == NODE_ARGUMENT {
        let nodes = gw.discovery().nodes();
        let mut matching: Vec<&str> = nodes
            .ready()
            .map(|e| e.node.as_str())
            .filter(|n| n.starts_with(value))
            .collect();
        matching.sort_unstable();
        return Ok(result(era, &matching));
    }
    let mut params = request.params.clone();
    let node = match params
        .get_mut("context")
        .and_then(|c| c.get_mut("arguments"))
    {
        Some(Value::Object(args)) => args.shift_remove(NODE_ARGUMENT),
        _ => None,
    };
    let Some(node) = node else {
        // Nothing to ask until the node is chosen.
        return Ok(result(era, &[]));
    };
    // A served template's reference names the backend's template.
    if let Some(Value::Object(r)) = params.get_mut("ref")
        && let Some(uri) = r.get("uri").and_then(Value::as_str)
        && let Some(theirs) = crate::resources::unwrap_template(uri)
    {
        r.insert("uri".into(), theirs.into());
    }
    let ip = node_ip(gw, node.as_str())?;
    crate::prompts::forward(gw, ip, method::COMPLETE, params, &request).await
}

/// A `CompleteResult` of `values` (at most [`MAX_VALUES`], with the total).
fn result(era: Era, values: &[&str]) -> Bytes {
    let shown = &values[..values.len().min(MAX_VALUES)];
    let mut v = json!({"completion": {
        "values": shown,
        "total": values.len(),
        "hasMore": values.len() > shown.len(),
    }});
    if era == Era::Modern {
        v["resultType"] = "complete".into();
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Discovery, NodeEndpoint, NodeMap};
    use mcp_protocol::jsonrpc::RequestId;
    use mcp_protocol::mcp::ProtocolVersion;
    use mcp_protocol::server::Outbound;
    use std::sync::Arc;
    use std::time::Duration;

    /// A gateway over `n` nodes `worker-0000`... (every tenth not ready); no backend.
    fn gateway(n: usize) -> Gateway {
        let nodes = NodeMap::from_endpoints((0..n).map(|i| NodeEndpoint {
            node: format!("worker-{i:04}"),
            ip: std::net::IpAddr::from([
                10,
                (i / 65536) as u8,
                (i / 256 % 256) as u8,
                (i % 256) as u8,
            ]),
            ready: i % 10 != 9,
            pod: None,
            zone: None,
            terminating: false,
        }));
        Gateway::new(
            crate::catalog::Catalog::build(Vec::new(), 1000),
            Discovery::fixed(nodes),
            Arc::new(crate::upstream::Upstreams::new(
                9,
                "/mcp",
                Duration::from_secs(1),
            )),
            Duration::from_secs(1),
            Arc::new(crate::metrics::Metrics::default()),
        )
    }

    async fn complete_node(gw: &Gateway, version: ProtocolVersion, prefix: &str) -> Value {
        let params = json!({"ref": {"type": "ref/prompt", "name": "p"},
                            "argument": {"name": "node", "value": prefix}});
        let request = ClientRequest {
            id: RequestId::Number(1),
            method: method::COMPLETE.into(),
            params: params.as_object().cloned().unwrap(),
            outbound: Outbound::detached(version),
            cancel: Default::default(),
            extensions: Default::default(),
        };
        serde_json::from_slice(&complete(gw, request).await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn node_is_completed_from_the_ready_nodes_of_a_5000_node_cluster() {
        let gw = gateway(5000);
        let v = complete_node(&gw, ProtocolVersion::LATEST_MODERN, "worker-1").await;
        let values = v["completion"]["values"].as_array().unwrap();
        // worker-1000..worker-1999, every tenth not ready: 900 match.
        assert_eq!(v["completion"]["total"], 900);
        assert_eq!(v["completion"]["hasMore"], true);
        assert_eq!(values.len(), 100);
        assert_eq!(values[0], "worker-1000");
        assert!(values.iter().all(|n| !n.as_str().unwrap().ends_with('9')));
        let v = complete_node(&gw, ProtocolVersion::LATEST_LEGACY, "worker-012").await;
        assert_eq!(v["completion"]["total"], 9);
        assert_eq!(v["completion"]["hasMore"], false);
        let v = complete_node(&gw, ProtocolVersion::LATEST_LEGACY, "nope").await;
        assert_eq!(v["completion"]["values"], json!([]));
        assert_eq!(v["completion"]["total"], 0);
    }

    #[test]
    fn a_completion_holds_at_most_100_values_with_the_total() {
        let names: Vec<String> = (0..250).map(|i| format!("worker-{i:03}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let v: Value = serde_json::from_slice(&result(Era::Modern, &refs)).unwrap();
        assert_eq!(v["completion"]["values"].as_array().unwrap().len(), 100);
        assert_eq!(v["completion"]["total"], 250);
        assert_eq!(v["completion"]["hasMore"], true);
        assert_eq!(v["resultType"], "complete");
        let v: Value = serde_json::from_slice(&result(Era::Legacy, &["a"])).unwrap();
        assert_eq!(v["completion"]["hasMore"], false);
        assert!(v.get("resultType").is_none());
    }
}
