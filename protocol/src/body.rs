//! HTTP bodies for the servers: one boxed body type for JSON, SSE and empty answers,
//! and reading a request body under a size limit.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::headers::{APPLICATION_JSON, TEXT_EVENT_STREAM};

/// The body type every response of our servers uses.
pub type Body = BoxBody<Bytes, Infallible>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON response.
pub fn json_response(status: StatusCode, json: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(json));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(APPLICATION_JSON),
    );
    resp
}

/// A plain-text response (health endpoints, transport-level refusals).
pub fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A response with a status and no body.
pub fn status_response(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    resp
}

/// An SSE response over a stream of already-framed events. Headers keep proxies from
/// buffering or caching it.
pub fn sse_response<S>(stream: S) -> Response<Body>
where
    S: Stream<Item = Bytes> + Send + Sync + 'static,
{
    let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut resp = Response::new(BodyExt::boxed(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TEXT_EVENT_STREAM),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over the configured limit: 413.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The server holds as many request bytes as it allows right now: 503.
    #[error("the server is busy reading other requests; retry shortly")]
    Busy,
    /// The body did not arrive in time (too slow for its size): 408.
    #[error(
        "the request body did not arrive in time (it must come at {min_rate} bytes/s or faster)"
    )]
    TooSlow {
        /// The minimum rate enforced, bytes per second.
        min_rate: u64,
    },
    /// The connection failed while reading.
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// What a server accepts of request bodies: size, speed, and the memory that all
/// bodies being read or handled together may take.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Largest body of one request.
    pub max_bytes: usize,
    /// Time every body gets, whatever its size.
    pub base_time: Duration,
    /// Beyond `base_time`, the body must keep arriving at this rate (bytes/s): a
    /// 4 MiB body at 64 KiB/s gets 10 s + 64 s.
    pub min_rate: u64,
    /// Request bytes held by all requests together, in KiB permits.
    pub budget: Arc<Semaphore>,
    /// KiB one client address may hold (a quarter of the budget, at least one
    /// largest body): one client cannot take the whole budget from the others.
    pub per_client_kib: usize,
    /// KiB held per client address.
    held: Arc<ClientAccounts>,
}

impl BodyLimits {
    /// Limits with a shared budget of `budget_bytes`.
    pub fn new(max_bytes: usize, budget_bytes: usize) -> Self {
        BodyLimits {
            max_bytes,
            base_time: Duration::from_secs(10),
            min_rate: 64 * 1024,
            budget: Arc::new(Semaphore::new(budget_bytes.div_ceil(1024).max(1))),
            per_client_kib: (budget_bytes / 4).max(max_bytes).div_ceil(1024),
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Budget still free, in bytes (for metrics and tests).
    pub fn budget_free_bytes(&self) -> usize {
        self.budget.available_permits() * 1024
    }
}

/// A request body read into memory, holding its share of the body budget until the
/// request is done with it.
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes.
    pub bytes: Bytes,
    /// The share of the budget (released when dropped).
    pub permit: Option<BudgetShare>,
}

/// KiB of the body budget held per client address.
type ClientAccounts = Mutex<HashMap<IpAddr, usize>>;

/// Budget held by one request: given back to the pool and to its client's account
/// when dropped.
#[derive(Debug)]
pub struct BudgetShare {
    permit: OwnedSemaphorePermit,
    account: Option<(Arc<ClientAccounts>, IpAddr)>,
}

impl BudgetShare {
    /// Takes `kib` more, from the pool and from the client's share.
    fn grow(
        share: &mut Option<BudgetShare>,
        limits: &BodyLimits,
        client: Option<IpAddr>,
        kib: usize,
    ) -> Result<(), BodyError> {
        let more = u32::try_from(kib).map_err(|_| BodyError::TooLarge(limits.max_bytes))?;
        if let Some(ip) = client {
            let mut held = limits.held.lock().map_err(|_| BodyError::Busy)?;
            let mine = held.entry(ip).or_insert(0);
            if *mine + kib > limits.per_client_kib {
                if *mine == 0 {
                    held.remove(&ip);
                }
                return Err(BodyError::Busy);
            }
            *mine += kib;
        }
        let got = match limits.budget.clone().try_acquire_many_owned(more) {
            Ok(p) => p,
            Err(_) => {
                if let Some(ip) = client {
                    release(&limits.held, ip, kib);
                }
                return Err(BodyError::Busy);
            }
        };
        match share {
            Some(s) => s.permit.merge(got),
            None => {
                *share = Some(BudgetShare {
                    permit: got,
                    account: client.map(|ip| (limits.held.clone(), ip)),
                })
            }
        }
        Ok(())
    }
}

impl Drop for BudgetShare {
    fn drop(&mut self) {
        if let Some((held, ip)) = &self.account {
            release(held, *ip, self.permit.num_permits());
        }
    }
}

fn release(held: &ClientAccounts, ip: IpAddr, kib: usize) {
    if let Ok(mut held) = held.lock()
        && let Some(mine) = held.get_mut(&ip)
    {
        *mine = mine.saturating_sub(kib);
        if *mine == 0 {
            held.remove(&ip);
        }
    }
}

/// Reads a body under `limits`: refused early when Content-Length is over the limit,
/// refused as soon as it grows past the limit or falls behind the minimum rate, and
/// refused (503) when the shared budget cannot hold it.
pub async fn read_body<B>(
    headers: &http::HeaderMap,
    body: B,
    limits: &BodyLimits,
    client: Option<IpAddr>,
) -> Result<ReadBody, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = limits.max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let started = Instant::now();
    let mut permit: Option<BudgetShare> = None;
    let mut held_kib = 0usize;
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    let body = Limited::new(body, limit);
    tokio::pin!(body);
    loop {
        let allowed = limits.base_time
            + Duration::from_secs_f64(
                buf.len().max(first.as_ref().map_or(0, Bytes::len)) as f64
                    / limits.min_rate.max(1) as f64,
            );
        let deadline = tokio::time::Instant::from_std(started + allowed);
        // The body first: a frame already received is taken without arming the
        // deadline's timer (which costs a wake-up of the I/O driver).
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = tokio::time::sleep_until(deadline) => {
                return Err(BodyError::TooSlow { min_rate: limits.min_rate });
            }
        };
        let Some(frame) = frame else { break };
        let frame = match frame {
            Ok(f) => f,
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(BodyError::TooLarge(limit));
            }
            Err(e) => return Err(BodyError::Read(e.to_string())),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = buf.len() + first.as_ref().map_or(0, Bytes::len) + data.len();
        let need_kib = total.div_ceil(1024);
        if need_kib > held_kib {
            BudgetShare::grow(&mut permit, limits, client, need_kib - held_kib)?;
            held_kib = need_kib;
        }
        // One chunk (the usual case) is kept as it is; more are gathered.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(f) => {
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
        }
    }
    let bytes = match first {
        Some(f) => f,
        None => buf.freeze(),
    };
    Ok(ReadBody { bytes, permit })
}
