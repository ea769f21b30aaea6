//! Legacy-era sessions: random ids minted on `initialize`, looked up on every later
//! request, expired after an idle period, capped in number, ended by DELETE.
//!
//! Expiry is lazy (checked on lookup and swept when a new session is created), so the
//! store needs no background task.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::RequestId;
use crate::mcp::ProtocolVersion;

/// Session limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Mint sessions on initialize (legacy era). Off: the server is stateless in both eras.
    pub enabled: bool,
    /// A session unused for this long is forgotten (its id then answers 404).
    pub idle_timeout: Duration,
    /// At most this many live sessions; initialize beyond it is refused with 503.
    pub max_sessions: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            enabled: true,
            idle_timeout: Duration::from_secs(30 * 60),
            max_sessions: 10_000,
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
    /// Last time a request used the session.
    last_seen: Mutex<Instant>,
    /// Requests in flight, so `notifications/cancelled` can reach them.
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// Open GET streams and in-flight requests: a busy session is never expired.
    busy: AtomicUsize,
    /// Catalog-change signal shared by the session's GET streams, so each change is
    /// delivered on one stream only.
    pub changes: Arc<tokio::sync::Mutex<tokio::sync::watch::Receiver<u64>>>,
}

impl Session {
    /// Registers an in-flight request; the guard unregisters it.
    pub fn track(self: &Arc<Self>, id: RequestId, token: CancellationToken) -> InflightGuard {
        if let Ok(mut map) = self.inflight.lock() {
            map.insert(id.clone(), token);
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        InflightGuard {
            session: self.clone(),
            id: Some(id),
        }
    }

    /// Marks a long-lived stream open; the guard marks it closed.
    pub fn stream_guard(self: &Arc<Self>) -> InflightGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        InflightGuard {
            session: self.clone(),
            id: None,
        }
    }

    /// Cancels an in-flight request (legacy `notifications/cancelled`); false if unknown.
    pub fn cancel(&self, id: &RequestId) -> bool {
        let token = self.inflight.lock().ok().and_then(|m| m.get(id).cloned());
        token.map(|t| t.cancel()).is_some()
    }

    fn touch(&self, now: Instant) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = now;
        }
    }

    fn expired(&self, now: Instant, idle: Duration) -> bool {
        self.busy.load(Ordering::Relaxed) == 0
            && self
                .last_seen
                .lock()
                .map(|t| now.duration_since(*t) > idle)
                .unwrap_or(false)
    }
}

/// Unregisters an in-flight request or stream when dropped.
#[derive(Debug)]
pub struct InflightGuard {
    session: Arc<Session>,
    id: Option<RequestId>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(id) = &self.id
            && let Ok(mut map) = self.session.inflight.lock()
        {
            map.remove(id);
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
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionStore {
    /// An empty store.
    pub fn new(config: SessionConfig) -> Self {
        SessionStore {
            config,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Mints a session; None when the cap is reached even after sweeping idle ones.
    pub fn create(
        &self,
        version: ProtocolVersion,
        changes: tokio::sync::watch::Receiver<u64>,
    ) -> Option<Arc<Session>> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let session = Arc::new(Session {
            id: id.clone(),
            version,
            last_seen: Mutex::new(now),
            inflight: Mutex::new(HashMap::new()),
            busy: AtomicUsize::new(0),
            changes: Arc::new(tokio::sync::Mutex::new(changes)),
        });
        let mut map = self.sessions.lock().ok()?;
        if map.len() >= self.config.max_sessions {
            let idle = self.config.idle_timeout;
            map.retain(|_, s| !s.expired(now, idle));
        }
        if map.len() >= self.config.max_sessions {
            return None;
        }
        map.insert(id, session.clone());
        Some(session)
    }

    /// Finds a live session and marks it used.
    pub fn get(&self, id: &str) -> Result<Arc<Session>, Lookup> {
        let now = Instant::now();
        let mut map = self.sessions.lock().map_err(|_| Lookup::Unknown)?;
        let session = map.get(id).cloned().ok_or(Lookup::Unknown)?;
        if session.expired(now, self.config.idle_timeout) {
            map.remove(id);
            return Err(Lookup::Unknown);
        }
        session.touch(now);
        Ok(session)
    }

    /// Ends a session (DELETE); cancels its in-flight requests.
    pub fn remove(&self, id: &str) -> Result<(), Lookup> {
        let session = self
            .sessions
            .lock()
            .map_err(|_| Lookup::Unknown)?
            .remove(id)
            .ok_or(Lookup::Unknown)?;
        if let Ok(map) = session.inflight.lock() {
            map.values().for_each(CancellationToken::cancel);
        }
        Ok(())
    }

    /// Number of live sessions (for metrics).
    pub fn len(&self) -> usize {
        self.sessions.lock().map(|m| m.len()).unwrap_or(0)
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
        })
    }

    #[test]
    fn ids_are_random_and_lookups_work() {
        let (_tx, rx) = tokio::sync::watch::channel(0);
        let s = store(10, Duration::from_secs(60));
        let a = s.create(ProtocolVersion::V2025_11_25, rx.clone()).unwrap();
        let b = s.create(ProtocolVersion::V2025_03_26, rx).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 48);
        assert!(a.id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(s.get(&a.id).unwrap().version, ProtocolVersion::V2025_11_25);
        assert_eq!(s.get("nope").unwrap_err(), Lookup::Unknown);
        s.remove(&a.id).unwrap();
        assert_eq!(s.get(&a.id).unwrap_err(), Lookup::Unknown);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn cap_and_idle_expiry() {
        let (_tx, rx) = tokio::sync::watch::channel(0);
        let s = store(2, Duration::ZERO);
        let a = s.create(ProtocolVersion::V2025_11_25, rx.clone()).unwrap();
        let _busy = a.stream_guard();
        std::thread::sleep(Duration::from_millis(2));
        let b = s.create(ProtocolVersion::V2025_11_25, rx.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        // b is idle and gets swept; a is busy (open stream) and stays.
        assert!(s.create(ProtocolVersion::V2025_11_25, rx.clone()).is_some());
        assert!(s.get(&a.id).is_ok());
        assert_eq!(s.get(&b.id).unwrap_err(), Lookup::Unknown);
        let full = store(1, Duration::from_secs(60));
        let _x = full
            .create(ProtocolVersion::V2025_11_25, rx.clone())
            .unwrap();
        assert!(full.create(ProtocolVersion::V2025_11_25, rx).is_none());
    }

    #[test]
    fn cancel_reaches_tracked_requests() {
        let (_tx, rx) = tokio::sync::watch::channel(0);
        let s = store(2, Duration::from_secs(60));
        let a = s.create(ProtocolVersion::V2025_11_25, rx).unwrap();
        let token = CancellationToken::new();
        let guard = a.track(RequestId::Number(5), token.clone());
        assert!(!a.cancel(&RequestId::Number(6)));
        assert!(a.cancel(&RequestId::Number(5)));
        assert!(token.is_cancelled());
        drop(guard);
        assert!(!a.cancel(&RequestId::Number(5)));
    }
}
