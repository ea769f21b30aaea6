//! Kubernetes discovery: which node runs which backend pod, kept current in memory.
//!
//! Every node runs one backend MCP server (a DaemonSet behind a Service). The gateway needs,
//! on every `tools/call`, the answer to "which pod IP serves node X, and is it ready?" — and it
//! must answer that without asking the Kubernetes API on the request path. This module keeps
//! that answer as an immutable [`NodeMap`] snapshot behind a [`Discovery`] handle:
//!
//! - [`Discovery::watch`] runs one background task with kube-runtime's
//!   [`watcher`](kube::runtime::watcher::watcher) over the Service's EndpointSlices
//!   (`discovery.k8s.io/v1`, label `kubernetes.io/service-name`), joins all slices, and
//!   publishes a new `Arc<NodeMap>` only when the routing picture changed.
//!   EndpointSlices (not the deprecated core/v1 Endpoints) because Endpoints truncates at 1000
//!   addresses and a cluster can have thousands of nodes.
//! - [`Discovery::fixed`] serves a static list (for `--static-nodes` and the demo).
//! - The request path calls [`Discovery::nodes`]: one `Arc` clone, no I/O.
//! - Failures (dropped watch, 410 Gone, unreachable API server, 401/403) never empty the map:
//!   the last known map keeps being served, the watch is re-listed with backoff, and
//!   [`Discovery::status`] reports the staleness for `/readyz` and the logs.

mod nodes;
mod task;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client};
use tokio::sync::watch;

pub use nodes::{NodeEndpoint, NodeMap, slice_endpoints};
use task::WatchTask;

/// Label that ties an EndpointSlice to its Service (set by the EndpointSlice controller).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Result type of this module, defaulting to its [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why discovery could not give an answer. Variant names double as metric / log labels.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The first list of the Service's EndpointSlices did not complete in time (API server
    /// unreachable, credentials refused, RBAC missing, ...). Names the Service and namespace so
    /// the operator knows what the gateway was looking for.
    #[error(
        "the EndpointSlices of Service \"{service}\" in namespace \"{namespace}\" could not be listed within {timeout:?}{}",
        last_error_suffix(.last_error)
    )]
    SyncTimeout {
        /// Service whose EndpointSlices were being listed.
        service: String,
        /// Namespace of that Service.
        namespace: String,
        /// How long we waited.
        timeout: Duration,
        /// The most recent error reported by the watch, if any (the likely cause).
        last_error: Option<String>,
    },
    /// The background watch task is gone (the runtime is shutting down), so no list will come.
    #[error("discovery of Service \"{service}\" in namespace \"{namespace}\" has stopped")]
    Stopped {
        /// Service whose EndpointSlices were watched.
        service: String,
        /// Namespace of that Service.
        namespace: String,
    },
    /// No Kubernetes client configuration was found (neither in-cluster nor a kubeconfig).
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG / ~/.kube/config): {0}")]
    Config(#[source] kube::config::InferConfigError),
    /// A Kubernetes client could not be built from the configuration found.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

fn last_error_suffix(last_error: &Option<String>) -> String {
    match last_error {
        Some(e) => format!(" (last error: {e})"),
        None => String::new(),
    }
}

/// Build a Kubernetes client the way `kubectl` would find one: in-cluster service account
/// first, then `KUBECONFIG` / `~/.kube/config` (kube's `Config::infer`).
pub async fn infer_client() -> Result<Client> {
    let config = kube::Config::infer().await.map_err(Error::Config)?;
    client_from_config(config)
}

/// Build the client discovery should use from a kube `Config`.
///
/// kube's built-in retry of 429/503/504 is turned off: it would retry one request for minutes
/// while [`DiscoveryStatus`] still said "healthy". The watch loop has its own backoff, so each
/// failure surfaces at once, is reported, and is retried there.
pub fn client_from_config(mut config: kube::Config) -> Result<Client> {
    config.default_retry = false;
    Client::try_from(config).map_err(Error::Client)
}

/// How current the published [`NodeMap`] is; read by `/readyz`, metrics and start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryStatus {
    /// The first complete list has been received: the map reflects the cluster, not emptiness
    /// from not having asked yet.
    pub synced: bool,
    /// The watch is currently established (a list completed or events arrived since the last
    /// error). False means the map may be stale.
    pub healthy: bool,
    /// The most recent watch error, kept after recovery so operators can see what happened.
    pub last_error: Option<String>,
    /// When the published map last changed (or discovery started).
    pub last_change: Instant,
    /// Since when the watch has been failing; `None` while healthy. Lets `/readyz` tolerate
    /// short blips and report how stale the map may be.
    pub unhealthy_since: Option<Instant>,
}

impl DiscoveryStatus {
    fn starting() -> Self {
        let now = Instant::now();
        Self {
            synced: false,
            healthy: false,
            last_error: None,
            last_change: now,
            unhealthy_since: Some(now),
        }
    }
}

/// Tuning of the EndpointSlice watch; [`Default`] suits production, tests shorten the backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// First retry delay after a watch error (doubles per consecutive failure, with jitter).
    pub min_backoff: Duration,
    /// Upper bound of the retry delay, so a recovered API server is noticed soon enough.
    pub max_backoff: Duration,
    /// Page size of list calls (`limit`); `None` lists everything in one response.
    pub page_size: Option<u32>,
    /// Server-side watch timeout in seconds (`timeoutSeconds`); `None` uses kube's 290 s.
    pub watch_timeout: Option<u32>,
}

impl Default for WatchOptions {
    /// The client-go reflector's backoff (0.8 s doubling to 30 s) and page size (500).
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(800),
            max_backoff: Duration::from_secs(30),
            page_size: Some(500),
            watch_timeout: None,
        }
    }
}

/// Handle to the live node map; cheap to clone and share across tasks.
///
/// Holds only watch-channel receivers: reading never blocks on the network. The background
/// task (for [`Discovery::watch`]) stops once every handle and every [`Discovery::changes`]
/// receiver is dropped.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Latest published map; the request path clones the `Arc`.
    nodes: watch::Receiver<Arc<NodeMap>>,
    /// Latest status; also what [`Discovery::wait_synced`] waits on.
    status: watch::Receiver<DiscoveryStatus>,
    /// What is being watched, for error messages.
    target: Arc<Target>,
    /// For [`Discovery::fixed`]: keeps the senders alive so `changes()` receivers do not see
    /// a closed channel (the list simply never changes).
    _fixed: Option<Arc<FixedSenders>>,
}

/// The senders of a [`Discovery::fixed`] map, held only to keep its channels open.
type FixedSenders = (watch::Sender<Arc<NodeMap>>, watch::Sender<DiscoveryStatus>);

/// The Service a [`Discovery`] follows.
#[derive(Debug)]
struct Target {
    /// Namespace of the Service (SERVICE_NAMESPACE).
    namespace: String,
    /// Name of the Service (SERVICE_NAME); its slices carry it in [`SERVICE_NAME_LABEL`].
    service: String,
}

impl Discovery {
    /// Watch the EndpointSlices of `service` in `namespace` with default [`WatchOptions`].
    ///
    /// Spawns the watch task on the current tokio runtime and returns at once (must be called
    /// from within a runtime). Use [`Discovery::wait_synced`] to wait for the first list.
    pub fn watch(client: Client, namespace: &str, service: &str) -> Self {
        Self::watch_with(client, namespace, service, WatchOptions::default())
    }

    /// Like [`Discovery::watch`], with explicit backoff / paging / timeout settings.
    pub fn watch_with(
        client: Client,
        namespace: &str,
        service: &str,
        options: WatchOptions,
    ) -> Self {
        let (nodes_tx, nodes_rx) = watch::channel(Arc::new(NodeMap::default()));
        let (status_tx, status_rx) = watch::channel(DiscoveryStatus::starting());
        let target = Arc::new(Target {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
        });
        let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
        let task = WatchTask::new(api, options, target.clone(), nodes_tx, status_tx);
        tokio::spawn(task.run());
        Self {
            nodes: nodes_rx,
            status: status_rx,
            target,
            _fixed: None,
        }
    }

    /// A fixed node list (for `--static-nodes` and the demo): always synced and healthy,
    /// never changes.
    pub fn fixed(nodes: NodeMap) -> Self {
        let (nodes_tx, nodes_rx) = watch::channel(Arc::new(nodes));
        let status = DiscoveryStatus {
            synced: true,
            healthy: true,
            last_error: None,
            last_change: Instant::now(),
            unhealthy_since: None,
        };
        let (status_tx, status_rx) = watch::channel(status);
        Self {
            nodes: nodes_rx,
            status: status_rx,
            target: Arc::new(Target {
                namespace: "(static)".to_owned(),
                service: "(static)".to_owned(),
            }),
            _fixed: Some(Arc::new((nodes_tx, status_tx))),
        }
    }

    /// The current map: a cheap `Arc` clone, safe on the request path.
    pub fn nodes(&self) -> Arc<NodeMap> {
        self.nodes.borrow().clone()
    }

    /// A receiver that wakes on every published change (e.g. to refresh the tool catalog or
    /// drop pooled sessions of vanished pods).
    pub fn changes(&self) -> watch::Receiver<Arc<NodeMap>> {
        self.nodes.clone()
    }

    /// The current health of discovery.
    pub fn status(&self) -> DiscoveryStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every change of the health of discovery (metrics count
    /// the watch's restarts from it).
    pub fn status_changes(&self) -> watch::Receiver<DiscoveryStatus> {
        self.status.clone()
    }

    /// Namespace being watched (`"(static)"` for a fixed list).
    pub fn namespace(&self) -> &str {
        &self.target.namespace
    }

    /// Service being watched (`"(static)"` for a fixed list).
    pub fn service(&self) -> &str {
        &self.target.service
    }

    /// Wait until the first list has completed, at most `timeout`; then return the map.
    ///
    /// Start-up uses this to fail with a message naming the Service and namespace (and the
    /// last watch error) instead of serving an empty map.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<Arc<NodeMap>> {
        let mut status = self.status.clone();
        match tokio::time::timeout(timeout, status.wait_for(|s| s.synced)).await {
            Ok(Ok(_)) => Ok(self.nodes()),
            Ok(Err(_closed)) if self.status.borrow().synced => Ok(self.nodes()),
            Ok(Err(_closed)) => Err(Error::Stopped {
                service: self.target.service.clone(),
                namespace: self.target.namespace.clone(),
            }),
            Err(_elapsed) => Err(Error::SyncTimeout {
                service: self.target.service.clone(),
                namespace: self.target.namespace.clone(),
                timeout,
                last_error: self.status.borrow().last_error.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fixed_is_synced_and_healthy() {
        let d = Discovery::fixed(NodeMap::from_endpoints([NodeEndpoint {
            node: "a".into(),
            ip: [127, 0, 0, 2].into(),
            ready: true,
            pod: None,
            zone: None,
            terminating: false,
        }]));
        let map = d.wait_synced(Duration::from_millis(10)).await.unwrap();
        assert_eq!(map.len(), 1);
        assert!(d.status().healthy);
    }
}
