//! The HTTP-level rules of Streamable HTTP that both servers and the client need:
//! header names, Accept / Content-Type negotiation, Origin validation, and the
//! 2026-07-28 rules that mirror body fields into headers (`Mcp-Method`, `Mcp-Name`,
//! `Mcp-Param-*` from `x-mcp-header`, with the `=?base64?…?=` sentinel).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use crate::jsonrpc::{ErrorObject, Request};
use crate::mcp::method;

/// Legacy session id header.
pub const MCP_SESSION_ID: &str = "mcp-session-id";
/// Negotiated (legacy) or per-request (modern) protocol revision.
pub const MCP_PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// 2026-07-28: mirrors the JSON-RPC method.
pub const MCP_METHOD: &str = "mcp-method";
/// 2026-07-28: mirrors `params.name` / `params.uri`.
pub const MCP_NAME: &str = "mcp-name";
/// The protocol's header names as [`http::HeaderName`]s, to insert without the name
/// being parsed and copied again on every request.
pub mod name {
    use http::HeaderName;
    /// [`super::MCP_SESSION_ID`].
    pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static(super::MCP_SESSION_ID);
    /// [`super::MCP_PROTOCOL_VERSION`].
    pub const MCP_PROTOCOL_VERSION: HeaderName =
        HeaderName::from_static(super::MCP_PROTOCOL_VERSION);
    /// [`super::MCP_METHOD`].
    pub const MCP_METHOD: HeaderName = HeaderName::from_static(super::MCP_METHOD);
    /// [`super::MCP_NAME`].
    pub const MCP_NAME: HeaderName = HeaderName::from_static(super::MCP_NAME);
}
/// 2026-07-28: prefix of the headers that mirror `x-mcp-header` parameters.
pub const MCP_PARAM_PREFIX: &str = "mcp-param-";
/// JSON media type.
pub const APPLICATION_JSON: &str = "application/json";
/// SSE media type.
pub const TEXT_EVENT_STREAM: &str = "text/event-stream";

/// What a request's `Accept` header allows us to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepts {
    /// `application/json` is acceptable.
    pub json: bool,
    /// `text/event-stream` is acceptable.
    pub sse: bool,
}

impl Accepts {
    /// Reads `Accept`; an absent header accepts everything (curl's default is `*/*`).
    pub fn from_headers(headers: &HeaderMap) -> Accepts {
        let mut seen = false;
        let mut acc = Accepts {
            json: false,
            sse: false,
        };
        for value in headers.get_all(http::header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                seen = true;
                let mut parts = item.split(';');
                let media = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| {
                    let p = p.trim();
                    p.eq_ignore_ascii_case("q=0") || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
                });
                if refused {
                    continue;
                }
                let is = |name: &str| media.eq_ignore_ascii_case(name);
                if is("*/*") {
                    acc.json = true;
                    acc.sse = true;
                } else if is("application/*") || is(APPLICATION_JSON) {
                    acc.json = true;
                } else if is("text/*") || is(TEXT_EVENT_STREAM) {
                    acc.sse = true;
                }
            }
        }
        if seen {
            acc
        } else {
            Accepts {
                json: true,
                sse: true,
            }
        }
    }

    /// Whether any answer we can give is acceptable.
    pub fn any(self) -> bool {
        self.json || self.sse
    }
}

/// Whether `Content-Type` is JSON (parameters such as charset allowed).
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(APPLICATION_JSON))
}

/// Which browser origins may call the server (DNS-rebinding protection).
///
/// Requests without `Origin` (non-browser clients) always pass. Loopback origins pass by
/// default; other origins must be listed, or the policy must be `*`.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Exact origins allowed (`scheme://host[:port]`), compared case-insensitively.
    pub allowed: Vec<String>,
    /// Allow every origin (`*` in the configuration).
    pub allow_any: bool,
    /// Refuse loopback origins unless listed (for servers reachable only from a cluster).
    pub deny_loopback: bool,
}

impl OriginPolicy {
    /// Parses a comma-separated list; `*` allows all.
    pub fn from_list(list: &str) -> OriginPolicy {
        let mut policy = OriginPolicy::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                policy.allow_any = true;
            } else {
                policy
                    .allowed
                    .push(item.trim_end_matches('/').to_ascii_lowercase());
            }
        }
        policy
    }

    /// Whether a request with these headers may proceed: every `Origin` header it
    /// carries must be allowed (none: not a browser request).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(http::header::ORIGIN)
            .iter()
            .all(|origin| self.allows_one(origin))
    }

    fn allows_one(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.allow_any {
            return true;
        }
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.allowed.contains(&origin) {
            return true;
        }
        !self.deny_loopback && is_loopback_origin(&origin)
    }
}

/// Which `Host` names a server answers to: protection against DNS rebinding, where a
/// page on an attacker's domain resolves that domain to the server's address. IP
/// literals are always accepted (a rebinding attack needs a name); names must be
/// loopback names, the configured ones (`*.example.com` globs allowed), or, unless the
/// server is loopback-only, cluster-internal Service names (`*.svc`, `*.svc.<domain>`)
/// and this machine's own host name.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Accept any Host (`*`).
    pub allow_any: bool,
    /// Only loopback names and addresses (a server bound to loopback).
    pub loopback_only: bool,
    /// Extra names, lower-case; a leading `*.` matches any subdomain.
    pub allowed: Vec<String>,
}

impl HostPolicy {
    /// Parses a comma-separated list of names (`*`: any).
    pub fn from_list(list: &str, loopback_only: bool) -> HostPolicy {
        let mut policy = HostPolicy {
            loopback_only,
            ..HostPolicy::default()
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                policy.allow_any = true;
            } else {
                policy.allowed.push(item.to_ascii_lowercase());
            }
        }
        if let Some(own) = own_host_name() {
            policy.allowed.push(own);
        }
        policy
    }

    /// Whether a request with these headers may proceed (a request without `Host`,
    /// as HTTP/2 may send, is judged by its `:authority`, which hyper puts in the URI).
    pub fn allows(&self, headers: &HeaderMap, uri: &http::Uri) -> bool {
        if self.allow_any {
            return true;
        }
        let mut hosts = headers.get_all(http::header::HOST).iter().peekable();
        if hosts.peek().is_none() {
            return uri.host().is_none_or(|h| self.allows_host(h));
        }
        hosts.all(|v| v.to_str().is_ok_and(|h| self.allows_host(strip_port(h))))
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim().trim_end_matches('.');
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            return !self.loopback_only || ip.is_loopback();
        }
        // Names only from here: an IP literal (most requests in a cluster) is not copied.
        let host = host.to_ascii_lowercase();
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        let listed = self.allowed.iter().any(|a| match a.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => *a == host,
        });
        if listed || self.loopback_only {
            return listed;
        }
        host.ends_with(".svc") || host.contains(".svc.")
    }
}

/// `name[:port]` or `[v6][:port]` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// This machine's host name (in a pod: the pod's name), lower-case.
fn own_host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

/// `http(s)://localhost|127.x.x.x|[::1][:port]`.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => return false,
        }
    } else {
        match rest.split_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            Some(_) => return false,
            None => rest,
        }
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Encodes a header value per 2026-07-28: plain when it is printable ASCII without
/// leading/trailing whitespace, else `=?base64?…?=`.
pub fn encode_header_value(value: &str) -> std::borrow::Cow<'_, str> {
    let printable = value
        .bytes()
        .all(|b| (0x20..=0x7e).contains(&b) || b == b'\t');
    let padded = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain_ok = printable && !padded && !looks_encoded;
    if plain_ok {
        value.into()
    } else {
        format!("=?base64?{}?=", BASE64.encode(value.as_bytes())).into()
    }
}

/// Decodes a header value, undoing the Base64 sentinel; Err on invalid characters or
/// invalid Base64.
pub fn decode_header_value(raw: &http::HeaderValue) -> Result<String, String> {
    decode_header_text(raw).map(std::borrow::Cow::into_owned)
}

/// [`decode_header_value`], borrowing the header's text when it is plain.
fn decode_header_text(raw: &http::HeaderValue) -> Result<std::borrow::Cow<'_, str>, String> {
    let s = raw
        .to_str()
        .map_err(|_| "contains characters outside visible ASCII".to_string())?;
    if let Some(inner) = s
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        let bytes = BASE64
            .decode(inner)
            .map_err(|e| format!("has an invalid Base64 value: {e}"))?;
        String::from_utf8(bytes)
            .map(Into::into)
            .map_err(|_| "Base64 value is not UTF-8".to_string())
    } else {
        Ok(s.into())
    }
}

/// One tool parameter mirrored into an `Mcp-Param-{name}` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The header name suffix as written in `x-mcp-header` (e.g. `Node`).
    pub name: String,
    /// The lower-case full header name (`mcp-param-node`).
    pub header: String,
    /// Property path from the arguments object.
    pub path: Vec<String>,
}

/// Why a tool's `x-mcp-header` annotations are invalid (the tool must then be dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid x-mcp-header: {0}")]
pub struct InvalidParamHeader(pub String);

/// Collects the `x-mcp-header` annotations of an `inputSchema`, following only plain
/// `properties` chains as the 2026-07-28 revision prescribes.
pub fn param_headers(input_schema: &Value) -> Result<Vec<ParamHeader>, InvalidParamHeader> {
    let mut out = Vec::new();
    collect_param_headers(input_schema, &mut Vec::new(), &mut out)?;
    let mut seen = std::collections::HashSet::new();
    for p in &out {
        if !seen.insert(p.header.clone()) {
            return Err(InvalidParamHeader(format!(
                "duplicate header name {:?}",
                p.name
            )));
        }
    }
    Ok(out)
}

fn collect_param_headers(
    schema: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<ParamHeader>,
) -> Result<(), InvalidParamHeader> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(());
    };
    for (key, prop) in props {
        path.push(key.clone());
        if let Some(h) = prop.get("x-mcp-header") {
            let name = h
                .as_str()
                .filter(|n| !n.is_empty() && n.bytes().all(is_tchar))
                .ok_or_else(|| {
                    InvalidParamHeader(format!("property {key:?}: {h} is not a header token"))
                })?;
            let ty = prop.get("type").and_then(Value::as_str);
            if !matches!(ty, Some("string" | "integer" | "boolean")) {
                return Err(InvalidParamHeader(format!(
                    "property {key:?} must be a string, integer or boolean"
                )));
            }
            out.push(ParamHeader {
                name: name.to_string(),
                header: format!("{MCP_PARAM_PREFIX}{}", name.to_ascii_lowercase()),
                path: path.clone(),
            });
        }
        collect_param_headers(prop, path, out)?;
        path.pop();
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The value at `path` inside tool arguments, as its header text (None when absent/null).
pub fn argument_header_text(
    arguments: Option<&Map<String, Value>>,
    path: &[String],
) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut v = arguments?.get(first)?;
    for key in rest {
        v = v.get(key)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Compares a header value with the body value it mirrors (integers numerically).
fn same_value(header: &str, body: &str) -> bool {
    if header == body {
        return true;
    }
    match (header.parse::<f64>(), body.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b && header.trim() == header,
        _ => false,
    }
}

/// The body value `Mcp-Name` must mirror for a method, if that method has one.
pub fn name_field(method_name: &str) -> Option<&'static str> {
    match method_name {
        method::TOOLS_CALL | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        crate::tasks::GET | crate::tasks::UPDATE | crate::tasks::CANCEL => Some("taskId"),
        _ => None,
    }
}

/// Checks the 2026-07-28 standard headers against the body: `Mcp-Method` always,
/// `Mcp-Name` for the methods that have a name. Err is -32020.
pub fn check_standard_headers(headers: &HeaderMap, request: &Request) -> Result<(), ErrorObject> {
    let m = single_header(headers, MCP_METHOD)?
        .ok_or_else(|| ErrorObject::header_mismatch("the Mcp-Method header is required"))?;
    if m != request.method {
        return Err(ErrorObject::header_mismatch(format!(
            "Mcp-Method header value '{m}' does not match body value '{}'",
            request.method
        )));
    }
    if let Some(field) = name_field(&request.method) {
        let body = request.str_param(field);
        match (single_header(headers, MCP_NAME)?, body) {
            (Some(h), Some(b)) if h == b => {}
            (Some(h), Some(b)) => {
                return Err(ErrorObject::header_mismatch(format!(
                    "Mcp-Name header value '{h}' does not match body value '{b}'"
                )));
            }
            // The tasks extension asks clients for `Mcp-Name` too, but SDK clients
            // still omit it there: checked when present, not required.
            (None, _) if crate::tasks::is_task_method(&request.method) => {}
            (None, _) => {
                return Err(ErrorObject::header_mismatch(format!(
                    "the Mcp-Name header is required for {}",
                    request.method
                )));
            }
            (Some(_), None) => {
                return Err(ErrorObject::invalid_params(format!(
                    "params.{field} is required"
                )));
            }
        }
    }
    Ok(())
}

/// Checks the `Mcp-Param-*` headers a tool declares against the call's arguments.
/// Err is -32020.
pub fn check_param_headers(
    headers: &HeaderMap,
    declared: &[ParamHeader],
    arguments: Option<&Map<String, Value>>,
) -> Result<(), ErrorObject> {
    for p in declared {
        let header = single_header(headers, &p.header)?;
        let body = argument_header_text(arguments, &p.path);
        match (header, body) {
            (None, None) => {}
            (Some(h), Some(b)) if same_value(&h, &b) => {}
            (Some(h), Some(b)) => {
                return Err(ErrorObject::header_mismatch(format!(
                    "Mcp-Param-{} header value '{h}' does not match body value '{b}'",
                    p.name
                )));
            }
            (None, Some(_)) => {
                return Err(ErrorObject::header_mismatch(format!(
                    "the Mcp-Param-{} header is required when argument '{}' is present",
                    p.name,
                    p.path.join(".")
                )));
            }
            (Some(h), None) => {
                return Err(ErrorObject::header_mismatch(format!(
                    "Mcp-Param-{} header value '{h}' has no matching argument '{}'",
                    p.name,
                    p.path.join(".")
                )));
            }
        }
    }
    Ok(())
}

/// A header that must appear at most once, decoded.
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<std::borrow::Cow<'h, str>>, ErrorObject> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ErrorObject::header_mismatch(format!(
            "{name} appears more than once"
        )));
    }
    decode_header_text(first)
        .map(Some)
        .map_err(|e| ErrorObject::header_mismatch(format!("{name} {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn accept_negotiation() {
        let a = Accepts::from_headers(&headers(&[]));
        assert!(a.json && a.sse);
        let a = Accepts::from_headers(&headers(&[(
            "accept",
            "application/json, text/event-stream",
        )]));
        assert!(a.json && a.sse);
        let a = Accepts::from_headers(&headers(&[("accept", "application/json")]));
        assert!(a.json && !a.sse);
        let a = Accepts::from_headers(&headers(&[("accept", "text/html")]));
        assert!(!a.any());
        let a = Accepts::from_headers(&headers(&[("accept", "*/*;q=0.8")]));
        assert!(a.json && a.sse);
        let a = Accepts::from_headers(&headers(&[(
            "accept",
            "application/json;q=0, text/event-stream",
        )]));
        assert!(!a.json && a.sse);
    }

    #[test]
    fn content_type() {
        assert!(is_json_content_type(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(is_json_content_type(&headers(&[(
            "content-type",
            "Application/JSON"
        )])));
        assert!(!is_json_content_type(&headers(&[(
            "content-type",
            "text/plain"
        )])));
        assert!(!is_json_content_type(&headers(&[])));
    }

    #[test]
    fn origins() {
        let p = OriginPolicy::from_list("https://app.example.com/");
        assert!(p.allows(&headers(&[])));
        assert!(p.allows(&headers(&[("origin", "https://app.example.com")])));
        assert!(p.allows(&headers(&[("origin", "http://localhost:6274")])));
        assert!(p.allows(&headers(&[("origin", "http://127.0.0.1")])));
        assert!(p.allows(&headers(&[("origin", "http://[::1]:80")])));
        assert!(!p.allows(&headers(&[("origin", "http://evil.example")])));
        assert!(!p.allows(&headers(&[("origin", "http://localhost.evil.example")])));
        assert!(!p.allows(&headers(&[("origin", "http://127.0.0.1.evil.example")])));
        assert!(!p.allows(&headers(&[("origin", "null")])));
        assert!(OriginPolicy::from_list("*").allows(&headers(&[("origin", "http://x")])));
    }

    #[test]
    fn base64_sentinel_matches_the_spec_examples() {
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(encode_header_value("node-1"), "node-1");
        for v in [
            "Hello, 世界",
            " padded ",
            "=?base64?literal?=",
            "plain",
            "a\nb",
        ] {
            let enc = HeaderValue::from_str(&encode_header_value(v)).unwrap();
            assert_eq!(decode_header_value(&enc).unwrap(), v);
        }
        assert!(decode_header_value(&HeaderValue::from_static("=?base64?***?=")).is_err());
    }

    #[test]
    fn collects_x_mcp_header_params() {
        let schema = json!({"type":"object","properties":{
            "node":{"type":"string","x-mcp-header":"Node"},
            "opts":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}},
            "list":{"type":"array","items":{"type":"object","properties":{"x":{"type":"string","x-mcp-header":"X"}}}}
        }});
        let ps = param_headers(&schema).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].header, "mcp-param-node");
        assert_eq!(ps[1].path, ["opts", "region"]);
        let bad = json!({"properties":{"n":{"type":"number","x-mcp-header":"N"}}});
        assert!(param_headers(&bad).is_err());
        let bad = json!({"properties":{"a":{"type":"string","x-mcp-header":"A"},"b":{"type":"string","x-mcp-header":"a"}}});
        assert!(param_headers(&bad).is_err());
        let bad = json!({"properties":{"a":{"type":"string","x-mcp-header":"has space"}}});
        assert!(param_headers(&bad).is_err());
    }

    fn call(name: &str, args: Value) -> Request {
        Request {
            id: crate::jsonrpc::RequestId::Number(1),
            method: "tools/call".into(),
            params: json!({"name": name, "arguments": args})
                .as_object()
                .cloned(),
        }
    }

    #[test]
    fn standard_and_param_header_checks() {
        let req = call("node_info", json!({"node":"n 1","count":3}));
        let ok = headers(&[("mcp-method", "tools/call"), ("mcp-name", "node_info")]);
        assert!(check_standard_headers(&ok, &req).is_ok());
        let wrong = headers(&[("mcp-method", "tools/call"), ("mcp-name", "other")]);
        assert_eq!(
            check_standard_headers(&wrong, &req).unwrap_err().code,
            -32020
        );
        let missing = headers(&[("mcp-method", "tools/call")]);
        assert_eq!(
            check_standard_headers(&missing, &req).unwrap_err().code,
            -32020
        );
        let wrong_method = headers(&[("mcp-method", "tools/list"), ("mcp-name", "node_info")]);
        assert_eq!(
            check_standard_headers(&wrong_method, &req)
                .unwrap_err()
                .code,
            -32020
        );

        let declared = param_headers(&json!({"properties":{
            "node":{"type":"string","x-mcp-header":"Node"},
            "count":{"type":"integer","x-mcp-header":"Count"}}}))
        .unwrap();
        let args = req.params.as_ref().unwrap()["arguments"].as_object();
        let good = headers(&[("mcp-param-node", "n 1"), ("mcp-param-count", "3")]);
        assert!(check_param_headers(&good, &declared, args).is_ok());
        let encoded = headers(&[
            ("mcp-param-node", "=?base64?biAx?="),
            ("mcp-param-count", "3.0"),
        ]);
        assert!(check_param_headers(&encoded, &declared, args).is_ok());
        let absent = headers(&[("mcp-param-count", "3")]);
        assert_eq!(
            check_param_headers(&absent, &declared, args)
                .unwrap_err()
                .code,
            -32020
        );
        let mismatch = headers(&[("mcp-param-node", "n2"), ("mcp-param-count", "3")]);
        assert_eq!(
            check_param_headers(&mismatch, &declared, args)
                .unwrap_err()
                .code,
            -32020
        );
        assert!(check_param_headers(&headers(&[]), &declared, None).is_ok());
    }
}
