//! The capabilities the gateway announces (initialize, server/discover): the union
//! of what its backends announce, limited to what the gateway relays, so a client is
//! never promised a feature no node offers nor one the gateway would drop.
//!
//! `tools` is always there (the gateway serves its catalog, and tells clients when it
//! changes); every other capability is announced when at least one backend announces
//! it and the gateway relays it ([`RELAYED`]). Sub-flags describe the gateway's own
//! behaviour, not the backends', so they are the gateway's.

use serde_json::{Map, Value, json};

/// The backend capabilities the gateway relays, with what it announces for each.
pub const RELAYED: &[&str] = &["logging", "prompts", "completions", "resources"];

/// The capabilities to announce over backends announcing `backends`.
pub fn union<'a>(backends: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut out = Map::new();
    out.insert("tools".into(), json!({ "listChanged": true }));
    for caps in backends {
        let Some(caps) = caps.as_object() else {
            continue;
        };
        for key in RELAYED {
            if caps.get(*key).is_some_and(Value::is_object) && !out.contains_key(*key) {
                // The gateway relays the backends' prompt and resource list changes.
                let own = match *key {
                    "prompts" | "resources" => json!({ "listChanged": true }),
                    _ => json!({}),
                };
                out.insert((*key).into(), own);
            }
        }
        if caps.get("resources").and_then(|r| r.get("subscribe")) == Some(&Value::Bool(true))
            && let Some(r) = out.get_mut("resources")
        {
            // Subscriptions are relayed to the backends that offer them.
            r["subscribe"] = true.into();
        }
        if mcp_protocol::tasks::offered(&Value::Object(caps.clone())) && !out.contains_key("tasks")
        {
            // Both shapes: each revision is shown its own (see crate::tasks).
            out.insert("tasks".into(), mcp_protocol::tasks::legacy_capability());
            out.insert(
                "extensions".into(),
                json!({ mcp_protocol::tasks::EXTENSION: {} }),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_keeps_what_some_backend_offers_and_the_gateway_relays() {
        let logs = json!({"tools": {}, "logging": {}});
        let quiet = json!({"tools": {"listChanged": false}});
        let odd = json!({"tools": {}, "experimental": {"x": {}}, "logging": true});
        assert_eq!(
            union([&logs, &quiet]),
            json!({"tools": {"listChanged": true}, "logging": {}})
        );
        assert_eq!(union([&quiet]), json!({"tools": {"listChanged": true}}));
        // Not relayed (experimental) or malformed (logging: true): not announced.
        assert_eq!(union([&odd]), json!({"tools": {"listChanged": true}}));
        assert_eq!(union([]), json!({"tools": {"listChanged": true}}));
    }
}
