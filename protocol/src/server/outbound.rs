//! The per-request outbound channel: what a handler sends the client while it
//! answers one request — notifications (progress, log messages) on that request's
//! stream, and server-to-client requests (`elicitation/create`,
//! `sampling/createMessage`, `roots/list`) whose answers it awaits with a deadline.
//!
//! Legacy era: a request goes out on the request's SSE stream under a per-session id
//! and the client answers with a POSTed JSON-RPC response in the same session, which
//! [`crate::session::Session::answer`] hands back here. 2026-07-28: there are no
//! server-to-client messages outside a response; a handler answers with an
//! `input_required` result instead ([`crate::mcp::input_required_result`]) and reads
//! the client's retry through [`Outbound::input_responses`].
//!
//! A request the client cannot answer (capability not declared, no stream, no
//! session) is refused at once, so nothing waits for a timeout.

use super::*;
use crate::mcp::LogLevel;

/// The outbound channel of one request.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Frames for the request's SSE answer; None when the client takes JSON only.
    pub(super) tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// The revision the client speaks.
    pub(super) version: ProtocolVersion,
    /// The legacy session (answers to our requests arrive through it).
    pub(super) session: Option<Arc<Session>>,
    /// The client's declared capabilities (legacy: from initialize; 2026-07-28: from
    /// the request's `_meta`).
    pub(super) capabilities: Value,
    /// 2026-07-28: the level the request's `_meta` opted into (None: no log messages).
    pub(super) modern_log_level: Option<LogLevel>,
    /// 2026-07-28: the request's `inputResponses` and `requestState` (a retry).
    pub(super) input: Option<(Value, Option<String>)>,
}

impl Outbound {
    /// A channel that sends nothing (for handlers driven outside the transport, e.g.
    /// in tests): every request is refused at once.
    pub fn detached(version: ProtocolVersion) -> Self {
        Outbound {
            tx: None,
            version,
            session: None,
            capabilities: Value::Null,
            modern_log_level: None,
            input: None,
        }
    }

    /// The revision the client speaks.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Pushes notifications to the client's legacy session outside this request
    /// (None in 2026-07-28 or without a session).
    pub fn session_push(&self) -> Option<crate::session::SessionPush> {
        self.session.as_ref().map(|s| s.pusher())
    }

    /// The legacy session's id, if the request has one.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.id.as_str())
    }

    /// The capabilities the client declared.
    pub fn client_capabilities(&self) -> &Value {
        &self.capabilities
    }

    /// Whether the client receives anything on this request's stream.
    pub fn can_stream(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends an already-serialized notification on the request's stream (dropped when
    /// the client takes JSON only).
    pub fn notify_raw(&self, notification: Bytes) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(notification);
        }
    }

    /// Whether a log message of `level` reaches the client: legacy, at or above the
    /// level of `logging/setLevel` (everything before any); 2026-07-28, at or above
    /// the request's `io.modelcontextprotocol/logLevel` (nothing without it).
    pub fn wants_log(&self, level: LogLevel) -> bool {
        if self.tx.is_none() {
            return false;
        }
        match self.version.era() {
            Era::Legacy => self
                .session
                .as_ref()
                .and_then(|s| s.log_level())
                .is_none_or(|min| level >= min),
            Era::Modern => self.modern_log_level.is_some_and(|min| level >= min),
        }
    }

    /// Sends a `notifications/message` if the client wants its level.
    pub fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        if !self.wants_log(level) {
            return;
        }
        let mut params = Map::new();
        params.insert("level".into(), level.as_str().into());
        if let Some(l) = logger {
            params.insert("logger".into(), l.into());
        }
        params.insert("data".into(), data);
        let bytes = jsonrpc::notification_bytes(method::MESSAGE, Some(&Value::Object(params)));
        self.notify_raw(Bytes::from(bytes));
    }

    /// Relays a serialized notification from elsewhere (a backend): log messages are
    /// filtered by the client's level, everything else is sent as it is.
    pub fn relay(&self, notification: Bytes) {
        if let Ok(Message::Notification(n)) = Message::from_slice(&notification)
            && n.method == method::MESSAGE
        {
            let level = n
                .params
                .as_ref()
                .and_then(|p| p.get("level"))
                .and_then(Value::as_str)
                .and_then(LogLevel::parse)
                .unwrap_or(LogLevel::Emergency);
            if !self.wants_log(level) {
                return;
            }
        }
        self.notify_raw(notification);
    }

    /// 2026-07-28: the `inputResponses` and `requestState` of a retried request.
    pub fn input_responses(&self) -> Option<(&Value, Option<&str>)> {
        self.input.as_ref().map(|(r, s)| (r, s.as_deref()))
    }

    /// Why a server-to-client request cannot be sent to this client, if it cannot:
    /// the capability is not declared (-32021 with `requiredCapabilities`), or the
    /// request has no way to carry it.
    pub fn refusal(&self, method_name: &str, params: &Map<String, Value>) -> Option<ErrorObject> {
        if let Some(e) = self.missing_capability(method_name, params) {
            return Some(e);
        }
        if self.version.era() == Era::Modern {
            return Some(ErrorObject::internal(
                "2026-07-28 clients are asked through an input_required result, not a request",
            ));
        }
        if self.tx.is_none() {
            return Some(ErrorObject::internal(
                "the client takes JSON only on this request (no text/event-stream), so it cannot be asked",
            ));
        }
        if self.session.is_none() {
            return Some(ErrorObject::internal(
                "no session: the client's answer could not be matched to this request",
            ));
        }
        None
    }

    /// The refusal of a server-to-client request whose capability the client did not
    /// declare (-32021 with `requiredCapabilities`), in either era: a 2026-07-28
    /// relay must not put such a request into `inputRequests` either.
    pub fn missing_capability(
        &self,
        method_name: &str,
        params: &Map<String, Value>,
    ) -> Option<ErrorObject> {
        let required = mcp::required_client_capability(method_name, params)?;
        // A detached channel (no client declared anything) has no capabilities.
        if self.capabilities.is_object() && mcp::has_capability(&self.capabilities, &required) {
            return None;
        }
        Some(
            ErrorObject::new(
                jsonrpc::MISSING_CLIENT_CAPABILITY,
                format!("the client did not declare the capability {method_name} needs"),
            )
            .with_data(json!({ "requiredCapabilities": required })),
        )
    }

    /// Sends a server-to-client request on this request's stream and waits up to
    /// `deadline` for the client's answer (the result object, or the client's error).
    /// Refused at once when [`Outbound::refusal`] says so.
    pub async fn request(
        &self,
        method_name: &str,
        params: Map<String, Value>,
        deadline: Duration,
    ) -> Result<Box<serde_json::value::RawValue>, ErrorObject> {
        if let Some(e) = self.refusal(method_name, &params) {
            return Err(e);
        }
        let (Some(session), Some(tx)) = (&self.session, &self.tx) else {
            return Err(ErrorObject::internal("no stream to ask the client on"));
        };
        let (id, rx) = session.expect_answer();
        struct Forget<'a>(&'a Session, RequestId);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget_answer(&self.1);
            }
        }
        let _forget = Forget(session, id.clone());
        let bytes = jsonrpc::request_bytes(&id, method_name, Some(&Value::Object(params)));
        if tx.send(Bytes::from(bytes)).is_err() {
            return Err(ErrorObject::internal("the client's stream is closed"));
        }
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ErrorObject::internal("the session ended before the answer")),
            Err(_) => Err(ErrorObject::internal(format!(
                "the client did not answer {method_name} within {} s",
                deadline.as_secs()
            ))),
        }
    }
}
