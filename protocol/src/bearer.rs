//! Bearer JWTs checked against a JSON Web Key Set: the OAuth 2.1 resource-server side
//! of the gateway (`AUTH_MODE=oauth`) and the node server's check of the gateway's
//! ServiceAccount token share this one validator.
//!
//! What a token must pass, in this order (cheap and attacker-independent first):
//! - at most [`MAX_TOKEN_BYTES`] long, before any decoding;
//! - a compact JWS (three parts), no `crit` header, and an `alg` from the asymmetric
//!   allow-list [`ALLOWED_ALGORITHMS`] (`none` and every HMAC alg are refused, so an
//!   RSA public key can never be used as an HMAC secret);
//! - a key from the set with the token's `kid` whose `kty`/curve fits the `alg` and
//!   whose own `alg`, when it states one, is the token's (symmetric `oct` keys in the
//!   set are ignored);
//! - the signature; then `iss` exactly the configured issuer, `aud` containing one of
//!   the configured audiences (RFC 8707), `exp` present and not past, `nbf` honoured,
//!   both with a small leeway.
//!
//! Keys come from a JWKS URL, a JWKS file, or the issuer's metadata
//! (`/.well-known/oauth-authorization-server`, then `/.well-known/openid-configuration`,
//! whose `issuer` must be the configured one). They are cached; a token with an unknown
//! `kid` triggers a refresh, but at most once per [`BearerConfig::min_refresh_interval`],
//! so a flood of made-up kids cannot hammer the issuer. Fetches have a deadline and a
//! size cap, follow no redirects, go over HTTPS (plain HTTP only to loopback), may trust
//! a private CA file and may carry a bearer token read from a file (the node server
//! reads the cluster's key set from the API server with its own ServiceAccount token).
//!
//! Error texts name the problem, never the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Uri;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Longest token accepted; checked before anything is decoded. Real access tokens and
/// Kubernetes tokens are 1-3 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default floor between two key-set fetches caused by unknown `kid`s.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(30);
/// Default deadline of one metadata or key-set fetch.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a fetched metadata or key-set document.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// A key set older than this is fetched again on the next use (revoked keys go away
/// even when no unknown `kid` shows up); on failure the old set stays in use.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// After a failed fetch, the next attempt waits at least this long (or the refresh
/// floor, if shorter), so an unreachable issuer is not retried per request.
const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(5);
/// The signature algorithms accepted: asymmetric only.
pub const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The claims of a verified token, as sent.
pub type Claims = Map<String, Value>;

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS document at this URL.
    Url(String),
    /// A JWKS document in this file (re-read on refresh).
    File(PathBuf),
    /// The `jwks_uri` of the issuer's authorization-server or OpenID metadata.
    Discover,
}

/// How documents are fetched.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// PEM bundle of the CAs trusted for HTTPS fetches; without it the system roots.
    pub ca_file: Option<PathBuf>,
    /// A file holding a bearer token sent with every fetch (read at each fetch, so a
    /// rotated token is picked up).
    pub token_file: Option<PathBuf>,
    /// Deadline of one fetch, connection included.
    pub timeout: Duration,
    /// Largest document accepted.
    pub max_bytes: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            ca_file: None,
            token_file: None,
            timeout: DEFAULT_FETCH_TIMEOUT,
            max_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

/// What a valid token looks like.
#[derive(Debug, Clone)]
pub struct BearerConfig {
    /// The exact `iss` required.
    pub issuer: String,
    /// `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Clock skew allowed for `exp` / `nbf`.
    pub leeway: Duration,
    /// Floor between two fetches triggered by unknown `kid`s.
    pub min_refresh_interval: Duration,
    /// Longest token accepted.
    pub max_token_bytes: usize,
    /// Fetch settings.
    pub fetch: FetchConfig,
}

impl BearerConfig {
    /// Defaults for `issuer` and `audience`, keys discovered from the issuer.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        BearerConfig {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            keys: KeySource::Discover,
            leeway: DEFAULT_LEEWAY,
            min_refresh_interval: DEFAULT_MIN_REFRESH,
            max_token_bytes: MAX_TOKEN_BYTES,
            fetch: FetchConfig::default(),
        }
    }
}

/// Why a token was refused or could not be checked. No variant carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// Longer than the cap.
    #[error("the token is longer than {max} bytes")]
    TooLong {
        /// The cap.
        max: usize,
    },
    /// Not a compact JWS.
    #[error("the token is not a JWT: {0}")]
    Malformed(&'static str),
    /// `alg` outside the allow-list (`none`, HMAC, unknown).
    #[error(
        "signature algorithm {0:?} is not accepted (only RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)"
    )]
    AlgorithmNotAllowed(String),
    /// No key in the set has the token's `kid` (even after a refresh, or the refresh
    /// was not due yet).
    #[error("the issuer's key set has no key {0:?}")]
    UnknownKey(String),
    /// The key with that `kid` is of another type or algorithm.
    #[error("key {kid:?} cannot verify {alg} signatures")]
    KeyMismatch {
        /// The key id.
        kid: String,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// Past `exp` (plus leeway).
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` (minus leeway).
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was not issued by {expected}")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
    },
    /// `aud` does not name this resource.
    #[error("the token is not meant for this resource (audience {expected})")]
    WrongAudience {
        /// The configured audience(s).
        expected: String,
    },
    /// A required claim (`exp`, `iss`, `aud`) is absent.
    #[error("the token has no {0} claim")]
    MissingClaim(String),
    /// A claim has the wrong type.
    #[error("the token's {0} claim is malformed")]
    BadClaim(String),
    /// The key set could not be loaded: fail closed.
    #[error("the key set is unavailable: {0}")]
    KeysUnavailable(String),
    /// The verifier cannot be built (CA file, URL).
    #[error("{0}")]
    Config(String),
}

impl BearerError {
    /// Whether the token could not be checked (as opposed to being refused).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, BearerError::KeysUnavailable(_))
    }
}

/// Bookkeeping of fetches, behind the refresh lock.
#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    /// The discovered `jwks_uri`, once known.
    jwks_uri: Option<String>,
}

/// Verifies bearer JWTs of one issuer. Cheap to share behind an `Arc`.
pub struct BearerVerifier {
    config: BearerConfig,
    fetcher: Fetcher,
    keys: RwLock<Option<Arc<KeySet>>>,
    refresh: tokio::sync::Mutex<RefreshState>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for BearerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerVerifier")
            .field("issuer", &self.config.issuer)
            .field("audiences", &self.config.audiences)
            .field("keys", &self.config.keys)
            .finish()
    }
}

impl BearerVerifier {
    /// A verifier for `config`; reads the CA file now, fetches nothing yet.
    pub fn new(config: BearerConfig) -> Result<Self, BearerError> {
        if config.issuer.is_empty() {
            return Err(BearerError::Config("the issuer is empty".into()));
        }
        if config.audiences.iter().all(|a| a.is_empty()) {
            return Err(BearerError::Config("no audience is configured".into()));
        }
        match &config.keys {
            KeySource::Url(url) => check_fetch_url(url)?,
            KeySource::Discover => check_fetch_url(&config.issuer)?,
            KeySource::File(_) => {}
        }
        let fetcher = Fetcher::new(&config.fetch)?;
        Ok(BearerVerifier {
            config,
            fetcher,
            keys: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            fetches: AtomicU64::new(0),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// How many key-set loads were attempted (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Loads the key set now (at start-up, so the first request does not wait and a
    /// misconfiguration shows in the log at once).
    pub async fn prefetch(&self) -> Result<usize, BearerError> {
        let set = self.refresh_keys(None).await?;
        Ok(set.keys.len())
    }

    /// Checks `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, BearerError> {
        let header = parse_header(token, self.config.max_token_bytes)?;
        let mut set = match self.current() {
            Some(set) if set.fetched.elapsed() < MAX_KEY_AGE => set,
            stale => match self.refresh_keys(stale.as_ref()).await {
                Ok(set) => set,
                Err(e) => match stale {
                    Some(old) => {
                        tracing::warn!(issuer = %self.config.issuer, error = %e, "cannot refresh the key set; using the previous one");
                        old
                    }
                    None => return Err(e),
                },
            },
        };
        let mut refreshed = false;
        loop {
            match self.candidates(&set, &header) {
                Ok(keys) => return self.check(token, &header, &keys),
                Err(BearerError::UnknownKey(kid)) if !refreshed && header.kid.is_some() => {
                    refreshed = true;
                    let fresh = self.refresh_keys(Some(&set)).await?;
                    if Arc::ptr_eq(&fresh, &set) {
                        // The refresh was not due: the kid stays unknown.
                        return Err(BearerError::UnknownKey(kid));
                    }
                    set = fresh;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().ok().and_then(|k| k.clone())
    }

    /// The keys that may verify a token with this header.
    fn candidates<'a>(
        &self,
        set: &'a KeySet,
        header: &TokenHeader,
    ) -> Result<Vec<&'a KeyEntry>, BearerError> {
        let fits = |k: &KeyEntry| k.kind.fits(header.alg) && k.alg.is_none_or(|a| a == header.alg);
        match &header.kid {
            Some(kid) => {
                let named: Vec<&KeyEntry> = set
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() {
                    return Err(BearerError::UnknownKey(printable(kid)));
                }
                let usable: Vec<&KeyEntry> = named.into_iter().filter(|k| fits(k)).collect();
                if usable.is_empty() {
                    return Err(BearerError::KeyMismatch {
                        kid: printable(kid),
                        alg: format!("{:?}", header.alg),
                    });
                }
                Ok(usable)
            }
            None => {
                let usable: Vec<&KeyEntry> = set.keys.iter().filter(|k| fits(k)).collect();
                if usable.is_empty() {
                    return Err(BearerError::UnknownKey(String::new()));
                }
                Ok(usable)
            }
        }
    }

    /// Signature and claims, trying each candidate key (several only without a `kid`).
    fn check(
        &self,
        token: &str,
        header: &TokenHeader,
        keys: &[&KeyEntry],
    ) -> Result<Claims, BearerError> {
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&self.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        let mut last = BearerError::BadSignature;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    last = self.map_error(e.kind());
                    if last != BearerError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn map_error(&self, kind: &ErrorKind) -> BearerError {
        match kind {
            ErrorKind::InvalidSignature => BearerError::BadSignature,
            ErrorKind::ExpiredSignature => BearerError::Expired,
            ErrorKind::ImmatureSignature => BearerError::NotYetValid,
            ErrorKind::InvalidIssuer => BearerError::WrongIssuer {
                expected: self.config.issuer.clone(),
            },
            ErrorKind::InvalidAudience => BearerError::WrongAudience {
                expected: self.config.audiences.join(" or "),
            },
            ErrorKind::MissingRequiredClaim(c) => BearerError::MissingClaim(printable(c)),
            ErrorKind::InvalidClaimFormat(c) => BearerError::BadClaim(printable(c)),
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => BearerError::BadSignature,
            ErrorKind::Base64(_) => BearerError::Malformed("bad base64url"),
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => BearerError::Malformed("bad JSON"),
            _ => BearerError::Malformed("unreadable"),
        }
    }

    /// Loads the key set unless another caller just did (`seen` is the set the caller
    /// found wanting) or the last attempt is too recent; returns the current set.
    async fn refresh_keys(&self, seen: Option<&Arc<KeySet>>) -> Result<Arc<KeySet>, BearerError> {
        let mut state = self.refresh.lock().await;
        let current = self.current();
        if let Some(cur) = &current
            && seen.is_none_or(|s| !Arc::ptr_eq(s, cur))
            && cur.fetched.elapsed() < MAX_KEY_AGE
        {
            return Ok(cur.clone());
        }
        if let Some(last) = state.last_attempt {
            let floor = if state.last_error.is_some() {
                FAILED_FETCH_BACKOFF.min(self.config.min_refresh_interval)
            } else {
                self.config.min_refresh_interval
            };
            if last.elapsed() < floor {
                return match (current, &state.last_error) {
                    (Some(cur), _) => Ok(cur),
                    (None, Some(e)) => Err(BearerError::KeysUnavailable(e.clone())),
                    (None, None) => Err(BearerError::KeysUnavailable("not loaded yet".into())),
                };
            }
        }
        state.last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.load(&mut state).await {
            Ok(set) => {
                state.last_error = None;
                let set = Arc::new(set);
                tracing::debug!(issuer = %self.config.issuer, keys = set.keys.len(), "loaded the key set");
                if let Ok(mut k) = self.keys.write() {
                    *k = Some(set.clone());
                }
                Ok(set)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "cannot load the key set");
                state.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn load(&self, state: &mut RefreshState) -> Result<KeySet, BearerError> {
        let doc = match &self.config.keys {
            KeySource::File(path) => read_capped(path, self.config.fetch.max_bytes).await?,
            KeySource::Url(url) => self.fetcher.get(url).await?,
            KeySource::Discover => {
                let uri = match &state.jwks_uri {
                    Some(u) => u.clone(),
                    None => {
                        let u = self.discover().await?;
                        state.jwks_uri = Some(u.clone());
                        u
                    }
                };
                self.fetcher.get(&uri).await?
            }
        };
        parse_jwks(&doc)
    }

    /// The `jwks_uri` from the issuer's metadata (RFC 8414 first, then OpenID
    /// Connect), whose `issuer` must be the configured one exactly.
    async fn discover(&self) -> Result<String, BearerError> {
        let mut problems = Vec::new();
        for url in metadata_urls(&self.config.issuer)? {
            let doc = match self.fetcher.get(&url).await {
                Ok(d) => d,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            let meta: Value = match serde_json::from_slice(&doc) {
                Ok(v) => v,
                Err(_) => {
                    problems.push(format!("{url} is not JSON"));
                    continue;
                }
            };
            if meta["issuer"].as_str() != Some(self.config.issuer.as_str()) {
                problems.push(format!("{url} names another issuer"));
                continue;
            }
            match meta["jwks_uri"].as_str() {
                Some(uri) => {
                    check_fetch_url(uri)?;
                    return Ok(uri.to_string());
                }
                None => problems.push(format!("{url} has no jwks_uri")),
            }
        }
        Err(BearerError::KeysUnavailable(format!(
            "no usable metadata for issuer {}: {}",
            self.config.issuer,
            problems.join("; ")
        )))
    }
}

/// The parts of a JOSE header the checks need.
#[derive(Debug)]
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

/// Size cap, shape, `crit`, and the algorithm allow-list, before any key is touched.
fn parse_header(token: &str, max: usize) -> Result<TokenHeader, BearerError> {
    if token.len() > max {
        return Err(BearerError::TooLong { max });
    }
    let mut parts = token.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BearerError::Malformed("not three dot-separated parts"));
    };
    let raw = URL_SAFE_NO_PAD
        .decode(head)
        .map_err(|_| BearerError::Malformed("the header is not base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&raw)
        .map_err(|_| BearerError::Malformed("the header is not a JSON object"))?;
    if header.contains_key("crit") {
        return Err(BearerError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(BearerError::Malformed("the header has no alg"))?;
    let alg = ALLOWED_ALGORITHMS
        .iter()
        .copied()
        .find(|a| format!("{a:?}") == alg_name)
        .ok_or_else(|| BearerError::AlgorithmNotAllowed(printable(alg_name)))?;
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(BearerError::Malformed("kid is not a string")),
    };
    Ok(TokenHeader { alg, kid })
}

/// The `iss` claim of a token, unverified: only for choosing which issuer's verifier
/// to run. Never trust it for anything else.
pub fn unverified_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&raw).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// The metadata URLs to try for `issuer`, in the MCP specification's order.
fn metadata_urls(issuer: &str) -> Result<Vec<String>, BearerError> {
    let uri: Uri = issuer
        .parse()
        .map_err(|_| BearerError::Config(format!("issuer {issuer:?} is not a URL")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(BearerError::Config(format!(
            "issuer {issuer:?} is not an absolute URL"
        )));
    };
    let origin = format!("{scheme}://{authority}");
    let path = uri.path().trim_end_matches('/');
    Ok(if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    })
}

/// At most 60 printable ASCII characters of an attacker-supplied string, for messages.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(60)
        .collect()
}

mod fetch;
mod keys;
use fetch::{Fetcher, check_fetch_url, read_capped};
use keys::{KeyEntry, KeySet, parse_jwks};

#[cfg(test)]
mod tests;
