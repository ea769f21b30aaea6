//! The legacy era (2025-03-26 .. 2025-11-25): initialize, sessions, the version header, batches, GET streams and DELETE.

use super::*;
use crate::session::{Lookup, SessionStart};

/// The JSON-RPC method a legacy-era answer is for, in the response's extensions, so the
/// layer in front can label its metrics by method (2026-07-28 requests name theirs in
/// the `Mcp-Method` header). `(response)` for a client's answers, `(batch)` for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMethod(pub String);

/// Tags `resp` with the method it answers.
fn tagged(mut resp: Response<Body>, method: impl Into<String>) -> Response<Body> {
    resp.extensions_mut().insert(RpcMethod(method.into()));
    resp
}

impl<H: McpHandler> McpServer<H> {
    /// Legacy handshake: negotiate, mint a session.
    pub(super) fn initialize(
        &self,
        req: &Request,
        extensions: &http::Extensions,
    ) -> Response<Body> {
        let Some(requested) = req.str_param("protocolVersion") else {
            return error_response(
                StatusCode::OK,
                Some(&req.id),
                &ErrorObject::invalid_params("initialize needs params.protocolVersion (a string)"),
            );
        };
        let version = ProtocolVersion::negotiate_legacy(requested);
        let cfg = &self.inner.config;
        let result = mcp::initialize_result(
            version,
            &cfg.info,
            &self.capabilities(),
            cfg.instructions.as_deref(),
        );
        let mut resp = json_result(&req.id, &result);
        if cfg.sessions.enabled {
            let changes = self.inner.list_changes.subscribe();
            let owner = session_owner(extensions);
            let bound = extensions.get::<SessionOwner>().is_some();
            let param = |k: &str| {
                req.params
                    .as_ref()
                    .and_then(|p| p.get(k))
                    .cloned()
                    .unwrap_or_default()
            };
            let start = SessionStart {
                version,
                capabilities: param("capabilities"),
                client_info: param("clientInfo"),
            };
            let Some(session) = self.inner.sessions.create(start, changes, &owner, bound) else {
                return tagged(
                    busy(Some(&req.id), "every session is busy; retry later"),
                    method::INITIALIZE,
                );
            };
            if let Ok(v) = HeaderValue::from_str(&session.id) {
                resp.headers_mut().insert(headers::name::MCP_SESSION_ID, v);
            }
            tracing::debug!(%version, "session started");
        }
        tagged(resp, method::INITIALIZE)
    }

    /// Validates the legacy-era headers: version header and session.
    pub(super) fn legacy_ctx(
        &self,
        headers: &HeaderMap,
        extensions: http::Extensions,
        accepts: Accepts,
    ) -> Result<Ctx, Box<Response<Body>>> {
        let header_version = match headers.get(headers::MCP_PROTOCOL_VERSION) {
            None => None,
            Some(v) => match v.to_str().ok().and_then(ProtocolVersion::parse) {
                Some(v) if v.era() == Era::Legacy => Some(v),
                _ => {
                    return Err(Box::new(unsupported_version(
                        None,
                        v.to_str().unwrap_or("?"),
                        false,
                    )));
                }
            },
        };
        let session = if self.inner.config.sessions.enabled {
            let Some(id) = headers
                .get(headers::MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
            else {
                return Err(Box::new(error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    &ErrorObject::invalid_request(
                        "Mcp-Session-Id header is required (send initialize first)",
                    ),
                )));
            };
            let requester = extensions.get::<SessionOwner>().map(|o| o.0.as_str());
            let changes = || self.inner.list_changes.subscribe();
            match self.inner.sessions.get(id, requester, changes) {
                Ok(s) => Some(s),
                Err(Lookup::Busy) => {
                    return Err(Box::new(too_many(
                        None,
                        "this client has as many busy sessions on this replica as it may; finish a call or close a stream first",
                    )));
                }
                Err(Lookup::Unknown) => {
                    return Err(Box::new(error_response(
                        StatusCode::NOT_FOUND,
                        None,
                        &ErrorObject::invalid_request(
                            "session not found (expired or ended): initialize again",
                        ),
                    )));
                }
            }
        } else {
            None
        };
        let version = header_version
            .or(session.as_ref().map(|s| s.version))
            .unwrap_or(ProtocolVersion::V2025_03_26);
        Ok(Ctx {
            version,
            accepts,
            client_capabilities: session
                .as_ref()
                .map(|s| s.client_capabilities())
                .unwrap_or_default(),
            session,
            extensions,
            budget: None,
        })
    }

    pub(super) async fn legacy(&self, ctx: Ctx, message: Message) -> Response<Body> {
        let name = match &message {
            Message::Request(r) => r.method.clone(),
            Message::Notification(n) => n.method.clone(),
            Message::Response(_) => "(response)".to_string(),
        };
        let resp = self.legacy_message(ctx, message).await;
        tagged(resp, name)
    }

    async fn legacy_message(&self, ctx: Ctx, message: Message) -> Response<Body> {
        match message {
            Message::Notification(n) => {
                self.legacy_notification(&ctx, &n);
                body::status_response(StatusCode::ACCEPTED)
            }
            Message::Response(r) => {
                self.legacy_response(&ctx, r);
                body::status_response(StatusCode::ACCEPTED)
            }
            Message::Request(req) => match req.method.as_str() {
                method::PING => json_result(&req.id, &json!({})),
                method::SET_LEVEL => self.set_level(&ctx, &req),
                m if self.inner.handler.handles(m) => self.other(ctx, req).await,
                method::TOOLS_LIST => self.list(&ctx, &req),
                method::TOOLS_CALL => self.call(ctx, req, None).await,
                _ => error_response(
                    StatusCode::OK,
                    Some(&req.id),
                    &ErrorObject::method_not_found(&req.method),
                ),
            },
        }
    }

    /// A client's answer to one of our server-to-client requests.
    pub(super) fn legacy_response(&self, ctx: &Ctx, r: jsonrpc::Response) {
        let (Some(session), Some(id)) = (&ctx.session, r.id) else {
            return;
        };
        let found = session.answer(&id, r.outcome);
        tracing::debug!(request = %id, found, "client answered a server request");
    }

    /// `logging/setLevel`: remembered on the session, applied to every log message
    /// sent to this client.
    pub(super) fn set_level(&self, ctx: &Ctx, req: &Request) -> Response<Body> {
        let Some(level) = req.str_param("level").and_then(mcp::LogLevel::parse) else {
            return error_response(
                StatusCode::OK,
                Some(&req.id),
                &ErrorObject::invalid_params(
                    "logging/setLevel needs params.level (debug, info, notice, warning, error, critical, alert or emergency)",
                ),
            );
        };
        if let Some(session) = &ctx.session {
            session.set_log_level(level);
        }
        json_result(&req.id, &json!({}))
    }

    pub(super) fn legacy_notification(&self, ctx: &Ctx, n: &Notification) {
        if n.method == method::CANCELLED
            && let Some(session) = &ctx.session
            && let Some(id) = n
                .params
                .as_ref()
                .and_then(|p| p.get("requestId"))
                .and_then(RequestId::from_value)
        {
            let found = session.cancel(&id);
            tracing::debug!(request = %id, found, "client cancelled a request");
        }
    }

    /// 2025-03-26 batches; refused for every later revision.
    pub(super) async fn batch(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
        budget: Option<Arc<body::BudgetShare>>,
        accepts: Accepts,
        items: Vec<Value>,
    ) -> Response<Body> {
        let modern_header = headers
            .get(headers::MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .and_then(ProtocolVersion::parse)
            .is_some_and(|v| v.era() == Era::Modern);
        if modern_header {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request(
                    "JSON-RPC batches are not supported in protocol version 2026-07-28",
                ),
            );
        }
        let mut ctx = match self.legacy_ctx(headers, extensions.clone(), accepts) {
            Ok(ctx) => ctx,
            Err(resp) => return *resp,
        };
        ctx.budget = budget;
        if items.len() > self.inner.config.caps.max_batch_items {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request(format!(
                    "a batch may hold at most {} messages; this one has {}",
                    self.inner.config.caps.max_batch_items,
                    items.len()
                )),
            );
        }
        if !ctx.version.allows_batches() || items.is_empty() {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request(format!(
                    "JSON-RPC batches are not supported in protocol version {}",
                    ctx.version
                )),
            );
        }
        let mut answers = Vec::new();
        for item in items {
            let reply = match Message::from_value(item) {
                Err(e) => Some(jsonrpc::error_bytes(None, &e)),
                Ok(Message::Notification(n)) => {
                    self.legacy_notification(&ctx, &n);
                    None
                }
                Ok(Message::Response(r)) => {
                    self.legacy_response(&ctx, r);
                    None
                }
                Ok(Message::Request(req)) => {
                    let ctx = Ctx {
                        accepts: Accepts {
                            json: true,
                            sse: false,
                        },
                        ..ctx.clone()
                    };
                    // Boxed: a batch's requests do not enlarge every request's future.
                    let resp = Box::pin(self.legacy(ctx, Message::Request(req))).await;
                    use http_body_util::BodyExt;
                    resp.into_body()
                        .collect()
                        .await
                        .ok()
                        .map(|c| c.to_bytes().to_vec())
                }
            };
            answers.extend(reply);
        }
        if answers.is_empty() {
            return body::status_response(StatusCode::ACCEPTED);
        }
        let mut out = b"[".to_vec();
        for (i, a) in answers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(a);
        }
        out.push(b']');
        tagged(body::json_response(StatusCode::OK, out), "(batch)")
    }

    /// Legacy GET: a stream of server notifications for the session.
    pub(super) fn get_stream(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Response<Body> {
        let modern = headers
            .get(headers::MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .and_then(ProtocolVersion::parse)
            .is_some_and(|v| v.era() == Era::Modern);
        if modern || !self.inner.config.sessions.enabled {
            return body::status_response(StatusCode::METHOD_NOT_ALLOWED);
        }
        let accepts = Accepts::from_headers(headers);
        if !accepts.sse {
            return error_response(
                StatusCode::NOT_ACCEPTABLE,
                None,
                &ErrorObject::invalid_request("GET needs Accept: text/event-stream"),
            );
        }
        let ctx = match self.legacy_ctx(headers, extensions.clone(), accepts) {
            Ok(ctx) => ctx,
            Err(resp) => return *resp,
        };
        let Some(session) = ctx.session else {
            return body::status_response(StatusCode::METHOD_NOT_ALLOWED);
        };
        let Some(guard) = session.try_stream(self.inner.config.caps.max_streams_per_session) else {
            return too_many(
                None,
                "this session has as many GET streams open as it may; close one first",
            );
        };
        let Ok(slot) = self.inner.streams.clone().try_acquire_owned() else {
            return busy(None, "too many open streams; retry shortly");
        };
        let caps = self.capabilities();
        let offers =
            |list: &str| caps.pointer(&format!("/{list}/listChanged")) == Some(&Value::Bool(true));
        let frame = |m: &str| jsonrpc::notification_bytes(m, None);
        let frames = ListFrames {
            tools: Some(frame(method::TOOLS_LIST_CHANGED)),
            prompts: offers("prompts").then(|| frame(method::PROMPTS_LIST_CHANGED)),
            resources: offers("resources").then(|| frame(method::RESOURCES_LIST_CHANGED)),
        };
        let stream = change_stream(
            session.changes.clone(),
            frames,
            Some(session.pushed.clone()),
            self.inner.shutdown.clone(),
            self.inner.config.keep_alive,
            StreamHold {
                _session: Some(guard),
                _slot: slot,
            },
        );
        // A comment first, so clients see the stream open at once.
        body::sse_response(stream::once(async { sse::keep_alive() }).chain(stream))
    }

    /// DELETE: ends the session on this replica (see [`crate::session`] for what other
    /// replicas do with its id).
    pub(super) fn delete_session(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Response<Body> {
        if !self.inner.config.sessions.enabled {
            return body::status_response(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Some(id) = headers
            .get(headers::MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
        else {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request("Mcp-Session-Id header is required"),
            );
        };
        let requester = extensions.get::<SessionOwner>().map(|o| o.0.as_str());
        match self.inner.sessions.remove(id, requester) {
            Ok(()) => body::status_response(StatusCode::NO_CONTENT),
            Err(_) => error_response(
                StatusCode::NOT_FOUND,
                None,
                &ErrorObject::invalid_request("session not found"),
            ),
        }
    }
}
