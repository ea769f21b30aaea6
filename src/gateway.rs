//! The gateway's tool handler: serves the catalog and routes each call to the pod on
//! the node the caller named, turning every routing failure into a tool error a model
//! can act on.
//!
//! Authorization happens here, with the caller the HTTP layer put into the request's
//! extensions: tools/list shows each caller only the tools the policy lets it call
//! (a cached answer per distinct visible set), and a call outside the policy is a tool
//! error naming what is missing, before any backend is contacted. Every call leaves one
//! audit line (tracing target `audit`).

use bytes::Bytes;
use mcp_protocol::headers::ParamHeader;
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{self, Era};
use mcp_protocol::server::{BoxFuture, ClientRequest, McpHandler, ToolCall};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

use crate::auth::Caller;
use crate::catalog::{Catalog, NODE_PARAM};
use crate::cluster::{Discovery, NodeMap};
use crate::config::FanoutConfig;
use crate::metrics::{CallOutcome, Metrics};
use crate::parked::{CallOwner, ParkedCalls};
use crate::policy::{PolicyStore, ToolFacts};
use crate::upstream::{ForwardError, Upstreams};

/// Everything a call needs, shared by all requests.
pub struct Gateway {
    catalog: RwLock<Arc<Catalog>>,
    discovery: Discovery,
    upstreams: Arc<Upstreams>,
    call_timeout: Duration,
    metrics: Arc<Metrics>,
    /// Who may see and call what (allow-all without POLICY_FILE).
    policy: Arc<PolicyStore>,
    /// Whether audit lines carry argument values (AUDIT_ARGUMENTS).
    audit_arguments: bool,
    /// The fan-out tool's settings, when it is on (see [`crate::fanout`]).
    fanout: Option<Arc<FanoutConfig>>,
    /// The node-map tool's name, when it is on (see [`crate::nodemap`]).
    nodes_tool: Option<Arc<str>>,
    /// Backend calls waiting for 2026-07-28 clients' answers (without it, a legacy
    /// backend's questions to such a client are refused at once).
    parked: Option<Arc<ParkedCalls>>,
    /// The backends' prompt lists (see [`crate::prompts`]).
    pub(crate) prompts: crate::prompts::Prompts,
    /// The backends' resource lists (see [`crate::resources`]).
    pub(crate) resources: crate::resources::Resources,
    /// Task ids handed to clients (without it, no call becomes a task here).
    pub(crate) tasks: Option<Arc<crate::tasks::Tasks>>,
    /// Clients' resource subscriptions and the upstream watches behind them.
    subscriptions: Arc<crate::subscriptions::Subscriptions>,
    /// Spans exported over OTLP, when an endpoint is set (see [`crate::telemetry`]).
    telemetry: Option<Arc<mcp_protocol::telemetry::Telemetry>>,
}

impl Gateway {
    /// A gateway serving `catalog` over the nodes `discovery` reports.
    pub fn new(
        catalog: Catalog,
        discovery: Discovery,
        upstreams: Arc<Upstreams>,
        call_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Gateway {
            catalog: RwLock::new(Arc::new(catalog)),
            discovery,
            upstreams,
            call_timeout,
            metrics,
            policy: Arc::new(PolicyStore::allow_all()),
            audit_arguments: false,
            fanout: None,
            nodes_tool: None,
            parked: None,
            prompts: Default::default(),
            resources: Default::default(),
            tasks: None,
            subscriptions: Default::default(),
            telemetry: None,
        }
    }

    /// The resource subscriptions.
    pub fn subscriptions(&self) -> &Arc<crate::subscriptions::Subscriptions> {
        &self.subscriptions
    }

    /// The same gateway handing out task ids from `tasks`, so calls a node server
    /// runs as tasks are followed through it.
    pub fn with_tasks(mut self, tasks: crate::tasks::Tasks) -> Self {
        self.tasks = Some(Arc::new(tasks));
        self
    }

    /// The task ids, when calls may become tasks.
    pub fn tasks(&self) -> Option<&crate::tasks::Tasks> {
        self.tasks.as_deref()
    }

    /// The same gateway answering the node-map tool under `name`.
    pub fn with_nodes_tool(mut self, name: Option<String>) -> Self {
        self.nodes_tool = name.map(Arc::from);
        self
    }

    /// The same gateway serving the fan-out tool with `config` (its definition is
    /// part of the catalog the caller builds).
    pub fn with_fanout(mut self, config: Option<FanoutConfig>) -> Self {
        self.fanout = config.map(Arc::new);
        self
    }

    /// The same gateway keeping a legacy backend's calls open in `parked` while a
    /// 2026-07-28 client answers their questions.
    pub fn with_parked(mut self, parked: Arc<ParkedCalls>) -> Self {
        self.parked = Some(parked);
        self
    }

    /// With `telemetry` (OTEL_EXPORTER_OTLP_ENDPOINT set), exports a span per request
    /// and per backend call.
    pub fn with_telemetry(
        mut self,
        telemetry: Option<Arc<mcp_protocol::telemetry::Telemetry>>,
    ) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The calls waiting for clients' answers, when the gateway parks them.
    pub fn parked(&self) -> Option<&Arc<ParkedCalls>> {
        self.parked.as_ref()
    }

    /// The same gateway enforcing `policy`, with argument values in audit lines when
    /// `audit_arguments`.
    pub fn with_access(mut self, policy: Arc<PolicyStore>, audit_arguments: bool) -> Self {
        self.policy = policy;
        self.audit_arguments = audit_arguments;
        self
    }

    /// The policy store in force.
    pub fn policy(&self) -> &Arc<PolicyStore> {
        &self.policy
    }

    /// The catalog in force.
    pub fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new catalog (the caller then notifies clients).
    pub fn set_catalog(&self, catalog: Catalog) {
        if let Ok(mut c) = self.catalog.write() {
            *c = Arc::new(catalog);
        }
    }

    /// The backend clients.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    /// The deadline of one forwarded request.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The discovery the gateway routes with.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }
}

/// The gateway as the MCP server's tool handler.
#[derive(Clone)]
pub struct Handler(pub Arc<Gateway>);

impl McpHandler for Handler {
    fn list_tools(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, ErrorObject> {
        self.0
            .catalog()
            .list_page(era, cursor)
            .map_err(ErrorObject::invalid_params)
    }

    fn list_tools_for(
        &self,
        era: Era,
        cursor: Option<&str>,
        request: &http::Extensions,
    ) -> Result<Bytes, ErrorObject> {
        let catalog = self.0.catalog();
        let policy = self.0.policy.current();
        let anonymous;
        let caller = match request.get::<Arc<Caller>>() {
            Some(c) => c.as_ref(),
            None => {
                anonymous = Caller::anonymous();
                &anonymous
            }
        };
        let grants = policy.grants(caller);
        if grants.sees_everything() {
            return catalog
                .list_page(era, cursor)
                .map_err(ErrorObject::invalid_params);
        }
        catalog
            .list_page_where(era, cursor, |name, read_only| {
                grants.may_see(ToolFacts { name, read_only })
            })
            .map_err(ErrorObject::invalid_params)
    }

    fn param_headers(&self, tool: &str) -> Option<Arc<[ParamHeader]>> {
        self.0.catalog().get(tool).map(|t| t.param_headers.clone())
    }

    fn param_headers_for(
        &self,
        tool: &str,
        request: &http::Extensions,
    ) -> Option<Arc<[ParamHeader]>> {
        let catalog = self.0.catalog();
        let served = catalog.get(tool)?;
        let policy = self.0.policy.current();
        if !policy.is_allow_all() {
            let anonymous = Caller::anonymous();
            let caller = request
                .get::<Arc<Caller>>()
                .map(Arc::as_ref)
                .unwrap_or(&anonymous);
            let facts = ToolFacts {
                name: tool,
                read_only: served.read_only,
            };
            if !policy.grants(caller).may_see(facts) {
                // Hidden from this caller: it cannot know the headers; the call is
                // refused by the policy instead of a header mismatch.
                return None;
            }
        }
        Some(served.param_headers.clone())
    }

    fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        match &self.0.telemetry {
            None => self.0.call(call),
            Some(t) => mcp_protocol::telemetry::tool_call(t, call, Vec::new(), |c| self.0.call(c)),
        }
    }

    fn handles(&self, method_name: &str) -> bool {
        crate::content::handles(method_name)
    }

    fn listen_resources(
        &self,
        uris: &[String],
        sink: &mcp_protocol::server::ListenSink,
        extensions: &http::Extensions,
    ) -> Vec<String> {
        let policy = self.0.policy.current();
        let anonymous = Caller::anonymous();
        let caller = extensions
            .get::<Arc<Caller>>()
            .map_or(&anonymous, |c| c.as_ref());
        if !policy.grants(caller).sees_everything() {
            // As for resources/read: only for callers the policy does not limit.
            return Vec::new();
        }
        self.0.subscriptions.listen(&self.0, uris, sink)
    }

    fn listen_tasks(
        &self,
        task_ids: &[String],
        sink: &mcp_protocol::server::ListenSink,
        extensions: &http::Extensions,
    ) -> Vec<String> {
        crate::tasks::listen(&self.0, task_ids, sink, extensions)
    }

    fn handle_request(&self, request: ClientRequest) -> BoxFuture<Result<Bytes, ErrorObject>> {
        let gw = self.0.clone();
        let serve = |request| -> BoxFuture<_> {
            Box::pin(async move { crate::content::handle(&gw, request).await })
        };
        match &self.0.telemetry {
            None => serve(request),
            Some(t) => mcp_protocol::telemetry::request(t, request, serve),
        }
    }
}

impl Gateway {
    /// One tool call with its metrics and audit line: the tool handler's entry, and
    /// the fan-out's for each node (so every node call is checked and audited alike).
    pub fn call(self: &Arc<Self>, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        let gw = self.clone();
        // Every debug line of the call carries its id, tool, node and pod IP (a debug
        // span: free at the default log level, so nothing is formatted per call).
        let span = tracing::debug_span!(
            "tools/call",
            id = %call.id,
            tool = %call.name,
            node = tracing::field::Empty,
            pod_ip = tracing::field::Empty,
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let _in_flight = gw.metrics.call_started();
                let audit = Audit::of(&call, gw.audit_arguments);
                let (outcome, answer) = match (gw.fanout.clone(), gw.nodes_tool.as_deref()) {
                    (Some(f), _) if f.name == call.name => crate::fanout::run(&gw, &f, call).await,
                    (_, Some(n)) if n == call.name => crate::nodemap::run(&gw, &call),
                    _ => gw.route(call).await,
                };
                let took = started.elapsed();
                gw.metrics.record_call(&audit.tool, outcome, took);
                if let Some(node) = &audit.node {
                    let nodes = gw.discovery.nodes();
                    if nodes.get(node).is_some() {
                        gw.metrics
                            .record_node_call(node, nodes.len(), outcome, took);
                    }
                }
                tracing::debug!(outcome = outcome.label(), "call done");
                audit.log(outcome, took);
                answer
            }
            .instrument(span),
        )
    }
}

/// What the audit line of one call says, taken before the call is routed.
struct Audit {
    /// Who called (anonymous when authentication is off).
    caller: Arc<Caller>,
    /// The JSON-RPC id, to find the call in other logs.
    request_id: mcp_protocol::jsonrpc::RequestId,
    /// The tool asked for.
    tool: String,
    /// The `node` argument as sent (even when it names no known node).
    node: Option<String>,
    /// The other arguments as JSON, only with AUDIT_ARGUMENTS=true.
    arguments: Option<String>,
}

impl Audit {
    fn of(call: &ToolCall, with_arguments: bool) -> Audit {
        let caller = call
            .extensions
            .get::<Arc<Caller>>()
            .cloned()
            .unwrap_or_else(|| Arc::new(Caller::anonymous()));
        let args = call.arguments();
        Audit {
            caller,
            request_id: call.id.clone(),
            tool: call.name.clone(),
            node: args
                .and_then(|a| a.get(NODE_PARAM))
                .and_then(Value::as_str)
                .map(str::to_owned),
            arguments: with_arguments.then(|| {
                let mut a = args.cloned().unwrap_or_default();
                a.shift_remove(NODE_PARAM);
                Value::Object(a).to_string()
            }),
        }
    }

    /// One line, target `audit`: who called what where, how it ended and how long it
    /// took. Argument values only with AUDIT_ARGUMENTS=true.
    fn log(&self, outcome: CallOutcome, took: Duration) {
        tracing::info!(
            target: "audit",
            request_id = %self.request_id,
            subject = %self.caller.subject,
            source = ?self.caller.source,
            tool = %self.tool,
            node = self.node.as_deref().unwrap_or(""),
            outcome = outcome.label(),
            duration_ms = took.as_secs_f64() * 1000.0,
            arguments = self.arguments.as_deref(),
            "tools/call"
        );
    }
}

impl Gateway {
    async fn route(&self, call: ToolCall) -> (CallOutcome, Result<Bytes, ErrorObject>) {
        let era = call.version.era();
        let tool_error = |outcome, text: String| (outcome, Ok(tool_error(era, &text)));
        let catalog = self.catalog();
        let Some(served) = catalog.get(&call.name) else {
            return (
                CallOutcome::UnknownTool,
                Err(ErrorObject::invalid_params(format!(
                    "Unknown tool: {}",
                    shorten(&call.name)
                ))),
            );
        };
        let facts = ToolFacts {
            name: &call.name,
            read_only: served.read_only,
        };
        let policy = self.policy.current();
        let caller = call.extensions.get::<Arc<Caller>>().cloned();
        let anonymous = Caller::anonymous();
        let caller = caller.as_deref().unwrap_or(&anonymous);
        let grants = policy.grants(caller);
        if !grants.may_see(facts) {
            // No node would do: refuse before looking at the arguments.
            if let Err(denial) = grants.check(&caller.subject, facts, "") {
                return tool_error(CallOutcome::Denied, denial.0);
            }
        }
        let node = match call.arguments().and_then(|a| a.get(NODE_PARAM)) {
            Some(Value::String(n)) if n.len() > MAX_NODE_NAME_BYTES => {
                return tool_error(
                    CallOutcome::BadArguments,
                    format!(
                        "Argument \"node\" is {} bytes long; a Kubernetes node name has at most {MAX_NODE_NAME_BYTES} characters.",
                        n.len()
                    ),
                );
            }
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            None => {
                return tool_error(
                    CallOutcome::BadArguments,
                    format!(
                        "Missing required argument \"node\": name the Kubernetes node to run {} on. {}",
                        call.name,
                        known_nodes_hint(&self.discovery.nodes(), "")
                    ),
                );
            }
            Some(other) => {
                return tool_error(
                    CallOutcome::BadArguments,
                    format!(
                        "Argument \"node\" must be a non-empty string (a node name), got {other}."
                    ),
                );
            }
        };
        if let Err(denial) = grants.check(&caller.subject, facts, &node) {
            return tool_error(CallOutcome::Denied, denial.0);
        }
        let task_asked = self
            .tasks
            .as_ref()
            .and_then(|_| crate::tasks::asked(era, &call.params));
        drop(grants);
        drop(policy);
        let nodes = self.discovery.nodes();
        let Some(endpoint) = nodes.get(&node) else {
            return tool_error(
                CallOutcome::UnknownNode,
                format!(
                    "Unknown node \"{node}\". {}",
                    known_nodes_hint(&nodes, &node)
                ),
            );
        };
        if !endpoint.ready {
            return tool_error(
                CallOutcome::NodeNotReady,
                format!(
                    "Node \"{node}\" is known but its MCP server pod{} is not ready; try again shortly or pick another node. {}",
                    endpoint
                        .pod
                        .as_ref()
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default(),
                    known_nodes_hint(&nodes, &node)
                ),
            );
        }
        let ip = endpoint.ip;
        if let Err(text) = catalog.availability().check(&call.name, &node, ip, &nodes) {
            return tool_error(CallOutcome::NotOnNode, text);
        }
        let span = tracing::Span::current();
        span.record("node", node.as_str());
        span.record("pod_ip", tracing::field::display(ip));
        tracing::debug!("forwarding call");
        let ToolCall {
            name,
            mut params,
            progress,
            outbound,
            cancel,
            ..
        } = call;
        if let Some(Value::Object(args)) = params.get_mut("arguments") {
            args.shift_remove(NODE_PARAM);
        }
        if task_asked == Some(crate::tasks::Asked::Modern) && served.legacy_tasks {
            // A 2025-11-25 backend starts a task only when asked with `params.task`.
            params
                .entry("task")
                .or_insert_with(|| Value::Object(Default::default()));
        }
        let client = self.upstreams.client(ip);
        let build = catalog.availability().pod_build(ip).map(|b| b.0);
        let leg = crate::upstream::Leg {
            progress: progress.as_ref(),
            outbound: &outbound,
            cancel: &cancel,
            timeout: self.call_timeout,
        };
        let task_owner = task_asked.map(|_| caller.key());
        let owner = CallOwner {
            node: &node,
            tool: &name,
            caller,
        };
        let parked = self.parked.as_deref().map(|p| (p, owner));
        let traced = self.telemetry.as_deref().map(|t| {
            let url = client.url().to_string();
            crate::telemetry::backend_call(t, &name, &node, ip, &url, build, &mut params)
        });
        let sent = Instant::now();
        // Built where it is awaited: a named future would be stored twice in this one.
        let forwarded = match &traced {
            None => crate::relay::forward_call(client, params, &leg, parked).await,
            // Boxed: tracing does not double the size of every call's future.
            Some(span) => {
                let forwarding = crate::relay::forward_call(client, params, &leg, parked);
                span.run(Box::pin(forwarding)).await
            }
        };
        let took = sent.elapsed();
        let answer = match forwarded {
            Ok((Ok(raw), upstream_version)) => {
                let task = match (&self.tasks, task_asked, &task_owner) {
                    (Some(tasks), Some(asked), Some(owner)) => tasks.wrap_created(
                        asked,
                        raw.get(),
                        upstream_version.era() == Era::Modern,
                        &node,
                        owner,
                    ),
                    _ => None,
                };
                let bytes = if let Some(task) = task {
                    if let (Some(crate::tasks::Asked::Legacy), Some(owner), Some(session)) =
                        (task_asked, &task_owner, outbound.session_push())
                    {
                        if upstream_version.era() == Era::Modern {
                            crate::tasks::follow_for_session(self, &task, owner, session);
                        } else {
                            crate::tasks::follow_on_call_session(self, &task, owner, session, ip);
                        }
                    }
                    task
                } else if upstream_version.era() == era {
                    Bytes::copy_from_slice(raw.get().as_bytes())
                } else {
                    convert_result(raw.get(), era)
                };
                (CallOutcome::Ok, Ok(bytes))
            }
            Ok((Err(e), _)) => (CallOutcome::BackendError, Err(e)),
            Err(ForwardError::Cancelled) => (
                CallOutcome::Cancelled,
                Err(ErrorObject::new(
                    jsonrpc::REQUEST_CANCELLED,
                    "request cancelled",
                )),
            ),
            Err(ForwardError::Backend(e)) => {
                use mcp_protocol::client::ClientError as E;
                tracing::warn!(tool = %name, %node, pod_ip = %ip, error = %e, "backend call failed");
                let (outcome, text) = match &e {
                    E::Timeout { timeout, .. } => (
                        CallOutcome::Timeout,
                        format!(
                            "The MCP server on node \"{node}\" (pod IP {ip}) did not answer within {} s.",
                            timeout.as_secs()
                        ),
                    ),
                    E::Unreachable { .. } => (
                        CallOutcome::Unreachable,
                        format!(
                            "The MCP server on node \"{node}\" (pod IP {ip}) is unreachable: {e}"
                        ),
                    ),
                    _ => (
                        CallOutcome::BackendBroken,
                        format!(
                            "The MCP server on node \"{node}\" (pod IP {ip}) gave an unusable answer: {e}"
                        ),
                    ),
                };
                tool_error(outcome, text)
            }
        };
        self.metrics.record_backend(build, answer.0, took);
        if let Some(span) = traced {
            span.finish(answer.0.label());
        }
        answer
    }
}

/// Longest node name Kubernetes allows (a DNS subdomain): a longer `node` is refused
/// before any lookup or hint is computed.
pub const MAX_NODE_NAME_BYTES: usize = 253;

/// A caller-chosen string as quoted in an error: at most 128 characters, so an error
/// never echoes megabytes back.
fn shorten(text: &str) -> String {
    clip_chars(text, 128)
}

/// `text` cut to at most `max` characters, with `…` when something was cut.
pub(crate) fn clip_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A tool result with `isError: true` and a message for the model.
fn tool_error(era: Era, text: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&mcp::tool_result(era, text, None, true)).unwrap_or_default())
}

/// Re-shapes a backend result for a client of the other era (`resultType`).
pub(crate) fn convert_result(raw: &str, era: Era) -> Bytes {
    match mcp::result_for_era(raw, era) {
        Some(converted) => Bytes::from(converted),
        None => Bytes::copy_from_slice(raw.as_bytes()),
    }
}

/// "Known nodes: a, b, c." — or, on a big cluster, the names closest to `wanted`.
pub(crate) fn known_nodes_hint(nodes: &NodeMap, wanted: &str) -> String {
    const LIST_ALL_UP_TO: usize = 20;
    let ready: Vec<&str> = nodes.ready().map(|e| e.node.as_str()).collect();
    if ready.is_empty() {
        return "No node has a ready MCP server right now.".into();
    }
    if ready.len() <= LIST_ALL_UP_TO || wanted.is_empty() {
        let shown: Vec<&str> = ready.iter().take(LIST_ALL_UP_TO).copied().collect();
        let more = ready.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return format!("Nodes with a ready MCP server: {}{tail}.", shown.join(", "));
    }
    // Both sides are at most MAX_NODE_NAME_BYTES long (callers check `wanted`, the
    // API server checks node names), so one comparison costs at most 253 x 253 steps
    // and the whole hint a bounded multiple of the node count.
    let wanted: String = wanted.chars().take(MAX_NODE_NAME_BYTES).collect();
    let mut scored: Vec<(usize, &str)> = ready
        .iter()
        .map(|n| (strsim::levenshtein(&wanted, n), *n))
        .collect();
    let shown = scored.len().min(5);
    if shown > 0 && scored.len() > shown {
        scored.select_nth_unstable(shown - 1);
        scored.truncate(shown);
    }
    scored.sort();
    let closest: Vec<&str> = scored.iter().map(|(_, n)| *n).collect();
    format!(
        "Closest nodes with a ready MCP server ({} in all): {}.",
        ready.len(),
        closest.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeEndpoint;

    fn map(n: usize) -> NodeMap {
        NodeMap::from_endpoints((0..n).map(|i| NodeEndpoint {
            node: format!("worker-{i}"),
            ip: format!("10.0.0.{}", i % 250 + 1).parse().unwrap(),
            ready: i != 1,
            pod: None,
            zone: None,
            terminating: false,
        }))
    }

    #[test]
    fn hints_list_ready_nodes_or_the_closest() {
        let small = known_nodes_hint(&map(3), "x");
        assert!(small.contains("worker-0, worker-2"), "{small}");
        assert!(!small.contains("worker-1"), "{small}");
        let big = known_nodes_hint(&map(100), "worker-42x");
        assert!(big.starts_with("Closest"), "{big}");
        assert!(big.contains("worker-42"), "{big}");
        assert!(big.contains("99 in all"), "{big}");
        let long = "w".repeat(1 << 20);
        let huge = known_nodes_hint(&map(300), &long);
        assert!(huge.contains("299 in all"), "{huge}");
    }

    #[test]
    fn results_are_reshaped_between_eras() {
        let v: Value = serde_json::from_slice(&convert_result(
            r#"{"content":[],"isError":false}"#,
            Era::Modern,
        ))
        .unwrap();
        assert_eq!(v["resultType"], "complete");
        let v: Value = serde_json::from_slice(&convert_result(
            r#"{"resultType":"complete","content":[]}"#,
            Era::Legacy,
        ))
        .unwrap();
        assert!(v.get("resultType").is_none());
    }
}
