//! The node-map tool: which nodes there are and what each one runs.
//!
//! A model asked about "the cluster" first needs its shape: the node names to target,
//! which ones are ready, shutting down, in which zone, and which backend build each
//! pod serves (so it knows where a tool exists during a rollout). This tool
//! (NODES_TOOL_NAME, `list_nodes` by default) answers from the in-memory node map and
//! the catalog's build table, never from the Kubernetes API; filters by name glob,
//! state and zone; pages through big clusters with an opaque cursor.
//!
//! The caller's node policy applies: a node is listed only when the caller may call
//! at least one of the served backend tools on it (so the map never shows a caller
//! nodes it could not use, nor tells it how many there are).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use mcp_protocol::jsonrpc::ErrorObject;
use mcp_protocol::mcp::{self, Era};
use mcp_protocol::server::ToolCall;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::cluster::NodeEndpoint;
use crate::fanout::GATEWAY_TOOL_META;
use crate::gateway::{Gateway, MAX_NODE_NAME_BYTES};
use crate::metrics::CallOutcome;
use crate::policy::{Glob, ToolFacts};

/// Nodes per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 200;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// The served definition of the node-map tool.
pub fn definition(name: &str) -> Value {
    let short = json!({"type": "string", "minLength": 1, "maxLength": MAX_NODE_NAME_BYTES});
    json!({
        "name": name,
        "title": "List the cluster's nodes",
        "description": "Lists the Kubernetes nodes the other tools can run on: name, state (ready, terminating), zone, \
            the node server's pod name and IP, and its build (server name and version, how many tools it serves). \
            Filter by a name glob (`*`, `?`), a state or a zone; pass `cursor` from `nextCursor` for the next page.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "glob": short.clone(),
                "state": {"type": "string", "enum": ["any", "ready", "not_ready", "terminating"], "default": "any"},
                "zone": short,
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                "cursor": {"type": "string", "maxLength": 512}
            },
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "total": {"type": "integer", "minimum": 0, "description": "Nodes matching the filters (all pages)."},
                "nodes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "ready": {"type": "boolean"},
                            "terminating": {"type": "boolean"},
                            "zone": {"type": ["string", "null"]},
                            "pod": {"type": ["string", "null"]},
                            "ip": {"type": "string"},
                            "build": {
                                "type": ["object", "null"],
                                "properties": {
                                    "digest": {"type": "string"},
                                    "server": {"type": "string"},
                                    "tools": {"type": "integer", "minimum": 0}
                                }
                            }
                        },
                        "required": ["name", "ready", "terminating", "zone", "pod", "ip", "build"]
                    }
                },
                "nextCursor": {"type": "string"}
            },
            "required": ["total", "nodes"]
        },
        "annotations": {"title": "List the cluster's nodes", "readOnlyHint": true, "openWorldHint": false},
        "_meta": {GATEWAY_TOOL_META: true}
    })
}

fn refuse(era: Era, text: &str) -> (CallOutcome, Result<Bytes, ErrorObject>) {
    (
        CallOutcome::BadArguments,
        Ok(Bytes::from(
            serde_json::to_vec(&mcp::tool_result(era, text, None, true)).unwrap_or_default(),
        )),
    )
}

/// Answers a node-map call.
pub fn run(gw: &Arc<Gateway>, call: &ToolCall) -> (CallOutcome, Result<Bytes, ErrorObject>) {
    let era = call.version.era();
    let args = call.arguments().cloned().unwrap_or_default();
    if let Some(k) = args
        .keys()
        .find(|k| !matches!(k.as_str(), "glob" | "state" | "zone" | "limit" | "cursor"))
    {
        return refuse(
            era,
            &format!("Unknown argument \"{k}\": glob, state, zone, limit and cursor are accepted."),
        );
    }
    let text_arg = |k: &str| match args.get(k) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NODE_NAME_BYTES => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(format!(
            "\"{k}\" must be a string of 1-{MAX_NODE_NAME_BYTES} characters."
        )),
    };
    let (glob, zone) = match (text_arg("glob"), text_arg("zone")) {
        (Ok(g), Ok(z)) => (g.map(|g| Glob::new(&g)), z),
        (Err(e), _) | (_, Err(e)) => return refuse(era, &e),
    };
    let state = match args.get("state") {
        None => "any",
        Some(Value::String(s))
            if matches!(s.as_str(), "any" | "ready" | "not_ready" | "terminating") =>
        {
            s.as_str()
        }
        Some(_) => {
            return refuse(
                era,
                "\"state\" must be one of any, ready, not_ready, terminating.",
            );
        }
    };
    let limit = match args.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            _ => return refuse(era, &format!("\"limit\" must be an integer 1-{MAX_LIMIT}.")),
        },
    };
    let after = match args.get("cursor") {
        None => None,
        Some(Value::String(c)) => match URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(name) => Some(name),
            None => {
                return refuse(
                    era,
                    "Unknown cursor: pass `nextCursor` from an earlier answer.",
                );
            }
        },
        Some(_) => return refuse(era, "\"cursor\" must be a string."),
    };
    let nodes = gw.discovery().nodes();
    let catalog = gw.catalog();
    let availability = catalog.availability();
    let caller = crate::fanout::caller_of(call);
    let policy = gw.policy().current();
    let grants = policy.grants(&caller);
    // The backend tools this caller may call somewhere; a node is shown when one of
    // them may be called on it.
    let callable: Vec<ToolFacts> = if grants.sees_everything() {
        Vec::new()
    } else {
        catalog
            .backend_names()
            .filter_map(|name| {
                let facts = ToolFacts {
                    name,
                    read_only: catalog.get(name).is_some_and(|t| t.read_only),
                };
                grants.may_see(facts).then_some(facts)
            })
            .collect()
    };
    let may_use = |node: &str| {
        grants.sees_everything()
            || callable
                .iter()
                .any(|t| grants.check(&caller.subject, *t, node).is_ok())
    };
    let matches = |e: &&NodeEndpoint| {
        may_use(&e.node)
            && glob.as_ref().is_none_or(|g| g.matches(&e.node))
            && zone.as_ref().is_none_or(|z| e.zone.as_ref() == Some(z))
            && match state {
                "ready" => e.ready,
                "not_ready" => !e.ready,
                "terminating" => e.terminating,
                _ => true,
            }
    };
    let matching: Vec<&NodeEndpoint> = nodes.iter().filter(matches).collect();
    let total = matching.len();
    let page: Vec<&NodeEndpoint> = matching
        .iter()
        .filter(|e| after.as_ref().is_none_or(|a| e.node.as_str() > a.as_str()))
        .take(limit + 1)
        .copied()
        .collect();
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let mut lines = vec![format!(
        "{total} nodes match{}.",
        if more {
            format!("; showing {}", page.len())
        } else {
            String::new()
        }
    )];
    let entries: Vec<Value> = page
        .iter()
        .map(|e| {
            let build = availability.pod_build(e.ip);
            lines.push(format!(
                "{}: {}{}, zone {}, pod {} ({}), {}",
                e.node,
                if e.ready { "ready" } else { "not ready" },
                if e.terminating { ", terminating" } else { "" },
                e.zone.as_deref().unwrap_or("-"),
                e.pod.as_deref().unwrap_or("-"),
                e.ip,
                match &build {
                    Some((_, server, tools)) => format!("{server}, {tools} tools"),
                    None => "build not known yet".into(),
                }
            ));
            json!({
                "name": e.node,
                "ready": e.ready,
                "terminating": e.terminating,
                "zone": e.zone,
                "pod": e.pod,
                "ip": e.ip.to_string(),
                "build": build.map(|(digest, server, tools)| json!({"digest": digest, "server": server, "tools": tools})),
            })
        })
        .collect();
    let mut structured = json!({"total": total, "nodes": entries});
    if more && let Some(last) = page.last() {
        let cursor = URL_SAFE_NO_PAD.encode(last.node.as_bytes());
        lines.push(format!("More: call again with cursor \"{cursor}\"."));
        structured["nextCursor"] = cursor.into();
    }
    (
        CallOutcome::Ok,
        Ok(Bytes::from(
            serde_json::to_vec(&mcp::tool_result(
                era,
                &lines.join("\n"),
                Some(structured),
                false,
            ))
            .unwrap_or_default(),
        )),
    )
}
