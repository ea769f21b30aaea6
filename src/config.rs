//! Every setting of the gateway in one place: flag, environment variable, default and
//! validation. A bad value stops the start with a message that names the setting.

use clap::{Args, Parser, Subcommand};
use mcp_protocol::headers::{HostPolicy, OriginPolicy};
use mcp_protocol::serve::ConnectionLimits;
use mcp_protocol::server::Caps;
use mcp_protocol::telemetry::{TelemetryError, TraceSettings};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::cluster::{NodeEndpoint, NodeMap};

/// k8s-aggregator-mcp: one MCP endpoint for the MCP servers that run on every
/// Kubernetes node. Each backend tool is served with a required `node` parameter and
/// every call is routed to the pod on that node.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    /// What to run (default: the gateway).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Gateway settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Local demo without a cluster: three example node servers on 127.0.0.2-127.0.0.4
    /// (demo-node-1..3) behind the gateway on 127.0.0.1:FRONTEND_PORT.
    Demo,
}

/// The gateway's settings, as flags or environment variables.
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// Name of the backend (headless) Service whose EndpointSlices list the node servers.
    #[arg(long, env = "SERVICE_NAME", default_value = "backend-mcp-service")]
    pub service_name: String,
    /// Namespace of the backend Service.
    #[arg(long, env = "SERVICE_NAMESPACE", default_value = "mcp-server")]
    pub service_namespace: String,
    /// Port the backend MCP servers listen on.
    #[arg(long, env = "BACKEND_PORT", default_value_t = 9028)]
    pub backend_port: u16,
    /// HTTP path of the backend MCP endpoint.
    #[arg(long, env = "BACKEND_PATH", default_value = "/mcp")]
    pub backend_path: String,
    /// Port the gateway serves MCP on.
    #[arg(long, env = "FRONTEND_PORT", default_value_t = 9029)]
    pub frontend_port: u16,
    /// Address the gateway binds.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Upper bound on one forwarded tool call, in seconds.
    #[arg(long, env = "CALL_TIMEOUT_SECONDS", default_value_t = 120)]
    pub call_timeout_seconds: u64,
    /// How the gateway speaks to node servers: `auto` (2026-07-28 first, falling back
    /// to initialize), `legacy` (initialize only: for a backend whose mid-call
    /// requests only work with sessions) or `modern` (2026-07-28 only).
    #[arg(long, env = "BACKEND_PROTOCOL", default_value = "auto")]
    pub backend_protocol: String,
    /// Backend calls a gateway replica keeps open while 2026-07-28 clients answer
    /// their mid-call questions (a legacy backend's elicitation, sampling, roots turned
    /// into `input_required`): each holds a backend request and a task until the
    /// client retries or the call's deadline passes. Beyond it questions are refused
    /// at once, so the backend finishes in its own way.
    #[arg(long, env = "MAX_WAITING_CALLS", default_value_t = 1024)]
    pub max_waiting_calls: usize,
    /// Browser origins allowed to call the gateway, comma-separated (`*`: any). Loopback
    /// origins are always allowed; requests without Origin are not browser requests.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// Log format: text (terminal) or json (cluster).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Seconds to wait at start-up for a ready backend before giving up (0: refuse to
    /// start at once when the Service has no ready endpoint).
    #[arg(long, env = "STARTUP_WAIT_SECONDS", default_value_t = 0)]
    pub startup_wait_seconds: u64,
    /// Fixed nodes instead of Kubernetes discovery, for local development:
    /// `name=ip,name=ip`.
    #[arg(long, env = "STATIC_NODES")]
    pub static_nodes: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Idle legacy sessions are forgotten after this many seconds.
    #[arg(long, env = "SESSION_IDLE_SECONDS", default_value_t = 1800)]
    pub session_idle_seconds: u64,
    /// Most legacy sessions kept at once.
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 10_000)]
    pub max_sessions: usize,
    /// Most client connections open at once; beyond it a connection gets 503 with
    /// Retry-After. Keep it well below the file-descriptor limit (each call also
    /// opens a backend connection).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// A connection with no request in flight for this many seconds is closed.
    #[arg(long, env = "IDLE_TIMEOUT_SECONDS", default_value_t = 120)]
    pub idle_timeout_seconds: u64,
    /// Request bytes all requests being read or handled may hold together; beyond
    /// it new requests get 503. Bounds what slow or parked bodies can pin.
    #[arg(long, env = "BODY_BUDGET_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub body_budget_bytes: usize,
    /// A request body must arrive at this many bytes per second (after a 10 s start).
    #[arg(long, env = "BODY_MIN_BYTES_PER_SECOND", default_value_t = 64 * 1024)]
    pub body_min_bytes_per_second: u64,
    /// Long-lived streams (legacy GET, subscriptions/listen) open at once.
    #[arg(long, env = "MAX_STREAMS", default_value_t = 512)]
    pub max_streams: usize,
    /// Tool calls being handled at once (beyond: 503 with Retry-After).
    #[arg(long, env = "MAX_INFLIGHT", default_value_t = 1024)]
    pub max_inflight: usize,
    /// Legacy sessions one client (address, or authenticated caller) may hold; its
    /// least recently used one ends when it starts another.
    #[arg(long, env = "MAX_SESSIONS_PER_CLIENT", default_value_t = 100)]
    pub max_sessions_per_client: usize,
    /// A legacy session ends this many seconds after it started, however busy (the
    /// expiry is sealed into its id, so every replica ends it at the same time).
    #[arg(long, env = "SESSION_MAX_LIFETIME_SECONDS", default_value_t = 86_400)]
    pub session_max_lifetime_seconds: u64,
    /// Keys that seal legacy session ids (and 2026-07-28 `requestState`), so that any
    /// replica can serve any session: one base64 key of 32 bytes per line, the sealing
    /// key first, older keys after it until their ids have expired (a mounted Secret;
    /// re-read as it changes). Unset: a random key of this process, so sessions live
    /// and die with this one replica.
    #[arg(long, env = "SESSION_KEYS_FILE")]
    pub session_keys_file: Option<std::path::PathBuf>,
    /// After SIGTERM: the gateway stops accepting connections, ends long-lived streams
    /// and waits this many seconds at most for the requests in flight to finish (keep
    /// it at CALL_TIMEOUT_SECONDS, and the pod's terminationGracePeriodSeconds above it,
    /// so a rollout cuts no call).
    #[arg(long, env = "SHUTDOWN_DRAIN_SECONDS", default_value_t = 30)]
    pub shutdown_drain_seconds: u64,
    /// Host names the gateway answers to (DNS-rebinding protection), comma-separated,
    /// `*.example.com` globs, `*` for any. IP addresses, localhost and cluster Service
    /// names (`*.svc`, `*.svc.cluster.local`) are always accepted; bound to loopback,
    /// only loopback names are. With authentication on and nothing set, any host is
    /// accepted (a rebinding page cannot present a token).
    #[arg(long, env = "ALLOWED_HOSTS", default_value = "")]
    pub allowed_hosts: String,
    /// How callers of /mcp authenticate: `none`, `oauth` (JWT access tokens),
    /// `kubernetes` (tokens checked with TokenReview), or `oauth,kubernetes` (either).
    #[arg(long, env = "AUTH_MODE", default_value = "none")]
    pub auth_mode: String,
    /// Who may read /metrics: `none` (anyone who reaches the port, e.g. Prometheus) or
    /// `required` (the same authentication as /mcp).
    #[arg(long, env = "METRICS_AUTH", default_value = "none", value_parser = ["none", "required"])]
    pub metrics_auth: String,
    /// Per-node call metrics (`mcp_gateway_node_call_duration_seconds{node}`) while the
    /// cluster has at most this many nodes (0: never). Also the most node names
    /// ever used as labels (later ones count as `(other)`), so a big or churning
    /// cluster cannot blow up the scrape.
    #[arg(long, env = "METRICS_NODE_LABELS", default_value_t = 50)]
    pub metrics_node_labels: usize,

    // ---- OAuth 2.1 resource server (AUTH_MODE=oauth) -------------------------------
    /// Authorization server(s) whose access tokens are accepted (the exact `iss`),
    /// comma-separated or repeated. Keys come from their metadata unless
    /// OAUTH_JWKS_URL / OAUTH_JWKS_FILE is set.
    #[arg(long, env = "OAUTH_ISSUER", value_delimiter = ',')]
    pub oauth_issuer: Vec<String>,
    /// The canonical URL of this gateway's MCP endpoint (e.g.
    /// https://mcp.example.com/mcp): the RFC 9728 `resource` and the base of the
    /// metadata URL. Required in oauth mode.
    #[arg(long, env = "OAUTH_RESOURCE")]
    pub oauth_resource: Option<String>,
    /// The `aud` a token must contain (RFC 8707); default: OAUTH_RESOURCE.
    #[arg(long, env = "OAUTH_AUDIENCE")]
    pub oauth_audience: Option<String>,
    /// Key set URL, instead of discovering it from the issuer.
    #[arg(long, env = "OAUTH_JWKS_URL")]
    pub oauth_jwks_url: Option<String>,
    /// Key set file, instead of discovering it from the issuer (re-read on refresh).
    #[arg(long, env = "OAUTH_JWKS_FILE")]
    pub oauth_jwks_file: Option<std::path::PathBuf>,
    /// Scopes every token must carry, space- or comma-separated (default: none).
    #[arg(long, env = "OAUTH_REQUIRED_SCOPES", default_value = "")]
    pub oauth_required_scopes: String,
    /// Scopes advertised in the metadata (`scopes_supported`); default: the required ones.
    #[arg(long, env = "OAUTH_SCOPES_SUPPORTED", default_value = "")]
    pub oauth_scopes_supported: String,
    /// The claim holding the caller's groups.
    #[arg(long, env = "OAUTH_GROUPS_CLAIM", default_value = "groups")]
    pub oauth_groups_claim: String,
    /// Clock skew allowed for `exp` / `nbf`, in seconds.
    #[arg(long, env = "OAUTH_LEEWAY_SECONDS", default_value_t = 30)]
    pub oauth_leeway_seconds: u64,
    /// Least seconds between two key-set fetches caused by unknown key ids (so made-up
    /// `kid`s cannot hammer the issuer).
    #[arg(long, env = "OAUTH_JWKS_MIN_REFRESH_SECONDS", default_value_t = 30)]
    pub oauth_jwks_min_refresh_seconds: u64,
    /// PEM bundle of CAs trusted when fetching issuer metadata and keys (default: the
    /// system roots).
    #[arg(long, env = "OAUTH_CA_FILE")]
    pub oauth_ca_file: Option<std::path::PathBuf>,
    // ---- end of OAuth ----------------------------------------------------------------

    // ---- The gateway's own credential towards node servers --------------------------
    /// A file holding the bearer token sent as `Authorization: Bearer` to every node
    /// server (a projected ServiceAccount token, or a static token from a Secret);
    /// re-read when it changes. The caller's own token is never forwarded.
    #[arg(long, env = "BACKEND_TOKEN_FILE")]
    pub backend_token_file: Option<std::path::PathBuf>,
    /// Extra headers sent to every node server: `Name: value` pairs separated by
    /// newlines or `;`.
    #[arg(long, env = "BACKEND_EXTRA_HEADERS", default_value = "")]
    pub backend_extra_headers: String,
    /// A file with more such headers, one per line (read at start).
    #[arg(long, env = "BACKEND_EXTRA_HEADERS_FILE")]
    pub backend_extra_headers_file: Option<std::path::PathBuf>,
    // ---- end of backend credential ---------------------------------------------------

    // ---- Kubernetes authentication (AUTH_MODE=kubernetes), policy and audit ----------
    /// Kubernetes mode: the audiences TokenReview must find in a caller's token
    /// (comma-separated; `spec.audiences`, and `status.audiences` must intersect them).
    /// Mint tokens with `kubectl create token <sa> --audience <one of these>`.
    #[arg(
        long,
        env = "TOKEN_REVIEW_AUDIENCES",
        default_value = "k8s-aggregator-mcp"
    )]
    pub token_review_audiences: String,
    /// Kubernetes mode: deadline of one TokenReview call, in seconds (past it the
    /// request is refused with 503: the gateway fails closed).
    #[arg(long, env = "TOKEN_REVIEW_TIMEOUT_SECONDS", default_value_t = 5)]
    pub token_review_timeout_seconds: u64,
    /// Kubernetes mode: how long an accepted token is remembered (by its SHA-256, never
    /// the token itself), in seconds; never past the token's own expiry. 0: ask every time.
    /// Refusals are never cached.
    #[arg(long, env = "TOKEN_CACHE_SECONDS", default_value_t = 60)]
    pub token_cache_seconds: u64,
    /// Kubernetes mode: most accepted tokens remembered at once (the soonest to expire
    /// are evicted first).
    #[arg(long, env = "TOKEN_CACHE_MAX_ENTRIES", default_value_t = 10_000)]
    pub token_cache_max_entries: usize,
    /// Authorization policy (YAML or JSON): who may see and call which tools on which
    /// nodes. Re-read when its content changes. Unset: every caller may call everything
    /// (with AUTH_MODE=none, the demo).
    #[arg(long, env = "POLICY_FILE")]
    pub policy_file: Option<std::path::PathBuf>,
    /// How often POLICY_FILE is checked for changes, in seconds.
    #[arg(long, env = "POLICY_RELOAD_SECONDS", default_value_t = 5)]
    pub policy_reload_seconds: u64,
    /// Put the call's argument values into the audit lines (target `audit`); off by
    /// default, since arguments may carry data the audit log should not keep.
    #[arg(long, env = "AUDIT_ARGUMENTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub audit_arguments: bool,
    // ---- end of Kubernetes authentication, policy and audit ----------------------------
    /// The per-build catalog and the fan-out tool.
    #[command(flatten)]
    pub catalog: CatalogSettings,
    /// OpenTelemetry traces (off unless an OTLP endpoint is set).
    #[command(flatten)]
    pub traces: TraceSettings,
}

// ---- the per-build catalog and the fan-out tool ------------------------------

/// How the catalog learns every backend build and how the fan-out tool runs.
#[derive(clap::Args, Debug, Clone)]
pub struct CatalogSettings {
    /// Pods asked for their tools/list at once (start-up and new pods): bounded so a
    /// 5,000-node rollout does not open 5,000 connections at once.
    #[arg(long, env = "CATALOG_LEARN_CONCURRENCY", default_value_t = 16)]
    pub catalog_learn_concurrency: usize,
    /// Deadline of one pod's initialize + tools/list when learning its build, in
    /// seconds: a hanging pod is left out (and retried later) instead of holding the
    /// catalog for the 120 s call timeout.
    #[arg(long, env = "CATALOG_LEARN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub catalog_learn_timeout_seconds: u64,
    /// Quiet time after a change of the node set before the catalog is rebuilt, in
    /// milliseconds, so a rollout yields one tools/list_changed per real change of the
    /// union, not one per pod.
    #[arg(long, env = "CATALOG_DEBOUNCE_MS", default_value_t = 500)]
    pub catalog_debounce_ms: u64,
    /// Tools per tools/list page: a larger catalog is served in pages with opaque
    /// cursors (each page serialized once), so no answer grows without bound.
    #[arg(long, env = "CATALOG_PAGE_SIZE", default_value_t = crate::catalog::DEFAULT_PAGE_SIZE)]
    pub catalog_page_size: usize,
    /// Most backend pods the gateway listens to for `notifications/tools/list_changed`
    /// at once (a legacy session's GET stream, or `subscriptions/listen`): each is an
    /// open connection on both sides, so on a big cluster a few pods per build are
    /// listened to and a change heard there re-learns the rest of that build (0: none).
    #[arg(long, env = "CATALOG_LISTEN_MAX", default_value_t = 64)]
    pub catalog_listen_max: usize,
    /// Up to this many ready nodes, the `node` parameter of every tool lists their
    /// names as an `enum` (refreshed, with a debounced list_changed, as nodes come and
    /// go); above it, none, so a 5,000-node cluster does not bloat every schema (0: never).
    #[arg(long, env = "NODE_ENUM_MAX_NODES", default_value_t = 50)]
    pub node_enum_max_nodes: usize,
    /// Name of the gateway's fan-out tool (empty: no fan-out tool). A backend tool of
    /// the same name is not served (the log says so): pick another name then.
    #[arg(long, env = "FANOUT_TOOL_NAME", default_value = "fan_out")]
    pub fanout_tool_name: String,
    /// Node calls of one fan-out in flight at once.
    #[arg(long, env = "FANOUT_CONCURRENCY", default_value_t = 32)]
    pub fanout_concurrency: usize,
    /// Deadline of each node's call inside a fan-out, in seconds.
    #[arg(long, env = "FANOUT_NODE_TIMEOUT_SECONDS", default_value_t = 30)]
    pub fanout_node_timeout_seconds: u64,
    /// Deadline of a whole fan-out, in seconds (nodes not done by then are reported
    /// as timed out).
    #[arg(long, env = "FANOUT_DEADLINE_SECONDS", default_value_t = 120)]
    pub fanout_deadline_seconds: u64,
    /// Most nodes one fan-out may target (a larger target is refused, not truncated).
    #[arg(long, env = "FANOUT_MAX_NODES", default_value_t = 1000)]
    pub fanout_max_nodes: usize,
    /// Name of the gateway's node-map tool, which lists the nodes with their state,
    /// zone, pod and backend build (empty: no such tool).
    #[arg(long, env = "NODES_TOOL_NAME", default_value = "list_nodes")]
    pub nodes_tool_name: String,
}

/// Validated [`CatalogSettings`].
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Pods learned at once.
    pub learn_concurrency: usize,
    /// Deadline of learning one pod.
    pub learn_timeout: Duration,
    /// Quiet time before a rebuild.
    pub debounce: Duration,
    /// Tools per tools/list page.
    pub page_size: usize,
    /// Most pods listened to for tools/list_changed.
    pub listen_max: usize,
    /// Most ready nodes for which `node` carries an `enum` of their names.
    pub node_enum_max: usize,
    /// The fan-out tool, unless disabled.
    pub fanout: Option<FanoutConfig>,
    /// The node-map tool's name, unless disabled.
    pub nodes_tool: Option<String>,
}

/// The fan-out tool's settings.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Tool name.
    pub name: String,
    /// Node calls in flight at once.
    pub concurrency: usize,
    /// Deadline of one node call.
    pub node_timeout: Duration,
    /// Deadline of the whole fan-out.
    pub deadline: Duration,
    /// Most nodes per fan-out.
    pub max_nodes: usize,
}

impl CatalogSettings {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<CatalogConfig, ConfigError> {
        if !(1..=1024).contains(&self.catalog_learn_concurrency) {
            return Err(bad("CATALOG_LEARN_CONCURRENCY", "must be 1-1024"));
        }
        if !(1..=3600).contains(&self.catalog_learn_timeout_seconds) {
            return Err(bad("CATALOG_LEARN_TIMEOUT_SECONDS", "must be 1-3600"));
        }
        if self.catalog_debounce_ms > 60_000 {
            return Err(bad("CATALOG_DEBOUNCE_MS", "must be at most 60000"));
        }
        if !(1..=10_000).contains(&self.catalog_page_size) {
            return Err(bad("CATALOG_PAGE_SIZE", "must be 1-10000"));
        }
        if self.node_enum_max_nodes > 1_000 {
            return Err(bad("NODE_ENUM_MAX_NODES", "must be at most 1000"));
        }
        if self.catalog_listen_max > 10_000 {
            return Err(bad("CATALOG_LISTEN_MAX", "must be at most 10000"));
        }
        let tool_name = |setting: &'static str, name: &str| {
            if name.len() > 128
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(bad(
                    setting,
                    "must be 1-128 characters of A-Z, a-z, 0-9, _, - and .",
                ));
            }
            Ok(())
        };
        let nodes_tool = self.nodes_tool_name.trim();
        tool_name("NODES_TOOL_NAME", nodes_tool)?;
        let name = self.fanout_tool_name.trim();
        if !name.is_empty() && name == nodes_tool {
            return Err(bad("NODES_TOOL_NAME", "must differ from FANOUT_TOOL_NAME"));
        }
        let fanout = if name.is_empty() {
            None
        } else {
            tool_name("FANOUT_TOOL_NAME", name)?;
            if !(1..=1024).contains(&self.fanout_concurrency) {
                return Err(bad("FANOUT_CONCURRENCY", "must be 1-1024"));
            }
            if !(1..=86_400).contains(&self.fanout_node_timeout_seconds) {
                return Err(bad("FANOUT_NODE_TIMEOUT_SECONDS", "must be 1-86400"));
            }
            if !(1..=86_400).contains(&self.fanout_deadline_seconds) {
                return Err(bad("FANOUT_DEADLINE_SECONDS", "must be 1-86400"));
            }
            if !(1..=100_000).contains(&self.fanout_max_nodes) {
                return Err(bad("FANOUT_MAX_NODES", "must be 1-100000"));
            }
            Some(FanoutConfig {
                name: name.to_string(),
                concurrency: self.fanout_concurrency,
                node_timeout: Duration::from_secs(self.fanout_node_timeout_seconds),
                deadline: Duration::from_secs(self.fanout_deadline_seconds),
                max_nodes: self.fanout_max_nodes,
            })
        };
        Ok(CatalogConfig {
            learn_concurrency: self.catalog_learn_concurrency,
            learn_timeout: Duration::from_secs(self.catalog_learn_timeout_seconds),
            debounce: Duration::from_millis(self.catalog_debounce_ms),
            page_size: self.catalog_page_size,
            listen_max: self.catalog_listen_max,
            node_enum_max: self.node_enum_max_nodes,
            fanout,
            nodes_tool: (!nodes_tool.is_empty()).then(|| nodes_tool.to_string()),
        })
    }
}
// ---- end of the per-build catalog and the fan-out tool ----------------------------------

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Backend Service name.
    pub service_name: String,
    /// Backend Service namespace.
    pub service_namespace: String,
    /// Backend port.
    pub backend_port: u16,
    /// Backend MCP path (starts with `/`).
    pub backend_path: String,
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Per-call deadline.
    pub call_timeout: Duration,
    /// The era the gateway speaks to node servers (`BACKEND_PROTOCOL`).
    pub backend_mode: mcp_protocol::client::ClientMode,
    /// Backend calls kept open for 2026-07-28 clients' answers (`MAX_WAITING_CALLS`).
    pub max_waiting_calls: usize,
    /// Origin policy.
    pub origins: OriginPolicy,
    /// JSON logs.
    pub json_logs: bool,
    /// Start-up wait for a ready backend.
    pub startup_wait: Duration,
    /// Fixed nodes (skips Kubernetes).
    pub static_nodes: Option<NodeMap>,
    /// Body limit.
    pub max_body_bytes: usize,
    /// Session idle expiry.
    pub session_idle: Duration,
    /// Session cap.
    pub max_sessions: usize,
    /// Enabled authentication modes (none: open).
    pub auth_modes: AuthModes,
    /// Connection caps and deadlines.
    pub connections: ConnectionLimits,
    /// Caps on streams, requests in flight and batches.
    pub caps: Caps,
    /// Shared budget of request bytes.
    pub body_budget_bytes: usize,
    /// Minimum request-body rate.
    pub body_min_rate: u64,
    /// Sessions per client.
    pub max_sessions_per_client: usize,
    /// Absolute session lifetime.
    pub session_max_lifetime: Duration,
    /// The key ring of sealed ids and state, if shared between replicas.
    pub session_keys_file: Option<std::path::PathBuf>,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_drain: Duration,
    /// Host names answered.
    pub hosts: HostPolicy,
    /// Whether /metrics is behind the same authentication as /mcp.
    pub metrics_auth: bool,
    /// Per-node call metrics up to this many nodes (`METRICS_NODE_LABELS`).
    pub metrics_node_labels: usize,
    /// The OAuth resource-server settings (only when `auth_modes.oauth`).
    pub oauth: Option<OAuthConfig>,
    /// What the gateway sends to node servers to prove itself.
    pub backend_auth: BackendAuth,
    /// Kubernetes mode (TokenReview) settings.
    pub kubernetes_auth: KubernetesAuthConfig,
    /// The authorization policy file, if any.
    pub policy_file: Option<std::path::PathBuf>,
    /// How often the policy file is checked for changes.
    pub policy_reload: Duration,
    /// Whether audit lines carry argument values.
    pub audit_arguments: bool,
    /// The per-build catalog and the fan-out tool.
    pub catalog: CatalogConfig,
    /// OpenTelemetry trace export (validated; started by [`crate::server::start_with`]).
    pub traces: TraceSettings,
}

/// OAuth 2.1 resource-server settings (`OAUTH_*`).
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Accepted issuers (exact `iss`), at least one.
    pub issuers: Vec<String>,
    /// The resource identifier: this gateway's MCP endpoint URL.
    pub resource: String,
    /// The required audience.
    pub audience: String,
    /// Where the keys come from (same for every issuer when overridden).
    pub keys: mcp_protocol::bearer::KeySource,
    /// Scopes every token needs.
    pub required_scopes: Vec<String>,
    /// Scopes advertised in the metadata.
    pub scopes_supported: Vec<String>,
    /// Claim holding the groups.
    pub groups_claim: String,
    /// `exp` / `nbf` leeway.
    pub leeway: Duration,
    /// Floor between key refreshes on unknown kids.
    pub min_refresh: Duration,
    /// CA bundle for fetches.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The gateway's credential towards node servers (`BACKEND_TOKEN_FILE`,
/// `BACKEND_EXTRA_HEADERS[_FILE]`).
#[derive(Debug, Clone, Default)]
pub struct BackendAuth {
    /// The bearer token file, re-read as it rotates.
    pub token_file: Option<std::path::PathBuf>,
    /// Static extra headers (values never logged).
    pub extra_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Settings of the Kubernetes authentication mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesAuthConfig {
    /// Audiences asked of TokenReview; a token must be valid for at least one.
    pub audiences: Vec<String>,
    /// Deadline of one TokenReview.
    pub review_timeout: Duration,
    /// How long an accepted token is cached (zero: not at all).
    pub cache_ttl: Duration,
    /// Cache capacity.
    pub cache_max_entries: usize,
}

/// The authentication modes `AUTH_MODE` turns on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthModes {
    /// OAuth 2.1 resource server: JWT access tokens.
    pub oauth: bool,
    /// Kubernetes tokens checked with the TokenReview API.
    pub kubernetes: bool,
}

impl AuthModes {
    /// Whether authentication is off.
    pub fn is_open(&self) -> bool {
        !self.oauth && !self.kubernetes
    }

    /// Parses `none`, `oauth`, `kubernetes` or a comma-separated mix.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let mut modes = AuthModes::default();
        let mut none = false;
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "none" => none = true,
                "oauth" => modes.oauth = true,
                "kubernetes" => modes.kubernetes = true,
                other => {
                    return Err(bad(
                        "AUTH_MODE",
                        format!(
                            "unknown mode {other:?}: use none, oauth, kubernetes or oauth,kubernetes"
                        ),
                    ));
                }
            }
        }
        if none && !modes.is_open() {
            return Err(bad(
                "AUTH_MODE",
                "`none` cannot be combined with other modes",
            ));
        }
        Ok(modes)
    }
}

/// A setting with a bad value.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {problem}")]
pub struct ConfigError {
    /// The env var / flag name.
    pub setting: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn bad(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

impl Settings {
    /// Validates every setting; the first problem found is reported by name.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        if !is_dns_label(&self.service_name) {
            return Err(bad(
                "SERVICE_NAME",
                format!(
                    "{:?} is not a Kubernetes Service name (a DNS label)",
                    self.service_name
                ),
            ));
        }
        if !is_dns_label(&self.service_namespace) {
            return Err(bad(
                "SERVICE_NAMESPACE",
                format!(
                    "{:?} is not a namespace name (a DNS label)",
                    self.service_namespace
                ),
            ));
        }
        if self.backend_port == 0 {
            return Err(bad("BACKEND_PORT", "must be 1-65535"));
        }
        if !self.backend_path.starts_with('/') || self.backend_path.contains(char::is_whitespace) {
            return Err(bad(
                "BACKEND_PATH",
                format!("{:?} must be an absolute path like /mcp", self.backend_path),
            ));
        }
        if self.metrics_node_labels > 1_000 {
            return Err(bad(
                "METRICS_NODE_LABELS",
                "must be at most 1000 (each node adds a histogram per outcome to every scrape)",
            ));
        }
        if self.max_waiting_calls > 1_000_000 {
            return Err(bad("MAX_WAITING_CALLS", "must be at most 1000000"));
        }
        if self.call_timeout_seconds == 0 || self.call_timeout_seconds > 86_400 {
            return Err(bad("CALL_TIMEOUT_SECONDS", "must be 1-86400"));
        }
        let backend_mode = match self.backend_protocol.as_str() {
            "auto" => mcp_protocol::client::ClientMode::Auto,
            "legacy" => mcp_protocol::client::ClientMode::Legacy,
            "modern" => mcp_protocol::client::ClientMode::Modern,
            other => {
                return Err(bad(
                    "BACKEND_PROTOCOL",
                    format!("{other:?} is not one of auto, legacy, modern"),
                ));
            }
        };
        if self.max_body_bytes < 1024 {
            return Err(bad("MAX_BODY_BYTES", "must be at least 1024"));
        }
        if self.max_sessions == 0 {
            return Err(bad("MAX_SESSIONS", "must be at least 1"));
        }
        let auth_modes = AuthModes::parse(&self.auth_mode)?;
        for (setting, value) in [
            ("MAX_CONNECTIONS", self.max_connections),
            ("MAX_STREAMS", self.max_streams),
            ("MAX_INFLIGHT", self.max_inflight),
            ("MAX_SESSIONS_PER_CLIENT", self.max_sessions_per_client),
        ] {
            if value == 0 {
                return Err(bad(setting, "must be at least 1"));
            }
        }
        if self.shutdown_drain_seconds > 3600 {
            return Err(bad("SHUTDOWN_DRAIN_SECONDS", "must be at most 3600"));
        }
        if self.idle_timeout_seconds == 0 {
            return Err(bad("IDLE_TIMEOUT_SECONDS", "must be at least 1"));
        }
        if self.body_budget_bytes < self.max_body_bytes {
            return Err(bad(
                "BODY_BUDGET_BYTES",
                format!(
                    "must be at least MAX_BODY_BYTES ({}), or no request of the largest size could be read",
                    self.max_body_bytes
                ),
            ));
        }
        let listen = SocketAddr::new(self.bind_address, self.frontend_port);
        let loopback_only = listen.ip().is_loopback();
        let hosts =
            if self.allowed_hosts.trim().is_empty() && !auth_modes.is_open() && !loopback_only {
                HostPolicy::from_list("*", false)
            } else {
                HostPolicy::from_list(&self.allowed_hosts, loopback_only)
            };
        let connections = ConnectionLimits {
            max_connections: self.max_connections,
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            ..ConnectionLimits::default()
        };
        let caps = Caps {
            max_streams: self.max_streams,
            max_inflight: self.max_inflight,
            ..Caps::default()
        };
        let oauth = if auth_modes.oauth {
            Some(self.oauth_config()?)
        } else {
            None
        };
        let backend_auth = self.backend_auth()?;
        let audiences: Vec<String> = self
            .token_review_audiences
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if auth_modes.kubernetes && audiences.is_empty() {
            return Err(bad(
                "TOKEN_REVIEW_AUDIENCES",
                "must name at least one audience (e.g. k8s-aggregator-mcp) in kubernetes mode",
            ));
        }
        if self.token_review_timeout_seconds == 0 || self.token_review_timeout_seconds > 300 {
            return Err(bad("TOKEN_REVIEW_TIMEOUT_SECONDS", "must be 1-300"));
        }
        if self.token_cache_seconds > 3600 {
            return Err(bad(
                "TOKEN_CACHE_SECONDS",
                "must be at most 3600 (a revoked token stays accepted that long)",
            ));
        }
        if self.token_cache_max_entries == 0 {
            return Err(bad("TOKEN_CACHE_MAX_ENTRIES", "must be at least 1"));
        }
        if self.policy_reload_seconds == 0 || self.policy_reload_seconds > 3600 {
            return Err(bad("POLICY_RELOAD_SECONDS", "must be 1-3600"));
        }
        let policy_file = self
            .policy_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        let static_nodes = self
            .static_nodes
            .as_deref()
            .map(parse_static_nodes)
            .transpose()?;
        Ok(Config {
            service_name: self.service_name.clone(),
            service_namespace: self.service_namespace.clone(),
            backend_port: self.backend_port,
            backend_path: self.backend_path.clone(),
            listen,
            call_timeout: Duration::from_secs(self.call_timeout_seconds),
            backend_mode,
            max_waiting_calls: self.max_waiting_calls,
            origins: OriginPolicy::from_list(&self.allowed_origins),
            json_logs: self.log_format == "json",
            startup_wait: Duration::from_secs(self.startup_wait_seconds),
            static_nodes,
            max_body_bytes: self.max_body_bytes,
            session_idle: Duration::from_secs(self.session_idle_seconds),
            max_sessions: self.max_sessions,
            auth_modes,
            connections,
            caps,
            body_budget_bytes: self.body_budget_bytes,
            body_min_rate: self.body_min_bytes_per_second.max(1),
            max_sessions_per_client: self.max_sessions_per_client,
            session_max_lifetime: Duration::from_secs(self.session_max_lifetime_seconds),
            session_keys_file: self
                .session_keys_file
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
            shutdown_drain: Duration::from_secs(self.shutdown_drain_seconds),
            hosts,
            metrics_auth: self.metrics_auth == "required",
            metrics_node_labels: self.metrics_node_labels,
            oauth,
            backend_auth,
            kubernetes_auth: KubernetesAuthConfig {
                audiences,
                review_timeout: Duration::from_secs(self.token_review_timeout_seconds),
                cache_ttl: Duration::from_secs(self.token_cache_seconds),
                cache_max_entries: self.token_cache_max_entries,
            },
            policy_file,
            policy_reload: Duration::from_secs(self.policy_reload_seconds),
            audit_arguments: self.audit_arguments,
            catalog: self.catalog.validate()?,
            traces: self.traces_checked()?,
        })
    }

    fn traces_checked(&self) -> Result<TraceSettings, ConfigError> {
        match self.traces.validate() {
            Err(TelemetryError::Setting { name, why }) => Err(bad(name, why)),
            _ => Ok(self.traces.clone()),
        }
    }

    fn oauth_config(&self) -> Result<OAuthConfig, ConfigError> {
        let issuers: Vec<String> = self
            .oauth_issuer
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if issuers.is_empty() {
            return Err(bad(
                "OAUTH_ISSUER",
                "AUTH_MODE=oauth needs the authorization server's issuer URL",
            ));
        }
        for i in &issuers {
            if !(i.starts_with("https://") || i.starts_with("http://")) {
                return Err(bad("OAUTH_ISSUER", format!("{i:?} is not an http(s) URL")));
            }
        }
        let resource = self
            .oauth_resource
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad(
                    "OAUTH_RESOURCE",
                    "AUTH_MODE=oauth needs the canonical URL of this gateway's MCP endpoint, e.g. https://mcp.example.com/mcp",
                )
            })?;
        crate::auth::oauth::metadata_url(resource).map_err(|p| bad("OAUTH_RESOURCE", p))?;
        let audience = self
            .oauth_audience
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(resource)
            .to_string();
        let keys = match (&self.oauth_jwks_url, &self.oauth_jwks_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "OAUTH_JWKS_URL",
                    "set OAUTH_JWKS_URL or OAUTH_JWKS_FILE, not both",
                ));
            }
            (Some(url), None) => mcp_protocol::bearer::KeySource::Url(url.trim().to_string()),
            (None, Some(file)) => mcp_protocol::bearer::KeySource::File(file.clone()),
            (None, None) => mcp_protocol::bearer::KeySource::Discover,
        };
        if self.oauth_leeway_seconds > 300 {
            return Err(bad("OAUTH_LEEWAY_SECONDS", "must be 0-300"));
        }
        if self.oauth_jwks_min_refresh_seconds > 86_400 {
            return Err(bad("OAUTH_JWKS_MIN_REFRESH_SECONDS", "must be 0-86400"));
        }
        if self.oauth_groups_claim.trim().is_empty() {
            return Err(bad("OAUTH_GROUPS_CLAIM", "must name a claim"));
        }
        let required_scopes = scope_list(&self.oauth_required_scopes);
        let mut scopes_supported = scope_list(&self.oauth_scopes_supported);
        if scopes_supported.is_empty() {
            scopes_supported = required_scopes.clone();
        }
        Ok(OAuthConfig {
            issuers,
            resource: resource.to_string(),
            audience,
            keys,
            required_scopes,
            scopes_supported,
            groups_claim: self.oauth_groups_claim.trim().to_string(),
            leeway: Duration::from_secs(self.oauth_leeway_seconds),
            min_refresh: Duration::from_secs(self.oauth_jwks_min_refresh_seconds),
            ca_file: self.oauth_ca_file.clone(),
        })
    }

    fn backend_auth(&self) -> Result<BackendAuth, ConfigError> {
        let mut extra_headers =
            parse_extra_headers("BACKEND_EXTRA_HEADERS", &self.backend_extra_headers)?;
        if let Some(path) = &self.backend_extra_headers_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "BACKEND_EXTRA_HEADERS_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            extra_headers.extend(parse_extra_headers("BACKEND_EXTRA_HEADERS_FILE", &text)?);
        }
        if self.backend_token_file.is_some()
            && extra_headers
                .iter()
                .any(|(n, _)| *n == http::header::AUTHORIZATION)
        {
            return Err(bad(
                "BACKEND_EXTRA_HEADERS",
                "names Authorization while BACKEND_TOKEN_FILE is set: use one of them",
            ));
        }
        Ok(BackendAuth {
            token_file: self.backend_token_file.clone(),
            extra_headers,
        })
    }
}

/// Scopes separated by spaces and/or commas, duplicates dropped, order kept.
fn scope_list(spec: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in spec.split([' ', ',', '\t', '\n']).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// Headers that the MCP client sets itself or that change the HTTP framing: an extra
/// header may not name them.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-type",
    "content-length",
    "accept",
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
];

/// `Name: value` pairs separated by newlines or `;` (blank lines and `#` comments
/// skipped). The error names the header, never its value.
pub fn parse_extra_headers(
    setting: &'static str,
    spec: &str,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, ConfigError> {
    let mut out = Vec::new();
    for item in spec.split(['\n', ';']).map(str::trim) {
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        let (name, value) = item
            .split_once(':')
            .ok_or_else(|| bad(setting, "each header must be `Name: value`"))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| bad(setting, format!("{:?} is not a header name", name.trim())))?;
        let lower = name.as_str();
        if RESERVED_HEADERS.contains(&lower) || lower.starts_with("mcp-") {
            return Err(bad(
                setting,
                format!("{lower} is set by the gateway itself and cannot be configured"),
            ));
        }
        let mut value = http::HeaderValue::from_str(value.trim()).map_err(|_| {
            bad(
                setting,
                format!("the value of {lower} is not a valid header value"),
            )
        })?;
        value.set_sensitive(true);
        out.push((name, value));
    }
    Ok(out)
}

/// `name=ip,name=ip` into a node map (all ready).
pub fn parse_static_nodes(spec: &str) -> Result<NodeMap, ConfigError> {
    let mut endpoints = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, ip) = item
            .split_once('=')
            .ok_or_else(|| bad("STATIC_NODES", format!("{item:?} is not name=ip")))?;
        let ip: IpAddr = ip.trim().parse().map_err(|_| {
            bad(
                "STATIC_NODES",
                format!("{ip:?} (node {name}) is not an IP address"),
            )
        })?;
        endpoints.push(NodeEndpoint {
            node: name.trim().to_string(),
            ip,
            ready: true,
            pod: None,
            zone: None,
            terminating: false,
        });
    }
    if endpoints.is_empty() {
        return Err(bad("STATIC_NODES", "lists no nodes"));
    }
    Ok(NodeMap::from_endpoints(endpoints))
}

/// RFC 1123 label: what Service and namespace names must be.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["k8s-aggregator-mcp"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = settings(&[]).validate().unwrap();
        assert_eq!(c.service_name, "backend-mcp-service");
        assert_eq!(c.service_namespace, "mcp-server");
        assert_eq!(c.backend_port, 9028);
        assert_eq!(c.listen.port(), 9029);
        assert_eq!(c.backend_path, "/mcp");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = settings(&["--service-name", "Bad_Name"])
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, "SERVICE_NAME");
        let e = settings(&["--backend-path", "mcp"]).validate().unwrap_err();
        assert_eq!(e.setting, "BACKEND_PATH");
        let e = settings(&["--call-timeout-seconds", "0"])
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, "CALL_TIMEOUT_SECONDS");
        let e = settings(&["--static-nodes", "a=1.2.3"])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("STATIC_NODES"), "{e}");
        assert!(Cli::try_parse_from(["x", "--backend-port", "70000"]).is_err());
    }

    #[test]
    fn auth_modes_parse() {
        assert!(AuthModes::parse("none").unwrap().is_open());
        assert!(AuthModes::parse("").unwrap().is_open());
        let both = AuthModes::parse("oauth, Kubernetes").unwrap();
        assert!(both.oauth && both.kubernetes);
        assert_eq!(AuthModes::parse("ldap").unwrap_err().setting, "AUTH_MODE");
        assert!(AuthModes::parse("none,oauth").is_err());
    }

    #[test]
    fn oauth_settings_are_checked_and_defaulted() {
        let e = settings(&["--auth-mode", "oauth"]).validate().unwrap_err();
        assert_eq!(e.setting, "OAUTH_ISSUER");
        let e = settings(&["--auth-mode", "oauth", "--oauth-issuer", "https://as.test"])
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, "OAUTH_RESOURCE");
        let c = settings(&[
            "--auth-mode",
            "oauth",
            "--oauth-issuer",
            "https://a.test,https://b.test",
            "--oauth-resource",
            "https://gw.test/mcp",
            "--oauth-required-scopes",
            "mcp:tools, mcp:read mcp:tools",
        ])
        .validate()
        .unwrap();
        let o = c.oauth.unwrap();
        assert_eq!(o.issuers, ["https://a.test", "https://b.test"]);
        assert_eq!(o.audience, "https://gw.test/mcp");
        assert_eq!(o.required_scopes, ["mcp:tools", "mcp:read"]);
        assert_eq!(o.scopes_supported, o.required_scopes);
        assert_eq!(o.groups_claim, "groups");
        assert_eq!(o.leeway, Duration::from_secs(30));
        assert_eq!(o.keys, mcp_protocol::bearer::KeySource::Discover);
        assert!(settings(&[]).validate().unwrap().oauth.is_none());
    }

    #[test]
    fn backend_extra_headers_parse_and_reserved_ones_are_refused() {
        let h =
            parse_extra_headers("X", "X-Tenant: blue; Authorization: Bearer abc\nX-Two:2").unwrap();
        let names: Vec<_> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-tenant", "authorization", "x-two"]);
        assert_eq!(h[1].1, "Bearer abc");
        assert!(parse_extra_headers("X", "Content-Type: text/plain").is_err());
        assert!(parse_extra_headers("X", "Mcp-Session-Id: x").is_err());
        let e = parse_extra_headers("X", "no colon secret-value").unwrap_err();
        assert!(!e.to_string().contains("secret-value"), "{e}");
        let e = settings(&[
            "--backend-token-file",
            "/tmp/t",
            "--backend-extra-headers",
            "Authorization: Bearer x",
        ])
        .validate()
        .unwrap_err();
        assert_eq!(e.setting, "BACKEND_EXTRA_HEADERS");
    }

    #[test]
    fn kubernetes_auth_and_policy_settings() {
        let c = settings(&[]).validate().unwrap();
        assert_eq!(c.kubernetes_auth.audiences, ["k8s-aggregator-mcp"]);
        assert_eq!(c.kubernetes_auth.cache_ttl, Duration::from_secs(60));
        assert_eq!(c.kubernetes_auth.review_timeout, Duration::from_secs(5));
        assert_eq!(c.policy_file, None);
        assert_eq!(c.policy_reload, Duration::from_secs(5));
        assert!(!c.audit_arguments);
        let c = settings(&[
            "--token-review-audiences",
            "a, b",
            "--audit-arguments",
            "true",
            "--policy-file",
            "/p.yaml",
        ])
        .validate()
        .unwrap();
        assert_eq!(c.kubernetes_auth.audiences, ["a", "b"]);
        assert!(c.audit_arguments);
        assert_eq!(
            c.policy_file.as_deref(),
            Some(std::path::Path::new("/p.yaml"))
        );
        let e = settings(&[
            "--auth-mode",
            "kubernetes",
            "--token-review-audiences",
            " , ",
        ])
        .validate()
        .unwrap_err();
        assert_eq!(e.setting, "TOKEN_REVIEW_AUDIENCES");
        let e = settings(&["--policy-reload-seconds", "0"])
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, "POLICY_RELOAD_SECONDS");
    }

    #[test]
    fn static_nodes_parse() {
        let m = parse_static_nodes("a=127.0.0.2, b=::1").unwrap();
        assert_eq!(m.get("a").unwrap().ip.to_string(), "127.0.0.2");
        assert_eq!(m.get("b").unwrap().ip.to_string(), "::1");
    }
}
