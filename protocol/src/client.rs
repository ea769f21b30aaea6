//! A Streamable HTTP MCP client that talks to servers of either era, over reqwest
//! (TLS, what tools and tests use) or kept-alive connections of its own (plain-HTTP hops
//! where the cost per request matters: the gateway's calls to its node servers).
//!
//! It connects modern-first (`server/discover`, 2026-07-28) and falls back to the
//! legacy `initialize` handshake as the 2026-07-28 backward-compatibility rules
//! prescribe; keeps the legacy session id and re-initialises once when the server
//! forgets it (404); reads JSON or SSE answers, handing notifications that precede the
//! response to a callback. One client holds one logical connection and is shared by
//! concurrent callers; the HTTP client pools the TCP connections underneath.

use bytes::Bytes;
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::headers::{self, ParamHeader};
use crate::jsonrpc::{self, ErrorObject, Message, MetaEdit, MetaValue, RequestId};
use crate::mcp::{Era, Implementation, ProtocolVersion, meta, method};
use crate::pool::{EndpointPool, PoolError, PoolSettings, PooledBody};
use crate::sse;

/// Which era to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientMode {
    /// 2026-07-28 first, falling back to initialize.
    Auto,
    /// Only the initialize-based handshake.
    Legacy,
    /// Only 2026-07-28.
    Modern,
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent as clientInfo.
    pub client_info: Implementation,
    /// Era selection.
    pub mode: ClientMode,
    /// Upper bound on a whole request, answer included (tool calls may override).
    pub request_timeout: Duration,
    /// Largest answer accepted (JSON body, or one SSE line).
    pub max_message_bytes: usize,
    /// Headers sent with every request (the caller's own credential towards this
    /// server, extra headers a deployment needs); swappable while the client runs.
    pub extra_headers: SharedHeaders,
    /// The `capabilities` declared in initialize (and, when the request carries none,
    /// in a 2026-07-28 request's `_meta`): what server-to-client requests this client
    /// answers through [`RequestOptions::on_request`].
    pub capabilities: Value,
}

/// A header set shared by clients and replaceable at run time (a rotated token file):
/// each request clones the current map, a few headers, without touching the disk.
/// `Debug` shows the header names only, never the values.
#[derive(Clone, Default)]
pub struct SharedHeaders(Arc<RwLock<Arc<HeaderMap>>>);

impl SharedHeaders {
    /// Starts with `headers`.
    pub fn new(headers: HeaderMap) -> Self {
        SharedHeaders(Arc::new(RwLock::new(Arc::new(headers))))
    }

    /// Replaces the set; requests sent from now on carry the new one.
    pub fn set(&self, headers: HeaderMap) {
        if let Ok(mut h) = self.0.write() {
            *h = Arc::new(headers);
        }
    }

    /// The current set.
    pub fn get(&self) -> Arc<HeaderMap> {
        match self.0.read() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl std::fmt::Debug for SharedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.get().keys().map(|k| k.as_str()))
            .finish()
    }
}

impl ClientOptions {
    /// Defaults for a client named `name`.
    pub fn new(name: &str, version: &str) -> Self {
        ClientOptions {
            client_info: Implementation {
                name: name.into(),
                version: version.into(),
                title: None,
            },
            mode: ClientMode::Auto,
            request_timeout: Duration::from_secs(60),
            max_message_bytes: 64 * 1024 * 1024,
            extra_headers: SharedHeaders::default(),
            capabilities: json!({}),
        }
    }
}

/// What the handshake learned about the server.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The revision in use.
    pub version: ProtocolVersion,
    /// The legacy session id, when the server minted one.
    pub session: Option<String>,
    /// The server's `Implementation` object.
    pub server_info: Value,
    /// The server's capabilities.
    pub capabilities: Value,
    /// The server's instructions.
    pub instructions: Option<String>,
}

/// Which of a server's lists a change notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `notifications/tools/list_changed`.
    Tools,
    /// `notifications/prompts/list_changed`.
    Prompts,
    /// `notifications/resources/list_changed`.
    Resources,
}

/// How a change stream ([`McpClient::listen_tools_changed`]) ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenEnd {
    /// The caller's time limit for one stream passed (nothing was missed).
    Deadline,
    /// The server ended the stream (it may have changed meanwhile: ask again).
    Closed,
}

/// A JSON-RPC answer: the raw result, or the error as the server sent it.
pub type Reply = Result<Box<RawValue>, ErrorObject>;

/// Why a request produced no JSON-RPC answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or sending failed.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The cause.
        source: TransportError,
    },
    /// No answer within the deadline.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The server answered with an HTTP error and no JSON-RPC body.
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        /// The endpoint.
        url: String,
        /// The status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// The answer broke the protocol.
    #[error("{url} broke the protocol: {detail}")]
    Protocol {
        /// The endpoint.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// The handshake failed with a JSON-RPC error.
    #[error("{url} refused the handshake: {error}")]
    Handshake {
        /// The endpoint.
        url: String,
        /// The error.
        error: Box<ErrorObject>,
    },
}

/// Per-request options.
#[derive(Default)]
pub struct RequestOptions<'a> {
    /// Use this id instead of a fresh one (so the caller can cancel it by id).
    pub id: Option<RequestId>,
    /// Receives each serialized notification that arrives before the response.
    pub on_notification: Option<&'a mut (dyn FnMut(Bytes) + Send)>,
    /// Overrides the default timeout.
    pub timeout: Option<Duration>,
    /// Answers a server-to-client request (elicitation, sampling, roots) that arrives
    /// on the request's SSE stream; the answer is POSTed back in the session. Without
    /// it such a request is refused at once (-32601), so the server never waits.
    pub on_request: Option<&'a OnRequest>,
}

/// Answers one server-to-client request: its result object, or an error to send.
pub type OnRequest =
    dyn Fn(jsonrpc::Request) -> crate::server::BoxFuture<Result<Value, ErrorObject>> + Send + Sync;

/// The HTTP client under an [`McpClient`]: reqwest (TLS, proxies, custom roots: what
/// tools and tests use), or kept-alive HTTP/1.1 connections of the client's own for
/// plain-HTTP hops where the cost of each request matters (the gateway's backend
/// calls: no URL parse, no redirect policy, no shared pool to look the endpoint up
/// in, no timer of the HTTP client's own).
#[derive(Clone, Debug)]
pub enum Http {
    /// A reqwest client (see [`http_client`]).
    Reqwest(reqwest::Client),
    /// The client's own connections to its `http://` endpoint (see [`pooled`]).
    Pooled(PoolSettings),
}

/// [`Http::Pooled`] with the same behaviour as [`http_client`]: TCP_NODELAY,
/// `connect_timeout`, [`POOL_IDLE_TIMEOUT`], at most `max_idle` idle connections (0
/// for none); a request that finds its pooled connection closing before it was
/// written is re-sent on a fresh one.
pub fn pooled(connect_timeout: Duration, max_idle: usize) -> Http {
    Http::Pooled(PoolSettings {
        connect_timeout,
        max_idle,
        idle_timeout: POOL_IDLE_TIMEOUT,
    })
}

/// How an [`McpClient`] reaches its endpoint.
enum Transport {
    Reqwest(reqwest::Client),
    /// Connections to the endpoint, and the request target in origin form (`/mcp`).
    Pooled(EndpointPool, http::Uri),
    /// [`Http::Pooled`] for a URL that is not `http://host:port/path`.
    Unusable,
}

impl From<reqwest::Client> for Http {
    fn from(c: reqwest::Client) -> Self {
        Http::Reqwest(c)
    }
}

/// Why an HTTP exchange failed below the protocol (connecting, sending, reading), with
/// its causes in its message.
#[derive(Debug)]
pub struct TransportError {
    /// The error and its sources, joined.
    detail: String,
    /// Whether the connection could not be established (nothing was sent).
    connect: bool,
    /// Whether the HTTP client's own deadline passed.
    timeout: bool,
    /// Whether the request provably failed before it reached the server: a
    /// connection that broke before any answer, never a timeout.
    before_answer: bool,
}

impl TransportError {
    /// Whether connecting failed (nothing was sent).
    pub fn is_connect(&self) -> bool {
        self.connect
    }

    /// Whether the HTTP client's deadline passed.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        TransportError {
            detail: error_chain(&e),
            connect: e.is_connect(),
            timeout: e.is_timeout(),
            before_answer: e.is_request() && !e.is_connect() && !e.is_timeout(),
        }
    }

    fn from_pool(e: PoolError) -> Self {
        TransportError {
            detail: error_chain(&e),
            connect: e.is_connect(),
            timeout: false,
            // No response head arrived: the pool already re-sent a request that was
            // never written; what is left broke before any answer.
            before_answer: !e.is_connect(),
        }
    }

    fn from_body(e: &(dyn std::error::Error + 'static)) -> Self {
        TransportError {
            detail: error_chain(e),
            connect: false,
            timeout: false,
            before_answer: false,
        }
    }
}

impl TransportError {
    /// The exchange's deadline passed before the answer's head.
    fn late() -> Self {
        TransportError {
            detail: "no answer in time".into(),
            connect: false,
            timeout: true,
            before_answer: false,
        }
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for TransportError {}

/// An error and its sources as one line.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// The body of an answer, from either HTTP client.
enum AnswerBody {
    Reqwest(reqwest::Body),
    Pooled(PooledBody),
}

impl hyper::body::Body for AnswerBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, TransportError>>> {
        match self.get_mut() {
            AnswerBody::Reqwest(b) => Pin::new(b).poll_frame(cx).map_err(|e| {
                let mut t = TransportError::from_body(&e);
                t.timeout = e.is_timeout();
                t
            }),
            AnswerBody::Pooled(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| TransportError::from_body(&e)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnswerBody::Reqwest(b) => b.is_end_stream(),
            AnswerBody::Pooled(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            AnswerBody::Reqwest(b) => b.size_hint(),
            AnswerBody::Pooled(b) => b.size_hint(),
        }
    }
}

/// An answer's head and body.
type Answer = http::Response<AnswerBody>;

/// The `_meta` keys of one request's protocol exchange (2026-07-28): never sent to a
/// legacy server.
const PROTOCOL_META_KEYS: [&str; 4] = [
    meta::CLIENT_CAPABILITIES,
    meta::LOG_LEVEL,
    meta::PROTOCOL_VERSION,
    meta::CLIENT_INFO,
];

/// What every 2026-07-28 request's `_meta` says about this client, serialized once.
struct ProtocolMeta {
    /// `clientInfo`.
    client_info: Box<RawValue>,
    /// `clientCapabilities`.
    capabilities: Box<RawValue>,
}

impl ProtocolMeta {
    fn new(client_info: &Value, capabilities: &Value) -> Self {
        // A tree with string keys always serializes.
        let raw = |v: &Value| serde_json::value::to_raw_value(v).expect("a JSON value serializes");
        ProtocolMeta {
            client_info: raw(client_info),
            capabilities: raw(capabilities),
        }
    }
}

/// The client.
pub struct McpClient {
    transport: Transport,
    url: String,
    /// The `Host` header for `url`, built once (pooled transport: not formatted per
    /// request).
    host: Option<HeaderValue>,
    options: ClientOptions,
    next_id: AtomicI64,
    state: RwLock<Option<Arc<Connection>>>,
    connecting: tokio::sync::Mutex<()>,
    /// `x-mcp-header` parameters of the tools learned by `list_tools`.
    param_headers: RwLock<HashMap<String, Arc<[ParamHeader]>>>,
    /// Whether `param_headers` has been filled from a tools/list.
    tools_known: std::sync::atomic::AtomicBool,
    /// `options.client_info` as JSON, built once: every 2026-07-28 request carries it.
    client_info: Value,
    /// `client_info` and `options.capabilities` serialized once, as every 2026-07-28
    /// request's `_meta` carries them.
    protocol_meta: ProtocolMeta,
}

/// How long an idle pooled connection is kept. Below the 30 s after which our
/// servers (hyper's header-read timeout) close an idle keep-alive connection, so the
/// client never writes a request into a connection the server is closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// A reqwest client tuned for MCP: keep-alive pool, TCP_NODELAY, connect timeout.
///
/// A request that finds its pooled connection already closed is re-sent on a new one
/// by hyper's pool (it was never written: hyper reports it as cancelled before
/// dispatch), which is safe for every method, `tools/call` included.
pub fn http_client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(64)
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The `Host` header for `uri`: its host, and its port unless it is the scheme's
/// default.
fn host_header(uri: &http::Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => HeaderValue::from_str(&format!("{host}:{port}")),
        _ => HeaderValue::from_str(host),
    };
    value.ok()
}

impl McpClient {
    /// A client for the endpoint `url` (e.g. `http://10.0.0.5:9028/mcp`).
    /// `http` is a reqwest client ([`http_client`]) or connections of the client's
    /// own ([`pooled`], `http://` endpoints only).
    pub fn new(http: impl Into<Http>, url: impl Into<String>, options: ClientOptions) -> Self {
        let url = url.into();
        let uri: Option<http::Uri> = url.parse().ok();
        let host = uri.as_ref().and_then(host_header);
        let transport = match http.into() {
            Http::Reqwest(c) => Transport::Reqwest(c),
            Http::Pooled(settings) => {
                let pool = uri.as_ref().and_then(|u| EndpointPool::new(u, settings));
                let origin = uri
                    .as_ref()
                    .and_then(|u| u.path_and_query())
                    .and_then(|p| http::Uri::try_from(p.as_str()).ok());
                match (pool, origin) {
                    (Some(pool), Some(origin)) => Transport::Pooled(pool, origin),
                    _ => Transport::Unusable,
                }
            }
        };
        let client_info = options.client_info.to_value();
        McpClient {
            protocol_meta: ProtocolMeta::new(&client_info, &options.capabilities),
            client_info,
            transport,
            host,
            url,
            options,
            next_id: AtomicI64::new(1),
            state: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            param_headers: RwLock::new(HashMap::new()),
            tools_known: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A fresh request id.
    pub fn next_id(&self) -> RequestId {
        RequestId::Number(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The current connection, if the handshake has been done.
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.state.read().ok().and_then(|s| s.clone())
    }

    /// Does the handshake if it has not been done yet.
    pub async fn connect(&self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = self.connection() {
            return Ok(c);
        }
        self.reconnect(None).await
    }

    /// Replaces `stale` (or nothing) with a fresh connection; concurrent callers share
    /// one handshake.
    async fn reconnect(
        &self,
        stale: Option<&Arc<Connection>>,
    ) -> Result<Arc<Connection>, ClientError> {
        let _guard = self.connecting.lock().await;
        if let Some(current) = self.connection() {
            let is_stale = stale.is_some_and(|s| Arc::ptr_eq(s, &current));
            if !is_stale {
                return Ok(current);
            }
        }
        let conn = Arc::new(self.handshake().await?);
        if let Ok(mut s) = self.state.write() {
            *s = Some(conn.clone());
        }
        Ok(conn)
    }

    async fn handshake(&self) -> Result<Connection, ClientError> {
        match self.options.mode {
            ClientMode::Legacy => self.initialize().await,
            ClientMode::Modern => self
                .discover()
                .await?
                .map_err(|error| ClientError::Handshake {
                    url: self.url.clone(),
                    error: Box::new(error),
                }),
            ClientMode::Auto => match self.discover().await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => {
                    tracing::debug!(url = %self.url, error = %e, "no 2026-07-28 answer; trying initialize");
                    self.initialize().await
                }
                Err(e @ (ClientError::Unreachable { .. } | ClientError::Timeout { .. })) => Err(e),
                Err(e) => {
                    tracing::debug!(url = %self.url, error = %e, "no 2026-07-28 answer; trying initialize");
                    self.initialize().await
                }
            },
        }
    }

    /// `server/discover`; Ok(Err) when the server is not (only) modern.
    async fn discover(&self) -> Result<Result<Connection, ErrorObject>, ClientError> {
        let probe = Connection {
            version: ProtocolVersion::LATEST_MODERN,
            session: None,
            server_info: Value::Null,
            capabilities: Value::Null,
            instructions: None,
        };
        let reply = self
            .send(
                &probe,
                &self.next_id(),
                method::DISCOVER,
                &mut Map::new(),
                &mut RequestOptions::default(),
            )
            .await?;
        let raw = match reply {
            Ok(raw) => raw,
            Err(e) => return Ok(Err(e)),
        };
        let result: Value = serde_json::from_str(raw.get()).map_err(|e| self.protocol(e))?;
        let supports = result["supportedVersions"].as_array().is_some_and(|v| {
            v.iter()
                .any(|x| x == ProtocolVersion::LATEST_MODERN.as_str())
        });
        if !supports {
            return Ok(Err(ErrorObject::invalid_request(
                "server does not list 2026-07-28",
            )));
        }
        Ok(Ok(Connection {
            version: ProtocolVersion::LATEST_MODERN,
            session: None,
            server_info: result["_meta"][meta::SERVER_INFO].clone(),
            capabilities: result["capabilities"].clone(),
            instructions: result["instructions"].as_str().map(str::to_owned),
        }))
    }

    /// The legacy handshake: initialize, then notifications/initialized.
    async fn initialize(&self) -> Result<Connection, ClientError> {
        let mut conn = Connection {
            version: ProtocolVersion::LATEST_LEGACY,
            session: None,
            server_info: Value::Null,
            capabilities: Value::Null,
            instructions: None,
        };
        let params = json!({
            "protocolVersion": ProtocolVersion::LATEST_LEGACY.as_str(),
            "capabilities": self.options.capabilities.clone(),
            "clientInfo": self.client_info,
        });
        let mut params = match params {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let id = self.next_id();
        let (reply, session) = self
            .send_raw(
                &conn,
                &id,
                method::INITIALIZE,
                &mut params,
                &mut RequestOptions::default(),
                true,
            )
            .await?;
        let raw = reply.map_err(|error| ClientError::Handshake {
            url: self.url.clone(),
            error: Box::new(error),
        })?;
        let result: Value = serde_json::from_str(raw.get()).map_err(|e| self.protocol(e))?;
        let version = result["protocolVersion"]
            .as_str()
            .and_then(ProtocolVersion::parse)
            .filter(|v| v.era() == Era::Legacy)
            .ok_or_else(|| {
                self.protocol(format!(
                    "unsupported protocolVersion {}",
                    result["protocolVersion"]
                ))
            })?;
        conn.version = version;
        conn.session = session;
        conn.server_info = result["serverInfo"].clone();
        conn.capabilities = result["capabilities"].clone();
        conn.instructions = result["instructions"].as_str().map(str::to_owned);
        self.notify_on(&conn, method::INITIALIZED, None).await?;
        Ok(conn)
    }

    /// Sends a request on the current connection (connecting first if needed) and
    /// re-initialises once if the server forgot the legacy session.
    pub async fn request(
        &self,
        method_name: &str,
        mut params: Map<String, Value>,
        opts: RequestOptions<'_>,
    ) -> Result<Reply, ClientError> {
        self.request_mut(method_name, &mut params, opts).await
    }

    /// [`Self::request`] leaving `params` to the caller, as sent.
    async fn request_mut(
        &self,
        method_name: &str,
        params: &mut Map<String, Value>,
        mut opts: RequestOptions<'_>,
    ) -> Result<Reply, ClientError> {
        let conn = self.connect().await?;
        let id = opts.id.clone().unwrap_or_else(|| self.next_id());
        match self.send(&conn, &id, method_name, params, &mut opts).await {
            // Only a legacy session can be forgotten and retried.
            Err(ClientError::Http {
                status: StatusCode::NOT_FOUND,
                ..
            }) if conn.session.is_some() => {
                tracing::info!(url = %self.url, "session expired; initializing again");
                let conn = self.reconnect(Some(&conn)).await?;
                // Boxed: the rare retry does not double the size of every request's future.
                Box::pin(self.send(&conn, &id, method_name, params, &mut opts)).await
            }
            other => other,
        }
    }

    /// Sends a notification on the current connection.
    pub async fn notify(
        &self,
        method_name: &str,
        params: Option<Value>,
    ) -> Result<(), ClientError> {
        let conn = self.connect().await?;
        self.notify_on(&conn, method_name, params).await
    }

    /// Legacy cancellation of an in-flight request (2026-07-28 servers see the stream
    /// close instead, so this does nothing there).
    pub async fn cancel(&self, id: &RequestId, reason: &str) -> Result<(), ClientError> {
        match self.connection() {
            Some(conn) if conn.version.era() == Era::Legacy => {
                let params = json!({ "requestId": id.to_value(), "reason": reason });
                self.notify_on(&conn, method::CANCELLED, Some(params)).await
            }
            _ => Ok(()),
        }
    }

    /// Every tool, following `nextCursor` to the end.
    pub async fn list_tools(&self) -> Result<Result<Vec<Value>, ErrorObject>, ClientError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut params = Map::new();
            if let Some(c) = &cursor {
                params.insert("cursor".into(), c.clone().into());
            }
            let raw = match self
                .request(method::TOOLS_LIST, params, RequestOptions::default())
                .await?
            {
                Ok(raw) => raw,
                Err(e) => return Ok(Err(e)),
            };
            let mut page: Value = serde_json::from_str(raw.get()).map_err(|e| self.protocol(e))?;
            match page.get_mut("tools").map(Value::take) {
                Some(Value::Array(items)) => tools.extend(items),
                _ => return Err(self.protocol("tools/list result has no tools array")),
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if seen.insert(next.to_string()) && seen.len() < 10_000 => {
                    cursor = Some(next.to_string());
                }
                Some(_) => return Err(self.protocol("tools/list cursor repeats")),
                None => break,
            }
        }
        self.learn_tools(&tools);
        Ok(Ok(tools))
    }

    /// Records the `x-mcp-header` parameters of tool definitions, so 2026-07-28 calls
    /// carry their `Mcp-Param-*` headers (`list_tools` does this itself).
    pub fn learn_tools(&self, tools: &[Value]) {
        if let Ok(mut map) = self.param_headers.write() {
            map.clear();
            for t in tools {
                if let (Some(name), Some(schema)) = (t["name"].as_str(), t.get("inputSchema"))
                    && let Ok(ps) = headers::param_headers(schema)
                {
                    map.insert(name.to_string(), ps.into());
                }
            }
        }
        self.tools_known.store(true, Ordering::Relaxed);
    }

    /// Calls a tool. `params` is the whole params object (name, arguments, `_meta`);
    /// notifications (progress) go to `opts.on_notification` as they arrive.
    pub async fn call_tool(
        &self,
        mut params: Map<String, Value>,
        opts: RequestOptions<'_>,
    ) -> Result<Reply, ClientError> {
        self.call_tool_mut(&mut params, opts).await
    }

    /// [`Self::call_tool`] leaving `params` to the caller, as sent (with the
    /// protocol's `_meta`; sending them again is safe): a caller that may repeat the
    /// call, with more in them, needs no copy.
    pub async fn call_tool_mut(
        &self,
        params: &mut Map<String, Value>,
        opts: RequestOptions<'_>,
    ) -> Result<Reply, ClientError> {
        let conn = self.connect().await?;
        if conn.version.era() == Era::Modern && !self.tools_known.load(Ordering::Relaxed) {
            // 2026-07-28 calls must mirror x-mcp-header arguments: learn them once.
            if let Err(e) = self.list_tools().await {
                tracing::debug!(url = %self.url, error = %e, "could not list tools before a call");
            }
        }
        self.request_mut(method::TOOLS_CALL, params, opts).await
    }
    async fn notify_on(
        &self,
        conn: &Connection,
        method_name: &str,
        params: Option<Value>,
    ) -> Result<(), ClientError> {
        let params = match params {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let headers = self.headers_for(conn, method_name, &params)?;
        let body = self.body_for(conn, None, method_name, &params);
        let resp = self
            .post(headers, body, Some(self.options.request_timeout), true)
            .await?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(self.http_error(resp).await)
        }
    }

    async fn send(
        &self,
        conn: &Connection,
        id: &RequestId,
        method_name: &str,
        params: &mut Map<String, Value>,
        opts: &mut RequestOptions<'_>,
    ) -> Result<Reply, ClientError> {
        self.send_raw(conn, id, method_name, params, opts, false)
            .await
            .map(|(r, _)| r)
    }

    /// One POST: builds headers for the era, reads the JSON or SSE answer.
    async fn send_raw(
        &self,
        conn: &Connection,
        id: &RequestId,
        method_name: &str,
        params: &mut Map<String, Value>,
        opts: &mut RequestOptions<'_>,
        want_session: bool,
    ) -> Result<(Reply, Option<String>), ClientError> {
        let headers = self.headers_for(conn, method_name, params)?;
        let body = self.body_for(conn, Some(id), method_name, params);
        let timeout = opts.timeout.unwrap_or(self.options.request_timeout);
        // Built where it is awaited, not as a named future first: a named one would be
        // stored twice in this future.
        let answer = tokio::time::timeout(timeout, async {
            // A tools/call may have side effects: never sent twice.
            let retry_safe = method_name != method::TOOLS_CALL;
            // Bounded by the timeout around all of this: no second timer.
            let resp = self.post(headers, body, None, retry_safe).await?;
            let session = want_session
                .then(|| resp.headers().get(headers::MCP_SESSION_ID))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let reply = self.read_reply(conn, resp, id, opts).await?;
            Ok((reply, session))
        })
        .await;
        match answer {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                url: self.url.clone(),
                timeout,
            }),
        }
    }

    /// Era-specific headers (the `_meta` the era wants is [`Self::meta_edit`]'s).
    fn headers_for(
        &self,
        conn: &Connection,
        method_name: &str,
        params: &Map<String, Value>,
    ) -> Result<HeaderMap, ClientError> {
        // The configured extra headers first: the protocol's own headers below win.
        let extra = self.options.extra_headers.get();
        let mut h = if extra.is_empty() {
            // Room for the protocol's headers: no regrowth while they are added.
            HeaderMap::with_capacity(8)
        } else {
            HeaderMap::clone(&extra)
        };
        // The trace context of the call this task makes, when tracing is on.
        crate::tracecontext::add_outgoing_headers(&mut h);
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(headers::APPLICATION_JSON),
        );
        h.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let version = HeaderValue::from_static(conn.version.as_str());
        match conn.version.era() {
            Era::Legacy => {
                if let Some(s) = &conn.session {
                    let v = HeaderValue::from_str(s)
                        .map_err(|_| self.protocol("session id is not a valid header value"))?;
                    h.insert(headers::name::MCP_SESSION_ID, v);
                }
                if conn.version != ProtocolVersion::V2025_03_26 && method_name != method::INITIALIZE
                {
                    h.insert(headers::name::MCP_PROTOCOL_VERSION, version);
                }
            }
            Era::Modern => {
                if method_name.starts_with("notifications/") {
                    return Ok(h);
                }
                h.insert(headers::name::MCP_PROTOCOL_VERSION, version);
                let method_value = match method_name {
                    // The method of nearly every request: no copy.
                    method::TOOLS_CALL => HeaderValue::from_static(method::TOOLS_CALL),
                    other => self.header_value(other)?,
                };
                h.insert(headers::name::MCP_METHOD, method_value);
                if let Some(field) = headers::name_field(method_name)
                    && let Some(name) = params.get(field).and_then(Value::as_str)
                {
                    h.insert(headers::name::MCP_NAME, self.header_value(name)?);
                    if method_name == method::TOOLS_CALL {
                        self.add_param_headers(&mut h, name, params)?;
                    }
                }
            }
        }
        Ok(h)
    }

    /// The body of a request (`id`) or notification (None) for the connection's era:
    /// a 2026-07-28 request's `_meta` carries the protocol version, the client's
    /// capabilities and its info (the caller's own capabilities win); a legacy one
    /// carries none of those per-request protocol keys. `params` stay as they are.
    fn body_for(
        &self,
        conn: &Connection,
        id: Option<&RequestId>,
        method_name: &str,
        params: &Map<String, Value>,
    ) -> Vec<u8> {
        let replace = [(
            meta::PROTOCOL_VERSION,
            MetaValue::Str(conn.version.as_str()),
        )];
        let add = [
            (
                meta::CLIENT_CAPABILITIES,
                MetaValue::Raw(&self.protocol_meta.capabilities),
            ),
            (
                meta::CLIENT_INFO,
                MetaValue::Raw(&self.protocol_meta.client_info),
            ),
        ];
        let edit = match conn.version.era() {
            Era::Legacy => MetaEdit {
                drop: &PROTOCOL_META_KEYS,
                ..MetaEdit::default()
            },
            Era::Modern if id.is_none() => MetaEdit::default(),
            Era::Modern => MetaEdit {
                drop: &[],
                replace: &replace,
                add: &add,
            },
        };
        match id {
            Some(id) => jsonrpc::request_bytes_edited(id, method_name, params, edit),
            None => jsonrpc::notification_bytes_edited(method_name, params, edit),
        }
    }

    fn add_param_headers(
        &self,
        h: &mut HeaderMap,
        tool: &str,
        params: &Map<String, Value>,
    ) -> Result<(), ClientError> {
        let declared = self
            .param_headers
            .read()
            .ok()
            .and_then(|m| m.get(tool).cloned());
        let args = params.get("arguments").and_then(Value::as_object);
        for p in declared.iter().flat_map(|d| d.iter()) {
            if let Some(text) = headers::argument_header_text(args, &p.path) {
                let name =
                    HeaderName::from_bytes(p.header.as_bytes()).map_err(|e| self.protocol(e))?;
                h.insert(name, self.header_value(&text)?);
            }
        }
        Ok(())
    }

    fn header_value(&self, text: &str) -> Result<HeaderValue, ClientError> {
        HeaderValue::from_str(&headers::encode_header_value(text)).map_err(|e| self.protocol(e))
    }

    /// One exchange with the endpoint: `method`, `headers` and `body`, answered
    /// within `timeout` (the head; the caller bounds the body; None: the caller bounds
    /// it all).
    async fn exchange(
        &self,
        method: http::Method,
        mut headers: HeaderMap,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Answer, TransportError> {
        match &self.transport {
            Transport::Reqwest(http) => {
                let mut request = http.request(method, &self.url).headers(headers);
                if let Some(timeout) = timeout {
                    request = request.timeout(timeout);
                }
                let resp = request
                    .body(body)
                    .send()
                    .await
                    .map_err(TransportError::from_reqwest)?;
                Ok(http::Response::from(resp).map(AnswerBody::Reqwest))
            }
            Transport::Pooled(pool, origin) => {
                if let Some(host) = &self.host {
                    headers.insert(HOST, host.clone());
                }
                let mut req = http::Request::new(http_body_util::Full::new(body));
                *req.method_mut() = method;
                *req.uri_mut() = origin.clone();
                *req.headers_mut() = headers;
                let answer = match timeout {
                    None => Ok(pool.send(req).await),
                    Some(t) => tokio::time::timeout(t, pool.send(req)).await,
                };
                match answer {
                    Ok(Ok(resp)) => Ok(resp.map(AnswerBody::Pooled)),
                    Ok(Err(e)) => Err(TransportError::from_pool(e)),
                    Err(_) => Err(TransportError::late()),
                }
            }
            Transport::Unusable => Err(TransportError {
                detail: format!("{} is not an http:// URL with a host", self.url),
                connect: true,
                timeout: false,
                before_answer: false,
            }),
        }
    }

    /// One POST, its answer's head due within `timeout` (None: the caller bounds the
    /// whole exchange). With `retry_safe` (a request that may be sent twice), a
    /// connection that broke before any answer arrived is retried once on a fresh
    /// connection.
    async fn post(
        &self,
        headers: HeaderMap,
        body: Vec<u8>,
        timeout: Option<Duration>,
        retry_safe: bool,
    ) -> Result<Answer, ClientError> {
        let body = Bytes::from(body);
        let outcome = if retry_safe {
            match self
                .exchange(http::Method::POST, headers.clone(), body.clone(), timeout)
                .await
            {
                Err(e) if e.before_answer => {
                    tracing::debug!(url = %self.url, error = %e, "connection broke before the answer; retrying once");
                    self.exchange(http::Method::POST, headers, body, timeout)
                        .await
                }
                other => other,
            }
        } else {
            self.exchange(http::Method::POST, headers, body, timeout)
                .await
        };
        outcome.map_err(|source| {
            if source.timeout {
                ClientError::Timeout {
                    url: self.url.clone(),
                    timeout: timeout.unwrap_or(self.options.request_timeout),
                }
            } else {
                ClientError::Unreachable {
                    url: self.url.clone(),
                    source,
                }
            }
        })
    }

    /// Reads the answer to request `id`: a JSON body, or an SSE stream whose
    /// notifications go to the callback until the response arrives.
    async fn read_reply(
        &self,
        conn: &Connection,
        resp: Answer,
        id: &RequestId,
        opts: &mut RequestOptions<'_>,
    ) -> Result<Reply, ClientError> {
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(headers::TEXT_EVENT_STREAM));
        if is_sse && status.is_success() {
            // Boxed: streamed answers do not enlarge every plain JSON one's future.
            return Box::pin(self.read_sse(conn, resp, id, opts)).await;
        }
        let body = self.read_body(resp).await?;
        match Message::from_slice(&body) {
            Ok(Message::Response(r)) if r.id.as_ref().is_none_or(|rid| rid == id) => {
                match (status.is_success(), r.outcome) {
                    // An unknown session: 404 with an id-less error body (what our
                    // server and the SDKs send); `request` re-initialises on it.
                    (false, Err(_)) if status == StatusCode::NOT_FOUND && r.id.is_none() => {
                        Err(ClientError::Http {
                            url: self.url.clone(),
                            status,
                            body: snippet(&body),
                        })
                    }
                    (_, Err(e)) => Ok(Err(e)),
                    (true, Ok(result)) => Ok(Ok(result)),
                    (false, Ok(_)) => Err(ClientError::Http {
                        url: self.url.clone(),
                        status,
                        body: snippet(&body),
                    }),
                }
            }
            _ if !status.is_success() => Err(ClientError::Http {
                url: self.url.clone(),
                status,
                body: snippet(&body),
            }),
            _ => Err(self.protocol(format!(
                "expected the response to request {id}, got: {}",
                snippet(&body)
            ))),
        }
    }

    async fn read_sse(
        &self,
        conn: &Connection,
        resp: Answer,
        id: &RequestId,
        opts: &mut RequestOptions<'_>,
    ) -> Result<Reply, ClientError> {
        let mut decoder = sse::Decoder::new(self.options.max_message_bytes);
        let mut body = resp.into_body();
        while let Some(chunk) = next_chunk(&mut body).await {
            let chunk = chunk.map_err(|source| self.body_error(source))?;
            for event in decoder.push(&chunk).map_err(|e| self.protocol(e))? {
                if event.data.is_empty() {
                    continue;
                }
                match Message::from_slice(event.data.as_bytes()) {
                    Ok(Message::Response(r)) if r.id.as_ref() == Some(id) => return Ok(r.outcome),
                    Ok(Message::Notification(_)) => {
                        if let Some(cb) = opts.on_notification.as_mut() {
                            cb(Bytes::from(event.data));
                        }
                    }
                    Ok(Message::Request(r)) => {
                        let on_request = opts.on_request;
                        self.answer_server(conn, r, on_request).await
                    }
                    // Stray responses: not ours.
                    Ok(Message::Response(_)) => {}
                    Err(e) => return Err(self.protocol(format!("bad SSE event: {e}"))),
                }
            }
        }
        Err(self.protocol(format!(
            "the stream ended before the response to request {id}"
        )))
    }

    /// Answers a server-to-client request read on a stream: through
    /// [`RequestOptions::on_request`], else refused; the answer is POSTed in the
    /// session. A failed POST is logged: the server's own deadline ends its wait.
    async fn answer_server(
        &self,
        conn: &Connection,
        req: jsonrpc::Request,
        on_request: Option<&OnRequest>,
    ) {
        let id = req.id.clone();
        let method_name = req.method.clone();
        let outcome = match on_request {
            Some(cb) => cb(req).await,
            None => Err(ErrorObject::method_not_found(&method_name)),
        };
        let body = match &outcome {
            Ok(result) => {
                jsonrpc::result_bytes(&id, &serde_json::to_vec(result).unwrap_or_default())
            }
            Err(e) => jsonrpc::error_bytes(Some(&id), e),
        };
        let headers = match self.headers_for(conn, "notifications/response", &Map::new()) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(url = %self.url, error = %e, "cannot answer a server request");
                return;
            }
        };
        match self
            .post(headers, body, Some(self.options.request_timeout), false)
            .await
        {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => {
                tracing::debug!(url = %self.url, status = %resp.status(), method = %method_name, "server refused our answer")
            }
            Err(e) => {
                tracing::debug!(url = %self.url, error = %e, method = %method_name, "could not answer a server request")
            }
        }
    }

    async fn read_body(&self, resp: Answer) -> Result<Vec<u8>, ClientError> {
        let limit = self.options.max_message_bytes;
        match http_body_util::Limited::new(resp.into_body(), limit)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes().into()),
            Err(e) => match e.downcast::<TransportError>() {
                Ok(source) => Err(self.body_error(*source)),
                Err(_) => Err(self.protocol(format!("answer larger than {limit} bytes"))),
            },
        }
    }

    async fn http_error(&self, resp: Answer) -> ClientError {
        let status = resp.status();
        let body = self.read_body(resp).await.unwrap_or_default();
        ClientError::Http {
            url: self.url.clone(),
            status,
            body: snippet(&body),
        }
    }

    /// A failure while reading an answer (the request's deadline covers the body too).
    fn body_error(&self, source: TransportError) -> ClientError {
        if source.timeout {
            ClientError::Timeout {
                url: self.url.clone(),
                timeout: self.options.request_timeout,
            }
        } else {
            ClientError::Unreachable {
                url: self.url.clone(),
                source,
            }
        }
    }

    fn protocol(&self, detail: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            detail: detail.to_string(),
        }
    }

    /// Listens for `notifications/tools/list_changed` from the server, calling
    /// `on_change` for each, until the server ends the stream or `max_for` passes
    /// (see [`McpClient::listen_lists_changed`]).
    pub async fn listen_tools_changed(
        &self,
        max_for: Duration,
        on_change: &mut (dyn FnMut() + Send),
    ) -> Result<ListenEnd, ClientError> {
        self.listen_lists_changed(max_for, &mut |kind| {
            if kind == ListKind::Tools {
                on_change();
            }
        })
        .await
    }

    /// Listens for the server's list-change notifications (tools, prompts,
    /// resources), calling `on_change` with the list of each, until the server ends
    /// the stream or `max_for` passes (see [`McpClient::listen_notifications`]; a
    /// 2026-07-28 server is asked for all three and honours those it serves).
    pub async fn listen_lists_changed(
        &self,
        max_for: Duration,
        on_change: &mut (dyn FnMut(ListKind) + Send),
    ) -> Result<ListenEnd, ClientError> {
        let filter = json!({"toolsListChanged": true, "promptsListChanged": true,
                            "resourcesListChanged": true});
        self.listen_notifications(max_for, filter, &mut |note: Bytes| {
            if let Some(kind) = list_changed(&note) {
                on_change(kind);
            }
        })
        .await
    }

    /// Passes every notification the server sends outside a request to `on_note`,
    /// until the server ends the stream or `max_for` passes: a legacy server's session
    /// GET stream (everything the session is sent), a 2026-07-28 server's
    /// `subscriptions/listen` opting into `filter` (a `SubscriptionFilter`).
    /// Connects first if needed; a legacy session the server forgot (404) is
    /// initialised again once.
    pub async fn listen_notifications(
        &self,
        max_for: Duration,
        filter: Value,
        on_note: &mut (dyn FnMut(Bytes) + Send),
    ) -> Result<ListenEnd, ClientError> {
        let conn = self.connect().await?;
        let outcome = match conn.version.era() {
            Era::Legacy => match self.listen_get(&conn, max_for, on_note).await {
                Err(ClientError::Http {
                    status: StatusCode::NOT_FOUND,
                    ..
                }) if conn.session.is_some() => {
                    let conn = self.reconnect(Some(&conn)).await?;
                    self.listen_get(&conn, max_for, on_note).await
                }
                other => other,
            },
            Era::Modern => {
                let mut params = Map::new();
                if filter.get("taskIds").is_some() {
                    // Task notifications need the tasks extension declared.
                    let mut caps = self.options.capabilities.clone();
                    if !caps.is_object() {
                        caps = json!({});
                    }
                    caps["extensions"][crate::tasks::EXTENSION] = json!({});
                    params.insert(
                        "_meta".into(),
                        json!({ crate::mcp::meta::CLIENT_CAPABILITIES: caps }),
                    );
                }
                params.insert("notifications".into(), filter);
                let opts = RequestOptions {
                    on_notification: Some(on_note),
                    timeout: Some(max_for),
                    ..RequestOptions::default()
                };
                match self
                    .request(method::SUBSCRIPTIONS_LISTEN, params, opts)
                    .await?
                {
                    Ok(_) => Ok(ListenEnd::Closed),
                    Err(e) => Err(ClientError::Handshake {
                        url: self.url.clone(),
                        error: Box::new(e),
                    }),
                }
            }
        };
        match outcome {
            Err(ClientError::Timeout { .. }) => Ok(ListenEnd::Deadline),
            other => other,
        }
    }

    /// The legacy session's GET stream, read until it ends or `max_for` passes.
    async fn listen_get(
        &self,
        conn: &Connection,
        max_for: Duration,
        on_note: &mut (dyn FnMut(Bytes) + Send),
    ) -> Result<ListenEnd, ClientError> {
        let mut h = self.headers_for(conn, "GET", &Map::new())?;
        h.remove(CONTENT_TYPE);
        h.insert(ACCEPT, HeaderValue::from_static(headers::TEXT_EVENT_STREAM));
        let work = async {
            let resp = self
                .exchange(http::Method::GET, h, Bytes::new(), Some(max_for))
                .await
                .map_err(|source| ClientError::Unreachable {
                    url: self.url.clone(),
                    source,
                })?;
            if !resp.status().is_success() {
                return Err(self.http_error(resp).await);
            }
            let mut decoder = sse::Decoder::new(self.options.max_message_bytes);
            let mut body = resp.into_body();
            while let Some(chunk) = next_chunk(&mut body).await {
                let chunk = chunk.map_err(|source| self.body_error(source))?;
                for event in decoder.push(&chunk).map_err(|e| self.protocol(e))? {
                    on_note(Bytes::from(event.data));
                }
            }
            Ok(ListenEnd::Closed)
        };
        match tokio::time::timeout(max_for, work).await {
            Ok(r) => r,
            Err(_) => Ok(ListenEnd::Deadline),
        }
    }

    /// Ends the legacy session (DELETE), if there is one.
    pub async fn close(&self) {
        let Some(conn) = self.connection() else {
            return;
        };
        if let Some(session) = &conn.session
            && let Ok(v) = HeaderValue::from_str(session)
        {
            let mut h = HeaderMap::clone(&self.options.extra_headers.get());
            h.insert(headers::name::MCP_SESSION_ID, v);
            let _ = self
                .exchange(
                    http::Method::DELETE,
                    h,
                    Bytes::new(),
                    Some(self.options.request_timeout),
                )
                .await;
        }
        if let Ok(mut s) = self.state.write() {
            *s = None;
        }
    }
}

/// The next data chunk of an answer body (trailers skipped); None at its end.
async fn next_chunk(body: &mut AnswerBody) -> Option<Result<Bytes, TransportError>> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Whether a serialized message is `notifications/tools/list_changed`.
/// The list a `notifications/*/list_changed` message is about, if it is one.
fn list_changed(data: &[u8]) -> Option<ListKind> {
    match Message::from_slice(data) {
        Ok(Message::Notification(n)) => match n.method.as_str() {
            method::TOOLS_LIST_CHANGED => Some(ListKind::Tools),
            method::PROMPTS_LIST_CHANGED => Some(ListKind::Prompts),
            method::RESOURCES_LIST_CHANGED => Some(ListKind::Resources),
            _ => None,
        },
        _ => None,
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_names_the_port_unless_it_is_the_default() {
        let host =
            |url: &str| host_header(&url.parse().unwrap()).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            host("http://10.0.0.5:9028/mcp").as_deref(),
            Some("10.0.0.5:9028")
        );
        assert_eq!(host("http://10.0.0.5/mcp").as_deref(), Some("10.0.0.5"));
        assert_eq!(host("http://10.0.0.5:80/mcp").as_deref(), Some("10.0.0.5"));
        assert_eq!(
            host("https://node.example:443/mcp").as_deref(),
            Some("node.example")
        );
        assert_eq!(
            host("http://[fd00::5]:9028/mcp").as_deref(),
            Some("[fd00::5]:9028")
        );
        assert_eq!(host("/mcp"), None);
    }
}
