//! Every setting of the gateway in one place: flag, environment variable, default and
//! validation. A bad value stops the start with a message that names the setting.

use clap::{Args, Parser, Subcommand};
use mcp_protocol::headers::OriginPolicy;
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
    /// Browser origins allowed to call the gateway, comma-separated (`*`: any). Loopback
    /// origins are always allowed; requests without Origin are not browser requests.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// Log format: text (terminal) or json (cluster).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Seconds to wait at start-up for a ready backend before giving up (0: refuse to
    /// start at once when the Service has no ready endpoint, as the seed did).
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
    /// How callers of /mcp authenticate: `none`, `oauth` (JWT access tokens),
    /// `kubernetes` (tokens checked with TokenReview), or `oauth,kubernetes` (either).
    #[arg(long, env = "AUTH_MODE", default_value = "none")]
    pub auth_mode: String,

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
}

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
    /// Kubernetes mode (TokenReview) settings.
    pub kubernetes_auth: KubernetesAuthConfig,
    /// The authorization policy file, if any.
    pub policy_file: Option<std::path::PathBuf>,
    /// How often the policy file is checked for changes.
    pub policy_reload: Duration,
    /// Whether audit lines carry argument values.
    pub audit_arguments: bool,
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
        if self.call_timeout_seconds == 0 || self.call_timeout_seconds > 86_400 {
            return Err(bad("CALL_TIMEOUT_SECONDS", "must be 1-86400"));
        }
        if self.max_body_bytes < 1024 {
            return Err(bad("MAX_BODY_BYTES", "must be at least 1024"));
        }
        if self.max_sessions == 0 {
            return Err(bad("MAX_SESSIONS", "must be at least 1"));
        }
        let auth_modes = AuthModes::parse(&self.auth_mode)?;
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
            listen: SocketAddr::new(self.bind_address, self.frontend_port),
            call_timeout: Duration::from_secs(self.call_timeout_seconds),
            origins: OriginPolicy::from_list(&self.allowed_origins),
            json_logs: self.log_format == "json",
            startup_wait: Duration::from_secs(self.startup_wait_seconds),
            static_nodes,
            max_body_bytes: self.max_body_bytes,
            session_idle: Duration::from_secs(self.session_idle_seconds),
            max_sessions: self.max_sessions,
            auth_modes,
            kubernetes_auth: KubernetesAuthConfig {
                audiences,
                review_timeout: Duration::from_secs(self.token_review_timeout_seconds),
                cache_ttl: Duration::from_secs(self.token_cache_seconds),
                cache_max_entries: self.token_cache_max_entries,
            },
            policy_file,
            policy_reload: Duration::from_secs(self.policy_reload_seconds),
            audit_arguments: self.audit_arguments,
        })
    }
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
