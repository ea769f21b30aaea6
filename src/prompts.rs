//! Prompts per node: every backend prompt is served with one extra required first
//! argument, `node`, as tools are, and `prompts/get` is routed to the pod on that
//! node (the `node` argument taken out), so the same prompt can be filled in on any
//! node.
//!
//! `prompts/list` serves the union of what one ready pod of each build lists
//! ([`crate::lists::PodLists`]) on one page; the first definition of a name wins. A
//! cursor is refused: there is one page.

use bytes::Bytes;
use mcp_protocol::client::RequestOptions;
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{Era, method};
use mcp_protocol::server::ClientRequest;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::net::IpAddr;

use crate::gateway::Gateway;

/// The argument every served prompt gains, first.
pub const NODE_ARGUMENT: &str = "node";

/// The prompts of the backends.
#[derive(Default)]
pub struct Prompts {
    lists: crate::lists::PodLists,
}

impl Prompts {
    /// Forgets the cached lists, so the next list request asks the pods again.
    pub fn forget(&self) {
        self.lists.forget();
    }

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
        let per_pod = self
            .lists
            .of_builds(gw, method::PROMPTS_LIST, "prompts")
            .await;
        let mut seen = HashSet::new();
        let mut prompts = Vec::new();
        for (_, list) in per_pod {
            for p in list.iter() {
                if let Some(name) = p.get("name").and_then(Value::as_str)
                    && seen.insert(name.to_string())
                {
                    prompts.push(with_node_argument(p));
                }
            }
        }
        prompts.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(crate::lists::list_result(era, "prompts", prompts, None))
    }
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
/// its notifications to the client and its questions (elicitation, sampling, roots)
/// to the client (a legacy client gets them on its request's stream, a 2026-07-28
/// backend's `input_required` included; one that cannot answer has them refused at
/// once), and reshapes the answer for the client's era.
pub async fn forward(
    gw: &Gateway,
    ip: IpAddr,
    method_name: &str,
    mut params: Map<String, Value>,
    request: &ClientRequest,
) -> Result<Bytes, ErrorObject> {
    crate::upstream::prepare(&mut params, &request.outbound);
    let client = gw.upstreams().client(ip);
    let era = request.outbound.version().era();
    for _ in 0..crate::relay::MAX_INPUT_ROUNDS {
        let outbound = request.outbound.clone();
        let mut relay = move |note: Bytes| outbound.relay(note);
        let target = (ip, method_name);
        let raw = ask_once(gw, &client, target, params.clone(), request, &mut relay).await?;
        let backend_era = client.connection().map(|c| c.version.era());
        if backend_era == Some(era) {
            return Ok(Bytes::copy_from_slice(raw.get().as_bytes()));
        }
        // A 2026-07-28 backend's questions for a legacy client: asked on the
        // client's stream, then the request is sent again with the answers.
        let Some((requests, state)) = (era == Era::Legacy)
            .then(|| crate::relay::input_required(raw.get()))
            .flatten()
        else {
            return Ok(crate::gateway::convert_result(raw.get(), era));
        };
        let responses =
            crate::relay::ask_all(&request.outbound, requests, gw.call_timeout()).await?;
        params.insert("inputResponses".into(), Value::Object(responses));
        match state {
            Some(s) => params.insert("requestState".into(), s.into()),
            None => params.shift_remove("requestState"),
        };
    }
    Err(ErrorObject::internal(format!(
        "the backend asked for input more than {} times",
        crate::relay::MAX_INPUT_ROUNDS
    )))
}

/// One request to the pod at `ip` (`params` ready to send), its notifications
/// passed to `on_note` and its questions asked of the client, within the call
/// deadline and the client's cancellation: the backend's raw result. One round of
/// [`forward`].
pub(crate) async fn ask_once(
    gw: &Gateway,
    client: &mcp_protocol::client::McpClient,
    (ip, method_name): (IpAddr, &str),
    params: Map<String, Value>,
    request: &ClientRequest,
    on_note: &mut (dyn FnMut(Bytes) + Send),
) -> Result<Box<serde_json::value::RawValue>, ErrorObject> {
    let ask = crate::relay::asker(request.outbound.clone(), gw.call_timeout());
    let opts = RequestOptions {
        on_notification: Some(on_note),
        timeout: Some(gw.call_timeout()),
        on_request: Some(&ask),
        ..Default::default()
    };
    let reply = tokio::select! {
        r = client.request(method_name, params, opts) => r,
        _ = request.cancel.cancelled() => {
            return Err(ErrorObject::new(jsonrpc::REQUEST_CANCELLED, "request cancelled"));
        }
    };
    match reply {
        Ok(r) => r,
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
