//! MCP vocabulary: protocol revisions and eras, method names, `_meta` keys, and builders
//! for the few payloads this project originates (initialize, discover, tool results,
//! progress). Payloads owned by peers stay `serde_json::Value`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// A protocol revision this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// 2025-03-26: sessions, batches allowed, no version header.
    V2025_03_26,
    /// 2025-06-18: no batches, `MCP-Protocol-Version` header.
    V2025_06_18,
    /// 2025-11-25: the last initialize-based revision.
    V2025_11_25,
    /// 2026-07-28: stateless, per-request `_meta`.
    V2026_07_28,
}

/// The two generations of MCP: initialize-based sessions and stateless requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// 2025-03-26 .. 2025-11-25: initialize, sessions, GET stream.
    Legacy,
    /// 2026-07-28: `_meta` per request, `server/discover`, no sessions.
    Modern,
}

impl ProtocolVersion {
    /// Every supported revision, newest first.
    pub const ALL: [ProtocolVersion; 4] = [
        ProtocolVersion::V2026_07_28,
        ProtocolVersion::V2025_11_25,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_03_26,
    ];
    /// The newest initialize-based revision, offered when a client asks for one we lack.
    pub const LATEST_LEGACY: ProtocolVersion = ProtocolVersion::V2025_11_25;
    /// The newest stateless revision.
    pub const LATEST_MODERN: ProtocolVersion = ProtocolVersion::V2026_07_28;

    /// Parses a revision string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "2025-03-26" => Some(Self::V2025_03_26),
            "2025-06-18" => Some(Self::V2025_06_18),
            "2025-11-25" => Some(Self::V2025_11_25),
            "2026-07-28" => Some(Self::V2026_07_28),
            _ => None,
        }
    }

    /// The revision string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    /// Which era the revision belongs to.
    pub fn era(self) -> Era {
        match self {
            Self::V2026_07_28 => Era::Modern,
            _ => Era::Legacy,
        }
    }

    /// Whether JSON-RPC batches (arrays) are allowed (2025-03-26 only).
    pub fn allows_batches(self) -> bool {
        self == Self::V2025_03_26
    }

    /// Legacy negotiation: echo the client's revision if we speak it, else offer our latest.
    pub fn negotiate_legacy(requested: &str) -> ProtocolVersion {
        match Self::parse(requested) {
            Some(v) if v.era() == Era::Legacy => v,
            _ => Self::LATEST_LEGACY,
        }
    }

    /// All supported revision strings, newest first (for -32022 `data.supported`).
    pub fn supported_strings() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.as_str()).collect()
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Method names this project handles or sends.
pub mod method {
    /// Legacy handshake request.
    pub const INITIALIZE: &str = "initialize";
    /// Legacy handshake completion notification.
    pub const INITIALIZED: &str = "notifications/initialized";
    /// Legacy liveness check.
    pub const PING: &str = "ping";
    /// Modern capability discovery.
    pub const DISCOVER: &str = "server/discover";
    /// List tools (paginated).
    pub const TOOLS_LIST: &str = "tools/list";
    /// Call a tool.
    pub const TOOLS_CALL: &str = "tools/call";
    /// Modern long-lived notification stream.
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    /// First message on a listen stream.
    pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
    /// Progress of a request.
    pub const PROGRESS: &str = "notifications/progress";
    /// Cancellation of a request (legacy over HTTP).
    pub const CANCELLED: &str = "notifications/cancelled";
    /// The tool catalog changed.
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    /// Log messages from server to client.
    pub const MESSAGE: &str = "notifications/message";
    /// Legacy: the client sets the lowest log level it wants.
    pub const SET_LEVEL: &str = "logging/setLevel";
    /// Server-to-client: ask the user for information.
    pub const ELICIT: &str = "elicitation/create";
    /// Server-to-client: ask the client's model for a completion.
    pub const SAMPLING: &str = "sampling/createMessage";
    /// Server-to-client: ask the client for its roots.
    pub const ROOTS_LIST: &str = "roots/list";
    /// List the prompts.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// Get one prompt with its arguments filled in.
    pub const PROMPTS_GET: &str = "prompts/get";
    /// The prompt list changed.
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    /// The resource list changed.
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    /// Complete an argument of a prompt or resource template.
    pub const COMPLETE: &str = "completion/complete";
    /// Legacy URL-mode elicitation finished out of band (2025-11-25).
    pub const ELICITATION_COMPLETE: &str = "notifications/elicitation/complete";
}

/// `_meta` keys defined by the 2026-07-28 revision.
pub mod meta {
    /// The request's protocol revision (required on every modern request).
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's capabilities (required on every modern request).
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The client's name and version.
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The server's name and version, on results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The listen request id, on notifications delivered on a listen stream.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    /// The progress token a request asks progress for.
    pub const PROGRESS_TOKEN: &str = "progressToken";
    /// 2026-07-28: the lowest log level the client wants for this request.
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
}

/// Who we are, for initialize / discover answers and client info.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// Machine name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Human title.
    pub title: Option<String>,
}

impl Implementation {
    /// The `Implementation` JSON object.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.clone().into());
        if let Some(t) = &self.title {
            m.insert("title".into(), t.clone().into());
        }
        m.insert("version".into(), self.version.clone().into());
        Value::Object(m)
    }
}

/// The severity of a log message (RFC 5424 order, lowest first), for filtering
/// `notifications/message` by the level a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Detailed debugging information.
    Debug,
    /// Informational messages.
    Info,
    /// Normal but significant events.
    Notice,
    /// Warning conditions.
    Warning,
    /// Error conditions.
    Error,
    /// Critical conditions.
    Critical,
    /// Action must be taken immediately.
    Alert,
    /// The system is unusable.
    Emergency,
}

impl LogLevel {
    /// Parses the wire name ("debug" .. "emergency").
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }
}

/// The capability a client must have declared to be sent a server-to-client request
/// (`elicitation`, `sampling`, `roots`), with the sub-capability a mode needs (URL-mode
/// elicitation needs `elicitation.url`). None for methods that need none.
pub fn required_client_capability(method_name: &str, params: &Map<String, Value>) -> Option<Value> {
    match method_name {
        method::ELICIT if params.get("mode").and_then(Value::as_str) == Some("url") => {
            Some(json!({ "elicitation": { "url": {} } }))
        }
        method::ELICIT => Some(json!({ "elicitation": {} })),
        method::SAMPLING => Some(json!({ "sampling": {} })),
        method::ROOTS_LIST => Some(json!({ "roots": {} })),
        _ => None,
    }
}

/// Whether `declared` (a client's capabilities) covers `required` (as from
/// [`required_client_capability`]): every key of `required` present, recursively.
/// Form-mode elicitation is also implied by `elicitation.form` alone.
pub fn has_capability(declared: &Value, required: &Value) -> bool {
    match (declared, required) {
        (Value::Object(d), Value::Object(r)) => r.iter().all(|(k, rv)| {
            d.get(k)
                .is_some_and(|dv| dv.is_object() && has_capability(dv, rv))
        }),
        _ => true,
    }
}

/// A 2026-07-28 `InputRequiredResult`: the client answers `input_requests` and
/// retries the request with `inputResponses` and `request_state`.
pub fn input_required_result(
    input_requests: Map<String, Value>,
    request_state: Option<&str>,
) -> Value {
    let mut m = Map::new();
    m.insert("resultType".into(), "input_required".into());
    m.insert("inputRequests".into(), Value::Object(input_requests));
    if let Some(s) = request_state {
        m.insert("requestState".into(), s.into());
    }
    Value::Object(m)
}

/// The capabilities a tools-only server announces.
pub fn tools_capabilities(list_changed: bool) -> Value {
    json!({ "tools": { "listChanged": list_changed } })
}

/// The legacy `InitializeResult`.
pub fn initialize_result(
    version: ProtocolVersion,
    server: &Implementation,
    capabilities: &Value,
    instructions: Option<&str>,
) -> Value {
    let mut m = Map::new();
    m.insert("protocolVersion".into(), version.as_str().into());
    m.insert(
        "capabilities".into(),
        crate::tasks::capabilities_for(version, capabilities),
    );
    m.insert("serverInfo".into(), server.to_value());
    if let Some(i) = instructions {
        m.insert("instructions".into(), i.into());
    }
    Value::Object(m)
}

/// The modern `DiscoverResult`.
pub fn discover_result(
    server: &Implementation,
    capabilities: &Value,
    instructions: Option<&str>,
    ttl_ms: u64,
) -> Value {
    let mut m = Map::new();
    m.insert("resultType".into(), "complete".into());
    m.insert(
        "supportedVersions".into(),
        json!(ProtocolVersion::supported_strings()),
    );
    m.insert(
        "capabilities".into(),
        crate::tasks::capabilities_for(ProtocolVersion::LATEST_MODERN, capabilities),
    );
    if let Some(i) = instructions {
        m.insert("instructions".into(), i.into());
    }
    m.insert("ttlMs".into(), ttl_ms.into());
    m.insert("cacheScope".into(), "public".into());
    m.insert(
        "_meta".into(),
        json!({ meta::SERVER_INFO: server.to_value() }),
    );
    Value::Object(m)
}

/// A `ListToolsResult` for the given era: modern results carry `resultType`, `ttlMs`
/// and `cacheScope`.
pub fn tools_list_result(
    era: Era,
    tools: &[Value],
    next_cursor: Option<&str>,
    ttl_ms: u64,
) -> Value {
    let mut m = Map::new();
    if era == Era::Modern {
        m.insert("resultType".into(), "complete".into());
    }
    m.insert("tools".into(), Value::Array(tools.to_vec()));
    if let Some(c) = next_cursor {
        m.insert("nextCursor".into(), c.into());
    }
    if era == Era::Modern {
        m.insert("ttlMs".into(), ttl_ms.into());
        m.insert("cacheScope".into(), "public".into());
    }
    Value::Object(m)
}

/// A `CallToolResult` with a text block, optional structured content and the error flag.
pub fn tool_result(era: Era, text: &str, structured: Option<Value>, is_error: bool) -> Value {
    let mut m = Map::new();
    if era == Era::Modern {
        m.insert("resultType".into(), "complete".into());
    }
    m.insert("content".into(), json!([{ "type": "text", "text": text }]));
    if let Some(s) = structured {
        m.insert("structuredContent".into(), s);
    }
    if is_error {
        m.insert("isError".into(), true.into());
    }
    Value::Object(m)
}

/// An empty result (`ping`), with `resultType` for the modern era.
pub fn empty_result(era: Era) -> Value {
    match era {
        Era::Modern => json!({ "resultType": "complete" }),
        Era::Legacy => json!({}),
    }
}

/// The params of a `notifications/progress`.
pub fn progress_params(
    token: &Value,
    progress: f64,
    total: Option<f64>,
    message: Option<&str>,
) -> Value {
    let mut m = Map::new();
    m.insert("progressToken".into(), token.clone());
    m.insert("progress".into(), json_number(progress));
    if let Some(t) = total {
        m.insert("total".into(), json_number(t));
    }
    if let Some(msg) = message {
        m.insert("message".into(), msg.into());
    }
    Value::Object(m)
}

/// Integers as integers, other numbers as floats (NaN/inf as 0).
fn json_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::from(0), Value::Number)
    }
}

/// Reads the progress token from a request's params, if the caller asked for progress.
pub fn progress_token(params: Option<&Map<String, Value>>) -> Option<&Value> {
    let token = crate::jsonrpc::meta_of(params)?.get(meta::PROGRESS_TOKEN)?;
    (token.is_string() || token.is_i64() || token.is_u64()).then_some(token)
}

/// A result's `resultType`, read without building a tree of the rest: from the
/// first member when it is there (where 2026-07-28 servers put it), else by a member
/// scan that skips every other value.
pub fn result_type(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(leading) = leading_result_type(raw) {
        return Some(leading.value);
    }
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "resultType", borrow, default)]
        result_type: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Probe<'_>>(raw).ok()?.result_type
}

/// A `resultType` that is the first member of a result object.
struct LeadingType<'a> {
    /// Its value.
    value: std::borrow::Cow<'a, str>,
    /// Where the rest of the object starts: past the member and its comma (or at
    /// the closing brace when it is the only member).
    rest: usize,
}

/// The first member of the object `raw` when it is `"resultType": "<string>"`,
/// found by reading only that far. `raw` must be JSON (a relayed `result` is checked
/// when its message is parsed); anything else, or another first member, is None.
fn leading_result_type(raw: &str) -> Option<LeadingType<'_>> {
    let bytes = raw.as_bytes();
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let open = skip_ws(0);
    if bytes.get(open) != Some(&b'{') {
        return None;
    }
    let key = skip_ws(open + 1);
    let after_key = key + br#""resultType""#.len();
    if bytes.get(key..after_key) != Some(br#""resultType""#.as_slice()) {
        return None;
    }
    let colon = skip_ws(after_key);
    if bytes.get(colon) != Some(&b':') {
        return None;
    }
    let start = skip_ws(colon + 1);
    let mut values = serde_json::Deserializer::from_str(raw.get(start..)?).into_iter::<Key<'_>>();
    let Key(value) = values.next()?.ok()?;
    let end = skip_ws(start + values.byte_offset());
    let rest = match bytes.get(end)? {
        b',' => skip_ws(end + 1),
        b'}' => end,
        _ => return None,
    };
    Some(LeadingType { value, rest })
}

/// A raw result as `era` shows it: with `resultType: "complete"` added for
/// 2026-07-28 when it lacks one, without `resultType` for a legacy era. `None` when
/// the bytes need no change (or are not an object); every other member is kept as
/// the bytes it came as.
pub fn result_for_era(raw: &str, era: Era) -> Option<Vec<u8>> {
    match (leading_result_type(raw), era) {
        // Where 2026-07-28 servers put it: cut out without reading the rest.
        (Some(leading), Era::Legacy) => {
            let mut out = Vec::with_capacity(raw.len());
            out.push(b'{');
            out.extend_from_slice(raw.as_bytes().get(leading.rest..)?);
            return Some(out);
        }
        (Some(_), Era::Modern) => return None,
        (None, _) => {}
    }
    let Members(mut members) = serde_json::from_str(raw).ok()?;
    let has_type = members.iter().any(|(k, _)| k == "resultType");
    match era {
        Era::Modern if !has_type => {}
        Era::Legacy if has_type => members.retain(|(k, _)| k != "resultType"),
        _ => return None,
    }
    let mut out = Vec::with_capacity(raw.len() + 24);
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key.as_ref()).ok()?;
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    if era == Era::Modern {
        if !members.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(br#""resultType":"complete""#);
    }
    out.push(b'}');
    Some(out)
}

/// The members of a JSON object in the order sent, each value as its bytes: what a
/// change of one top-level member needs, without a map (no hashing, no key copies
/// unless a key has escapes).
struct Members<'a>(Vec<(std::borrow::Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// An object key, borrowed from the input when it has no escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

/// Adds `resultType: "complete"` to a result object that lacks it (relaying a legacy
/// backend's answer to a modern client).
pub fn ensure_result_type(result: &mut Value) {
    if let Value::Object(m) = result
        && !m.contains_key("resultType")
    {
        m.insert("resultType".into(), "complete".into());
    }
}

/// Removes the modern-only `resultType` from a result (relaying a modern backend's
/// answer to a legacy client, whose schema does not know the field).
pub fn strip_result_type(result: &mut Value) {
    if let Value::Object(m) = result {
        m.shift_remove("resultType");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_types_are_added_or_dropped_and_the_rest_kept_as_sent() {
        let modern = r#"{"resultType":"complete","content":[{"type":"text","text":"2.50 \u00e9"}],"n":1.50}"#;
        assert_eq!(result_type(modern).as_deref(), Some("complete"));
        assert_eq!(result_type(r#"{"content":[]}"#), None);
        assert_eq!(result_type("not json"), None);
        let legacy = String::from_utf8(result_for_era(modern, Era::Legacy).unwrap()).unwrap();
        assert_eq!(
            legacy,
            r#"{"content":[{"type":"text","text":"2.50 \u00e9"}],"n":1.50}"#
        );
        assert_eq!(result_for_era(&legacy, Era::Legacy), None);
        assert_eq!(result_for_era(modern, Era::Modern), None);
        let back = String::from_utf8(result_for_era(&legacy, Era::Modern).unwrap()).unwrap();
        assert_eq!(
            back,
            r#"{"content":[{"type":"text","text":"2.50 \u00e9"}],"n":1.50,"resultType":"complete"}"#
        );
        assert_eq!(result_for_era("[1]", Era::Modern), None);
        // A leading resultType is cut out and the rest kept byte for byte, spacing too.
        let spaced = " {\n \"resultType\" : \"complete\" ,\n \"content\" : [ ] }";
        assert_eq!(result_type(spaced).as_deref(), Some("complete"));
        assert_eq!(
            result_for_era(spaced, Era::Legacy).as_deref(),
            Some(b"{\"content\" : [ ] }".as_slice())
        );
        let only = r#"{"resultType":"complete"}"#;
        assert_eq!(
            result_for_era(only, Era::Legacy).as_deref(),
            Some(b"{}".as_slice())
        );
        assert_eq!(result_for_era(only, Era::Modern), None);
        // Escapes in the value are read; a non-string resultType is not one.
        assert_eq!(
            result_type(r#"{"resultType":"input\u005frequired","x":1}"#).as_deref(),
            Some("input_required")
        );
        assert_eq!(result_type(r#"{"resultType":5}"#), None);
        assert_eq!(
            result_for_era("{}", Era::Modern).as_deref(),
            Some(br#"{"resultType":"complete"}"#.as_slice())
        );
        // Escaped keys are written back as JSON strings; every resultType goes.
        let escaped = r#"{"a\"b":1,"resultType":"complete","resultType":"x"}"#;
        assert_eq!(
            result_for_era(escaped, Era::Legacy).as_deref(),
            Some(br#"{"a\"b":1}"#.as_slice())
        );
    }

    #[test]
    fn versions_round_trip_and_negotiate() {
        for v in ProtocolVersion::ALL {
            assert_eq!(ProtocolVersion::parse(v.as_str()), Some(v));
        }
        assert_eq!(ProtocolVersion::parse("2024-11-05"), None);
        assert_eq!(
            ProtocolVersion::negotiate_legacy("2025-06-18"),
            ProtocolVersion::V2025_06_18
        );
        assert_eq!(
            ProtocolVersion::negotiate_legacy("1999-01-01"),
            ProtocolVersion::V2025_11_25
        );
        assert_eq!(
            ProtocolVersion::negotiate_legacy("2026-07-28"),
            ProtocolVersion::V2025_11_25
        );
        assert!(ProtocolVersion::V2025_03_26.allows_batches());
        assert!(!ProtocolVersion::V2025_06_18.allows_batches());
    }

    #[test]
    fn progress_numbers_stay_integers_when_whole() {
        let p = progress_params(&json!("t"), 2.0, Some(5.0), Some("x"));
        assert_eq!(
            p,
            json!({"progressToken":"t","progress":2,"total":5,"message":"x"})
        );
        let p = progress_params(&json!(1), 0.5, None, None);
        assert_eq!(p, json!({"progressToken":1,"progress":0.5}));
    }

    #[test]
    fn result_type_is_added_and_removed_in_place() {
        let mut v = json!({"content":[],"isError":false});
        ensure_result_type(&mut v);
        assert_eq!(v["resultType"], "complete");
        strip_result_type(&mut v);
        assert_eq!(v, json!({"content":[],"isError":false}));
    }
}
