//! One session as a replica holds it: what travels in the id, and what stays here
//! (requests in flight, server-to-client requests awaiting answers, streams, the log
//! level).

use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::Answer;

/// Notifications queued for a session's GET stream at most; more are dropped.
pub const PUSH_QUEUE: usize = 64;

/// Sends notifications to one session's GET stream, from outside any request.
#[derive(Debug, Clone)]
pub struct SessionPush(tokio::sync::mpsc::Sender<bytes::Bytes>);

impl SessionPush {
    /// Queues a serialized notification; false when the session is gone (from this
    /// replica) or its queue is full.
    pub fn send(&self, notification: bytes::Bytes) -> bool {
        self.0.try_send(notification).is_ok()
    }

    /// Whether the session is gone from this replica.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}
use super::sealed::Sealed;
use crate::jsonrpc::RequestId;
use crate::mcp::{LogLevel, ProtocolVersion};

/// One legacy session as this replica holds it.
#[derive(Debug)]
pub struct Session {
    /// The id the client echoes in `Mcp-Session-Id` (the sealed token).
    pub id: String,
    /// The negotiated revision.
    pub version: ProtocolVersion,
    /// The random id inside the token (cache and ended-record key).
    pub(super) sid: u128,
    /// Who started it (per-owner cap).
    pub(super) owner: String,
    /// Whether the owner is an authenticated caller, whom every request must match.
    pub(super) bound: bool,
    /// When it expires, in Unix milliseconds (sealed into the id).
    pub(super) expires_ms: u64,
    /// Last time a request used the session here (cache eviction).
    last_seen: Mutex<Instant>,
    /// Requests in flight, so `notifications/cancelled` can reach them.
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// Open GET streams and in-flight requests: a busy session is never evicted.
    busy: AtomicUsize,
    /// Open GET streams (capped per session).
    streams: AtomicUsize,
    /// List-change signal shared by the session's GET streams, so each change is
    /// delivered on one stream only.
    pub changes: Arc<tokio::sync::Mutex<super::ChangeSignal>>,
    /// Notifications pushed to the session outside any request (e.g. a subscribed
    /// resource changed), delivered on one of its GET streams.
    pub pushed: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<bytes::Bytes>>>,
    /// Where [`Session::pusher`] sends to (at most [`PUSH_QUEUE`] waiting).
    push: tokio::sync::mpsc::Sender<bytes::Bytes>,
    /// Server-to-client requests waiting for the client's POSTed response, by the id
    /// we gave them (ids are per session, so answers from other clients cannot match).
    pending: Mutex<HashMap<RequestId, tokio::sync::oneshot::Sender<Answer>>>,
    /// Numbers the server-to-client requests of this session.
    next_request: AtomicU64,
    /// The level set by `logging/setLevel` on this replica; None: every message is sent.
    log_level: Mutex<Option<LogLevel>>,
    /// The `capabilities` the client declared in `initialize`.
    client_capabilities: Value,
    /// The `clientInfo` the client sent in `initialize`.
    client_info: Value,
}

impl Session {
    pub(super) fn from_sealed(
        id: String,
        sid: u128,
        sealed: Sealed,
        version: ProtocolVersion,
        changes: super::ChangeSignal,
    ) -> Session {
        let (push, pushed) = tokio::sync::mpsc::channel(PUSH_QUEUE);
        Session {
            id,
            version,
            sid,
            owner: sealed.o,
            bound: sealed.b,
            expires_ms: sealed.e,
            last_seen: Mutex::new(Instant::now()),
            inflight: Mutex::new(HashMap::new()),
            busy: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            changes: Arc::new(tokio::sync::Mutex::new(changes)),
            pushed: Arc::new(tokio::sync::Mutex::new(pushed)),
            push,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            log_level: Mutex::new(None),
            client_capabilities: sealed.c,
            client_info: sealed.i,
        }
    }

    /// A handle that pushes notifications to this session's GET stream (dropped when
    /// the queue is full or the session is gone from this replica).
    pub fn pusher(&self) -> SessionPush {
        SessionPush(self.push.clone())
    }

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

    /// Cancels an in-flight request (legacy `notifications/cancelled`); false if unknown
    /// here (a request in flight on another replica is out of reach).
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

    /// Sets the level below which log messages are not sent (`logging/setLevel`), on
    /// this replica.
    pub fn set_log_level(&self, level: LogLevel) {
        if let Ok(mut l) = self.log_level.lock() {
            *l = Some(level);
        }
    }

    /// The level set by `logging/setLevel` on this replica, if any.
    pub fn log_level(&self) -> Option<LogLevel> {
        self.log_level.lock().ok().and_then(|l| *l)
    }

    /// The capabilities the client declared in `initialize`.
    pub fn client_capabilities(&self) -> Value {
        self.client_capabilities.clone()
    }

    /// The `clientInfo` the client sent in `initialize`.
    pub fn client_info(&self) -> &Value {
        &self.client_info
    }

    pub(super) fn touch(&self, now: Instant) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = now;
        }
    }

    pub(super) fn last_seen(&self) -> Instant {
        self.last_seen
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now())
    }

    pub(super) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    pub(super) fn expired(&self, now_ms: u64) -> bool {
        now_ms > self.expires_ms
    }

    /// Whether the cached state may go: unused here for longer than `idle`.
    pub(super) fn idle(&self, now: Instant, idle: Duration) -> bool {
        !self.is_busy() && now.duration_since(self.last_seen()) > idle
    }

    /// Streams open and requests in flight on this session.
    pub fn busy_count(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    pub(super) fn end(&self) {
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
