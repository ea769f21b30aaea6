//! Hand-written checking of tool arguments.
//!
//! The inputSchemas are published for clients; at run time the server does
//! not carry a JSON Schema engine. These helpers enforce the same rules
//! (unknown keys, types, bounds, enums) and word every rejection so a model
//! can fix its call: the argument, what it sent, and what is allowed.
//!
//! A `null` value is treated like an absent argument (some clients send
//! `null` for "not set"); everything else must match the schema exactly.

use serde_json::{Map, Value};

use super::CallError;

/// The arguments of one call, already checked for unknown keys.
pub(super) struct Args<'a> {
    /// Tool name, for the messages.
    tool: &'static str,
    /// The raw arguments object.
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// Accepts `map` if every key is one of `allowed`.
    pub(super) fn new(
        tool: &'static str,
        map: &'a Map<String, Value>,
        allowed: &[&str],
    ) -> Result<Self, CallError> {
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let message = if allowed.is_empty() {
                format!("{tool} takes no arguments, but `{key}` was given; call it with {{}}")
            } else {
                format!(
                    "{tool} has no argument `{key}`; the allowed arguments are {}",
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(CallError::InvalidArguments(message));
        }
        Ok(Self { tool, map })
    }

    /// The value of `name`, with `null` counting as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// The rejection of `value` for argument `name`.
    fn invalid(&self, name: &str, expected: &str, value: &Value) -> CallError {
        CallError::InvalidArguments(format!(
            "invalid argument `{name}` for {}: expected {expected}, got {}",
            self.tool,
            describe(value)
        ))
    }

    /// An integer argument in `min..=max`, or `default` when absent.
    /// Accepts integral floats such as `5.0`, as JSON Schema's `integer` does.
    pub(super) fn integer(
        &self,
        name: &str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Result<i64, CallError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let expected = format!("an integer from {min} to {max}");
        let number = match value {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        match number {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(name, &expected, value)),
        }
    }

    /// A non-empty string argument of at most `max_chars` characters, or
    /// `None` when absent.
    pub(super) fn string(
        &self,
        name: &str,
        max_chars: usize,
    ) -> Result<Option<&'a str>, CallError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let expected = format!("a non-empty string of at most {max_chars} characters");
        match value.as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= max_chars => Ok(Some(s)),
            _ => Err(self.invalid(name, &expected, value)),
        }
    }

    /// One of the strings in `allowed`, or `default` when absent.
    pub(super) fn one_of(
        &self,
        name: &str,
        allowed: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str, CallError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        if let Some(found) = value
            .as_str()
            .and_then(|s| allowed.iter().find(|a| **a == s))
        {
            return Ok(found);
        }
        let choices = allowed
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Err(self.invalid(name, &format!("one of {choices}"), value))
    }

    /// A boolean argument, or `default` when absent.
    pub(super) fn boolean(&self, name: &str, default: bool) -> Result<bool, CallError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.invalid(name, "true or false", other)),
        }
    }
}

/// Describes a JSON value for an error message, quoting short scalars and
/// naming the type of anything else.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.is_empty() => "an empty string".to_owned(),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {value}"),
        Value::String(s) => format!("a string of {} characters", s.chars().count()),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn message(err: CallError) -> String {
        match err {
            CallError::InvalidArguments(m) => m,
            other => panic!("expected InvalidArguments, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_named_with_the_allowed_ones() {
        let m = map(json!({"limt": 3}));
        let err = Args::new("list_processes", &m, &["name_filter", "limit"]).err();
        assert_eq!(
            message(err.unwrap()),
            "list_processes has no argument `limt`; the allowed arguments are `name_filter`, `limit`"
        );
        let m = map(json!({"x": 1}));
        let err = Args::new("node_info", &m, &[]).err();
        assert_eq!(
            message(err.unwrap()),
            "node_info takes no arguments, but `x` was given; call it with {}"
        );
    }

    #[test]
    fn integers_are_bounded_and_typed() {
        let m = map(json!({"a": 0, "b": "5", "c": 5.0, "d": 2.5, "e": null, "f": 1e300}));
        let args = Args::new("t", &m, &["a", "b", "c", "d", "e", "f"]).unwrap();
        assert_eq!(
            message(args.integer("a", 1, 500, 20).unwrap_err()),
            "invalid argument `a` for t: expected an integer from 1 to 500, got the number 0"
        );
        assert_eq!(
            message(args.integer("b", 1, 500, 20).unwrap_err()),
            "invalid argument `b` for t: expected an integer from 1 to 500, got the string \"5\""
        );
        assert_eq!(args.integer("c", 1, 500, 20).unwrap(), 5);
        assert!(args.integer("d", 1, 500, 20).is_err());
        assert_eq!(args.integer("e", 1, 500, 20).unwrap(), 20);
        assert!(args.integer("f", 1, 500, 20).is_err());
        assert_eq!(args.integer("missing", 1, 500, 20).unwrap(), 20);
    }

    #[test]
    fn strings_enums_and_booleans() {
        let m = map(json!({"s": "", "l": "x".repeat(50), "e": "name", "b": "yes", "ok": "cpu"}));
        let args = Args::new("t", &m, &["s", "l", "e", "b", "ok"]).unwrap();
        assert_eq!(
            message(args.string("s", 10).unwrap_err()),
            "invalid argument `s` for t: expected a non-empty string of at most 10 characters, got an empty string"
        );
        assert_eq!(
            message(args.string("l", 10).unwrap_err()),
            "invalid argument `l` for t: expected a non-empty string of at most 10 characters, got a string of 50 characters"
        );
        assert_eq!(args.string("missing", 10).unwrap(), None);
        assert_eq!(
            message(args.one_of("e", &["memory", "cpu"], "memory").unwrap_err()),
            "invalid argument `e` for t: expected one of \"memory\", \"cpu\", got the string \"name\""
        );
        assert_eq!(
            args.one_of("ok", &["memory", "cpu"], "memory").unwrap(),
            "cpu"
        );
        assert_eq!(
            args.one_of("none", &["memory", "cpu"], "memory").unwrap(),
            "memory"
        );
        assert_eq!(
            message(args.boolean("b", false).unwrap_err()),
            "invalid argument `b` for t: expected true or false, got the string \"yes\""
        );
        assert!(!args.boolean("none", false).unwrap());
    }

    #[test]
    fn describe_names_composite_values() {
        assert_eq!(describe(&json!([1])), "an array");
        assert_eq!(describe(&json!({})), "an object");
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!(true)), "true");
    }
}
