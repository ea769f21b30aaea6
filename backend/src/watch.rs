//! Subscriptions to the resource `node://os-release`: the host file is checked every
//! [`POLL`] while someone is subscribed, and each change is announced with
//! `notifications/resources/updated` (2025-11-25: on the subscribed session's GET
//! stream, after `resources/subscribe`; 2026-07-28: on the `subscriptions/listen`
//! stream that asked for it in `resourceSubscriptions`).
//!
//! At most [`MAX_SUBSCRIBERS`] subscribers at once; a session gone from this server,
//! or a listen stream closed, is forgotten at the next change.

use mcp_protocol::server::{ListenSink, UpdateSink as Sink};
use mcp_protocol::session::SessionPush;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::content::OS_RELEASE;

/// How often the file is checked while subscribed.
pub const POLL: Duration = Duration::from_millis(200);
/// Most subscribers at once.
pub const MAX_SUBSCRIBERS: usize = 256;

/// The subscribers of `node://os-release` and the watcher of its file.
pub struct Subscriptions {
    file: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sinks: HashMap<String, Sink>,
    next_listen: u64,
    watching: bool,
}

impl Subscriptions {
    /// Subscriptions to the host file at `file`.
    pub fn new(file: PathBuf) -> Arc<Self> {
        Arc::new(Subscriptions {
            file,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A legacy session subscribes; false when full.
    pub fn subscribe_session(self: &Arc<Self>, session: &str, push: SessionPush) -> bool {
        self.add(format!("s:{session}"), Sink::Session(push))
    }

    /// A legacy session unsubscribes.
    pub fn unsubscribe_session(&self, session: &str) {
        self.lock().sinks.remove(&format!("s:{session}"));
    }

    /// A 2026-07-28 listen stream subscribes; false when full.
    pub fn subscribe_listen(self: &Arc<Self>, sink: &ListenSink) -> bool {
        let key = {
            let mut st = self.lock();
            st.next_listen += 1;
            format!("l:{}", st.next_listen)
        };
        self.add(key, Sink::Listen(sink.clone()))
    }

    fn add(self: &Arc<Self>, key: String, sink: Sink) -> bool {
        let start = {
            let mut st = self.lock();
            st.sinks.retain(|_, s| !s.closed());
            if st.sinks.len() >= MAX_SUBSCRIBERS && !st.sinks.contains_key(&key) {
                return false;
            }
            st.sinks.insert(key, sink);
            !std::mem::replace(&mut st.watching, true)
        };
        if start {
            tokio::spawn(self.clone().watch());
        }
        true
    }

    /// Checks the file while anyone is subscribed; announces each change.
    async fn watch(self: Arc<Self>) {
        let stamp = |f: &PathBuf| -> Option<(SystemTime, u64)> {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        let mut last = stamp(&self.file);
        loop {
            tokio::time::sleep(POLL).await;
            let now = stamp(&self.file);
            let mut st = self.lock();
            st.sinks.retain(|_, s| !s.closed());
            if st.sinks.is_empty() {
                st.watching = false;
                return;
            }
            if now != last {
                tracing::info!(
                    uri = OS_RELEASE,
                    "resource changed; telling its subscribers"
                );
                for sink in st.sinks.values() {
                    sink.updated(OS_RELEASE);
                }
                last = now;
            }
        }
    }
}
