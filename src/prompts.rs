//! Prompts per node: every backend prompt is served with one extra required first
//! argument, `node`, as tools are, and `prompts/get` is routed to the pod on that
//! node (the `node` argument taken out), so the same prompt can be filled in on any
//! node.
//!
//! `prompts/list` asks one ready pod of each build (prompts come with the server
//! build, like tools), caches each pod's answer for [`CACHE_FOR`] (at most
//! [`MAX_CACHED`] pods), and serves the union on one page; the first definition of a
//! name wins. A cursor is refused: there is one page.

use bytes::Bytes;
use futures_util::StreamExt;
use mcp_protocol::client::RequestOptions;
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{Era, method};
use mcp_protocol::server::ClientRequest;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::gateway::Gateway;

/// The argument every served prompt gains, first.
pub const NODE_ARGUMENT: &str = "node";

/// How long one pod's prompt list is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(30);

/// Pods whose prompt lists are cached at once.
pub const MAX_CACHED: usize = 1024;

/// Pods asked at once for their prompts.
const LIST_CONCURRENCY: usize = 16;

/// Pages of one pod's prompts/list followed.
const MAX_PAGES: usize = 32;

/// `ttlMs` of the served prompts/list.
const LIST_TTL_MS: u64 = 30_000;

/// Pod IP -> when its prompts were listed, and the list.
type Cache = HashMap<IpAddr, (Instant, Arc<Vec<Value>>)>;

/// The prompt lists of the pods asked lately.
#[derive(Default)]
pub struct Prompts {
    cache: Mutex<Cache>,
}

impl Prompts {
    /// The served `ListPromptsResult` for a client of `era`.
    pub async fn list(
        &self,
        gw: &Gateway,
        era: Era,
        cursor: Option<&str>,
    ) -> Result<Bytes, ErrorObject> {
        if let Some(c) = cursor {
            return Err(ErrorObject::invalid_params(format!(
                "unknown cursor {:?}: the gateway lists all prompts on one page",
                crate::gateway::clip_chars(c, 64)
            )));
        }
        let per_pod: Vec<Arc<Vec<Value>>> = futures_util::stream::iter(representatives(gw))
            .map(|ip| self.of_pod(gw, ip))
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut seen = HashSet::new();
        let mut prompts = Vec::new();
        for list in per_pod {
            for p in list.iter() {
                if let Some(name) = p.get("name").and_then(Value::as_str)
                    && seen.insert(name.to_string())
                {
                    prompts.push(with_node_argument(p));
                }
            }
        }
        prompts.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let mut m = Map::new();
        if era == Era::Modern {
            m.insert("resultType".into(), "complete".into());
        }
        m.insert("prompts".into(), Value::Array(prompts));
        if era == Era::Modern {
            m.insert("ttlMs".into(), LIST_TTL_MS.into());
            m.insert("cacheScope".into(), "public".into());
        }
        Ok(Bytes::from(
            serde_json::to_vec(&Value::Object(m)).unwrap_or_default(),
        ))
    }

    /// The prompts of the pod at `ip` (cached; empty when it has none or fails).
    async fn of_pod(&self, gw: &Gateway, ip: IpAddr) -> Arc<Vec<Value>> {
        if let Some((at, list)) = self.lock().get(&ip)
            && at.elapsed() < CACHE_FOR
        {
            return list.clone();
        }
        let client = gw.upstreams().client(ip);
        let mut prompts = Vec::new();
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
            let page: Value = match client.request(method::PROMPTS_LIST, params, opts).await {
                Ok(Ok(raw)) => serde_json::from_str(raw.get()).unwrap_or_default(),
                Ok(Err(e)) => {
                    tracing::debug!(%ip, error = %e.message, "pod lists no prompts");
                    break;
                }
                Err(e) => {
                    tracing::debug!(%ip, error = %e, "could not list the pod's prompts");
                    break;
                }
            };
            if let Some(items) = page.get("prompts").and_then(Value::as_array) {
                prompts.extend(items.iter().filter(|p| p.is_object()).cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.into()),
                _ => break,
            }
        }
        let list = Arc::new(prompts);
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(ip, (Instant::now(), list.clone()));
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
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

/// A backend prompt as served: `node` first among its arguments, required.
fn with_node_argument(prompt: &Value) -> Value {
    let mut p = prompt.clone();
    let mut args = vec![json!({
        "name": NODE_ARGUMENT,
        "description": "The Kubernetes node whose MCP server fills in this prompt.",
        "required": true
    })];
    if let Some(Value::Array(theirs)) = p.get("arguments") {
        args.extend(
            theirs
                .iter()
                .filter(|a| a["name"] != NODE_ARGUMENT)
                .cloned(),
        );
    }
    if let Value::Object(m) = &mut p {
        m.insert("arguments".into(), Value::Array(args));
    }
    p
}

/// The pod IP of a ready `node`, or an error naming the nodes that can be used.
pub fn node_ip(gw: &Gateway, node: Option<&str>) -> Result<IpAddr, ErrorObject> {
    let nodes = gw.discovery().nodes();
    let Some(node) = node.filter(|n| !n.is_empty()) else {
        return Err(ErrorObject::invalid_params(format!(
            "Missing argument \"node\": name the Kubernetes node to ask. {}",
            crate::gateway::known_nodes_hint(&nodes, "")
        )));
    };
    if node.len() > crate::gateway::MAX_NODE_NAME_BYTES {
        return Err(ErrorObject::invalid_params(
            "Argument \"node\" is longer than any Kubernetes node name.",
        ));
    }
    match nodes.get(node) {
        Some(e) if e.ready => Ok(e.ip),
        Some(_) => Err(ErrorObject::invalid_params(format!(
            "Node \"{node}\" is known but its MCP server pod is not ready; try again shortly or pick another node."
        ))),
        None => Err(ErrorObject::invalid_params(format!(
            "Unknown node \"{node}\". {}",
            crate::gateway::known_nodes_hint(&nodes, node)
        ))),
    }
}

/// Forwards a client request (`params` ready to send) to the pod at `ip`, relaying
/// its notifications to the client, and reshapes the answer for the client's era.
pub async fn forward(
    gw: &Gateway,
    ip: IpAddr,
    method_name: &str,
    mut params: Map<String, Value>,
    request: &ClientRequest,
) -> Result<Bytes, ErrorObject> {
    crate::upstream::prepare(&mut params, &request.outbound);
    let client = gw.upstreams().client(ip);
    let outbound = request.outbound.clone();
    let mut relay = move |note: Bytes| outbound.relay(note);
    let opts = RequestOptions {
        on_notification: Some(&mut relay),
        timeout: Some(gw.call_timeout()),
        ..Default::default()
    };
    let reply = tokio::select! {
        r = client.request(method_name, params, opts) => r,
        _ = request.cancel.cancelled() => {
            return Err(ErrorObject::new(jsonrpc::REQUEST_CANCELLED, "request cancelled"));
        }
    };
    let era = request.outbound.version().era();
    match reply {
        Ok(Ok(raw)) => {
            let backend_era = client.connection().map(|c| c.version.era());
            Ok(if backend_era == Some(era) {
                Bytes::copy_from_slice(raw.get().as_bytes())
            } else {
                crate::gateway::convert_result(raw.get(), era)
            })
        }
        Ok(Err(e)) => Err(e),
        Err(e) => {
            tracing::warn!(%ip, method = method_name, error = %e, "backend request failed");
            Err(ErrorObject::internal(format!(
                "The MCP server at pod IP {ip} did not answer {method_name}: {e}"
            )))
        }
    }
}

/// `prompts/get`: the `node` argument picks the pod; the rest goes to it unchanged.
pub async fn get(gw: &Gateway, request: ClientRequest) -> Result<Bytes, ErrorObject> {
    let mut params = request.params.clone();
    let node = match params.get_mut("arguments") {
        Some(Value::Object(args)) => args.shift_remove(NODE_ARGUMENT),
        _ => None,
    };
    let ip = node_ip(gw, node.as_ref().and_then(Value::as_str))?;
    forward(gw, ip, method::PROMPTS_GET, params, &request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_comes_first_and_required() {
        let p = json!({"name": "diagnose", "arguments": [{"name": "service", "required": true}]});
        let served = with_node_argument(&p);
        assert_eq!(served["arguments"][0]["name"], "node");
        assert_eq!(served["arguments"][0]["required"], true);
        assert_eq!(served["arguments"][1]["name"], "service");
        let bare = with_node_argument(&json!({"name": "hello"}));
        assert_eq!(bare["arguments"].as_array().unwrap().len(), 1);
    }
}
