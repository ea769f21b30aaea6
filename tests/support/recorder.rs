//! A recording pass-through in front of a real node server: it listens where the
//! gateway expects a node (`ip:BACKEND_PORT`), keeps every request's headers, and
//! forwards the request to the real backend, answering with its response. Proves
//! what the gateway sends to node servers (its own credential, never the caller's).
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use mcp_protocol::body::{self, Body};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One request's method and headers.
type Seen = (http::Method, HeaderMap);

/// The recorder.
pub struct Recorder {
    /// Every request's method and headers, in arrival order.
    pub seen: Arc<Mutex<Vec<(http::Method, HeaderMap)>>>,
    /// Every request's body, in arrival order.
    pub bodies: Arc<Mutex<Vec<Bytes>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Recorder {
    /// Listens on `listen` and forwards to `http://{target}`.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let (s, b, st) = (seen.clone(), bodies.clone(), stop.clone());
        tokio::spawn(mcp_protocol::serve::serve(
            listener,
            move |req: Request<hyper::body::Incoming>| {
                let (s, b, http) = (s.clone(), b.clone(), http.clone());
                async move { forward(&http, target, (&s, &b), req).await }
            },
            async move { st.cancelled().await },
            std::time::Duration::from_secs(1),
        ));
        Recorder { seen, bodies, stop }
    }

    /// The recorded headers so far.
    pub fn requests(&self) -> Vec<(http::Method, HeaderMap)> {
        self.seen.lock().expect("seen").clone()
    }

    /// The recorded bodies so far.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.bodies.lock().expect("bodies").clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(
    http: &reqwest::Client,
    target: SocketAddr,
    (seen, bodies): (&Mutex<Vec<Seen>>, &Mutex<Vec<Bytes>>),
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    seen.lock()
        .expect("seen")
        .push((parts.method.clone(), parts.headers.clone()));
    let body: Bytes = match incoming.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    bodies.lock().expect("bodies").push(body.clone());
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut headers = parts.headers.clone();
    headers.remove(http::header::HOST);
    headers.remove(http::header::CONTENT_LENGTH);
    let upstream = http
        .request(parts.method, format!("http://{target}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(upstream) = upstream else {
        return body::text_response(http::StatusCode::BAD_GATEWAY, "recorder: backend down\n");
    };
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = status;
    for (k, v) in headers.iter() {
        if k != http::header::CONTENT_LENGTH && k != http::header::TRANSFER_ENCODING {
            resp.headers_mut().append(k.clone(), v.clone());
        }
    }
    resp
}
