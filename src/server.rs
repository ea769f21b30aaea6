//! The gateway process: start-up (discover nodes, learn tools), the HTTP routes
//! (`/mcp`, `/healthz`, `/readyz`, `/metrics`) and the background task that keeps the
//! upstream pool and the catalog in step with the cluster.

use http::{Method, Request, Response, StatusCode};
use mcp_protocol::body::{self, Body};
use mcp_protocol::mcp::Implementation;
use mcp_protocol::server::{McpServer, ServerConfig};
use mcp_protocol::session::SessionConfig;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::auth::{AuthError, Authenticator, BoxFuture, Caller, Challenge, TokenVerifier};
use crate::catalog::Catalog;
use crate::cluster::{Discovery, NodeMap};
use crate::config::Config;
use crate::gateway::{Gateway, Handler};
use crate::metrics::{Gauges, Metrics};
use crate::policy::PolicyStore;
use crate::upstream::Upstreams;

/// `ttlMs` of the gateway's discover and list answers.
const LIST_TTL_MS: u64 = 60_000;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] crate::cluster::Error),
    /// The Service has no ready endpoint.
    #[error(
        "no ready backend endpoint for Service \"{service}\" in namespace \"{namespace}\": is the node-server DaemonSet running? (STARTUP_WAIT_SECONDS lets the gateway wait for one)"
    )]
    NoBackends {
        /// Service name.
        service: String,
        /// Namespace.
        namespace: String,
    },
    /// No backend would list its tools.
    #[error("could not learn the tools: {0}")]
    NoTools(String),
    /// POLICY_FILE could not be loaded.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

/// The running gateway's shared parts.
#[derive(Clone)]
pub struct App {
    /// The MCP endpoint.
    pub mcp: McpServer<Handler>,
    /// The routing core.
    pub gateway: Arc<Gateway>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The backend clients.
    pub upstreams: Arc<Upstreams>,
    /// Who may call `/mcp` (open unless an AUTH_MODE is set).
    pub auth: Authenticator,
    /// How often the policy file is checked for changes.
    pub policy_reload: Duration,
}

/// Waits for discovery and learns the tools: what the seed did at start-up, but
/// trying every ready backend rather than only the first.
pub async fn start(config: &Config, discovery: Discovery) -> Result<App, StartError> {
    start_with(config, discovery, None).await
}

/// [`start`] with the Kubernetes client to use for TokenReview (the one discovery
/// uses); without one, Kubernetes mode infers its own (`STATIC_NODES` runs have none).
pub async fn start_with(
    config: &Config,
    discovery: Discovery,
    kube: Option<kube::Client>,
) -> Result<App, StartError> {
    let policy = Arc::new(match &config.policy_file {
        Some(path) => {
            let store = PolicyStore::load(path)?;
            tracing::info!(path = %path.display(), rules = store.current().rule_count(), "authorization policy loaded");
            store
        }
        None => {
            if !config.auth_modes.is_open() {
                tracing::warn!(
                    "no POLICY_FILE: every authenticated caller may call every tool on every node"
                );
            }
            PolicyStore::allow_all()
        }
    });
    let auth = kubernetes_authenticator(config, kube).await?;
    let sync_deadline = Duration::from_secs(30).max(config.startup_wait);
    let started = Instant::now();
    discovery.wait_synced(sync_deadline).await?;
    let upstreams = Arc::new(Upstreams::new(
        config.backend_port,
        &config.backend_path,
        config.call_timeout,
    ));
    let mut changes = discovery.changes();
    let tools = loop {
        let nodes = discovery.nodes();
        if nodes.ready().next().is_some() {
            match learn_tools(&upstreams, &nodes).await {
                Ok(tools) => break tools,
                Err(e) if started.elapsed() >= config.startup_wait => {
                    return Err(StartError::NoTools(e));
                }
                Err(e) => tracing::warn!(error = %e, "no backend listed its tools yet; waiting"),
            }
        } else if started.elapsed() >= config.startup_wait {
            return Err(StartError::NoBackends {
                service: config.service_name.clone(),
                namespace: config.service_namespace.clone(),
            });
        }
        let left = config
            .startup_wait
            .saturating_sub(started.elapsed())
            .min(Duration::from_secs(2));
        let _ = tokio::time::timeout(left, changes.changed()).await;
    };
    let catalog = Catalog::build(tools, LIST_TTL_MS);
    log_catalog(&catalog);
    if catalog.is_empty() {
        return Err(StartError::NoTools(
            "the backend offers no tool the gateway can serve".into(),
        ));
    }
    let metrics = Arc::new(Metrics::default());
    let gateway = Arc::new(
        Gateway::new(
            catalog,
            discovery,
            upstreams.clone(),
            config.call_timeout,
            metrics.clone(),
        )
        .with_access(policy, config.audit_arguments),
    );
    let mut server_config = ServerConfig::new("k8s-aggregator-mcp", env!("CARGO_PKG_VERSION"));
    server_config.info = Implementation {
        name: "k8s-aggregator-mcp".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        title: Some("Kubernetes node tools gateway".into()),
    };
    server_config.instructions = Some(
        "Every tool runs on one Kubernetes node: pass the node's name in the required `node` argument. \
         An unknown node name is answered with the list of nodes that can be used."
            .into(),
    );
    server_config.origins = config.origins.clone();
    server_config.max_body_bytes = config.max_body_bytes;
    server_config.list_ttl_ms = LIST_TTL_MS;
    server_config.sessions = SessionConfig {
        enabled: true,
        idle_timeout: config.session_idle,
        max_sessions: config.max_sessions,
    };
    let mcp = McpServer::new(server_config, Handler(gateway.clone()));
    Ok(App {
        mcp,
        gateway,
        metrics,
        upstreams,
        auth,
        policy_reload: config.policy_reload,
    })
}

/// The authenticator of the Kubernetes mode (TokenReview), or the open one when no
/// mode is on. (The OAuth mode's verifier joins this list where the modes are merged;
/// until then an `oauth` mode refuses every token, so the gateway is never left open.)
async fn kubernetes_authenticator(
    config: &Config,
    kube: Option<kube::Client>,
) -> Result<Authenticator, StartError> {
    if config.auth_modes.is_open() {
        return Ok(Authenticator::open());
    }
    let mut verifiers: Vec<Arc<dyn TokenVerifier>> = Vec::new();
    if config.auth_modes.kubernetes {
        let client = match kube {
            Some(c) => c,
            None => crate::cluster::infer_client().await?,
        };
        tracing::info!(audiences = ?config.kubernetes_auth.audiences, "AUTH_MODE=kubernetes: callers' tokens are checked with TokenReview");
        verifiers.push(crate::auth::kubernetes::verifier(config, client));
    }
    if config.auth_modes.oauth {
        tracing::error!(
            "AUTH_MODE=oauth: this build has no OAuth verifier; OAuth tokens are refused"
        );
        verifiers.push(Arc::new(NoOAuth));
    }
    Ok(Authenticator::new(verifiers, Challenge::default()))
}

/// Stands in for the OAuth mode in a build without it: refuses every token.
struct NoOAuth;

impl TokenVerifier for NoOAuth {
    fn verify(&self, _token: &str) -> BoxFuture<Result<Caller, AuthError>> {
        Box::pin(async {
            Err(AuthError::Invalid(
                "OAuth access tokens are not accepted by this gateway build".into(),
            ))
        })
    }
}

/// Lists the tools of the first ready backend that answers.
pub async fn learn_tools(upstreams: &Upstreams, nodes: &NodeMap) -> Result<Vec<Value>, String> {
    let mut errors = Vec::new();
    for endpoint in nodes.ready() {
        let client = upstreams.client(endpoint.ip);
        match client.list_tools().await {
            Ok(Ok(tools)) => {
                let version = client
                    .connection()
                    .map(|c| c.version.as_str())
                    .unwrap_or("?");
                tracing::info!(node = %endpoint.node, ip = %endpoint.ip, count = tools.len(), %version, "learned the backend tools");
                return Ok(tools);
            }
            Ok(Err(e)) => errors.push(format!("{} ({}): {e}", endpoint.node, endpoint.ip)),
            Err(e) => errors.push(format!("{} ({}): {e}", endpoint.node, endpoint.ip)),
        }
    }
    Err(if errors.is_empty() {
        "no ready backend".into()
    } else {
        errors.join("; ")
    })
}

fn log_catalog(catalog: &Catalog) {
    for s in &catalog.skipped {
        tracing::warn!(tool = %s.name, reason = %s.reason, "backend tool not served");
    }
    tracing::info!(tools = ?catalog.names(), "serving tools");
}

/// Keeps the upstream pool and the catalog in step with the cluster: forgets clients of
/// pods that left, and when new pods appear re-learns the tools (a DaemonSet rollout may
/// change them), telling clients if the list changed.
pub async fn follow_cluster(app: App) {
    let mut changes = app.gateway.discovery().changes();
    let mut known: HashSet<std::net::IpAddr> = app
        .gateway
        .discovery()
        .nodes()
        .ready()
        .map(|e| e.ip)
        .collect();
    while changes.changed().await.is_ok() {
        let nodes = changes.borrow_and_update().clone();
        let live: HashSet<_> = nodes.ready().map(|e| e.ip).collect();
        app.upstreams.retain(|ip| live.contains(ip));
        let arrived = live.difference(&known).count();
        known = live;
        if arrived == 0 {
            continue;
        }
        match learn_tools(&app.upstreams, &nodes).await {
            Ok(tools) if !app.gateway.catalog().same_source(&tools) => {
                let catalog = Catalog::build(tools, LIST_TTL_MS);
                if catalog.is_empty() {
                    tracing::warn!(
                        "the backends now offer no servable tool; keeping the previous catalog"
                    );
                    continue;
                }
                log_catalog(&catalog);
                app.gateway.set_catalog(catalog);
                app.mcp.notify_tools_changed();
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "could not refresh the tools"),
        }
    }
}

/// Routes one HTTP request.
pub async fn route(app: App, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (_, "/mcp" | "/mcp/") => mcp(&app, req).await,
        (&Method::GET, "/healthz") => body::text_response(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readyz(&app),
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(body::full(app.metrics.render(gauges(&app))));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => body::text_response(
            StatusCode::NOT_FOUND,
            "not found: the MCP endpoint is /mcp\n",
        ),
    }
}

/// The MCP endpoint behind authentication: the caller goes into the request's
/// extensions for the handler; a refused request never reaches the MCP layer.
async fn mcp(app: &App, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
    match app.auth.authenticate(req.headers()).await {
        Ok(caller) => {
            req.extensions_mut().insert(Arc::new(caller));
            app.mcp.handle(req).await
        }
        Err(e) => {
            tracing::debug!(reason = e.label(), "request refused: {e}");
            app.auth.refusal(&e)
        }
    }
}

fn gauges(app: &App) -> Gauges {
    let nodes = app.gateway.discovery().nodes();
    Gauges {
        nodes: nodes.len(),
        ready_nodes: nodes.ready().count(),
        tools: app.gateway.catalog().names().len(),
        sessions: app.mcp.session_count(),
        discovery_healthy: app.gateway.discovery().status().healthy,
    }
}

/// Ready when discovery has synced and the catalog is loaded. A watch that is down
/// keeps the gateway ready (it serves the last known map) but the answer says so.
fn readyz(app: &App) -> Response<Body> {
    let status = app.gateway.discovery().status();
    let nodes = app.gateway.discovery().nodes();
    let catalog = app.gateway.catalog();
    let ready = status.synced && !catalog.is_empty();
    let stale_for = status.unhealthy_since.map(|t| t.elapsed().as_secs());
    let report = json!({
        "ready": ready,
        "discovery": {
            "synced": status.synced,
            "current": status.healthy,
            "staleSeconds": stale_for,
            "lastError": status.last_error,
        },
        "nodes": nodes.len(),
        "readyNodes": nodes.ready().count(),
        "tools": catalog.names().len(),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    body::json_response(code, serde_json::to_vec(&report).unwrap_or_default())
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn serve(app: App, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let follower = tokio::spawn(follow_cluster(app.clone()));
    let policy_follower = tokio::spawn({
        let store = app.gateway.policy().clone();
        let mcp = app.mcp.clone();
        let every = app.policy_reload;
        // A new policy may change what each caller sees: tell clients to list again.
        async move { crate::policy::follow_file(store, every, move || mcp.notify_tools_changed()).await }
    });
    let mcp = app.mcp.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        mcp.shutdown();
    };
    mcp_protocol::serve::serve(
        listener,
        move |req| route(app.clone(), req),
        shutdown,
        Duration::from_secs(20),
    )
    .await;
    follower.abort();
    policy_follower.abort();
}
