//! `node-mcp-server`: the example MCP server that runs on every Kubernetes node (a
//! DaemonSet pod with hostNetwork and hostPID) and reports on that node.
//!
//! - [`tools`]: the node tools, read from procfs and statvfs.
//! - [`server`]: the MCP handler over the tools and the HTTP routes.

pub mod server;
pub mod tools;
