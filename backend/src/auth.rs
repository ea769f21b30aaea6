//! Who may call the node server (`CLIENT_AUTH`): only the gateway.
//!
//! The node server runs on the host network, so anyone who can reach a node's IP can
//! reach port 9028. With `CLIENT_AUTH=serviceaccount` every MCP request must carry the
//! gateway's projected ServiceAccount token (audience `TOKEN_AUDIENCE`), verified
//! offline against the cluster's service-account issuer keys (the API server's
//! `/openid/v1/jwks`, fetched with the pod's own ServiceAccount token and the cluster
//! CA), with the subject in `ALLOWED_SUBJECTS`. `CLIENT_AUTH=static` compares against a
//! token in `CLIENT_TOKEN_FILE` (re-read as the Secret changes), in constant time.
//! `CLIENT_AUTH=none` (the default, and the gateway's in-process demo) lets anyone in.
//!
//! A refused MCP request (any method, both eras) gets 401 with `WWW-Authenticate:
//! Bearer` (403 for a valid token of a subject not allowed; 503 when the keys cannot be
//! loaded: fail closed). `/healthz` stays open for the kubelet.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use mcp_protocol::bearer::{BearerConfig, BearerVerifier, FetchConfig, KeySource};
use mcp_protocol::body::{self, Body};
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::token_file::{self, TokenFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The ServiceAccount files every pod gets.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The `CLIENT_AUTH` settings of the node server.
#[derive(clap::Args, Debug, Clone)]
pub struct AuthSettings {
    /// Who may call /mcp: `none` (anyone), `serviceaccount` (the gateway's ServiceAccount
    /// token, verified against the cluster's issuer keys) or `static` (the token in
    /// CLIENT_TOKEN_FILE).
    #[arg(long, env = "CLIENT_AUTH", default_value = "none", value_parser = ["none", "serviceaccount", "static"])]
    pub client_auth: String,
    /// The service-account issuer (`iss` of the tokens; the API server's
    /// --service-account-issuer).
    #[arg(
        long,
        env = "TOKEN_ISSUER",
        default_value = "https://kubernetes.default.svc.cluster.local"
    )]
    pub token_issuer: String,
    /// The audience the gateway's projected token is minted for.
    #[arg(long, env = "TOKEN_AUDIENCE", default_value = "node-mcp-server")]
    pub token_audience: String,
    /// Where the issuer's keys are (empty: discover them from the issuer's metadata).
    #[arg(
        long,
        env = "JWKS_URL",
        default_value = "https://kubernetes.default.svc/openid/v1/jwks"
    )]
    pub jwks_url: String,
    /// A key-set file instead of JWKS_URL.
    #[arg(long, env = "JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// CA bundle for the key-set fetch (default: the pod's cluster CA, when present).
    #[arg(long, env = "JWKS_CA_FILE")]
    pub jwks_ca_file: Option<PathBuf>,
    /// Bearer token sent with the key-set fetch (default: the pod's own ServiceAccount
    /// token, when present).
    #[arg(long, env = "JWKS_TOKEN_FILE")]
    pub jwks_token_file: Option<PathBuf>,
    /// Subjects allowed to call, comma-separated (`*`: any subject with a valid token
    /// of that issuer and audience).
    #[arg(
        long,
        env = "ALLOWED_SUBJECTS",
        default_value = "system:serviceaccount:mcp-server:k8s-aggregator-mcp"
    )]
    pub allowed_subjects: String,
    /// The shared token for CLIENT_AUTH=static (a mounted Secret).
    #[arg(long, env = "CLIENT_TOKEN_FILE")]
    pub client_token_file: Option<PathBuf>,
}

/// Why the authentication settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {problem}")]
pub struct AuthConfigError {
    /// The setting at fault.
    pub setting: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn bad(setting: &'static str, problem: impl Into<String>) -> AuthConfigError {
    AuthConfigError {
        setting,
        problem: problem.into(),
    }
}

/// Which subjects may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedSubjects {
    /// Any subject of the issuer and audience.
    Any,
    /// Exactly these.
    Only(Vec<String>),
}

impl AllowedSubjects {
    /// Parses a comma list; `*` anywhere means any.
    pub fn parse(spec: &str) -> Self {
        let items: Vec<String> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if items.iter().any(|s| s == "*") {
            AllowedSubjects::Any
        } else {
            AllowedSubjects::Only(items)
        }
    }

    fn allows(&self, subject: &str) -> bool {
        match self {
            AllowedSubjects::Any => true,
            AllowedSubjects::Only(list) => list.iter().any(|s| s == subject),
        }
    }
}

/// The node server's client authentication.
pub enum ClientAuth {
    /// Anyone may call.
    None,
    /// A JWT of the service-account issuer with an allowed subject.
    ServiceAccount {
        /// Checks the token.
        verifier: Arc<BearerVerifier>,
        /// Who may call.
        subjects: AllowedSubjects,
    },
    /// The token in a file.
    Static(Arc<TokenFile>),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token: 401.
    Missing,
    /// A token that was checked and refused: 401 `invalid_token`.
    Invalid(String),
    /// A valid token of a subject not allowed: 403.
    Forbidden(String),
    /// The token cannot be checked now: 503.
    Unavailable(String),
}

impl ClientAuth {
    /// The authentication `settings` describe; for `serviceaccount`, key loading
    /// starts in the background (inside a tokio runtime).
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        match settings.client_auth.as_str() {
            "none" => Ok(ClientAuth::None),
            "static" => {
                let path = settings.client_token_file.as_ref().ok_or_else(|| {
                    bad(
                        "CLIENT_TOKEN_FILE",
                        "CLIENT_AUTH=static needs the file holding the token",
                    )
                })?;
                let file = TokenFile::load(path);
                if file.current().is_none() {
                    return Err(bad(
                        "CLIENT_TOKEN_FILE",
                        format!("{} holds no usable token", path.display()),
                    ));
                }
                if tokio::runtime::Handle::try_current().is_ok() {
                    // Runs for the life of the process.
                    drop(file.watch(token_file::POLL_INTERVAL, |_| {}));
                }
                Ok(ClientAuth::Static(file))
            }
            "serviceaccount" => {
                let keys = match (&settings.jwks_file, settings.jwks_url.trim()) {
                    (Some(f), _) => KeySource::File(f.clone()),
                    (None, "") => KeySource::Discover,
                    (None, url) => KeySource::Url(url.to_string()),
                };
                let mut config =
                    BearerConfig::new(settings.token_issuer.trim(), settings.token_audience.trim());
                let remote = !matches!(keys, KeySource::File(_));
                config.keys = keys;
                config.fetch = FetchConfig {
                    ca_file: settings
                        .jwks_ca_file
                        .clone()
                        .or_else(|| existing(&Path::new(SA_DIR).join("ca.crt")))
                        .filter(|_| remote),
                    token_file: settings
                        .jwks_token_file
                        .clone()
                        .or_else(|| existing(&Path::new(SA_DIR).join("token")))
                        .filter(|_| remote),
                    ..FetchConfig::default()
                };
                let verifier =
                    BearerVerifier::new(config).map_err(|e| bad("JWKS_URL", e.to_string()))?;
                let subjects = AllowedSubjects::parse(&settings.allowed_subjects);
                if subjects == AllowedSubjects::Only(Vec::new()) {
                    return Err(bad(
                        "ALLOWED_SUBJECTS",
                        "names nobody: list the gateway's ServiceAccount (system:serviceaccount:NS:NAME) or `*`",
                    ));
                }
                let verifier = Arc::new(verifier);
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let v = verifier.clone();
                    rt.spawn(async move {
                        match v.prefetch().await {
                            Ok(n) => tracing::info!(issuer = %v.issuer(), keys = n, "loaded the service-account issuer keys"),
                            Err(e) => tracing::warn!(issuer = %v.issuer(), error = %e, "cannot load the service-account issuer keys yet; MCP requests get 503 until they load"),
                        }
                    });
                }
                Ok(ClientAuth::ServiceAccount { verifier, subjects })
            }
            other => Err(bad(
                "CLIENT_AUTH",
                format!("unknown mode {other:?}: use none, serviceaccount or static"),
            )),
        }
    }

    /// Whether anyone may call.
    pub fn is_open(&self) -> bool {
        matches!(self, ClientAuth::None)
    }

    /// Checks the credential of a request with these headers.
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if self.is_open() {
            return Ok(());
        }
        let token = bearer_token(headers).ok_or(Refusal::Missing)?;
        match self {
            ClientAuth::None => Ok(()),
            ClientAuth::Static(file) => match file.current() {
                Some(expected) if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
                Some(_) => Err(Refusal::Invalid("the token is not the expected one".into())),
                None => Err(Refusal::Unavailable(
                    "the expected token cannot be read (CLIENT_TOKEN_FILE)".into(),
                )),
            },
            ClientAuth::ServiceAccount { verifier, subjects } => {
                let claims = verifier.verify(token).await.map_err(|e| {
                    if e.is_unavailable() {
                        Refusal::Unavailable(e.to_string())
                    } else {
                        Refusal::Invalid(e.to_string())
                    }
                })?;
                let subject = claims.get("sub").and_then(|s| s.as_str()).unwrap_or("");
                if subjects.allows(subject) {
                    Ok(())
                } else {
                    Err(Refusal::Forbidden(format!(
                        "{} may not call this node server (ALLOWED_SUBJECTS)",
                        subject.chars().take(120).collect::<String>()
                    )))
                }
            }
        }
    }
}

impl Refusal {
    /// A short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Invalid(_) => "invalid",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::Unavailable(_) => "unavailable",
        }
    }

    /// The HTTP answer: status, `WWW-Authenticate`, JSON-RPC error body.
    pub fn response(&self) -> Response<Body> {
        let (status, message, challenge) = match self {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                "authentication required: only the gateway may call this node server".to_string(),
                Some("Bearer realm=\"node-mcp-server\""),
            ),
            Refusal::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                format!("invalid token: {why}"),
                Some("Bearer realm=\"node-mcp-server\", error=\"invalid_token\""),
            ),
            Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, why.clone(), None),
            Refusal::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot check the token now: {why}"),
                None,
            ),
        };
        let mut resp = body::json_response(
            status,
            jsonrpc::error_bytes(None, &ErrorObject::invalid_request(message)),
        );
        if let Some(c) = challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        resp
    }
}

fn existing(path: &Path) -> Option<PathBuf> {
    path.exists().then(|| path.to_path_buf())
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[tokio::test]
    async fn static_tokens_compare_exactly_and_refusals_say_bearer() {
        let path = std::env::temp_dir().join(format!(
            "node-mcp-static-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let auth = ClientAuth::Static(TokenFile::load(&path));
        assert_eq!(auth.check(&headers("Bearer s3cret-token")).await, Ok(()));
        assert_eq!(auth.check(&HeaderMap::new()).await, Err(Refusal::Missing));
        let e = auth
            .check(&headers("Bearer s3cret-tokem"))
            .await
            .unwrap_err();
        assert!(matches!(e, Refusal::Invalid(_)));
        let r = e.response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(
            auth.check(&headers("Basic s3cret-token")).await,
            Err(Refusal::Missing)
        );
        assert_eq!(
            AllowedSubjects::parse("a, *"),
            AllowedSubjects::Any,
            "star means any"
        );
        assert!(AllowedSubjects::parse("a,b").allows("b"));
        assert!(!AllowedSubjects::parse("a,b").allows("c"));
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }
}
