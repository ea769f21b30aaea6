//! Counters for `/metrics` in the Prometheus text format: calls by outcome (the
//! outcome names double as labels), call latency, and gauges filled at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a tools/call ended, as seen by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The backend answered (its result may still be a tool error).
    Ok,
    /// The tool is not in the catalog.
    UnknownTool,
    /// `node` missing or malformed.
    BadArguments,
    /// No such node.
    UnknownNode,
    /// The node's pod is not ready.
    NodeNotReady,
    /// The pod could not be reached.
    Unreachable,
    /// The pod did not answer in time.
    Timeout,
    /// The pod answered with something unusable.
    BackendBroken,
    /// The pod answered with a JSON-RPC error (relayed).
    BackendError,
    /// The client cancelled.
    Cancelled,
    /// The policy does not let this caller call this tool (on this node).
    Denied,
    /// The node's build does not serve the tool as the catalog does.
    NotOnNode,
}

impl CallOutcome {
    const ALL: [CallOutcome; 12] = [
        CallOutcome::Ok,
        CallOutcome::UnknownTool,
        CallOutcome::BadArguments,
        CallOutcome::UnknownNode,
        CallOutcome::NodeNotReady,
        CallOutcome::Unreachable,
        CallOutcome::Timeout,
        CallOutcome::BackendBroken,
        CallOutcome::BackendError,
        CallOutcome::Cancelled,
        CallOutcome::Denied,
        CallOutcome::NotOnNode,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::UnknownTool => "unknown_tool",
            CallOutcome::BadArguments => "bad_arguments",
            CallOutcome::UnknownNode => "unknown_node",
            CallOutcome::NodeNotReady => "node_not_ready",
            CallOutcome::Unreachable => "unreachable",
            CallOutcome::Timeout => "timeout",
            CallOutcome::BackendBroken => "backend_broken",
            CallOutcome::BackendError => "backend_error",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::Denied => "denied",
            CallOutcome::NotOnNode => "not_on_node",
        }
    }
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: [AtomicU64; 12],
    call_micros_total: AtomicU64,
}

/// Values read at scrape time from the live parts.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Nodes known.
    pub nodes: usize,
    /// Nodes with a ready pod.
    pub ready_nodes: usize,
    /// Tools served.
    pub tools: usize,
    /// Legacy sessions.
    pub sessions: usize,
    /// Whether the discovery watch is up.
    pub discovery_healthy: bool,
}

impl Metrics {
    /// Counts one call.
    pub fn record_call(&self, outcome: CallOutcome, took: Duration) {
        let i = CallOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.calls[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.call_micros_total.fetch_add(micros, Ordering::Relaxed);
    }

    /// The Prometheus exposition.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP mcp_gateway_tool_calls_total Tool calls by outcome."
        );
        let _ = writeln!(out, "# TYPE mcp_gateway_tool_calls_total counter");
        for (o, c) in CallOutcome::ALL.iter().zip(&self.calls) {
            let _ = writeln!(
                out,
                "mcp_gateway_tool_calls_total{{outcome=\"{}\"}} {}",
                o.label(),
                c.load(Ordering::Relaxed)
            );
        }
        let secs = self.call_micros_total.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP mcp_gateway_tool_call_seconds_total Time spent in tool calls."
        );
        let _ = writeln!(out, "# TYPE mcp_gateway_tool_call_seconds_total counter");
        let _ = writeln!(out, "mcp_gateway_tool_call_seconds_total {secs}");
        for (name, help, v) in [
            (
                "mcp_gateway_nodes",
                "Nodes with a backend endpoint.",
                g.nodes,
            ),
            (
                "mcp_gateway_ready_nodes",
                "Nodes whose backend pod is ready.",
                g.ready_nodes,
            ),
            ("mcp_gateway_tools", "Tools served.", g.tools),
            (
                "mcp_gateway_sessions",
                "Live legacy MCP sessions.",
                g.sessions,
            ),
            (
                "mcp_gateway_discovery_healthy",
                "1 when the EndpointSlice watch is up.",
                usize::from(g.discovery_healthy),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_outcome() {
        let m = Metrics::default();
        m.record_call(CallOutcome::Ok, Duration::from_millis(2));
        m.record_call(CallOutcome::UnknownNode, Duration::from_millis(1));
        m.record_call(CallOutcome::Ok, Duration::from_millis(2));
        let text = m.render(Gauges {
            nodes: 3,
            ready_nodes: 2,
            tools: 4,
            sessions: 1,
            discovery_healthy: true,
        });
        assert!(text.contains("mcp_gateway_tool_calls_total{outcome=\"ok\"} 2"));
        assert!(text.contains("mcp_gateway_tool_calls_total{outcome=\"unknown_node\"} 1"));
        assert!(text.contains("mcp_gateway_ready_nodes 2"));
        assert!(text.contains("mcp_gateway_discovery_healthy 1"));
    }
}
