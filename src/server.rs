//! The gateway process: start-up (discover nodes, learn tools), the HTTP routes
//! (`/mcp`, `/healthz`, `/readyz`, `/metrics`) and the background task that keeps the
//! upstream pool and the catalog in step with the cluster.

use http::{Method, Request, Response, StatusCode};
use mcp_protocol::body::{self, Body};
use mcp_protocol::mcp::Implementation;
use mcp_protocol::seal::Sealer;
use mcp_protocol::serve::ConnectionLimits;
use mcp_protocol::server::{McpServer, RpcMethod, ServerConfig, SessionOwner};
use mcp_protocol::session::SessionConfig;
use mcp_protocol::telemetry::{Spanned, Telemetry};
use mcp_protocol::tracecontext::{HeaderTraceContext, TraceContext};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::auth::oauth::{self, OAuthVerifier};
use crate::auth::{Authenticator, CallerSource, Challenge, TokenVerifier};
use crate::builds::Builds;
use crate::catalog::Catalog;
use crate::cluster::{Discovery, NodeMap};
use crate::config::{CatalogConfig, Config};
use crate::gateway::{Gateway, Handler};
use crate::learn::{Learner, NotReady};
use crate::metrics::{Gauges, Metrics};
use crate::policy::PolicyStore;
use crate::upstream::{BackendCredentials, Upstreams};

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
    /// An authentication mode cannot be set up.
    #[error("authentication: {0}")]
    Auth(String),
    /// POLICY_FILE could not be loaded.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// SESSION_KEYS_FILE could not be loaded.
    #[error("SESSION_KEYS_FILE: {0}")]
    SessionKeys(#[from] mcp_protocol::seal::SealError),
    /// The OTLP trace exporter could not start.
    #[error(transparent)]
    Telemetry(#[from] mcp_protocol::telemetry::TelemetryError),
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
    /// Connection caps and deadlines of the listener.
    pub connections: ConnectionLimits,
    /// The RFC 9728 Protected Resource Metadata, in oauth mode.
    pub resource_metadata: Option<Arc<ResourceMetadata>>,
    /// Whether `/metrics` needs the same authentication as `/mcp` (METRICS_AUTH).
    pub metrics_auth: bool,
    /// How often the policy file is checked for changes.
    pub policy_reload: Duration,
    /// The learner of the pods' builds, taken by [`follow_cluster`] when serving starts.
    pub learner: Arc<std::sync::Mutex<Option<Learner>>>,
    /// The builds and conflicts as last published, for `/readyz`.
    pub catalog_report: Arc<std::sync::RwLock<Value>>,
    /// How the catalog is learned and the fan-out tool's settings.
    pub catalog_config: CatalogConfig,
    /// The keys sealing session ids (and `requestState`), shared by every replica
    /// given the same SESSION_KEYS_FILE.
    pub sealer: Arc<Sealer>,
    /// Stops re-reading the key file when the gateway stops.
    pub stop: tokio_util::sync::CancellationToken,
    /// How long a shutdown waits for requests in flight (SHUTDOWN_DRAIN_SECONDS).
    pub drain: Duration,
    /// The trace exporter, when OTLP export is on (flushed when serving stops).
    pub telemetry: Option<Arc<Telemetry>>,
}

/// The sealing keys: SESSION_KEYS_FILE, re-read as it rotates; else a random key of
/// this process (its sessions open on this replica only).
fn session_keys(config: &Config) -> Result<Arc<Sealer>, StartError> {
    match &config.session_keys_file {
        Some(path) => {
            let sealer = Sealer::from_file(path)?;
            tracing::info!(path = %path.display(), "session ids sealed with the keys of SESSION_KEYS_FILE: any replica sharing them serves any session");
            Ok(sealer)
        }
        None => {
            tracing::info!(
                "no SESSION_KEYS_FILE: session ids sealed with a random key of this process, so they open on this replica only (run one replica, or set SESSION_KEYS_FILE)"
            );
            Ok(Sealer::random())
        }
    }
}

/// The Protected Resource Metadata document and the paths it is served on.
pub struct ResourceMetadata {
    /// The serialized document.
    pub document: bytes::Bytes,
    /// `/.well-known/oauth-protected-resource` and its path-suffixed forms.
    pub paths: Vec<String>,
}

/// The authentication of `/mcp` for `config`: a verifier per enabled mode (any one
/// accepting a token is enough); Kubernetes mode uses `kube` (else infers a client). Key sets are loaded in the background right away so
/// a misconfigured issuer shows in the log at start-up.
pub async fn build_authenticator(
    config: &Config,
    kube: Option<kube::Client>,
) -> Result<Authenticator, StartError> {
    let mut verifiers: Vec<Arc<dyn TokenVerifier>> = Vec::new();
    let mut challenge = Challenge::default();
    if let Some(oauth) = config.oauth.as_ref().filter(|_| config.auth_modes.oauth) {
        let verifier = OAuthVerifier::new(oauth).map_err(|e| StartError::Auth(e.to_string()))?;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            for v in verifier.verifiers() {
                let v = v.clone();
                rt.spawn(async move {
                    match v.prefetch().await {
                        Ok(n) => tracing::info!(issuer = %v.issuer(), keys = n, "OAuth: loaded the issuer's keys"),
                        Err(e) => tracing::warn!(issuer = %v.issuer(), error = %e, "OAuth: cannot load the issuer's keys yet; tokens are refused (503) until they load"),
                    }
                });
            }
        }
        challenge = oauth::challenge(oauth);
        verifiers.push(Arc::new(verifier));
    }
    if config.auth_modes.kubernetes {
        let client = match kube {
            Some(c) => c,
            None => crate::cluster::infer_client().await?,
        };
        tracing::info!(audiences = ?config.kubernetes_auth.audiences, "AUTH_MODE=kubernetes: callers' tokens are checked with TokenReview");
        verifiers.push(crate::auth::kubernetes::verifier(config, client));
    }
    Ok(Authenticator::new(verifiers, challenge))
}

/// The metadata document when oauth mode is on.
fn resource_metadata(config: &Config) -> Option<Arc<ResourceMetadata>> {
    let oauth = config.oauth.as_ref().filter(|_| config.auth_modes.oauth)?;
    Some(Arc::new(ResourceMetadata {
        document: oauth::metadata_document(oauth),
        paths: oauth::metadata_paths(&oauth.resource),
    }))
}

/// Waits for discovery and learns the tools: refuses to start without a ready backend
/// (after STARTUP_WAIT_SECONDS), and learns the tools from any ready backend that answers.
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
    let auth = build_authenticator(config, kube).await?;
    let sealer = session_keys(config)?;
    let sync_deadline = Duration::from_secs(30).max(config.startup_wait);
    let started = Instant::now();
    discovery.wait_synced(sync_deadline).await?;
    let upstreams = Arc::new(
        Upstreams::with_credentials(
            config.backend_port,
            &config.backend_path,
            config.call_timeout,
            BackendCredentials::start(&config.backend_auth),
        )
        .with_mode(config.backend_mode),
    );
    let mut learner = Learner::new(upstreams.clone(), config.catalog.clone());
    let wait = config.startup_wait.saturating_sub(started.elapsed());
    learner
        .until_ready(&discovery, wait)
        .await
        .map_err(|e| match e {
            NotReady::NoBackends => StartError::NoBackends {
                service: config.service_name.clone(),
                namespace: config.service_namespace.clone(),
            },
            NotReady::NoTools(why) => StartError::NoTools(why),
        })?;
    let (catalog, report) = learner.catalog();
    log_catalog(&catalog);
    if catalog.is_empty() {
        return Err(StartError::NoTools(
            "the backend offers no tool the gateway can serve".into(),
        ));
    }
    let metrics = Arc::new(Metrics::with_node_labels(config.metrics_node_labels));
    let telemetry = config.traces.start("k8s-aggregator-mcp")?.map(Arc::new);
    let gateway = Arc::new(
        Gateway::new(
            catalog,
            discovery,
            upstreams.clone(),
            config.call_timeout,
            metrics.clone(),
        )
        .with_access(policy, config.audit_arguments)
        .with_fanout(config.catalog.fanout.clone())
        .with_nodes_tool(config.catalog.nodes_tool.clone())
        .with_parked(crate::parked::ParkedCalls::new(
            sealer.clone(),
            config.max_waiting_calls,
        ))
        .with_tasks(crate::tasks::Tasks::new(sealer.clone()))
        .with_telemetry(telemetry.clone()),
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
    server_config.body_budget_bytes = config.body_budget_bytes;
    server_config.body_min_rate = config.body_min_rate;
    server_config.hosts = config.hosts.clone();
    server_config.caps = config.caps.clone();
    server_config.list_ttl_ms = LIST_TTL_MS;
    server_config.sessions = SessionConfig {
        enabled: true,
        idle_timeout: config.session_idle,
        max_sessions: config.max_sessions,
        max_lifetime: config.session_max_lifetime,
        max_per_owner: config.max_sessions_per_client,
        keys: Some(sealer.clone()),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    sealer.watch(stop.clone());
    let mcp = McpServer::new(server_config, Handler(gateway.clone()));
    announce_capabilities(&mcp, &upstreams);
    Ok(App {
        mcp,
        gateway,
        metrics,
        upstreams,
        connections: config.connections.clone(),
        auth,
        resource_metadata: resource_metadata(config),
        metrics_auth: config.metrics_auth,
        policy_reload: config.policy_reload,
        learner: Arc::new(std::sync::Mutex::new(Some(learner))),
        catalog_report: Arc::new(std::sync::RwLock::new(report)),
        catalog_config: config.catalog.clone(),
        sealer,
        stop,
        drain: config.shutdown_drain,
        telemetry,
    })
}

/// The catalog served over `nodes`: the union of the builds (see [`crate::builds`])
/// and the gateway's own tools; with the report `/readyz` shows.
pub fn build_catalog(builds: &Builds, nodes: &NodeMap, config: &CatalogConfig) -> (Catalog, Value) {
    let union = builds.union(nodes);
    let mut gateway_tools: Vec<Value> = config
        .fanout
        .iter()
        .map(crate::fanout::definition)
        .collect();
    gateway_tools.extend(config.nodes_tool.as_deref().map(crate::nodemap::definition));
    let mut report = builds.report(nodes);
    report["conflicts"] = union
        .conflicts
        .iter()
        .map(|c| {
            json!({
                "tool": c.tool,
                "servedFrom": c.served,
                "servedNodes": c.served_nodes,
                "otherNodes": c.other_nodes,
            })
        })
        .collect();
    let ready: Vec<String> = nodes.ready().map(|e| e.node.clone()).collect();
    let node_enum =
        (!ready.is_empty() && ready.len() <= config.node_enum_max).then_some(&ready[..]);
    let catalog = Catalog::build_with(
        union.tools,
        gateway_tools,
        union.availability,
        LIST_TTL_MS,
        config.page_size,
        node_enum,
    );
    (catalog, report)
}

/// Announces the union of the connected backends' capabilities (see
/// [`crate::capabilities`]) to clients that initialize or discover from now on.
fn announce_capabilities(mcp: &McpServer<Handler>, upstreams: &Upstreams) {
    let backends = upstreams.capabilities();
    let announced = crate::capabilities::union(&backends);
    if *mcp.capabilities() != announced {
        tracing::info!(capabilities = %announced, "announcing the backends' capabilities");
        mcp.set_capabilities(announced);
    }
}

fn log_catalog(catalog: &Catalog) {
    for s in &catalog.skipped {
        tracing::warn!(tool = %s.name, reason = %s.reason, "backend tool not served");
    }
    tracing::info!(tools = ?catalog.names(), "serving tools");
}

/// Keeps the upstream pool and the catalog in step with the cluster ([`Learner::run`]):
/// publishes each new catalog, telling clients only when the served list really
/// changed.
pub async fn follow_cluster(app: App) {
    let learner = app.learner.lock().ok().and_then(|mut l| l.take());
    let Some(learner) = learner else {
        return;
    };
    let discovery = app.gateway.discovery().clone();
    let lists = tokio::spawn(follow_lists(app.clone(), learner.lists_changed()));
    let _stop_lists = AbortOnDrop(lists);
    learner
        .run(discovery, move |catalog, report| {
            if let Ok(mut r) = app.catalog_report.write() {
                *r = report;
            }
            if catalog.is_empty() {
                tracing::warn!(
                    "the backends now offer no servable tool; keeping the previous catalog"
                );
                return;
            }
            let changed = !app.gateway.catalog().same_tools(&catalog);
            if changed {
                log_catalog(&catalog);
            }
            // Always swap: who serves what may have changed even when the list did not.
            app.gateway.set_catalog(catalog);
            announce_capabilities(&app.mcp, &app.upstreams);
            if changed {
                app.mcp.notify_tools_changed();
            }
            app.metrics.record_catalog_rebuild(changed);
        })
        .await
}

/// A pod said its prompt or resource list changed: the cached lists are dropped and
/// clients told (the gateway's own lists are the backends' lists, per node).
async fn follow_lists(
    app: App,
    mut changes: tokio::sync::watch::Receiver<mcp_protocol::session::ListChanges>,
) {
    let mut last = *changes.borrow();
    while changes.changed().await.is_ok() {
        let now = *changes.borrow_and_update();
        if now.prompts != last.prompts {
            app.gateway.prompts.forget();
            app.mcp.notify_prompts_changed();
        }
        if now.resources != last.resources {
            app.gateway.resources.forget();
            app.mcp.notify_resources_changed();
        }
        last = now;
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts the discovery watch coming back after it went down.
async fn count_watch_restarts(app: App) {
    let mut status = app.gateway.discovery().status_changes();
    let mut was_down = false;
    while status.changed().await.is_ok() {
        let healthy = status.borrow_and_update().healthy;
        if healthy && was_down {
            app.metrics.record_watch_restart();
        }
        was_down = !healthy && status.borrow().synced;
    }
}

/// Routes one HTTP request.
pub async fn route(app: Arc<App>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (_, "/mcp" | "/mcp/") => mcp(&app, req).await,
        (&Method::GET, "/healthz") => body::text_response(StatusCode::OK, "ok\n"),
        (&Method::GET, path) if path.starts_with(oauth::METADATA_PATH) => {
            protected_resource_metadata(&app, path)
        }
        (&Method::GET, "/readyz") => readyz(&app),
        (&Method::GET, "/metrics") => {
            if app.metrics_auth
                && let Err(e) = app.auth.authenticate(req.headers()).await
            {
                return app.auth.refusal(&e);
            }
            let mut r = Response::new(body::full(app.metrics.render(gauges(&app))));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
        _ => body::text_response(
            StatusCode::NOT_FOUND,
            "not found: the MCP endpoint is /mcp\n",
        ),
    }
}

/// RFC 9728 metadata on its well-known paths, in oauth mode only (404 otherwise). It
/// is public and read by browser-based clients, so any origin may read it.
fn protected_resource_metadata(app: &App, path: &str) -> Response<Body> {
    match &app.resource_metadata {
        Some(m) if m.paths.iter().any(|p| p == path) => {
            let mut r = body::json_response(StatusCode::OK, m.document.clone());
            r.headers_mut().insert(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                http::HeaderValue::from_static("*"),
            );
            r
        }
        Some(_) => body::text_response(
            StatusCode::NOT_FOUND,
            "not found: the metadata is at /.well-known/oauth-protected-resource\n",
        ),
        None => body::text_response(
            StatusCode::NOT_FOUND,
            "not found: OAuth is not enabled here\n",
        ),
    }
}

/// The MCP endpoint behind authentication: the caller goes into the request's
/// extensions for the handler; a refused request never reaches the MCP layer.
async fn mcp(app: &App, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
    match app.auth.authenticate(req.headers()).await {
        Ok(caller) => {
            if caller.source != CallerSource::Anonymous {
                // Session caps count per caller, not per address (many callers may
                // come through one proxy).
                req.extensions_mut().insert(SessionOwner(caller.key()));
            }
            req.extensions_mut().insert(Arc::new(caller));
            let traced = app.telemetry.as_ref().map(|_| traced_request(&mut req));
            let started = Instant::now();
            // 2026-07-28 requests name their method in a header the transport checks
            // against the body; legacy answers carry it as an extension.
            let named = match *req.method() {
                Method::GET => Some("(get)".to_string()),
                Method::DELETE => Some("(delete)".to_string()),
                _ => req
                    .headers()
                    .get(mcp_protocol::headers::MCP_METHOD)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
            let resp = app.mcp.handle(req).await;
            let method = resp
                .extensions()
                .get::<RpcMethod>()
                .map(|m| m.0.as_str())
                .or(named.as_deref())
                .unwrap_or("(none)");
            app.metrics
                .record_request(method, resp.status(), started.elapsed());
            if let (Some(t), Some((spanned, at, parent))) = (&app.telemetry, traced)
                && !spanned.is_set()
                && !method.starts_with('(')
            {
                // A JSON-RPC message no handler span covered (not a GET stream,
                // a DELETE or a body without a method).
                t.answered(method, at, parent.as_ref(), resp.status());
            }
            resp
        }
        Err(e) => {
            tracing::debug!(reason = e.label(), "request refused: {e}");
            app.metrics.record_auth_refusal(e.label());
            app.auth.refusal(&e)
        }
    }
}

/// With tracing on: the request's header trace context for the handler's span (which
/// prefers `_meta`), and what the front layer needs to record a span itself when no
/// handler span covers the request.
fn traced_request(
    req: &mut Request<hyper::body::Incoming>,
) -> (Spanned, std::time::SystemTime, Option<TraceContext>) {
    let context = TraceContext::from_headers(req.headers());
    if let Some(c) = &context {
        req.extensions_mut().insert(HeaderTraceContext(c.clone()));
    }
    let spanned = Spanned::default();
    req.extensions_mut().insert(spanned.clone());
    (spanned, std::time::SystemTime::now(), context)
}

fn gauges(app: &App) -> Gauges {
    let nodes = app.gateway.discovery().nodes();
    let status = app.gateway.discovery().status();
    Gauges {
        nodes: nodes.len(),
        ready_nodes: nodes.ready().count(),
        tools: app.gateway.catalog().names().len(),
        sessions: app.mcp.session_count(),
        discovery_healthy: status.healthy,
        discovery_stale: status
            .unhealthy_since
            .map(|t| t.elapsed())
            .unwrap_or_default(),
        builds: app
            .catalog_report
            .read()
            .ok()
            .and_then(|r| r["builds"].as_array().map(Vec::len))
            .unwrap_or(0),
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
        "catalog": app.catalog_report.read().map(|r| r.clone()).unwrap_or(Value::Null),
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
    let watch_follower = tokio::spawn(count_watch_restarts(app.clone()));
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
    let limits = app.connections.clone();
    let (stop, drain) = (app.stop.clone(), app.drain);
    let telemetry = app.telemetry.clone();
    tracing::info!(
        max_connections = limits.max_connections,
        pinned_mib = limits.pinned_bytes() / (1024 * 1024),
        "connection limits (memory open connections can pin in buffers)"
    );
    // Shared, not cloned per request: an App clone copies its config and verifiers.
    let app = Arc::new(app);
    mcp_protocol::serve::serve_with(
        listener,
        limits,
        move |req| route(app.clone(), req),
        shutdown,
        drain,
    )
    .await;
    follower.abort();
    watch_follower.abort();
    policy_follower.abort();
    stop.cancel();
    if let Some(t) = telemetry {
        // The last spans are exported before the process exits (bounded by the
        // export timeout).
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["k8s-aggregator-mcp"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .unwrap()
            .settings
            .validate()
            .unwrap()
    }

    #[tokio::test]
    async fn the_authenticator_has_a_verifier_per_enabled_mode() {
        assert!(
            !build_authenticator(&config(&[]), None)
                .await
                .unwrap()
                .enabled()
        );
        let oauth = config(&[
            "--auth-mode",
            "oauth",
            "--oauth-issuer",
            "https://as.test",
            "--oauth-resource",
            "https://gw.test/mcp",
            "--oauth-required-scopes",
            "mcp:tools",
        ]);
        let auth = build_authenticator(&oauth, None).await.unwrap();
        assert!(auth.enabled());
        assert_eq!(
            auth.www_authenticate(&crate::auth::AuthError::Missing),
            "Bearer resource_metadata=\"https://gw.test/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\""
        );
        let m = resource_metadata(&oauth).unwrap();
        let doc: Value = serde_json::from_slice(&m.document).unwrap();
        assert_eq!(doc["resource"], "https://gw.test/mcp");
        assert!(resource_metadata(&config(&[])).is_none());
    }
}
