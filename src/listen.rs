//! Hearing a backend say its tools changed (`notifications/tools/list_changed`), or
//! its prompts or resources (`notifications/{prompts,resources}/list_changed`).
//!
//! A legacy node server sends it on its session's GET stream, a 2026-07-28 one on a
//! `subscriptions/listen` stream; either way it is a long-lived connection per pod, on
//! the gateway and on the pod. Listening to every pod of a 5,000-node cluster would
//! hold 5,000 connections and their buffers open for a notification that, with the
//! DaemonSet model, rarely comes: a build is an image, and a new image is a new pod,
//! which the EndpointSlice watch already reports (and which is learned as it appears).
//!
//! So the gateway listens to a bounded set of at most `CATALOG_LISTEN_MAX` pods, spread
//! over the builds (round robin: the first ready pod of each build in node order, then
//! the second, ...), which on a small cluster is every pod. When a listened pod speaks
//! it is learned again, and if its build changed, so is every pod of its old build
//! ([`crate::learn`]). The trade-off: a pod whose tools change on their own while no
//! pod of its build is listened to is only noticed when its build-mate that is
//! listened to changes too, or when the pod is replaced. Every build has at least one
//! listened pod as long as there are no more builds than the cap.
//!
//! Each listener reconnects with capped exponential backoff, renews its stream every
//! [`STREAM_FOR`] (no work in between, and none on the request path), and has the
//! pod learned again once a stream has been up for [`HEALTHY_AFTER`] (a change
//! between the last learning and the stream's start is not announced on it) and
//! after a stream that broke, since a change may have been missed.
//! A pod that offers no stream (405) is left alone.

use mcp_protocol::client::{ClientError, ListKind, ListenEnd};
use mcp_protocol::session::ListChanges;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

use crate::builds::Builds;
use crate::cluster::NodeMap;
use crate::upstream::Upstreams;

/// How long one stream is held before it is renewed.
pub const STREAM_FOR: Duration = Duration::from_secs(600);

/// Backoff between attempts after a failure: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(60));

/// A stream open this long counts as having worked (resets the backoff; its end
/// may have hidden a change, so the pod is learned again).
const HEALTHY_AFTER: Duration = Duration::from_secs(1);

/// The pods that spoke since the learner last looked, and the bell it waits on.
struct Heard {
    /// Pod IPs (at most one entry per listener, so bounded by the cap).
    pods: Mutex<HashSet<IpAddr>>,
    /// Rung when a pod is added.
    bell: Notify,
    /// Bumped when a pod says its prompts or resources changed.
    lists: watch::Sender<ListChanges>,
}

impl Default for Heard {
    fn default() -> Self {
        Heard {
            pods: Default::default(),
            bell: Notify::new(),
            lists: watch::channel(ListChanges::default()).0,
        }
    }
}

impl Heard {
    fn add(&self, ip: IpAddr) {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ip);
        self.bell.notify_one();
    }
}

/// The listeners, one task per listened pod.
pub struct Listeners {
    /// Where the clients come from.
    upstreams: Arc<Upstreams>,
    /// Most pods listened to.
    max: usize,
    /// Pod IP -> its listener task.
    tasks: HashMap<IpAddr, tokio::task::JoinHandle<()>>,
    /// What the tasks heard.
    heard: Arc<Heard>,
}

impl Listeners {
    /// No listener yet; at most `max` once [`Listeners::choose`] runs.
    pub fn new(upstreams: Arc<Upstreams>, max: usize) -> Self {
        Listeners {
            upstreams,
            max,
            tasks: HashMap::new(),
            heard: Arc::new(Heard::default()),
        }
    }

    /// How many pods are listened to.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no pod is listened to.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Listens to the pods [`pick`] chooses; stops listening to the others.
    pub fn choose(&mut self, builds: &Builds, nodes: &NodeMap) {
        let wanted = pick(builds, nodes, self.max);
        self.tasks.retain(|ip, task| {
            let keep = wanted.contains(ip) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for ip in wanted {
            if !self.tasks.contains_key(&ip) {
                let client = self.upstreams.probe(ip);
                let heard = self.heard.clone();
                self.tasks
                    .insert(ip, tokio::spawn(listen(client, ip, heard)));
            }
        }
    }

    /// Changes when a listened pod says its prompt or resource list changed (the
    /// lists are learned on demand: their caches are dropped and clients told).
    pub fn lists_changed(&self) -> watch::Receiver<ListChanges> {
        self.heard.lists.subscribe()
    }

    /// The next pod that said its tools changed.
    pub async fn next(&self) -> IpAddr {
        loop {
            let notified = self.heard.bell.notified();
            if let Some(ip) = {
                let mut pods = self.heard.pods.lock().unwrap_or_else(|e| e.into_inner());
                let first = pods.iter().next().copied();
                first.inspect(|ip| {
                    pods.remove(ip);
                })
            } {
                return ip;
            }
            notified.await;
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

/// At most `max` ready pods whose build is known, spread over the builds: round robin
/// over the builds (by digest), each build's pods in node order.
pub fn pick(builds: &Builds, nodes: &NodeMap, max: usize) -> HashSet<IpAddr> {
    let mut per_build: BTreeMap<u64, Vec<IpAddr>> = BTreeMap::new();
    for e in nodes.ready() {
        if let Some(d) = builds.digest_of(&e.ip) {
            per_build.entry(d).or_default().push(e.ip);
        }
    }
    let mut chosen = HashSet::new();
    let mut round = 0;
    while chosen.len() < max {
        let mut any = false;
        for pods in per_build.values() {
            if let Some(ip) = pods.get(round) {
                any = true;
                if chosen.len() < max {
                    chosen.insert(*ip);
                }
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    chosen
}

/// One pod's listener: streams one after another, with backoff after failures.
async fn listen(client: mcp_protocol::client::McpClient, ip: IpAddr, heard: Arc<Heard>) {
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        let mut on_change = |kind| match kind {
            ListKind::Tools => heard.add(ip),
            ListKind::Prompts => heard.lists.send_modify(|c| c.prompts += 1),
            ListKind::Resources => heard.lists.send_modify(|c| c.resources += 1),
        };
        let stream = client.listen_lists_changed(STREAM_FOR, &mut on_change);
        tokio::pin!(stream);
        // A change between the pod's last learning and this stream's start is not
        // announced on it: once the stream has been up a moment, learn the pod again.
        let end = tokio::select! {
            end = &mut stream => end,
            _ = tokio::time::sleep(HEALTHY_AFTER) => {
                heard.add(ip);
                stream.await
            }
        };
        let lasted = started.elapsed() >= HEALTHY_AFTER;
        match end {
            Ok(ListenEnd::Deadline) => {
                failures = 0;
                continue;
            }
            Err(ClientError::Http { status, .. })
                if status == http::StatusCode::METHOD_NOT_ALLOWED =>
            {
                tracing::info!(%ip, "the pod offers no notification stream; not listening to it");
                return std::future::pending().await;
            }
            Ok(ListenEnd::Closed) => {
                tracing::debug!(%ip, "the pod ended its notification stream");
            }
            Err(e) => tracing::debug!(%ip, error = %e, "no notification stream from the pod"),
        }
        if lasted {
            failures = 0;
            // The stream was up and broke: a change may have gone unheard.
            heard.add(ip);
        }
        failures = failures.saturating_add(1);
        let delay = BACKOFF
            .0
            .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
            .min(BACKOFF.1);
        let jitter = delay.mul_f64(rand::random::<f64>() * 0.25);
        tokio::time::sleep(delay + jitter).await;
        if failures > 1 {
            // The session may be gone with the pod's restart: start afresh.
            client.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeEndpoint;
    use serde_json::json;

    #[test]
    fn the_listened_pods_are_spread_over_the_builds_and_capped() {
        let mut b = Builds::default();
        let ip = |i: u8| -> IpAddr { format!("10.0.0.{i}").parse().unwrap() };
        let nodes = NodeMap::from_endpoints((1..=6).map(|i| NodeEndpoint {
            node: format!("n{i}"),
            ip: ip(i),
            ready: true,
            pod: None,
            zone: None,
            terminating: false,
        }));
        for i in 1..=5 {
            b.insert_pod(ip(i), vec![json!({"name": "a"})], "s");
        }
        b.insert_pod(ip(6), vec![json!({"name": "b"})], "s");
        let two = pick(&b, &nodes, 2);
        assert!(
            two.contains(&ip(6)),
            "the small build has its listener: {two:?}"
        );
        assert_eq!(two.len(), 2);
        assert_eq!(pick(&b, &nodes, 100).len(), 6, "a small cluster: every pod");
        assert!(pick(&b, &nodes, 0).is_empty());
    }
}
