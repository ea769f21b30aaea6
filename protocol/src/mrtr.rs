//! Mid-call questions across eras: the conversions a relay needs between a legacy
//! server-to-client request (`elicitation/create`, `sampling/createMessage`,
//! `roots/list` sent on a call's stream) and a 2026-07-28 multi round-trip request
//! (an `InputRequest` inside an `input_required` result, answered in the retry's
//! `inputResponses`).
//!
//! Each function is pure, so every conversion is tested against the schemas of both
//! revisions (`protocol/tests/crossera.rs`).

use crate::jsonrpc::{Message, Notification};
use crate::mcp::{Era, method};
use bytes::Bytes;
use serde_json::{Map, Value, json};

/// Params keys of a legacy server-to-client request that have no 2026-07-28
/// counterpart: `_meta` (a progress token for the client's work), `task` (task
/// augmentation) and `elicitationId` (URL mode: the legacy completion notification's
/// key; 2026-07-28 resumes through the retry instead).
const LEGACY_ONLY_PARAMS: [&str; 3] = ["_meta", "task", "elicitationId"];

/// The 2026-07-28 `InputRequest` for a legacy server-to-client request.
pub fn input_request(method_name: &str, params: &Map<String, Value>) -> Value {
    let mut params = params.clone();
    for key in LEGACY_ONLY_PARAMS {
        params.shift_remove(key);
    }
    if method_name == method::ROOTS_LIST && params.is_empty() {
        return json!({ "method": method_name });
    }
    json!({ "method": method_name, "params": params })
}

/// The params of the legacy request that asks a legacy client what a 2026-07-28
/// `InputRequest` asks. URL-mode elicitation gets the `elicitationId` legacy
/// revisions require, made from `id_hint` (unique per question).
pub fn legacy_params(
    method_name: &str,
    params: &Map<String, Value>,
    id_hint: &str,
) -> Map<String, Value> {
    let mut params = params.clone();
    if method_name == method::ELICIT
        && params.get("mode").and_then(Value::as_str) == Some("url")
        && !params.contains_key("elicitationId")
    {
        params.insert("elicitationId".into(), id_hint.into());
    }
    params
}

/// A client's answer as the asking side of the other era expects it: the result
/// object without the envelope fields a 2026-07-28 result may carry (`resultType`).
pub fn answer(mut result: Value) -> Value {
    if let Value::Object(m) = &mut result {
        m.shift_remove("resultType");
    }
    result
}

/// Whether a backend's notification means anything to a client of `era`:
/// `notifications/elicitation/complete` exists only in legacy revisions.
pub fn relayable_to(era: Era, notification: &[u8]) -> bool {
    if era == Era::Legacy {
        return true;
    }
    !matches!(Message::from_slice(notification),
        Ok(Message::Notification(Notification { method: m, .. })) if m == method::ELICITATION_COMPLETE)
}

/// A `notifications/progress` re-addressed to `token` (a call resumed by a retry
/// reports progress under the retry's token); other notifications unchanged.
pub fn readdress_progress(notification: Bytes, token: &Value) -> Bytes {
    let Ok(Message::Notification(mut n)) = Message::from_slice(&notification) else {
        return notification;
    };
    if n.method != method::PROGRESS {
        return notification;
    }
    let Some(params) = n.params.as_mut() else {
        return notification;
    };
    if params.get("progressToken") == Some(token) {
        return notification;
    }
    params.insert("progressToken".into(), token.clone());
    Bytes::from(crate::jsonrpc::notification_bytes(
        &n.method,
        Some(&Value::Object(params.clone())),
    ))
}
