//! The gateway's OpenTelemetry spans (only when an OTLP endpoint is set; see
//! [`mcp_protocol::telemetry`]): a server span per MCP request the gateway handles,
//! continuing the caller's W3C trace context (`params._meta.traceparent` first, the
//! MCP convention, else the HTTP `traceparent` header), and a client span per backend
//! call whose context the node server receives: in the HTTP `traceparent` /
//! `tracestate` headers, and in `_meta` where the caller's request carried a
//! `traceparent` there. A request the transport answers itself (initialize,
//! tools/list, ping) gets a span from the front layer in [`crate::server`], from the
//! HTTP headers' context. With tracing off none of this runs and `_meta` is relayed as
//! it came.
//!
//! What spans record follows OpenTelemetry's MCP semantic conventions:
//! `mcp.method.name`, `jsonrpc.request.id`, `mcp.protocol.version`,
//! `gen_ai.tool.name` (tools/call), `error.type`. The legacy session id is not
//! recorded: it is a sealed credential-like token that lets its holder continue the
//! session.

use mcp_protocol::telemetry::{ActiveSpan, KeyValue, Parent, SpanKind, Telemetry};
use mcp_protocol::tracecontext;
use serde_json::{Map, Value};
use std::future::Future;
use std::net::IpAddr;

/// A backend call in progress: its client span.
pub struct BackendSpan(ActiveSpan);

/// Starts the client span of a call to the node server on `node` (pod `ip`, at `url`),
/// child of the request's server span, and puts its context into the call's `_meta`
/// where the caller's request carried a `traceparent` there.
pub fn backend_call(
    telemetry: &Telemetry,
    tool: &str,
    node: &str,
    ip: IpAddr,
    url: &str,
    build: Option<&str>,
    params: &mut Map<String, Value>,
) -> BackendSpan {
    let mut attributes = vec![
        KeyValue::new("mcp.method.name", "tools/call"),
        KeyValue::new("gen_ai.tool.name", tool.to_string()),
        KeyValue::new("k8s.node.name", node.to_string()),
        KeyValue::new("server.address", ip.to_string()),
        KeyValue::new("url.full", url.to_string()),
    ];
    if let Some(b) = build {
        attributes.push(KeyValue::new("mcp.server.build", b.to_string()));
    }
    let name = format!("tools/call {tool}");
    let span = match mcp_protocol::telemetry::request_span() {
        Some(parent) => telemetry.span(name, SpanKind::Client, Parent::Local(&parent), attributes),
        None => telemetry.span(name, SpanKind::Client, Parent::Remote(None), attributes),
    };
    span.trace_context().replace_in_meta(params);
    BackendSpan(span)
}

impl BackendSpan {
    /// Runs the backend call with this span's context on its HTTP requests.
    pub async fn run<F: Future>(&self, call: F) -> F::Output {
        tracecontext::with_outgoing(self.0.trace_context(), call).await
    }

    /// Ends the span with the call's outcome (`error.type` unless it is `ok`).
    pub fn finish(self, outcome: &str) {
        if outcome != "ok" {
            self.0.fail(outcome.to_string());
        }
        self.0.end();
    }
}
