//! The fan-out tool: one call runs one backend tool on many nodes.
//!
//! Questions about the whole cluster ("which node is out of disk?") would otherwise
//! cost a model one call per node. The fan-out tool (FANOUT_TOOL_NAME, `fan_out` by
//! default) takes `tool`, `arguments` and a `target` (`"all"`, `{"nodes": [...]}`,
//! `{"glob": "..."}` or `{"zone": "..."}`), and runs each node's call through the same
//! path as a single call ([`Gateway::call`]): the policy, the availability check, the
//! metrics and one audit line per node all apply exactly as they would to that call.
//! Bounded concurrency, a per-node timeout, an overall deadline and a cap on the nodes
//! per call keep one fan-out from holding the gateway; progress goes out as nodes
//! finish; cancelling the fan-out cancels the node calls still running.

use bytes::Bytes;
use futures_util::StreamExt;
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{self, Era};
use mcp_protocol::server::ToolCall;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::catalog::NODE_PARAM;
use crate::cluster::NodeMap;
use crate::config::FanoutConfig;
use crate::gateway::{Gateway, MAX_NODE_NAME_BYTES};
use crate::metrics::CallOutcome;
use crate::policy::{Glob, ToolFacts};

/// Lines of the text rendering that name a node; the rest is counted, not listed
/// (every node's answer is in `structuredContent`).
pub const TEXT_NODES: usize = 50;
/// Characters of one node's answer in the text rendering.
pub const TEXT_PER_NODE: usize = 160;
/// The `_meta` key marking a tool the gateway itself serves (no `node` parameter):
/// clients and scripts that check every backend tool skip these.
pub const GATEWAY_TOOL_META: &str = "k8s-aggregator-mcp/gateway-tool";
/// How long a timed-out or cancelled node call may take to wind down.
const WIND_DOWN: Duration = Duration::from_secs(2);

/// The served definition of the fan-out tool (both eras).
pub fn definition(config: &FanoutConfig) -> Value {
    let name_item = json!({"type": "string", "minLength": 1, "maxLength": MAX_NODE_NAME_BYTES});
    json!({
        "name": config.name,
        "title": "Run a tool on many nodes",
        "description": format!(
            "Runs one of the other tools on many Kubernetes nodes at once and returns every node's answer, keyed by node. \
             `tool` is the tool to run, `arguments` its arguments without `node`, `target` the nodes: \"all\" (every ready node), \
             {{\"nodes\": [names]}}, {{\"glob\": \"worker-*\"}} or {{\"zone\": \"<topology zone>\"}}. At most {} nodes per call; \
             each node has {} s, the whole call {} s.",
            config.max_nodes, config.node_timeout.as_secs(), config.deadline.as_secs()
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "minLength": 1, "description": "The tool to run on every target node."},
                "arguments": {"type": "object", "description": "The tool's arguments, without `node` (the gateway sets it per node)."},
                "target": {
                    "description": "Which nodes: \"all\", a list of names, a glob on names (`*`, `?`), or a zone.",
                    "oneOf": [
                        {"type": "string", "enum": ["all"]},
                        {"type": "object", "properties": {"nodes": {"type": "array", "items": name_item, "minItems": 1, "maxItems": config.max_nodes}}, "required": ["nodes"], "additionalProperties": false},
                        {"type": "object", "properties": {"glob": name_item}, "required": ["glob"], "additionalProperties": false},
                        {"type": "object", "properties": {"zone": name_item}, "required": ["zone"], "additionalProperties": false}
                    ]
                }
            },
            "required": ["tool", "target"],
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "tool": {"type": "string"},
                "summary": {
                    "type": "object",
                    "properties": {
                        "nodes": {"type": "integer", "minimum": 0},
                        "ok": {"type": "integer", "minimum": 0},
                        "failed": {"type": "integer", "minimum": 0},
                        "timedOut": {"type": "integer", "minimum": 0}
                    },
                    "required": ["nodes", "ok", "failed", "timedOut"],
                    "additionalProperties": false
                },
                "results": {
                    "type": "object",
                    "description": "One entry per target node, keyed by node name.",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "string", "enum": ["ok", "failed", "timed_out"]},
                            "result": {"description": "The node's structuredContent (or its content when it has none)."},
                            "error": {"type": "string"},
                            "durationMs": {"type": "number", "minimum": 0}
                        },
                        "required": ["status"]
                    }
                }
            },
            "required": ["tool", "summary", "results"]
        },
        "annotations": {"title": "Run a tool on many nodes", "readOnlyHint": false, "openWorldHint": false},
        "_meta": {GATEWAY_TOOL_META: true}
    })
}

/// How one node's call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Failed,
    TimedOut,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
        }
    }
}

/// One node's entry.
struct NodeResult {
    node: String,
    status: Status,
    /// structuredContent or content (successes and tool errors with a body).
    result: Option<Value>,
    /// The error text (tool errors, JSON-RPC errors, timeouts).
    error: Option<String>,
    /// One line for the text rendering.
    line: String,
    /// How long the node's call took, in milliseconds.
    ms: f64,
}

/// Why the arguments name no node set.
fn bad(era: Era, text: &str) -> (CallOutcome, Result<Bytes, ErrorObject>) {
    (
        CallOutcome::BadArguments,
        Ok(Bytes::from(
            serde_json::to_vec(&mcp::tool_result(era, text, None, true)).unwrap_or_default(),
        )),
    )
}

/// The target nodes, in name order. Selectors (`all`, glob, zone) take ready nodes
/// the caller may call `tool` on; a list is taken as given (each name is checked by
/// the node call itself, so unknown or forbidden names get their own error).
fn resolve(
    target: &Value,
    nodes: &NodeMap,
    may_call: &dyn Fn(&str) -> bool,
) -> Result<(Vec<String>, usize), String> {
    let select = |pick: &dyn Fn(&crate::cluster::NodeEndpoint) -> bool| {
        let mut hidden = 0;
        let chosen: Vec<String> = nodes
            .ready()
            .filter(|e| pick(e))
            .filter(|e| {
                let ok = may_call(&e.node);
                hidden += usize::from(!ok);
                ok
            })
            .map(|e| e.node.clone())
            .collect();
        (chosen, hidden)
    };
    match target {
        Value::String(s) if s == "all" => Ok(select(&|_| true)),
        Value::Object(m) if m.len() == 1 => {
            if let Some(list) = m.get("nodes") {
                let Some(list) = list.as_array().filter(|l| !l.is_empty()) else {
                    return Err("target.nodes must be a non-empty array of node names".into());
                };
                let mut names = Vec::with_capacity(list.len());
                for n in list {
                    match n.as_str() {
                        Some(s) if !s.is_empty() && s.len() <= MAX_NODE_NAME_BYTES => {
                            if !names.iter().any(|x: &String| x == s) {
                                names.push(s.to_string());
                            }
                        }
                        _ => {
                            return Err(format!(
                                "target.nodes entries must be node names (1-{MAX_NODE_NAME_BYTES} characters)"
                            ));
                        }
                    }
                }
                names.sort();
                Ok((names, 0))
            } else if let Some(Value::String(g)) = m.get("glob") {
                if g.is_empty() || g.len() > MAX_NODE_NAME_BYTES {
                    return Err(format!("target.glob must be 1-{MAX_NODE_NAME_BYTES} characters"));
                }
                let glob = Glob::new(g);
                Ok(select(&|e| glob.matches(&e.node)))
            } else if let Some(Value::String(z)) = m.get("zone") {
                Ok(select(&|e| e.zone.as_deref() == Some(z.as_str())))
            } else {
                Err("target must be \"all\", {\"nodes\": [...]}, {\"glob\": \"...\"} or {\"zone\": \"...\"}".into())
            }
        }
        _ => Err("target must be \"all\", {\"nodes\": [...]}, {\"glob\": \"...\"} or {\"zone\": \"...\"}".into()),
    }
}

/// Runs a fan-out call.
pub async fn run(
    gw: &Arc<Gateway>,
    config: &FanoutConfig,
    call: ToolCall,
) -> (CallOutcome, Result<Bytes, ErrorObject>) {
    let era = call.version.era();
    let args = call.arguments().cloned().unwrap_or_default();
    if let Some(k) = args
        .keys()
        .find(|k| !matches!(k.as_str(), "tool" | "arguments" | "target"))
    {
        return bad(
            era,
            &format!(
                "Unknown argument \"{k}\": {} takes tool, arguments and target.",
                config.name
            ),
        );
    }
    let Some(tool) = args
        .get("tool")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return bad(
            era,
            "Missing argument \"tool\": the name of the tool to run on each node.",
        );
    };
    if tool == config.name {
        return bad(era, "A fan-out cannot run the fan-out tool itself.");
    }
    let catalog = gw.catalog();
    let Some(served) = catalog.get(tool) else {
        return bad(
            era,
            &format!(
                "Unknown tool \"{}\".",
                tool.chars().take(128).collect::<String>()
            ),
        );
    };
    let inner = match args.get("arguments") {
        None => Map::new(),
        Some(Value::Object(m)) if !m.contains_key(NODE_PARAM) => m.clone(),
        Some(Value::Object(_)) => {
            return bad(
                era,
                "\"arguments\" must not contain \"node\": the target says which nodes.",
            );
        }
        Some(_) => return bad(era, "\"arguments\" must be an object."),
    };
    let Some(target) = args.get("target") else {
        return bad(
            era,
            "Missing argument \"target\": \"all\", {\"nodes\": [...]}, {\"glob\": \"...\"} or {\"zone\": \"...\"}.",
        );
    };
    let nodes = gw.discovery().nodes();
    let caller = caller_of(&call);
    let policy = gw.policy().current();
    let grants = policy.grants(&caller);
    // The fan-out tool itself is a tool like any other for the policy.
    let own = ToolFacts {
        name: &config.name,
        read_only: false,
    };
    if !grants.may_see(own) {
        let text = match grants.check(&caller.subject, own, "") {
            Err(denial) => denial.0,
            Ok(()) => format!("You may not call {}.", config.name),
        };
        return (
            CallOutcome::Denied,
            Ok(Bytes::from(
                serde_json::to_vec(&mcp::tool_result(era, &text, None, true)).unwrap_or_default(),
            )),
        );
    }
    let facts = ToolFacts {
        name: tool,
        read_only: served.read_only,
    };
    let may_call = |node: &str| grants.check(&caller.subject, facts, node).is_ok();
    let (targets, hidden) = match resolve(target, &nodes, &may_call) {
        Ok(t) => t,
        Err(e) => return bad(era, &e),
    };
    drop(grants);
    drop(policy);
    if targets.is_empty() {
        return bad(
            era,
            &format!(
                "No ready node you may call {tool} on matches the target{}.",
                if hidden > 0 {
                    format!(" ({hidden} matching nodes are outside your policy)")
                } else {
                    String::new()
                }
            ),
        );
    }
    if targets.len() > config.max_nodes {
        return bad(
            era,
            &format!(
                "The target names {} nodes; one fan-out may target at most {} (FANOUT_MAX_NODES). Narrow it with a glob or a zone.",
                targets.len(),
                config.max_nodes
            ),
        );
    }
    let total = targets.len();
    let deadline = Instant::now() + config.deadline;
    let group = call.cancel.child_token();
    let progress = call.progress.clone();
    let mut done = 0usize;
    let mut results: Vec<NodeResult> = Vec::with_capacity(total);
    let mut stream = futures_util::stream::iter(targets.into_iter().map(|node| {
        let mut arguments = Map::with_capacity(inner.len() + 1);
        arguments.insert(NODE_PARAM.into(), node.clone().into());
        arguments.extend(inner.clone());
        let mut params = Map::new();
        params.insert("name".into(), tool.into());
        params.insert("arguments".into(), Value::Object(arguments));
        let sub = ToolCall {
            id: call.id.clone(),
            version: call.version,
            name: tool.to_string(),
            params,
            progress: None,
            cancel: group.child_token(),
            extensions: call.extensions.clone(),
            // Many nodes cannot sensibly ask one client questions: they are refused.
            outbound: mcp_protocol::server::Outbound::detached(call.version),
        };
        let gw = gw.clone();
        let node_timeout = config.node_timeout;
        async move { run_node(&gw, sub, node, node_timeout, deadline).await }
    }))
    .buffer_unordered(config.concurrency);
    while let Some(r) = stream.next().await {
        done += 1;
        if let Some(p) = &progress {
            p.progress(
                done as f64,
                Some(total as f64),
                Some(&format!("{}: {}", r.node, r.status.label())),
            );
        }
        results.push(r);
    }
    if call.cancel.is_cancelled() {
        return (
            CallOutcome::Cancelled,
            Err(ErrorObject::new(
                jsonrpc::REQUEST_CANCELLED,
                "request cancelled",
            )),
        );
    }
    results.sort_by(|a, b| a.node.cmp(&b.node));
    (CallOutcome::Ok, Ok(render(era, tool, &results, hidden)))
}

/// One node's call through the gateway's ordinary path, within its time.
async fn run_node(
    gw: &Arc<Gateway>,
    sub: ToolCall,
    node: String,
    node_timeout: Duration,
    deadline: Instant,
) -> NodeResult {
    let started = Instant::now();
    let mut r = run_node_untimed(gw, sub, node, node_timeout, deadline).await;
    r.ms = started.elapsed().as_secs_f64() * 1000.0;
    r
}

async fn run_node_untimed(
    gw: &Arc<Gateway>,
    sub: ToolCall,
    node: String,
    node_timeout: Duration,
    deadline: Instant,
) -> NodeResult {
    let timed_out = |node: String, why: String| NodeResult {
        ms: 0.0,
        line: format!("{node}: timed out ({why})"),
        node,
        status: Status::TimedOut,
        result: None,
        error: Some(why),
    };
    let now = Instant::now();
    if now >= deadline {
        return timed_out(
            node,
            "the fan-out deadline passed before this node's turn".into(),
        );
    }
    if sub.cancel.is_cancelled() {
        return timed_out(node, "cancelled".into());
    }
    let limit = node_timeout.min(deadline - now);
    let cancel = sub.cancel.clone();
    let mut fut = gw.call(sub);
    let answer = tokio::select! {
        a = &mut fut => a,
        _ = tokio::time::sleep(limit) => {
            // Cancel the node call (the backend gets notifications/cancelled) and give
            // it a moment to wind down.
            cancel.cancel();
            let _ = tokio::time::timeout(WIND_DOWN, fut).await;
            return timed_out(node, format!("no answer within {} s", limit.as_secs_f64().ceil() as u64));
        }
    };
    match answer {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let is_error = v.get("isError") == Some(&Value::Bool(true));
            let text = first_text(&v);
            let result = v
                .get("structuredContent")
                .or_else(|| v.get("content"))
                .cloned();
            if is_error {
                NodeResult {
                    ms: 0.0,
                    line: format!("{node}: failed: {}", clip(&text)),
                    node,
                    status: Status::Failed,
                    result: None,
                    error: Some(text),
                }
            } else {
                NodeResult {
                    ms: 0.0,
                    line: format!("{node}: ok: {}", clip(&text)),
                    node,
                    status: Status::Ok,
                    result,
                    error: None,
                }
            }
        }
        Err(e) => NodeResult {
            ms: 0.0,
            line: format!("{node}: failed: {}", clip(&e.message)),
            node,
            status: Status::Failed,
            result: None,
            error: Some(e.message),
        },
    }
}

/// The text of the first text content block, or "".
fn first_text(result: &Value) -> String {
    result
        .get("content")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find_map(|b| b.get("text").and_then(Value::as_str)))
        .unwrap_or("")
        .to_string()
}

/// One line of at most [`TEXT_PER_NODE`] characters.
fn clip(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::gateway::clip_chars(&one_line, TEXT_PER_NODE)
}

/// The fan-out's result: structuredContent keyed by node, a summary and a text.
fn render(era: Era, tool: &str, results: &[NodeResult], hidden: usize) -> Bytes {
    let count = |s| results.iter().filter(|r| r.status == s).count();
    let (ok, failed, timed_out) = (
        count(Status::Ok),
        count(Status::Failed),
        count(Status::TimedOut),
    );
    let mut map = Map::with_capacity(results.len());
    for r in results {
        let mut e = Map::new();
        e.insert("status".into(), r.status.label().into());
        if let Some(v) = &r.result {
            e.insert("result".into(), v.clone());
        }
        if let Some(err) = &r.error {
            e.insert("error".into(), err.clone().into());
        }
        e.insert("durationMs".into(), json!((r.ms * 1000.0).round() / 1000.0));
        map.insert(r.node.clone(), Value::Object(e));
    }
    let structured = json!({
        "tool": tool,
        "summary": {"nodes": results.len(), "ok": ok, "failed": failed, "timedOut": timed_out},
        "results": map,
    });
    let mut text = format!(
        "{tool} on {} nodes: {ok} ok, {failed} failed, {timed_out} timed out.",
        results.len()
    );
    if hidden > 0 {
        text.push_str(&format!(" {hidden} matching nodes were left out: your policy does not let you call {tool} there."));
    }
    for r in results.iter().take(TEXT_NODES) {
        text.push('\n');
        text.push_str(&r.line);
    }
    if results.len() > TEXT_NODES {
        text.push_str(&format!(
            "\n… and {} more nodes (every node's answer is in structuredContent).",
            results.len() - TEXT_NODES
        ));
    }
    Bytes::from(
        serde_json::to_vec(&mcp::tool_result(era, &text, Some(structured), ok == 0))
            .unwrap_or_default(),
    )
}

/// Who is calling: the authenticated caller in the request's extensions, else anonymous.
pub(crate) fn caller_of(call: &ToolCall) -> Arc<Caller> {
    call.extensions
        .get::<Arc<Caller>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(Caller::anonymous()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeEndpoint;

    fn map() -> NodeMap {
        NodeMap::from_endpoints((1..=6).map(|i| NodeEndpoint {
            node: format!("w-{i}"),
            ip: format!("10.0.0.{i}").parse().unwrap(),
            ready: i != 6,
            pod: None,
            zone: Some(if i % 2 == 0 {
                "even".into()
            } else {
                "odd".into()
            }),
            terminating: false,
        }))
    }

    #[test]
    fn targets_resolve_to_ready_permitted_nodes_in_order() {
        let m = map();
        let all = |_: &str| true;
        assert_eq!(
            resolve(&json!("all"), &m, &all).unwrap().0,
            ["w-1", "w-2", "w-3", "w-4", "w-5"]
        );
        assert_eq!(
            resolve(&json!({"zone": "even"}), &m, &all).unwrap().0,
            ["w-2", "w-4"]
        );
        assert_eq!(
            resolve(&json!({"glob": "w-[0-9]"}), &m, &all).unwrap().0,
            Vec::<String>::new()
        );
        assert_eq!(
            resolve(&json!({"glob": "w-?"}), &m, &all).unwrap().0.len(),
            5
        );
        let list = resolve(&json!({"nodes": ["zz", "w-6", "w-1", "w-1"]}), &m, &all).unwrap();
        assert_eq!(
            list.0,
            ["w-1", "w-6", "zz"],
            "lists are taken as given, once each"
        );
        let odd_only = |n: &str| n != "w-3";
        assert_eq!(
            resolve(&json!({"zone": "odd"}), &m, &odd_only).unwrap(),
            (vec!["w-1".into(), "w-5".into()], 1)
        );
        for bad in [
            json!("some"),
            json!({}),
            json!({"nodes": []}),
            json!({"nodes": [1]}),
            json!({"glob": "a", "zone": "b"}),
            json!(3),
        ] {
            assert!(resolve(&bad, &m, &all).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_answer_is_keyed_by_node_and_an_error_only_when_nothing_worked() {
        let r = |node: &str, status, line: &str| NodeResult {
            ms: 0.0,
            node: node.into(),
            status,
            result: (status == Status::Ok).then(|| json!({"x": 1})),
            error: (status != Status::Ok).then(|| "boom".into()),
            line: line.into(),
        };
        let bytes = render(
            Era::Modern,
            "t",
            &[
                r("a", Status::Ok, "a: ok"),
                r("b", Status::TimedOut, "b: timed out"),
            ],
            0,
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_ne!(v["isError"], true);
        assert_eq!(
            v["structuredContent"]["summary"],
            json!({"nodes": 2, "ok": 1, "failed": 0, "timedOut": 1})
        );
        assert_eq!(
            v["structuredContent"]["results"]["a"],
            json!({"status": "ok", "result": {"x": 1}, "durationMs": 0.0})
        );
        assert_eq!(
            v["structuredContent"]["results"]["b"]["status"],
            "timed_out"
        );
        let many: Vec<NodeResult> = (0..200)
            .map(|i| r(&format!("n{i:03}"), Status::Failed, "x"))
            .collect();
        let v: Value = serde_json::from_slice(&render(Era::Legacy, "t", &many, 0)).unwrap();
        assert_eq!(v["isError"], true);
        let text = v["content"][0]["text"].as_str().unwrap();
        assert_eq!(text.lines().count(), 1 + TEXT_NODES + 1, "{text}");
        assert!(
            text.ends_with("… and 150 more nodes (every node's answer is in structuredContent).")
        );
        assert_eq!(clip(&"é".repeat(500)).chars().count(), TEXT_PER_NODE + 1);
    }

    #[test]
    fn the_definition_is_precise() {
        let c = FanoutConfig {
            name: "fan_out".into(),
            concurrency: 4,
            node_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(9),
            max_nodes: 7,
        };
        let d = definition(&c);
        assert_eq!(d["inputSchema"]["additionalProperties"], false);
        assert_eq!(
            d["inputSchema"]["properties"]["target"]["oneOf"][1]["properties"]["nodes"]["maxItems"],
            7
        );
        assert_eq!(
            d["outputSchema"]["required"],
            json!(["tool", "summary", "results"])
        );
    }
}
