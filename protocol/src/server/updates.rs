//! Where a resource subscriber hears `notifications/resources/updated`: a 2025-11-25
//! session's GET stream or a 2026-07-28 listen stream. Shared by servers that serve
//! subscriptions themselves and by relays that pass them on.

use super::*;
use crate::session::SessionPush;

/// The notification.
pub const RESOURCE_UPDATED: &str = "notifications/resources/updated";

/// Most notifications waiting on one listen stream; more are dropped.
pub const LISTEN_QUEUE: usize = 64;

/// Sends notifications on one 2026-07-28 `subscriptions/listen` stream, each with
/// the subscription's `_meta`.
#[derive(Debug, Clone)]
pub struct ListenSink {
    tx: mpsc::Sender<Bytes>,
    meta: Value,
}

impl ListenSink {
    pub(super) fn new(tx: mpsc::Sender<Bytes>, meta: Value) -> Self {
        ListenSink { tx, meta }
    }

    /// Queues `method` with `params` (an object; `_meta` is set); false when the
    /// stream is closed or its queue is full.
    pub fn notify(&self, method_name: &str, mut params: Value) -> bool {
        if let Value::Object(m) = &mut params {
            m.insert("_meta".into(), self.meta.clone());
        }
        self.tx
            .try_send(Bytes::from(jsonrpc::notification_bytes(
                method_name,
                Some(&params),
            )))
            .is_ok()
    }

    /// Whether the stream is closed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One resource subscriber's channel.
#[derive(Debug, Clone)]
pub enum UpdateSink {
    /// A 2025-11-25 session (after `resources/subscribe`).
    Session(SessionPush),
    /// A 2026-07-28 `subscriptions/listen` stream.
    Listen(ListenSink),
}

impl UpdateSink {
    /// Whether nobody hears on it any more (session gone, stream closed).
    pub fn closed(&self) -> bool {
        match self {
            UpdateSink::Session(p) => p.is_closed(),
            UpdateSink::Listen(l) => l.is_closed(),
        }
    }

    /// Sends `notifications/resources/updated` for `uri` (dropped when the
    /// subscriber's queue is full).
    pub fn updated(&self, uri: &str) {
        let params = json!({ "uri": uri });
        match self {
            UpdateSink::Session(p) => {
                p.send(Bytes::from(jsonrpc::notification_bytes(
                    RESOURCE_UPDATED,
                    Some(&params),
                )));
            }
            UpdateSink::Listen(l) => {
                l.notify(RESOURCE_UPDATED, params);
            }
        }
    }
}
