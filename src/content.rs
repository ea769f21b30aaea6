//! The gateway's answers beyond tools: which methods it serves for prompts, resources,
//! completion and tasks ([`handles`]), the policy gate in front of them, and the dispatch
//! to [`crate::prompts`], [`crate::resources`] and [`crate::completion`].

use bytes::Bytes;
use mcp_protocol::jsonrpc::ErrorObject;
use mcp_protocol::mcp::method;
use mcp_protocol::server::ClientRequest;
use serde_json::Value;
use std::sync::Arc;

use crate::auth::Caller;
use crate::catalog::NODE_PARAM;
use crate::gateway::{Gateway, clip_chars};
use crate::policy::ToolFacts;

/// Whether the gateway serves `method_name` here.
pub fn handles(method_name: &str) -> bool {
    matches!(
        method_name,
        method::PROMPTS_LIST
            | method::PROMPTS_GET
            | method::COMPLETE
            | crate::resources::LIST
            | crate::resources::TEMPLATES_LIST
            | crate::resources::READ
            | crate::subscriptions::SUBSCRIBE
            | crate::subscriptions::UNSUBSCRIBE
    ) || mcp_protocol::tasks::is_task_method(method_name)
}

/// Answers one request [`handles`] names, after the policy gate.
pub async fn handle(gw: &Gateway, request: ClientRequest) -> Result<Bytes, ErrorObject> {
    if mcp_protocol::tasks::is_task_method(&request.method) {
        // A task id is bound to the caller whose (authorized) call started it.
        return crate::tasks::handle(gw, request).await;
    }
    may_reach(gw, &request)?;
    let era = request.outbound.version().era();
    let cursor = request.params.get("cursor").and_then(Value::as_str);
    match request.method.as_str() {
        method::PROMPTS_LIST => gw.prompts.list(gw, era, cursor).await,
        crate::resources::LIST => gw.resources.list(gw, era, cursor).await,
        crate::resources::TEMPLATES_LIST => gw.resources.templates(gw, era, cursor).await,
        method::PROMPTS_GET => crate::prompts::get(gw, request).await,
        crate::resources::READ => crate::resources::read(gw, request).await,
        method::COMPLETE => crate::completion::complete(gw, request).await,
        crate::subscriptions::SUBSCRIBE | crate::subscriptions::UNSUBSCRIBE => {
            crate::subscriptions::handle(gw, &request)
        }
        other => Err(ErrorObject::method_not_found(other)),
    }
}

/// Prompts, resources and completion reach node servers, and the policy's rules
/// name tools only: they are served to callers the policy lets see every served
/// tool, and a request routed to a node (`node` given) to callers it lets call
/// every served tool on that node (everyone without POLICY_FILE).
fn may_reach(gw: &Gateway, request: &ClientRequest) -> Result<(), ErrorObject> {
    let policy = gw.policy().current();
    let anonymous = Caller::anonymous();
    let caller = request
        .extensions
        .get::<Arc<Caller>>()
        .map_or(&anonymous, |c| c.as_ref());
    let grants = policy.grants(caller);
    if grants.sees_everything() {
        return Ok(());
    }
    let catalog = gw.catalog();
    let node = target_node(request);
    let allowed = catalog.names().iter().all(|name| {
        let Some(served) = catalog.get(name) else {
            return true;
        };
        let facts = ToolFacts {
            name,
            read_only: served.read_only,
        };
        match &node {
            Some(n) => grants.check(&caller.subject, facts, n).is_ok(),
            None => grants.may_see(facts),
        }
    });
    if allowed {
        return Ok(());
    }
    Err(ErrorObject::invalid_request(format!(
        "Not allowed: the gateway's policy does not let \"{}\" call every tool{}, and prompts, resources and completion (which reach the node servers) are served only to callers it lets do so.",
        clip_chars(&caller.subject, 128),
        node.map(|n| format!(" on node \"{}\"", clip_chars(&n, 128)))
            .unwrap_or_default()
    )))
}

/// The node a prompts / resources / completion request is routed to, if it names one.
fn target_node(request: &ClientRequest) -> Option<String> {
    let p = &request.params;
    let node = match request.method.as_str() {
        method::PROMPTS_GET => p.get("arguments").and_then(|a| a.get(NODE_PARAM)),
        method::COMPLETE => p
            .get("context")
            .and_then(|c| c.get("arguments"))
            .and_then(|a| a.get(NODE_PARAM)),
        crate::resources::READ
        | crate::subscriptions::SUBSCRIBE
        | crate::subscriptions::UNSUBSCRIBE => {
            let uri = p.get("uri").and_then(Value::as_str)?;
            return crate::resources::unwrap(uri).map(|(node, _)| node);
        }
        _ => None,
    };
    node.and_then(Value::as_str).map(str::to_owned)
}
