//! k8s-aggregator-mcp: a Kubernetes-native MCP gateway. MCP clients talk to one
//! endpoint; behind it every node runs a small MCP server (a DaemonSet pod). The
//! gateway finds those pods through the Kubernetes API, serves their tools with one
//! extra required parameter, `node`, and routes each call to the pod on that node.
//!
//! Modules, one job each:
//! - [`auth`]: who is calling: bearer-token authentication at the edge.
//! - [`config`]: every setting, its env var, default and validation.
//! - [`cluster`]: EndpointSlice watch -> live map node name -> pod IP.
//! - [`builds`]: every pod's tools, grouped by build; the served union and who serves what.
//! - [`capabilities`]: what the gateway announces: the union of its backends' capabilities.
//! - [`learn`]: asking pods for their tools in the background, following the cluster.
//! - [`listen`]: hearing a bounded set of pods say their tools changed.
//! - [`catalog`]: the backend tools with `node` prepended; cached tools/list answers.
//! - [`fanout`]: the fan-out tool: one backend tool on many nodes, per-node results.
//! - [`nodemap`]: the node-map tool: nodes, their state, zone, pod and build.
//! - [`parked`]: backend calls kept open while a 2026-07-28 client answers their questions.
//! - [`relay`]: what happens during a call, relayed across eras (logs, questions).
//! - [`upstream`]: pooled MCP clients per pod; forwarding with progress and cancellation.
//! - [`gateway`]: the tool handler: route a call, turn failures into tool errors;
//!   policy checks and the audit line.
//! - [`lists`]: prompts / resources / templates learned from one pod per build, cached.
//! - [`content`]: prompts / resources / completion requests: policy gate and dispatch.
//! - [`prompts`]: the backends' prompts per node (`node` argument first), prompts/get routed.
//! - [`completion`]: completion/complete: `node` answered by the gateway, the rest routed.
//! - [`resources`]: the backends' resources per node (`k8s-node://` URIs), read routed.
//! - [`subscriptions`]: resource subscriptions, relayed from an upstream watch per pod and URI.
//! - [`tasks`]: task ids handed to clients, task requests routed to the owning node.
//! - [`policy`]: authorization: which caller may see / call which tool on which node.
//! - [`server`]: start-up, HTTP routes (`/mcp`, `/healthz`, `/readyz`, `/metrics`).
//! - [`metrics`]: Prometheus counters.
//! - [`telemetry`]: OpenTelemetry spans per request and per backend call (optional).
//! - [`demo`]: the no-cluster demo with in-process node servers.
//!
//! The MCP protocol itself lives in the `mcp-protocol` crate.

pub mod auth;
pub mod builds;
pub mod capabilities;
pub mod catalog;
pub mod cluster;
pub mod completion;
pub mod config;
pub mod content;
pub mod demo;
pub mod fanout;
pub mod gateway;
pub mod learn;
pub mod listen;
pub mod lists;
pub mod metrics;
pub mod nodemap;
pub mod parked;
pub mod policy;
pub mod prompts;
pub mod relay;
pub mod resources;
pub mod server;
pub mod subscriptions;
pub mod tasks;
pub mod telemetry;
pub mod upstream;
