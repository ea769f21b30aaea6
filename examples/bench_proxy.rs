//! The floor of the gateway's own HTTP stack, for `examples/bench.rs`: a reverse proxy
//! that does nothing but relay, built from the parts the gateway uses (the accept loop
//! of `mcp_protocol::serve`, hyper's HTTP/1 server, a pooled hyper client, the same
//! tokio runtime). It parses no JSON and routes nowhere: whatever the gateway
//! costs above it is the gateway's own work; what it costs above nginx is the stack's.
//!
//! `bench_proxy LISTEN_ADDR UPSTREAM_ADDR`, e.g. `bench_proxy 127.0.0.1:9100 127.0.0.2:9028`.
//! Not a product: no limits beyond the accept loop's, no header hygiene.

use futures_util::StreamExt;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mcp_protocol::body::{self, Body};
use std::convert::Infallible;
use std::time::Duration;

/// hyper-util's pooled HTTP/1.1 client, over plain TCP.
type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

#[tokio::main]
async fn main() {
    let mut argv = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (argv.next(), argv.next()) else {
        eprintln!("usage: bench_proxy LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("bind {listen}: {e}"));
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client: Client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(mcp_protocol::client::POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(64)
        .retry_canceled_requests(true)
        .build(connector);
    let handler = move |req: Request<Incoming>| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move { relay(&client, &upstream, req).await }
    };
    mcp_protocol::serve::serve(
        listener,
        handler,
        std::future::pending::<()>(),
        Duration::ZERO,
    )
    .await;
}

/// Sends `req` to `upstream` and hands back its answer, the body streamed through.
async fn relay(client: &Client, upstream: &str, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, incoming) = req.into_parts();
    // The pooled client takes whole bodies (what the gateway sends its backends).
    let Ok(collected) = incoming.collect().await else {
        return body::status_response(StatusCode::BAD_REQUEST);
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() else {
        return body::status_response(StatusCode::BAD_REQUEST);
    };
    parts.uri = uri;
    let forwarded = Request::from_parts(parts, http_body_util::Full::new(collected.to_bytes()));
    match client.request(forwarded).await {
        Ok(answer) => {
            let (parts, incoming) = answer.into_parts();
            // Relayed chunk by chunk as it arrives; a broken upstream ends the body.
            let chunks = incoming
                .into_data_stream()
                .take_while(|chunk| std::future::ready(chunk.is_ok()))
                .filter_map(|chunk| std::future::ready(chunk.ok()))
                .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
            Response::from_parts(parts, BodyExt::boxed(StreamBody::new(chunks)))
        }
        Err(_) => body::status_response(StatusCode::BAD_GATEWAY),
    }
}
