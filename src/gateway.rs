//! The gateway's tool handler: serves the catalog and routes each call to the pod on
//! the node the caller named, turning every routing failure into a tool error a model
//! can act on.

use bytes::Bytes;
use mcp_protocol::headers::ParamHeader;
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{self, Era};
use mcp_protocol::server::{BoxFuture, ToolCall, ToolHandler};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

use crate::catalog::{Catalog, NODE_PARAM};
use crate::cluster::{Discovery, NodeMap};
use crate::metrics::{CallOutcome, Metrics};
use crate::upstream::{self, ForwardError, Upstreams};

/// Everything a call needs, shared by all requests.
pub struct Gateway {
    catalog: RwLock<Arc<Catalog>>,
    discovery: Discovery,
    upstreams: Arc<Upstreams>,
    call_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// A gateway serving `catalog` over the nodes `discovery` reports.
    pub fn new(
        catalog: Catalog,
        discovery: Discovery,
        upstreams: Arc<Upstreams>,
        call_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Gateway {
            catalog: RwLock::new(Arc::new(catalog)),
            discovery,
            upstreams,
            call_timeout,
            metrics,
        }
    }

    /// The catalog in force.
    pub fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new catalog (the caller then notifies clients).
    pub fn set_catalog(&self, catalog: Catalog) {
        if let Ok(mut c) = self.catalog.write() {
            *c = Arc::new(catalog);
        }
    }

    /// The discovery the gateway routes with.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }
}

/// The gateway as the MCP server's tool handler.
#[derive(Clone)]
pub struct Handler(pub Arc<Gateway>);

impl ToolHandler for Handler {
    fn list_tools(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, ErrorObject> {
        if let Some(c) = cursor {
            return Err(ErrorObject::invalid_params(format!(
                "unknown cursor {:?}: the gateway lists all tools on one page",
                shorten(c)
            )));
        }
        Ok(self.0.catalog().list_result(era))
    }

    fn param_headers(&self, tool: &str) -> Option<Arc<[ParamHeader]>> {
        self.0.catalog().get(tool).map(|t| t.param_headers.clone())
    }

    fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        let gw = self.0.clone();
        // Every debug line of the call carries its id, tool, node and pod IP (a debug
        // span: free at the default log level, so nothing is formatted per call).
        let span = tracing::debug_span!(
            "tools/call",
            id = %call.id,
            tool = %call.name,
            node = tracing::field::Empty,
            pod_ip = tracing::field::Empty,
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let (outcome, answer) = gw.route(call).await;
                gw.metrics.record_call(outcome, started.elapsed());
                tracing::debug!(outcome = outcome.label(), "call done");
                answer
            }
            .instrument(span),
        )
    }
}

impl Gateway {
    async fn route(&self, call: ToolCall) -> (CallOutcome, Result<Bytes, ErrorObject>) {
        let era = call.version.era();
        let tool_error = |outcome, text: String| (outcome, Ok(tool_error(era, &text)));
        if self.catalog().get(&call.name).is_none() {
            return (
                CallOutcome::UnknownTool,
                Err(ErrorObject::invalid_params(format!(
                    "Unknown tool: {}",
                    shorten(&call.name)
                ))),
            );
        }
        let node = match call.arguments().and_then(|a| a.get(NODE_PARAM)) {
            Some(Value::String(n)) if n.len() > MAX_NODE_NAME_BYTES => {
                return tool_error(
                    CallOutcome::BadArguments,
                    format!(
                        "Argument \"node\" is {} bytes long; a Kubernetes node name has at most {MAX_NODE_NAME_BYTES} characters.",
                        n.len()
                    ),
                );
            }
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            None => {
                return tool_error(
                    CallOutcome::BadArguments,
                    format!(
                        "Missing required argument \"node\": name the Kubernetes node to run {} on. {}",
                        call.name,
                        known_nodes_hint(&self.discovery.nodes(), "")
                    ),
                );
            }
            Some(other) => {
                return tool_error(
                    CallOutcome::BadArguments,
                    format!(
                        "Argument \"node\" must be a non-empty string (a node name), got {other}."
                    ),
                );
            }
        };
        let nodes = self.discovery.nodes();
        let Some(endpoint) = nodes.get(&node) else {
            return tool_error(
                CallOutcome::UnknownNode,
                format!(
                    "Unknown node \"{node}\". {}",
                    known_nodes_hint(&nodes, &node)
                ),
            );
        };
        if !endpoint.ready {
            return tool_error(
                CallOutcome::NodeNotReady,
                format!(
                    "Node \"{node}\" is known but its MCP server pod{} is not ready; try again shortly or pick another node. {}",
                    endpoint
                        .pod
                        .as_ref()
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default(),
                    known_nodes_hint(&nodes, &node)
                ),
            );
        }
        let ip = endpoint.ip;
        let span = tracing::Span::current();
        span.record("node", node.as_str());
        span.record("pod_ip", tracing::field::display(ip));
        tracing::debug!("forwarding call");
        let ToolCall {
            name,
            mut params,
            progress,
            cancel,
            ..
        } = call;
        if let Some(Value::Object(args)) = params.get_mut("arguments") {
            args.shift_remove(NODE_PARAM);
        }
        let client = self.upstreams.client(ip);
        let forwarded = upstream::forward(
            client,
            params,
            progress.as_ref(),
            &cancel,
            self.call_timeout,
        )
        .await;
        match forwarded {
            Ok((Ok(raw), upstream_version)) => {
                let bytes = if upstream_version.era() == era {
                    Bytes::copy_from_slice(raw.get().as_bytes())
                } else {
                    convert_result(raw.get(), era)
                };
                (CallOutcome::Ok, Ok(bytes))
            }
            Ok((Err(e), _)) => (CallOutcome::BackendError, Err(e)),
            Err(ForwardError::Cancelled) => (
                CallOutcome::Cancelled,
                Err(ErrorObject::new(
                    jsonrpc::REQUEST_CANCELLED,
                    "request cancelled",
                )),
            ),
            Err(ForwardError::Backend(e)) => {
                use mcp_protocol::client::ClientError as E;
                tracing::warn!(tool = %name, %node, pod_ip = %ip, error = %e, "backend call failed");
                let (outcome, text) = match &e {
                    E::Timeout { timeout, .. } => (
                        CallOutcome::Timeout,
                        format!(
                            "The MCP server on node \"{node}\" (pod IP {ip}) did not answer within {} s.",
                            timeout.as_secs()
                        ),
                    ),
                    E::Unreachable { .. } => (
                        CallOutcome::Unreachable,
                        format!(
                            "The MCP server on node \"{node}\" (pod IP {ip}) is unreachable: {e}"
                        ),
                    ),
                    _ => (
                        CallOutcome::BackendBroken,
                        format!(
                            "The MCP server on node \"{node}\" (pod IP {ip}) gave an unusable answer: {e}"
                        ),
                    ),
                };
                tool_error(outcome, text)
            }
        }
    }
}

/// Longest node name Kubernetes allows (a DNS subdomain): a longer `node` is refused
/// before any lookup or hint is computed.
pub const MAX_NODE_NAME_BYTES: usize = 253;

/// A caller-chosen string as quoted in an error: at most 128 characters, so an error
/// never echoes megabytes back.
fn shorten(text: &str) -> String {
    const MAX: usize = 128;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A tool result with `isError: true` and a message for the model.
fn tool_error(era: Era, text: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&mcp::tool_result(era, text, None, true)).unwrap_or_default())
}

/// Re-shapes a backend result for a client of the other era (`resultType`).
fn convert_result(raw: &str, era: Era) -> Bytes {
    match serde_json::from_str::<Value>(raw) {
        Ok(mut v) => {
            match era {
                Era::Modern => mcp::ensure_result_type(&mut v),
                Era::Legacy => mcp::strip_result_type(&mut v),
            }
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Err(_) => Bytes::copy_from_slice(raw.as_bytes()),
    }
}

/// "Known nodes: a, b, c." — or, on a big cluster, the names closest to `wanted`.
fn known_nodes_hint(nodes: &NodeMap, wanted: &str) -> String {
    const LIST_ALL_UP_TO: usize = 20;
    let ready: Vec<&str> = nodes.ready().map(|e| e.node.as_str()).collect();
    if ready.is_empty() {
        return "No node has a ready MCP server right now.".into();
    }
    if ready.len() <= LIST_ALL_UP_TO || wanted.is_empty() {
        let shown: Vec<&str> = ready.iter().take(LIST_ALL_UP_TO).copied().collect();
        let more = ready.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return format!("Nodes with a ready MCP server: {}{tail}.", shown.join(", "));
    }
    // Both sides are at most MAX_NODE_NAME_BYTES long (callers check `wanted`, the
    // API server checks node names), so one comparison costs at most 253 x 253 steps
    // and the whole hint a bounded multiple of the node count.
    let wanted: String = wanted.chars().take(MAX_NODE_NAME_BYTES).collect();
    let mut scored: Vec<(usize, &str)> = ready
        .iter()
        .map(|n| (strsim::levenshtein(&wanted, n), *n))
        .collect();
    let shown = scored.len().min(5);
    if shown > 0 && scored.len() > shown {
        scored.select_nth_unstable(shown - 1);
        scored.truncate(shown);
    }
    scored.sort();
    let closest: Vec<&str> = scored.iter().map(|(_, n)| *n).collect();
    format!(
        "Closest nodes with a ready MCP server ({} in all): {}.",
        ready.len(),
        closest.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeEndpoint;

    fn map(n: usize) -> NodeMap {
        NodeMap::from_endpoints((0..n).map(|i| NodeEndpoint {
            node: format!("worker-{i}"),
            ip: format!("10.0.0.{}", i % 250 + 1).parse().unwrap(),
            ready: i != 1,
            pod: None,
        }))
    }

    #[test]
    fn hints_list_ready_nodes_or_the_closest() {
        let small = known_nodes_hint(&map(3), "x");
        assert!(small.contains("worker-0, worker-2"), "{small}");
        assert!(!small.contains("worker-1"), "{small}");
        let big = known_nodes_hint(&map(100), "worker-42x");
        assert!(big.starts_with("Closest"), "{big}");
        assert!(big.contains("worker-42"), "{big}");
        assert!(big.contains("99 in all"), "{big}");
        let long = "w".repeat(1 << 20);
        let huge = known_nodes_hint(&map(300), &long);
        assert!(huge.contains("299 in all"), "{huge}");
    }

    #[test]
    fn results_are_reshaped_between_eras() {
        let v: Value = serde_json::from_slice(&convert_result(
            r#"{"content":[],"isError":false}"#,
            Era::Modern,
        ))
        .unwrap();
        assert_eq!(v["resultType"], "complete");
        let v: Value = serde_json::from_slice(&convert_result(
            r#"{"resultType":"complete","content":[]}"#,
            Era::Legacy,
        ))
        .unwrap();
        assert!(v.get("resultType").is_none());
    }
}
