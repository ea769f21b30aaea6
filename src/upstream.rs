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
    ClientError, ClientOptions, McpClient, Reply, RequestOptions, SharedHeaders, http_client,
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
    http: reqwest::Client,
    /// For one-off exchanges (learning a pod's build, listening to it): keeps no idle
    /// connection, so learning 5,000 pods leaves no 5,000 sockets and buffers behind.
    probe_http: reqwest::Client,
    port: u16,
    path: String,
    options: ClientOptions,
    clients: Mutex<HashMap<IpAddr, Arc<McpClient>>>,
    /// The tool definitions each pod's build lists (shared per build), so a new
    /// pooled client knows the `x-mcp-header` parameters without a tools/list of its
    /// own before its first 2026-07-28 call.
    known_tools: std::sync::RwLock<HashMap<IpAddr, Arc<Vec<Value>>>>,
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
            http: http_client(Duration::from_secs(5)),
            probe_http: reqwest::Client::builder()
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .no_proxy()
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            port,
            path: path.to_string(),
            options,
            clients: Mutex::new(HashMap::new()),
            known_tools: std::sync::RwLock::new(HashMap::new()),
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

/// Forwards a tools/call to a backend and returns its answer and the revision it
/// spoke. Notifications the backend streams are relayed as they arrive (progress to
/// `progress`, log messages through `outbound`, filtered by the client's level), and
/// the backend's mid-call requests (elicitation, sampling, roots) are asked of the
/// calling client through `outbound` and answered in the backend's session; `cancel`
/// reaches the backend (legacy: `notifications/cancelled`; 2026-07-28: the upstream
/// stream is closed).
pub async fn forward(
    client: Arc<McpClient>,
    mut params: Map<String, Value>,
    progress: Option<&ProgressSink>,
    outbound: &Outbound,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Result<(Reply, ProtocolVersion), ForwardError> {
    strip_protocol_meta(&mut params);
    crate::relay::pass_client_meta(&mut params, outbound);
    let id = client.next_id();
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
    let opts = RequestOptions {
        id: Some(id.clone()),
        on_notification: Some(&mut relay as &mut (dyn FnMut(Bytes) + Send)),
        timeout: Some(timeout),
        on_request: Some(&ask),
    };
    // If this future is dropped mid-call (the client went away), the guard tells a
    // legacy backend; a 2026-07-28 backend sees its stream close.
    let mut guard = CancelOnDrop {
        client: Some(client.clone()),
        id: id.clone(),
    };
    let outcome = tokio::select! {
        reply = client.call_tool(params, opts) => reply.map_err(ForwardError::from),
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
        for key in [
            meta::PROTOCOL_VERSION,
            meta::CLIENT_CAPABILITIES,
            meta::CLIENT_INFO,
        ] {
            m.shift_remove(key);
        }
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
