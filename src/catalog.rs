//! The tool catalog: the backend's tools as the gateway serves them.
//!
//! Each tool keeps its definition untouched except `inputSchema`, where a required
//! string property `node` is prepended (first property, first `required` entry); for
//! 2026-07-28 clients that property also carries `"x-mcp-header": "Node"`. The
//! serialized tools/list answers of both eras are built once per catalog, so serving
//! tools/list costs no JSON work.
//!
//! Large catalogs are served in pages of `CATALOG_PAGE_SIZE` tools ([`DEFAULT_PAGE_SIZE`]
//! by default), in the catalog's stable order, each page's answer serialized once (per
//! era, and per distinct set a caller's policy shows). A cursor is opaque to clients;
//! inside it is the position of the next tool and the name of the last one the client
//! got. After a catalog change a cursor from the old catalog still works: the list
//! goes on after that last tool where it now stands (or, if it is gone, from the same
//! position), so a client may see a tool twice or miss one that moved, never fail;
//! the change itself reaches it as `notifications/tools/list_changed` and it lists
//! again from the start. Such a resumed page, off the usual page boundaries, is the
//! one case serialized on demand. A cursor that does not decode is `-32602`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use mcp_protocol::headers::{self, ParamHeader};
use mcp_protocol::mcp::{self, Era};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::builds::Availability;

/// The parameter the gateway adds to every tool.
pub const NODE_PARAM: &str = "node";
/// Its description, worded for a model choosing where to run a tool.
pub const NODE_DESCRIPTION: &str = "The name of the Kubernetes node to target.";
/// The header 2026-07-28 clients mirror it into (`Mcp-Param-Node`).
pub const NODE_HEADER: &str = "Node";

/// Tools per tools/list page unless `CATALOG_PAGE_SIZE` says otherwise: a node server
/// has a handful of tools, so only a union of many builds (or a big server) pages.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Longest cursor accepted (the ones the gateway mints hold a number and a tool name).
const MAX_CURSOR_BYTES: usize = 512;

/// Most filtered tools/list answers kept per catalog (there is one per distinct
/// outcome of the policy, so a handful in practice; the cap only bounds memory).
pub const MAX_SUBSETS: usize = 256;

/// A filtered list's key: the era and a bit per tool (in `names` order).
type SubsetKey = (Era, Box<[u64]>);

/// One served tool.
#[derive(Debug)]
pub struct ServedTool {
    /// `Mcp-Param-*` headers a 2026-07-28 call must carry (`Node` and any the backend declared).
    pub param_headers: Arc<[ParamHeader]>,
    /// The backend says the tool only reads (`annotations.readOnlyHint: true`); the
    /// policy's built-in `read-only` set is made of these.
    pub read_only: bool,
    /// The backend lists it with 2025-11-25 `execution.taskSupport` `optional` or
    /// `required`: a 2026-07-28 caller's call may ask it for a task.
    pub legacy_tasks: bool,
}

/// A backend tool the gateway refused to serve, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The tool name (or a placeholder when it had none).
    pub name: String,
    /// Why it is not served.
    pub reason: String,
}

/// One list (every tool, or the subset a caller may see) cut into pages, each page's
/// answer serialized once.
#[derive(Debug)]
struct Pages {
    /// Indices into the catalog's `names`, in served order.
    members: Vec<usize>,
    /// The serialized answers, page by page (at least one, maybe with no tools).
    bytes: Vec<Bytes>,
}

/// The catalog in force: immutable; a new backend tool list makes a new catalog.
#[derive(Debug)]
pub struct Catalog {
    tools: HashMap<String, ServedTool>,
    /// Tool names in served order: backend tools, then the gateway's own.
    names: Vec<String>,
    /// How many of `names` are backend tools (the first ones).
    backend_count: usize,
    /// Every tool, paged: legacy and modern answers.
    pages_legacy: Pages,
    pages_modern: Pages,
    /// Tools per page.
    page_size: usize,
    /// The served definitions per era, in `names` order, to serialize filtered lists.
    defs_legacy: Vec<Value>,
    defs_modern: Vec<Value>,
    /// `read_only` per tool, in `names` order.
    read_only: Vec<bool>,
    /// Serialized tools/list answers for subsets of the tools (callers the policy shows
    /// only some tools to), one per distinct visible set and era: built on first use.
    subsets: Mutex<HashMap<SubsetKey, Arc<Pages>>>,
    ttl_ms: u64,
    /// Backend tools that could not be served.
    pub skipped: Vec<Skipped>,
    /// The backend's definitions, to tell whether a later tools/list changed anything.
    source: Vec<Value>,
    /// Which pods serve which tool as served (empty: every pod is assumed to).
    availability: Availability,
}

impl Catalog {
    /// Builds the catalog from a backend's tools/list (all pages joined).
    pub fn build(backend_tools: Vec<Value>, ttl_ms: u64) -> Catalog {
        Catalog::build_with(
            backend_tools,
            Vec::new(),
            Availability::default(),
            ttl_ms,
            DEFAULT_PAGE_SIZE,
            None,
        )
    }

    /// Builds the catalog from the union of the backend builds, plus the gateway's own
    /// tools (`gateway_tools`, served as they are, after the backend tools: a backend
    /// tool with one of their names is not served), and who serves what; tools/list
    /// in pages of `page_size` tools; with `node_enum`, the `node` parameter of every
    /// backend tool lists those node names as its `enum`.
    pub fn build_with(
        backend_tools: Vec<Value>,
        gateway_tools: Vec<Value>,
        availability: Availability,
        ttl_ms: u64,
        page_size: usize,
        node_enum: Option<&[String]>,
    ) -> Catalog {
        let page_size = page_size.max(1);
        let mut tools = HashMap::new();
        let mut names = Vec::new();
        let mut legacy_defs = Vec::new();
        let mut modern_defs = Vec::new();
        let mut skipped = Vec::new();
        for def in &backend_tools {
            let name = def
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if gateway_tools
                .iter()
                .any(|g| g.get("name").and_then(Value::as_str) == Some(&name))
            {
                skipped.push(Skipped {
                    name,
                    reason: "the gateway's own tool has this name (rename it: FANOUT_TOOL_NAME)"
                        .into(),
                });
                continue;
            }
            match serve_tool(def, node_enum) {
                Ok((legacy, modern, param_headers)) if !tools.contains_key(&name) => {
                    let read_only =
                        def.pointer("/annotations/readOnlyHint") == Some(&Value::Bool(true));
                    let legacy_tasks = matches!(
                        def.pointer("/execution/taskSupport")
                            .and_then(Value::as_str),
                        Some("optional" | "required")
                    );
                    tools.insert(
                        name.clone(),
                        ServedTool {
                            param_headers,
                            read_only,
                            legacy_tasks,
                        },
                    );
                    names.push(name);
                    legacy_defs.push(legacy);
                    modern_defs.push(modern);
                }
                Ok(_) => skipped.push(Skipped {
                    name,
                    reason: "the backend lists this name twice; the first definition is served"
                        .into(),
                }),
                Err(reason) => skipped.push(Skipped {
                    name: if name.is_empty() {
                        "<unnamed>".into()
                    } else {
                        name
                    },
                    reason,
                }),
            }
        }
        let backend_count = names.len();
        for def in &gateway_tools {
            let Some(name) = def.get("name").and_then(Value::as_str) else {
                continue;
            };
            tools.insert(
                name.to_string(),
                ServedTool {
                    param_headers: Arc::from(Vec::new()),
                    read_only: def.pointer("/annotations/readOnlyHint") == Some(&Value::Bool(true)),
                    legacy_tasks: false,
                },
            );
            names.push(name.to_string());
            legacy_defs.push(def.clone());
            modern_defs.push(def.clone());
        }
        let read_only = names
            .iter()
            .map(|n: &String| tools.get(n).is_some_and(|t: &ServedTool| t.read_only))
            .collect();
        let all: Vec<usize> = (0..names.len()).collect();
        Catalog {
            pages_legacy: paginate(
                Era::Legacy,
                &names,
                &legacy_defs,
                all.clone(),
                page_size,
                ttl_ms,
            ),
            pages_modern: paginate(Era::Modern, &names, &modern_defs, all, page_size, ttl_ms),
            page_size,
            backend_count,
            defs_legacy: legacy_defs,
            defs_modern: modern_defs,
            read_only,
            subsets: Mutex::new(HashMap::new()),
            ttl_ms,
            tools,
            names,
            skipped,
            source: backend_tools,
            availability,
        }
    }

    /// The serialized first page of the `ListToolsResult` for an era (the whole list
    /// when it fits one page).
    pub fn list_result(&self, era: Era) -> Bytes {
        self.pages(era).bytes[0].clone()
    }

    /// The page of the tools/list answer that `cursor` (none: the first) points at.
    /// `Err` is the message of a `-32602` for a cursor that does not decode.
    pub fn list_page(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, String> {
        self.page_of(era, self.pages(era), cursor)
    }

    /// The serialized first page of the `ListToolsResult` for an era with only the
    /// tools for which `visible(name, read_only)` holds.
    pub fn list_result_where(&self, era: Era, visible: impl Fn(&str, bool) -> bool) -> Bytes {
        match self.subset(era, visible) {
            Some(pages) => pages.bytes[0].clone(),
            None => self.list_result(era),
        }
    }

    /// [`Catalog::list_page`] over the tools for which `visible(name, read_only)`
    /// holds. The pages of each distinct set are built once per catalog and kept (at
    /// most [`MAX_SUBSETS`] sets).
    pub fn list_page_where(
        &self,
        era: Era,
        cursor: Option<&str>,
        visible: impl Fn(&str, bool) -> bool,
    ) -> Result<Bytes, String> {
        match self.subset(era, visible) {
            Some(pages) => self.page_of(era, &pages, cursor),
            None => self.list_page(era, cursor),
        }
    }

    fn pages(&self, era: Era) -> &Pages {
        match era {
            Era::Legacy => &self.pages_legacy,
            Era::Modern => &self.pages_modern,
        }
    }

    fn defs(&self, era: Era) -> &[Value] {
        match era {
            Era::Legacy => &self.defs_legacy,
            Era::Modern => &self.defs_modern,
        }
    }

    /// The pages of the visible subset; `None` when every tool is visible.
    fn subset(&self, era: Era, visible: impl Fn(&str, bool) -> bool) -> Option<Arc<Pages>> {
        let mut bits = vec![0u64; self.names.len().div_ceil(64)];
        let mut all = true;
        for (i, (name, ro)) in self.names.iter().zip(&self.read_only).enumerate() {
            if visible(name, *ro) {
                bits[i / 64] |= 1 << (i % 64);
            } else {
                all = false;
            }
        }
        if all {
            return None;
        }
        let key = (era, bits.into_boxed_slice());
        let mut subsets = self.subsets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = subsets.get(&key) {
            return Some(p.clone());
        }
        let members: Vec<usize> = (0..self.names.len())
            .filter(|i| key.1[i / 64] & (1 << (i % 64)) != 0)
            .collect();
        let pages = Arc::new(paginate(
            era,
            &self.names,
            self.defs(era),
            members,
            self.page_size,
            self.ttl_ms,
        ));
        if subsets.len() >= MAX_SUBSETS {
            subsets.clear();
        }
        subsets.insert(key, pages.clone());
        Some(pages)
    }

    /// The page of `pages` that `cursor` points at: a cached page, or (a cursor from
    /// an earlier catalog, off the page boundaries) one serialized now.
    fn page_of(&self, era: Era, pages: &Pages, cursor: Option<&str>) -> Result<Bytes, String> {
        let Some(cursor) = cursor else {
            return Ok(pages.bytes[0].clone());
        };
        let (offset, last) = decode_cursor(cursor)?;
        let members = &pages.members;
        let at = |i: usize| self.names[members[i]].as_str();
        let start = if offset >= 1 && offset <= members.len() && at(offset - 1) == last {
            offset
        } else if let Some(p) = (0..members.len()).find(|&i| at(i) == last) {
            p + 1
        } else {
            offset.min(members.len())
        };
        if start % self.page_size == 0
            && let Some(b) = pages.bytes.get(start / self.page_size)
        {
            return Ok(b.clone());
        }
        Ok(serialize_page(
            era,
            &self.names,
            self.defs(era),
            members,
            start,
            self.page_size,
            self.ttl_ms,
        ))
    }

    /// A served tool by name.
    pub fn get(&self, name: &str) -> Option<&ServedTool> {
        self.tools.get(name)
    }

    /// Served tool names, in served order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The backend tools' names (the gateway's own left out), in served order.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.names[..self.backend_count].iter().map(String::as_str)
    }

    /// Whether `other` serves the same tools with the same definitions, in the same
    /// order (so clients need no list_changed).
    pub fn same_tools(&self, other: &Catalog) -> bool {
        self.defs_modern == other.defs_modern
    }

    /// Whether nothing can be served.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Who serves which tool as served.
    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    /// Whether `backend_tools` would build the same catalog.
    pub fn same_source(&self, backend_tools: &[Value]) -> bool {
        self.source == backend_tools
    }
}

/// `members` (indices into `names` / `defs`) cut into pages and serialized.
fn paginate(
    era: Era,
    names: &[String],
    defs: &[Value],
    members: Vec<usize>,
    page_size: usize,
    ttl_ms: u64,
) -> Pages {
    let starts = (0..members.len().max(1)).step_by(page_size);
    let bytes = starts
        .map(|start| serialize_page(era, names, defs, &members, start, page_size, ttl_ms))
        .collect();
    Pages { members, bytes }
}

/// The answer listing `members[start..start + page_size]`, with a cursor to the rest.
fn serialize_page(
    era: Era,
    names: &[String],
    defs: &[Value],
    members: &[usize],
    start: usize,
    page_size: usize,
    ttl_ms: u64,
) -> Bytes {
    let end = start.saturating_add(page_size).min(members.len());
    let start = start.min(end);
    let chosen: Vec<Value> = members[start..end]
        .iter()
        .map(|&i| defs[i].clone())
        .collect();
    let next = (end < members.len()).then(|| encode_cursor(end, &names[members[end - 1]]));
    Bytes::from(
        serde_json::to_vec(&mcp::tools_list_result(
            era,
            &chosen,
            next.as_deref(),
            ttl_ms,
        ))
        .unwrap_or_default(),
    )
}

/// The cursor of the page starting at `offset`, after the tool named `last`.
fn encode_cursor(offset: usize, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{offset}:{last}"))
}

/// The position and last tool name inside a cursor.
fn decode_cursor(cursor: &str) -> Result<(usize, String), String> {
    let invalid = || {
        format!(
            "invalid cursor {:?}: pass nextCursor from an earlier tools/list answer",
            crate::gateway::clip_chars(cursor, 40)
        )
    };
    if cursor.len() > MAX_CURSOR_BYTES {
        return Err(invalid());
    }
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (offset, last) = text.split_once(':').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    Ok((offset, last.to_string()))
}

/// The legacy and modern definitions of one tool, and its `Mcp-Param-*` headers.
fn serve_tool(
    def: &Value,
    node_enum: Option<&[String]>,
) -> Result<(Value, Value, Arc<[ParamHeader]>), String> {
    let obj = def.as_object().ok_or("the definition is not an object")?;
    match obj.get("name") {
        Some(Value::String(n)) if !n.is_empty() => {}
        _ => return Err("the definition has no name".into()),
    }
    let schema = obj.get("inputSchema").ok_or("it has no inputSchema")?;
    let mut legacy_schema = add_node_param(schema, false)?;
    let mut modern_schema = add_node_param(schema, true)?;
    if let Some(names) = node_enum {
        for s in [&mut legacy_schema, &mut modern_schema] {
            if let Some(Value::Object(node)) = s.pointer_mut(&format!("/properties/{NODE_PARAM}")) {
                node.insert(
                    "enum".into(),
                    names.iter().map(|n| Value::from(n.as_str())).collect(),
                );
            }
        }
    }
    let param_headers = headers::param_headers(&modern_schema).map_err(|e| e.to_string())?;
    let with_schema = |s: Value| {
        let mut out = Map::with_capacity(obj.len());
        for (k, v) in obj {
            out.insert(
                k.clone(),
                if k == "inputSchema" {
                    s.clone()
                } else {
                    v.clone()
                },
            );
        }
        Value::Object(out)
    };
    Ok((
        with_schema(legacy_schema),
        with_schema(modern_schema),
        param_headers.into(),
    ))
}

/// Prepends the required `node` property to an object schema, keeping every other
/// keyword, its value and its position.
pub fn add_node_param(schema: &Value, with_header: bool) -> Result<Value, String> {
    let obj = schema
        .as_object()
        .ok_or("its inputSchema is not an object")?;
    if let Some(t) = obj.get("type")
        && t != "object"
    {
        return Err(format!("its inputSchema has type {t}, not \"object\""));
    }
    let props = match obj.get("properties") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err("its inputSchema.properties is not an object".into()),
    };
    if props.is_some_and(|p| p.contains_key(NODE_PARAM)) {
        return Err(format!(
            "it already has a parameter named \"{NODE_PARAM}\", which the gateway needs to pick the node"
        ));
    }
    let required = match obj.get("required") {
        None => None,
        Some(Value::Array(r)) => Some(r),
        Some(_) => return Err("its inputSchema.required is not an array".into()),
    };
    let mut node = json!({ "type": "string", "description": NODE_DESCRIPTION });
    if with_header && let Value::Object(m) = &mut node {
        m.insert("x-mcp-header".into(), NODE_HEADER.into());
    }
    let new_props = || {
        let mut p = Map::new();
        p.insert(NODE_PARAM.into(), node.clone());
        for (k, v) in props.into_iter().flatten() {
            p.insert(k.clone(), v.clone());
        }
        Value::Object(p)
    };
    let new_required = || {
        let mut r = vec![Value::from(NODE_PARAM)];
        r.extend(
            required
                .into_iter()
                .flatten()
                .filter(|v| *v != NODE_PARAM)
                .cloned(),
        );
        Value::Array(r)
    };
    let mut out = Map::with_capacity(obj.len() + 2);
    if !obj.contains_key("type") {
        out.insert("type".into(), "object".into());
    }
    for (k, v) in obj {
        match k.as_str() {
            "properties" => out.insert(k.clone(), new_props()),
            "required" => out.insert(k.clone(), new_required()),
            _ => out.insert(k.clone(), v.clone()),
        };
        if k == "type" && props.is_none() {
            out.insert("properties".into(), new_props());
        }
    }
    if !out.contains_key("properties") {
        out.insert("properties".into(), new_props());
    }
    if required.is_none() {
        out.insert("required".into(), new_required());
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn node_comes_first_and_everything_else_stays_in_place() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"Item": {"type": "object", "properties": {"a": {"type": "integer"}}}},
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                "mode": {"enum": ["x", "y"], "default": "x"}
            },
            "required": ["items"],
            "additionalProperties": false
        });
        let out = add_node_param(&schema, false).unwrap();
        assert_eq!(
            keys(&out),
            [
                "$schema",
                "type",
                "$defs",
                "properties",
                "required",
                "additionalProperties"
            ]
        );
        assert_eq!(keys(&out["properties"]), ["node", "items", "mode"]);
        assert_eq!(out["required"], json!(["node", "items"]));
        assert_eq!(
            out["properties"]["node"],
            json!({"type":"string","description":NODE_DESCRIPTION})
        );
        // Removing what we added gives back the original exactly.
        let mut back = out.clone();
        back["properties"]
            .as_object_mut()
            .unwrap()
            .shift_remove("node");
        back["required"].as_array_mut().unwrap().remove(0);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&schema).unwrap()
        );
        let modern = add_node_param(&schema, true).unwrap();
        assert_eq!(modern["properties"]["node"]["x-mcp-header"], "Node");
    }

    #[test]
    fn schemas_without_properties_or_required_get_them() {
        let out = add_node_param(&json!({"type": "object"}), false).unwrap();
        assert_eq!(keys(&out), ["type", "properties", "required"]);
        assert_eq!(out["required"], json!(["node"]));
        let out = add_node_param(&json!({}), false).unwrap();
        assert_eq!(out["type"], "object");
    }

    #[test]
    fn refuses_tools_it_cannot_serve() {
        assert!(
            add_node_param(
                &json!({"type":"object","properties":{"node":{"type":"string"}}}),
                false
            )
            .unwrap_err()
            .contains("node")
        );
        assert!(add_node_param(&json!({"type":"array"}), false).is_err());
        assert!(add_node_param(&json!("x"), false).is_err());
    }

    #[test]
    fn catalog_serves_good_tools_and_reports_the_rest() {
        let tools = vec![
            json!({"name":"a","title":"A","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true},"_meta":{"k":1}}),
            json!({"name":"b","inputSchema":{"type":"object","properties":{"node":{"type":"string"}}}}),
            json!({"name":"c","inputSchema":{"type":"object","properties":{"r":{"type":"string","x-mcp-header":"node"}}}}),
            json!({"inputSchema":{}}),
            json!({"name":"a","inputSchema":{"type":"object"}}),
        ];
        let catalog = Catalog::build(tools, 1000);
        assert_eq!(catalog.names(), ["a"]);
        let skipped: Vec<_> = catalog.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["b", "c", "<unnamed>", "a"]);
        let legacy: Value = serde_json::from_slice(&catalog.list_result(Era::Legacy)).unwrap();
        assert_eq!(
            keys(&legacy["tools"][0]),
            ["name", "title", "inputSchema", "annotations", "_meta"]
        );
        assert!(legacy.get("resultType").is_none());
        assert!(
            legacy["tools"][0]["inputSchema"]["properties"]["node"]
                .get("x-mcp-header")
                .is_none()
        );
        let modern: Value = serde_json::from_slice(&catalog.list_result(Era::Modern)).unwrap();
        assert_eq!(modern["resultType"], "complete");
        assert_eq!(modern["ttlMs"], 1000);
        assert_eq!(
            modern["tools"][0]["inputSchema"]["properties"]["node"]["x-mcp-header"],
            "Node"
        );
        assert_eq!(
            catalog.get("a").unwrap().param_headers[0].header,
            "mcp-param-node"
        );
        assert!(catalog.get("a").unwrap().read_only);
    }

    #[test]
    fn filtered_lists_are_built_once_per_visible_set() {
        let tools = vec![
            json!({"name":"ro","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}}),
            json!({"name":"rw","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":false}}),
            json!({"name":"plain","inputSchema":{"type":"object"}}),
        ];
        let catalog = Catalog::build(tools, 1000);
        let names = |b: &Bytes| -> Vec<String> {
            let v: Value = serde_json::from_slice(b).unwrap();
            v["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        };
        let ro = catalog.list_result_where(Era::Modern, |_, ro| ro);
        assert_eq!(names(&ro), ["ro"]);
        let again = catalog.list_result_where(Era::Modern, |n, _| n == "ro");
        assert_eq!(ro.as_ptr(), again.as_ptr(), "same set, same cached bytes");
        let v: Value = serde_json::from_slice(&ro).unwrap();
        assert_eq!(v["resultType"], "complete");
        assert_eq!(v["ttlMs"], 1000);
        let none = catalog.list_result_where(Era::Legacy, |_, _| false);
        assert_eq!(names(&none), Vec::<String>::new());
        let all = catalog.list_result_where(Era::Legacy, |_, _| true);
        assert_eq!(all, catalog.list_result(Era::Legacy));
        assert_eq!(catalog.subsets.lock().unwrap().len(), 2);
    }

    fn page_names(b: &Bytes) -> (Vec<String>, Option<String>) {
        let v: Value = serde_json::from_slice(b).unwrap();
        let names = v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        (names, v["nextCursor"].as_str().map(str::to_string))
    }

    fn numbered(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"name": format!("t{i:02}"), "inputSchema": {"type": "object"}}))
            .collect()
    }

    #[test]
    fn big_catalogs_are_paged_from_cached_bytes_and_bad_cursors_are_refused() {
        let c = Catalog::build_with(numbered(7), Vec::new(), Availability::default(), 0, 3, None);
        for era in [Era::Legacy, Era::Modern] {
            let mut seen = Vec::new();
            let mut cursor = None;
            let mut pages = 0;
            loop {
                let b = c.list_page(era, cursor.as_deref()).unwrap();
                let (names, next) = page_names(&b);
                assert!(names.len() <= 3);
                seen.extend(names);
                pages += 1;
                match next {
                    Some(n) => {
                        let again = c.list_page(era, Some(&n)).unwrap();
                        let b2 = c.list_page(era, Some(&n)).unwrap();
                        assert_eq!(again.as_ptr(), b2.as_ptr(), "a page is cached bytes");
                        cursor = Some(n);
                    }
                    None => break,
                }
            }
            assert_eq!(pages, 3);
            assert_eq!(seen, c.names(), "every tool once, in the stable order");
        }
        for bad in ["%%%", "bm90LWEtY3Vyc29y", &URL_SAFE_NO_PAD.encode("x:t01")] {
            assert!(c.list_page(Era::Modern, Some(bad)).is_err(), "{bad}");
        }
        // The policy's subsets page the same way.
        let inner = |n: &str, _| n != "t00" && n != "t06";
        let (first, next) = page_names(&c.list_page_where(Era::Legacy, None, inner).unwrap());
        assert_eq!(first, ["t01", "t02", "t03"]);
        let (rest, next) = page_names(
            &c.list_page_where(Era::Legacy, next.as_deref(), inner)
                .unwrap(),
        );
        assert_eq!((rest, next), (vec!["t04".to_string(), "t05".into()], None));
    }

    #[test]
    fn a_cursor_survives_a_catalog_change() {
        let old = Catalog::build_with(numbered(6), Vec::new(), Availability::default(), 0, 2, None);
        let (_, cursor) = page_names(&old.list_page(Era::Modern, None).unwrap());
        let cursor = cursor.unwrap();
        // t00 removed: the list goes on after t01, the last tool the client got.
        let mut tools = numbered(6);
        tools.remove(0);
        let new = Catalog::build_with(tools, Vec::new(), Availability::default(), 0, 2, None);
        let (names, next) = page_names(&new.list_page(Era::Modern, Some(&cursor)).unwrap());
        assert_eq!(names, ["t02", "t03"]);
        assert!(next.is_some());
        // t01 itself gone: from the same position.
        let mut tools = numbered(6);
        tools.remove(1);
        let new = Catalog::build_with(tools, Vec::new(), Availability::default(), 0, 2, None);
        let (names, _) = page_names(&new.list_page(Era::Modern, Some(&cursor)).unwrap());
        assert_eq!(names, ["t03", "t04"]);
    }

    #[test]
    fn node_can_list_the_ready_nodes() {
        let names = ["a".to_string(), "b".to_string()];
        let c = Catalog::build_with(
            numbered(1),
            Vec::new(),
            Availability::default(),
            0,
            10,
            Some(&names),
        );
        for era in [Era::Legacy, Era::Modern] {
            let v: Value = serde_json::from_slice(&c.list_result(era)).unwrap();
            assert_eq!(
                v["tools"][0]["inputSchema"]["properties"]["node"]["enum"],
                json!(["a", "b"])
            );
        }
        let plain = Catalog::build(numbered(1), 0);
        let v: Value = serde_json::from_slice(&plain.list_result(Era::Modern)).unwrap();
        assert!(
            v["tools"][0]["inputSchema"]["properties"]["node"]
                .get("enum")
                .is_none()
        );
    }
}
