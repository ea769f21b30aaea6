//! Legacy-era sessions that any replica can serve: the session id is a sealed token
//! ([`crate::seal`], purpose [`SESSION_PURPOSE`]) holding what the session needs (the
//! negotiated revision, the client's capabilities and info, who started it, when it
//! started and when it expires), so a replica that never saw the session rebuilds it
//! from the id with one AEAD open and no shared store.
//!
//! Each replica keeps a cache of the sessions it serves, for what cannot travel in an
//! id that never changes: requests in flight (so `notifications/cancelled` reaches
//! them), server-to-client requests awaiting their answer, GET streams, and the level
//! set by `logging/setLevel` (so that level is per replica: another replica sends
//! every message until the client sets it there too). Evicting a cache entry never
//! ends a valid session: its next request rebuilds it. A cached entry is found from
//! the exact id it was opened from, without opening it again (its key, expiry and
//! owner are still checked on every request).
//!
//! What the caps mean now that ids cost the server no memory: [`SessionConfig::max_sessions`]
//! bounds the cache of one replica (the least recently used idle entries go first),
//! and [`SessionConfig::max_per_owner`] bounds the cache entries one owner holds there,
//! so a client flooding `initialize` churns only its own entries; since a busy entry
//! (a stream open, a call in flight) is never evicted, an owner holds at most that
//! many busy sessions per replica and the next is refused with 429. A session stays
//! valid until the expiry sealed into its id ([`SessionConfig::max_lifetime`] after it
//! started); [`SessionConfig::idle_timeout`] only drops the cached state of an unused
//! session.
//!
//! Ended sessions (DELETE): the replica that ends a session cancels its requests there
//! and records its id as ended until the id expires (in a capped record), so that
//! replica refuses it with 404. Another replica would still accept the id until its
//! expiry: telling every peer would need a peer list and a call per DELETE, and a
//! deny list shared through the Kubernetes API would put the API server on the
//! request path. The id is a secret only its client holds, a client that ended its
//! session does not use it again, and with authentication an id is bound to the
//! caller that started it (another caller's request with it is 404), so what is left
//! open is a stolen id of an ended session, for at most its remaining lifetime.

use rand::RngCore;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use subtle::ConstantTimeEq;

use crate::jsonrpc::ErrorObject;
use crate::mcp::ProtocolVersion;
use crate::seal::Sealer;

mod entry;
mod sealed;
#[cfg(test)]
mod tests;

pub use entry::{InflightGuard, PUSH_QUEUE, Session, SessionPush};

/// How many times each list a server serves has changed; streams turn a change into
/// the matching `notifications/*/list_changed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListChanges {
    /// Tool list changes.
    pub tools: u64,
    /// Prompt list changes.
    pub prompts: u64,
    /// Resource list changes.
    pub resources: u64,
}

/// A session's view of [`ListChanges`].
pub type ChangeSignal = tokio::sync::watch::Receiver<ListChanges>;
use sealed::{Sealed, owner_key, unix_ms};

/// The client's answer to a server-to-client request: its result, or its error.
pub type Answer = Result<Box<serde_json::value::RawValue>, ErrorObject>;

/// The purpose a session id is sealed for (a token minted for another purpose, such
/// as a `requestState`, does not open as a session id).
pub const SESSION_PURPOSE: &str = "mcp-session";

/// Ended sessions one replica remembers at once; beyond it the records that expire
/// soonest go first.
const MAX_ENDED: usize = 100_000;

/// Session limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Mint sessions on initialize (legacy era). Off: the server is stateless in both eras.
    pub enabled: bool,
    /// The cached state of a session unused for this long is dropped (the session stays
    /// valid: its next request rebuilds it from the id).
    pub idle_timeout: Duration,
    /// At most this many sessions cached on this replica; beyond it the least recently
    /// used idle ones are dropped (a request is refused with 503 only when every cached
    /// session is busy).
    pub max_sessions: usize,
    /// A session ends this long after it started, however busy (the expiry is sealed
    /// into the id, so every replica ends it at the same time).
    pub max_lifetime: Duration,
    /// Sessions of one owner (client address, or authenticated caller) cached on this
    /// replica; its least recently used idle one is dropped when it needs another, and
    /// when all are busy the new one is refused.
    pub max_per_owner: usize,
    /// The keys session ids are sealed with; None: a random key of this process, so ids
    /// open on this replica only.
    pub keys: Option<Arc<Sealer>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            enabled: true,
            idle_timeout: Duration::from_secs(30 * 60),
            max_sessions: 10_000,
            max_lifetime: Duration::from_secs(24 * 60 * 60),
            max_per_owner: 100,
            keys: None,
        }
    }
}

/// What `initialize` tells about the client, sealed into its session id.
#[derive(Debug, Clone)]
pub struct SessionStart {
    /// The negotiated revision.
    pub version: ProtocolVersion,
    /// The `capabilities` the client declared.
    pub capabilities: Value,
    /// The `clientInfo` the client sent.
    pub client_info: Value,
}

/// Why a session lookup failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// No such session (not ours, altered, expired, ended, or another caller's): 404.
    Unknown,
    /// A valid session this replica has no room to hold: its owner's (or every) cached
    /// session is busy. Retry later: 429.
    Busy,
}

/// The sessions this replica holds, and the key that opens every replica's ids.
#[derive(Debug)]
pub struct SessionStore {
    config: SessionConfig,
    sealer: Arc<Sealer>,
    state: Mutex<StoreState>,
}

#[derive(Debug, Default)]
struct StoreState {
    /// The cache, by the random id inside the token.
    sessions: HashMap<u128, Arc<Session>>,
    /// The cached sessions by a keyed hash of their token, so a token seen before is
    /// found without opening it again (see [`SessionStore::cached`]).
    tokens: HashMap<u64, u128>,
    /// The key of those hashes (random per process, so no caller can aim at a slot).
    token_hasher: std::hash::RandomState,
    /// Cached sessions per owner.
    per_owner: HashMap<String, usize>,
    /// Sessions ended here (DELETE), until their ids expire.
    ended: HashMap<u128, u64>,
}

impl StoreState {
    fn remove(&mut self, sid: u128) -> Option<Arc<Session>> {
        let session = self.sessions.remove(&sid)?;
        if let Some(n) = self.per_owner.get_mut(&session.owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&session.owner);
            }
        }
        session.end();
        Some(session)
    }

    /// Drops the least recently used idle entries among those `pick` selects, at most
    /// `count`; returns how many went.
    fn evict_lru(&mut self, count: usize, pick: impl Fn(&Session) -> bool) -> usize {
        let mut idle: Vec<(Instant, u128)> = self
            .sessions
            .values()
            .filter(|s| !s.is_busy() && pick(s))
            .map(|s| (s.last_seen(), s.sid))
            .collect();
        if idle.len() > count {
            idle.select_nth_unstable(count - 1);
            idle.truncate(count);
        }
        let n = idle.len();
        for (_, sid) in idle {
            self.remove(sid);
        }
        n
    }

    /// Records an ended session until `expires_ms`; a full record first forgets the
    /// expired ones, then the soonest to expire.
    fn record_ended(&mut self, sid: u128, expires_ms: u64, now_ms: u64) {
        if self.ended.len() >= MAX_ENDED {
            self.ended.retain(|_, e| *e >= now_ms);
        }
        if self.ended.len() >= MAX_ENDED {
            let batch = (MAX_ENDED / 64).max(1);
            let mut soonest: Vec<(u64, u128)> = self.ended.iter().map(|(s, e)| (*e, *s)).collect();
            soonest.select_nth_unstable(batch - 1);
            for (_, s) in &soonest[..batch] {
                self.ended.remove(s);
            }
        }
        self.ended.insert(sid, expires_ms);
    }
}

impl SessionStore {
    /// An empty store sealing with `config.keys` (or a random key of this process).
    pub fn new(config: SessionConfig) -> Self {
        let sealer = config.keys.clone().unwrap_or_else(Sealer::random);
        SessionStore {
            config,
            sealer,
            state: Mutex::new(StoreState::default()),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Mints a session for `owner` (`bound`: an authenticated caller, whom every later
    /// request must match); None only when this replica's cache is full of busy
    /// sessions (of this owner, or of everyone).
    pub fn create(
        &self,
        start: SessionStart,
        changes: ChangeSignal,
        owner: &str,
        bound: bool,
    ) -> Option<Arc<Session>> {
        let sid = rand::rng().next_u64() as u128 | ((rand::rng().next_u64() as u128) << 64);
        let now = SystemTime::now();
        let mut sealed = Sealed {
            s: format!("{sid:032x}"),
            v: start.version.as_str().to_string(),
            o: owner_key(owner),
            b: bound,
            t: unix_ms(now),
            e: unix_ms(now + self.config.max_lifetime),
            c: start.capabilities,
            i: start.client_info,
        };
        // The cached entry holds what was sealed, so every replica sees one session.
        let bytes = sealed.fit();
        let id = self.sealer.seal(SESSION_PURPOSE, &bytes);
        let session = Arc::new(Session::from_sealed(
            id,
            sid,
            sealed,
            start.version,
            changes,
        ));
        let mut state = self.state.lock().ok()?;
        self.admit(&mut state, &session).then_some(session)
    }

    /// Makes room for `session` in the cache and inserts it; false when every entry
    /// that would have to go is busy.
    fn admit(&self, state: &mut StoreState, session: &Arc<Session>) -> bool {
        let max_owned = self.config.max_per_owner.max(1);
        let owner = session.owner.as_str();
        let owned = state.per_owner.get(owner).copied().unwrap_or(0);
        if owned >= max_owned && state.evict_lru(owned + 1 - max_owned, |s| s.owner == owner) == 0 {
            return false;
        }
        if state.sessions.len() >= self.config.max_sessions {
            let (now, now_ms, idle) = (
                Instant::now(),
                unix_ms(SystemTime::now()),
                self.config.idle_timeout,
            );
            let stale: Vec<u128> = state
                .sessions
                .values()
                .filter(|s| s.expired(now_ms) || s.idle(now, idle))
                .map(|s| s.sid)
                .collect();
            for sid in stale {
                state.remove(sid);
            }
        }
        if state.sessions.len() >= self.config.max_sessions {
            // Evict a batch, so a flood does not scan the cache on every request.
            let batch = (self.config.max_sessions / 64).max(1);
            state.evict_lru(batch, |_| true);
        }
        if state.sessions.len() >= self.config.max_sessions {
            return false;
        }
        *state.per_owner.entry(session.owner.clone()).or_insert(0) += 1;
        state.sessions.insert(session.sid, session.clone());
        let hash = state.token_hasher.hash_one(&session.id);
        state.tokens.insert(hash, session.sid);
        true
    }

    /// Opens an id and checks it: sealed by one of our keys for sessions, not
    /// expired, and (when bound) presented by the caller who started it.
    fn open(
        &self,
        id: &str,
        requester: Option<&str>,
    ) -> Result<(u128, Sealed, ProtocolVersion), Lookup> {
        let bytes = self.sealer.open(SESSION_PURPOSE, id).map_err(|e| {
            tracing::debug!(error = %e, "session id refused");
            Lookup::Unknown
        })?;
        let sealed: Sealed = serde_json::from_slice(&bytes).map_err(|_| Lookup::Unknown)?;
        let sid = u128::from_str_radix(&sealed.s, 16).map_err(|_| Lookup::Unknown)?;
        let version = ProtocolVersion::parse(&sealed.v).ok_or(Lookup::Unknown)?;
        if unix_ms(SystemTime::now()) > sealed.e {
            return Err(Lookup::Unknown);
        }
        if sealed.b && requester.map(owner_key).as_deref() != Some(sealed.o.as_str()) {
            tracing::debug!("session id presented by a caller other than its owner");
            return Err(Lookup::Unknown);
        }
        Ok((sid, sealed, version))
    }

    /// Finds a live session and marks it used, rebuilding it from the id when this
    /// replica does not hold it (`changes` gives the new entry its catalog signal).
    /// `requester` is the authenticated caller making the request, if any.
    pub fn get(
        &self,
        id: &str,
        requester: Option<&str>,
        changes: impl FnOnce() -> ChangeSignal,
    ) -> Result<Arc<Session>, Lookup> {
        if let Some(session) = self.cached(id, requester) {
            return Ok(session);
        }
        let (sid, sealed, version) = self.open(id, requester)?;
        let mut state = self.state.lock().map_err(|_| Lookup::Unknown)?;
        if state.ended.contains_key(&sid) {
            return Err(Lookup::Unknown);
        }
        if let Some(session) = state.sessions.get(&sid).cloned() {
            session.touch(Instant::now());
            return Ok(session);
        }
        let session = Arc::new(Session::from_sealed(
            id.to_string(),
            sid,
            sealed,
            version,
            changes(),
        ));
        if !self.admit(&mut state, &session) {
            return Err(Lookup::Busy);
        }
        tracing::debug!(%version, "session rebuilt from its id");
        Ok(session)
    }

    /// The cached session whose token is exactly `id`, checked as [`Self::open`]
    /// would (its key still held, not expired, presented by its owner when bound),
    /// without opening the token again: that was done when the entry was made. None
    /// sends the caller the long way, which gives the precise answer.
    fn cached(&self, id: &str, requester: Option<&str>) -> Option<Arc<Session>> {
        if id.len() > crate::seal::MAX_TOKEN_CHARS || !self.sealer.holds_key_of(id) {
            return None;
        }
        let state = self.state.lock().ok()?;
        let sid = state.tokens.get(&state.token_hasher.hash_one(id))?;
        let session = state.sessions.get(sid)?;
        let same: bool = session.id.as_bytes().ct_eq(id.as_bytes()).into();
        if !same || session.expired(unix_ms(SystemTime::now())) {
            return None;
        }
        if session.bound && requester.map(owner_key).as_deref() != Some(session.owner.as_str()) {
            return None;
        }
        session.touch(Instant::now());
        Some(session.clone())
    }

    /// Ends a session (DELETE): cancels its requests here and refuses its id here
    /// until it expires.
    pub fn remove(&self, id: &str, requester: Option<&str>) -> Result<(), Lookup> {
        let (sid, sealed, _) = self.open(id, requester)?;
        let mut state = self.state.lock().map_err(|_| Lookup::Unknown)?;
        if state.ended.contains_key(&sid) {
            return Err(Lookup::Unknown);
        }
        state.remove(sid);
        state.record_ended(sid, sealed.e, unix_ms(SystemTime::now()));
        Ok(())
    }

    /// Sessions cached on this replica (for metrics).
    pub fn len(&self) -> usize {
        self.state.lock().map(|m| m.sessions.len()).unwrap_or(0)
    }

    /// Whether no session is cached here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
