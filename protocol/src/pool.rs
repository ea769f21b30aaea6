//! Kept-alive HTTP/1.1 connections to one plain-HTTP endpoint (one backend pod).
//!
//! A gateway talks to each pod through its own [`McpClient`](crate::client::McpClient),
//! so the pool needs no key: no hashing, no shared map, no task spawned per request.
//! A connection goes back to the pool when its answer's body has been read to the
//! end (an answer dropped half-read closes it instead), newest first, at most
//! `max_idle` of them, each reused for at most its idle timeout.
//!
//! A request that finds its pooled connection closing is given back by hyper unsent,
//! and is sent again on a fresh connection: safe for every method, `tools/call`
//! included, since the server never saw it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How one endpoint is reached, and how many idle connections to it are kept.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Deadline for the TCP connect.
    pub connect_timeout: Duration,
    /// Idle connections kept (0: none, every request opens its own).
    pub max_idle: usize,
    /// How long an idle connection may be reused.
    pub idle_timeout: Duration,
}

/// The kept-alive connections to one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `host:port` to connect to.
    authority: String,
    settings: PoolSettings,
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// Why a pooled exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The connection could not be made: nothing was sent.
    #[error("could not connect to {authority}: {source}")]
    Connect {
        /// Where.
        authority: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection broke before the answer's head arrived.
    #[error("the connection broke before the answer: {0}")]
    Send(#[source] hyper::Error),
}

impl PoolError {
    /// Whether connecting failed (nothing was sent).
    pub fn is_connect(&self) -> bool {
        matches!(self, PoolError::Connect { .. })
    }
}

impl EndpointPool {
    /// A pool for `uri`'s `http://` host and port; None for any other URI.
    pub fn new(uri: &http::Uri, settings: PoolSettings) -> Option<Self> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(80);
        Some(EndpointPool {
            inner: Arc::new(Inner {
                authority: format!("{host}:{port}"),
                settings,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.inner.idle.lock().map_or(0, |idle| idle.len())
    }

    /// Sends `req` (its URI in origin form, its `Host` header set) on an idle
    /// connection, or a new one; its answer's body gives the connection back.
    pub async fn send(
        &self,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<PooledBody>, PoolError> {
        loop {
            let (mut sender, fresh) = match self.take_idle().await {
                Some(sender) => (sender, false),
                None => (self.connect().await?, true),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let lease = Lease {
                        sender,
                        pool: self.inner.clone(),
                    };
                    return Ok(resp.map(|body| PooledBody {
                        body,
                        lease: Some(lease),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closing. Again, on another.
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(PoolError::Send(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is still open and ready.
    async fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let Idle { mut sender, since } = self.inner.idle.lock().ok()?.pop()?;
            if sender.is_closed() || since.elapsed() > self.inner.settings.idle_timeout {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            // Its last answer was just read: the connection is about to take the next.
            match tokio::time::timeout(self.inner.settings.connect_timeout, sender.ready()).await {
                Ok(Ok(())) => return Some(sender),
                _ => continue,
            }
        }
    }

    /// A new connection, its driver spawned.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PoolError> {
        let authority = &self.inner.authority;
        let failed = |source| PoolError::Connect {
            authority: authority.clone(),
            source,
        };
        let stream = match tokio::time::timeout(
            self.inner.settings.connect_timeout,
            tokio::net::TcpStream::connect(authority.as_str()),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(failed(e)),
            Err(_) => {
                return Err(failed(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no connection within {:?}",
                        self.inner.settings.connect_timeout
                    ),
                )));
            }
        };
        stream.set_nodelay(true).map_err(failed)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(std::io::Error::other(e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "backend connection ended");
            }
        });
        Ok(sender)
    }
}

impl Inner {
    /// Keeps `sender` for the next request, unless the pool is full; drops the
    /// connections that can no longer be used on the way.
    fn put(&self, sender: SendRequest<Full<Bytes>>) {
        if self.settings.max_idle == 0 || sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let (now, timeout) = (Instant::now(), self.settings.idle_timeout);
        idle.retain(|i| !i.sender.is_closed() && now.duration_since(i.since) <= timeout);
        if idle.len() < self.settings.max_idle {
            idle.push(Idle { sender, since: now });
        }
    }
}

/// A connection lent to one exchange until its answer's body has been read.
struct Lease {
    sender: SendRequest<Full<Bytes>>,
    pool: Arc<Inner>,
}

/// An answer's body; reading it to the end gives its connection back to the pool.
pub struct PooledBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.pool.put(lease.sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.give_back(),
            // A broken answer: its connection is not reused.
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A loopback HTTP/1.1 server answering `body` to everything, counting the
    /// connections it accepts; `keep_alive: false` closes each after one answer.
    async fn server(
        keep_alive: bool,
        body: &'static str,
    ) -> (
        std::net::SocketAddr,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(body.as_bytes()),
                    )))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, accepted, task)
    }

    fn pool(addr: std::net::SocketAddr, max_idle: usize) -> EndpointPool {
        let uri: http::Uri = format!("http://{addr}/mcp").parse().unwrap();
        EndpointPool::new(
            &uri,
            PoolSettings {
                connect_timeout: Duration::from_secs(5),
                max_idle,
                idle_timeout: Duration::from_secs(20),
            },
        )
        .unwrap()
    }

    fn request(addr: std::net::SocketAddr) -> http::Request<Full<Bytes>> {
        http::Request::builder()
            .method("POST")
            .uri("/mcp")
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    async fn answer(pool: &EndpointPool, addr: std::net::SocketAddr) -> String {
        let resp = pool.send(request(addr)).await.expect("an answer");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn answers_read_to_the_end_give_their_connection_back() {
        let (addr, accepted, task) = server(true, "hello").await;
        let pool = pool(addr, 8);
        for _ in 0..5 {
            assert_eq!(answer(&pool, addr).await, "hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection reused");
        assert_eq!(pool.idle(), 1);
        task.abort();
    }

    #[tokio::test]
    async fn concurrent_requests_each_get_a_connection_and_at_most_max_idle_stay() {
        let (addr, accepted, task) = server(true, "hi").await;
        let pool = pool(addr, 2);
        // Heads first, all at once: each exchange holds its connection until read.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.send(request(addr)).await.expect("an answer"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        for resp in held {
            resp.into_body().collect().await.unwrap();
        }
        assert_eq!(pool.idle(), 2, "the pool keeps at most max_idle");
        assert_eq!(answer(&pool, addr).await, "hi");
        assert_eq!(accepted.load(Ordering::SeqCst), 4, "an idle one is reused");
        task.abort();
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_reused_and_nothing_fails() {
        let (addr, accepted, task) = server(false, "once").await;
        let pool = pool(addr, 8);
        for _ in 0..5 {
            assert_eq!(answer(&pool, addr).await, "once");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
        task.abort();
    }

    #[tokio::test]
    async fn an_answer_dropped_half_read_closes_its_connection() {
        let (addr, accepted, task) = server(true, "unread").await;
        let pool = pool(addr, 8);
        drop(pool.send(request(addr)).await.expect("an answer"));
        assert_eq!(pool.idle(), 0);
        assert_eq!(answer(&pool, addr).await, "unread");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        task.abort();
    }

    #[tokio::test]
    async fn without_idle_connections_every_request_connects() {
        let (addr, accepted, task) = server(true, "x").await;
        let pool = pool(addr, 0);
        for _ in 0..3 {
            assert_eq!(answer(&pool, addr).await, "x");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(pool.idle(), 0);
        task.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = pool(addr, 8)
            .send(request(addr))
            .await
            .err()
            .expect("an error");
        assert!(err.is_connect(), "{err}");
    }

    #[test]
    fn only_plain_http_urls_get_a_pool() {
        let settings = PoolSettings {
            connect_timeout: Duration::from_secs(1),
            max_idle: 1,
            idle_timeout: Duration::from_secs(1),
        };
        let pool_for = |url: &str| EndpointPool::new(&url.parse().unwrap(), settings).is_some();
        assert!(pool_for("http://10.0.0.5:9028/mcp"));
        assert!(!pool_for("https://10.0.0.5:9028/mcp"));
        assert!(!pool_for("/mcp"));
    }
}
