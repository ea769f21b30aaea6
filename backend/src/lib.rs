//! `node-mcp-server`: the example MCP server that runs on every Kubernetes node (a
//! DaemonSet pod with hostNetwork and hostPID) and reports on that node.
//!
//! - [`tools`]: the node tools, read from procfs and statvfs.
//! - [`server`]: the MCP handler over the tools and the HTTP routes.
//! - [`content`]: the resource `node://os-release` and the prompt `triage_node`.
//! - [`interactive`]: `confirm_cpu_usage` (optional), which logs and asks the client
//!   mid-call, to test relays of those.
//! - [`tasks`]: `cpu_usage` as a task when asked, in both task shapes.
//! - [`watch`]: subscriptions to the resource `node://os-release`.
//! - [`auth`]: who may call (`CLIENT_AUTH`): only the gateway, by its ServiceAccount
//!   token or a static token.

pub mod auth;
pub mod content;
pub mod interactive;
pub mod server;
pub mod tasks;
pub mod tools;
pub mod watch;
