//! A Streamable HTTP MCP server serving both eras on one endpoint.
//!
//! The transport owns the protocol: Origin / Host / Accept / Content-Type / size
//! checks, era detection, the legacy handshake and sessions, the 2026-07-28 header
//! rules, `server/discover`, `logging/setLevel`, GET and `subscriptions/listen`
//! streams, progress over SSE and cancellation. An [`McpHandler`] answers the client's
//! requests: tools through their own methods (the transport checks a call's
//! `Mcp-Param-*` headers against the tool's definition before it reaches the handler),
//! every other method (prompts, resources, completion...) through
//! [`McpHandler::handle_request`]. Each request comes with an [`Outbound`] channel for
//! the notifications and server-to-client requests it makes on the way, in either
//! era. The example node server and the gateway share this one implementation.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Method, Request as HttpRequest, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::body::BodyLimits;
use crate::body::{self, Body};
use crate::headers::{self, Accepts, HostPolicy, OriginPolicy, ParamHeader};
use crate::jsonrpc::{self, ErrorObject, Message, Notification, Request, RequestId};
use crate::mcp::{self, Era, Implementation, ProtocolVersion, meta, method};
use crate::session::{ListChanges, Session, SessionConfig, SessionStore};
use crate::sse;

mod dispatch;
mod legacy;
mod modern;
mod outbound;
mod streams;
mod updates;

pub use legacy::RpcMethod;
pub use outbound::Outbound;
pub use updates::{LISTEN_QUEUE, ListenSink, RESOURCE_UPDATED, UpdateSink};

use streams::{Hold, ListFrames, StreamHold, call_stream, change_stream};

/// Most URIs one `subscriptions/listen` may subscribe to.
pub const MAX_RESOURCE_SUBSCRIPTIONS: usize = 64;

/// A boxed future returned by handlers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What an MCP server answers; the transport does the rest.
pub trait McpHandler: Send + Sync + 'static {
    /// The serialized `ListToolsResult` for an era and cursor (cache it: this is called
    /// on every tools/list). Err for an invalid cursor (-32602).
    fn list_tools(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, ErrorObject>;

    /// [`McpHandler::list_tools`] for one request, whose extensions carry what the
    /// HTTP layer in front learned (e.g. the caller's identity), so a handler can show
    /// each caller its own list. Defaults to the same list for everyone.
    fn list_tools_for(
        &self,
        era: Era,
        cursor: Option<&str>,
        request: &http::Extensions,
    ) -> Result<Bytes, ErrorObject> {
        let _ = request;
        self.list_tools(era, cursor)
    }

    /// The `x-mcp-header` parameters of a tool, checked against `Mcp-Param-*` headers
    /// on 2026-07-28 calls. None when the tool is unknown.
    fn param_headers(&self, tool: &str) -> Option<Arc<[ParamHeader]>>;

    /// [`McpHandler::param_headers`] for one request (its extensions as in
    /// [`McpHandler::list_tools_for`]): a handler that hides a tool from this caller
    /// returns None, since the client could not know the tool's `x-mcp-header`s; the
    /// call then reaches the handler, which refuses it in its own words.
    fn param_headers_for(
        &self,
        tool: &str,
        request: &http::Extensions,
    ) -> Option<Arc<[ParamHeader]>> {
        let _ = request;
        self.param_headers(tool)
    }

    /// Runs a call; the result is the serialized `CallToolResult` (or a JSON-RPC error
    /// to send as it is).
    fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>>;

    /// Whether the handler serves a request method beyond the transport's own
    /// (initialize, ping, server/discover, tools/*, logging/setLevel,
    /// subscriptions/listen); such requests go to [`McpHandler::handle_request`].
    fn handles(&self, method_name: &str) -> bool {
        let _ = method_name;
        false
    }

    /// 2026-07-28 `subscriptions/listen` with `resourceSubscriptions`: the URIs the
    /// handler agrees to report on, each change sent on `sink`; none (the default)
    /// when it serves no resource subscriptions.
    fn listen_resources(
        &self,
        uris: &[String],
        sink: &ListenSink,
        extensions: &http::Extensions,
    ) -> Vec<String> {
        let _ = (uris, sink, extensions);
        Vec::new()
    }

    /// 2026-07-28 `subscriptions/listen` with `taskIds` (the tasks extension): the
    /// task ids the handler agrees to report on with `notifications/tasks` on `sink`;
    /// none (the default) when it has no tasks.
    fn listen_tasks(
        &self,
        task_ids: &[String],
        sink: &ListenSink,
        extensions: &http::Extensions,
    ) -> Vec<String> {
        let _ = (task_ids, sink, extensions);
        Vec::new()
    }

    /// Answers any other client request the handler [`McpHandler::handles`], with
    /// the same outbound channel and cancellation as a tool call; the result is the
    /// serialized result object.
    fn handle_request(&self, request: ClientRequest) -> BoxFuture<Result<Bytes, ErrorObject>> {
        let method = request.method;
        Box::pin(async move { Err(ErrorObject::method_not_found(&method)) })
    }
}

/// A client request other than a tool call, as the handler sees it.
#[derive(Debug)]
pub struct ClientRequest {
    /// The client's request id (for logs).
    pub id: RequestId,
    /// The method.
    pub method: String,
    /// The params object as sent.
    pub params: Map<String, Value>,
    /// Notifications and server-to-client requests for the client.
    pub outbound: Outbound,
    /// Cancelled when the client cancels.
    pub cancel: CancellationToken,
    /// The HTTP request's extensions (as in [`ToolCall::extensions`]).
    pub extensions: http::Extensions,
}

/// One tools/call as the handler sees it.
#[derive(Debug)]
pub struct ToolCall {
    /// The client's request id (for logs).
    pub id: RequestId,
    /// The revision the client speaks.
    pub version: ProtocolVersion,
    /// The tool name.
    pub name: String,
    /// The whole params object as sent (name, arguments, `_meta`...), for relaying.
    pub params: Map<String, Value>,
    /// Where progress goes, when the client asked for it and can receive it.
    pub progress: Option<ProgressSink>,
    /// Log messages and server-to-client requests for the calling client, on this
    /// call's stream.
    pub outbound: Outbound,
    /// Cancelled when the client cancels (legacy notification, or the stream closing).
    pub cancel: CancellationToken,
    /// The HTTP request's extensions: what the layer in front of the MCP endpoint
    /// learned about the request (e.g. the authenticated caller).
    pub extensions: http::Extensions,
}

impl ToolCall {
    /// The `arguments` object, if any.
    pub fn arguments(&self) -> Option<&Map<String, Value>> {
        self.params.get("arguments").and_then(Value::as_object)
    }
}

/// Sends notifications on the SSE answer of one request.
#[derive(Debug, Clone)]
pub struct ProgressSink {
    token: Value,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl ProgressSink {
    /// The client's progress token.
    pub fn token(&self) -> &Value {
        &self.token
    }

    /// Sends a `notifications/progress` for this request.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let params = mcp::progress_params(&self.token, progress, total, message);
        let bytes = jsonrpc::notification_bytes(method::PROGRESS, Some(&params));
        let _ = self.tx.send(Bytes::from(bytes));
    }

    /// Sends an already-serialized notification (relayed from a backend untouched).
    pub fn send_raw(&self, notification: Bytes) {
        let _ = self.tx.send(notification);
    }
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Name and version announced in initialize / discover.
    pub info: Implementation,
    /// Instructions for the model, announced in initialize / discover.
    pub instructions: Option<String>,
    /// Browser origins allowed (DNS-rebinding protection).
    pub origins: OriginPolicy,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Request bytes all requests being read or handled may hold together; beyond it
    /// new requests get 503.
    pub body_budget_bytes: usize,
    /// A body must arrive at this rate (bytes/s) after its first 10 s.
    pub body_min_rate: u64,
    /// `Host` names answered (DNS-rebinding protection).
    pub hosts: HostPolicy,
    /// Caps on what clients can hold open.
    pub caps: Caps,
    /// Legacy session behaviour.
    pub sessions: SessionConfig,
    /// Interval of keep-alive comments on long streams.
    pub keep_alive: Duration,
    /// `ttlMs` announced on discover and list results.
    pub list_ttl_ms: u64,
}

impl ServerConfig {
    /// Defaults for a server named `name`.
    pub fn new(name: &str, version: &str) -> Self {
        ServerConfig {
            info: Implementation {
                name: name.into(),
                version: version.into(),
                title: None,
            },
            instructions: None,
            origins: OriginPolicy::default(),
            max_body_bytes: 4 * 1024 * 1024,
            body_budget_bytes: 32 * 1024 * 1024,
            body_min_rate: 64 * 1024,
            hosts: HostPolicy::default(),
            caps: Caps::default(),
            sessions: SessionConfig::default(),
            keep_alive: Duration::from_secs(15),
            list_ttl_ms: 60_000,
        }
    }
}

/// Caps on what clients can hold open at once; each refusal is a clear JSON-RPC
/// error with `Retry-After`, never a stall.
#[derive(Debug, Clone)]
pub struct Caps {
    /// Long-lived streams (legacy GET and `subscriptions/listen`) in total.
    pub max_streams: usize,
    /// Legacy GET streams per session.
    pub max_streams_per_session: usize,
    /// Requests being handled at once, in total.
    pub max_inflight: usize,
    /// Requests being handled at once on one legacy session.
    pub max_inflight_per_session: usize,
    /// Items in one 2025-03-26 JSON-RPC batch.
    pub max_batch_items: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_streams: 512,
            max_streams_per_session: 4,
            max_inflight: 1024,
            max_inflight_per_session: 64,
            max_batch_items: 32,
        }
    }
}

/// Who owns the sessions a request starts, put into the request's extensions by the
/// layer in front (e.g. the authenticated caller); without it, the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner(pub String);

/// The MCP endpoint: cheap to clone, one per process.
pub struct McpServer<H> {
    inner: Arc<Inner<H>>,
}

impl<H> Clone for McpServer<H> {
    fn clone(&self) -> Self {
        McpServer {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<H> {
    config: ServerConfig,
    handler: H,
    sessions: SessionStore,
    /// Bumped when a served list changes; streams turn it into list_changed.
    list_changes: watch::Sender<crate::session::ListChanges>,
    /// Ends long-lived streams at shutdown.
    shutdown: CancellationToken,
    /// Capabilities announced in initialize / discover (a relay replaces them with
    /// what its backends offer, [`McpServer::set_capabilities`]).
    capabilities: std::sync::RwLock<Arc<Value>>,
    /// Request-body limits and the shared budget.
    body: BodyLimits,
    /// Long-lived streams open.
    streams: Arc<Semaphore>,
    /// Requests being handled.
    inflight: Arc<Semaphore>,
}

/// The era-specific facts of one request after validation.
#[derive(Debug, Clone)]
struct Ctx {
    version: ProtocolVersion,
    accepts: Accepts,
    session: Option<Arc<Session>>,
    /// The HTTP request's extensions, handed on to the handler.
    extensions: http::Extensions,
    /// 2026-07-28: the capabilities in the request's `_meta` (legacy: the session's).
    client_capabilities: Value,
    /// The request's share of the body budget, held until it is answered.
    budget: Option<Arc<body::BudgetShare>>,
}

impl<H: McpHandler> McpServer<H> {
    /// A server over `handler`.
    pub fn new(config: ServerConfig, handler: H) -> Self {
        let (list_changes, _) = watch::channel(crate::session::ListChanges::default());
        McpServer {
            inner: Arc::new(Inner {
                sessions: SessionStore::new(config.sessions.clone()),
                body: {
                    let mut limits =
                        BodyLimits::new(config.max_body_bytes, config.body_budget_bytes);
                    limits.min_rate = config.body_min_rate;
                    limits
                },
                streams: Arc::new(Semaphore::new(config.caps.max_streams)),
                inflight: Arc::new(Semaphore::new(config.caps.max_inflight)),
                config,
                handler,
                list_changes,
                shutdown: CancellationToken::new(),
                capabilities: std::sync::RwLock::new(Arc::new({
                    let mut c = mcp::tools_capabilities(true);
                    c["logging"] = json!({});
                    c
                })),
            }),
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// The capabilities announced in initialize / discover (tools and logging unless
    /// replaced).
    pub fn capabilities(&self) -> Arc<Value> {
        match self.inner.capabilities.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the announced capabilities (a relay announces what its backends
    /// offer); sessions already initialized keep what they were told.
    pub fn set_capabilities(&self, capabilities: Value) {
        let mut c = match self.inner.capabilities.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *c = Arc::new(capabilities);
    }

    /// Tells every open GET and listen stream that the tool list changed.
    pub fn notify_tools_changed(&self) {
        self.inner.list_changes.send_modify(|c| c.tools += 1);
    }

    /// Tells clients listening for it that the prompt list changed.
    pub fn notify_prompts_changed(&self) {
        self.inner.list_changes.send_modify(|c| c.prompts += 1);
    }

    /// Tells clients listening for it that the resource list changed.
    pub fn notify_resources_changed(&self) {
        self.inner.list_changes.send_modify(|c| c.resources += 1);
    }

    /// Ends long-lived streams (call before a graceful shutdown).
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Live legacy sessions.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }
}

fn json_result(id: &RequestId, result: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(result).unwrap_or_default();
    body::json_response(StatusCode::OK, jsonrpc::result_bytes(id, &bytes))
}

/// The session owner of a request: the one the layer in front named, else the
/// client's IP address.
fn session_owner(extensions: &http::Extensions) -> String {
    if let Some(SessionOwner(owner)) = extensions.get::<SessionOwner>() {
        return owner.clone();
    }
    extensions
        .get::<crate::serve::PeerAddr>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_default()
}

/// 503 with `Retry-After`: a server-wide cap is reached.
fn busy(id: Option<&RequestId>, text: &str) -> Response<Body> {
    let mut resp = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        &ErrorObject::internal(format!("server busy: {text}")),
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// 429 with `Retry-After`: a per-session or per-client cap is reached.
fn too_many(id: Option<&RequestId>, text: &str) -> Response<Body> {
    let mut resp = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        id,
        &ErrorObject::invalid_request(text),
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// A JSON-RPC error as an HTTP response with the given status.
pub fn error_response(
    status: StatusCode,
    id: Option<&RequestId>,
    error: &ErrorObject,
) -> Response<Body> {
    body::json_response(status, jsonrpc::error_bytes(id, error))
}

fn forbidden_origin() -> ErrorObject {
    ErrorObject::invalid_request("Origin not allowed")
}

/// 400 for a revision we do not speak: -32022 with the supported list (modern
/// requests), the legacy -32602 shape otherwise.
fn unsupported_version(id: Option<&RequestId>, requested: &str, modern: bool) -> Response<Body> {
    let data = json!({ "supported": ProtocolVersion::supported_strings(), "requested": requested });
    let code = if modern {
        jsonrpc::UNSUPPORTED_PROTOCOL_VERSION
    } else {
        jsonrpc::INVALID_PARAMS
    };
    let error = ErrorObject::new(code, format!("Unsupported protocol version: {requested}"))
        .with_data(data);
    error_response(StatusCode::BAD_REQUEST, id, &error)
}
