//! The schema harness shared by the protocol tests (and the gateway's, through
//! `#[path]`): the official JSON Schema of
//! every MCP revision (`tests/mcp-schema/`, a copy of `../shared/mcp-schema/`),
//! parsed and compiled once per definition, and assertions on messages.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

// ------------------------------------------------------------------------------------

pub const LEGACY: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
pub const MODERN: &str = "2026-07-28";
pub const ALL: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// The schemas: `tests/mcp-schema` of the protocol crate (this file is also compiled
/// into the gateway's tests, whose manifest directory is the workspace root).
pub fn schema_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = root.join("tests/mcp-schema");
    if own.is_dir() {
        own
    } else {
        root.join("protocol/tests/mcp-schema")
    }
}

/// The schema document of a revision, parsed once.
pub fn schema_doc(rev: &str) -> &'static Value {
    static DOCS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        ALL.iter()
            .map(|rev| {
                let path = schema_dir().join(format!("{rev}.json"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let doc: Value = serde_json::from_str(&text).expect("schema is JSON");
                (rev.to_string(), doc)
            })
            .collect()
    });
    docs.get(rev)
        .unwrap_or_else(|| panic!("no schema for {rev}"))
}

/// The name of the definitions section (`definitions` in draft-07, `$defs` in 2020-12).
pub fn defs_key(rev: &str) -> &'static str {
    if schema_doc(rev).get("$defs").is_some() {
        "$defs"
    } else {
        "definitions"
    }
}

/// A validator for one definition of one revision, compiled once.
pub fn validator(rev: &str, def: &str) -> Arc<jsonschema::Validator> {
    type Cache = Mutex<HashMap<(String, String), Arc<jsonschema::Validator>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (rev.to_string(), def.to_string());
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return v.clone();
    }
    let doc = schema_doc(rev);
    let defs_key = defs_key(rev);
    assert!(
        doc[defs_key].get(def).is_some(),
        "{rev} has no definition {def}"
    );
    let schema = json!({
        "$schema": doc["$schema"].clone(),
        defs_key: doc[defs_key].clone(),
        "$ref": format!("#/{defs_key}/{def}"),
    });
    let compiled = Arc::new(
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{rev} {def} does not compile: {e}")),
    );
    cache.lock().unwrap().insert(key, compiled.clone());
    compiled
}

pub fn has_def(rev: &str, def: &str) -> bool {
    schema_doc(rev)[defs_key(rev)].get(def).is_some()
}

#[track_caller]
pub fn assert_valid(rev: &str, def: &str, instance: &Value) {
    let v = validator(rev, def);
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not a valid {rev} {def}:\n  {}\ninstance: {instance:#}",
        errors.join("\n  ")
    );
}

#[track_caller]
pub fn assert_invalid(rev: &str, def: &str, instance: &Value) {
    assert!(
        !validator(rev, def).is_valid(instance),
        "{rev} {def} unexpectedly accepts {instance:#}"
    );
}

/// The envelope definition of a success response in a revision.
pub fn result_envelope(rev: &str) -> &'static str {
    if has_def(rev, "JSONRPCResultResponse") {
        "JSONRPCResultResponse"
    } else {
        "JSONRPCResponse"
    }
}

/// The envelope definition of an error response in a revision.
pub fn error_envelope(rev: &str) -> &'static str {
    if has_def(rev, "JSONRPCErrorResponse") {
        "JSONRPCErrorResponse"
    } else {
        "JSONRPCError"
    }
}

/// Validates a success response: the envelope and its `result` as `result_def`.
#[track_caller]
pub fn assert_result(rev: &str, result_def: &str, response: &Value) {
    assert_valid(rev, result_envelope(rev), response);
    assert_valid(rev, result_def, &response["result"]);
}

/// Validates an error response (the envelope); a null id is checked and removed first.
#[track_caller]
pub fn assert_error(rev: &str, response: &Value, code: i64) -> Value {
    assert_eq!(response["error"]["code"], code, "{response}");
    let mut r = response.clone();
    if r.get("id") == Some(&Value::Null) {
        r.as_object_mut().unwrap().shift_remove("id");
        if !has_def(rev, "JSONRPCErrorResponse") {
            // 2025-03-26 / 2025-06-18 require an id; check everything but that.
            r["id"] = json!(0);
        }
    }
    assert_valid(rev, error_envelope(rev), &r);
    r
}
