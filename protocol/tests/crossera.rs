//! Every cross-era conversion a relay makes (`mcp_protocol::mrtr`, the `resultType`
//! reshaping in `mcp`), checked against the official schemas of both revisions: what
//! goes in is valid in its revision, what comes out is valid in the other.

mod common;
use bytes::Bytes;
use common::schema::{LEGACY, MODERN, assert_invalid, assert_valid};
use mcp_protocol::jsonrpc::{self, RequestId};
use mcp_protocol::mcp::{self, Era, method};
use mcp_protocol::mrtr;
use serde_json::{Map, Value, json};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

/// A legacy server-to-client request as it arrives on a call's stream.
fn legacy_request(id: i64, method_name: &str, params: Value) -> Value {
    let bytes = jsonrpc::request_bytes(&RequestId::Number(id), method_name, Some(&params));
    serde_json::from_slice(&bytes).unwrap()
}

fn form_params() -> Value {
    json!({"mode": "form", "message": "Proceed?", "_meta": {"progressToken": 7},
           "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}})
}

fn url_params() -> Value {
    json!({"mode": "url", "message": "Connect your account", "elicitationId": "connect-1",
           "url": "https://accounts.example.com/connect?x=1"})
}

fn sampling_params() -> Value {
    json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Say hi"}}],
           "maxTokens": 32, "systemPrompt": "Be brief."})
}

#[test]
fn legacy_questions_become_valid_2026_input_requests() {
    let cases = [
        (method::ELICIT, form_params(), "ElicitRequest"),
        (method::ELICIT, url_params(), "ElicitRequest"),
        (method::SAMPLING, sampling_params(), "CreateMessageRequest"),
        (method::ROOTS_LIST, json!({}), "ListRootsRequest"),
        (
            method::ROOTS_LIST,
            json!({"_meta": {"progressToken": 1}}),
            "ListRootsRequest",
        ),
    ];
    for (m, params, def) in cases {
        assert_valid("2025-11-25", def, &legacy_request(3, m, params.clone()));
        let converted = mrtr::input_request(m, &obj(params));
        assert_valid(MODERN, "InputRequest", &converted);
        assert_valid(MODERN, def, &converted);
        assert!(converted.get("id").is_none(), "{converted}");
        let p = &converted["params"];
        assert!(
            p.get("_meta").is_none() && p.get("elicitationId").is_none(),
            "{converted}"
        );
    }
    // A 2025-06-18 form question (no `mode` yet) converts the same way.
    let mut p = form_params();
    p.as_object_mut().unwrap().shift_remove("mode");
    assert_valid(
        "2025-06-18",
        "ElicitRequest",
        &legacy_request(1, method::ELICIT, p.clone()),
    );
    assert_valid(
        MODERN,
        "InputRequest",
        &mrtr::input_request(method::ELICIT, &obj(p)),
    );
}

#[test]
fn the_gateways_input_required_result_is_valid_2026() {
    let mut requests = Map::new();
    requests.insert(
        "gw-3".into(),
        mrtr::input_request(method::ELICIT, &obj(form_params())),
    );
    requests.insert(
        "gw-4".into(),
        mrtr::input_request(method::ROOTS_LIST, &Map::new()),
    );
    let result = mcp::input_required_result(requests, Some("k8sgw1.AAAA"));
    assert_valid(MODERN, "InputRequiredResult", &result);
    let bytes = jsonrpc::result_bytes(&RequestId::Number(9), &serde_json::to_vec(&result).unwrap());
    let response: Value = serde_json::from_slice(&bytes).unwrap();
    assert_valid(MODERN, "JSONRPCResultResponse", &response);
}

#[test]
fn input_requests_become_valid_legacy_requests() {
    let url = obj(json!({"mode": "url", "message": "Connect", "url": "https://x.example/c"}));
    let modern = json!({"method": method::ELICIT, "params": url});
    assert_valid(MODERN, "InputRequest", &modern);
    // 2025-11-25 requires an elicitationId in URL mode: the relay adds one.
    let without = legacy_request(5, method::ELICIT, Value::Object(url.clone()));
    assert_invalid("2025-11-25", "ElicitRequest", &without);
    let params = mrtr::legacy_params(method::ELICIT, &url, "confirm-1");
    assert_eq!(params["elicitationId"], "confirm-1");
    let request = legacy_request(5, method::ELICIT, Value::Object(params));
    assert_valid("2025-11-25", "ElicitRequest", &request);
    assert_valid("2025-11-25", "JSONRPCRequest", &request);
    // Form mode, sampling and roots need nothing added.
    for (m, p, def) in [
        (method::ELICIT, form_params(), "ElicitRequest"),
        (method::SAMPLING, sampling_params(), "CreateMessageRequest"),
    ] {
        let mut p = obj(p);
        p.shift_remove("_meta");
        let out = mrtr::legacy_params(m, &p, "k");
        assert_eq!(out, p);
        assert_valid("2025-11-25", def, &legacy_request(1, m, Value::Object(out)));
    }
}

#[test]
fn answers_are_valid_on_both_sides() {
    let answers = [
        (
            json!({"action": "accept", "content": {"ok": true}}),
            "ElicitResult",
        ),
        (json!({"action": "accept"}), "ElicitResult"),
        (json!({"action": "decline"}), "ElicitResult"),
        (
            json!({"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m", "stopReason": "endTurn"}),
            "CreateMessageResult",
        ),
        (
            json!({"roots": [{"uri": "file:///work", "name": "work"}]}),
            "ListRootsResult",
        ),
    ];
    for (a, def) in answers {
        // A 2026-07-28 client's inputResponses entry, to a legacy backend.
        assert_valid(MODERN, "InputResponse", &a);
        let to_legacy = mrtr::answer(a.clone());
        for rev in ["2025-06-18", "2025-11-25"] {
            assert_valid(rev, def, &to_legacy);
        }
        // A legacy client's answer (it may carry resultType from a modern SDK).
        let mut with_type = a.clone();
        with_type["resultType"] = "complete".into();
        let to_modern = mrtr::answer(with_type);
        assert_eq!(to_modern, a);
        assert_valid(MODERN, "InputResponse", &to_modern);
    }
    let mut responses = Map::new();
    responses.insert("gw-3".into(), json!({"action": "accept"}));
    assert_valid(MODERN, "InputResponses", &Value::Object(responses));
}

#[test]
fn tool_results_are_reshaped_validly_between_eras() {
    let legacy = json!({"content": [{"type": "text", "text": "n1: ok"}], "isError": false});
    for rev in LEGACY {
        assert_valid(rev, "CallToolResult", &legacy);
    }
    let mut modern = legacy.clone();
    mcp::ensure_result_type(&mut modern);
    assert_eq!(modern["resultType"], "complete");
    assert_valid(MODERN, "CallToolResult", &modern);
    let mut back = modern.clone();
    mcp::strip_result_type(&mut back);
    assert_eq!(back, legacy);
}

#[test]
fn progress_follows_the_retry_and_legacy_only_notifications_stay_legacy() {
    let note = jsonrpc::notification_bytes(
        method::PROGRESS,
        Some(&json!({"progressToken": "first", "progress": 1, "total": 3})),
    );
    let moved = mrtr::readdress_progress(Bytes::from(note.clone()), &json!("retry-2"));
    let v: Value = serde_json::from_slice(&moved).unwrap();
    assert_eq!(v["params"]["progressToken"], "retry-2");
    assert_eq!(v["params"]["progress"], 1);
    assert_valid(MODERN, "ProgressNotification", &v);
    assert_valid("2025-11-25", "ProgressNotification", &v);
    let same = mrtr::readdress_progress(Bytes::from(note.clone()), &json!("first"));
    assert_eq!(&same[..], &note[..]);
    let log = jsonrpc::notification_bytes(
        method::MESSAGE,
        Some(&json!({"level": "info", "data": "x"})),
    );
    assert_eq!(
        &mrtr::readdress_progress(Bytes::from(log.clone()), &json!(1))[..],
        &log[..]
    );
    let complete = jsonrpc::notification_bytes(
        method::ELICITATION_COMPLETE,
        Some(&json!({"elicitationId": "connect-1"})),
    );
    let v: Value = serde_json::from_slice(&complete).unwrap();
    assert_valid("2025-11-25", "ElicitationCompleteNotification", &v);
    assert!(mrtr::relayable_to(Era::Legacy, &complete));
    assert!(!mrtr::relayable_to(Era::Modern, &complete));
    assert!(mrtr::relayable_to(Era::Modern, &log));
}
