//! `AUTH_MODE=oauth`: the gateway as an OAuth 2.1 resource server, as the MCP
//! authorization specification requires.
//!
//! - Access tokens are JWTs checked by [`mcp_protocol::bearer`] against the issuer's
//!   keys: signature (asymmetric algorithms only), `iss` (one of `OAUTH_ISSUER`), `aud`
//!   containing `OAUTH_AUDIENCE` (RFC 8707: tokens minted for another resource are
//!   refused), `exp` / `nbf` with `OAUTH_LEEWAY_SECONDS`.
//! - The caller is `sub`, the groups claim (`OAUTH_GROUPS_CLAIM`), and the scopes from
//!   `scope` (space-separated) or `scp` (array); missing `OAUTH_REQUIRED_SCOPES` is a
//!   403 `insufficient_scope`.
//! - Protected Resource Metadata (RFC 9728) is served at
//!   `/.well-known/oauth-protected-resource` and at its path-suffixed form for the MCP
//!   endpoint; refusals point at it with `resource_metadata=`.

use bytes::Bytes;
use mcp_protocol::bearer::{BearerConfig, BearerError, BearerVerifier, Claims, FetchConfig};
use serde_json::{Value, json};
use std::sync::Arc;

use super::{AuthError, BoxFuture, Caller, CallerSource, Challenge, TokenVerifier};
use crate::config::OAuthConfig;

/// The well-known path prefix of RFC 9728.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// `resource_name` in the metadata.
const RESOURCE_NAME: &str = "Kubernetes node tools gateway (k8s-aggregator-mcp)";

/// Checks OAuth access tokens of the configured issuers.
pub struct OAuthVerifier {
    /// One verifier per accepted issuer (each with its own key cache).
    issuers: Vec<Arc<BearerVerifier>>,
    /// What a verified token must hold, and how it maps to a caller.
    rules: Arc<CallerRules>,
}

/// Claims to caller: subject, groups, scopes, and the scopes required.
struct CallerRules {
    /// Scopes every token needs.
    required_scopes: Vec<String>,
    /// The claim holding the groups.
    groups_claim: String,
}

impl OAuthVerifier {
    /// Verifiers for every issuer of `config` (reads CA files; fetches nothing).
    pub fn new(config: &OAuthConfig) -> Result<Self, BearerError> {
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| {
                let mut c = BearerConfig::new(issuer.clone(), config.audience.clone());
                c.keys = config.keys.clone();
                c.leeway = config.leeway;
                c.min_refresh_interval = config.min_refresh;
                c.fetch = FetchConfig {
                    ca_file: config.ca_file.clone(),
                    ..FetchConfig::default()
                };
                BearerVerifier::new(c).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OAuthVerifier {
            issuers,
            rules: Arc::new(CallerRules {
                required_scopes: config.required_scopes.clone(),
                groups_claim: config.groups_claim.clone(),
            }),
        })
    }

    /// The per-issuer verifiers (to load their keys at start-up).
    pub fn verifiers(&self) -> &[Arc<BearerVerifier>] {
        &self.issuers
    }

    /// The verifier for this token's (unverified) issuer; with one issuer, that one.
    fn pick(&self, token: &str) -> Option<Arc<BearerVerifier>> {
        if let [only] = self.issuers.as_slice() {
            return Some(only.clone());
        }
        let iss = mcp_protocol::bearer::unverified_issuer(token)?;
        self.issuers.iter().find(|v| v.issuer() == iss).cloned()
    }
}

impl CallerRules {
    /// The caller a verified token describes, or why it may not call.
    fn caller(&self, claims: &Claims) -> Result<Caller, AuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::Invalid("the token has no sub claim".into()))?;
        let scopes = scopes_of(claims);
        if self
            .required_scopes
            .iter()
            .any(|r| !scopes.iter().any(|s| s == r))
        {
            return Err(AuthError::InsufficientScope {
                required: self.required_scopes.clone(),
            });
        }
        Ok(Caller {
            source: CallerSource::OAuth,
            subject: subject.to_string(),
            groups: strings(claims.get(&self.groups_claim)),
            scopes,
        })
    }
}

impl TokenVerifier for OAuthVerifier {
    fn verify(&self, token: &str) -> BoxFuture<Result<Caller, AuthError>> {
        let Some(verifier) = self.pick(token) else {
            return Box::pin(async {
                Err(AuthError::Invalid(
                    "the token was not issued by an accepted authorization server".into(),
                ))
            });
        };
        let token = token.to_owned();
        let rules = self.rules.clone();
        Box::pin(async move {
            let claims = verifier.verify(&token).await.map_err(to_auth_error)?;
            rules.caller(&claims)
        })
    }
}

fn to_auth_error(e: BearerError) -> AuthError {
    if e.is_unavailable() {
        AuthError::Unavailable(e.to_string())
    } else {
        AuthError::Invalid(e.to_string())
    }
}

/// Scopes from `scope` (RFC 8693/9068: space-separated) or `scp` (array or string).
fn scopes_of(claims: &Claims) -> Vec<String> {
    match claims.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => match claims.get("scp") {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            other => strings(other),
        },
    }
}

/// An array of strings (other items skipped) or a single string.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The RFC 9728 metadata URL of `resource`: its origin, the well-known prefix, then
/// its path (`https://gw/mcp` -> `https://gw/.well-known/oauth-protected-resource/mcp`).
pub fn metadata_url(resource: &str) -> Result<String, String> {
    let (origin, path) = split_resource(resource)?;
    Ok(format!("{origin}{METADATA_PATH}{path}"))
}

/// Origin and path (without trailing `/`) of an absolute http(s) URL without query
/// or fragment.
fn split_resource(resource: &str) -> Result<(String, String), String> {
    if resource.contains('#') || resource.contains('?') {
        return Err(format!(
            "{resource:?} must not have a query or fragment (RFC 8707)"
        ));
    }
    let uri: http::Uri = resource
        .parse()
        .map_err(|_| format!("{resource:?} is not a URL"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    let Some(authority) = uri
        .authority()
        .filter(|_| scheme == "https" || scheme == "http")
    else {
        return Err(format!(
            "{resource:?} is not an absolute http(s) URL like https://mcp.example.com/mcp"
        ));
    };
    let path = uri.path().trim_end_matches('/').to_string();
    Ok((
        format!("{}://{}", scheme, authority.as_str().to_ascii_lowercase()),
        path,
    ))
}

/// The paths this gateway serves the metadata on: the root form and the form suffixed
/// with the resource's path (and with `/mcp`, the gateway's own endpoint path).
pub fn metadata_paths(resource: &str) -> Vec<String> {
    let mut paths = vec![METADATA_PATH.to_string(), format!("{METADATA_PATH}/mcp")];
    if let Ok((_, path)) = split_resource(resource)
        && !path.is_empty()
    {
        let p = format!("{METADATA_PATH}{path}");
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    paths
}

/// The Protected Resource Metadata document (RFC 9728 section 2), serialized once.
pub fn metadata_document(config: &OAuthConfig) -> Bytes {
    let mut doc = json!({
        "resource": config.resource,
        "authorization_servers": config.issuers,
        "bearer_methods_supported": ["header"],
        "resource_name": RESOURCE_NAME,
    });
    if !config.scopes_supported.is_empty() {
        doc["scopes_supported"] = json!(config.scopes_supported);
    }
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// What refusals tell the client: where the metadata is, which scopes to ask for.
pub fn challenge(config: &OAuthConfig) -> Challenge {
    Challenge {
        resource_metadata: metadata_url(&config.resource).ok(),
        scopes: config.required_scopes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn metadata_urls_follow_rfc_9728() {
        assert_eq!(
            metadata_url("https://MCP.example.com/mcp").unwrap(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com").unwrap(),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:9029/gw/mcp/").unwrap(),
            "http://127.0.0.1:9029/.well-known/oauth-protected-resource/gw/mcp"
        );
        assert!(metadata_url("mcp.example.com").is_err());
        assert!(metadata_url("https://mcp.example.com/mcp#x").is_err());
        assert_eq!(
            metadata_paths("https://gw.test/tenant/mcp"),
            [
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource/tenant/mcp"
            ]
        );
    }

    #[test]
    fn callers_carry_subject_groups_and_scopes_and_required_scopes_are_enforced() {
        let v = CallerRules {
            required_scopes: vec!["mcp:tools".into()],
            groups_claim: "roles".into(),
        };
        let c = v
            .caller(&claims(
                json!({"sub":"alice","scope":"openid mcp:tools","roles":["ops","dev"]}),
            ))
            .unwrap();
        assert_eq!(c.subject, "alice");
        assert_eq!(c.scopes, ["openid", "mcp:tools"]);
        assert_eq!(c.groups, ["ops", "dev"]);
        assert_eq!(c.source, CallerSource::OAuth);
        let c = v
            .caller(&claims(
                json!({"sub":"bob","scp":["mcp:tools"],"roles":"ops"}),
            ))
            .unwrap();
        assert_eq!(c.scopes, ["mcp:tools"]);
        assert_eq!(c.groups, ["ops"]);
        assert_eq!(
            v.caller(&claims(json!({"sub":"carol","scope":"openid"}))),
            Err(AuthError::InsufficientScope {
                required: vec!["mcp:tools".into()]
            })
        );
        assert!(matches!(
            v.caller(&claims(json!({"scope":"mcp:tools"}))),
            Err(AuthError::Invalid(_))
        ));
    }
}
