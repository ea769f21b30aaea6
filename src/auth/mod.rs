//! Who is calling: client authentication at the gateway's edge.
//!
//! Every `/mcp` request passes [`Authenticator::authenticate`] before the MCP endpoint
//! sees it. The result is a [`Caller`] put into the request's extensions, where the
//! tool handler reads it (policy, audit). The bearer token itself stops here: it is
//! never stored in the caller, forwarded to a backend or written to a log.
//!
//! Each mode (`AUTH_MODE`) is a [`TokenVerifier`]; with several, a token is accepted
//! when any of them accepts it. With none (`AUTH_MODE=none`) every request is the
//! anonymous caller.
//!
//! Modes: [`oauth`] (OAuth 2.1 access tokens, RFC 9728 metadata).

pub mod kubernetes;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use mcp_protocol::body::{self, Body};
use mcp_protocol::jsonrpc::{self, ErrorObject};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub mod oauth;

/// A boxed future returned by verifiers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Which mode vouched for the caller.
    pub source: CallerSource,
    /// The subject: the OAuth `sub`, or the Kubernetes user name
    /// (`system:serviceaccount:<namespace>:<name>` for a ServiceAccount).
    pub subject: String,
    /// Groups: the OAuth groups claim, or the Kubernetes groups.
    pub groups: Vec<String>,
    /// OAuth scopes granted by the token (empty for Kubernetes callers).
    pub scopes: Vec<String>,
}

impl Caller {
    /// The caller when authentication is off.
    pub fn anonymous() -> Self {
        Caller {
            source: CallerSource::Anonymous,
            subject: "anonymous".into(),
            groups: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// The caller as one string (`Source:subject`): what parked calls, tasks and
    /// session caps belong to.
    pub fn key(&self) -> String {
        format!("{:?}:{}", self.source, self.subject)
    }
}

/// Which mode authenticated a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallerSource {
    /// `AUTH_MODE=none`.
    Anonymous,
    /// An OAuth 2.1 JWT access token.
    OAuth,
    /// A Kubernetes token checked with TokenReview.
    Kubernetes,
}

/// Why a token was not accepted. The texts name the problem, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header: 401.
    #[error("authentication required: send Authorization: Bearer <token>")]
    Missing,
    /// The token was checked and refused (bad signature, expired, wrong issuer or
    /// audience...): 401 with `error="invalid_token"`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A valid token without the scopes the gateway requires: 403 with
    /// `error="insufficient_scope"`.
    #[error("insufficient scope: the token lacks {}", .required.join(" "))]
    InsufficientScope {
        /// The scopes needed.
        required: Vec<String>,
    },
    /// The token could not be checked (key set or TokenReview unreachable): 503, the
    /// gateway fails closed.
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// A short label for metrics and audit lines.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Invalid(_) => "invalid",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::Unavailable(_) => "unavailable",
        }
    }

    /// Orders errors by how useful they are to the client when several modes refused
    /// the same token: a scope problem beats an outage, which beats a plain refusal.
    fn rank(&self) -> u8 {
        match self {
            AuthError::Missing => 0,
            AuthError::Invalid(_) => 1,
            AuthError::Unavailable(_) => 2,
            AuthError::InsufficientScope { .. } => 3,
        }
    }
}

/// One authentication mode: checks a bearer token.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Checks `token` (without the `Bearer ` prefix).
    fn verify(&self, token: &str) -> BoxFuture<Result<Caller, AuthError>>;
}

/// What a 401 / 403 tells the client about where to get a token (RFC 6750 / RFC 9728).
#[derive(Debug, Clone, Default)]
pub struct Challenge {
    /// The Protected Resource Metadata URL (`resource_metadata=`), in OAuth mode.
    pub resource_metadata: Option<String>,
    /// Scopes to ask for (`scope=`).
    pub scopes: Vec<String>,
}

/// The gateway's authentication: the configured modes, in order.
#[derive(Clone, Default)]
pub struct Authenticator {
    verifiers: Vec<Arc<dyn TokenVerifier>>,
    challenge: Challenge,
}

impl Authenticator {
    /// No authentication: everyone is [`Caller::anonymous`].
    pub fn open() -> Self {
        Authenticator::default()
    }

    /// Authentication by `verifiers` (any one accepting is enough); `challenge` goes
    /// into the `WWW-Authenticate` header of refusals.
    pub fn new(verifiers: Vec<Arc<dyn TokenVerifier>>, challenge: Challenge) -> Self {
        Authenticator {
            verifiers,
            challenge,
        }
    }

    /// Whether any mode is on.
    pub fn enabled(&self) -> bool {
        !self.verifiers.is_empty()
    }

    /// The caller of a request with these headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        if self.verifiers.is_empty() {
            return Ok(Caller::anonymous());
        }
        let token = bearer_token(headers).ok_or(AuthError::Missing)?;
        let mut best: Option<AuthError> = None;
        for v in &self.verifiers {
            match v.verify(token).await {
                Ok(caller) => return Ok(caller),
                Err(e) => {
                    if best.as_ref().is_none_or(|b| e.rank() > b.rank()) {
                        best = Some(e);
                    }
                }
            }
        }
        Err(best.unwrap_or(AuthError::Missing))
    }

    /// The HTTP refusal for `error`: status, `WWW-Authenticate` and a JSON-RPC error
    /// body that says what to do.
    pub fn refusal(&self, error: &AuthError) -> Response<Body> {
        let status = match error {
            AuthError::Missing | AuthError::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut resp = body::json_response(
            status,
            jsonrpc::error_bytes(None, &ErrorObject::invalid_request(error.to_string())),
        );
        if status != StatusCode::SERVICE_UNAVAILABLE
            && let Ok(v) = HeaderValue::from_str(&self.www_authenticate(error))
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }

    /// The `WWW-Authenticate: Bearer ...` value for a refusal.
    pub fn www_authenticate(&self, error: &AuthError) -> String {
        let mut parts = Vec::new();
        if let Some(url) = &self.challenge.resource_metadata {
            parts.push(format!("resource_metadata=\"{url}\""));
        }
        let scopes = match error {
            AuthError::InsufficientScope { required } => required.clone(),
            _ => self.challenge.scopes.clone(),
        };
        if !scopes.is_empty() {
            parts.push(format!("scope=\"{}\"", scopes.join(" ")));
        }
        match error {
            AuthError::Invalid(_) => parts.push("error=\"invalid_token\"".into()),
            AuthError::InsufficientScope { .. } => {
                parts.push("error=\"insufficient_scope\"".into())
            }
            AuthError::Missing | AuthError::Unavailable(_) => {}
        }
        if parts.is_empty() {
            "Bearer".into()
        } else {
            format!("Bearer {}", parts.join(", "))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<Caller, AuthError>);
    impl TokenVerifier for Fixed {
        fn verify(&self, _token: &str) -> BoxFuture<Result<Caller, AuthError>> {
            let r = self.0.clone();
            Box::pin(async move { r })
        }
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[tokio::test]
    async fn any_mode_accepting_is_enough_and_the_best_refusal_wins() {
        let scope = AuthError::InsufficientScope {
            required: vec!["mcp:tools".into()],
        };
        let ok = Caller {
            source: CallerSource::Kubernetes,
            subject: "system:serviceaccount:a:b".into(),
            groups: vec![],
            scopes: vec![],
        };
        let auth = Authenticator::new(
            vec![
                Arc::new(Fixed(Err(scope.clone()))),
                Arc::new(Fixed(Ok(ok.clone()))),
            ],
            Challenge::default(),
        );
        assert_eq!(auth.authenticate(&headers(Some("Bearer t"))).await, Ok(ok));
        assert_eq!(
            auth.authenticate(&headers(None)).await,
            Err(AuthError::Missing)
        );
        let auth = Authenticator::new(
            vec![
                Arc::new(Fixed(Err(AuthError::Invalid("bad".into())))),
                Arc::new(Fixed(Err(scope.clone()))),
            ],
            Challenge::default(),
        );
        assert_eq!(
            auth.authenticate(&headers(Some("bearer t"))).await,
            Err(scope)
        );
        let open = Authenticator::open();
        assert_eq!(
            open.authenticate(&headers(None)).await,
            Ok(Caller::anonymous())
        );
    }

    #[test]
    fn challenges_follow_rfc_6750_and_9728() {
        let auth = Authenticator::new(
            vec![],
            Challenge {
                resource_metadata: Some(
                    "https://gw.example/.well-known/oauth-protected-resource/mcp".into(),
                ),
                scopes: vec!["mcp:tools".into()],
            },
        );
        assert_eq!(
            auth.www_authenticate(&AuthError::Missing),
            "Bearer resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\""
        );
        let r = auth.refusal(&AuthError::InsufficientScope {
            required: vec!["mcp:admin".into()],
        });
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let v = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(v.contains("scope=\"mcp:admin\""), "{v}");
        assert!(v.contains("error=\"insufficient_scope\""), "{v}");
        assert_eq!(
            auth.refusal(&AuthError::Invalid("expired".into())).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(bearer_token(&headers(Some("Basic abc"))), None);
        assert_eq!(bearer_token(&headers(Some("Bearer  abc "))), Some("abc"));
    }
}
