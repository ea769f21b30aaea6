//! Shared test support: the fake Kubernetes API, real processes, MCP client helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod fake_kube;
pub mod jwt;
pub mod mcp;
pub mod nginx;
pub mod procs;
pub mod recorder;
