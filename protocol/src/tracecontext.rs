//! W3C Trace Context (`traceparent` / `tracestate`) as MCP carries it: in a request's
//! `params._meta` (the MCP convention, which survives any transport) or in the HTTP
//! headers. Parsing is strict and never fails loudly: a malformed value is simply no
//! context, and the receiver starts a fresh trace.
//!
//! Also the context an outgoing call carries: [`with_outgoing`] scopes it to the
//! task making the call, and the MCP client adds it to the HTTP request's headers
//! ([`add_outgoing_headers`]), so a backend call continues the gateway's trace
//! without every layer between the handler and the client passing it along.

use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use std::future::Future;

/// The W3C header and `_meta` key of the trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header and `_meta` key of the vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` kept (W3C: 32 members of at most 256 bytes; receivers may
/// truncate). A longer one is dropped, not cut mid-member.
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// A parsed `traceparent`: which trace, which span is the parent, sampled or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The 16-byte trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The 8-byte id of the parent span (never all zero).
    pub span_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` for anything W3C says to ignore
    /// (wrong lengths, upper-case or non-hex digits, version `ff`, zero ids, and a
    /// version-00 value with trailing data).
    pub fn parse(text: &str) -> Option<TraceParent> {
        let b = text.trim().as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex_byte(&b[0..2])?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, out) in trace_id.iter_mut().enumerate() {
            *out = hex_byte(&b[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, out) in span_id.iter_mut().enumerate() {
            *out = hex_byte(&b[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&b[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    /// Whether the sender sampled (recorded) its span.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The version-00 text form.
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.span_id);
        s.push('-');
        push_hex(&mut s, &[self.flags]);
        s
    }
}

/// A trace parent and the vendor state that travels with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The parent.
    pub parent: TraceParent,
    /// `tracestate` as received (validated as printable ASCII, bounded), if any.
    pub state: Option<String>,
}

impl TraceContext {
    /// A context from the two texts; `None` when the parent is missing or malformed.
    /// A malformed state is dropped and the parent kept (W3C: the parent wins).
    pub fn from_parts(parent: Option<&str>, state: Option<&str>) -> Option<TraceContext> {
        let parent = TraceParent::parse(parent?)?;
        let state = state
            .map(str::trim)
            .filter(|s| !s.is_empty() && valid_state(s))
            .map(str::to_owned);
        Some(TraceContext { parent, state })
    }

    /// The context in `params._meta`, if it carries a valid `traceparent`.
    pub fn from_meta(params: &Map<String, Value>) -> Option<TraceContext> {
        let meta = params.get("_meta")?.as_object()?;
        TraceContext::from_parts(
            meta.get(TRACEPARENT).and_then(Value::as_str),
            meta.get(TRACESTATE).and_then(Value::as_str),
        )
    }

    /// The context in the HTTP headers, if they carry a valid `traceparent` (one;
    /// a repeated header is ambiguous and ignored).
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let one = |name: &str| {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(v), None) => v.to_str().ok(),
                _ => None,
            }
        };
        TraceContext::from_parts(one(TRACEPARENT), one(TRACESTATE))
    }

    /// The context a request continues: `_meta` first (the MCP convention), else
    /// the HTTP headers the front layer found (`headers`).
    pub fn incoming(
        params: &Map<String, Value>,
        headers: Option<&TraceContext>,
    ) -> Option<TraceContext> {
        TraceContext::from_meta(params).or_else(|| headers.cloned())
    }

    /// Replaces `_meta.traceparent` / `tracestate` of `params` with this context
    /// when `_meta` already carries a `traceparent` (so the next server sees this
    /// context as its parent); otherwise `params` stay as they are.
    pub fn replace_in_meta(&self, params: &mut Map<String, Value>) {
        let Some(Value::Object(meta)) = params.get_mut("_meta") else {
            return;
        };
        if !meta.contains_key(TRACEPARENT) {
            return;
        }
        meta.insert(TRACEPARENT.into(), self.parent.to_header().into());
        match &self.state {
            Some(s) => {
                meta.insert(TRACESTATE.into(), s.clone().into());
            }
            None => {
                meta.shift_remove(TRACESTATE);
            }
        }
    }

    /// Sets the `traceparent` / `tracestate` headers.
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.parent.to_header()) {
            headers.insert(TRACEPARENT, v);
        }
        match self.state.as_deref().map(HeaderValue::from_str) {
            Some(Ok(v)) => {
                headers.insert(TRACESTATE, v);
            }
            _ => {
                headers.remove(TRACESTATE);
            }
        }
    }
}

/// The trace context the front layer found in a request's HTTP headers, kept in the
/// request's extensions for the handler (which prefers `_meta`).
#[derive(Debug, Clone)]
pub struct HeaderTraceContext(pub TraceContext);

tokio::task_local! {
    /// The context of the backend call the current task is making.
    static OUTGOING: TraceContext;
}

/// Runs `call` with `context` as the trace context of the MCP requests it sends
/// (see [`add_outgoing_headers`]).
pub async fn with_outgoing<F: Future>(context: TraceContext, call: F) -> F::Output {
    OUTGOING.scope(context, call).await
}

/// `task` with the current task's outgoing context (if any), for a task it spawns
/// to make the call (task-locals do not cross `tokio::spawn` by themselves).
pub fn carried<F: Future>(task: F) -> impl Future<Output = F::Output> {
    let context = OUTGOING.try_with(Clone::clone).ok();
    async move {
        match context {
            Some(c) => OUTGOING.scope(c, task).await,
            None => task.await,
        }
    }
}

/// Adds the current task's outgoing trace context (set by [`with_outgoing`]) to
/// `headers`; nothing when there is none (tracing off: one thread-local look-up).
pub fn add_outgoing_headers(headers: &mut HeaderMap) {
    let _ = OUTGOING.try_with(|c| c.add_headers(headers));
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// A `tracestate` worth passing on: bounded, printable ASCII (what a header value
/// may hold; the members themselves are the vendors' business).
fn valid_state(s: &str) -> bool {
    s.len() <= MAX_TRACESTATE_BYTES && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let p = TraceParent::parse(GOOD).unwrap();
        assert_eq!(p.trace_id[0], 0x4b);
        assert_eq!(p.span_id[7], 0xb7);
        assert!(p.sampled());
        assert_eq!(p.to_header(), GOOD);
    }

    #[test]
    fn malformed_traceparents_are_no_context() {
        for bad in [
            "",
            "00",
            "garbage-that-is-long-enough-to-pass-the-length-check-xxxxx",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version may append fields after a dash.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(TraceParent::parse(later).is_some());
    }

    #[test]
    fn meta_wins_over_headers_and_a_bad_state_is_dropped() {
        let params = json!({"_meta": {"traceparent": GOOD, "tracestate": "a=1\u{7}"}});
        let params = params.as_object().unwrap();
        let header = TraceContext::from_parts(
            Some("00-11111111111111111111111111111111-2222222222222222-00"),
            Some("h=1"),
        )
        .unwrap();
        let got = TraceContext::incoming(params, Some(&header)).unwrap();
        assert_eq!(got.parent.to_header(), GOOD);
        assert_eq!(got.state, None);
        let none = serde_json::Map::new();
        assert_eq!(TraceContext::incoming(&none, Some(&header)), Some(header));
        let bad_meta = json!({"_meta": {"traceparent": 7}});
        assert_eq!(
            TraceContext::incoming(bad_meta.as_object().unwrap(), None),
            None
        );
    }

    #[test]
    fn headers_give_a_context_unless_repeated() {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(GOOD));
        h.insert(TRACESTATE, HeaderValue::from_static("v=1"));
        let c = TraceContext::from_headers(&h).unwrap();
        assert_eq!(c.state.as_deref(), Some("v=1"));
        h.append(TRACEPARENT, HeaderValue::from_static(GOOD));
        assert_eq!(TraceContext::from_headers(&h), None);
    }

    #[test]
    fn meta_is_replaced_only_where_it_carried_a_parent() {
        let next = TraceContext::from_parts(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"),
            None,
        )
        .unwrap();
        let mut with = json!({"_meta": {"traceparent": GOOD, "tracestate": "x=1", "k": 1}})
            .as_object()
            .cloned()
            .unwrap();
        next.replace_in_meta(&mut with);
        assert_eq!(
            with["_meta"],
            json!({"traceparent": next.parent.to_header(), "k": 1})
        );
        let mut without = json!({"_meta": {"k": 1}}).as_object().cloned().unwrap();
        let before = without.clone();
        next.replace_in_meta(&mut without);
        assert_eq!(without, before);
    }

    #[tokio::test]
    async fn outgoing_headers_only_inside_the_scope() {
        let c = TraceContext::from_parts(Some(GOOD), Some("s=1")).unwrap();
        let mut outside = HeaderMap::new();
        add_outgoing_headers(&mut outside);
        assert!(outside.is_empty());
        let inside = with_outgoing(c, async {
            let mut h = HeaderMap::new();
            add_outgoing_headers(&mut h);
            h
        })
        .await;
        assert_eq!(inside[TRACEPARENT], GOOD);
        assert_eq!(inside[TRACESTATE], "s=1");
        let headers = || async {
            let mut h = HeaderMap::new();
            add_outgoing_headers(&mut h);
            h
        };
        let c = TraceContext::from_parts(Some(GOOD), None).unwrap();
        let (plain, carried_over) = with_outgoing(c, async {
            let plain = tokio::spawn(headers()).await.unwrap();
            let carried_over = tokio::spawn(carried(headers())).await.unwrap();
            (plain, carried_over)
        })
        .await;
        assert!(plain.is_empty(), "a spawned task starts without it");
        assert_eq!(carried_over[TRACEPARENT], GOOD);
    }
}
