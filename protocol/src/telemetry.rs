//! OpenTelemetry traces, optional and off by default (feature `otlp`): the settings
//! both binaries take (the standard `OTEL_*` variables), the OTLP/HTTP exporter with
//! a bounded batch queue, and spans that continue a W3C [`TraceContext`]: a server
//! span around a handler's answer ([`tool_call`], [`request`]; the parent of the
//! calls it makes, [`request_span`]) and one for a request the transport answered
//! itself ([`Telemetry::answered`]).
//!
//! With no endpoint set, [`TraceSettings::start`] gives `None` and callers skip every
//! span: nothing is built, allocated or exported on the request path. With one, spans
//! are queued (at most [`MAX_QUEUED_SPANS`]; beyond, new spans are dropped rather
//! than memory grown) and exported in batches from the SDK's own thread, never from
//! a request's task.

use crate::jsonrpc::ErrorObject;
use crate::server::{BoxFuture, ClientRequest, ToolCall};
use crate::tracecontext::{HeaderTraceContext, TraceContext, TraceParent};
use bytes::Bytes;
use http::Extensions;
use opentelemetry::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

pub use opentelemetry::KeyValue;
pub use opentelemetry::trace::SpanKind;
use std::time::Duration;

/// Spans waiting for export at most; more are dropped (a collector that is down
/// must not grow the gateway's memory).
pub const MAX_QUEUED_SPANS: usize = 4096;
/// Spans sent in one export request at most.
pub const MAX_EXPORT_BATCH: usize = 512;
/// How long queued spans wait before a batch is sent anyway.
pub const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Deadline of one export request.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The trace settings, the OpenTelemetry SDK's standard environment variables.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TraceSettings {
    /// OpenTelemetry traces: base URL of an OTLP/HTTP collector
    /// (e.g. http://otel-collector:4318); spans go to its /v1/traces. Unset (and
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT unset): no traces are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The full OTLP/HTTP traces URL (e.g. http://otel-collector:4318/v1/traces),
    /// used as it is; wins over OTEL_EXPORTER_OTLP_ENDPOINT.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,
    /// The `service.name` of the exported spans (default: the program's name).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
    /// Share of new traces recorded, 0.0-1.0 (default 1). A request that continues
    /// a caller's trace follows the caller's sampling decision instead.
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG")]
    pub otel_traces_sampler_arg: Option<f64>,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting has a value that cannot work.
    #[error("{name}: {why}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The exporter could not be built.
    #[error("cannot start the OTLP exporter: {0}")]
    Exporter(String),
}

impl TraceSettings {
    /// The traces URL, if any: the traces endpoint as it is, else the base
    /// endpoint with `/v1/traces`; only `http://` (the exporter speaks plain HTTP
    /// to a collector nearby, such as an agent or a Service in the cluster).
    pub fn traces_url(&self) -> Result<Option<String>, TelemetryError> {
        let (name, url) = match (set(&self.otlp_traces_endpoint), set(&self.otlp_endpoint)) {
            (Some(full), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", full.to_string()),
            (None, Some(base)) => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/v1/traces", base.trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        let bad = |why: &str| TelemetryError::Setting {
            name,
            why: why.to_string(),
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(
                "must be an http:// URL of an OTLP/HTTP collector (https is not supported: run a collector beside the gateway)",
            ));
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("names no host"));
        }
        url.parse::<http::Uri>()
            .map_err(|e| bad(&format!("is not a URL: {e}")))?;
        Ok(Some(url))
    }

    /// The sampling ratio (1 when unset).
    pub fn ratio(&self) -> Result<f64, TelemetryError> {
        match self.otel_traces_sampler_arg {
            None => Ok(1.0),
            Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
            Some(_) => Err(TelemetryError::Setting {
                name: "OTEL_TRACES_SAMPLER_ARG",
                why: "must be between 0 and 1".into(),
            }),
        }
    }

    /// Checks the settings without starting anything (for start-up validation).
    pub fn validate(&self) -> Result<(), TelemetryError> {
        self.traces_url()?;
        self.ratio()?;
        Ok(())
    }

    /// Starts the exporter when an endpoint is set; `None` (tracing off) otherwise.
    /// `program` is the default `service.name`.
    pub fn start(&self, program: &str) -> Result<Option<Telemetry>, TelemetryError> {
        // Every setting is checked, the endpoint set or not.
        self.validate()?;
        let Some(url) = self.traces_url()? else {
            return Ok(None);
        };
        let ratio = self.ratio()?;
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_max_export_batch_size(MAX_EXPORT_BATCH)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let service = self
            .otel_service_name
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| program.to_string());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(service.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer(program.to_string());
        tracing::info!(%url, %service, ratio, "exporting OpenTelemetry traces");
        Ok(Some(Telemetry { provider, tracer }))
    }
}

/// A running trace exporter: makes spans, flushes them at shutdown.
pub struct Telemetry {
    /// The SDK provider (batch processor and exporter), kept to flush at shutdown.
    provider: SdkTracerProvider,
    /// Makes the spans.
    tracer: SdkTracer,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

/// What a new span continues.
pub enum Parent<'a> {
    /// A caller's context from `_meta` or headers; `None`: a fresh trace.
    Remote(Option<&'a TraceContext>),
    /// A span of this process.
    Local(&'a ActiveSpan),
}

impl Telemetry {
    /// Starts a span.
    pub fn span(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Parent<'_>,
        attributes: Vec<KeyValue>,
    ) -> ActiveSpan {
        let parent_cx = match parent {
            Parent::Local(span) => span.cx.clone(),
            Parent::Remote(Some(tc)) => {
                Context::new().with_remote_span_context(remote_span_context(tc))
            }
            Parent::Remote(None) => Context::new(),
        };
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent_cx);
        ActiveSpan {
            cx: parent_cx.with_span(span),
        }
    }

    /// Records a request the transport answered itself (initialize, tools/list,
    /// ping...: no handler span covered it), from `started` to now, as a child of
    /// the HTTP headers' context.
    pub fn answered(
        &self,
        method: &str,
        started: std::time::SystemTime,
        parent: Option<&TraceContext>,
        status: http::StatusCode,
    ) {
        let parent_cx = match parent {
            Some(tc) => Context::new().with_remote_span_context(remote_span_context(tc)),
            None => Context::new(),
        };
        let mut span = self
            .tracer
            .span_builder(method.to_string())
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes([
                KeyValue::new("mcp.method.name", method.to_string()),
                KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
            ])
            .start_with_context(&self.tracer, &parent_cx);
        if status.is_client_error() || status.is_server_error() {
            use opentelemetry::trace::Span as _;
            span.set_attribute(KeyValue::new("error.type", status.as_u16().to_string()));
            span.set_status(Status::error(""));
        }
    }

    /// Exports what is queued and stops the exporter (blocks up to the export
    /// timeout: call it from a blocking thread).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "could not flush the last spans");
        }
    }
}

/// A started span; it ends when dropped (or at [`ActiveSpan::end`]).
pub struct ActiveSpan {
    /// The context holding the span.
    cx: Context,
}

impl ActiveSpan {
    /// The W3C context a callee continues: this span as the parent.
    pub fn trace_context(&self) -> TraceContext {
        let sc = self.cx.span().span_context().clone();
        let header = sc.trace_state().header();
        TraceContext {
            parent: TraceParent {
                trace_id: sc.trace_id().to_bytes(),
                span_id: sc.span_id().to_bytes(),
                flags: sc.trace_flags().to_u8(),
            },
            state: (!header.is_empty()).then_some(header),
        }
    }

    /// Adds an attribute.
    pub fn set(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Marks the span failed with `error_type` (the `error.type` attribute).
    pub fn fail(&self, error_type: impl Into<opentelemetry::Value>) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", error_type.into()));
        span.set_status(Status::error(""));
    }

    /// Records how a JSON-RPC answer ended: an error's code (`rpc.response.status_code`
    /// and `error.type`), or a tool result with `isError` (`error.type` = `tool_error`).
    pub fn record_answer(&self, answer: &Result<bytes::Bytes, ErrorObject>) {
        match answer {
            Err(e) => {
                self.set(KeyValue::new(
                    "rpc.response.status_code",
                    e.code.to_string(),
                ));
                self.fail(e.code.to_string());
            }
            Ok(bytes) if is_tool_error(bytes) => self.fail("tool_error"),
            Ok(_) => {}
        }
    }

    /// Ends the span now.
    pub fn end(self) {
        self.cx.span().end();
    }
}

/// Whether a serialized result says `"isError": true` at its top level.
fn is_tool_error(result: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    serde_json::from_slice::<Flag>(result).is_ok_and(|f| f.is_error)
}

/// A setting's text, when set to something other than blanks.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn remote_span_context(tc: &TraceContext) -> SpanContext {
    let state = tc
        .state
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    SpanContext::new(
        TraceId::from_bytes(tc.parent.trace_id),
        SpanId::from_bytes(tc.parent.span_id),
        TraceFlags::new(tc.parent.flags),
        true,
        state,
    )
}

tokio::task_local! {
    /// The server span of the request this task serves, the parent of the calls it
    /// makes.
    static REQUEST_SPAN: Arc<ActiveSpan>;
}

/// The context a request continues: `_meta` first, else what the front layer found
/// in the HTTP headers.
fn incoming(params: &Map<String, Value>, extensions: &Extensions) -> Option<TraceContext> {
    let headers = extensions.get::<HeaderTraceContext>().map(|h| &h.0);
    TraceContext::incoming(params, headers)
}

/// Serves a tools/call inside its server span (`tools/call {tool}`), with
/// `attributes` besides the standard ones.
pub fn tool_call(
    telemetry: &Telemetry,
    call: ToolCall,
    mut attributes: Vec<KeyValue>,
    serve: impl FnOnce(ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>>,
) -> BoxFuture<Result<Bytes, ErrorObject>> {
    let parent = incoming(&call.params, &call.extensions);
    let span = telemetry.span(
        format!("tools/call {}", call.name),
        SpanKind::Server,
        Parent::Remote(parent.as_ref()),
        {
            attributes.extend([
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
                KeyValue::new("gen_ai.tool.name", call.name.clone()),
                KeyValue::new("jsonrpc.request.id", call.id.to_string()),
                KeyValue::new("mcp.protocol.version", call.version.as_str()),
            ]);
            attributes
        },
    );
    let extensions = call.extensions.clone();
    within(span, &extensions, serve(call))
}

/// Serves any other request the handler answers inside its server span.
pub fn request(
    telemetry: &Telemetry,
    request: ClientRequest,
    serve: impl FnOnce(ClientRequest) -> BoxFuture<Result<Bytes, ErrorObject>>,
) -> BoxFuture<Result<Bytes, ErrorObject>> {
    let parent = incoming(&request.params, &request.extensions);
    let span = telemetry.span(
        request.method.clone(),
        SpanKind::Server,
        Parent::Remote(parent.as_ref()),
        vec![
            KeyValue::new("mcp.method.name", request.method.clone()),
            KeyValue::new("jsonrpc.request.id", request.id.to_string()),
            KeyValue::new("mcp.protocol.version", request.outbound.version().as_str()),
        ],
    );
    let extensions = request.extensions.clone();
    within(span, &extensions, serve(request))
}

/// Runs `answer` with `span` as the parent of its backend calls, records how it
/// ended, and ends the span.
fn within(
    span: ActiveSpan,
    extensions: &Extensions,
    answer: BoxFuture<Result<Bytes, ErrorObject>>,
) -> BoxFuture<Result<Bytes, ErrorObject>> {
    if let Some(mark) = extensions.get::<Spanned>() {
        mark.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let span = Arc::new(span);
    Box::pin(REQUEST_SPAN.scope(span.clone(), async move {
        let out = answer.await;
        span.record_answer(&out);
        out
    }))
}

/// Put into an HTTP request's extensions by the front layer: set once a handler span
/// ([`tool_call`], [`request`]) covers the request, so the front layer knows whether
/// to record one itself ([`Telemetry::answered`]).
#[derive(Debug, Clone, Default)]
pub struct Spanned(pub Arc<std::sync::atomic::AtomicBool>);

impl Spanned {
    /// Whether a handler span covered the request.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The server span of the request the current task serves (see [`tool_call`]).
pub fn request_span() -> Option<Arc<ActiveSpan>> {
    REQUEST_SPAN.try_with(Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base: Option<&str>, full: Option<&str>) -> TraceSettings {
        TraceSettings {
            otlp_endpoint: base.map(str::to_owned),
            otlp_traces_endpoint: full.map(str::to_owned),
            ..TraceSettings::default()
        }
    }

    #[test]
    fn endpoints_resolve_like_the_sdk_and_only_http_is_taken() {
        assert_eq!(settings(None, None).traces_url().unwrap(), None);
        assert_eq!(settings(Some(" "), None).traces_url().unwrap(), None);
        assert_eq!(
            settings(Some("http://c:4318/"), None).traces_url().unwrap(),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            settings(Some("http://c:4318"), Some("http://d:1/x"))
                .traces_url()
                .unwrap(),
            Some("http://d:1/x".into())
        );
        for bad in [
            "https://c:4318",
            "c:4318",
            "http://",
            "http:///x",
            "http://a b",
        ] {
            let e = settings(Some(bad), None).traces_url().unwrap_err();
            assert!(
                e.to_string().starts_with("OTEL_EXPORTER_OTLP_ENDPOINT"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_ratio_is_a_share() {
        let mut s = TraceSettings::default();
        assert_eq!(s.ratio().unwrap(), 1.0);
        s.otel_traces_sampler_arg = Some(1.5);
        assert!(s.ratio().is_err());
        assert!(s.start("test").is_err(), "checked even with tracing off");
        s.otel_traces_sampler_arg = Some(0.25);
        assert_eq!(s.ratio().unwrap(), 0.25);
    }

    #[test]
    fn tool_errors_are_recognised_at_the_top_level_only() {
        assert!(is_tool_error(br#"{"content":[],"isError":true}"#));
        assert!(!is_tool_error(br#"{"content":[{"isError":true}]}"#));
        assert!(!is_tool_error(br#"{"isError":false}"#));
        assert!(!is_tool_error(b"not json"));
    }
}
