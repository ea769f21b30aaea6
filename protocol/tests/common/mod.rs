//! Shared by the protocol integration tests: a throwaway HTTP server on 127.0.0.1:0
//! running the crate's own accept loop, and the schema harness ([`schema`]).
// Each test binary uses part of this module.
#![allow(dead_code)]

pub mod schema;

use http::{Request as HttpRequest, Response};
use hyper::body::Incoming;
use mcp_protocol::body::Body;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// A server task on 127.0.0.1:0; aborted on drop.
pub struct Running {
    /// Its MCP endpoint URL.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `handler` on 127.0.0.1:0 with the crate's accept loop.
pub async fn spawn_http<F, Fut>(handler: F) -> Running
where
    F: Fn(HttpRequest<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(mcp_protocol::serve::serve(
        listener,
        handler,
        std::future::pending(),
        Duration::from_millis(100),
    ));
    Running {
        url: format!("http://{addr}/mcp"),
        task,
    }
}
