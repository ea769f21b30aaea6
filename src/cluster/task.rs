//! The background task behind [`Discovery::watch`](super::Discovery::watch): kube-runtime's
//! watcher over the Service's EndpointSlices, joined into a [`NodeMap`] and published.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{
    DiscoveryStatus, NodeEndpoint, NodeMap, SERVICE_NAME_LABEL, Target, WatchOptions,
    slice_endpoints,
};

/// The background task behind [`Discovery::watch`].
pub(super) struct WatchTask {
    /// EndpointSlices in the Service's namespace (namespaced: the Role is namespaced too).
    api: Api<EndpointSlice>,
    /// Backoff, paging and timeout settings.
    options: WatchOptions,
    /// What is watched, for the label selector and log fields.
    target: Arc<Target>,
    /// Publishes the map; `closed()` tells the task every handle is gone.
    nodes: watch::Sender<Arc<NodeMap>>,
    /// Publishes the status.
    status: watch::Sender<DiscoveryStatus>,
    /// The joined state: slice name -> its routable endpoints (parsed once per event).
    slices: BTreeMap<String, Vec<NodeEndpoint>>,
}

impl WatchTask {
    /// A task that will publish into `nodes` / `status`; start it with [`WatchTask::run`].
    pub(super) fn new(
        api: Api<EndpointSlice>,
        options: WatchOptions,
        target: Arc<Target>,
        nodes: watch::Sender<Arc<NodeMap>>,
        status: watch::Sender<DiscoveryStatus>,
    ) -> Self {
        Self {
            api,
            options,
            target,
            nodes,
            status,
            slices: BTreeMap::new(),
        }
    }

    /// Run watchers until every [`Discovery`] handle is gone.
    ///
    /// Any watcher error ends that watcher; after a backoff a fresh one re-lists. A fresh
    /// list (rather than kube-runtime's silent resume) is what tells us the API server is
    /// reachable again, so `healthy` can be set back without waiting for a change event.
    /// A watch that merely ends is resumed by kube-runtime without an error. If lists work
    /// but watches keep failing, the map is refreshed by each relist, at most `max_backoff`
    /// apart, and `healthy` is true only right after each of them.
    pub(super) async fn run(mut self) {
        let selector = format!("{SERVICE_NAME_LABEL}={}", self.target.service);
        let mut config = watcher::Config::default().labels(&selector);
        config.page_size = self.options.page_size;
        if let Some(t) = self.options.watch_timeout {
            config = config.timeout(t);
        }
        info!(namespace = %self.target.namespace, service = %self.target.service, %selector, "watching EndpointSlices");
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            let stream = watcher(self.api.clone(), config.clone());
            futures_util::pin_mut!(stream);
            // InitApply events are buffered here until InitDone swaps them in atomically.
            let mut relist: Option<BTreeMap<String, Vec<NodeEndpoint>>> = None;
            let error = loop {
                let event = tokio::select! {
                    _ = self.nodes.closed() => return,
                    event = stream.next() => event,
                };
                match event {
                    None => break "watch stream ended".to_owned(),
                    Some(Err(err)) => break describe(&err, &self.target),
                    Some(Ok(Event::Init)) => relist = Some(BTreeMap::new()),
                    Some(Ok(Event::InitApply(slice))) => {
                        if let Some(buffer) = relist.as_mut() {
                            buffer.insert(slice.name_any(), slice_endpoints(&slice));
                        }
                    }
                    Some(Ok(Event::InitDone)) => {
                        self.slices = relist.take().unwrap_or_default();
                        self.publish();
                        self.mark_healthy();
                    }
                    Some(Ok(Event::Apply(slice))) => {
                        self.slices
                            .insert(slice.name_any(), slice_endpoints(&slice));
                        self.publish();
                        self.mark_healthy();
                    }
                    Some(Ok(Event::Delete(slice))) => {
                        self.slices.remove(&slice.name_any());
                        self.publish();
                        self.mark_healthy();
                    }
                }
            };
            // Only a watcher that stayed up for a while resets the backoff: a cycle where the
            // list works but the watch is refused (a Role without `watch`) must slow down too.
            if started.elapsed() > self.options.max_backoff {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let delay = backoff(&self.options, failures);
            warn!(
                namespace = %self.target.namespace,
                service = %self.target.service,
                error = %error,
                retry_in = ?delay,
                failures,
                nodes_kept = self.nodes.borrow().len(),
                "EndpointSlice watch failed; serving the last known nodes and re-listing after backoff"
            );
            self.mark_unhealthy(error);
            tokio::select! {
                _ = self.nodes.closed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Recompute the map from all slices; publish and log only if it changed.
    fn publish(&self) {
        let next = NodeMap::from_endpoints(self.slices.values().flatten().cloned());
        // Before the first sync every node is "new": one summary line instead (mark_healthy).
        let log_each = self.status.borrow().synced;
        let changed = self.nodes.send_if_modified(|current| {
            if **current == next {
                return false;
            }
            if log_each {
                log_changes(current, &next);
            }
            *current = Arc::new(next);
            true
        });
        if changed {
            self.status.send_modify(|s| s.last_change = Instant::now());
        }
    }

    fn mark_healthy(&self) {
        self.status.send_if_modified(|s| {
            if s.synced && s.healthy {
                return false;
            }
            if s.synced {
                info!(namespace = %self.target.namespace, service = %self.target.service, "EndpointSlice watch recovered");
            } else {
                let nodes = self.nodes.borrow();
                info!(
                    namespace = %self.target.namespace,
                    service = %self.target.service,
                    nodes = nodes.len(),
                    ready = nodes.ready().count(),
                    "EndpointSlices listed"
                );
            }
            s.synced = true;
            s.healthy = true;
            s.unhealthy_since = None;
            true
        });
    }

    fn mark_unhealthy(&self, error: String) {
        self.status.send_modify(|s| {
            s.healthy = false;
            s.unhealthy_since.get_or_insert_with(Instant::now);
            s.last_error = Some(error);
        });
    }
}

/// Exponential backoff with up to +25 % jitter, capped at `max_backoff`.
fn backoff(options: &WatchOptions, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let base = options
        .min_backoff
        .saturating_mul(1u32 << exp)
        .min(options.max_backoff);
    let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
    (base + jitter).min(options.max_backoff.max(options.min_backoff))
}

/// A one-line description of a watcher error (HTTP code, reason and message of an API
/// `Status`, else the error chain), with a hint for the usual operator mistakes.
fn describe(err: &watcher::Error, target: &Target) -> String {
    let (stage, client_error) = match err {
        watcher::Error::InitialListFailed(e) => ("list", Some(e)),
        watcher::Error::WatchStartFailed(e) => ("watch", Some(e)),
        watcher::Error::WatchFailed(e) => ("watch stream", Some(e)),
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => ("watch", None),
    };
    let status = match (err, client_error) {
        (watcher::Error::WatchError(s), _) => Some(s.as_ref()),
        (_, Some(kube::Error::Api(s))) => Some(s.as_ref()),
        _ => None,
    };
    let Some(status) = status else {
        return error_chain(err);
    };
    let hint = match status.code {
        401 => " (credentials rejected: check the service account token or kubeconfig)".to_owned(),
        403 => format!(
            " (RBAC: the gateway needs list and watch on endpointslices.discovery.k8s.io in namespace \"{}\")",
            target.namespace
        ),
        410 => " (resource version expired; re-listing)".to_owned(),
        _ => String::new(),
    };
    format!(
        "{stage} of EndpointSlices failed: HTTP {} {}: {}{hint}",
        status.code, status.reason, status.message
    )
}

/// `err` and its sources joined with ": ", skipping sources already quoted by their parent.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// Log node additions, removals, readiness and address changes at info.
fn log_changes(old: &NodeMap, new: &NodeMap) {
    let names: BTreeSet<&str> = old.names().chain(new.names()).collect();
    for name in names {
        match (old.get(name), new.get(name)) {
            (None, Some(ep)) => {
                info!(node = name, ip = %ep.ip, ready = ep.ready, pod = ?ep.pod, "node added")
            }
            (Some(ep), None) => info!(node = name, ip = %ep.ip, pod = ?ep.pod, "node removed"),
            (Some(a), Some(b)) if a.ready != b.ready => {
                info!(node = name, ip = %b.ip, ready = b.ready, pod = ?b.pod, "node readiness changed")
            }
            (Some(a), Some(b)) if a != b => {
                info!(node = name, old_ip = %a.ip, ip = %b.ip, pod = ?b.pod, "node endpoint changed")
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = WatchOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..WatchOptions::default()
        };
        assert!(backoff(&o, 1) >= Duration::from_millis(100));
        assert!(backoff(&o, 1) <= Duration::from_millis(125));
        assert!(backoff(&o, 3) >= Duration::from_millis(400));
        assert_eq!(backoff(&o, 40), Duration::from_secs(1));
    }
}
