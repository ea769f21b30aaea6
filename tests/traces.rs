//! OpenTelemetry traces end to end: the real gateway and node-server binaries export
//! to an OTLP/HTTP collector stand-in (a loopback server decoding the protobuf with
//! `opentelemetry-proto`), and one client request makes one trace: the client's span
//! -> the gateway's server span -> the gateway's backend-call span -> the node
//! server's span, whether the client's context came in `_meta` or in the
//! `traceparent` header. With tracing off, the backend gets `_meta` as the client
//! sent it. Addresses: 127.60.x.x.

mod support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mcp_protocol::body::{self, Body};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use support::procs;
use support::recorder::Recorder;

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 60, net, host))
}

/// Upper bound of each wait for spans to arrive (they are batched every second).
const DEADLINE: Duration = Duration::from_secs(30);

/// One exported span as the collector received it.
#[derive(Debug, Clone)]
struct Got {
    /// `service.name` of the exporting process.
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    /// Empty for a root span.
    parent_span_id: String,
    /// The W3C `tracestate` the span carries.
    trace_state: String,
    attributes: HashMap<String, String>,
}

/// The OTLP/HTTP collector stand-in: POST /v1/traces with protobuf.
struct Collector {
    addr: SocketAddr,
    spans: tokio::sync::watch::Receiver<Vec<Got>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Collector {
    async fn start(ip: IpAddr) -> Collector {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind collector");
        let addr = listener.local_addr().expect("addr");
        let (tx, spans) = tokio::sync::watch::channel(Vec::new());
        let tx = std::sync::Arc::new(tx);
        let stop = tokio_util::sync::CancellationToken::new();
        let st = stop.clone();
        tokio::spawn(mcp_protocol::serve::serve(
            listener,
            move |req: Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move { receive(&tx, req).await }
            },
            async move { st.cancelled().await },
            Duration::from_secs(1),
        ));
        Collector { addr, spans, stop }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `found` picks something out of the spans received so far.
    async fn wait_for<T>(&self, what: &str, found: impl Fn(&[Got]) -> Option<T>) -> T {
        let mut rx = self.spans.clone();
        let outcome = tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(t) = found(&rx.borrow_and_update()) {
                    return t;
                }
                rx.changed().await.expect("collector stopped");
            }
        })
        .await;
        match outcome {
            Ok(t) => t,
            Err(_) => panic!(
                "timed out waiting for {what}; spans received: {:#?}",
                *self.spans.borrow()
            ),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(
    tx: &tokio::sync::watch::Sender<Vec<Got>>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    if req.uri().path() != "/v1/traces" || req.method() != http::Method::POST {
        return body::text_response(StatusCode::NOT_FOUND, "not a traces export\n");
    }
    let is_protobuf = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/x-protobuf");
    let bytes: Bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return body::status_response(StatusCode::BAD_REQUEST),
    };
    let Ok(export) = ExportTraceServiceRequest::decode(bytes) else {
        return body::status_response(StatusCode::BAD_REQUEST);
    };
    if !is_protobuf {
        return body::status_response(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let mut got = Vec::new();
    for rs in export.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| text(a.value.as_ref()))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.push(Got {
                    service: service.clone(),
                    name: s.name,
                    kind: s.kind,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    trace_state: s.trace_state,
                    attributes: s
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(a.value.as_ref())))
                        .collect(),
                });
            }
        }
    }
    tx.send_modify(|all| all.extend(got));
    let mut resp = Response::new(body::full(Bytes::new()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    resp
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 2026-07-28 tools/call of `node_info` on `node`, with `meta` merged into the
/// required `_meta` and `headers` added; answers the JSON-RPC response.
async fn call_node_info(
    gateway: &str,
    node: &str,
    id: u64,
    meta: Value,
    headers: &[(&str, &str)],
) -> Value {
    let params = json!({"name": "node_info", "arguments": {"node": node}});
    let mut more = vec![("mcp-name", "node_info"), ("mcp-param-node", node)];
    more.extend_from_slice(headers);
    let answer = rpc(gateway, "tools/call", id, params, meta, &more).await;
    assert!(answer["result"].is_object(), "{answer}");
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    answer
}

/// A 2026-07-28 request: `params` with `meta` merged into the required `_meta`,
/// `headers` added; answers the JSON-RPC response.
async fn rpc(
    gateway: &str,
    method: &str,
    id: u64,
    mut params: Value,
    meta: Value,
    headers: &[(&str, &str)],
) -> Value {
    let mut m = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    if let (Value::Object(m), Value::Object(extra)) = (&mut m, meta) {
        m.extend(extra);
    }
    params["_meta"] = m;
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut req = reqwest::Client::new()
        .post(gateway)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .timeout(DEADLINE)
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("gateway answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("body");
    // JSON, or an SSE stream whose last data line is the response.
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .next_back()
        .unwrap_or(&text)
        .trim()
        .to_string();
    let answer: Value = serde_json::from_str(&json).expect("a JSON-RPC response");
    assert_eq!(answer["id"], id, "{answer}");
    answer
}

/// The three spans of one call: the gateway's server span under `client_span`, its
/// backend-call span, and the node server's span under that, all in `trace`.
async fn assert_chain(
    collector: &Collector,
    trace: &str,
    client_span: &str,
    request_id: &str,
) -> [Got; 3] {
    let (server, backend, node) = collector
        .wait_for(&format!("the three spans of trace {trace}"), |spans| {
            let server = spans.iter().find(|s| {
                s.trace_id == trace
                    && s.parent_span_id == client_span
                    && s.service == "k8s-aggregator-mcp"
            })?;
            let backend = spans
                .iter()
                .find(|s| s.trace_id == trace && s.parent_span_id == server.span_id)?;
            let node = spans
                .iter()
                .find(|s| s.trace_id == trace && s.parent_span_id == backend.span_id)?;
            Some((server.clone(), backend.clone(), node.clone()))
        })
        .await;
    let servers = collector
        .spans
        .borrow()
        .iter()
        .filter(|s| {
            s.trace_id == trace
                && s.service == "k8s-aggregator-mcp"
                && s.kind == SpanKind::Server as i32
        })
        .count();
    assert_eq!(servers, 1, "one gateway server span per request");
    assert_eq!(server.name, "tools/call node_info");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.attributes["mcp.method.name"], "tools/call");
    assert_eq!(server.attributes["gen_ai.tool.name"], "node_info");
    assert_eq!(server.attributes["jsonrpc.request.id"], request_id);
    assert_eq!(server.attributes["mcp.protocol.version"], "2026-07-28");
    assert!(!server.attributes.contains_key("error.type"), "{server:?}");

    assert_eq!(backend.service, "k8s-aggregator-mcp");
    assert_eq!(backend.kind, SpanKind::Client as i32);
    assert_eq!(backend.attributes["k8s.node.name"], "node-1");
    assert_eq!(backend.attributes["server.address"], ip(0, 2).to_string());
    assert!(
        !backend.attributes.contains_key("error.type"),
        "{backend:?}"
    );

    assert_eq!(node.service, "node-mcp-server");
    assert_eq!(node.kind, SpanKind::Server as i32);
    assert_eq!(node.name, "tools/call node_info");
    assert_eq!(node.attributes["k8s.node.name"], "node-1");
    [server, backend, node]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_crosses_client_gateway_and_node_server() {
    let collector = Collector::start(ip(0, 1)).await;
    let port = procs::common_free_port(&[ip(0, 2)]);
    let otlp = ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint());
    let _backend =
        procs::spawn_backend_with("node-1", ip(0, 2), port, std::slice::from_ref(&otlp)).await;
    let gw = procs::spawn_gateway(
        ip(0, 3),
        &[
            ("STATIC_NODES", format!("node-1={}", ip(0, 2))),
            ("BACKEND_PORT", port.to_string()),
            otlp,
        ],
    )
    .await;

    // The MCP convention: the context in `_meta`, which wins over a header. The
    // caller's token (ignored here: AUTH_MODE=none) goes into no span.
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let token = "tok-never-in-a-span-5d1c";
    call_node_info(
        &gw.url(),
        "node-1",
        1,
        json!({"traceparent": format!("00-{trace}-{parent}-01"), "tracestate": "client=1"}),
        &[
            (
                "traceparent",
                "00-11111111111111111111111111111111-2222222222222222-01",
            ),
            ("authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    let chain = assert_chain(&collector, trace, parent, "1").await;
    // The caller's tracestate travels with the context, down to the node server.
    for span in &chain {
        assert_eq!(span.trace_state, "client=1", "{span:?}");
    }
    for span in collector.spans.borrow().iter() {
        assert!(!span.name.contains(token), "{span:?}");
        assert!(
            span.attributes.values().all(|v| !v.contains(token)),
            "{span:?}"
        );
    }

    // Only the HTTP header.
    let (trace, parent) = ("a3ce929d0e0e47364bf92f3577b34da6", "b7ad6b7169203331");
    call_node_info(
        &gw.url(),
        "node-1",
        2,
        json!({}),
        &[("traceparent", &format!("00-{trace}-{parent}-01"))],
    )
    .await;
    assert_chain(&collector, trace, parent, "2").await;

    // A request the gateway answers from its cache has a span too (the header's
    // context: the transport answers it before any handler reads `_meta`).
    let (trace, parent) = ("0e0e47364bf92f3577b34da6a3ce929d", "a902b700f067aa0b");
    let listed = rpc(
        &gw.url(),
        "tools/list",
        4,
        json!({}),
        json!({}),
        &[("traceparent", &format!("00-{trace}-{parent}-01"))],
    )
    .await;
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    let list = collector
        .wait_for("the tools/list span", |spans| {
            spans
                .iter()
                .find(|s| s.trace_id == trace && s.parent_span_id == parent)
                .cloned()
        })
        .await;
    assert_eq!(list.name, "tools/list");
    assert_eq!(list.kind, SpanKind::Server as i32);
    assert_eq!(list.attributes["mcp.method.name"], "tools/list");
    assert_eq!(list.attributes["http.response.status_code"], "200");

    // A malformed context is ignored: the call works and starts a fresh trace.
    call_node_info(
        &gw.url(),
        "node-1",
        3,
        json!({"traceparent": "00-zz-not-a-context"}),
        &[("traceparent", "garbage")],
    )
    .await;
    let fresh = collector
        .wait_for("the root span of request 3", |spans| {
            spans
                .iter()
                .find(|s| {
                    s.service == "k8s-aggregator-mcp"
                        && s.attributes.get("jsonrpc.request.id").map(String::as_str) == Some("3")
                        && s.kind == SpanKind::Server as i32
                })
                .cloned()
        })
        .await;
    assert_eq!(fresh.parent_span_id, "", "{fresh:?}");
    assert_eq!(fresh.trace_id.len(), 32);
    assert_ne!(fresh.trace_id, "0".repeat(32));
    // Its backend call is still its child, and the node server's span under that.
    collector
        .wait_for("the node span of the fresh trace", |spans| {
            let backend = spans.iter().find(|s| s.parent_span_id == fresh.span_id)?;
            spans
                .iter()
                .find(|s| s.parent_span_id == backend.span_id && s.service == "node-mcp-server")
                .cloned()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tracing_off_the_backend_gets_meta_as_sent() {
    let port = procs::common_free_port(&[ip(1, 2), ip(1, 3)]);
    let _backend = procs::spawn_backend("node-1", ip(1, 2), port).await;
    let recorder = Recorder::start(
        SocketAddr::new(ip(1, 3), port),
        SocketAddr::new(ip(1, 2), port),
    )
    .await;
    let gw = procs::spawn_gateway(
        ip(1, 1),
        &[
            ("STATIC_NODES", format!("node-1={}", ip(1, 3))),
            ("BACKEND_PORT", port.to_string()),
        ],
    )
    .await;
    let sent = json!({
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "client=1",
        "example.com/custom": {"k": [1, 2]}
    });
    call_node_info(
        &gw.url(),
        "node-1",
        7,
        sent.clone(),
        &[(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01",
        )],
    )
    .await;
    let bodies = recorder.bodies();
    let call = bodies
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .find(|v| v["method"] == "tools/call")
        .expect("the backend got the call");
    let meta = &call["params"]["_meta"];
    for key in ["traceparent", "tracestate", "example.com/custom"] {
        assert_eq!(meta[key], sent[key], "{key} in {meta}");
    }
    // No context of its own on the backend request: the gateway adds no header.
    for (_, headers) in recorder.requests() {
        assert!(headers.get("traceparent").is_none(), "{headers:?}");
        assert!(headers.get("tracestate").is_none(), "{headers:?}");
    }
}
