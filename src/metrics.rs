//! `/metrics`: the gateway's Prometheus metrics, built on `prometheus-client` (typed
//! label sets, histograms, OpenMetrics text).
//!
//! - `mcp_gateway_tool_calls_total{tool,outcome}` and
//!   `mcp_gateway_tool_call_duration_seconds{tool,outcome}` (histogram): every
//!   tools/call. The outcome names double as the labels; `tool` is the catalog's name,
//!   `(unknown)` for a name the catalog does not have (callers choose it), and `(other)`
//!   past [`MAX_TOOL_LABELS`] distinct tools, so label cardinality stays bounded.
//! - `mcp_gateway_auth_refusals_total{reason}`: requests refused by authentication.
//! - `mcp_gateway_request_duration_seconds{method,status}` (histogram): every request to
//!   `/mcp`, by JSON-RPC method (`(get)`, `(delete)`, `(batch)`, `(response)` for the
//!   other shapes; a method the gateway does not know is `(other)`, since clients choose
//!   it) and status class (`2xx`, `4xx`, `5xx`), until the answer's head is sent (a
//!   streamed answer's length is in the call histogram).
//! - `mcp_gateway_calls_in_flight`: tool calls being handled.
//! - `mcp_gateway_backend_call_duration_seconds{build,outcome}` (histogram): the call to
//!   the node server, by the pod's build (the digest `/readyz` shows; at most
//!   [`MAX_BUILD_LABELS`], then `(other)`).
//! - `mcp_gateway_discovery_watch_restarts_total`: times the EndpointSlice watch went
//!   down and was re-established; `mcp_gateway_discovery_stale_seconds`: how long the
//!   served node map has been unconfirmed (0 while the watch is up).
//! - `mcp_gateway_catalog_rebuilds_total{changed}`: catalog rebuilds after node-set
//!   changes, by whether the served list changed; `mcp_gateway_catalog_builds`: the
//!   distinct backend builds.
//! - Gauges read from the live parts at scrape time: nodes by state, tools served,
//!   legacy sessions cached on this replica, discovery health.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Distinct `tool` label values kept; later tools are counted as `(other)`.
pub const MAX_TOOL_LABELS: usize = 256;

/// Distinct `build` label values kept; later builds are counted as `(other)`.
pub const MAX_BUILD_LABELS: usize = 32;

/// The JSON-RPC methods that get their own `method` label.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "subscriptions/listen",
    "logging/setLevel",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/roots/list_changed",
    "(get)",
    "(delete)",
    "(batch)",
    "(response)",
    "(none)",
];

/// How a tools/call ended, as seen by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The backend answered (its result may still be a tool error).
    Ok,
    /// The tool is not in the catalog.
    UnknownTool,
    /// `node` missing or malformed.
    BadArguments,
    /// No such node.
    UnknownNode,
    /// The node's pod is not ready.
    NodeNotReady,
    /// The pod could not be reached.
    Unreachable,
    /// The pod did not answer in time.
    Timeout,
    /// The pod answered with something unusable.
    BackendBroken,
    /// The pod answered with a JSON-RPC error (relayed).
    BackendError,
    /// The client cancelled.
    Cancelled,
    /// The policy does not let this caller call this tool (on this node).
    Denied,
    /// The node's build does not serve the tool as the catalog does.
    NotOnNode,
}

impl CallOutcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::UnknownTool => "unknown_tool",
            CallOutcome::BadArguments => "bad_arguments",
            CallOutcome::UnknownNode => "unknown_node",
            CallOutcome::NodeNotReady => "node_not_ready",
            CallOutcome::Unreachable => "unreachable",
            CallOutcome::Timeout => "timeout",
            CallOutcome::BackendBroken => "backend_broken",
            CallOutcome::BackendError => "backend_error",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::Denied => "denied",
            CallOutcome::NotOnNode => "not_on_node",
        }
    }
}

impl EncodeLabelValue for CallOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.label(), encoder)
    }
}

/// A label value shared by every series that carries it: taking it for a call is a
/// reference-count increment, not a string allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Label(Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

/// A bounded set of label values: a value is its own label while fewer than `max`
/// distinct values have been seen, else `(other)`. Known values are found under a
/// read lock, without allocating.
#[derive(Debug)]
struct Capped {
    seen: RwLock<HashSet<Arc<str>>>,
    max: usize,
    other: Label,
}

impl Capped {
    fn new(max: usize) -> Self {
        Capped {
            seen: RwLock::new(HashSet::new()),
            max,
            other: Label("(other)".into()),
        }
    }

    /// The label of `value`.
    fn label(&self, value: &str) -> Label {
        if let Ok(seen) = self.seen.read()
            && let Some(known) = seen.get(value)
        {
            return Label(known.clone());
        }
        let Ok(mut seen) = self.seen.write() else {
            return self.other.clone();
        };
        if let Some(known) = seen.get(value) {
            return Label(known.clone());
        }
        if seen.len() >= self.max {
            return self.other.clone();
        }
        let label: Arc<str> = value.into();
        seen.insert(label.clone());
        Label(label)
    }
}

/// Labels of a call metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    tool: Label,
    outcome: CallOutcome,
}

/// Label of an authentication refusal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Labels of a request to `/mcp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: &'static str,
}

/// Labels of a call by node (small clusters only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NodeLabels {
    node: Label,
    outcome: CallOutcome,
}

/// Labels of a call to a node server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    build: Label,
    outcome: CallOutcome,
}

/// Label of a catalog rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ChangedLabel {
    changed: &'static str,
}

/// Label of a node count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

fn call_histogram() -> Histogram {
    // 0.5 ms .. ~131 s: a gateway hop up to the longest call timeout.
    Histogram::new(exponential_buckets(0.0005, 2.0, 19))
}

/// Values read at scrape time from the live parts.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Nodes known.
    pub nodes: usize,
    /// Nodes with a ready pod.
    pub ready_nodes: usize,
    /// Tools served.
    pub tools: usize,
    /// Legacy sessions.
    pub sessions: usize,
    /// Whether the discovery watch is up.
    pub discovery_healthy: bool,
    /// How long the node map has been unconfirmed (zero while the watch is up).
    pub discovery_stale: Duration,
    /// Distinct backend builds.
    pub builds: usize,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_duration: Family<CallLabels, Histogram, fn() -> Histogram>,
    auth_refusals: Family<ReasonLabel, Counter>,
    nodes: Family<StateLabel, Gauge>,
    tools: Gauge,
    sessions: Gauge,
    discovery_healthy: Gauge,
    /// Tool names seen as labels (bounded by [`MAX_TOOL_LABELS`]).
    tool_labels: Capped,
    /// `(unknown)`: the `tool` of a name the catalog does not have, the `build` of a
    /// pod not learned yet.
    unknown: Label,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    backend: Family<BackendLabels, Histogram, fn() -> Histogram>,
    /// Build digests seen as labels (bounded by [`MAX_BUILD_LABELS`]).
    build_labels: Capped,
    watch_restarts: Counter,
    discovery_stale: Gauge<f64, std::sync::atomic::AtomicU64>,
    rebuilds: Family<ChangedLabel, Counter>,
    builds: Gauge,
    node_calls: Family<NodeLabels, Histogram, fn() -> Histogram>,
    /// Node names seen as labels (bounded by `node_label_max`).
    node_labels: Capped,
    /// Per-node metrics while the cluster has at most this many nodes (0: off).
    node_label_max: usize,
}

/// Counts a tool call in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let call_duration =
            Family::<CallLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                call_histogram,
            );
        let auth_refusals = Family::<ReasonLabel, Counter>::default();
        let nodes = Family::<StateLabel, Gauge>::default();
        let (tools, sessions, discovery_healthy) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "mcp_gateway_tool_calls",
            "Tool calls by tool and outcome",
            calls.clone(),
        );
        registry.register_with_unit(
            "mcp_gateway_tool_call_duration",
            "Time from a tool call's arrival to its answer, by tool and outcome",
            Unit::Seconds,
            call_duration.clone(),
        );
        registry.register(
            "mcp_gateway_auth_refusals",
            "Requests refused by authentication, by reason",
            auth_refusals.clone(),
        );
        registry.register(
            "mcp_gateway_nodes",
            "Nodes with a backend endpoint, by whether its pod is ready",
            nodes.clone(),
        );
        registry.register("mcp_gateway_tools", "Tools served", tools.clone());
        registry.register(
            "mcp_gateway_sessions",
            "Legacy MCP sessions cached on this replica",
            sessions.clone(),
        );
        registry.register(
            "mcp_gateway_discovery_healthy",
            "1 when the EndpointSlice watch is up",
            discovery_healthy.clone(),
        );
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            call_histogram,
        );
        registry.register_with_unit(
            "mcp_gateway_request_duration",
            "Time from a request's arrival at /mcp to its answer's head, by JSON-RPC method and status class",
            Unit::Seconds,
            requests.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "mcp_gateway_calls_in_flight",
            "Tool calls being handled",
            in_flight.clone(),
        );
        let backend = Family::<BackendLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            call_histogram,
        );
        registry.register_with_unit(
            "mcp_gateway_backend_call_duration",
            "Time of the call to the node server, by the pod's build and the outcome",
            Unit::Seconds,
            backend.clone(),
        );
        let watch_restarts = Counter::default();
        registry.register(
            "mcp_gateway_discovery_watch_restarts",
            "Times the EndpointSlice watch went down and came back",
            watch_restarts.clone(),
        );
        let discovery_stale = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "mcp_gateway_discovery_stale",
            "How long the node map has been unconfirmed by the watch (0 while it is up)",
            Unit::Seconds,
            discovery_stale.clone(),
        );
        let rebuilds = Family::<ChangedLabel, Counter>::default();
        registry.register(
            "mcp_gateway_catalog_rebuilds",
            "Catalog rebuilds after node-set changes, by whether the served list changed",
            rebuilds.clone(),
        );
        let builds = Gauge::default();
        registry.register(
            "mcp_gateway_catalog_builds",
            "Distinct backend builds (pods grouped by what they serve)",
            builds.clone(),
        );
        let node_calls = Family::<NodeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            call_histogram,
        );
        registry.register_with_unit(
            "mcp_gateway_node_call_duration",
            "Time from a tool call's arrival to its answer, by node and outcome (only while the cluster has at most METRICS_NODE_LABELS nodes)",
            Unit::Seconds,
            node_calls.clone(),
        );
        Metrics {
            registry,
            node_calls,
            node_labels: Capped::new(0),
            node_label_max: 0,
            calls,
            call_duration,
            auth_refusals,
            nodes,
            tools,
            sessions,
            discovery_healthy,
            tool_labels: Capped::new(MAX_TOOL_LABELS),
            unknown: Label("(unknown)".into()),
            requests,
            in_flight,
            backend,
            build_labels: Capped::new(MAX_BUILD_LABELS),
            watch_restarts,
            discovery_stale,
            rebuilds,
            builds,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics that label calls by node while the cluster has at most `max` nodes, with at most `max` distinct node names ever (0: no node label).
    pub fn with_node_labels(max: usize) -> Self {
        Metrics {
            node_label_max: max,
            node_labels: Capped::new(max),
            ..Metrics::default()
        }
    }

    /// Times one call by its node (a node of the node map, never a caller's string),
    /// when the cluster (of `cluster_nodes`) is small enough for per-node metrics.
    pub fn record_node_call(
        &self,
        node: &str,
        cluster_nodes: usize,
        outcome: CallOutcome,
        took: Duration,
    ) {
        if self.node_label_max == 0 || cluster_nodes > self.node_label_max {
            return;
        }
        let node = self.node_labels.label(node);
        self.node_calls
            .get_or_create(&NodeLabels { node, outcome })
            .observe(took.as_secs_f64());
    }

    /// Counts one call of `tool` (a name the catalog knows, or anything for
    /// [`CallOutcome::UnknownTool`]).
    pub fn record_call(&self, tool: &str, outcome: CallOutcome, took: Duration) {
        let labels = CallLabels {
            tool: self.tool_label(tool, outcome),
            outcome,
        };
        self.calls.get_or_create(&labels).inc();
        self.call_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Times one request to `/mcp` (`method`: its JSON-RPC method or shape; unknown
    /// names are counted as `(other)`).
    pub fn record_request(&self, method: &str, status: http::StatusCode, took: Duration) {
        let method = KNOWN_METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("(other)");
        let status = match status.as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels { method, status })
            .observe(took.as_secs_f64());
    }

    /// Counts a tool call in flight until the guard drops.
    pub fn call_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Times one call to a node server whose pod has `build` (None: not learned).
    pub fn record_backend(&self, build: Option<&str>, outcome: CallOutcome, took: Duration) {
        let build = match build {
            None => self.unknown.clone(),
            Some(b) => self.build_labels.label(b),
        };
        self.backend
            .get_or_create(&BackendLabels { build, outcome })
            .observe(took.as_secs_f64());
    }

    /// Counts the discovery watch coming back after it went down.
    pub fn record_watch_restart(&self) {
        self.watch_restarts.inc();
    }

    /// Counts a catalog rebuild.
    pub fn record_catalog_rebuild(&self, changed: bool) {
        let changed = if changed { "true" } else { "false" };
        self.rebuilds.get_or_create(&ChangedLabel { changed }).inc();
    }

    /// Counts a request refused by authentication (`reason`: the refusal's label).
    pub fn record_auth_refusal(&self, reason: &'static str) {
        self.auth_refusals
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn tool_label(&self, tool: &str, outcome: CallOutcome) -> Label {
        if outcome == CallOutcome::UnknownTool {
            return self.unknown.clone();
        }
        self.tool_labels.label(tool)
    }

    /// The OpenMetrics text exposition, with the gauges set from `g`.
    pub fn render(&self, g: Gauges) -> String {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.nodes
            .get_or_create(&StateLabel { state: "ready" })
            .set(as_i64(g.ready_nodes));
        self.nodes
            .get_or_create(&StateLabel { state: "not_ready" })
            .set(as_i64(g.nodes.saturating_sub(g.ready_nodes)));
        self.tools.set(as_i64(g.tools));
        self.sessions.set(as_i64(g.sessions));
        self.discovery_healthy.set(i64::from(g.discovery_healthy));
        self.discovery_stale.set(g.discovery_stale.as_secs_f64());
        self.builds.set(as_i64(g.builds));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {metric} {labels:?}"));
        match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{metric}: {other:?}"),
        }
    }

    #[test]
    fn node_labels_are_capped_and_only_used_in_small_clusters() {
        let m = Metrics::with_node_labels(2);
        let ms = Duration::from_millis(1);
        for node in ["a", "b", "c", "a"] {
            m.record_node_call(node, 2, CallOutcome::Ok, ms);
        }
        m.record_node_call("a", 3, CallOutcome::Ok, ms);
        let gauges = Gauges {
            nodes: 2,
            ready_nodes: 2,
            tools: 1,
            sessions: 0,
            discovery_healthy: true,
            discovery_stale: Duration::ZERO,
            builds: 1,
        };
        let s = parse(&m.render(gauges));
        let count = |node: &str| {
            s.samples
                .iter()
                .find(|x| {
                    x.metric == "mcp_gateway_node_call_duration_seconds"
                        && x.labels.get("node") == Some(node)
                })
                .and_then(|x| match &x.value {
                    prometheus_parse::Value::Histogram(b) => b.last().map(|b| b.count),
                    _ => None,
                })
        };
        // Two names at most; the third is (other); a call in a 3-node cluster is not
        // timed by node at all.
        assert_eq!(count("a"), Some(2.0));
        assert_eq!(count("b"), Some(1.0));
        assert_eq!(count("(other)"), Some(1.0));
        assert_eq!(count("c"), None);
        let off = Metrics::default();
        off.record_node_call("a", 1, CallOutcome::Ok, ms);
        assert!(!off.render(gauges).contains("node=\"a\""));
    }

    #[test]
    fn calls_are_counted_by_tool_and_outcome_with_bounded_labels() {
        let m = Metrics::default();
        m.record_call("node_info", CallOutcome::Ok, Duration::from_millis(2));
        m.record_call("node_info", CallOutcome::Ok, Duration::from_millis(3));
        m.record_call(
            "node_info",
            CallOutcome::UnknownNode,
            Duration::from_millis(1),
        );
        m.record_call("made-up", CallOutcome::UnknownTool, Duration::ZERO);
        for i in 0..MAX_TOOL_LABELS + 10 {
            m.record_call(&format!("t{i}"), CallOutcome::Ok, Duration::ZERO);
        }
        m.record_auth_refusal("invalid");
        let text = m.render(Gauges {
            nodes: 3,
            ready_nodes: 2,
            tools: 4,
            sessions: 1,
            discovery_healthy: true,
            discovery_stale: Duration::ZERO,
            builds: 1,
        });
        let s = parse(&text);
        let calls = "mcp_gateway_tool_calls_total";
        assert_eq!(
            value(&s, calls, &[("tool", "node_info"), ("outcome", "ok")]),
            2.0
        );
        assert_eq!(
            value(
                &s,
                calls,
                &[("tool", "node_info"), ("outcome", "unknown_node")]
            ),
            1.0
        );
        assert_eq!(value(&s, calls, &[("tool", "(unknown)")]), 1.0);
        // node_info plus 255 of the t* tools got their own label; the rest are (other).
        assert_eq!(value(&s, calls, &[("tool", "(other)")]), 11.0);
        assert_eq!(
            value(
                &s,
                "mcp_gateway_auth_refusals_total",
                &[("reason", "invalid")]
            ),
            1.0
        );
        assert_eq!(value(&s, "mcp_gateway_nodes", &[("state", "ready")]), 2.0);
        assert_eq!(
            value(&s, "mcp_gateway_nodes", &[("state", "not_ready")]),
            1.0
        );
        assert_eq!(value(&s, "mcp_gateway_discovery_healthy", &[]), 1.0);
        let hist = s
            .samples
            .iter()
            .find(|x| {
                x.metric == "mcp_gateway_tool_call_duration_seconds"
                    && x.labels.get("tool") == Some("node_info")
                    && x.labels.get("outcome") == Some("ok")
            })
            .expect("a duration histogram");
        let prometheus_parse::Value::Histogram(buckets) = &hist.value else {
            panic!("{:?}", hist.value);
        };
        let at = |le: f64| {
            buckets
                .iter()
                .find(|b| (b.less_than - le).abs() < 1e-9)
                .map(|b| b.count)
        };
        assert_eq!(at(0.002), Some(1.0), "{buckets:?}");
        assert_eq!(at(0.004), Some(2.0), "{buckets:?}");
    }

    #[test]
    fn request_methods_and_builds_are_bounded_labels() {
        let m = Metrics::default();
        m.record_request("tools/call", http::StatusCode::OK, Duration::ZERO);
        m.record_request("made/up", http::StatusCode::NOT_FOUND, Duration::ZERO);
        for i in 0..MAX_BUILD_LABELS + 5 {
            m.record_backend(Some(&format!("b{i}")), CallOutcome::Ok, Duration::ZERO);
        }
        m.record_backend(None, CallOutcome::Unreachable, Duration::ZERO);
        let g = m.call_started();
        let text = m.render(Gauges {
            nodes: 0,
            ready_nodes: 0,
            tools: 0,
            sessions: 0,
            discovery_healthy: false,
            discovery_stale: Duration::from_millis(1500),
            builds: 2,
        });
        drop(g);
        let s = parse(&text);
        let methods: HashSet<&str> = s
            .samples
            .iter()
            .filter_map(|x| x.labels.get("method"))
            .collect();
        assert_eq!(methods, HashSet::from(["tools/call", "(other)"]));
        let builds: HashSet<&str> = s
            .samples
            .iter()
            .filter(|x| x.metric.starts_with("mcp_gateway_backend_call_duration"))
            .filter_map(|x| x.labels.get("build"))
            .collect();
        assert_eq!(
            builds.len(),
            MAX_BUILD_LABELS + 2,
            "32 builds, (other), (unknown)"
        );
        assert!(builds.contains("(other)") && builds.contains("(unknown)"));
        assert_eq!(value(&s, "mcp_gateway_calls_in_flight", &[]), 1.0);
        assert_eq!(value(&s, "mcp_gateway_discovery_stale_seconds", &[]), 1.5);
        assert_eq!(value(&s, "mcp_gateway_catalog_builds", &[]), 2.0);
    }
}
