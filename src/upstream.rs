//! The backend side: one pooled MCP client per pod, set up once and reused, and the
//! forwarding of a call with its progress and cancellation.
//!
//! Pods are addressed only by the IPs Kubernetes reported (or the static node list);
//! nothing a caller sends becomes a host name.
//!
//! Every request to a node server carries the gateway's own credential
//! ([`BackendCredentials`]: `BACKEND_TOKEN_FILE`, `BACKEND_EXTRA_HEADERS`), never the
//! caller's: the client's `Authorization` header stops at the gateway's edge, since
//! only the forwarded call's params travel on.

use bytes::Bytes;
use mcp_protocol::client::{
    ClientError, ClientOptions, Http, McpClient, OnRequest, Reply, RequestOptions, SharedHeaders,
    pooled,
};
use mcp_protocol::jsonrpc::RequestId;
use mcp_protocol::mcp::{ProtocolVersion, meta};
use mcp_protocol::server::{Outbound, ProgressSink};
use mcp_protocol::token_file::{self, TokenFile};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The MCP clients of the backend pods, keyed by pod IP.
pub struct Upstreams {
    /// How calls reach a pod: each pod's client keeps its own connections, since pods
    /// are plain `http://IP:PORT` and reqwest's per-request work (URL parse, redirect
    /// policy, its own timer) is a measurable part of a gateway hop.
    http: Http,
    /// For one-off exchanges (learning a pod's build, listening to it): keeps no idle
    /// connection, so learning 5,000 pods leaves no 5,000 sockets and buffers behind.
    probe_http: Http,
    port: u16,
    path: String,
    options: ClientOptions,
    clients: Mutex<HashMap<IpAddr, Arc<McpClient>>>,
    /// The tool definitions each pod's build lists (shared per build), so a new
    /// pooled client knows the `x-mcp-header` parameters without a tools/list of its
    /// own before its first 2026-07-28 call.
    known_tools: std::sync::RwLock<HashMap<IpAddr, Arc<Vec<Value>>>>,
    /// The capabilities each learned pod announced (equal values shared), so the
    /// gateway announces their union before any call has opened a pooled client.
    learned_capabilities: std::sync::RwLock<HashMap<IpAddr, Arc<Value>>>,
    /// Keeps the token-file watcher alive as long as the pool.
    _credentials: BackendCredentials,
}

/// The headers the gateway sends to every node server to prove itself: the static
/// extra headers plus `Authorization: Bearer` from the token file, rebuilt by a
/// background watcher when the file changes (the kubelet rotates projected tokens).
pub struct BackendCredentials {
    /// What every backend request carries (shared with the clients' options).
    headers: SharedHeaders,
    /// The token-file watcher, stopped on drop.
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl BackendCredentials {
    /// No credential: requests carry only the protocol's headers.
    pub fn none() -> Self {
        BackendCredentials {
            headers: SharedHeaders::default(),
            watcher: None,
        }
    }

    /// The credentials of `config`; starts the token-file watcher when called inside
    /// a tokio runtime.
    pub fn start(config: &crate::config::BackendAuth) -> Self {
        let mut fixed = http::HeaderMap::new();
        for (name, value) in &config.extra_headers {
            fixed.append(name.clone(), value.clone());
        }
        let Some(path) = &config.token_file else {
            return BackendCredentials {
                headers: SharedHeaders::new(fixed),
                watcher: None,
            };
        };
        let build = move |token: Option<Arc<str>>| {
            let mut h = fixed.clone();
            if let Some(t) = token
                && let Ok(mut v) = http::HeaderValue::from_str(&format!("Bearer {t}"))
            {
                v.set_sensitive(true);
                h.insert(http::header::AUTHORIZATION, v);
            }
            h
        };
        let file = TokenFile::load(path);
        if file.current().is_some() {
            tracing::info!(path = %path.display(), "sending the token of BACKEND_TOKEN_FILE to the node servers");
        }
        let headers = SharedHeaders::new(build(file.current()));
        let shared = headers.clone();
        let watcher = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let _guard = rt.enter();
            file.watch(token_file::POLL_INTERVAL, move |t| shared.set(build(t)))
        });
        BackendCredentials { headers, watcher }
    }
}

impl Drop for BackendCredentials {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

/// Why a forwarded call produced no backend answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The pod could not be reached or broke the protocol.
    #[error("{0}")]
    Backend(#[from] ClientError),
    /// The client cancelled the call.
    #[error("cancelled")]
    Cancelled,
}

impl Upstreams {
    /// Clients for backends on `port` at `path`, with `timeout` as the default deadline.
    pub fn new(port: u16, path: &str, timeout: Duration) -> Self {
        Self::with_credentials(port, path, timeout, BackendCredentials::none())
    }

    /// Like [`Upstreams::new`], every request carrying `credentials`.
    pub fn with_credentials(
        port: u16,
        path: &str,
        timeout: Duration,
        credentials: BackendCredentials,
    ) -> Self {
        let mut options = ClientOptions::new("k8s-aggregator-mcp", env!("CARGO_PKG_VERSION"));
        options.request_timeout = timeout;
        options.extra_headers = credentials.headers.clone();
        // The gateway relays these to the calling client (or refuses them at once
        // for a client that did not declare them), so a backend may always ask.
        options.capabilities = crate::relay::upstream_capabilities();
        Upstreams {
            http: pooled(Duration::from_secs(5), 64),
            probe_http: pooled(Duration::from_secs(5), 0),
            port,
            path: path.to_string(),
            options,
            clients: Mutex::new(HashMap::new()),
            known_tools: std::sync::RwLock::new(HashMap::new()),
            learned_capabilities: std::sync::RwLock::new(HashMap::new()),
            _credentials: credentials,
        }
    }

    /// The same clients, speaking `mode` to the backends (`BACKEND_PROTOCOL`).
    pub fn with_mode(mut self, mode: mcp_protocol::client::ClientMode) -> Self {
        self.options.mode = mode;
        self
    }

    /// The backend endpoint URL of a pod.
    pub fn url(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("http://{v4}:{}{}", self.port, self.path),
            IpAddr::V6(v6) => format!("http://[{v6}]:{}{}", self.port, self.path),
        }
    }

    /// The pooled client of a pod (created on first use; the handshake happens on the
    /// first request and is then reused).
    pub fn client(&self, ip: IpAddr) -> Arc<McpClient> {
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(ip)
            .or_insert_with(|| {
                let client = McpClient::new(self.http.clone(), self.url(ip), self.options.clone());
                if let Ok(known) = self.known_tools.read()
                    && let Some(tools) = known.get(&ip)
                {
                    client.learn_tools(tools);
                }
                Arc::new(client)
            })
            .clone()
    }

    /// Records what each pod's build lists (see `known_tools`); replaces the last set.
    pub fn set_known_tools(&self, tools: HashMap<IpAddr, Arc<Vec<Value>>>) {
        if let Ok(mut known) = self.known_tools.write() {
            *known = tools;
        }
    }

    /// A client of its own for one exchange with a pod (learning its tools, listening
    /// for changes), not pooled: dropped with its connection when done.
    pub fn probe(&self, ip: IpAddr) -> McpClient {
        McpClient::new(self.probe_http.clone(), self.url(ip), self.options.clone())
    }

    /// Forgets the clients of pods that are gone.
    pub fn retain(&self, live: impl Fn(&IpAddr) -> bool) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.retain(|ip, _| live(ip));
        }
        if let Ok(mut learned) = self.learned_capabilities.write() {
            learned.retain(|ip, _| live(ip));
        }
    }

    /// Records the capabilities a pod announced when its tools were learned.
    pub fn note_capabilities(&self, ip: IpAddr, capabilities: Value) {
        let Ok(mut learned) = self.learned_capabilities.write() else {
            return;
        };
        // Pods of one build announce the same: share the value of a neighbour that has
        // it (a bounded look, so the cost does not grow with the cluster).
        let shared = learned
            .values()
            .take(8)
            .find(|v| ***v == capabilities)
            .cloned()
            .unwrap_or_else(|| Arc::new(capabilities));
        learned.insert(ip, shared);
    }

    /// The capabilities each connected backend announced.
    pub fn capabilities(&self) -> Vec<Value> {
        let clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut all: Vec<Value> = clients
            .values()
            .filter_map(|c| c.connection().map(|conn| conn.capabilities.clone()))
            .collect();
        drop(clients);
        if let Ok(learned) = self.learned_capabilities.read() {
            let mut seen = std::collections::HashSet::new();
            for v in learned.values() {
                if seen.insert(Arc::as_ptr(v)) && !all.contains(v) {
                    all.push((**v).clone());
                }
            }
        }
        all
    }

    /// Number of pooled clients (for metrics).
    pub fn len(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Whether no client is pooled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The client side of one forwarded call: where its progress and messages go, its
/// cancellation and its deadline.
#[derive(Clone, Copy)]
pub struct Leg<'a> {
    /// Progress for the client, when it asked for it and can receive it.
    pub progress: Option<&'a ProgressSink>,
    /// The client request's outbound channel (log messages, questions).
    pub outbound: &'a Outbound,
    /// Cancelled when the client cancels.
    pub cancel: &'a CancellationToken,
    /// The call's deadline.
    pub timeout: Duration,
}

/// Forwards a tools/call to a backend and returns its answer and the revision it
/// spoke. Notifications the backend streams are relayed as they arrive (progress to
/// `progress`, log messages through `outbound`, filtered by the client's level), and
/// the backend's mid-call requests (elicitation, sampling, roots) are asked of the
/// calling client through `outbound` and answered in the backend's session; `cancel`
/// reaches the backend (legacy: `notifications/cancelled`; 2026-07-28: the upstream
/// stream is closed).
/// `params` are left as sent (idempotent edits), so a caller can send them again.
pub async fn forward(
    client: Arc<McpClient>,
    params: &mut Map<String, Value>,
    leg: &Leg<'_>,
) -> Result<(Reply, ProtocolVersion), ForwardError> {
    let Leg {
        progress,
        outbound,
        cancel,
        timeout,
    } = *leg;
    prepare(params, outbound);
    let mut relay = |note: Bytes| {
        if crate::relay::is_progress(&note) {
            if let Some(sink) = progress {
                sink.send_raw(note);
            }
        } else {
            outbound.relay(note);
        }
    };
    let ask = crate::relay::asker(outbound.clone(), timeout);
    forward_with(client, params, &mut relay, &ask, cancel, timeout).await
}

/// The params of a call as a backend is sent them: the caller's own protocol `_meta`
/// replaced by what the backend needs to know about the calling client.
pub fn prepare(params: &mut Map<String, Value>, outbound: &Outbound) {
    strip_protocol_meta(params);
    crate::relay::pass_client_meta(params, outbound);
}

/// [`forward`] with the relay spelled out: `on_note` receives every notification the
/// backend streams, `on_request` answers its mid-call requests; `params` are sent as
/// they are (see [`prepare`]).
pub async fn forward_with(
    client: Arc<McpClient>,
    params: &mut Map<String, Value>,
    on_note: &mut (dyn FnMut(Bytes) + Send),
    on_request: &OnRequest,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Result<(Reply, ProtocolVersion), ForwardError> {
    let id = client.next_id();
    let opts = RequestOptions {
        id: Some(id.clone()),
        on_notification: Some(on_note),
        timeout: Some(timeout),
        on_request: Some(on_request),
    };
    // If this future is dropped mid-call (the client went away), the guard tells a
    // legacy backend; a 2026-07-28 backend sees its stream close.
    let mut guard = CancelOnDrop {
        client: Some(client.clone()),
        id: id.clone(),
    };
    let outcome = tokio::select! {
        reply = client.call_tool_mut(params, opts) => reply.map_err(ForwardError::from),
        _ = cancel.cancelled() => Err(ForwardError::Cancelled),
    };
    if !matches!(outcome, Err(ForwardError::Cancelled)) {
        guard.client = None;
    }
    drop(guard);
    let reply = outcome?;
    let version = client
        .connection()
        .map_or(ProtocolVersion::LATEST_LEGACY, |c| c.version);
    Ok((reply, version))
}

/// The `_meta` keys that describe the caller's own protocol exchange with the gateway;
/// the upstream client sets its own.
fn strip_protocol_meta(params: &mut Map<String, Value>) {
    if let Some(Value::Object(m)) = params.get_mut("_meta") {
        // One pass, order kept: cheaper than a removal (and a shift) per key.
        m.retain(|key, _| {
            !matches!(
                key.as_str(),
                meta::PROTOCOL_VERSION | meta::CLIENT_CAPABILITIES | meta::CLIENT_INFO
            )
        });
    }
}

/// Sends a legacy `notifications/cancelled` for a call abandoned mid-flight.
struct CancelOnDrop {
    client: Option<Arc<McpClient>>,
    id: RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let id = self.id.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = client.cancel(&id, "the client cancelled the call").await {
                    tracing::debug!(url = client.url(), error = %e, "could not forward the cancellation");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6_and_clients_are_pooled() {
        let u = Upstreams::new(9028, "/mcp", Duration::from_secs(1));
        assert_eq!(
            u.url("10.0.0.1".parse().unwrap()),
            "http://10.0.0.1:9028/mcp"
        );
        assert_eq!(
            u.url("fd00::1".parse().unwrap()),
            "http://[fd00::1]:9028/mcp"
        );
        let a = u.client("10.0.0.1".parse().unwrap());
        let b = u.client("10.0.0.1".parse().unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        u.client("10.0.0.2".parse().unwrap());
        u.retain(|ip| ip.to_string() == "10.0.0.2");
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn protocol_meta_is_not_forwarded_but_progress_token_is() {
        let mut p = serde_json::json!({"name":"t","_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{},
            "progressToken":"tok","custom":1}})
        .as_object()
        .cloned()
        .unwrap();
        strip_protocol_meta(&mut p);
        assert_eq!(
            p["_meta"],
            serde_json::json!({"progressToken":"tok","custom":1})
        );
    }
}
