//! Where a resource subscriber hears `notifications/resources/updated`: a 2025-11-25
//! session's GET stream or a 2026-07-28 listen stream. Shared by servers that serve
//! subscriptions themselves and by relays that pass them on.

use super::*;
use crate::session::SessionPush;

/// The notification.
pub const RESOURCE_UPDATED: &str = "notifications/resources/updated";

/// One resource subscriber's channel.
#[derive(Debug, Clone)]
pub enum UpdateSink {
    /// A 2025-11-25 session (after `resources/subscribe`).
    Session(SessionPush),
    /// A 2026-07-28 `subscriptions/listen` stream, with its subscription's `_meta`.
    Listen(mpsc::Sender<Bytes>, Value),
}

impl UpdateSink {
    /// Whether nobody hears on it any more (session gone, stream closed).
    pub fn closed(&self) -> bool {
        match self {
            UpdateSink::Session(p) => p.is_closed(),
            UpdateSink::Listen(tx, _) => tx.is_closed(),
        }
    }

    /// Sends `notifications/resources/updated` for `uri` (dropped when the
    /// subscriber's queue is full).
    pub fn updated(&self, uri: &str) {
        let mut params = json!({ "uri": uri });
        match self {
            UpdateSink::Session(p) => {
                p.send(Bytes::from(jsonrpc::notification_bytes(
                    RESOURCE_UPDATED,
                    Some(&params),
                )));
            }
            UpdateSink::Listen(tx, meta) => {
                params["_meta"] = meta.clone();
                let _ = tx.try_send(Bytes::from(jsonrpc::notification_bytes(
                    RESOURCE_UPDATED,
                    Some(&params),
                )));
            }
        }
    }
}
