//! Resource subscriptions through the gateway: a client subscribes to a
//! `k8s-node://{node}/...` URI and hears `notifications/resources/updated` when the
//! backend resource changes on that node.
//!
//! 2025-11-25 clients subscribe with `resources/subscribe` and hear on their
//! session's GET stream; 2026-07-28 clients name the URIs in a
//! `subscriptions/listen` request's `resourceSubscriptions` and hear on that stream.
//!
//! Upstream, one watch per (pod, backend URI), shared by every subscriber of it: a
//! connection of its own to the pod (a 2025-11-25 session that subscribed, reading
//! its GET stream; or a 2026-07-28 `subscriptions/listen` for that URI), renewed
//! with backoff while anyone is subscribed and closed when the last subscriber
//! leaves. The URIs in the notifications come back wrapped for the node. At most
//! [`MAX_WATCHES`] watches and [`MAX_SUBSCRIBERS`] subscriptions at once; a session
//! or stream that went away is forgotten when its watch next speaks or anyone
//! subscribes.

use bytes::Bytes;
use mcp_protocol::client::{ClientError, ListenEnd};
use mcp_protocol::jsonrpc::{ErrorObject, Message};
use mcp_protocol::mcp::Era;
use mcp_protocol::server::{
    ClientRequest, ListenSink, RESOURCE_UPDATED as UPDATED, UpdateSink as Sink,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::gateway::Gateway;
use crate::upstream::Upstreams;

/// The subscribe method (2025-11-25).
pub const SUBSCRIBE: &str = "resources/subscribe";
/// The unsubscribe method (2025-11-25).
pub const UNSUBSCRIBE: &str = "resources/unsubscribe";
/// Upstream watches at once.
pub const MAX_WATCHES: usize = 256;
/// Subscriptions (subscriber and URI) at once.
pub const MAX_SUBSCRIBERS: usize = 1024;
/// How long one upstream stream is held before it is renewed.
const STREAM_FOR: Duration = Duration::from_secs(600);
/// Backoff between failed upstream attempts: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// One upstream watch and who hears it.
struct Watch {
    node: String,
    sinks: HashMap<String, Sink>,
    task: tokio::task::JoinHandle<()>,
}

/// The gateway's resource subscriptions.
#[derive(Default)]
pub struct Subscriptions {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    watches: HashMap<(IpAddr, String), Watch>,
    next_listen: u64,
}

impl State {
    fn prune(&mut self) {
        self.watches.retain(|_, w| {
            w.sinks.retain(|_, s| !s.closed());
            let live = !w.sinks.is_empty();
            if !live {
                w.task.abort();
            }
            live
        });
    }

    fn subscribers(&self) -> usize {
        self.watches.values().map(|w| w.sinks.len()).sum()
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for w in st.watches.values() {
            w.task.abort();
        }
    }
}

fn busy() -> ErrorObject {
    ErrorObject::internal(
        "The gateway holds as many resource subscriptions as it takes; try again later.",
    )
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `sink` under `key` to the watch of `backend_uri` on the pod at `ip`,
    /// starting the watch if it is new.
    fn add(
        self: &Arc<Self>,
        upstreams: &Arc<Upstreams>,
        (ip, node, backend_uri): (IpAddr, &str, &str),
        key: String,
        sink: Sink,
    ) -> Result<(), ErrorObject> {
        let mut st = self.lock();
        st.prune();
        let id = (ip, backend_uri.to_owned());
        let known = st
            .watches
            .get(&id)
            .is_some_and(|w| w.sinks.contains_key(&key));
        if !known && st.subscribers() >= MAX_SUBSCRIBERS {
            return Err(busy());
        }
        if let Some(w) = st.watches.get_mut(&id) {
            w.sinks.insert(key, sink);
            return Ok(());
        }
        if st.watches.len() >= MAX_WATCHES {
            return Err(busy());
        }
        let task = tokio::spawn(watch(
            Arc::downgrade(self),
            upstreams.clone(),
            ip,
            node.to_owned(),
            backend_uri.to_owned(),
        ));
        st.watches.insert(
            id,
            Watch {
                node: node.to_owned(),
                sinks: HashMap::from([(key, sink)]),
                task,
            },
        );
        Ok(())
    }

    fn remove(&self, ip: IpAddr, backend_uri: &str, key: &str) {
        let mut st = self.lock();
        if let Some(w) = st.watches.get_mut(&(ip, backend_uri.to_owned())) {
            w.sinks.remove(key);
        }
        st.prune();
    }

    /// Tells the subscribers of one watch that `backend_uri` changed.
    fn updated(&self, ip: IpAddr, watched: &str, backend_uri: &str) {
        let mut st = self.lock();
        if let Some(w) = st.watches.get_mut(&(ip, watched.to_owned())) {
            w.sinks.retain(|_, s| !s.closed());
            let uri = crate::resources::wrap(&w.node, backend_uri);
            for sink in w.sinks.values() {
                sink.updated(&uri);
            }
        }
        st.prune();
    }

    /// 2026-07-28 `subscriptions/listen` asking for `uris`: the ones the gateway will
    /// report on (gateway URIs of ready nodes), each change sent on `sink`.
    pub fn listen(
        self: &Arc<Self>,
        gw: &Gateway,
        uris: &[String],
        sink: &ListenSink,
    ) -> Vec<String> {
        let key = {
            let mut st = self.lock();
            st.next_listen += 1;
            format!("l:{}", st.next_listen)
        };
        let mut honoured = Vec::new();
        for uri in uris {
            let Some((node, backend_uri)) = crate::resources::unwrap(uri) else {
                continue;
            };
            let Ok(ip) = crate::prompts::node_ip(gw, Some(&node)) else {
                continue;
            };
            let sink = Sink::Listen(sink.clone());
            if self
                .add(gw.upstreams(), (ip, &node, &backend_uri), key.clone(), sink)
                .is_ok()
            {
                honoured.push(uri.clone());
            }
        }
        honoured
    }
}

/// 2025-11-25 `resources/subscribe` / `resources/unsubscribe` of a gateway URI.
pub fn handle(gw: &Gateway, request: &ClientRequest) -> Result<Bytes, ErrorObject> {
    if request.outbound.version().era() == Era::Modern {
        // 2026-07-28 subscribes on subscriptions/listen.
        return Err(ErrorObject::method_not_found(&request.method));
    }
    let uri = request
        .params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorObject::invalid_params("params.uri (a string) is required"))?;
    let (node, backend_uri) = crate::resources::unwrap(uri).ok_or_else(|| {
        ErrorObject::invalid_params(
            "Not a resource of this gateway: its URIs are k8s-node://{node}/{backend URI, percent-encoded}.",
        )
    })?;
    let (Some(session), Some(push)) = (
        request.outbound.session_id(),
        request.outbound.session_push(),
    ) else {
        return Err(ErrorObject::invalid_request(
            "Resource subscriptions need a session (initialize first).",
        ));
    };
    let ip = crate::prompts::node_ip(gw, Some(&node))?;
    let key = format!("s:{session}");
    let subs = gw.subscriptions();
    if request.method == UNSUBSCRIBE {
        subs.remove(ip, &backend_uri, &key);
    } else {
        subs.add(
            gw.upstreams(),
            (ip, &node, &backend_uri),
            key,
            Sink::Session(push),
        )?;
    }
    Ok(Bytes::from_static(b"{}"))
}

/// One upstream watch: streams one after another while anyone is subscribed, with
/// backoff after failures.
async fn watch(
    subs: std::sync::Weak<Subscriptions>,
    upstreams: Arc<Upstreams>,
    ip: IpAddr,
    node: String,
    uri: String,
) {
    let mut failures: u32 = 0;
    loop {
        let client = upstreams.probe(ip);
        let end = watch_once(&subs, &client, ip, &uri).await;
        client.close().await;
        match end {
            Ok(ListenEnd::Deadline) => failures = 0,
            Ok(ListenEnd::Closed) => failures = failures.saturating_add(1),
            Err(e) => {
                tracing::debug!(%ip, %node, %uri, error = %e, "no resource subscription stream");
                failures = failures.saturating_add(1);
            }
        }
        if subs.upgrade().is_none() {
            return;
        }
        let delay = BACKOFF
            .0
            .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
            .min(BACKOFF.1);
        tokio::time::sleep(delay).await;
    }
}

async fn watch_once(
    subs: &std::sync::Weak<Subscriptions>,
    client: &mcp_protocol::client::McpClient,
    ip: IpAddr,
    uri: &str,
) -> Result<ListenEnd, ClientError> {
    let conn = client.connect().await?;
    if conn.version.era() == Era::Legacy {
        let mut params = serde_json::Map::new();
        params.insert("uri".into(), uri.into());
        if let Err(e) = client
            .request(SUBSCRIBE, params, Default::default())
            .await?
        {
            return Err(ClientError::Handshake {
                url: client.url().to_owned(),
                error: Box::new(e),
            });
        }
    }
    let filter = json!({ "resourceSubscriptions": [uri] });
    let mut on_note = |note: Bytes| {
        if let Ok(Message::Notification(n)) = Message::from_slice(&note)
            && n.method == UPDATED
            && let Some(changed) = n
                .params
                .as_ref()
                .and_then(|p| p.get("uri"))
                .and_then(Value::as_str)
            && let Some(subs) = subs.upgrade()
        {
            subs.updated(ip, uri, changed);
        }
    };
    client
        .listen_notifications(STREAM_FOR, filter, &mut on_note)
        .await
}
