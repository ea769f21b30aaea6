//! A Streamable HTTP MCP server for tool servers, serving both eras on one endpoint.
//!
//! The transport owns everything that is not about tools: Origin / Accept /
//! Content-Type / size checks, era detection, the legacy handshake and sessions, the
//! 2026-07-28 header rules, `server/discover`, GET and `subscriptions/listen` streams,
//! progress over SSE and cancellation. A [`ToolHandler`] supplies only the tool
//! catalog and the calls, so the example node server and the gateway share one
//! implementation of the protocol.

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
use crate::session::{Session, SessionConfig, SessionStore};
use crate::sse;

/// A boxed future returned by handlers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a tool server provides; the transport does the rest.
pub trait ToolHandler: Send + Sync + 'static {
    /// The serialized `ListToolsResult` for an era and cursor (cache it: this is called
    /// on every tools/list). Err for an invalid cursor (-32602).
    fn list_tools(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, ErrorObject>;

    /// [`ToolHandler::list_tools`] for one request, whose extensions carry what the
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

    /// [`ToolHandler::param_headers`] for one request (its extensions as in
    /// [`ToolHandler::list_tools_for`]): a handler that hides a tool from this caller
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
    /// Bumped when the tool catalog changes; streams turn it into list_changed.
    catalog_generation: watch::Sender<u64>,
    /// Ends long-lived streams at shutdown.
    shutdown: CancellationToken,
    /// Capabilities announced in initialize / discover.
    capabilities: Value,
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
    /// The request's share of the body budget, held until it is answered.
    budget: Option<Arc<body::BudgetShare>>,
}

impl<H: ToolHandler> McpServer<H> {
    /// A server over `handler`.
    pub fn new(config: ServerConfig, handler: H) -> Self {
        let (catalog_generation, _) = watch::channel(0);
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
                catalog_generation,
                shutdown: CancellationToken::new(),
                capabilities: mcp::tools_capabilities(true),
            }),
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// Tells every open GET and listen stream that the tool list changed.
    pub fn notify_tools_changed(&self) {
        self.inner.catalog_generation.send_modify(|g| *g += 1);
    }

    /// Ends long-lived streams (call before a graceful shutdown).
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Live legacy sessions.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Serves one HTTP request addressed to the MCP endpoint.
    pub async fn handle<B>(&self, req: HttpRequest<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        if !self.inner.config.hosts.allows(&parts.headers, &parts.uri) {
            return error_response(
                StatusCode::FORBIDDEN,
                None,
                &ErrorObject::invalid_request(
                    "Host not allowed: this server does not answer to that name",
                ),
            );
        }
        if !self.inner.config.origins.allows(&parts.headers) {
            return error_response(StatusCode::FORBIDDEN, None, &forbidden_origin());
        }
        match parts.method {
            Method::POST => self.post(parts.headers, parts.extensions, body).await,
            Method::GET => self.get_stream(&parts.headers, &parts.extensions),
            Method::DELETE => self.delete_session(&parts.headers),
            _ => {
                let mut r = body::status_response(StatusCode::METHOD_NOT_ALLOWED);
                r.headers_mut().insert(
                    http::header::ALLOW,
                    HeaderValue::from_static("GET, POST, DELETE"),
                );
                r
            }
        }
    }

    async fn post<B>(
        &self,
        headers: HeaderMap,
        extensions: http::Extensions,
        body: B,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !headers::is_json_content_type(&headers) {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                &ErrorObject::invalid_request("Content-Type must be application/json"),
            );
        }
        let accepts = Accepts::from_headers(&headers);
        if !accepts.any() {
            return error_response(
                StatusCode::NOT_ACCEPTABLE,
                None,
                &ErrorObject::invalid_request(
                    "Accept must include application/json and text/event-stream",
                ),
            );
        }
        let client = extensions.get::<crate::serve::PeerAddr>().map(|p| p.0.ip());
        let read = match body::read_body(&headers, body, &self.inner.body, client).await {
            Ok(b) => b,
            Err(e) => {
                let status = match e {
                    body::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    body::BodyError::Busy => return busy(None, &e.to_string()),
                    body::BodyError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
                    body::BodyError::Read(_) => StatusCode::BAD_REQUEST,
                };
                return error_response(status, None, &ErrorObject::invalid_request(e));
            }
        };
        let budget = read.permit.map(Arc::new);
        let bytes = read.bytes;
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return error_response(StatusCode::BAD_REQUEST, None, &ErrorObject::parse_error(e));
            }
        };
        drop(bytes);
        if let Value::Array(items) = value {
            return self
                .batch(&headers, &extensions, budget, accepts, items)
                .await;
        }
        let message = match Message::from_value(value) {
            Ok(m) => m,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, None, &e),
        };
        if let Message::Request(req) = &message
            && req.method == method::INITIALIZE
        {
            return self.initialize(req, &extensions);
        }
        if is_modern(&headers, &message) {
            self.modern(&headers, extensions, budget, accepts, message)
                .await
        } else {
            let mut ctx = match self.legacy_ctx(&headers, &extensions, accepts) {
                Ok(ctx) => ctx,
                Err(resp) => return *resp,
            };
            ctx.budget = budget;
            self.legacy(ctx, message).await
        }
    }

    /// Legacy handshake: negotiate, mint a session.
    fn initialize(&self, req: &Request, extensions: &http::Extensions) -> Response<Body> {
        let Some(requested) = req.str_param("protocolVersion") else {
            return error_response(
                StatusCode::OK,
                Some(&req.id),
                &ErrorObject::invalid_params("initialize needs params.protocolVersion (a string)"),
            );
        };
        let version = ProtocolVersion::negotiate_legacy(requested);
        let cfg = &self.inner.config;
        let result = mcp::initialize_result(
            version,
            &cfg.info,
            &self.inner.capabilities,
            cfg.instructions.as_deref(),
        );
        let mut resp = json_result(&req.id, &result);
        if cfg.sessions.enabled {
            let changes = self.inner.catalog_generation.subscribe();
            let owner = session_owner(extensions);
            let Some(session) = self.inner.sessions.create(version, changes, &owner) else {
                return busy(Some(&req.id), "every session is busy; retry later");
            };
            if let Ok(v) = HeaderValue::from_str(&session.id) {
                resp.headers_mut().insert(headers::MCP_SESSION_ID, v);
            }
            tracing::debug!(session = %session.id, %version, "session started");
        }
        resp
    }

    /// Validates the legacy-era headers: version header and session.
    fn legacy_ctx(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
        accepts: Accepts,
    ) -> Result<Ctx, Box<Response<Body>>> {
        let header_version = match headers.get(headers::MCP_PROTOCOL_VERSION) {
            None => None,
            Some(v) => match v.to_str().ok().and_then(ProtocolVersion::parse) {
                Some(v) if v.era() == Era::Legacy => Some(v),
                _ => {
                    return Err(Box::new(unsupported_version(
                        None,
                        v.to_str().unwrap_or("?"),
                        false,
                    )));
                }
            },
        };
        let session = if self.inner.config.sessions.enabled {
            let Some(id) = headers
                .get(headers::MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
            else {
                return Err(Box::new(error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    &ErrorObject::invalid_request(
                        "Mcp-Session-Id header is required (send initialize first)",
                    ),
                )));
            };
            match self.inner.sessions.get(id) {
                Ok(s) => Some(s),
                Err(_) => {
                    return Err(Box::new(error_response(
                        StatusCode::NOT_FOUND,
                        None,
                        &ErrorObject::invalid_request(
                            "session not found (expired or ended): initialize again",
                        ),
                    )));
                }
            }
        } else {
            None
        };
        let version = header_version
            .or(session.as_ref().map(|s| s.version))
            .unwrap_or(ProtocolVersion::V2025_03_26);
        Ok(Ctx {
            version,
            accepts,
            session,
            extensions: extensions.clone(),
            budget: None,
        })
    }

    async fn legacy(&self, ctx: Ctx, message: Message) -> Response<Body> {
        match message {
            Message::Notification(n) => {
                self.legacy_notification(&ctx, &n);
                body::status_response(StatusCode::ACCEPTED)
            }
            Message::Response(_) => body::status_response(StatusCode::ACCEPTED),
            Message::Request(req) => match req.method.as_str() {
                method::PING => json_result(&req.id, &json!({})),
                method::TOOLS_LIST => self.list(&ctx, &req),
                method::TOOLS_CALL => self.call(ctx, req, None).await,
                _ => error_response(
                    StatusCode::OK,
                    Some(&req.id),
                    &ErrorObject::method_not_found(&req.method),
                ),
            },
        }
    }

    fn legacy_notification(&self, ctx: &Ctx, n: &Notification) {
        if n.method == method::CANCELLED
            && let Some(session) = &ctx.session
            && let Some(id) = n
                .params
                .as_ref()
                .and_then(|p| p.get("requestId"))
                .and_then(RequestId::from_value)
        {
            let found = session.cancel(&id);
            tracing::debug!(request = %id, found, "client cancelled a request");
        }
    }

    /// 2025-03-26 batches; refused for every later revision.
    async fn batch(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
        budget: Option<Arc<body::BudgetShare>>,
        accepts: Accepts,
        items: Vec<Value>,
    ) -> Response<Body> {
        let modern_header = headers
            .get(headers::MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .and_then(ProtocolVersion::parse)
            .is_some_and(|v| v.era() == Era::Modern);
        if modern_header {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request(
                    "JSON-RPC batches are not supported in protocol version 2026-07-28",
                ),
            );
        }
        let mut ctx = match self.legacy_ctx(headers, extensions, accepts) {
            Ok(ctx) => ctx,
            Err(resp) => return *resp,
        };
        ctx.budget = budget;
        if items.len() > self.inner.config.caps.max_batch_items {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request(format!(
                    "a batch may hold at most {} messages; this one has {}",
                    self.inner.config.caps.max_batch_items,
                    items.len()
                )),
            );
        }
        if !ctx.version.allows_batches() || items.is_empty() {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request(format!(
                    "JSON-RPC batches are not supported in protocol version {}",
                    ctx.version
                )),
            );
        }
        let mut answers = Vec::new();
        for item in items {
            let reply = match Message::from_value(item) {
                Err(e) => Some(jsonrpc::error_bytes(None, &e)),
                Ok(Message::Notification(n)) => {
                    self.legacy_notification(&ctx, &n);
                    None
                }
                Ok(Message::Response(_)) => None,
                Ok(Message::Request(req)) => {
                    let ctx = Ctx {
                        accepts: Accepts {
                            json: true,
                            sse: false,
                        },
                        ..ctx.clone()
                    };
                    let resp = self.legacy(ctx, Message::Request(req)).await;
                    use http_body_util::BodyExt;
                    resp.into_body()
                        .collect()
                        .await
                        .ok()
                        .map(|c| c.to_bytes().to_vec())
                }
            };
            answers.extend(reply);
        }
        if answers.is_empty() {
            return body::status_response(StatusCode::ACCEPTED);
        }
        let mut out = b"[".to_vec();
        for (i, a) in answers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(a);
        }
        out.push(b']');
        body::json_response(StatusCode::OK, out)
    }

    /// A 2026-07-28 request: stateless, headers mirror the body.
    async fn modern(
        &self,
        headers: &HeaderMap,
        extensions: http::Extensions,
        budget: Option<Arc<body::BudgetShare>>,
        accepts: Accepts,
        message: Message,
    ) -> Response<Body> {
        let req = match message {
            Message::Notification(_) => return body::status_response(StatusCode::ACCEPTED),
            Message::Response(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    &ErrorObject::invalid_request(
                        "clients do not send responses in protocol version 2026-07-28",
                    ),
                );
            }
            Message::Request(req) => req,
        };
        let id = Some(&req.id);
        let header_version = headers
            .get(headers::MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok());
        let body_version = req
            .meta()
            .and_then(|m| m.get(meta::PROTOCOL_VERSION))
            .and_then(Value::as_str);
        let requested = match (header_version, body_version) {
            (None, _) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    &ErrorObject::header_mismatch("the MCP-Protocol-Version header is required"),
                );
            }
            (Some(_), None) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    &ErrorObject::invalid_params(format!(
                        "params._meta[\"{}\"] is required",
                        meta::PROTOCOL_VERSION
                    )),
                );
            }
            (Some(h), Some(b)) if h != b => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    &ErrorObject::header_mismatch(format!(
                        "MCP-Protocol-Version header value '{h}' does not match body value '{b}'"
                    )),
                );
            }
            (Some(h), Some(_)) => h,
        };
        let version = match ProtocolVersion::parse(requested) {
            Some(v) if v.era() == Era::Modern => v,
            _ => return unsupported_version(id, requested, true),
        };
        if req
            .meta()
            .and_then(|m| m.get(meta::CLIENT_CAPABILITIES))
            .is_none()
        {
            return error_response(
                StatusCode::BAD_REQUEST,
                id,
                &ErrorObject::invalid_params(format!(
                    "params._meta[\"{}\"] is required",
                    meta::CLIENT_CAPABILITIES
                )),
            );
        }
        if let Err(e) = headers::check_standard_headers(headers, &req) {
            return error_response(StatusCode::BAD_REQUEST, id, &e);
        }
        let ctx = Ctx {
            version,
            accepts,
            session: None,
            extensions,
            budget,
        };
        match req.method.as_str() {
            method::DISCOVER => {
                let cfg = &self.inner.config;
                let result = mcp::discover_result(
                    &cfg.info,
                    &self.inner.capabilities,
                    cfg.instructions.as_deref(),
                    cfg.list_ttl_ms,
                );
                json_result(&req.id, &result)
            }
            method::TOOLS_LIST => self.list(&ctx, &req),
            method::TOOLS_CALL => self.call(ctx, req, Some(headers)).await,
            method::SUBSCRIPTIONS_LISTEN => self.listen(&ctx, req),
            _ => error_response(
                StatusCode::NOT_FOUND,
                id,
                &ErrorObject::method_not_found(&req.method),
            ),
        }
    }

    fn list(&self, ctx: &Ctx, req: &Request) -> Response<Body> {
        let cursor = req.str_param("cursor");
        match self
            .inner
            .handler
            .list_tools_for(ctx.version.era(), cursor, &ctx.extensions)
        {
            Ok(result) => {
                body::json_response(StatusCode::OK, jsonrpc::result_bytes(&req.id, &result))
            }
            Err(e) => error_response(StatusCode::OK, Some(&req.id), &e),
        }
    }

    /// tools/call for both eras: JSON, or SSE when progress is streamed (or the
    /// client takes only SSE, or speaks 2026-07-28 where closing the stream cancels).
    async fn call(
        &self,
        ctx: Ctx,
        req: Request,
        modern_headers: Option<&HeaderMap>,
    ) -> Response<Body> {
        let id = req.id.clone();
        let mut params = req.params.unwrap_or_default();
        let name = match params.get("name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                return error_response(
                    StatusCode::OK,
                    Some(&id),
                    &ErrorObject::invalid_params("tools/call needs params.name (a string)"),
                );
            }
        };
        match params.get("arguments") {
            None | Some(Value::Object(_)) => {}
            Some(Value::Null) => {
                params.shift_remove("arguments");
            }
            Some(_) => {
                return error_response(
                    StatusCode::OK,
                    Some(&id),
                    &ErrorObject::invalid_params("params.arguments must be an object"),
                );
            }
        }
        if let Some(headers) = modern_headers
            && let Some(declared) = self.inner.handler.param_headers_for(&name, &ctx.extensions)
        {
            let args = params.get("arguments").and_then(Value::as_object);
            if let Err(e) = headers::check_param_headers(headers, &declared, args) {
                return error_response(StatusCode::BAD_REQUEST, Some(&id), &e);
            }
        }
        let token = mcp::progress_token(Some(&params)).cloned();
        let modern = ctx.version.era() == Era::Modern;
        let use_sse = ctx.accepts.sse && (token.is_some() || modern || !ctx.accepts.json);
        let cancel = CancellationToken::new();
        let Ok(slot) = self.inner.inflight.clone().try_acquire_owned() else {
            return busy(Some(&id), "too many requests in flight; retry shortly");
        };
        let guard = match &ctx.session {
            None => None,
            Some(s) => match s.try_track(
                id.clone(),
                cancel.clone(),
                self.inner.config.caps.max_inflight_per_session,
            ) {
                Some(g) => Some(g),
                None => {
                    return too_many(
                        Some(&id),
                        "too many requests in flight on this session; wait for some to finish",
                    );
                }
            },
        };
        let hold = Hold {
            _session: guard,
            _slot: slot,
            _budget: ctx.budget.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = match (&token, use_sse) {
            (Some(t), true) => Some(ProgressSink {
                token: t.clone(),
                tx,
            }),
            _ => None,
        };
        let call = ToolCall {
            id: id.clone(),
            version: ctx.version,
            name,
            params,
            progress,
            cancel: cancel.clone(),
            extensions: ctx.extensions.clone(),
        };
        let future = self.inner.handler.call_tool(call);
        if !use_sse {
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                out = future => (!cancel.is_cancelled()).then_some(out),
            };
            drop(hold);
            return match outcome {
                Some(Ok(result)) => {
                    body::json_response(StatusCode::OK, jsonrpc::result_bytes(&id, &result))
                }
                Some(Err(e)) => error_response(StatusCode::OK, Some(&id), &e),
                // Cancelled by the client: no JSON-RPC response is sent for it.
                None => body::status_response(StatusCode::NO_CONTENT),
            };
        }
        body::sse_response(call_stream(
            id,
            future,
            rx,
            cancel,
            hold,
            self.inner.config.keep_alive,
        ))
    }

    /// 2026-07-28 `subscriptions/listen`: acknowledge, then list_changed on catalog changes.
    fn listen(&self, ctx: &Ctx, req: Request) -> Response<Body> {
        let Some(filter) = req
            .params
            .as_ref()
            .and_then(|p| p.get("notifications"))
            .and_then(Value::as_object)
        else {
            return error_response(
                StatusCode::OK,
                Some(&req.id),
                &ErrorObject::invalid_params(
                    "subscriptions/listen needs params.notifications (an object)",
                ),
            );
        };
        if !ctx.accepts.sse {
            return error_response(
                StatusCode::NOT_ACCEPTABLE,
                Some(&req.id),
                &ErrorObject::invalid_request(
                    "subscriptions/listen answers with text/event-stream",
                ),
            );
        }
        let Ok(slot) = self.inner.streams.clone().try_acquire_owned() else {
            return busy(Some(&req.id), "too many open streams; retry shortly");
        };
        let tools = filter.get("toolsListChanged") == Some(&Value::Bool(true));
        let sub_meta = json!({ meta::SUBSCRIPTION_ID: req.id.to_value() });
        let mut honoured = Map::new();
        if tools {
            honoured.insert("toolsListChanged".into(), true.into());
        }
        let ack = jsonrpc::notification_bytes(
            method::SUBSCRIPTIONS_ACKNOWLEDGED,
            Some(&json!({ "_meta": sub_meta, "notifications": honoured })),
        );
        let changed = jsonrpc::notification_bytes(
            method::TOOLS_LIST_CHANGED,
            Some(&json!({ "_meta": sub_meta })),
        );
        let closing = jsonrpc::result_bytes(
            &req.id,
            &serde_json::to_vec(&json!({ "resultType": "complete", "_meta": sub_meta }))
                .unwrap_or_default(),
        );
        let rx = Arc::new(tokio::sync::Mutex::new(
            self.inner.catalog_generation.subscribe(),
        ));
        let first = stream::once(async move { sse::encode_event(&ack) });
        let rest = change_stream(
            rx,
            tools.then_some(changed),
            self.inner.shutdown.clone(),
            self.inner.config.keep_alive,
            StreamHold {
                _session: None,
                _slot: slot,
            },
        );
        let end = stream::once(async move { sse::encode_event(&closing) });
        body::sse_response(first.chain(rest).chain(end))
    }

    /// Legacy GET: a stream of server notifications for the session.
    fn get_stream(&self, headers: &HeaderMap, extensions: &http::Extensions) -> Response<Body> {
        let modern = headers
            .get(headers::MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .and_then(ProtocolVersion::parse)
            .is_some_and(|v| v.era() == Era::Modern);
        if modern || !self.inner.config.sessions.enabled {
            return body::status_response(StatusCode::METHOD_NOT_ALLOWED);
        }
        let accepts = Accepts::from_headers(headers);
        if !accepts.sse {
            return error_response(
                StatusCode::NOT_ACCEPTABLE,
                None,
                &ErrorObject::invalid_request("GET needs Accept: text/event-stream"),
            );
        }
        let ctx = match self.legacy_ctx(headers, extensions, accepts) {
            Ok(ctx) => ctx,
            Err(resp) => return *resp,
        };
        let Some(session) = ctx.session else {
            return body::status_response(StatusCode::METHOD_NOT_ALLOWED);
        };
        let Some(guard) = session.try_stream(self.inner.config.caps.max_streams_per_session) else {
            return too_many(
                None,
                "this session has as many GET streams open as it may; close one first",
            );
        };
        let Ok(slot) = self.inner.streams.clone().try_acquire_owned() else {
            return busy(None, "too many open streams; retry shortly");
        };
        let changed = jsonrpc::notification_bytes(method::TOOLS_LIST_CHANGED, None);
        let stream = change_stream(
            session.changes.clone(),
            Some(changed),
            self.inner.shutdown.clone(),
            self.inner.config.keep_alive,
            StreamHold {
                _session: Some(guard),
                _slot: slot,
            },
        );
        // A comment first, so clients see the stream open at once.
        body::sse_response(stream::once(async { sse::keep_alive() }).chain(stream))
    }

    fn delete_session(&self, headers: &HeaderMap) -> Response<Body> {
        if !self.inner.config.sessions.enabled {
            return body::status_response(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Some(id) = headers
            .get(headers::MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
        else {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request("Mcp-Session-Id header is required"),
            );
        };
        match self.inner.sessions.remove(id) {
            Ok(()) => body::status_response(StatusCode::NO_CONTENT),
            Err(_) => error_response(
                StatusCode::NOT_FOUND,
                None,
                &ErrorObject::invalid_request("session not found"),
            ),
        }
    }
}

/// Whether a non-initialize message belongs to the 2026-07-28 era: its body carries
/// the per-request protocol version, or its version header names a modern (or unknown
/// but session-less) revision.
fn is_modern(headers: &HeaderMap, message: &Message) -> bool {
    let params = match message {
        Message::Request(r) => r.params.as_ref(),
        Message::Notification(n) => n.params.as_ref(),
        Message::Response(_) => None,
    };
    if jsonrpc::meta_of(params).is_some_and(|m| m.contains_key(meta::PROTOCOL_VERSION)) {
        return true;
    }
    match headers
        .get(headers::MCP_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
    {
        None => {
            matches!(message, Message::Request(r) if r.method == method::DISCOVER || r.method == method::SUBSCRIPTIONS_LISTEN)
        }
        Some(v) => match ProtocolVersion::parse(v) {
            Some(v) => v.era() == Era::Modern,
            None => !headers.contains_key(headers::MCP_SESSION_ID),
        },
    }
}

/// The SSE answer of a tools/call: notifications as they come, then the response.
fn call_stream(
    id: RequestId,
    future: BoxFuture<Result<Bytes, ErrorObject>>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    cancel: CancellationToken,
    hold: Hold,
    keep_alive: Duration,
) -> impl futures_util::Stream<Item = Bytes> + Send + Sync + 'static {
    struct State {
        id: RequestId,
        future: Option<BoxFuture<Result<Bytes, ErrorObject>>>,
        rx: mpsc::UnboundedReceiver<Bytes>,
        cancel: CancellationToken,
        _hold: Hold,
        tick: tokio::time::Interval,
    }
    impl Drop for State {
        fn drop(&mut self) {
            if self.future.is_some() {
                self.cancel.cancel();
                tracing::debug!(request = %self.id, "response stream closed before the answer: request cancelled");
            }
        }
    }
    let mut tick = tokio::time::interval(keep_alive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let state = State {
        id,
        future: Some(future),
        rx,
        cancel,
        _hold: hold,
        tick,
    };
    let s = stream::unfold(state, |mut st| async move {
        let future = st.future.as_mut()?;
        tokio::select! {
            biased;
            _ = st.cancel.cancelled() => None,
            Some(note) = st.rx.recv() => Some((sse::encode_event(&note), st)),
            out = future => {
                st.future = None;
                if st.cancel.is_cancelled() {
                    // Cancelled by the client: no response is sent for it.
                    return None;
                }
                let bytes = match out {
                    Ok(result) => jsonrpc::result_bytes(&st.id, &result),
                    Err(e) => jsonrpc::error_bytes(Some(&st.id), &e),
                };
                // Notifications sent in the handler's last poll precede the response.
                let mut frames = Vec::new();
                while let Ok(note) = st.rx.try_recv() {
                    frames.extend_from_slice(&sse::encode_event(&note));
                }
                frames.extend_from_slice(&sse::encode_event(&bytes));
                Some((Bytes::from(frames), st))
            }
            _ = st.tick.tick() => Some((sse::keep_alive(), st)),
        }
    });
    SyncStream(Box::pin(s))
}

/// Catalog-change notifications (None: keep-alives only) until shutdown.
fn change_stream(
    changes: Arc<tokio::sync::Mutex<watch::Receiver<u64>>>,
    notification: Option<Vec<u8>>,
    shutdown: CancellationToken,
    keep_alive: Duration,
    guard: StreamHold,
) -> impl futures_util::Stream<Item = Bytes> + Send + Sync + 'static {
    let frame = notification.map(|n| sse::encode_event(&n));
    let mut tick = tokio::time::interval(keep_alive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let s = stream::unfold((changes, tick, guard), move |(changes, mut tick, guard)| {
        let frame = frame.clone();
        let shutdown = shutdown.clone();
        async move {
            loop {
                let changed = async {
                    let mut rx = changes.clone().lock_owned().await;
                    rx.changed().await.is_ok()
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    ok = changed => match (&frame, ok) {
                        (_, false) => return None,
                        (Some(f), true) => return Some((f.clone(), (changes, tick, guard))),
                        (None, true) => continue,
                    },
                    _ = tick.tick() => return Some((sse::keep_alive(), (changes, tick, guard))),
                }
            }
        }
    });
    SyncStream(Box::pin(s))
}

/// Makes a `Send` stream `Sync` (hyper's boxed body needs it); it is only ever polled
/// through `&mut`, so sharing `&` references is harmless.
struct SyncStream<S>(Pin<Box<S>>);
// SAFETY: the wrapped stream is only accessed through `Pin<&mut Self>`; no `&self`
// method exposes it, so no data race can come from sharing `&SyncStream`.
unsafe impl<S: Send> Sync for SyncStream<S> {}
impl<S: futures_util::Stream> futures_util::Stream for SyncStream<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

fn json_result(id: &RequestId, result: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(result).unwrap_or_default();
    body::json_response(StatusCode::OK, jsonrpc::result_bytes(id, &bytes))
}

/// What a request holds while it is handled: its session slot, its share of the
/// in-flight cap and of the body budget.
struct Hold {
    _session: Option<crate::session::InflightGuard>,
    _slot: OwnedSemaphorePermit,
    _budget: Option<Arc<body::BudgetShare>>,
}

/// What a long-lived stream holds while open: its session's stream slot and its share
/// of the stream cap.
struct StreamHold {
    _session: Option<crate::session::InflightGuard>,
    _slot: OwnedSemaphorePermit,
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
