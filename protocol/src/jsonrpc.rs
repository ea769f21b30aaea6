//! JSON-RPC 2.0 framing: ids, messages, error objects and the standard codes.
//!
//! Parsing keeps `params` and `result` as raw JSON so that what a peer sends can be
//! relayed without being squeezed through our own types; only the envelope is typed.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters (also: unknown tool, malformed `_meta`).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error of the server.
pub const INTERNAL_ERROR: i64 = -32603;
/// 2026-07-28: an HTTP header disagrees with the body (or is missing / malformed).
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the request needs a client capability the client did not declare.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// 2026-07-28: the requested protocol version is not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// The request was cancelled before it completed (the code LSP and the MCP SDKs use).
pub const REQUEST_CANCELLED: i64 = -32800;

/// A request id: a string or an integer, never null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl RequestId {
    /// Reads an id from a JSON value (as found in `notifications/cancelled`).
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(RequestId::String(s.clone())),
            Value::Number(n) => n.as_i64().map(RequestId::Number),
            _ => None,
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(n) => Value::from(*n),
            RequestId::String(s) => Value::from(s.as_str()),
        }
    }
}

/// A JSON-RPC error object; `data` is kept as the peer sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct ErrorObject {
    /// The error code.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Extra information, relayed verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// -32700.
    pub fn parse_error(detail: impl fmt::Display) -> Self {
        Self::new(PARSE_ERROR, format!("Parse error: {detail}"))
    }
    /// -32600.
    pub fn invalid_request(detail: impl fmt::Display) -> Self {
        Self::new(INVALID_REQUEST, format!("Invalid request: {detail}"))
    }
    /// -32601.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
    }
    /// -32602.
    pub fn invalid_params(detail: impl fmt::Display) -> Self {
        Self::new(INVALID_PARAMS, format!("Invalid params: {detail}"))
    }
    /// -32603.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(INTERNAL_ERROR, format!("Internal error: {detail}"))
    }
    /// -32020.
    pub fn header_mismatch(detail: impl fmt::Display) -> Self {
        Self::new(HEADER_MISMATCH, format!("Header mismatch: {detail}"))
    }
}

/// A message received from a peer, classified by shape.
#[derive(Debug)]
pub enum Message {
    /// A request: expects a response.
    Request(Request),
    /// A notification: no id, no response.
    Notification(Notification),
    /// A response (result or error) to one of our requests.
    Response(Response),
}

/// A request with its params kept raw.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request id.
    pub id: RequestId,
    /// The method name.
    pub method: String,
    /// The params object, as sent.
    pub params: Option<Map<String, Value>>,
}

/// A notification with its params kept raw.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// The params object, as sent.
    pub params: Option<Map<String, Value>>,
}

/// A response: exactly one of a result or an error.
#[derive(Debug)]
pub struct Response {
    /// The id it answers (null only for errors on unparseable requests).
    pub id: Option<RequestId>,
    /// The outcome.
    pub outcome: Result<Box<RawValue>, ErrorObject>,
}

/// The wire shape of any JSON-RPC message, used only to classify it.
#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<String>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    method: Option<String>,
    params: Option<Value>,
    result: Option<Box<RawValue>>,
    error: Option<ErrorObject>,
}

/// Distinguishes `"id": null` (Some(Null)) from an absent id (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Message {
    /// Classifies one JSON value as a JSON-RPC message.
    ///
    /// Errors are -32600 with a message naming what is wrong; the caller answers with id null.
    pub fn from_value(value: Value) -> Result<Message, ErrorObject> {
        if !value.is_object() {
            return Err(ErrorObject::invalid_request(
                "a JSON-RPC message must be an object",
            ));
        }
        let env: Envelope = serde_json::from_value(value).map_err(ErrorObject::invalid_request)?;
        Self::from_envelope(env)
    }

    /// Parses one message from bytes; -32700 when the bytes are not JSON.
    ///
    /// Straight into the envelope, with no tree of the whole message in between: a
    /// response's `result` is kept as the bytes the peer sent.
    pub fn from_slice(bytes: &[u8]) -> Result<Message, ErrorObject> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                ErrorObject::invalid_request(e)
            } else {
                ErrorObject::parse_error(e)
            }
        })?;
        // The envelope would also take a positional array; a message is an object.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(ErrorObject::invalid_request(
                "a JSON-RPC message must be an object",
            ));
        }
        Self::from_envelope(env)
    }

    fn from_envelope(env: Envelope) -> Result<Message, ErrorObject> {
        if env.jsonrpc.as_deref() != Some("2.0") {
            return Err(ErrorObject::invalid_request(r#""jsonrpc" must be "2.0""#));
        }
        let id = match env.id {
            None => None,
            Some(Value::Null) if env.method.is_some() => {
                return Err(ErrorObject::invalid_request("request id must not be null"));
            }
            Some(Value::Null) => None,
            Some(v) => Some(RequestId::from_value(&v).ok_or_else(|| {
                ErrorObject::invalid_request("id must be a string or an integer")
            })?),
        };
        let params = match env.params {
            None => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => return Err(ErrorObject::invalid_request("params must be an object")),
        };
        match (env.method, id) {
            (Some(method), Some(id)) => Ok(Message::Request(Request { id, method, params })),
            (Some(method), None) => Ok(Message::Notification(Notification { method, params })),
            (None, id) => match (env.result, env.error) {
                (Some(result), None) => match id {
                    Some(id) => Ok(Message::Response(Response {
                        id: Some(id),
                        outcome: Ok(result),
                    })),
                    None => Err(ErrorObject::invalid_request("a result needs an id")),
                },
                (None, Some(error)) => Ok(Message::Response(Response {
                    id,
                    outcome: Err(error),
                })),
                _ => Err(ErrorObject::invalid_request(
                    "not a request, notification or response",
                )),
            },
        }
    }
}

impl Request {
    /// The `params._meta` object, if any.
    pub fn meta(&self) -> Option<&Map<String, Value>> {
        meta_of(self.params.as_ref())
    }

    /// A string param.
    pub fn str_param(&self, key: &str) -> Option<&str> {
        self.params.as_ref()?.get(key)?.as_str()
    }
}

/// The `_meta` object inside a params map.
pub fn meta_of(params: Option<&Map<String, Value>>) -> Option<&Map<String, Value>> {
    params?.get("_meta")?.as_object()
}

/// An outgoing request or notification as written: borrowed, so sending one copies
/// nothing into a tree first.
#[derive(Serialize)]
struct Outgoing<'a, P: Serialize = Value> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RequestId>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a P>,
}

impl<P: Serialize> Outgoing<'_, P> {
    fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Serializes a request.
pub fn request_bytes(id: &RequestId, method: &str, params: Option<&Value>) -> Vec<u8> {
    Outgoing {
        jsonrpc: "2.0",
        id: Some(id),
        method,
        params,
    }
    .to_vec()
}

/// A `_meta` value an [`MetaEdit`] sets: JSON kept serialized, or a string.
#[derive(Clone, Copy)]
pub enum MetaValue<'a> {
    /// Serialized JSON, written as it is.
    Raw(&'a RawValue),
    /// A string.
    Str(&'a str),
}

impl Serialize for MetaValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MetaValue::Raw(raw) => raw.serialize(s),
            MetaValue::Str(text) => s.serialize_str(text),
        }
    }
}

/// How a request's `params._meta` changes as the request is written, leaving the
/// caller's params as they are: a client adds the protocol's entries for its peer's
/// era, or drops them, without building or mutating a tree per request. A `_meta`
/// that ends up empty is left out; one that is not an object is written as it is.
#[derive(Clone, Copy, Default)]
pub struct MetaEdit<'a> {
    /// Keys left out.
    pub drop: &'a [&'a str],
    /// Entries written in place of the params' own.
    pub replace: &'a [(&'a str, MetaValue<'a>)],
    /// Entries written only where the params have none.
    pub add: &'a [(&'a str, MetaValue<'a>)],
}

impl MetaEdit<'_> {
    fn keeps(&self, key: &str) -> bool {
        !self.drop.contains(&key) && !self.replace.iter().any(|(k, _)| *k == key)
    }
}

/// The params of a request as written under a [`MetaEdit`].
struct EditedParams<'a> {
    params: &'a Map<String, Value>,
    edit: MetaEdit<'a>,
}

/// One `_meta` object (None: the params had none) as written under a [`MetaEdit`].
struct EditedMeta<'a> {
    meta: Option<&'a Map<String, Value>>,
    edit: MetaEdit<'a>,
}

impl EditedMeta<'_> {
    fn kept(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.meta
            .into_iter()
            .flatten()
            .filter(|(k, _)| self.edit.keeps(k))
    }

    /// The `add` entries the params do not have already (a linear scan: `_meta` is small,
    /// and it is written whole anyway).
    fn added(&self) -> impl Iterator<Item = &(&str, MetaValue<'_>)> {
        self.edit
            .add
            .iter()
            .filter(|(k, _)| !self.kept().any(|(key, _)| key == k))
    }

    fn is_empty(&self) -> bool {
        self.edit.replace.is_empty()
            && self.kept().next().is_none()
            && self.added().next().is_none()
    }
}

impl Serialize for EditedMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.kept() {
            map.serialize_entry(k, v)?;
        }
        for (k, v) in self.edit.replace {
            map.serialize_entry(k, v)?;
        }
        for (k, v) in self.added() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl EditedParams<'_> {
    /// The edited `_meta`, when the params have none or an object one.
    fn meta(&self) -> Option<EditedMeta<'_>> {
        let meta = match self.params.get("_meta") {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return None,
        };
        Some(EditedMeta {
            meta,
            edit: self.edit,
        })
    }

    fn is_empty(&self) -> bool {
        self.params.keys().all(|k| k == "_meta") && self.meta().is_some_and(|m| m.is_empty())
    }
}

impl Serialize for EditedParams<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        let meta = self.meta();
        for (k, v) in self.params {
            match &meta {
                Some(edited) if k == "_meta" => {
                    if !edited.is_empty() {
                        map.serialize_entry(k, edited)?;
                    }
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        if let Some(edited) = &meta
            && edited.meta.is_none()
            && !edited.is_empty()
        {
            map.serialize_entry("_meta", edited)?;
        }
        map.end()
    }
}

/// Serializes a request whose params the caller keeps, its `_meta` edited by `edit`
/// as it is written.
pub fn request_bytes_edited(
    id: &RequestId,
    method: &str,
    params: &Map<String, Value>,
    edit: MetaEdit<'_>,
) -> Vec<u8> {
    Outgoing {
        jsonrpc: "2.0",
        id: Some(id),
        method,
        params: Some(&EditedParams { params, edit }),
    }
    .to_vec()
}

/// Serializes a notification, its `_meta` edited by `edit`; params that end up empty
/// are left out.
pub fn notification_bytes_edited(
    method: &str,
    params: &Map<String, Value>,
    edit: MetaEdit<'_>,
) -> Vec<u8> {
    let edited = EditedParams { params, edit };
    Outgoing {
        jsonrpc: "2.0",
        id: None,
        method,
        params: (!edited.is_empty()).then_some(&edited),
    }
    .to_vec()
}

/// Serializes a notification.
pub fn notification_bytes(method: &str, params: Option<&Value>) -> Vec<u8> {
    Outgoing {
        jsonrpc: "2.0",
        id: None,
        method,
        params,
    }
    .to_vec()
}

/// Serializes a success response around an already-serialized result object.
///
/// This is how cached answers (tools/list) and relayed results go out without being
/// parsed or re-serialized.
pub fn result_bytes(id: &RequestId, result_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(result_json.len() + 48);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    write_id(&mut out, Some(id));
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result_json);
    out.push(b'}');
    out
}

/// Serializes an error response; `id` is None (null) when the request could not be read.
pub fn error_bytes(id: Option<&RequestId>, error: &ErrorObject) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    write_id(&mut out, id);
    out.extend_from_slice(br#","error":"#);
    // An ErrorObject always serializes; the fallback keeps the output valid JSON regardless.
    match serde_json::to_vec(error) {
        Ok(e) => out.extend_from_slice(&e),
        Err(_) => out.extend_from_slice(br#"{"code":-32603,"message":"Internal error"}"#),
    }
    out.push(b'}');
    out
}

fn write_id(out: &mut Vec<u8>, id: Option<&RequestId>) {
    match id {
        None => out.extend_from_slice(b"null"),
        Some(RequestId::Number(n)) => out.extend_from_slice(n.to_string().as_bytes()),
        Some(RequestId::String(s)) => {
            let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
            out.extend_from_slice(quoted.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edited(params: Value, edit: MetaEdit<'_>) -> Value {
        let params = params.as_object().cloned().unwrap_or_default();
        let bytes = request_bytes_edited(&RequestId::Number(1), "tools/call", &params, edit);
        let sent: Value = serde_json::from_slice(&bytes).unwrap();
        sent.get("params").cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn meta_edits_add_replace_and_drop_without_touching_the_rest() {
        let caps = RawValue::from_string(r#"{"roots":{}}"#.to_owned()).unwrap();
        let replace = [("v", MetaValue::Str("2026-07-28"))];
        let add = [
            ("caps", MetaValue::Raw(&caps)),
            ("info", MetaValue::Str("me")),
        ];
        let edit = MetaEdit {
            drop: &["gone"],
            replace: &replace,
            add: &add,
        };
        // Added where absent, the caller's own entry kept where present, replaced
        // always, dropped keys gone, other params and their order untouched.
        let sent = edited(
            json!({"name": "t", "_meta": {"v": "old", "caps": {"mine": 1}, "gone": 1, "progressToken": 3}, "arguments": {"b": 1, "a": 2}}),
            edit,
        );
        assert_eq!(
            sent,
            json!({"name": "t", "_meta": {"caps": {"mine": 1}, "progressToken": 3, "v": "2026-07-28", "info": "me"}, "arguments": {"b": 1, "a": 2}})
        );
        let keys: Vec<_> = sent["arguments"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["b", "a"]);
        // No `_meta` at all: one is added at the end.
        let sent = edited(json!({"name": "t"}), edit);
        assert_eq!(
            sent,
            json!({"name": "t", "_meta": {"v": "2026-07-28", "caps": {"roots": {}}, "info": "me"}})
        );
        // A `_meta` that is not an object is written as it is.
        let sent = edited(json!({"name": "t", "_meta": 5}), edit);
        assert_eq!(sent, json!({"name": "t", "_meta": 5}));
    }

    #[test]
    fn a_meta_edited_to_nothing_is_left_out() {
        let edit = MetaEdit {
            drop: &["v", "caps"],
            ..MetaEdit::default()
        };
        let sent = edited(json!({"name": "t", "_meta": {"v": "x", "caps": {}}}), edit);
        assert_eq!(sent, json!({"name": "t"}));
        let sent = edited(json!({"_meta": {"v": "x", "progressToken": "p"}}), edit);
        assert_eq!(sent, json!({"_meta": {"progressToken": "p"}}));
        // A notification whose params end up empty has none.
        let params = json!({"_meta": {"v": "x"}}).as_object().cloned().unwrap();
        let bytes = notification_bytes_edited("notifications/initialized", &params, edit);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        );
    }

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let m = Message::from_slice(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert!(matches!(
            m,
            Message::Request(Request {
                id: RequestId::Number(7),
                ..
            })
        ));
        let m =
            Message::from_slice(br#"{"jsonrpc":"2.0","id":"a","method":"x","params":{}}"#).unwrap();
        assert!(
            matches!(m, Message::Request(Request { id: RequestId::String(ref s), .. }) if s == "a")
        );
        let m = Message::from_slice(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .unwrap();
        assert!(matches!(m, Message::Notification(_)));
        let m = Message::from_slice(br#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#).unwrap();
        match m {
            Message::Response(Response {
                outcome: Ok(raw), ..
            }) => assert_eq!(raw.get(), r#"{"a":1}"#),
            other => panic!("{other:?}"),
        }
        let m = Message::from_slice(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            Message::Response(Response {
                id: None,
                outcome: Err(_)
            })
        ));
    }

    #[test]
    fn a_result_keeps_the_bytes_the_peer_sent() {
        let raw = r#"{"z": 2.50, "a":[1e3, "\u00e9"] }"#;
        let m =
            Message::from_slice(format!(r#"{{"jsonrpc":"2.0","id":1,"result":{raw}}}"#).as_bytes())
                .unwrap();
        match m {
            Message::Response(Response {
                outcome: Ok(result),
                ..
            }) => assert_eq!(result.get(), raw),
            other => panic!("not a result: {other:?}"),
        }
    }

    #[test]
    fn rejects_malformed_messages_with_the_right_codes() {
        assert_eq!(
            Message::from_slice(b"{not json").unwrap_err().code,
            PARSE_ERROR
        );
        for bad in [
            r#"[]"#,
            r#"42"#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","method":7}"#,
            r#"["2.0", 1, "ping"]"#,
            r#" ["2.0", 1, "ping", null, null, null]"#,
        ] {
            let err = Message::from_slice(bad.as_bytes()).unwrap_err();
            assert_eq!(err.code, INVALID_REQUEST, "{bad}");
        }
    }

    #[test]
    fn serializes_envelopes_byte_exact() {
        let id = RequestId::String("x\"y".into());
        let params = json!({"b": 1, "a": [true]});
        assert_eq!(
            String::from_utf8(request_bytes(&id, "tools/call", Some(&params))).unwrap(),
            r#"{"jsonrpc":"2.0","id":"x\"y","method":"tools/call","params":{"b":1,"a":[true]}}"#
        );
        assert_eq!(
            String::from_utf8(notification_bytes("notifications/initialized", None)).unwrap(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        );
        assert_eq!(
            String::from_utf8(result_bytes(&id, br#"{"b":1,"a":2}"#)).unwrap(),
            r#"{"jsonrpc":"2.0","id":"x\"y","result":{"b":1,"a":2}}"#
        );
        let e = ErrorObject::method_not_found("nope").with_data(json!({"k": [1]}));
        let v: Value = serde_json::from_slice(&error_bytes(None, &e)).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found: nope","data":{"k":[1]}}})
        );
        let v: Value =
            serde_json::from_slice(&request_bytes(&RequestId::Number(3), "ping", None)).unwrap();
        assert_eq!(v, json!({"jsonrpc":"2.0","id":3,"method":"ping"}));
    }
}
