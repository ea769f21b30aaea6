//! `mcp-protocol`: a hand-rolled implementation of the Model Context Protocol over
//! Streamable HTTP, shared by the gateway, the example node server and the tests.
//!
//! Modules:
//! - [`bearer`]: bearer JWTs checked against a JWKS (URL, file or issuer discovery), with
//!   cached keys, bounded refresh and an asymmetric-only algorithm allow-list.
//! - [`jsonrpc`]: JSON-RPC 2.0 envelopes, ids, error codes; payloads stay raw JSON.
//! - [`mcp`]: protocol revisions and their two eras, method names, `_meta` keys, builders.
//! - [`mrtr`]: mid-call questions across eras (legacy server-to-client requests <->
//!   2026-07-28 `input_required` input requests and responses).
//! - [`headers`]: the HTTP rules of Streamable HTTP: Accept / Content-Type negotiation,
//!   Origin validation, header names, the 2026-07-28 header/body checks and `x-mcp-header`.
//! - [`sse`]: Server-Sent Events encoder and incremental decoder.
//! - [`body`]: response bodies (JSON, SSE, empty) and reading request bodies under a size
//!   limit, a minimum rate and a shared, per-client memory budget.
//! - [`serve`]: the accept loop: HTTP/1.1 and h2c, a connection cap, first-bytes and idle
//!   deadlines, HTTP/2 limits, graceful shutdown.
//! - [`seal`]: sealed tokens (session ids, `requestState`, task ids) any replica holding
//!   the keys can open and no client can read or forge; keys rotate from a file.
//! - [`session`]: legacy-era sessions: ids, idle and absolute expiry, LRU eviction,
//!   per-owner caps, in-flight requests for cancellation.
//! - [`server`]: a Streamable HTTP server for tool servers of both eras (sessions, GET
//!   streams, listen streams, progress, cancellation) over one [`server::McpHandler`] trait
//!   that answers any client request.
//! - [`client`]: a Streamable HTTP client that talks to servers of either era, over
//!   reqwest or kept-alive connections of its own, with [`client::SharedHeaders`] sent on
//!   every request (the caller's own credential).
//! - [`pool`]: kept-alive HTTP/1.1 connections to one plain-HTTP endpoint.
//! - [`tasks`]: MCP tasks in both shapes (2025-11-25 task-augmented requests, the
//!   2026-07-28 `io.modelcontextprotocol/tasks` extension) and conversions between them.
//! - [`token_file`]: a credential file re-read as it rotates, off the request path.
//! - [`tracecontext`]: W3C `traceparent` / `tracestate` from `_meta` or headers, and the
//!   context an outgoing call carries.
//! - `telemetry` (feature `otlp`): optional OpenTelemetry spans exported over OTLP/HTTP.

pub mod bearer;
pub mod body;
pub mod client;
pub mod headers;
pub mod jsonrpc;
pub mod mcp;
pub mod mrtr;
pub mod pool;
pub mod seal;
pub mod serve;
pub mod server;
pub mod session;
pub mod sse;
pub mod tasks;
#[cfg(feature = "otlp")]
pub mod telemetry;
pub mod token_file;
pub mod tracecontext;
