//! The vocabulary of MCP tasks in both shapes, so servers, the gateway and tests agree
//! on it: the 2025-11-25 task-augmented requests (`params.task`, `tasks/get`,
//! `tasks/result`, `tasks/list`, `tasks/cancel`) and the 2026-07-28
//! `io.modelcontextprotocol/tasks` extension (`resultType: "task"`, `tasks/get`
//! carrying the result, `tasks/update`, `tasks/cancel`), with the conversions
//! between the two `Task` shapes.

use serde_json::{Map, Value, json};

use crate::mcp::{ProtocolVersion, meta};

/// The 2026-07-28 extension's identifier, in `capabilities.extensions`.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// Poll a task's state (both shapes; in 2026-07-28 it carries the result too).
pub const GET: &str = "tasks/get";
/// 2025-11-25: wait for a task's result.
pub const RESULT: &str = "tasks/result";
/// 2025-11-25: list the caller's tasks.
pub const LIST: &str = "tasks/list";
/// Ask a task to stop (both shapes).
pub const CANCEL: &str = "tasks/cancel";
/// 2026-07-28: answer a task's input requests.
pub const UPDATE: &str = "tasks/update";
/// 2025-11-25 status notification.
pub const STATUS_NOTIFICATION: &str = "notifications/tasks/status";
/// 2026-07-28 status notification (on a listen stream).
pub const NOTIFICATION: &str = "notifications/tasks";
/// `_meta` key tying a message to a task (2025-11-25).
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// JSON-RPC error: the request needs a client capability it did not declare.
pub const MISSING_CAPABILITY: i64 = -32021;

/// Whether `method_name` is one of the task methods of either shape.
pub fn is_task_method(method_name: &str) -> bool {
    matches!(method_name, GET | RESULT | LIST | CANCEL | UPDATE)
}

/// Whether a task status is final.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// 2026-07-28: whether the request's client capabilities (`_meta`) declare the tasks
/// extension, which is what lets a server answer with a task.
pub fn declares_extension(params: &Map<String, Value>) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get(meta::CLIENT_CAPABILITIES))
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(EXTENSION))
        .is_some_and(Value::is_object)
}

/// 2025-11-25: the `params.task` of a task-augmented request, when there is one.
pub fn requested(params: &Map<String, Value>) -> Option<&Map<String, Value>> {
    params.get("task").and_then(Value::as_object)
}

/// The `taskId` param of a task method.
pub fn task_id(params: &Map<String, Value>) -> Option<&str> {
    params.get("taskId").and_then(Value::as_str)
}

/// A 2026-07-28 `Task` (as in `CreateTaskResult` or `tasks/get`) in the 2025-11-25
/// shape: `ttlMs` and `pollIntervalMs` renamed, the result, error, input requests
/// and `resultType` left out (2025-11-25 fetches the result with `tasks/result`).
pub fn to_legacy_task(task: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in task {
        match k.as_str() {
            "ttlMs" => {
                out.insert("ttl".into(), v.clone());
            }
            "pollIntervalMs" => {
                out.insert("pollInterval".into(), v.clone());
            }
            "resultType" | "result" | "error" | "inputRequests" | "_meta" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.entry("ttl").or_insert(Value::Null);
    out
}

/// A 2025-11-25 `Task` in the 2026-07-28 shape (`resultType` not included).
pub fn to_modern_task(task: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in task {
        match k.as_str() {
            "ttl" => {
                out.insert("ttlMs".into(), v.clone());
            }
            "pollInterval" => {
                out.insert("pollIntervalMs".into(), v.clone());
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.entry("ttlMs").or_insert(Value::Null);
    out
}

/// The capabilities a server announces, in the shape of `version`: tasks are
/// `capabilities.tasks` at 2025-11-25, the extension in `capabilities.extensions`
/// at 2026-07-28, and absent before 2025-11-25.
pub fn capabilities_for(version: ProtocolVersion, capabilities: &Value) -> Value {
    let Some(caps) = capabilities.as_object() else {
        return capabilities.clone();
    };
    if !caps.contains_key("tasks") && !caps.contains_key("extensions") {
        return capabilities.clone();
    }
    let mut out = caps.clone();
    if version.era() == crate::mcp::Era::Modern {
        out.shift_remove("tasks");
    } else {
        out.shift_remove("extensions");
        if version < ProtocolVersion::V2025_11_25 {
            out.shift_remove("tasks");
        }
    }
    Value::Object(out)
}

/// The 2025-11-25 server capability for task-augmented tool calls with list and
/// cancel.
pub fn legacy_capability() -> Value {
    json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } })
}

/// Whether a server's capabilities (either shape) offer task-augmented tool calls.
pub fn offered(capabilities: &Value) -> bool {
    capabilities
        .pointer("/tasks/requests/tools/call")
        .is_some_and(Value::is_object)
        || capabilities
            .get("extensions")
            .and_then(|e| e.get(EXTENSION))
            .is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_convert_between_shapes() {
        let modern = json!({"resultType": "complete", "taskId": "t", "status": "completed",
            "createdAt": "a", "lastUpdatedAt": "b", "ttlMs": 5, "pollIntervalMs": 10,
            "result": {"content": []}});
        let legacy = to_legacy_task(modern.as_object().unwrap());
        assert_eq!(
            Value::Object(legacy.clone()),
            json!({"taskId": "t", "status": "completed", "createdAt": "a",
                "lastUpdatedAt": "b", "ttl": 5, "pollInterval": 10})
        );
        let back = to_modern_task(&legacy);
        assert_eq!(back["ttlMs"], 5);
        assert_eq!(back["pollIntervalMs"], 10);
        assert!(to_legacy_task(&Map::new())["ttl"].is_null());
    }

    #[test]
    fn capabilities_follow_the_revision() {
        let caps = json!({"tools": {}, "tasks": legacy_capability(),
            "extensions": {EXTENSION: {}}});
        let modern = capabilities_for(ProtocolVersion::V2026_07_28, &caps);
        assert!(modern.get("tasks").is_none() && modern["extensions"][EXTENSION].is_object());
        let legacy = capabilities_for(ProtocolVersion::V2025_11_25, &caps);
        assert!(legacy.get("extensions").is_none() && legacy["tasks"].is_object());
        let old = capabilities_for(ProtocolVersion::V2025_06_18, &caps);
        assert!(old.get("extensions").is_none() && old.get("tasks").is_none());
        assert!(offered(&caps));
        assert!(!offered(&json!({"tools": {}})));
    }

    #[test]
    fn the_extension_is_read_from_the_request_capabilities() {
        let with = json!({"_meta": {meta::CLIENT_CAPABILITIES: {"extensions": {EXTENSION: {}}}}});
        assert!(declares_extension(with.as_object().unwrap()));
        let without = json!({"_meta": {meta::CLIENT_CAPABILITIES: {}}});
        assert!(!declares_extension(without.as_object().unwrap()));
    }
}
