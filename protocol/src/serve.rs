//! The accept loop both servers run: HTTP/1.1 and h2c on one port, TCP_NODELAY, and a
//! graceful shutdown that lets in-flight requests finish.
//!
//! Every connection is bounded before hyper reads a byte of it: a cap on open
//! connections (beyond it a short `503` with `Retry-After`, never an `EMFILE` that
//! would also stop the health probes), a deadline for the first bytes (a peer that
//! connects and says nothing, or sends half an HTTP/2 preface, is dropped), an idle
//! deadline (no request in flight for [`ConnectionLimits::idle_timeout`]: closed,
//! HTTP/1 and HTTP/2 alike), HTTP/2 keep-alive pings, a stream cap per HTTP/2
//! connection, small HTTP/2 flow-control windows and a bounded header buffer, so the
//! memory one connection can pin is known (see [`ConnectionLimits::pinned_bytes`]).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::body::Body;

/// How long a client may take to send a request's headers (HTTP/1; also the idle
/// time between two requests on a keep-alive connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP/2 connection preface a client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The peer address of a request, put into its extensions by [`serve`] so the
/// application can apply per-client limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Per-connection limits and deadlines.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once. Beyond it a connection gets a `503` and is
    /// closed; keep it well below the process's file-descriptor limit.
    pub max_connections: usize,
    /// A new connection must send its first bytes (and a whole HTTP/2 preface)
    /// within this time.
    pub first_bytes_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (a peer that stops answering pings is dropped
    /// after another interval).
    pub h2_keep_alive: Duration,
    /// Concurrent streams (requests) per HTTP/2 connection.
    pub h2_max_streams: u32,
    /// HTTP/2 flow-control window, per stream and per connection: the most request
    /// body bytes a peer can push before the server reads them.
    pub h2_window_bytes: u32,
    /// Largest HTTP/1 read buffer (bounds the request head) and HTTP/2 header list.
    pub max_header_bytes: usize,
    /// The liveness path still answered `200 ok` on a connection refused at the cap
    /// (the process is alive, only full; restarting it would drop every call in
    /// flight). None: every refused connection gets the 503.
    pub liveness_path: Option<&'static str>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            first_bytes_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            h2_keep_alive: Duration::from_secs(30),
            h2_max_streams: 64,
            h2_window_bytes: 64 * 1024,
            max_header_bytes: 32 * 1024,
            liveness_path: Some("/healthz"),
        }
    }
}

impl ConnectionLimits {
    /// The most memory the open connections can pin in buffers the server has not
    /// consumed yet (head buffers and HTTP/2 windows); request bodies being read are
    /// bounded separately by the body budget.
    pub fn pinned_bytes(&self) -> u64 {
        let per_connection = (self.max_header_bytes as u64).max(self.h2_window_bytes as u64);
        self.max_connections as u64 * per_connection
    }
}

/// Serves `handler` on an already-bound listener with the default limits.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handler: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_with(
        listener,
        ConnectionLimits::default(),
        handler,
        shutdown,
        drain,
    )
    .await;
}

/// Serves `handler` on an already-bound listener until `shutdown` resolves, then waits
/// up to `drain` for open connections to finish.
///
/// Taking a bound listener lets tests bind port 0 and read the address first.
pub async fn serve_with<F, Fut>(
    listener: TcpListener,
    limits: ConnectionLimits,
    handler: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = Arc::new(builder(&limits));
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusing also takes a descriptor for a moment: bound the refusals in progress.
    let refusals = Arc::new(Semaphore::new(64));
    let stop = CancellationToken::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    if let Ok(permit) = refusals.clone().try_acquire_owned() {
                        let liveness = limits.liveness_path;
                        tokio::spawn(async move {
                            refuse_busy(stream, liveness).await;
                            drop(permit);
                        });
                    }
                    tracing::debug!(%peer, "connection cap reached; connection refused");
                    continue;
                };
                let handler = handler.clone();
                let builder = builder.clone();
                let limits = limits.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    serve_connection(stream, peer, &builder, &limits, handler, stop).await;
                    drop(slot);
                });
                // Reap finished connection tasks so the set stays small.
                while connections.try_join_next().is_some() {}
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    stop.cancel();
    let all_done = async { while connections.join_next().await.is_some() {} };
    tokio::select! {
        () = all_done => {}
        () = tokio::time::sleep(drain) => tracing::info!("drain period over; closing remaining connections"),
    }
    connections.abort_all();
}

fn builder(limits: &ConnectionLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // A peer that opens a connection and trickles its headers cannot hold it forever.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.h2_keep_alive))
        .keep_alive_timeout(limits.h2_keep_alive)
        .max_concurrent_streams(limits.h2_max_streams)
        .initial_stream_window_size(limits.h2_window_bytes)
        .initial_connection_window_size(limits.h2_window_bytes)
        .max_header_list_size(limits.max_header_bytes as u32);
    builder
}

/// A short plain HTTP/1.1 `503` for a connection over the cap, then close; a
/// `GET` of the liveness path gets its `200`.
async fn refuse_busy(mut stream: TcpStream, liveness_path: Option<&'static str>) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 46\r\n\r\nserver busy: too many connections; retry soon\n";
    const ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nok\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut head = [0u8; 64];
        // Enough to tell `GET <path> ` from anything else.
        let needed = liveness_path
            .map_or(0, |p| "GET ".len() + p.len() + 1)
            .min(head.len());
        let mut got = 0;
        while got < needed {
            match stream.read(&mut head[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        let probe = liveness_path.is_some_and(|path| {
            let line = &head[..got];
            line.strip_prefix(b"GET ".as_slice())
                .and_then(|rest| rest.strip_prefix(path.as_bytes()))
                .is_some_and(|rest| rest.first().is_some_and(|b| *b == b' ' || *b == b'?'))
        });
        let _ = stream.write_all(if probe { ALIVE } else { BUSY }).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Waits until the peer has sent its first bytes; with an HTTP/2 preface, the whole
/// preface. False when the deadline passes or the peer leaves first.
async fn first_bytes(stream: &TcpStream, deadline: Duration) -> bool {
    let wait = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&buf[..n]) => {
                    return true;
                }
                // Part of a preface: wait for the rest (peek returns at once while
                // bytes are there, so do not spin).
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    tokio::time::timeout(deadline, wait).await.unwrap_or(false)
}

async fn serve_connection<F, Fut>(
    stream: TcpStream,
    peer: SocketAddr,
    builder: &Builder<TokioExecutor>,
    limits: &ConnectionLimits,
    handler: F,
    stop: CancellationToken,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let started = tokio::select! {
        ok = first_bytes(&stream, limits.first_bytes_timeout) => ok,
        () = stop.cancelled() => false,
    };
    if !started {
        tracing::debug!(%peer, "connection sent nothing in time; closed");
        return;
    }
    let (active_tx, mut active_rx) = watch::channel(0usize);
    let active = Arc::new(active_tx);
    let service = {
        let active = active.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let handler = handler.clone();
            let guard = ActiveGuard::new(active.clone());
            req.extensions_mut().insert(PeerAddr(peer));
            async move {
                let resp = handler(req).await;
                // The request stays active until its whole answer has been sent.
                Ok::<_, Infallible>(resp.map(|body| {
                    TrackedBody {
                        inner: body,
                        _guard: guard,
                    }
                    .boxed()
                }))
            }
        })
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let idle = limits.idle_timeout;
    let idle_deadline = async move {
        loop {
            if *active_rx.borrow_and_update() == 0 {
                tokio::select! {
                    () = tokio::time::sleep(idle) => return,
                    changed = active_rx.changed() => if changed.is_err() { return },
                }
            } else if active_rx.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = idle_deadline => tracing::debug!(%peer, "idle connection closed"),
        () = stop.cancelled() => {}
    }
    // Idle or shutting down: finish what is in flight (HTTP/2 GOAWAY, HTTP/1 close
    // after the current answer), then drop the connection.
    conn.as_mut().graceful_shutdown();
    let grace = if stop.is_cancelled() {
        // Shutting down: the drain period of `serve_with` bounds this.
        Duration::MAX
    } else {
        Duration::from_secs(5)
    };
    let _ = tokio::time::timeout(grace, conn).await;
}

/// Counts a request as in flight until its response body is dropped.
struct ActiveGuard(Arc<watch::Sender<usize>>);

impl ActiveGuard {
    fn new(active: Arc<watch::Sender<usize>>) -> Self {
        active.send_modify(|n| *n += 1);
        ActiveGuard(active)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that keeps its request counted as active.
struct TrackedBody {
    inner: Body,
    _guard: ActiveGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A binary's `main`: runs `run` on a multi-threaded runtime and reports a failure as
/// one line with its causes (`{:#}`), no backtrace: release builds carry no symbols,
/// and the causes say what to fix.
pub fn run_to_exit<F, E>(run: F) -> std::process::ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (what Kubernetes and a terminal send).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
