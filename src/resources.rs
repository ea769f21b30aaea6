//! Resources per node. Every backend resource is served once per ready node, under
//! a URI that wraps the backend's URI with the node:
//!
//! `k8s-node://{node}/{backend URI, percent-encoded}`
//!
//! e.g. `file:///etc/os-release` on node `worker-1` is
//! `k8s-node://worker-1/file%3A%2F%2F%2Fetc%2Fos-release`. Every byte of the backend
//! URI but the RFC 3986 unreserved characters is encoded (upper-case hex), so the
//! backend URI comes back exactly when the gateway decodes it, and `resources/read`
//! is routed by the node in the URI. A resource template becomes
//! `k8s-node://{node}/` + the encoded template with its `{...}` expressions kept,
//! so a client expands `node` like any other variable.
//!
//! `resources/list` lists every backend resource on every ready node (the resources
//! of each pod's build, [`crate::lists::PodLists`]), nodes in name order,
//! [`PAGE_SIZE`] per page; `resources/templates/list` lists each template once.

use bytes::Bytes;
use mcp_protocol::jsonrpc::ErrorObject;
use mcp_protocol::mcp::Era;
use mcp_protocol::server::ClientRequest;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::gateway::Gateway;

/// What every served resource URI starts with.
pub const SCHEME: &str = "k8s-node://";

/// Resources per `resources/list` page.
pub const PAGE_SIZE: usize = 100;

/// Methods this module serves.
pub const LIST: &str = "resources/list";
/// List the resource templates.
pub const TEMPLATES_LIST: &str = "resources/templates/list";
/// Read one resource.
pub const READ: &str = "resources/read";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The served URI of backend resource `uri` on `node`.
pub fn wrap(node: &str, uri: &str) -> String {
    let mut out = format!("{SCHEME}{node}/");
    encode_into(&mut out, uri);
    out
}

/// The served template of a backend URI template: `{node}` first, the template's
/// own `{...}` expressions kept.
pub fn wrap_template(template: &str) -> String {
    let mut out = format!("{SCHEME}{{node}}/");
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        encode_into(&mut out, &rest[..open]);
        out.push_str(&rest[open..open + close + 1]);
        rest = &rest[open + close + 1..];
    }
    encode_into(&mut out, rest);
    out
}

/// Node and backend URI of a served URI (None when it is not one).
pub fn unwrap(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix(SCHEME)?;
    let (node, encoded) = rest.split_once('/')?;
    if node.is_empty() {
        return None;
    }
    Some((node.to_string(), decode(encoded)?))
}

/// The backend template of a served template (None when it is not one).
pub fn unwrap_template(template: &str) -> Option<String> {
    let encoded = template.strip_prefix(SCHEME)?.strip_prefix("{node}/")?;
    decode(encoded)
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The resources of the backends.
#[derive(Default)]
pub struct Resources {
    lists: crate::lists::PodLists,
}

/// A cursor: the index of the next node and of the next resource on it.
fn parse_cursor(cursor: Option<&str>) -> Result<(usize, usize), ErrorObject> {
    let Some(c) = cursor else {
        return Ok((0, 0));
    };
    c.split_once(':')
        .and_then(|(n, r)| Some((n.parse().ok()?, r.parse().ok()?)))
        .ok_or_else(|| {
            ErrorObject::invalid_params(format!(
                "unknown cursor {:?}: pass back a nextCursor of resources/list",
                crate::gateway::clip_chars(c, 64)
            ))
        })
}

impl Resources {
    /// Forgets the cached lists, so the next list request asks the pods again.
    pub fn forget(&self) {
        self.lists.forget();
    }

    /// `resources/list`: one page of every resource on every ready node.
    pub async fn list(
        &self,
        gw: &Gateway,
        era: Era,
        cursor: Option<&str>,
    ) -> Result<Bytes, ErrorObject> {
        let (mut node_at, mut res_at) = parse_cursor(cursor)?;
        let per_build = self.per_build(gw, LIST, "resources").await;
        let catalog = gw.catalog();
        let nodes = gw.discovery().nodes();
        let mut ready: Vec<_> = nodes.ready().collect();
        ready.sort_by(|a, b| a.node.cmp(&b.node));
        let mut page = Vec::new();
        while node_at < ready.len() {
            let e = ready[node_at];
            let build = catalog.availability().pod_build(e.ip).map(|b| b.0);
            let list = match build.and_then(|b| per_build.get(b).cloned()) {
                Some(l) => l,
                None => self.lists.of_pod(gw, e.ip, LIST, "resources").await,
            };
            while res_at < list.len() {
                if page.len() == PAGE_SIZE {
                    return Ok(crate::lists::list_result(
                        era,
                        "resources",
                        page,
                        Some(format!("{node_at}:{res_at}")),
                    ));
                }
                let mut r = list[res_at].clone();
                if let Some(uri) = r.get("uri").and_then(Value::as_str) {
                    r["uri"] = wrap(&e.node, uri).into();
                    page.push(r);
                }
                res_at += 1;
            }
            node_at += 1;
            res_at = 0;
        }
        Ok(crate::lists::list_result(era, "resources", page, None))
    }

    /// `resources/templates/list`: each backend template once, `{node}` first.
    pub async fn templates(
        &self,
        gw: &Gateway,
        era: Era,
        cursor: Option<&str>,
    ) -> Result<Bytes, ErrorObject> {
        if cursor.is_some() {
            return Err(ErrorObject::invalid_params(
                "unknown cursor: the gateway lists all resource templates on one page",
            ));
        }
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for (_, list) in self
            .lists
            .of_builds(gw, TEMPLATES_LIST, "resourceTemplates")
            .await
        {
            for t in list.iter() {
                if let Some(tpl) = t.get("uriTemplate").and_then(Value::as_str)
                    && seen.insert(tpl.to_string())
                {
                    let mut t = t.clone();
                    t["uriTemplate"] = wrap_template(tpl).into();
                    items.push(t);
                }
            }
        }
        Ok(crate::lists::list_result(
            era,
            "resourceTemplates",
            items,
            None,
        ))
    }

    /// The lists of one pod per build, by build digest.
    async fn per_build(
        &self,
        gw: &Gateway,
        method: &'static str,
        key: &'static str,
    ) -> HashMap<String, Arc<Vec<Value>>> {
        let catalog = gw.catalog();
        self.lists
            .of_builds(gw, method, key)
            .await
            .into_iter()
            .filter_map(|(ip, l)| Some((catalog.availability().pod_build(ip)?.0.to_owned(), l)))
            .collect()
    }
}

/// `resources/read`: routed by the node in the URI; the contents' URIs wrapped again.
pub async fn read(gw: &Gateway, request: ClientRequest) -> Result<Bytes, ErrorObject> {
    let uri = request
        .params
        .get("uri")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some((node, backend_uri)) = unwrap(uri) else {
        return Err(ErrorObject::invalid_params(format!(
            "resources/read needs a URI of the form {SCHEME}<node>/<resource URI, percent-encoded> (as resources/list gives), not {:?}",
            crate::gateway::clip_chars(uri, 128)
        )));
    };
    let ip = crate::prompts::node_ip(gw, Some(&node))?;
    let mut params = request.params.clone();
    params.insert("uri".into(), backend_uri.into());
    let answer = crate::prompts::forward(gw, ip, READ, params, &request).await?;
    let mut v: Value = serde_json::from_slice(&answer).map_err(ErrorObject::internal)?;
    if let Some(Value::Array(contents)) = v.get_mut("contents") {
        for c in contents {
            if let Some(u) = c.get("uri").and_then(Value::as_str) {
                c["uri"] = wrap(&node, u).into();
            }
        }
    }
    if request.outbound.version().era() == Era::Modern
        && let Value::Object(m) = &mut v
    {
        // A legacy backend says nothing about caching: stale at once, this caller only.
        m.entry("ttlMs").or_insert(0.into());
        m.entry("cacheScope").or_insert("private".into());
    }
    Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_exactly() {
        for uri in [
            "file:///etc/os-release",
            "node://info",
            "https://x.example/a?b=c&d=%2F#frag",
            "weird:ü/ spaces/{x}",
            "",
        ] {
            let served = wrap("worker-1", uri);
            assert!(served.starts_with("k8s-node://worker-1/"), "{served}");
            assert_eq!(unwrap(&served), Some(("worker-1".into(), uri.to_string())));
            assert_eq!(wrap("worker-1", &unwrap(&served).unwrap().1), served);
        }
        assert_eq!(
            wrap("n1", "file:///etc/os-release"),
            "k8s-node://n1/file%3A%2F%2F%2Fetc%2Fos-release"
        );
        assert!(unwrap("file:///x").is_none());
        assert!(unwrap("k8s-node:///x").is_none());
        assert!(unwrap("k8s-node://n1/%zz").is_none());
    }

    #[test]
    fn templates_keep_their_expressions_and_gain_node() {
        let t = wrap_template("node://logs/{name}");
        assert_eq!(t, "k8s-node://{node}/node%3A%2F%2Flogs%2F{name}");
        assert_eq!(unwrap_template(&t).as_deref(), Some("node://logs/{name}"));
        // Expanded by a client, it reads the backend's expansion.
        let expanded = t.replace("{node}", "n1").replace("{name}", "syslog");
        assert_eq!(
            unwrap(&expanded),
            Some(("n1".into(), "node://logs/syslog".into()))
        );
    }

    #[test]
    fn cursors_are_checked() {
        assert_eq!(parse_cursor(None).unwrap(), (0, 0));
        assert_eq!(parse_cursor(Some("3:7")).unwrap(), (3, 7));
        assert!(parse_cursor(Some("x")).is_err());
    }
}
