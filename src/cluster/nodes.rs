//! The routing table: node name -> backend endpoint, and how EndpointSlices map onto it.
//!
//! Kept apart from the watch machinery so the rules (which endpoint is routable, which one wins
//! when a node has two) can be read and unit-tested on their own.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use tracing::debug;

/// Where the backend of one node can be reached: the routing answer for `node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// Kubernetes node name (`nodeName` of the endpoint); the value clients pass as `node`.
    pub node: String,
    /// Pod IP (IPv4 or IPv6) of the backend on that node; the only hosts the gateway dials.
    pub ip: IpAddr,
    /// Whether the endpoint may receive traffic (`conditions.ready` not false).
    pub ready: bool,
    /// Name of the backend pod (`targetRef`), for logs and error messages.
    pub pod: Option<String>,
    /// The endpoint's `zone` (topology.kubernetes.io/zone of its node, set by the
    /// EndpointSlice controller): lets a fan-out target one zone without reading Nodes.
    pub zone: Option<String>,
    /// The pod is shutting down (`conditions.terminating`): shown by the node-map tool
    /// so a model can tell a rollout from a broken node.
    pub terminating: bool,
}

impl NodeEndpoint {
    /// Preference when one node has several endpoints (rolling update): ready first, then
    /// a deterministic order (pod name, then IP) so every replica of the gateway agrees.
    fn rank(&self) -> (bool, Option<&str>, IpAddr) {
        (!self.ready, self.pod.as_deref(), self.ip)
    }
}

/// An immutable snapshot of node name -> backend endpoint, one entry per node.
///
/// Published as `Arc<NodeMap>` so the request path reads it without locks or copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMap {
    /// Keyed by node name; sorted so listings ("known nodes: ...") are stable.
    nodes: BTreeMap<String, NodeEndpoint>,
}

impl NodeMap {
    /// Build a map from endpoints; when a node appears more than once, a ready endpoint wins,
    /// then the lowest (pod name, IP), independent of input order.
    pub fn from_endpoints(endpoints: impl IntoIterator<Item = NodeEndpoint>) -> Self {
        let mut nodes: BTreeMap<String, NodeEndpoint> = BTreeMap::new();
        for ep in endpoints {
            match nodes.get_mut(&ep.node) {
                Some(current) if ep.rank() < current.rank() => *current = ep,
                Some(_) => {}
                None => {
                    nodes.insert(ep.node.clone(), ep);
                }
            }
        }
        Self { nodes }
    }

    /// Build a map from EndpointSlices (all slices of one Service), applying the routing rules
    /// described on [`slice_endpoints`].
    pub fn from_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Self {
        Self::from_endpoints(slices.into_iter().flat_map(slice_endpoints))
    }

    /// The endpoint of `node`, ready or not (so callers can tell "unknown" from "not ready").
    pub fn get(&self, node: &str) -> Option<&NodeEndpoint> {
        self.nodes.get(node)
    }

    /// Endpoints that may receive traffic, in node-name order.
    pub fn ready(&self) -> impl Iterator<Item = &NodeEndpoint> {
        self.nodes.values().filter(|ep| ep.ready)
    }

    /// All endpoints, ready or not, in node-name order.
    pub fn iter(&self) -> impl Iterator<Item = &NodeEndpoint> {
        self.nodes.values()
    }

    /// All known node names, in order (for "unknown node" messages).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Number of known nodes (ready or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is known at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl FromIterator<NodeEndpoint> for NodeMap {
    fn from_iter<T: IntoIterator<Item = NodeEndpoint>>(iter: T) -> Self {
        Self::from_endpoints(iter)
    }
}

/// The routable endpoints of one EndpointSlice.
///
/// Rules: FQDN slices are skipped; an endpoint needs a `nodeName` and an IP address (the first
/// address that parses; others are ignored as kube-proxy does); it is ready unless
/// `conditions.ready` is explicitly false; the pod name comes from a Pod `targetRef`.
/// Skipped endpoints are logged at debug.
pub fn slice_endpoints(slice: &EndpointSlice) -> Vec<NodeEndpoint> {
    let slice_name = slice.metadata.name.as_deref().unwrap_or("<unnamed>");
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        debug!(slice = slice_name, address_type = %slice.address_type, "skipping EndpointSlice: not an IP address type");
        return Vec::new();
    }
    let endpoints = slice.endpoints.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(endpoints.len());
    for ep in endpoints {
        let pod = ep
            .target_ref
            .as_ref()
            .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
            .and_then(|r| r.name.clone());
        let Some(node) = ep.node_name.clone().filter(|n| !n.is_empty()) else {
            debug!(slice = slice_name, pod = ?pod, "skipping endpoint without nodeName");
            continue;
        };
        let Some(ip) = ep.addresses.iter().find_map(|a| a.parse::<IpAddr>().ok()) else {
            debug!(slice = slice_name, %node, addresses = ?ep.addresses, "skipping endpoint without an IP address");
            continue;
        };
        let ready = ep.conditions.as_ref().and_then(|c| c.ready) != Some(false);
        out.push(NodeEndpoint {
            node,
            ip,
            ready,
            pod,
            zone: ep.zone.clone().filter(|z| !z.is_empty()),
            terminating: ep.conditions.as_ref().and_then(|c| c.terminating) == Some(true),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

    fn ep(node: &str, ip: &str, ready: bool, pod: &str) -> NodeEndpoint {
        NodeEndpoint {
            node: node.into(),
            ip: ip.parse().unwrap(),
            ready,
            pod: Some(pod.into()),
            zone: None,
            terminating: false,
        }
    }

    fn k8s_ep(node: Option<&str>, addrs: &[&str], ready: Option<bool>, pod: &str) -> Endpoint {
        Endpoint {
            addresses: addrs.iter().map(|a| a.to_string()).collect(),
            node_name: node.map(Into::into),
            conditions: ready.map(|r| EndpointConditions {
                ready: Some(r),
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(address_type: &str, endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: address_type.into(),
            endpoints: Some(endpoints),
            ..Default::default()
        }
    }

    #[test]
    fn duplicate_node_prefers_ready_then_deterministic_order() {
        let a = ep("n1", "10.0.0.2", false, "pod-a");
        let b = ep("n1", "10.0.0.3", true, "pod-b");
        let c = ep("n1", "10.0.0.1", true, "pod-c");
        let m1 = NodeMap::from_endpoints([a.clone(), b.clone(), c.clone()]);
        let m2 = NodeMap::from_endpoints([c, b.clone(), a]);
        assert_eq!(m1, m2);
        assert_eq!(m1.get("n1"), Some(&b));
        assert_eq!(m1.len(), 1);
    }

    #[test]
    fn slice_rules() {
        let s = slice(
            "IPv4",
            vec![
                k8s_ep(Some("ready-absent"), &["10.0.0.1"], None, "p1"),
                k8s_ep(Some("unready"), &["10.0.0.2"], Some(false), "p2"),
                k8s_ep(None, &["10.0.0.3"], Some(true), "p3"),
                k8s_ep(Some("no-address"), &[], Some(true), "p4"),
                k8s_ep(Some("bad-then-good"), &["x", "10.0.0.5"], Some(true), "p5"),
            ],
        );
        let map = NodeMap::from_slices([&s]);
        assert_eq!(
            map.names().collect::<Vec<_>>(),
            ["bad-then-good", "ready-absent", "unready"]
        );
        assert!(map.get("ready-absent").unwrap().ready);
        assert!(!map.get("unready").unwrap().ready);
        assert_eq!(map.ready().count(), 2);
        assert_eq!(map.get("ready-absent").unwrap().pod.as_deref(), Some("p1"));
    }

    #[test]
    fn ipv6_and_fqdn() {
        let v6 = slice(
            "IPv6",
            vec![k8s_ep(Some("n6"), &["fd00::1"], Some(true), "p")],
        );
        let fqdn = slice(
            "FQDN",
            vec![k8s_ep(Some("nf"), &["example.com"], Some(true), "p")],
        );
        let map = NodeMap::from_slices([&v6, &fqdn]);
        assert_eq!(map.len(), 1);
        assert_eq!(
            map.get("n6").unwrap().ip,
            "fd00::1".parse::<IpAddr>().unwrap()
        );
    }
}
