//! Kubernetes mode (`AUTH_MODE=kubernetes`): in-cluster agents present a Kubernetes
//! token (ideally a projected ServiceAccount token minted for the gateway's audience),
//! and the gateway asks the API server whether it is valid with the TokenReview API
//! (`authentication.k8s.io/v1`, the call `kubectl auth` and every aggregated API server
//! make; the gateway's ServiceAccount gets it through the built-in
//! `system:auth-delegator` ClusterRole).
//!
//! - `spec.audiences` is `TOKEN_REVIEW_AUDIENCES`; an answer counts only when
//!   `status.authenticated` is true **and** `status.audiences` intersects what was
//!   asked (a token for another service is refused even if the API server accepts it).
//! - The caller is the reviewed user: subject = user name
//!   (`system:serviceaccount:<ns>:<name>` for a ServiceAccount), groups = its groups.
//! - Accepted tokens are cached for `TOKEN_CACHE_SECONDS`, keyed by the SHA-256 of the
//!   token (the token itself is never kept), never past the token's own `exp` when it
//!   is a JWT, in a bounded map. Refusals are not cached: a token that becomes valid
//!   (clock skew, a just-created ServiceAccount) is accepted on the next try.
//! - An API server that is down, slow (`TOKEN_REVIEW_TIMEOUT_SECONDS`) or refuses the
//!   review itself (RBAC missing) fails closed: [`AuthError::Unavailable`], a 503.

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{AuthError, BoxFuture, Caller, CallerSource, TokenVerifier};
use crate::config::{Config, KubernetesAuthConfig};

/// The Kubernetes verifier for `config`, asking the API server `client` talks to.
pub fn verifier(config: &Config, client: kube::Client) -> Arc<dyn TokenVerifier> {
    Arc::new(TokenReviewVerifier::new(
        client,
        config.kubernetes_auth.clone(),
    ))
}

/// Checks tokens with TokenReview, caching positive answers.
pub struct TokenReviewVerifier {
    /// Shared with the futures `verify` returns (they are `'static`).
    inner: Arc<Inner>,
}

struct Inner {
    /// `POST /apis/authentication.k8s.io/v1/tokenreviews` (cluster-scoped).
    api: Api<TokenReview>,
    /// Audiences, deadline, cache size and lifetime.
    settings: KubernetesAuthConfig,
    /// Accepted tokens by SHA-256; a std mutex, held only for a map operation.
    cache: Mutex<TokenCache>,
    /// Caps TokenReviews in flight, so a burst of new (or bogus) tokens cannot flood
    /// the API server; a review waiting here counts against its deadline.
    in_flight: tokio::sync::Semaphore,
}

/// Most TokenReviews in flight at once (a semaphore in the verifier).
pub const MAX_CONCURRENT_REVIEWS: usize = 32;

impl TokenReviewVerifier {
    /// A verifier using `client` with `settings`.
    pub fn new(client: kube::Client, settings: KubernetesAuthConfig) -> Self {
        let cache = TokenCache::new(settings.cache_max_entries);
        TokenReviewVerifier {
            inner: Arc::new(Inner {
                api: Api::all(client),
                settings,
                cache: Mutex::new(cache),
                in_flight: tokio::sync::Semaphore::new(MAX_CONCURRENT_REVIEWS),
            }),
        }
    }
}

impl TokenVerifier for TokenReviewVerifier {
    fn verify(&self, token: &str) -> BoxFuture<Result<Caller, AuthError>> {
        let inner = self.inner.clone();
        let key = token_hash(token);
        let token = token.to_string();
        Box::pin(async move {
            if let Some(caller) = inner.cached(&key) {
                return Ok(caller);
            }
            let caller = inner.review(&token).await?;
            inner.remember(key, &token, &caller);
            Ok(caller)
        })
    }
}

impl Inner {
    fn cached(&self, key: &[u8; 32]) -> Option<Caller> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key, Instant::now())
    }

    fn remember(&self, key: [u8; 32], token: &str, caller: &Caller) {
        let mut ttl = self.settings.cache_ttl;
        if let Some(left) = jwt_expiry(token).map(|exp| time_left(exp, SystemTime::now())) {
            ttl = ttl.min(left);
        }
        if ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key, caller.clone(), Instant::now() + ttl);
    }

    async fn review(&self, token: &str) -> Result<Caller, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                audiences: Some(self.settings.audiences.clone()),
                token: token.to_string(),
            },
            ..TokenReview::default()
        };
        let answer = tokio::time::timeout(self.settings.review_timeout, async {
            let _permit = self.in_flight.acquire().await;
            self.api.create(&PostParams::default(), &review).await
        })
        .await;
        let answer = match answer {
            Err(_) => {
                tracing::warn!(
                    timeout_s = self.settings.review_timeout.as_secs(),
                    "TokenReview timed out; refusing the request (fail closed)"
                );
                return Err(AuthError::Unavailable(format!(
                    "the Kubernetes API server did not answer the TokenReview within {} s",
                    self.settings.review_timeout.as_secs()
                )));
            }
            Ok(Err(e)) => {
                let text = review_error_text(&e);
                tracing::warn!(error = %text, "TokenReview failed; refusing the request (fail closed)");
                return Err(AuthError::Unavailable(text));
            }
            Ok(Ok(answer)) => answer,
        };
        judge(answer.status.unwrap_or_default(), &self.settings.audiences)
    }
}

/// The caller a TokenReview status vouches for, or why not.
fn judge(status: TokenReviewStatus, asked: &[String]) -> Result<Caller, AuthError> {
    if status.authenticated != Some(true) {
        let why = status
            .error
            .filter(|e| !e.is_empty())
            .map(|e| format!("Kubernetes refused the token ({})", clip(&e, 300)))
            .unwrap_or_else(|| "Kubernetes refused the token".into());
        return Err(AuthError::Invalid(why));
    }
    let granted = status.audiences.unwrap_or_default();
    if !granted.iter().any(|a| asked.contains(a)) {
        return Err(AuthError::Invalid(format!(
            "the token is not meant for this gateway: it is valid for audiences [{}], this gateway accepts [{}] (mint one with `kubectl create token <serviceaccount> --audience {}`)",
            granted.join(", "),
            asked.join(", "),
            asked.first().map(String::as_str).unwrap_or("")
        )));
    }
    let user = status.user.unwrap_or_default();
    let subject = user.username.filter(|u| !u.is_empty()).ok_or_else(|| {
        AuthError::Invalid("Kubernetes accepted the token but named no user".into())
    })?;
    Ok(Caller {
        source: CallerSource::Kubernetes,
        subject,
        groups: user.groups.unwrap_or_default(),
        scopes: Vec::new(),
    })
}

/// A TokenReview call error in words for the client and the log (never the token).
fn review_error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => format!(
            "the Kubernetes API server refused the gateway's TokenReview ({} {}): the gateway's ServiceAccount needs create on tokenreviews (ClusterRoleBinding to system:auth-delegator)",
            status.code,
            clip(&status.message, 300)
        ),
        kube::Error::Api(status) => format!(
            "the Kubernetes API server could not review the token ({} {})",
            status.code,
            clip(&status.message, 300)
        ),
        other => format!(
            "the Kubernetes API server is unreachable for TokenReview ({})",
            clip(&other.to_string(), 300)
        ),
    }
}

use crate::gateway::clip_chars as clip;

/// SHA-256 of the token: the cache key (a stolen heap dump shows no usable token).
fn token_hash(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The `exp` claim of a JWT, read without checking the signature: only used to bound
/// how long a token the API server *already accepted* stays cached.
fn jwt_expiry(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

/// Time from `now` until the Unix time `exp` (zero when past).
fn time_left(exp: u64, now: SystemTime) -> Duration {
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    Duration::from_secs(exp.saturating_sub(now))
}

/// Accepted tokens by hash, each until its deadline; at most `max` entries.
struct TokenCache {
    /// Token hash -> (caller, accepted until).
    entries: HashMap<[u8; 32], (Caller, Instant)>,
    /// Capacity (TOKEN_CACHE_MAX_ENTRIES).
    max: usize,
}

impl TokenCache {
    fn new(max: usize) -> Self {
        TokenCache {
            entries: HashMap::new(),
            max: max.max(1),
        }
    }

    fn get(&mut self, key: &[u8; 32], now: Instant) -> Option<Caller> {
        match self.entries.get(key) {
            Some((caller, until)) if *until > now => Some(caller.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, key: [u8; 32], caller: Caller, until: Instant) {
        if self.entries.len() >= self.max && !self.entries.contains_key(&key) {
            let now = Instant::now();
            self.entries.retain(|_, (_, u)| *u > now);
            if self.entries.len() >= self.max {
                // Still full of live entries: drop the one that would expire first.
                if let Some(soonest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, u))| *u)
                    .map(|(k, _)| *k)
                {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(key, (caller, until));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;

    fn caller(name: &str) -> Caller {
        Caller {
            source: CallerSource::Kubernetes,
            subject: name.into(),
            groups: vec![],
            scopes: vec![],
        }
    }

    fn status(auth: bool, audiences: &[&str], user: Option<&str>) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(auth),
            audiences: Some(audiences.iter().map(|s| s.to_string()).collect()),
            error: (!auth).then(|| "invalid bearer token".into()),
            user: user.map(|u| UserInfo {
                username: Some(u.into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                ..UserInfo::default()
            }),
        }
    }

    #[test]
    fn a_review_counts_only_when_authenticated_for_our_audience() {
        let asked = vec!["k8s-aggregator-mcp".to_string()];
        let ok = judge(
            status(
                true,
                &["k8s-aggregator-mcp"],
                Some("system:serviceaccount:a:b"),
            ),
            &asked,
        )
        .unwrap();
        assert_eq!(ok.subject, "system:serviceaccount:a:b");
        assert_eq!(ok.groups, ["system:serviceaccounts"]);
        assert_eq!(ok.source, CallerSource::Kubernetes);
        let e = judge(status(true, &["other"], Some("u")), &asked).unwrap_err();
        assert!(
            matches!(&e, AuthError::Invalid(m) if m.contains("not meant for this gateway")),
            "{e}"
        );
        let e = judge(status(true, &[], Some("u")), &asked).unwrap_err();
        assert_eq!(e.label(), "invalid");
        let e = judge(status(false, &[], None), &asked).unwrap_err();
        assert!(matches!(&e, AuthError::Invalid(m) if m.contains("invalid bearer token")));
        let e = judge(status(true, &["k8s-aggregator-mcp"], None), &asked).unwrap_err();
        assert_eq!(e.label(), "invalid");
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let mut c = TokenCache::new(2);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        c.insert(token_hash("a"), caller("a"), later);
        c.insert(token_hash("b"), caller("b"), later + Duration::from_secs(1));
        c.insert(token_hash("c"), caller("c"), later + Duration::from_secs(2));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&token_hash("a"), now), None, "soonest evicted");
        assert_eq!(c.get(&token_hash("c"), now), Some(caller("c")));
        assert_eq!(
            c.get(&token_hash("b"), later + Duration::from_secs(5)),
            None
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn jwt_expiry_bounds_the_cache() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"exp":1000,"sub":"x"}"#)
        );
        assert_eq!(jwt_expiry(&token), Some(1000));
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(time_left(1000, at(990)), Duration::from_secs(10));
        assert_eq!(time_left(1000, at(2000)), Duration::ZERO);
        assert_ne!(token_hash("a"), token_hash("b"));
    }

    #[test]
    fn errors_never_carry_more_than_a_clipped_message() {
        let long = "x".repeat(1000);
        assert!(clip(&long, 300).chars().count() <= 301);
        assert_eq!(clip("short", 300), "short");
    }
}
