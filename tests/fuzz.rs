//! Fuzz targets for what the gateway parses from peers, run on the stable toolchain by
//! bolero's random engine for a bounded time each (`FUZZ_SECONDS`, default 3), after
//! replaying the committed corpus in `tests/fuzz/corpus/<target>/`:
//!
//! - `jsonrpc`: the JSON-RPC message parser never panics on any bytes;
//! - `sse`: the SSE decoder never panics and decodes a stream split anywhere exactly
//!   as the whole stream;
//! - `param_header`: `Mcp-Param-*` decoding never panics, and what it decodes encodes
//!   back to the same text;
//! - `schema`: the `node` rewrite of any JSON inputSchema never panics, and a rewritten
//!   schema has `node` first and required;
//! - `redact`: the node server's command-line redaction never panics on any bytes, and
//!   a `--password=` value never survives it.
//!
//! Inputs are the corpus entries mutated by the engine's bytes (replace, insert,
//! delete at chosen positions), so most of them stay close to valid messages and
//! reach deep into the parsers; raw random bytes are tried too.
//!
//! A failure prints the input and a `BOLERO_RANDOM_SEED` that replays it; add such an
//! input to the corpus once fixed.

use k8s_aggregator_mcp::catalog::{NODE_PARAM, add_node_param};
use mcp_protocol::headers::{decode_header_value, encode_header_value, param_headers};
use mcp_protocol::jsonrpc::Message;
use mcp_protocol::sse::Decoder;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The committed inputs of a target.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fuzz/corpus/{target}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// How long the random engine runs per target.
fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

/// A corpus entry edited at the chosen positions: a small byte deletes, a middling
/// one is inserted, a large one replaces. With no corpus choice left, raw bytes.
fn mutate(corpus: &[Vec<u8>], pick: u8, edits: &[(u16, u8)], raw: &[u8]) -> Vec<u8> {
    if pick == 255 {
        return raw.to_vec();
    }
    let mut input = corpus[pick as usize % corpus.len()].clone();
    for &(pos, byte) in edits.iter().take(16) {
        let at = pos as usize % (input.len() + 1);
        match byte {
            0..=31 if at < input.len() => {
                input.remove(at);
            }
            0..=63 => input.insert(at, byte.wrapping_mul(4)),
            _ if at < input.len() => input[at] = byte,
            _ => input.push(byte),
        }
    }
    input
}

/// Runs `check` on every corpus entry, then on mutated inputs for the time budget.
fn fuzz(target: &str, check: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let corpus = corpus(target);
    for input in &corpus {
        check(input);
    }
    bolero::check!()
        .with_type::<(u8, Vec<(u16, u8)>, Vec<u8>)>()
        .with_test_time(budget())
        .for_each(|(pick, edits, raw)| check(&mutate(&corpus, *pick, edits, raw)));
}

#[test]
fn jsonrpc() {
    fuzz("jsonrpc", |bytes| {
        let _ = Message::from_slice(bytes);
        if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
            let _ = Message::from_value(value);
        }
    });
}

#[test]
fn sse() {
    fuzz("sse", |bytes| {
        let whole = Decoder::new(1024).push(bytes);
        let split_at = bytes.len() / 3;
        let mut parts = Decoder::new(1024);
        let first = parts.push(&bytes[..split_at]);
        let second = parts.push(&bytes[split_at..]);
        if let (Ok(whole), Ok(mut a), Ok(b)) = (whole, first, second) {
            a.extend(b);
            assert_eq!(whole, a, "split at {split_at} decodes differently");
        }
    });
}

#[test]
fn param_header() {
    fuzz("param_header", |bytes| {
        let Ok(value) = http::HeaderValue::from_bytes(bytes) else {
            return;
        };
        if let Ok(text) = decode_header_value(&value) {
            let again = http::HeaderValue::from_str(&encode_header_value(&text))
                .expect("an encoded value is a valid header value");
            assert_eq!(decode_header_value(&again).as_deref(), Ok(text.as_str()));
        }
    });
}

#[test]
fn schema() {
    fuzz("schema", |bytes| {
        let Ok(schema) = serde_json::from_slice::<Value>(bytes) else {
            return;
        };
        for with_header in [false, true] {
            let Ok(rewritten) = add_node_param(&schema, with_header) else {
                continue;
            };
            let props = rewritten["properties"]
                .as_object()
                .expect("a rewritten schema has properties");
            assert_eq!(props.keys().next().map(String::as_str), Some(NODE_PARAM));
            assert!(
                rewritten["required"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|v| v == NODE_PARAM)),
                "{rewritten}"
            );
            let _ = param_headers(&rewritten);
        }
    });
}

#[test]
fn redact() {
    use node_mcp_server::tools::redact::redact_cmdline;
    fuzz("redact", |bytes| {
        // A command line as /proc gives it: NUL-separated bytes, any encoding.
        let shown = redact_cmdline(bytes);
        // Whatever it hides, a `--password=` value never survives.
        if let Ok(text) = std::str::from_utf8(bytes)
            && !text.contains('\0')
            && let Some((_, value)) = text.split_once("--password=")
            && let Some(secret) = value.split_whitespace().next()
            && secret.len() >= 4
            && !secret.contains('*')
        {
            assert!(
                !shown.contains(&format!("--password={secret}")),
                "{text:?} -> {shown:?}"
            );
        }
    });
}
