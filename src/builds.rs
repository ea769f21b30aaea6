//! The catalog follows every backend build, not one pod.
//!
//! During a DaemonSet rollout (half the nodes on v1, half on v2), or on clusters whose
//! node pools run different node servers, one pod's tools/list is the wrong catalog.
//! This module asks each pod for its tools once (bounded concurrency, a deadline per
//! pod, so one hanging pod never holds the others), groups pods by a digest of what
//! they serve (a *build*), and computes the union the gateway serves:
//!
//! - a tool in several builds with different definitions is served once, with the
//!   definition of the build on the most ready nodes (ties: the build seen last), and
//!   the conflict is logged and shown on `/readyz`;
//! - [`Availability`] says which pods serve the served definition of each tool, so a
//!   call to a node whose build lacks it is a tool error naming nodes that have it;
//! - a tool not on every node says so in its description and `_meta`.
//!
//! Pods are learned when they appear (a pod IP not seen before), when one says its
//! tools changed, and never per call; the asking is [`crate::learn`]'s.

use serde_json::{Map, Value, json};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::cluster::NodeMap;

/// The `_meta` key of a tool not offered by every node: `{"nodes": n, "of": N}`.
pub const AVAILABILITY_META: &str = "k8s-aggregator-mcp/availability";

/// How long a pod that could not be learned waits before it is asked again.
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);

/// Most nodes an availability error names.
pub const NAMED_NODES: usize = 5;

/// One distinct tool set, and who served it first.
#[derive(Debug, Clone)]
pub struct Build {
    /// Digest of the tools/list answer (all pages, in order).
    pub digest: u64,
    /// The tool definitions as the backend listed them.
    pub tools: Vec<Value>,
    /// `serverInfo` name and version of the first pod seen with this build.
    pub server: String,
    /// Order of first sight: a larger value is a newer build (ties of node counts).
    pub seq: u64,
}

/// What is known about every pod: which build it serves, or why it could not be learned.
#[derive(Debug, Default)]
pub struct Builds {
    /// The builds by digest.
    builds: HashMap<u64, Build>,
    /// Pod IP -> build digest.
    pods: HashMap<IpAddr, u64>,
    /// Pods that did not answer in time or broke, with the error and when.
    failed: HashMap<IpAddr, (String, Instant)>,
    /// The next build's `seq`.
    next_seq: u64,
}

/// A tool that exists in several builds with different definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The tool name.
    pub tool: String,
    /// The builds (server name and version, digest) whose definition is served.
    pub served: String,
    /// How many ready nodes serve that definition.
    pub served_nodes: usize,
    /// How many ready nodes serve another definition.
    pub other_nodes: usize,
}

/// Which pods serve the served definition of each tool.
#[derive(Debug, Default, Clone)]
pub struct Availability {
    /// Pod IP -> build digest, for pods whose build is known.
    pod_build: HashMap<IpAddr, u64>,
    /// Tool -> builds serving the served definition.
    tool_builds: HashMap<String, HashSet<u64>>,
    /// Build digest -> (digest as hex, server name and version, number of tools): the
    /// hex is a metric label of every call, so it is formatted once here.
    build_info: HashMap<u64, (String, String, usize)>,
}

impl Availability {
    /// `Err(message)` when the pod at `ip` (on `node`) is known not to serve `tool` as
    /// the catalog does; the message names up to [`NAMED_NODES`] ready nodes that do.
    /// Pods whose build is not known yet, and tools the gateway itself serves, pass.
    pub fn check(&self, tool: &str, node: &str, ip: IpAddr, nodes: &NodeMap) -> Result<(), String> {
        let (Some(build), Some(builds)) = (self.pod_build.get(&ip), self.tool_builds.get(tool))
        else {
            return Ok(());
        };
        if builds.contains(build) {
            return Ok(());
        }
        let having: Vec<&str> = nodes
            .ready()
            .filter(|e| {
                self.pod_build
                    .get(&e.ip)
                    .is_some_and(|b| builds.contains(b))
            })
            .map(|e| e.node.as_str())
            .collect();
        let shown: Vec<&str> = having.iter().take(NAMED_NODES).copied().collect();
        let more = having.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        Err(if shown.is_empty() {
            format!(
                "The MCP server on node \"{node}\" does not offer tool \"{tool}\" (as the gateway serves it), and no ready node does right now."
            )
        } else {
            format!(
                "The MCP server on node \"{node}\" does not offer tool \"{tool}\" (as the gateway serves it; its build differs). Nodes that do: {}{tail}.",
                shown.join(", ")
            )
        })
    }

    /// The build of the pod at `ip`: digest (hex), server name and version, tool count.
    pub fn pod_build(&self, ip: IpAddr) -> Option<(&str, &str, usize)> {
        let d = self.pod_build.get(&ip)?;
        let (hex, server, tools) = self.build_info.get(d)?;
        Some((hex.as_str(), server.as_str(), *tools))
    }

    /// How many ready nodes serve `tool` as served.
    pub fn nodes_with(&self, tool: &str, nodes: &NodeMap) -> usize {
        let Some(builds) = self.tool_builds.get(tool) else {
            return 0;
        };
        nodes
            .ready()
            .filter(|e| {
                self.pod_build
                    .get(&e.ip)
                    .is_some_and(|b| builds.contains(b))
            })
            .count()
    }
}

/// The served union and what went into it.
#[derive(Debug, Default)]
pub struct Union {
    /// The definitions to serve, before the gateway's own rewrite (`node` added).
    pub tools: Vec<Value>,
    /// Who serves what.
    pub availability: Availability,
    /// Tools whose definitions differ between builds.
    pub conflicts: Vec<Conflict>,
}

/// A digest of a tools/list answer.
pub fn digest(tools: &[Value]) -> u64 {
    let mut h = DefaultHasher::new();
    for t in tools {
        t.to_string().hash(&mut h);
    }
    h.finish()
}

impl Builds {
    /// Records that the pod at `ip` serves `tools` (only a digest is kept per pod; the
    /// definitions once per build); returns the build digest and the pod's previous
    /// one, if it had another.
    pub fn add_pod(&mut self, ip: IpAddr, tools: Vec<Value>, server: String) -> (u64, Option<u64>) {
        let d = self.add(tools, server);
        let before = self.pods.insert(ip, d).filter(|b| *b != d);
        self.failed.remove(&ip);
        (d, before)
    }

    /// Records that the pod at `ip` could not be learned; it is asked again after
    /// [`RETRY_FAILED_AFTER`].
    pub fn add_failure(&mut self, ip: IpAddr, error: String) {
        self.failed.insert(ip, (error, Instant::now()));
    }

    /// Whether the pod at `ip` should be asked for its tools: its build is not known
    /// and it did not fail recently.
    pub fn wants(&self, ip: &IpAddr) -> bool {
        !self.pods.contains_key(ip)
            && self
                .failed
                .get(ip)
                .is_none_or(|(_, at)| at.elapsed() >= RETRY_FAILED_AFTER)
    }

    /// The pods known to serve build `digest`.
    pub fn pods_of(&self, digest: u64) -> Vec<IpAddr> {
        self.pods
            .iter()
            .filter(|(_, d)| **d == digest)
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// The build digest of the pod at `ip`, if known.
    pub fn digest_of(&self, ip: &IpAddr) -> Option<u64> {
        self.pods.get(ip).copied()
    }

    fn add(&mut self, tools: Vec<Value>, server: String) -> u64 {
        let d = digest(&tools);
        if !self.builds.contains_key(&d) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.builds.insert(
                d,
                Build {
                    digest: d,
                    tools,
                    server,
                    seq,
                },
            );
        }
        d
    }

    /// Forgets pods that are no longer ready endpoints (their IP may come back with
    /// another build) and builds no pod serves any more.
    pub fn retain_ready(&mut self, nodes: &NodeMap) {
        let live: HashSet<IpAddr> = nodes.ready().map(|e| e.ip).collect();
        self.pods.retain(|ip, _| live.contains(ip));
        self.failed.retain(|ip, _| live.contains(ip));
        let used: HashSet<u64> = self.pods.values().copied().collect();
        self.builds.retain(|d, _| used.contains(d));
    }

    /// Each learned pod's tool definitions, one shared copy per build.
    pub fn tools_by_pod(&self) -> HashMap<IpAddr, std::sync::Arc<Vec<Value>>> {
        let shared: HashMap<u64, std::sync::Arc<Vec<Value>>> = self
            .builds
            .iter()
            .map(|(d, b)| (*d, std::sync::Arc::new(b.tools.clone())))
            .collect();
        self.pods
            .iter()
            .filter_map(|(ip, d)| shared.get(d).map(|t| (*ip, t.clone())))
            .collect()
    }

    /// Forgets the builds no pod serves any more.
    pub fn prune(&mut self) {
        let used: HashSet<u64> = self.pods.values().copied().collect();
        self.builds.retain(|d, _| used.contains(d));
    }

    /// Makes the pod at `ip` wanted again (its tools changed).
    pub fn forget_pod(&mut self, ip: IpAddr) {
        self.pods.remove(&ip);
        self.failed.remove(&ip);
    }

    /// Forgets every failure, so the failed pods are asked again at once (start-up,
    /// while nothing at all is known).
    pub fn clear_failures(&mut self) {
        self.failed.clear();
    }

    /// Whether some ready pod could not be learned (a retry is due later).
    pub fn has_failed(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Whether any build is known.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The errors of pods that could not be learned, joined (for start-up failures).
    pub fn failures(&self) -> String {
        let mut v: Vec<String> = self
            .failed
            .iter()
            .map(|(ip, (e, _))| format!("{ip}: {e}"))
            .collect();
        v.sort();
        v.join("; ")
    }

    /// The builds for `/readyz`: digest, server, tools and ready nodes of each, and the
    /// pods not learned.
    pub fn report(&self, nodes: &NodeMap) -> Value {
        let counts = self.counts(nodes);
        let mut builds: Vec<&Build> = self.builds.values().collect();
        builds.sort_by_key(|b| {
            (
                std::cmp::Reverse(counts.get(&b.digest).copied().unwrap_or(0)),
                std::cmp::Reverse(b.seq),
            )
        });
        let failed: Vec<Value> = nodes
            .ready()
            .filter_map(|e| {
                self.failed
                    .get(&e.ip)
                    .map(|(err, _)| json!({"node": e.node, "ip": e.ip.to_string(), "error": err}))
            })
            .collect();
        json!({
            "builds": builds.iter().map(|b| json!({
                "digest": format!("{:016x}", b.digest),
                "server": b.server,
                "tools": b.tools.len(),
                "readyNodes": counts.get(&b.digest).copied().unwrap_or(0),
            })).collect::<Vec<_>>(),
            "notLearned": failed,
        })
    }

    /// The build of the pod at `ip`, if known.
    pub fn build_of(&self, ip: IpAddr) -> Option<&Build> {
        self.pods.get(&ip).and_then(|d| self.builds.get(d))
    }

    /// Ready nodes per build.
    fn counts(&self, nodes: &NodeMap) -> HashMap<u64, usize> {
        let mut counts = HashMap::new();
        for e in nodes.ready() {
            if let Some(d) = self.pods.get(&e.ip) {
                *counts.entry(*d).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The union served over the ready nodes of `nodes`.
    ///
    /// Order: the tools of the build on the most ready nodes (ties: newest) in its
    /// order, then tools only other builds have, build by build in the same ranking.
    /// Deterministic for a given set of builds and node counts.
    pub fn union(&self, nodes: &NodeMap) -> Union {
        let counts = self.counts(nodes);
        let total: usize = counts.values().sum();
        let mut ranked: Vec<&Build> = self
            .builds
            .values()
            .filter(|b| counts.contains_key(&b.digest))
            .collect();
        ranked.sort_by_key(|b| {
            (
                std::cmp::Reverse(counts[&b.digest]),
                std::cmp::Reverse(b.seq),
            )
        });
        // Tool name -> distinct definitions, each with the builds that carry it.
        let mut order: Vec<&str> = Vec::new();
        let mut defs: HashMap<&str, Vec<(&Value, Vec<&Build>)>> = HashMap::new();
        for b in &ranked {
            let mut seen = HashSet::new();
            for t in &b.tools {
                let Some(name) = t.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if !seen.insert(name) {
                    continue;
                }
                let entry = defs.entry(name).or_insert_with(|| {
                    order.push(name);
                    Vec::new()
                });
                match entry.iter_mut().find(|(d, _)| *d == t) {
                    Some((_, bs)) => bs.push(b),
                    None => entry.push((t, vec![b])),
                }
            }
        }
        let mut union = Union {
            availability: Availability {
                pod_build: self.pods.clone(),
                tool_builds: HashMap::new(),
                build_info: self
                    .builds
                    .values()
                    .map(|b| {
                        let hex = format!("{:016x}", b.digest);
                        (b.digest, (hex, b.server.clone(), b.tools.len()))
                    })
                    .collect(),
            },
            ..Union::default()
        };
        for name in order {
            let variants = &defs[name];
            let score = |bs: &Vec<&Build>| {
                let n: usize = bs.iter().map(|b| counts[&b.digest]).sum();
                let newest = bs.iter().map(|b| b.seq).max().unwrap_or(0);
                (n, newest)
            };
            let Some((def, builds)) = variants.iter().max_by_key(|(_, bs)| score(bs)) else {
                continue;
            };
            let (served_nodes, _) = score(builds);
            if variants.len() > 1 {
                let servers: Vec<String> = builds
                    .iter()
                    .map(|b| format!("{} ({:016x})", b.server, b.digest))
                    .collect();
                let conflict = Conflict {
                    tool: name.to_string(),
                    served: servers.join(", "),
                    served_nodes,
                    other_nodes: variants
                        .iter()
                        .filter(|(d, _)| d != def)
                        .map(|(_, bs)| score(bs).0)
                        .sum(),
                };
                tracing::warn!(tool = %conflict.tool, served = %conflict.served, served_nodes, other_nodes = conflict.other_nodes, "builds define this tool differently; serving the definition of the build on the most ready nodes (ties: newest)");
                union.conflicts.push(conflict);
            }
            union
                .availability
                .tool_builds
                .insert(name.to_string(), builds.iter().map(|b| b.digest).collect());
            union.tools.push(if served_nodes < total {
                annotate(def, served_nodes, total)
            } else {
                (*def).clone()
            });
        }
        union
    }
}

/// `def` with its availability in `_meta` and at the end of its description.
fn annotate(def: &Value, offered: usize, total: usize) -> Value {
    let mut out = def.clone();
    if let Value::Object(m) = &mut out {
        let note = format!("Available on {offered} of {total} nodes.");
        let description = match m.get("description").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{d} ({note})"),
            _ => note,
        };
        m.insert("description".into(), description.into());
        let meta = m
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert(
                AVAILABILITY_META.into(),
                json!({"nodes": offered, "of": total}),
            );
        }
    }
    out
}

#[cfg(test)]
impl Builds {
    /// Test hook: the pod at `ip` serves `tools`.
    pub fn insert_pod(&mut self, ip: IpAddr, tools: Vec<Value>, server: &str) -> u64 {
        self.add_pod(ip, tools, server.into()).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeEndpoint;

    fn tool(name: &str, extra: &str) -> Value {
        json!({"name": name, "description": format!("{name}{extra}"), "inputSchema": {"type": "object"}})
    }

    fn nodes(n: usize) -> NodeMap {
        NodeMap::from_endpoints((1..=n).map(|i| NodeEndpoint {
            node: format!("n{i}"),
            ip: format!("10.0.0.{i}").parse().unwrap(),
            ready: true,
            pod: None,
            zone: None,
            terminating: false,
        }))
    }

    fn ip(i: u8) -> IpAddr {
        format!("10.0.0.{i}").parse().unwrap()
    }

    #[test]
    fn the_union_prefers_the_build_on_most_nodes_and_reports_availability() {
        let mut b = Builds::default();
        let v1 = vec![tool("a", ""), tool("b", ""), tool("old", "")];
        let v2 = vec![tool("a", ""), tool("b", " v2"), tool("new", "")];
        for i in 1..=3 {
            b.insert_pod(ip(i), v1.clone(), "srv 1");
        }
        for i in 4..=5 {
            b.insert_pod(ip(i), v2.clone(), "srv 2");
        }
        let map = nodes(5);
        let u = b.union(&map);
        let names: Vec<&str> = u
            .tools
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "old", "new"]);
        assert_eq!(u.tools[0], tool("a", ""), "on every node: untouched");
        assert_eq!(u.tools[1]["description"], "b (Available on 3 of 5 nodes.)");
        assert_eq!(
            u.tools[1]["_meta"][AVAILABILITY_META],
            json!({"nodes": 3, "of": 5})
        );
        assert_eq!(u.conflicts.len(), 1);
        assert_eq!(u.conflicts[0].tool, "b");
        assert_eq!(
            (u.conflicts[0].served_nodes, u.conflicts[0].other_nodes),
            (3, 2)
        );
        let a = &u.availability;
        assert!(a.check("a", "n5", ip(5), &map).is_ok());
        let e = a.check("b", "n5", ip(5), &map).unwrap_err();
        assert!(e.contains("n1, n2, n3"), "{e}");
        let e = a.check("old", "n4", ip(4), &map).unwrap_err();
        assert!(e.contains("n1, n2, n3."), "{e}");
        assert!(a.check("new", "n4", ip(4), &map).is_ok());
        assert!(a.check("new", "n1", ip(1), &map).is_err());
        assert!(a.check("a", "n9", ip(9), &map).is_ok(), "unknown pods pass");
        assert_eq!(a.nodes_with("new", &map), 2);
    }

    #[test]
    fn ties_go_to_the_newest_build_and_the_order_is_deterministic() {
        let mut b = Builds::default();
        b.insert_pod(ip(1), vec![tool("x", " v1")], "srv 1");
        b.insert_pod(ip(2), vec![tool("x", " v2")], "srv 2");
        let u = b.union(&nodes(2));
        assert!(
            u.tools[0]["description"]
                .as_str()
                .unwrap()
                .starts_with("x v2")
        );
        assert_eq!(b.union(&nodes(2)).tools, u.tools);
    }

    #[test]
    fn builds_nobody_serves_are_dropped_and_names_are_capped() {
        let mut b = Builds::default();
        for i in 1..=8 {
            b.insert_pod(ip(i), vec![tool("t", "")], "s");
        }
        b.insert_pod(ip(9), vec![tool("u", "")], "s");
        let map = nodes(9);
        let e = b
            .union(&map)
            .availability
            .check("t", "n9", ip(9), &map)
            .unwrap_err();
        assert!(e.contains("n1, n2, n3, n4, n5 and 3 more."), "{e}");
        b.retain_ready(&nodes(8));
        assert_eq!(b.builds.len(), 1);
        assert!(b.union(&nodes(8)).tools[0].get("_meta").is_none());
    }
}
