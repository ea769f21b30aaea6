//! Learning every pod's build in the background, and following the cluster.
//!
//! One task ([`Learner::run`]) owns the [`Builds`]: it asks pods for their tools
//! (at most `CATALOG_LEARN_CONCURRENCY` at once, each within
//! `CATALOG_LEARN_TIMEOUT_SECONDS`, on a throwaway client that keeps no connection),
//! applies each answer as it arrives, and publishes a new catalog once things have been
//! quiet for `CATALOG_DEBOUNCE_MS`. Nothing waits for the slowest pod: a pod that hangs
//! is simply still "learning" (shown on `/readyz`) while the catalog of the others is
//! served, and at start-up the gateway is ready as soon as every pod answered or the
//! answers stopped coming for a debounce interval ([`Learner::until_ready`]).
//!
//! What is kept per pod is a digest of its tools/list (its build); the definitions are
//! kept once per build, and the answers are dropped as soon as they are digested. At
//! 5,000 nodes that is the difference between one idle pooled connection, one MCP client
//! and one parsed tool list per pod, and a few bytes per pod.
//!
//! A pod is asked again when it says its tools changed: see [`crate::listen`] for
//! which pods are listened to and why not all of them. When the pod that spoke turns
//! out to have changed build, the other pods of its old build are asked again too
//! (they run the same software, so they likely changed as well).

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use crate::builds::Builds;
use crate::catalog::Catalog;
use crate::cluster::{Discovery, NodeMap};
use crate::config::CatalogConfig;
use crate::listen::Listeners;
use crate::upstream::Upstreams;

/// Most pods still learning that `/readyz` names.
const REPORTED_LEARNING: usize = 20;

/// How often pods that could not be learned are looked at again.
const RETRY_TICK: Duration = Duration::from_secs(2);

/// Why start-up found no catalog to serve.
#[derive(Debug)]
pub enum NotReady {
    /// No ready endpoint appeared.
    NoBackends,
    /// Ready endpoints, but none listed its tools (the errors, joined).
    NoTools(String),
}

/// What one pod's learning produced.
struct Learned {
    /// The pod.
    ip: IpAddr,
    /// Its tools and `serverInfo` name and version, or why not.
    outcome: Result<(Vec<Value>, String, Value), String>,
}

/// The builds of the cluster's pods, and the learning still under way.
pub struct Learner {
    /// Where the clients come from.
    upstreams: Arc<Upstreams>,
    /// Concurrency, deadline, debounce, page size, listening cap.
    config: CatalogConfig,
    /// What every pod serves.
    builds: Builds,
    /// The node map last seen.
    nodes: Arc<NodeMap>,
    /// The ready pods of `nodes`, IP -> node name (answers from pods that left are
    /// dropped).
    ready: HashMap<IpAddr, String>,
    /// Pods to ask, in order (a pod that said it changed goes first).
    queue: VecDeque<IpAddr>,
    /// The learning in flight, at most `config.learn_concurrency`.
    inflight: JoinSet<Learned>,
    /// Pod IP -> node name, for the pods in `inflight`.
    learning: HashMap<IpAddr, (String, Instant)>,
    /// Pods asked again because they said their tools changed, with the build they
    /// had then.
    told: HashMap<IpAddr, Option<u64>>,
    /// Pods that said their tools changed while being asked: the answer in flight
    /// may predate the change, so they are asked again once it arrives.
    again: std::collections::HashSet<IpAddr>,
    /// The pods listened to for tools/list_changed.
    listeners: Listeners,
}

/// Asks one pod for its tools within `timeout`.
async fn learn_pod(
    client: mcp_protocol::client::McpClient,
    timeout: Duration,
) -> Result<(Vec<Value>, String, Value), String> {
    let tools = match tokio::time::timeout(timeout, client.list_tools()).await {
        Ok(Ok(Ok(tools))) => tools,
        Ok(Ok(Err(e))) => return Err(format!("tools/list error: {}", e.message)),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            return Err(format!(
                "no tools/list answer within {} s",
                timeout.as_secs()
            ));
        }
    };
    let server = client
        .connection()
        .map(|c| {
            let field = |k: &str| {
                c.server_info
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .chars()
                    .take(64)
                    .collect::<String>()
            };
            format!("{} {}", field("name"), field("version"))
        })
        .unwrap_or_else(|| "?".into());
    let capabilities = client
        .connection()
        .map(|c| c.capabilities.clone())
        .unwrap_or(Value::Null);
    client.close().await;
    Ok((tools, server, capabilities))
}

impl Learner {
    /// Changes when a listened pod says its prompts or resources changed.
    pub fn lists_changed(
        &self,
    ) -> tokio::sync::watch::Receiver<mcp_protocol::session::ListChanges> {
        self.listeners.lists_changed()
    }

    /// A learner over `upstreams` with nothing learned yet.
    pub fn new(upstreams: Arc<Upstreams>, config: CatalogConfig) -> Self {
        let listeners = Listeners::new(upstreams.clone(), config.listen_max);
        Learner {
            upstreams,
            config,
            builds: Builds::default(),
            nodes: Arc::new(NodeMap::default()),
            ready: HashMap::new(),
            queue: VecDeque::new(),
            inflight: JoinSet::new(),
            learning: HashMap::new(),
            told: HashMap::new(),
            again: Default::default(),
            listeners,
        }
    }

    /// Takes in a new node map: forgets pods (and their clients) that left, queues the
    /// pods not known yet.
    fn set_nodes(&mut self, nodes: Arc<NodeMap>) {
        self.ready = nodes.ready().map(|e| (e.ip, e.node.clone())).collect();
        self.upstreams.retain(|ip| self.ready.contains_key(ip));
        self.builds.retain_ready(&nodes);
        self.nodes = nodes;
        self.requeue();
    }

    /// Queues every ready pod that should be asked and is not being asked.
    fn requeue(&mut self) {
        self.queue = self
            .nodes
            .ready()
            .map(|e| e.ip)
            .filter(|ip| self.builds.wants(ip) && !self.learning.contains_key(ip))
            .collect();
    }

    /// Starts learning queued pods up to the concurrency cap.
    fn fill(&mut self) {
        while self.inflight.len() < self.config.learn_concurrency.max(1) {
            let Some(ip) = self.queue.pop_front() else {
                return;
            };
            let Some(node) = self.ready.get(&ip).cloned() else {
                continue;
            };
            if self.learning.contains_key(&ip) || !self.builds.wants(&ip) {
                continue;
            }
            self.learning.insert(ip, (node, Instant::now()));
            let client = self.upstreams.probe(ip);
            let timeout = self.config.learn_timeout;
            self.inflight.spawn(async move {
                Learned {
                    ip,
                    outcome: learn_pod(client, timeout).await,
                }
            });
        }
    }

    /// Records one pod's answer.
    fn apply(&mut self, learned: Learned) {
        let Learned { ip, outcome } = learned;
        let node = self
            .learning
            .remove(&ip)
            .map(|(n, _)| n)
            .unwrap_or_default();
        let told = self.told.remove(&ip);
        if !self.ready.contains_key(&ip) {
            self.again.remove(&ip);
            return;
        }
        let again = self.again.remove(&ip);
        match outcome {
            Ok((tools, server, capabilities)) => {
                if capabilities.is_object() {
                    self.upstreams.note_capabilities(ip, capabilities);
                }
                let (digest, _) = self.builds.add_pod(ip, tools, server);
                tracing::debug!(%node, %ip, build = %format!("{digest:016x}"), "learned the pod's build");
                if let Some(old) = told.flatten().filter(|old| *old != digest) {
                    let mates = self.builds.pods_of(old);
                    tracing::info!(%node, %ip, others = mates.len(), "the pod's tools changed; asking the other pods of its old build again");
                    for mate in mates {
                        self.builds.forget_pod(mate);
                        self.queue.push_back(mate);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%node, %ip, error = %e, "could not learn the pod's tools; it is retried later and calls to it are forwarded unchecked");
                self.builds.add_failure(ip, e);
            }
        }
        if again {
            // It said its tools changed while this answer was in flight, which may
            // predate the change: ask once more.
            self.heard(ip);
        }
    }

    /// A pod said its tools changed: ask it again, first.
    fn heard(&mut self, ip: IpAddr) {
        if !self.ready.contains_key(&ip) {
            return;
        }
        if self.learning.contains_key(&ip) {
            self.again.insert(ip);
            return;
        }
        tracing::debug!(%ip, "the pod says its tools changed");
        self.told.insert(ip, self.builds.digest_of(&ip));
        self.builds.forget_pod(ip);
        self.queue.push_front(ip);
    }

    /// The catalog and `/readyz` report over what is known now.
    pub fn catalog(&mut self) -> (Catalog, Value) {
        self.builds.prune();
        self.upstreams.set_known_tools(self.builds.tools_by_pod());
        let (catalog, mut report) =
            crate::server::build_catalog(&self.builds, &self.nodes, &self.config);
        let mut learning: Vec<&str> = self.learning.values().map(|(n, _)| n.as_str()).collect();
        learning.sort_unstable();
        learning.truncate(REPORTED_LEARNING);
        report["learning"] = json!({"pods": self.learning.len(), "nodes": learning});
        report["listening"] = self.listeners.len().into();
        (catalog, report)
    }

    /// Learns until there is a catalog to serve: every ready pod answered (or failed),
    /// or at least one build is known and no answer came for a debounce interval (a
    /// hanging pod goes on learning in the background). Gives up after `wait`, once
    /// every ready pod has been asked.
    pub async fn until_ready(
        &mut self,
        discovery: &Discovery,
        wait: Duration,
    ) -> Result<(), NotReady> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = discovery.changes();
        self.set_nodes(changes.borrow_and_update().clone());
        let quiet = self.config.debounce.max(Duration::from_millis(100));
        loop {
            self.fill();
            let known = !self.builds.is_empty();
            if known && self.inflight.is_empty() && self.queue.is_empty() {
                return Ok(());
            }
            let idle = self.inflight.is_empty() && self.queue.is_empty();
            tokio::select! {
                Some(done) = self.inflight.join_next() => {
                    if let Ok(learned) = done {
                        self.apply(learned);
                    }
                }
                r = changes.changed() => {
                    if r.is_err() {
                        return Err(NotReady::NoBackends);
                    }
                    self.set_nodes(changes.borrow_and_update().clone());
                }
                _ = tokio::time::sleep(quiet), if known => return Ok(()),
                // Nothing learned and nothing to ask: ask the failed pods again.
                _ = tokio::time::sleep(RETRY_TICK), if idle && !known => {
                    if !self.ready.is_empty() {
                        tracing::warn!(error = %self.builds.failures(), "no backend listed its tools yet; waiting");
                    }
                    self.builds.clear_failures();
                    self.requeue();
                }
                // Given up only when every ready pod has been asked at least once.
                _ = tokio::time::sleep_until(deadline), if idle => {
                    return Err(if self.ready.is_empty() {
                        NotReady::NoBackends
                    } else {
                        NotReady::NoTools(self.builds.failures())
                    });
                }
            }
        }
    }

    /// Follows the cluster until `discovery` stops: learns pods as they come (and when
    /// they say they changed), retries pods that could not be learned, and calls
    /// `publish` with a new catalog after a quiet time (at the latest ten debounce
    /// intervals after the first change, so a long rollout still shows progress).
    pub async fn run(mut self, discovery: Discovery, mut publish: impl FnMut(Catalog, Value)) {
        let mut changes = discovery.changes();
        let debounce = self.config.debounce;
        let longest = (debounce * 10).max(Duration::from_secs(1));
        // When the first unpublished change happened, and the last one.
        let mut dirty: Option<(Instant, Instant)> = None;
        self.listeners.choose(&self.builds, &self.nodes);
        // The same catalog (no list_changed), with the listeners in its report.
        let (catalog, report) = self.catalog();
        publish(catalog, report);
        loop {
            self.fill();
            // Quiet for a debounce, and learns started lately given one to finish (a
            // pod that hangs since long holds nothing); while pods wait in the queue,
            // at the latest `longest` after the first change.
            let youngest = self.learning.values().map(|(_, at)| *at).max();
            let publish_at = dirty.map(|(first, last)| {
                let settled = if self.queue.is_empty() {
                    let learns = youngest.map_or(last, |at| at + debounce);
                    (last + debounce).max(learns)
                } else {
                    first + longest
                };
                tokio::time::Instant::from_std(settled.min(first + longest))
            });
            let touch = |d: &mut Option<(Instant, Instant)>| {
                let now = Instant::now();
                *d = Some((d.map_or(now, |(first, _)| first), now));
            };
            tokio::select! {
                Some(done) = self.inflight.join_next() => {
                    if let Ok(learned) = done {
                        self.apply(learned);
                    }
                    touch(&mut dirty);
                }
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                    self.set_nodes(changes.borrow_and_update().clone());
                    touch(&mut dirty);
                }
                ip = self.listeners.next() => self.heard(ip),
                _ = tokio::time::sleep(RETRY_TICK), if self.builds.has_failed() => self.requeue(),
                _ = sleep_until_or_never(publish_at) => {
                    dirty = None;
                    let (catalog, report) = self.catalog();
                    publish(catalog, report);
                    self.listeners.choose(&self.builds, &self.nodes);
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
