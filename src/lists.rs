//! The lists backends serve beside tools (prompts, resources, resource templates),
//! learned on demand: one ready pod of each build is asked (these lists come with
//! the server build, like tools), and each pod's answer is reused for [`CACHE_FOR`],
//! at most [`MAX_CACHED`] answers at once, so a list request costs at most one
//! round of backend calls per build and usually none.

use bytes::Bytes;
use futures_util::StreamExt;
use mcp_protocol::client::RequestOptions;
use mcp_protocol::mcp::Era;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::gateway::Gateway;

/// How long one pod's list is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(30);

/// Answers (pod and method) cached at once.
pub const MAX_CACHED: usize = 1024;

/// Pods asked at once.
const CONCURRENCY: usize = 16;

/// Pages of one pod's list followed.
const MAX_PAGES: usize = 32;

/// (pod, method) -> when it was listed, and the items.
type Cache = HashMap<(IpAddr, &'static str), (Instant, Arc<Vec<Value>>)>;

/// Cached lists of pods.
#[derive(Default)]
pub struct PodLists {
    cache: Mutex<Cache>,
}

impl PodLists {
    /// Forgets every cached list (a pod said its list changed).
    pub fn forget(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The `key` items `method` lists on one ready pod of each build, per build, with
    /// the pod each came from.
    pub async fn of_builds(
        &self,
        gw: &Gateway,
        method: &'static str,
        key: &'static str,
    ) -> Vec<(IpAddr, Arc<Vec<Value>>)> {
        futures_util::stream::iter(representatives(gw))
            .map(|ip| async move { (ip, self.of_pod(gw, ip, method, key).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// The `key` items `method` lists on the pod at `ip` (cached; empty when it lists
    /// none or fails).
    pub async fn of_pod(
        &self,
        gw: &Gateway,
        ip: IpAddr,
        method: &'static str,
        key: &'static str,
    ) -> Arc<Vec<Value>> {
        if let Some((at, list)) = self.lock().get(&(ip, method))
            && at.elapsed() < CACHE_FOR
        {
            return list.clone();
        }
        let client = gw.upstreams().client(ip);
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = Map::new();
            if let Some(c) = &cursor {
                params.insert("cursor".into(), c.clone().into());
            }
            let opts = RequestOptions {
                timeout: Some(gw.call_timeout().min(Duration::from_secs(10))),
                ..Default::default()
            };
            let page: Value = match client.request(method, params, opts).await {
                Ok(Ok(raw)) => serde_json::from_str(raw.get()).unwrap_or_default(),
                Ok(Err(e)) => {
                    tracing::debug!(%ip, method, error = %e.message, "pod lists nothing");
                    break;
                }
                Err(e) => {
                    tracing::debug!(%ip, method, error = %e, "could not list");
                    break;
                }
            };
            if let Some(list) = page.get(key).and_then(Value::as_array) {
                items.extend(list.iter().filter(|p| p.is_object()).cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.into()),
                _ => break,
            }
        }
        let list = Arc::new(items);
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert((ip, method), (Instant::now(), list.clone()));
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `ttlMs` of the served lists (a little less than a pod's answer is cached).
pub const LIST_TTL_MS: u64 = 30_000;

/// A served list result: `key` holding `items`, the next cursor, and for 2026-07-28
/// clients `resultType`, `ttlMs` and `cacheScope`.
pub fn list_result(era: Era, key: &str, items: Vec<Value>, next: Option<String>) -> Bytes {
    let mut m = Map::new();
    if era == Era::Modern {
        m.insert("resultType".into(), "complete".into());
    }
    m.insert(key.into(), Value::Array(items));
    if let Some(n) = next {
        m.insert("nextCursor".into(), n.into());
    }
    if era == Era::Modern {
        m.insert("ttlMs".into(), LIST_TTL_MS.into());
        m.insert("cacheScope".into(), "public".into());
    }
    Bytes::from(serde_json::to_vec(&Value::Object(m)).unwrap_or_default())
}

/// One ready pod of each known build (pods whose build is not known yet are asked
/// too, each on its own).
fn representatives(gw: &Gateway) -> Vec<IpAddr> {
    let catalog = gw.catalog();
    let availability = catalog.availability();
    let nodes = gw.discovery().nodes();
    let mut builds = HashSet::new();
    nodes
        .ready()
        .filter(|e| match availability.pod_build(e.ip) {
            Some((digest, _, _)) => builds.insert(digest),
            None => true,
        })
        .map(|e| e.ip)
        .collect()
}
