//! Backend calls parked while a 2026-07-28 client answers their questions.
//!
//! A legacy backend asks its mid-call questions (`elicitation/create`,
//! `sampling/createMessage`, `roots/list`) on the call's stream and waits for the
//! answers in the same call. A 2026-07-28 client cannot be sent requests: it is
//! answered `input_required` and retries the tool call with `inputResponses`. So the
//! gateway keeps the backend call running in a task of its own ([`BackendCall`]),
//! parks it here under a replica-local id, and hands the client a sealed
//! `requestState` naming that id, the node, the tool, the caller and an expiry. The
//! retry opens the state, takes the parked call back and gives it the answers.
//!
//! Bounds: at most `max` calls are parked (beyond it a question is refused at once);
//! a parked call expires at the backend call's own deadline, and expiry (like a
//! replaced or dropped entry) cancels the backend call. A `requestState` that cannot
//! be served here is answered with a JSON-RPC error saying why and what to do.

use bytes::Bytes;
use mcp_protocol::client::{McpClient, Reply};
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{self, ProtocolVersion};
use mcp_protocol::seal::Sealer;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::upstream::{self, ForwardError};

/// The seal purpose of the gateway's `requestState` tokens.
const PURPOSE: &str = "request-state";

/// What every `requestState` the gateway mints starts with, telling it from a
/// 2026-07-28 backend's own state (which passes through untouched).
pub const STATE_PREFIX: &str = "k8sgw1.";

/// Notifications a backend call may queue while nobody reads them (a parked call):
/// beyond it they are dropped (log and progress messages are advisory).
const EVENT_QUEUE: usize = 256;

/// The outcome of a forwarded call, as [`upstream::forward`] gives it.
pub type Forwarded = Result<(Reply, ProtocolVersion), ForwardError>;

/// What a backend call running on its own reports.
pub enum Event {
    /// A notification the backend streamed (progress, log message...).
    Note(Bytes),
    /// A mid-call request of the backend, answered through `answer`.
    Ask {
        /// The backend's request.
        request: jsonrpc::Request,
        /// Where its answer (or refusal) goes.
        answer: oneshot::Sender<Result<Value, ErrorObject>>,
    },
    /// The backend's final answer.
    Done(Forwarded),
}

/// A backend call running in its own task, so it can outlive the client request that
/// started it; the task (and with it the backend call) is cancelled on drop.
pub struct BackendCall {
    events: mpsc::Receiver<Event>,
    task: tokio::task::JoinHandle<()>,
    /// The backend call's own deadline.
    deadline: Instant,
}

impl Drop for BackendCall {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BackendCall {
    /// Starts forwarding `params` (prepared, see [`upstream::prepare`]) to `client`.
    pub fn start(
        client: Arc<McpClient>,
        mut params: Map<String, Value>,
        timeout: Duration,
    ) -> Self {
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        // The call keeps the trace context of the request that started it.
        let task = tokio::spawn(mcp_protocol::tracecontext::carried(async move {
            let notes = tx.clone();
            let mut on_note = move |note: Bytes| {
                if notes.try_send(Event::Note(note)).is_err() {
                    tracing::debug!("notification of a waiting call dropped (queue full)");
                }
            };
            let asks = tx.clone();
            let on_request = move |request: jsonrpc::Request| -> mcp_protocol::server::BoxFuture<
                Result<Value, ErrorObject>,
            > {
                let asks = asks.clone();
                Box::pin(async move {
                    let (answer, rx) = oneshot::channel();
                    if asks.send(Event::Ask { request, answer }).await.is_err() {
                        return Err(ErrorObject::internal("the client's request is gone"));
                    }
                    rx.await.unwrap_or_else(|_| {
                        Err(ErrorObject::internal(
                            "the client did not answer before the call was given up",
                        ))
                    })
                })
            };
            let never = CancellationToken::new();
            let out = upstream::forward_with(
                client,
                &mut params,
                &mut on_note,
                &on_request,
                &never,
                timeout,
            )
            .await;
            let _ = tx.send(Event::Done(out)).await;
        }));
        BackendCall {
            events,
            task,
            deadline: Instant::now() + timeout,
        }
    }

    /// The next thing the call reports; None if its task ended without an answer.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

/// A backend question sent to the client in `inputRequests`, waiting for its answer.
pub struct Question {
    /// Its key in `inputRequests` / `inputResponses`.
    pub key: String,
    /// The 2026-07-28 `InputRequest`.
    pub request: Value,
    /// Where the client's answer goes (back to the backend).
    pub answer: oneshot::Sender<Result<Value, ErrorObject>>,
}

/// What a retry must match to take a parked call back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The node the call runs on.
    pub node: String,
    /// The tool called.
    pub tool: String,
    /// The authenticated caller (source and subject).
    pub caller: String,
}

/// Who a call belongs to, borrowed from the call: made into an [`Owner`] only when
/// the call is parked or resumed, so the calls that never are build no strings.
#[derive(Debug, Clone, Copy)]
pub struct CallOwner<'a> {
    /// The node the call runs on.
    pub node: &'a str,
    /// The tool called.
    pub tool: &'a str,
    /// The authenticated caller.
    pub caller: &'a crate::auth::Caller,
}

impl CallOwner<'_> {
    /// The owner a parked call records.
    pub fn owned(&self) -> Owner {
        Owner {
            node: self.node.to_owned(),
            tool: self.tool.to_owned(),
            caller: self.caller.key(),
        }
    }
}

/// A parked call.
struct Parked {
    call: BackendCall,
    questions: Vec<Question>,
    owner: Owner,
    /// Expires the entry at the call's deadline; stopped when the call is taken back.
    _timer: AbortOnDrop,
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The sealed content of a `requestState`.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    /// The replica that parked the call.
    r: String,
    /// The parked call's id there.
    i: u64,
    /// Node, tool and caller the call belongs to.
    n: String,
    t: String,
    c: String,
    /// Expiry, seconds since the epoch.
    e: u64,
}

/// The parked calls of this replica.
pub struct ParkedCalls {
    sealer: Arc<Sealer>,
    /// This replica's name in the states it mints (random per process).
    replica: String,
    next_id: AtomicU64,
    calls: Mutex<HashMap<u64, Parked>>,
    /// Most calls parked at once.
    max: usize,
    /// Weak self, for expiry timers.
    me: Weak<ParkedCalls>,
}

/// Why a retry was refused, as a JSON-RPC error the client can act on (-32602 with
/// `data.reason`).
fn refused(reason: &str, text: impl Into<String>) -> ErrorObject {
    ErrorObject::invalid_params(text.into()).with_data(json!({ "reason": reason }))
}

const START_OVER: &str = "call the tool again without inputResponses and requestState";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ParkedCalls {
    /// Parked calls sealed with `sealer`, at most `max` at once.
    pub fn new(sealer: Arc<Sealer>, max: usize) -> Arc<Self> {
        let mut replica = [0u8; 8];
        rand::Rng::fill(&mut rand::rng(), &mut replica);
        let replica = replica.iter().map(|b| format!("{b:02x}")).collect();
        Arc::new_cyclic(|me| ParkedCalls {
            sealer,
            replica,
            next_id: AtomicU64::new(1),
            calls: Mutex::new(HashMap::new()),
            max,
            me: me.clone(),
        })
    }

    /// Whether `state` is a `requestState` this gateway minted (else it belongs to
    /// a backend).
    pub fn is_ours(state: &str) -> bool {
        state.starts_with(STATE_PREFIX)
    }

    /// Calls parked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no call is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Parked>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `call` with the `questions` it asked and returns the `input_required`
    /// result for the client; the call and its questions back when the cap is reached.
    pub fn park(
        &self,
        call: BackendCall,
        questions: Vec<Question>,
        owner: Owner,
    ) -> Result<Value, (BackendCall, Vec<Question>)> {
        let mut calls = self.lock();
        if calls.len() >= self.max {
            drop(calls);
            return Err((call, questions));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let left = call.deadline.saturating_duration_since(Instant::now());
        let state = State {
            r: self.replica.clone(),
            i: id,
            n: owner.node.clone(),
            t: owner.tool.clone(),
            c: owner.caller.clone(),
            e: now_secs() + left.as_secs().max(1),
        };
        let sealed = self
            .sealer
            .seal(PURPOSE, &serde_json::to_vec(&state).unwrap_or_default());
        let mut requests = Map::new();
        for q in &questions {
            requests.insert(q.key.clone(), q.request.clone());
        }
        let me = self.me.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(left).await;
            if let Some(parked) = me.upgrade() {
                parked.expire(id);
            }
        });
        calls.insert(
            id,
            Parked {
                call,
                questions,
                owner,
                _timer: AbortOnDrop(timer),
            },
        );
        drop(calls);
        tracing::debug!(parked = id, "backend call waiting for the client's input");
        let state = format!("{STATE_PREFIX}{sealed}");
        Ok(mcp::input_required_result(requests, Some(&state)))
    }

    /// Drops a parked call whose deadline passed, cancelling the backend call.
    fn expire(&self, id: u64) {
        let gone = self.lock().remove(&id);
        if let Some(p) = gone {
            tracing::info!(
                parked = id,
                node = %p.owner.node,
                tool = %p.owner.tool,
                "a call waiting for the client's input expired; backend call cancelled"
            );
            // Dropping the entry stops its timer (this task) and cancels the call.
            drop(p);
        }
    }

    /// Takes back the call a retry's `requestState` names, checked against `owner`
    /// (the retry's node, tool and caller): the call and its open questions, or why not.
    pub fn resume(
        &self,
        state: &str,
        owner: &Owner,
    ) -> Result<(BackendCall, Vec<Question>), ErrorObject> {
        let token = state.strip_prefix(STATE_PREFIX).unwrap_or(state);
        let plain = self.sealer.open(PURPOSE, token).map_err(|e| {
            refused(
                "invalid",
                format!("requestState is not one this gateway issued ({e}); {START_OVER}"),
            )
        })?;
        let s: State = serde_json::from_slice(&plain).map_err(|_| {
            refused(
                "invalid",
                format!("requestState is not one this gateway issued; {START_OVER}"),
            )
        })?;
        if s.e < now_secs() {
            return Err(refused(
                "expired",
                format!(
                    "the call waiting for these answers expired and was cancelled; {START_OVER}"
                ),
            ));
        }
        if s.r != self.replica {
            return Err(refused(
                "otherReplica",
                format!(
                    "the call waiting for these answers is held by another gateway replica (retries must reach the replica that asked: enable session affinity in front of the gateway); {START_OVER}"
                ),
            ));
        }
        if s.n != owner.node || s.t != owner.tool || s.c != owner.caller {
            return Err(refused(
                "mismatch",
                format!(
                    "requestState belongs to a call of tool \"{}\" on node \"{}\" by its own caller; retry with the same tool, arguments and credentials, or {START_OVER}",
                    s.t, s.n
                ),
            ));
        }
        let Some(parked) = self.lock().remove(&s.i) else {
            return Err(refused(
                "unknown",
                format!(
                    "no call is waiting for these answers (it finished, expired or was answered already); {START_OVER}"
                ),
            ));
        };
        // The timer stops as the rest of the entry is dropped.
        let Parked {
            call, questions, ..
        } = parked;
        Ok((call, questions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend call that never reports anything.
    fn idle(timeout: Duration) -> BackendCall {
        let (tx, events) = mpsc::channel(1);
        BackendCall {
            events,
            task: tokio::spawn(async move {
                let _keep = tx;
                std::future::pending::<()>().await
            }),
            deadline: Instant::now() + timeout,
        }
    }

    fn owner(tool: &str) -> Owner {
        Owner {
            node: "n1".into(),
            tool: tool.into(),
            caller: "Anonymous:".into(),
        }
    }

    fn question() -> (Question, oneshot::Receiver<Result<Value, ErrorObject>>) {
        let (answer, rx) = oneshot::channel();
        let q = Question {
            key: "gw-1".into(),
            request: json!({"method": "roots/list"}),
            answer,
        };
        (q, rx)
    }

    fn reason(e: ErrorObject) -> String {
        assert_eq!(e.code, jsonrpc::INVALID_PARAMS);
        e.data.unwrap()["reason"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_parked_call_is_taken_back_once_by_its_own_retry() {
        let sealer = Sealer::random();
        let parked = ParkedCalls::new(sealer.clone(), 1);
        let (q, _rx) = question();
        let result = parked
            .park(idle(Duration::from_secs(60)), vec![q], owner("t"))
            .ok()
            .unwrap();
        assert_eq!(result["resultType"], "input_required");
        assert_eq!(result["inputRequests"]["gw-1"]["method"], "roots/list");
        let state = result["requestState"].as_str().unwrap().to_string();
        assert!(ParkedCalls::is_ours(&state));
        // The cap: one parked call at most.
        let (q2, _rx2) = question();
        assert!(
            parked
                .park(idle(Duration::from_secs(60)), vec![q2], owner("t"))
                .is_err()
        );
        // Another tool, an altered token, another replica: refused, the call stays.
        assert_eq!(
            reason(parked.resume(&state, &owner("other")).err().unwrap()),
            "mismatch"
        );
        let mut altered = state.clone();
        altered.insert(STATE_PREFIX.len() + 3, 'x');
        assert_eq!(
            reason(parked.resume(&altered, &owner("t")).err().unwrap()),
            "invalid"
        );
        let replica = ParkedCalls::new(sealer, 1);
        assert_eq!(
            reason(replica.resume(&state, &owner("t")).err().unwrap()),
            "otherReplica"
        );
        let stranger = ParkedCalls::new(Sealer::random(), 1);
        assert_eq!(
            reason(stranger.resume(&state, &owner("t")).err().unwrap()),
            "invalid"
        );
        assert_eq!(parked.len(), 1);
        let (_call, questions) = parked.resume(&state, &owner("t")).ok().unwrap();
        assert_eq!(questions.len(), 1);
        assert!(parked.is_empty());
        assert_eq!(
            reason(parked.resume(&state, &owner("t")).err().unwrap()),
            "unknown"
        );
    }

    #[tokio::test]
    async fn a_parked_call_expires_at_its_deadline_and_is_cancelled() {
        let parked = ParkedCalls::new(Sealer::random(), 4);
        let (q, rx) = question();
        let call = idle(Duration::from_millis(50));
        parked.park(call, vec![q], owner("t")).ok().unwrap();
        // The question's sender is dropped with the expired entry: the backend side
        // sees the call given up.
        assert!(
            tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .expect("expired within its deadline")
                .is_err()
        );
        assert!(parked.is_empty());
    }
}
