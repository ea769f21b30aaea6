//! Relaying what happens during a call between the calling client and the backend,
//! across eras: log messages (filtered per client at the gateway, since the backend
//! session is pooled and shared), and the backend's questions to the client
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`).
//!
//! - Legacy backend, legacy client: the backend's request arrives on the call's SSE
//!   stream; the upstream client asks the calling client through the call's
//!   [`Outbound`] and POSTs the answer in the backend session. A client that cannot be
//!   asked (capability not declared, a JSON-only request, too many calls waiting) is
//!   refused at once, so the backend gets an error it handles itself and nothing waits
//!   for the call timeout.
//! - 2026-07-28 backend, 2026-07-28 client: `input_required` results pass through
//!   untouched; the retry carries the same `node` argument, so it reaches the same node.
//! - 2026-07-28 backend, legacy client: each `inputRequests` entry becomes a request on
//!   the client's stream, and the gateway retries the backend with `inputResponses`
//!   (and the backend's `requestState`), at most [`MAX_INPUT_ROUNDS`] times.
//! - Legacy backend, 2026-07-28 client ([`forward_modern`]): the backend call runs on
//!   its own; its question becomes an `input_required` result whose sealed
//!   `requestState` names the call parked in [`crate::parked`]; the client's retry
//!   hands the answers to the waiting backend, and the call goes on (another question,
//!   or the result).

use mcp_protocol::client::{McpClient, Reply};
use mcp_protocol::jsonrpc::{self, ErrorObject, Message};
use mcp_protocol::mcp::{Era, ProtocolVersion, meta, method};
use mcp_protocol::mrtr;
use mcp_protocol::server::{BoxFuture, Outbound, ProgressSink};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::parked::{BackendCall, CallOwner, Event, Forwarded, Owner, ParkedCalls, Question};
use crate::upstream::{self, ForwardError, Leg};

/// Rounds of `input_required` the gateway answers for a legacy client before it gives
/// up with an error (a backend that keeps asking must not loop forever).
pub const MAX_INPUT_ROUNDS: usize = 8;

/// The capabilities the gateway declares to backends: it can relay every
/// server-to-client request (refusing it at once for a client that lacks it).
pub fn upstream_capabilities() -> Value {
    json!({ "elicitation": { "form": {}, "url": {} }, "sampling": {}, "roots": {} })
}

/// Puts what a 2026-07-28 backend needs to know about the calling client into the
/// forwarded request's `_meta`: the client's own capabilities (so a backend does not
/// ask what the client cannot answer) and log level `debug` (the gateway filters by
/// the client's level itself). The upstream client drops both for a legacy backend.
pub fn pass_client_meta(params: &mut Map<String, Value>, outbound: &Outbound) {
    let meta_obj = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = meta_obj {
        if outbound.client_capabilities().is_object() {
            m.insert(
                meta::CLIENT_CAPABILITIES.into(),
                outbound.client_capabilities().clone(),
            );
        }
        m.entry(meta::LOG_LEVEL).or_insert_with(|| "debug".into());
    }
    if mcp_protocol::tasks::requested(params).is_some() {
        // A 2025-11-25 caller asked for a task: a 2026-07-28 backend may start one.
        crate::tasks::declare_extension(params);
    }
}

/// Whether a serialized notification is `notifications/progress`.
pub fn is_progress(notification: &[u8]) -> bool {
    matches!(Message::from_slice(notification), Ok(Message::Notification(n)) if n.method == method::PROGRESS)
}

/// Answers a backend's server-to-client request by asking the calling client, with
/// `deadline` for the client's answer.
pub fn asker(
    outbound: Outbound,
    deadline: Duration,
) -> impl Fn(jsonrpc::Request) -> BoxFuture<Result<Value, ErrorObject>> + Send + Sync {
    move |req: jsonrpc::Request| {
        let outbound = outbound.clone();
        Box::pin(async move {
            tracing::debug!(method = %req.method, "backend asks the client");
            let raw = outbound
                .request(&req.method, req.params.unwrap_or_default(), deadline)
                .await?;
            serde_json::from_str(raw.get()).map_err(ErrorObject::internal)
        })
    }
}

/// Forwards a call like [`upstream::forward`], and answers a 2026-07-28 backend's
/// `input_required` results for a legacy client by asking it and retrying.
///
/// With `parked` (the calls waiting for answers and who this call belongs to), a
/// 2026-07-28 client's call goes through [`forward_modern`], so a legacy backend's
/// questions reach it as `input_required`.
pub async fn forward_call(
    client: Arc<McpClient>,
    mut params: Map<String, Value>,
    leg: &Leg<'_>,
    parked: Option<(&ParkedCalls, CallOwner<'_>)>,
) -> Result<(Reply, ProtocolVersion), ForwardError> {
    if leg.outbound.version().era() == Era::Modern
        && let Some((parked, owner)) = parked
    {
        return forward_modern(parked, client, params, leg, owner).await;
    }
    let (outbound, timeout) = (leg.outbound, leg.timeout);
    for _ in 0..MAX_INPUT_ROUNDS {
        // `params` stay ours (as last sent): a retry adds the answers to them.
        let (reply, version) = upstream::forward(client.clone(), &mut params, leg).await?;
        if version.era() != Era::Modern || outbound.version().era() != Era::Legacy {
            return Ok((reply, version));
        }
        let Some((requests, state)) = reply
            .as_ref()
            .ok()
            .and_then(|raw| input_required(raw.get()))
        else {
            return Ok((reply, version));
        };
        match ask_all(outbound, requests, timeout).await {
            Ok(responses) => {
                params.insert("inputResponses".into(), Value::Object(responses));
                match state {
                    Some(s) => params.insert("requestState".into(), s.into()),
                    None => params.shift_remove("requestState"),
                };
            }
            Err(e) => return Ok((Err(e), version)),
        }
    }
    let version = client
        .connection()
        .map_or(ProtocolVersion::LATEST_MODERN, |c| c.version);
    Ok((
        Err(ErrorObject::internal(format!(
            "the backend asked for input more than {MAX_INPUT_ROUNDS} times"
        ))),
        version,
    ))
}

/// Forwards a call of a 2026-07-28 client: a new call starts a [`BackendCall`]; a
/// retry whose `requestState` the gateway minted resumes the parked call it names,
/// answering its questions with the retry's `inputResponses`. Notifications go to
/// this request's stream (progress under this request's token); a backend question
/// the client can answer parks the call and answers `input_required`; one it cannot
/// (capability not declared, too many calls waiting) is refused at once.
pub async fn forward_modern(
    parked: &ParkedCalls,
    client: Arc<McpClient>,
    mut params: Map<String, Value>,
    leg: &Leg<'_>,
    owner: CallOwner<'_>,
) -> Forwarded {
    let state = params
        .get("requestState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let call = match state {
        Some(state) if ParkedCalls::is_ours(&state) => {
            let (call, questions) = match parked.resume(&state, &owner.owned()) {
                Ok(resumed) => resumed,
                Err(e) => return Ok((Err(e), ProtocolVersion::LATEST_MODERN)),
            };
            let responses = params.get("inputResponses").and_then(Value::as_object);
            let unanswered = answer_questions(questions, responses);
            if unanswered.is_empty() {
                call
            } else {
                // Asked again for what is missing, as the spec suggests.
                match park_or_refuse(parked, call, unanswered, owner.owned()) {
                    Ok(result) => return Ok(result),
                    Err(call) => call,
                }
            }
        }
        other => {
            // A 2026-07-28 backend asks in its own results (`input_required`, relayed
            // as they are), so there is nothing to park: the call stays on this
            // request's task, without the hop to a task of its own.
            if client
                .connection()
                .is_some_and(|c| c.version.era() == Era::Modern)
            {
                return upstream::forward(client, &mut params, leg).await;
            }
            if other.is_some()
                && let Ok(conn) = client.connect().await
                && conn.version.era() == Era::Legacy
            {
                return Ok((
                    Err(ErrorObject::invalid_params(
                        "requestState is not one this gateway issued, and the node's server keeps no state of its own; call the tool again without inputResponses and requestState",
                    )
                    .with_data(json!({ "reason": "invalid" }))),
                    ProtocolVersion::LATEST_MODERN,
                ));
            }
            upstream::prepare(&mut params, leg.outbound);
            BackendCall::start(client, params, leg.timeout)
        }
    };
    drive(parked, call, leg, owner).await
}

/// Relays what a backend call reports to this request until it answers, asks the
/// client something (then the call is parked), or the client cancels.
async fn drive(
    parked: &ParkedCalls,
    mut call: BackendCall,
    leg: &Leg<'_>,
    owner: CallOwner<'_>,
) -> Forwarded {
    let Leg {
        progress,
        outbound,
        cancel,
        ..
    } = *leg;
    loop {
        let event = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ForwardError::Cancelled),
            event = call.next() => event,
        };
        match event {
            None => {
                return Ok((
                    Err(ErrorObject::internal(
                        "the backend call ended without an answer",
                    )),
                    ProtocolVersion::LATEST_MODERN,
                ));
            }
            Some(Event::Done(out)) => return out,
            Some(Event::Note(note)) => relay_note(note, progress, outbound),
            Some(Event::Ask { request, answer }) => {
                let params = request.params.unwrap_or_default();
                if let Some(e) = outbound.missing_capability(&request.method, &params) {
                    tracing::debug!(method = %request.method, "backend question refused: the client lacks the capability");
                    let _ = answer.send(Err(e));
                    continue;
                }
                let question = Question {
                    key: format!("gw-{}", request.id),
                    request: mrtr::input_request(&request.method, &params),
                    answer,
                };
                match park_or_refuse(parked, call, vec![question], owner.owned()) {
                    Ok(result) => return Ok(result),
                    Err(back) => call = back,
                }
            }
        }
    }
}

/// Parks `call` with its open `questions` and gives the client's `input_required`
/// answer; when too many calls wait, refuses the questions (the backend goes on) and
/// gives the call back.
fn park_or_refuse(
    parked: &ParkedCalls,
    call: BackendCall,
    questions: Vec<Question>,
    owner: Owner,
) -> Result<(mcp_protocol::client::Reply, ProtocolVersion), BackendCall> {
    match parked.park(call, questions, owner) {
        Ok(result) => {
            let raw = serde_json::value::to_raw_value(&result).map_err(ErrorObject::internal);
            Ok((raw, ProtocolVersion::LATEST_MODERN))
        }
        Err((call, questions)) => {
            let e = ErrorObject::internal(
                "the gateway holds too many calls waiting for answers; try again shortly",
            );
            tracing::warn!(
                "too many calls waiting for clients' input (MAX_WAITING_CALLS): a backend question refused"
            );
            for q in questions {
                let _ = q.answer.send(Err(e.clone()));
            }
            Err(call)
        }
    }
}

/// Hands each question its answer from `responses`; returns the unanswered ones.
fn answer_questions(
    questions: Vec<Question>,
    responses: Option<&Map<String, Value>>,
) -> Vec<Question> {
    let mut open = Vec::new();
    for q in questions {
        match responses.and_then(|r| r.get(&q.key)) {
            Some(answer) => {
                let _ = q.answer.send(Ok(mrtr::answer(answer.clone())));
            }
            None => open.push(q),
        }
    }
    open
}

/// One notification of a backend call to the current request: progress under this
/// request's token (dropped without one), the rest filtered for the client.
fn relay_note(note: bytes::Bytes, progress: Option<&ProgressSink>, outbound: &Outbound) {
    if is_progress(&note) {
        if let Some(sink) = progress {
            sink.send_raw(mrtr::readdress_progress(note, sink.token()));
        }
    } else if mrtr::relayable_to(outbound.version().era(), &note) {
        outbound.relay(note);
    }
}

/// The `inputRequests` and `requestState` of an `input_required` result, if it is one.
pub fn input_required(raw: &str) -> Option<(Map<String, Value>, Option<String>)> {
    // Most results are not questions: that is told without a tree of the result.
    if mcp_protocol::mcp::result_type(raw)?.as_ref() != "input_required" {
        return None;
    }
    let v: Value = serde_json::from_str(raw).ok()?;
    let requests = v
        .get("inputRequests")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let state = v
        .get("requestState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((requests, state))
}

/// Numbers the questions the gateway asks legacy clients (unique `elicitationId`s).
static NEXT_QUESTION: AtomicU64 = AtomicU64::new(1);

/// Asks the client each input request in turn (legacy: on its stream); the first
/// refusal or error ends the call with that error.
pub(crate) async fn ask_all(
    outbound: &Outbound,
    requests: Map<String, Value>,
    deadline: Duration,
) -> Result<Map<String, Value>, ErrorObject> {
    let mut responses = Map::new();
    for (key, request) in requests {
        let Some(method_name) = request.get("method").and_then(Value::as_str) else {
            return Err(ErrorObject::internal(format!(
                "the backend's input request {key} has no method"
            )));
        };
        let params = request
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let id_hint = format!("{key}-{}", NEXT_QUESTION.fetch_add(1, Ordering::Relaxed));
        let params = mrtr::legacy_params(method_name, &params, &id_hint);
        let raw = outbound.request(method_name, params, deadline).await?;
        let answer: Value = serde_json::from_str(raw.get()).map_err(ErrorObject::internal)?;
        responses.insert(key, answer);
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_required_results_are_recognised_with_their_state() {
        let raw = r#"{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list","params":{}}},"requestState":"s1"}"#;
        let (requests, state) = input_required(raw).expect("an input_required result");
        assert_eq!(requests["a"]["method"], "roots/list");
        assert_eq!(state.as_deref(), Some("s1"));
        assert!(input_required(r#"{"resultType":"complete","content":[]}"#).is_none());
        assert!(input_required(r#"{"content":[]}"#).is_none());
    }

    #[test]
    fn the_client_meta_carries_capabilities_and_debug_level() {
        let mut params = Map::new();
        pass_client_meta(
            &mut params,
            &Outbound::detached(ProtocolVersion::LATEST_LEGACY),
        );
        assert_eq!(params["_meta"][meta::LOG_LEVEL], "debug");
        let mut params = json!({"_meta": {(meta::LOG_LEVEL): "error"}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        pass_client_meta(
            &mut params,
            &Outbound::detached(ProtocolVersion::LATEST_MODERN),
        );
        assert_eq!(params["_meta"][meta::LOG_LEVEL], "error");
    }

    #[test]
    fn progress_is_told_from_other_notifications() {
        assert!(is_progress(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#
        ));
        assert!(!is_progress(
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#
        ));
    }
}
