//! Legacy-era sessions: random ids minted on `initialize`, looked up on every later
//! request, expired after an idle period or an absolute lifetime, capped in number
//! and per owner (client address or authenticated caller), ended by DELETE.
//!
//! A full store never refuses a new session: it evicts the least recently used idle
//! sessions, so a client flooding `initialize` cannot lock others out; and since one
//! owner holds at most [`SessionConfig::max_per_owner`] sessions (its own oldest go
//! first), a flood only churns the flooder's sessions. Expiry is lazy (checked on
//! lookup and swept on creation), so the store needs no background task.

use base64::Engine;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::{ErrorObject, RequestId};
use crate::mcp::{LogLevel, ProtocolVersion};

/// The client's answer to a server-to-client request: its result, or its error.
pub type Answer = Result<Box<serde_json::value::RawValue>, ErrorObject>;

/// Session limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Mint sessions on initialize (legacy era). Off: the server is stateless in both eras.
    pub enabled: bool,
    /// A session unused for this long is forgotten (its id then answers 404).
    pub idle_timeout: Duration,
    /// At most this many live sessions; beyond it the least recently used idle ones
    /// are evicted (initialize is refused with 503 only when every session is busy).
    pub max_sessions: usize,
    /// A session ends this long after it started, however busy (pings cannot keep
    /// one alive for ever).
    pub max_lifetime: Duration,
    /// Sessions one owner (client address, or authenticated caller) may hold; its
    /// least recently used one is ended when it starts another.
    pub max_per_owner: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            enabled: true,
            idle_timeout: Duration::from_secs(30 * 60),
            max_sessions: 10_000,
            max_lifetime: Duration::from_secs(24 * 60 * 60),
            max_per_owner: 100,
        }
    }
}

/// One legacy session.
#[derive(Debug)]
pub struct Session {
    /// The id the client echoes in `Mcp-Session-Id`.
    pub id: String,
    /// The negotiated revision.
    pub version: ProtocolVersion,
    /// Who started it (per-owner cap).
    owner: String,
    /// When it started (absolute lifetime).
    created: Instant,
    /// Last time a request used the session.
    last_seen: Mutex<Instant>,
    /// Requests in flight, so `notifications/cancelled` can reach them.
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// Open GET streams and in-flight requests: a busy session is never expired.
    busy: AtomicUsize,
    /// Open GET streams (capped per session).
    streams: AtomicUsize,
    /// Catalog-change signal shared by the session's GET streams, so each change is
    /// delivered on one stream only.
    pub changes: Arc<tokio::sync::Mutex<tokio::sync::watch::Receiver<u64>>>,
    /// Server-to-client requests waiting for the client's POSTed response, by the id
    /// we gave them (ids are per session, so answers from other clients cannot match).
    pending: Mutex<HashMap<RequestId, tokio::sync::oneshot::Sender<Answer>>>,
    /// Numbers the server-to-client requests of this session.
    next_request: AtomicU64,
    /// The level set by `logging/setLevel`; None: every message is sent.
    log_level: Mutex<Option<LogLevel>>,
    /// The `capabilities` the client declared in `initialize`.
    client_capabilities: Mutex<serde_json::Value>,
}

impl Session {
    /// Registers an in-flight request; the guard unregisters it.
    pub fn track(self: &Arc<Self>, id: RequestId, token: CancellationToken) -> InflightGuard {
        self.try_track(id, token, usize::MAX)
            .unwrap_or_else(|| self.stream_guard())
    }

    /// Registers an in-flight request unless `max` are in flight already.
    pub fn try_track(
        self: &Arc<Self>,
        id: RequestId,
        token: CancellationToken,
        max: usize,
    ) -> Option<InflightGuard> {
        let mut map = self.inflight.lock().ok()?;
        if map.len() >= max {
            return None;
        }
        map.insert(id.clone(), token);
        self.busy.fetch_add(1, Ordering::Relaxed);
        Some(InflightGuard {
            session: self.clone(),
            id: Some(id),
            stream: false,
        })
    }

    /// Marks a long-lived stream open; the guard marks it closed.
    pub fn stream_guard(self: &Arc<Self>) -> InflightGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        InflightGuard {
            session: self.clone(),
            id: None,
            stream: false,
        }
    }

    /// Opens a GET stream unless `max` are open already on this session.
    pub fn try_stream(self: &Arc<Self>, max: usize) -> Option<InflightGuard> {
        self.streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.busy.fetch_add(1, Ordering::Relaxed);
        Some(InflightGuard {
            session: self.clone(),
            id: None,
            stream: true,
        })
    }

    /// Cancels an in-flight request (legacy `notifications/cancelled`); false if unknown.
    pub fn cancel(&self, id: &RequestId) -> bool {
        let token = self.inflight.lock().ok().and_then(|m| m.get(id).cloned());
        token.map(|t| t.cancel()).is_some()
    }

    /// Registers a server-to-client request; the receiver gets the client's answer.
    /// Returns the id to send it under.
    pub fn expect_answer(&self) -> (RequestId, tokio::sync::oneshot::Receiver<Answer>) {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("s2c-{n}"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut m) = self.pending.lock() {
            m.insert(id.clone(), tx);
        }
        (id, rx)
    }

    /// Forgets a server-to-client request (answered elsewhere, timed out or abandoned).
    pub fn forget_answer(&self, id: &RequestId) {
        if let Ok(mut m) = self.pending.lock() {
            m.remove(id);
        }
    }

    /// Hands a client's response to the request waiting for it; false if none was.
    pub fn answer(&self, id: &RequestId, answer: Answer) -> bool {
        let tx = self.pending.lock().ok().and_then(|mut m| m.remove(id));
        tx.is_some_and(|tx| tx.send(answer).is_ok())
    }

    /// Sets the level below which log messages are not sent (`logging/setLevel`).
    pub fn set_log_level(&self, level: LogLevel) {
        if let Ok(mut l) = self.log_level.lock() {
            *l = Some(level);
        }
    }

    /// The level set by `logging/setLevel`, if any.
    pub fn log_level(&self) -> Option<LogLevel> {
        self.log_level.lock().ok().and_then(|l| *l)
    }

    /// Records the capabilities the client declared in `initialize`.
    pub fn set_client_capabilities(&self, capabilities: serde_json::Value) {
        if let Ok(mut c) = self.client_capabilities.lock() {
            *c = capabilities;
        }
    }

    /// The capabilities the client declared in `initialize`.
    pub fn client_capabilities(&self) -> serde_json::Value {
        self.client_capabilities
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    fn touch(&self, now: Instant) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = now;
        }
    }

    fn last_seen(&self) -> Instant {
        self.last_seen.lock().map(|t| *t).unwrap_or(self.created)
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    fn expired(&self, now: Instant, config: &SessionConfig) -> bool {
        now.duration_since(self.created) > config.max_lifetime
            || (!self.is_busy() && now.duration_since(self.last_seen()) > config.idle_timeout)
    }

    /// Streams open and requests in flight on this session.
    pub fn busy_count(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    fn end(&self) {
        if let Ok(map) = self.inflight.lock() {
            map.values().for_each(CancellationToken::cancel);
        }
    }
}

/// Unregisters an in-flight request or stream when dropped.
#[derive(Debug)]
pub struct InflightGuard {
    session: Arc<Session>,
    id: Option<RequestId>,
    /// Counted in the session's GET streams.
    stream: bool,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(id) = &self.id
            && let Ok(mut map) = self.session.inflight.lock()
        {
            map.remove(id);
        }
        if self.stream {
            self.session.streams.fetch_sub(1, Ordering::AcqRel);
        }
        self.session.busy.fetch_sub(1, Ordering::Relaxed);
        self.session.touch(Instant::now());
    }
}

/// Why a session lookup failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// No such session (never existed, expired or deleted): 404.
    Unknown,
}

/// All live sessions.
#[derive(Debug)]
pub struct SessionStore {
    config: SessionConfig,
    state: Mutex<StoreState>,
}

#[derive(Debug, Default)]
struct StoreState {
    sessions: HashMap<String, Arc<Session>>,
    /// Live sessions per owner.
    per_owner: HashMap<String, usize>,
}

impl StoreState {
    fn remove(&mut self, id: &str) -> Option<Arc<Session>> {
        let session = self.sessions.remove(id)?;
        if let Some(n) = self.per_owner.get_mut(&session.owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&session.owner);
            }
        }
        session.end();
        Some(session)
    }

    /// Ends the least recently used idle sessions among those `pick` selects, at most
    /// `count`; returns how many went.
    fn evict_lru(&mut self, count: usize, pick: impl Fn(&Session) -> bool) -> usize {
        let mut idle: Vec<(Instant, String)> = self
            .sessions
            .values()
            .filter(|s| !s.is_busy() && pick(s))
            .map(|s| (s.last_seen(), s.id.clone()))
            .collect();
        if idle.len() > count {
            idle.select_nth_unstable(count - 1);
            idle.truncate(count);
        }
        let n = idle.len();
        for (_, id) in idle {
            self.remove(&id);
        }
        n
    }
}

impl SessionStore {
    /// An empty store.
    pub fn new(config: SessionConfig) -> Self {
        SessionStore {
            config,
            state: Mutex::new(StoreState::default()),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Mints a session for `owner`; None only when the store is full of busy
    /// sessions.
    pub fn create(
        &self,
        version: ProtocolVersion,
        changes: tokio::sync::watch::Receiver<u64>,
        owner: &str,
    ) -> Option<Arc<Session>> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let session = Arc::new(Session {
            id: id.clone(),
            version,
            owner: owner.to_string(),
            created: now,
            last_seen: Mutex::new(now),
            inflight: Mutex::new(HashMap::new()),
            busy: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            changes: Arc::new(tokio::sync::Mutex::new(changes)),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            log_level: Mutex::new(None),
            client_capabilities: Mutex::new(serde_json::Value::Null),
        });
        let mut state = self.state.lock().ok()?;
        let owned = state.per_owner.get(owner).copied().unwrap_or(0);
        if owned >= self.config.max_per_owner.max(1) {
            let freed = state.evict_lru(owned + 1 - self.config.max_per_owner.max(1), |s| {
                s.owner == owner
            });
            if freed == 0 {
                return None;
            }
        }
        if state.sessions.len() >= self.config.max_sessions {
            let config = &self.config;
            let expired: Vec<String> = state
                .sessions
                .values()
                .filter(|s| s.expired(now, config))
                .map(|s| s.id.clone())
                .collect();
            for id in expired {
                state.remove(&id);
            }
        }
        if state.sessions.len() >= self.config.max_sessions {
            // Evict a batch, so a flood of initialize does not scan the store each time.
            let batch = (self.config.max_sessions / 64).max(1);
            state.evict_lru(batch, |_| true);
        }
        if state.sessions.len() >= self.config.max_sessions {
            return None;
        }
        *state.per_owner.entry(owner.to_string()).or_insert(0) += 1;
        state.sessions.insert(id, session.clone());
        Some(session)
    }

    /// Finds a live session and marks it used.
    pub fn get(&self, id: &str) -> Result<Arc<Session>, Lookup> {
        let now = Instant::now();
        let mut state = self.state.lock().map_err(|_| Lookup::Unknown)?;
        let session = state.sessions.get(id).cloned().ok_or(Lookup::Unknown)?;
        if session.expired(now, &self.config) {
            state.remove(id);
            return Err(Lookup::Unknown);
        }
        session.touch(now);
        Ok(session)
    }

    /// Ends a session (DELETE); cancels its in-flight requests.
    pub fn remove(&self, id: &str) -> Result<(), Lookup> {
        self.state
            .lock()
            .map_err(|_| Lookup::Unknown)?
            .remove(id)
            .map(|_| ())
            .ok_or(Lookup::Unknown)
    }

    /// Number of live sessions (for metrics).
    pub fn len(&self) -> usize {
        self.state.lock().map(|m| m.sessions.len()).unwrap_or(0)
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max: usize, idle: Duration) -> SessionStore {
        SessionStore::new(SessionConfig {
            enabled: true,
            idle_timeout: idle,
            max_sessions: max,
            ..SessionConfig::default()
        })
    }

    fn rx() -> tokio::sync::watch::Receiver<u64> {
        tokio::sync::watch::channel(0).1
    }

    #[test]
    fn ids_are_random_and_lookups_work() {
        let s = store(10, Duration::from_secs(60));
        let a = s.create(ProtocolVersion::V2025_11_25, rx(), "c").unwrap();
        let b = s.create(ProtocolVersion::V2025_03_26, rx(), "c").unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 32);
        assert!(
            a.id.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(s.get(&a.id).unwrap().version, ProtocolVersion::V2025_11_25);
        assert_eq!(s.get("nope").unwrap_err(), Lookup::Unknown);
        s.remove(&a.id).unwrap();
        assert_eq!(s.get(&a.id).unwrap_err(), Lookup::Unknown);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_full_store_evicts_the_least_recently_used_idle_session() {
        let s = store(3, Duration::from_secs(3600));
        let a = s.create(ProtocolVersion::V2025_11_25, rx(), "x").unwrap();
        let b = s.create(ProtocolVersion::V2025_11_25, rx(), "y").unwrap();
        let busy = s.create(ProtocolVersion::V2025_11_25, rx(), "z").unwrap();
        let _stream = busy.stream_guard();
        std::thread::sleep(Duration::from_millis(2));
        s.get(&a.id).unwrap(); // a is now more recent than b
        let d = s.create(ProtocolVersion::V2025_11_25, rx(), "w").unwrap();
        assert_eq!(s.get(&b.id).unwrap_err(), Lookup::Unknown, "b was the LRU");
        assert!(s.get(&a.id).is_ok() && s.get(&busy.id).is_ok() && s.get(&d.id).is_ok());
        assert_eq!(s.len(), 3);
        // Only busy sessions left to evict: refused.
        let full = store(1, Duration::from_secs(60));
        let x = full
            .create(ProtocolVersion::V2025_11_25, rx(), "x")
            .unwrap();
        let _g = x.stream_guard();
        assert!(
            full.create(ProtocolVersion::V2025_11_25, rx(), "y")
                .is_none()
        );
    }

    #[test]
    fn one_owner_only_churns_its_own_sessions() {
        let s = SessionStore::new(SessionConfig {
            max_sessions: 100,
            max_per_owner: 2,
            ..SessionConfig::default()
        });
        let victim = s
            .create(ProtocolVersion::V2025_11_25, rx(), "good")
            .unwrap();
        let ids: Vec<String> = (0..50)
            .map(|_| {
                s.create(ProtocolVersion::V2025_11_25, rx(), "flood")
                    .unwrap()
                    .id
                    .clone()
            })
            .collect();
        assert!(s.get(&victim.id).is_ok());
        assert_eq!(s.len(), 3);
        assert!(s.get(&ids[49]).is_ok() && s.get(&ids[48]).is_ok());
        assert_eq!(s.get(&ids[0]).unwrap_err(), Lookup::Unknown);
    }

    #[test]
    fn idle_and_lifetime_expiry() {
        let s = store(10, Duration::ZERO);
        let a = s.create(ProtocolVersion::V2025_11_25, rx(), "c").unwrap();
        let _busy = a.stream_guard();
        let b = s.create(ProtocolVersion::V2025_11_25, rx(), "c").unwrap();
        std::thread::sleep(Duration::from_millis(2));
        assert!(s.get(&a.id).is_ok(), "busy sessions do not idle out");
        assert_eq!(s.get(&b.id).unwrap_err(), Lookup::Unknown);
        let short = SessionStore::new(SessionConfig {
            max_lifetime: Duration::ZERO,
            ..SessionConfig::default()
        });
        let c = short
            .create(ProtocolVersion::V2025_11_25, rx(), "c")
            .unwrap();
        let _busy = c.stream_guard();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            short.get(&c.id).unwrap_err(),
            Lookup::Unknown,
            "past its lifetime even when busy"
        );
    }

    #[test]
    fn cancel_reaches_tracked_requests() {
        let s = store(2, Duration::from_secs(60));
        let a = s.create(ProtocolVersion::V2025_11_25, rx(), "c").unwrap();
        let token = CancellationToken::new();
        let guard = a.track(RequestId::Number(5), token.clone());
        assert!(!a.cancel(&RequestId::Number(6)));
        assert!(a.cancel(&RequestId::Number(5)));
        assert!(token.is_cancelled());
        drop(guard);
        assert!(!a.cancel(&RequestId::Number(5)));
    }
}
