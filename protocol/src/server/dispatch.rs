//! Request dispatch: the checks every POST goes through, then tools/list and tools/call.

use super::*;

impl<H: McpHandler> McpServer<H> {
    /// Serves one HTTP request addressed to the MCP endpoint.
    pub async fn handle<B>(&self, req: HttpRequest<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        if !self.inner.config.hosts.allows(&parts.headers, &parts.uri) {
            return error_response(
                StatusCode::FORBIDDEN,
                None,
                &ErrorObject::invalid_request(
                    "Host not allowed: this server does not answer to that name",
                ),
            );
        }
        if !self.inner.config.origins.allows(&parts.headers) {
            return error_response(StatusCode::FORBIDDEN, None, &forbidden_origin());
        }
        match parts.method {
            Method::POST => self.post(parts.headers, parts.extensions, body).await,
            Method::GET => self.get_stream(&parts.headers, &parts.extensions),
            Method::DELETE => self.delete_session(&parts.headers, &parts.extensions),
            _ => {
                let mut r = body::status_response(StatusCode::METHOD_NOT_ALLOWED);
                r.headers_mut().insert(
                    http::header::ALLOW,
                    HeaderValue::from_static("GET, POST, DELETE"),
                );
                r
            }
        }
    }

    pub(super) async fn post<B>(
        &self,
        headers: HeaderMap,
        extensions: http::Extensions,
        body: B,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !headers::is_json_content_type(&headers) {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                &ErrorObject::invalid_request("Content-Type must be application/json"),
            );
        }
        let accepts = Accepts::from_headers(&headers);
        if !accepts.any() {
            return error_response(
                StatusCode::NOT_ACCEPTABLE,
                None,
                &ErrorObject::invalid_request(
                    "Accept must include application/json and text/event-stream",
                ),
            );
        }
        let client = extensions.get::<crate::serve::PeerAddr>().map(|p| p.0.ip());
        let read = match body::read_body(&headers, body, &self.inner.body, client).await {
            Ok(b) => b,
            Err(e) => {
                let status = match e {
                    body::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    body::BodyError::Busy => return busy(None, &e.to_string()),
                    body::BodyError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
                    body::BodyError::Read(_) => StatusCode::BAD_REQUEST,
                };
                return error_response(status, None, &ErrorObject::invalid_request(e));
            }
        };
        let budget = read.permit.map(Arc::new);
        let bytes = read.bytes;
        if bytes.trim_ascii_start().first() == Some(&b'[') {
            let items: Vec<Value> = match serde_json::from_slice(&bytes) {
                Ok(items) => items,
                Err(e) => {
                    let e = ErrorObject::parse_error(e);
                    return error_response(StatusCode::BAD_REQUEST, None, &e);
                }
            };
            drop(bytes);
            return self
                .batch(&headers, &extensions, budget, accepts, items)
                .await;
        }
        let message = match Message::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, None, &e),
        };
        drop(bytes);
        if let Message::Request(req) = &message
            && req.method == method::INITIALIZE
        {
            return self.initialize(req, &extensions);
        }
        if is_modern(&headers, &message) {
            self.modern(&headers, extensions, budget, accepts, message)
                .await
        } else {
            let mut ctx = match self.legacy_ctx(&headers, extensions, accepts) {
                Ok(ctx) => ctx,
                Err(resp) => return *resp,
            };
            ctx.budget = budget;
            self.legacy(ctx, message).await
        }
    }

    pub(super) fn list(&self, ctx: &Ctx, req: &Request) -> Response<Body> {
        let cursor = req.str_param("cursor");
        match self
            .inner
            .handler
            .list_tools_for(ctx.version.era(), cursor, &ctx.extensions)
        {
            Ok(result) => {
                body::json_response(StatusCode::OK, jsonrpc::result_bytes(&req.id, &result))
            }
            Err(e) => error_response(StatusCode::OK, Some(&req.id), &e),
        }
    }

    /// tools/call for both eras: SSE up front when progress is streamed (or the client
    /// takes only SSE), else as [`Self::respond`] decides.
    pub(super) async fn call(
        &self,
        mut ctx: Ctx,
        req: Request,
        modern_headers: Option<&HeaderMap>,
    ) -> Response<Body> {
        let id = req.id.clone();
        let mut params = req.params.unwrap_or_default();
        let name = match params.get("name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                return error_response(
                    StatusCode::OK,
                    Some(&id),
                    &ErrorObject::invalid_params("tools/call needs params.name (a string)"),
                );
            }
        };
        match params.get("arguments") {
            None | Some(Value::Object(_)) => {}
            Some(Value::Null) => {
                params.shift_remove("arguments");
            }
            Some(_) => {
                return error_response(
                    StatusCode::OK,
                    Some(&id),
                    &ErrorObject::invalid_params("params.arguments must be an object"),
                );
            }
        }
        if let Some(headers) = modern_headers
            && let Some(declared) = self.inner.handler.param_headers_for(&name, &ctx.extensions)
        {
            let args = params.get("arguments").and_then(Value::as_object);
            if let Err(e) = headers::check_param_headers(headers, &declared, args) {
                return error_response(StatusCode::BAD_REQUEST, Some(&id), &e);
            }
        }
        let token = mcp::progress_token(Some(&params)).cloned();
        let use_sse = ctx.accepts.sse && (token.is_some() || !ctx.accepts.json);
        let cancel = CancellationToken::new();
        let hold = match self.admit(&ctx, &id, &cancel) {
            Ok(h) => h,
            Err(resp) => return *resp,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = match (&token, use_sse) {
            (Some(t), true) => Some(ProgressSink {
                token: t.clone(),
                tx: tx.clone(),
            }),
            _ => None,
        };
        let outbound = self.outbound(&mut ctx, &params, tx);
        let call = ToolCall {
            id: id.clone(),
            version: ctx.version,
            name,
            params,
            progress,
            outbound,
            cancel: cancel.clone(),
            // Moved, not cloned: only the framing is read from `ctx` from here on.
            extensions: std::mem::take(&mut ctx.extensions),
        };
        let future = self.inner.handler.call_tool(call);
        self.respond(&ctx, id, use_sse, cancel, hold, rx, future)
            .await
    }

    /// Any other request the handler serves: the same caps, outbound channel,
    /// cancellation and framing as a tool call.
    pub(super) async fn other(&self, mut ctx: Ctx, req: Request) -> Response<Body> {
        let id = req.id.clone();
        let params = req.params.unwrap_or_default();
        let cancel = CancellationToken::new();
        let hold = match self.admit(&ctx, &id, &cancel) {
            Ok(h) => h,
            Err(resp) => return *resp,
        };
        let use_sse = ctx.accepts.sse && !ctx.accepts.json;
        let (tx, rx) = mpsc::unbounded_channel();
        let outbound = self.outbound(&mut ctx, &params, tx);
        let request = ClientRequest {
            id: id.clone(),
            method: req.method,
            params,
            outbound,
            cancel: cancel.clone(),
            // Moved, not cloned: only the framing is read from `ctx` from here on.
            extensions: std::mem::take(&mut ctx.extensions),
        };
        let future = self.inner.handler.handle_request(request);
        self.respond(&ctx, id, use_sse, cancel, hold, rx, future)
            .await
    }

    /// Takes the request's share of the in-flight caps (server-wide, then its session's).
    pub(super) fn admit(
        &self,
        ctx: &Ctx,
        id: &RequestId,
        cancel: &CancellationToken,
    ) -> Result<Hold, Box<Response<Body>>> {
        let Ok(slot) = self.inner.inflight.clone().try_acquire_owned() else {
            return Err(Box::new(busy(
                Some(id),
                "too many requests in flight; retry shortly",
            )));
        };
        let guard = match &ctx.session {
            None => None,
            Some(s) => match s.try_track(
                id.clone(),
                cancel.clone(),
                self.inner.config.caps.max_inflight_per_session,
            ) {
                Some(g) => Some(g),
                None => {
                    return Err(Box::new(too_many(
                        Some(id),
                        "too many requests in flight on this session; wait for some to finish",
                    )));
                }
            },
        };
        Ok(Hold {
            _session: guard,
            _slot: slot,
            _budget: ctx.budget.clone(),
        })
    }

    /// The outbound channel of one request (`tx`: its SSE frames, used when the client
    /// takes SSE); takes the client's capabilities out of `ctx`.
    pub(super) fn outbound(
        &self,
        ctx: &mut Ctx,
        params: &Map<String, Value>,
        tx: mpsc::UnboundedSender<Bytes>,
    ) -> Outbound {
        let modern = ctx.version.era() == Era::Modern;
        let tx = ctx.accepts.sse.then_some(tx);
        let meta = params.get("_meta").and_then(Value::as_object);
        Outbound {
            tx,
            version: ctx.version,
            session: ctx.session.clone(),
            capabilities: std::mem::take(&mut ctx.client_capabilities),
            modern_log_level: meta
                .and_then(|m| m.get(meta::LOG_LEVEL))
                .and_then(Value::as_str)
                .and_then(mcp::LogLevel::parse)
                .filter(|_| modern),
            input: params.get("inputResponses").filter(|_| modern).map(|r| {
                let state = params
                    .get("requestState")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                (r.clone(), state)
            }),
        }
    }

    /// Answers a handled request. SSE when chosen up front; else JSON when it
    /// finishes without sending anything, and an SSE stream (starting with the first
    /// message the handler sent, or with a keep-alive when the answer takes longer than
    /// one keep-alive interval, so idle proxies do not cut it) when it does not. A
    /// cancelled request gets no response; a request whose answer is dropped before it
    /// is ready (the client closed the connection or reset the stream) is cancelled,
    /// in either framing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn respond(
        &self,
        ctx: &Ctx,
        id: RequestId,
        use_sse: bool,
        cancel: CancellationToken,
        hold: Hold,
        mut rx: mpsc::UnboundedReceiver<Bytes>,
        mut future: BoxFuture<Result<Bytes, ErrorObject>>,
    ) -> Response<Body> {
        let keep_alive = self.inner.config.keep_alive;
        if use_sse {
            return body::sse_response(call_stream(id, future, rx, cancel, hold, keep_alive));
        }
        let dropped = CancelOnDrop {
            cancel: Some(cancel.clone()),
            id: &id,
        };
        // A slow answer turns into SSE opened with a keep-alive, so idle proxies
        // between the client and here do not cut it.
        let first = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            out = &mut future => Some(Err(out)),
            Some(frame) = rx.recv(), if ctx.accepts.sse => Some(Ok(Some(frame))),
            _ = tokio::time::sleep(keep_alive), if ctx.accepts.sse => Some(Ok(None)),
        };
        dropped.disarm();
        match first {
            Some(Ok(frame)) => {
                let head = frame.map_or_else(sse::keep_alive, |f| sse::encode_event(&f));
                body::sse_response(
                    stream::once(async move { head })
                        .chain(call_stream(id, future, rx, cancel, hold, keep_alive)),
                )
            }
            Some(Err(_)) if cancel.is_cancelled() => body::status_response(StatusCode::NO_CONTENT),
            Some(Err(out)) => {
                drop(hold);
                // Messages the handler sent in its only poll precede the response.
                let mut frames = Vec::new();
                while let Ok(note) = rx.try_recv() {
                    frames.extend_from_slice(&sse::encode_event(&note));
                }
                if !frames.is_empty() {
                    let last = match out {
                        Ok(result) => jsonrpc::result_bytes(&id, &result),
                        Err(e) => jsonrpc::error_bytes(Some(&id), &e),
                    };
                    frames.extend_from_slice(&sse::encode_event(&last));
                    let all = Bytes::from(frames);
                    return body::sse_response(stream::once(async move { all }));
                }
                match out {
                    Ok(result) => {
                        body::json_response(StatusCode::OK, jsonrpc::result_bytes(&id, &result))
                    }
                    Err(e) => error_response(StatusCode::OK, Some(&id), &e),
                }
            }
            // Cancelled by the client: no JSON-RPC response is sent for it.
            None => body::status_response(StatusCode::NO_CONTENT),
        }
    }
}

/// Cancels a request when dropped armed: hyper drops the answer being awaited when
/// its client goes away, and the request's work must then stop as it does when an SSE
/// answer is dropped.
struct CancelOnDrop<'a> {
    /// The request's token, until the answer is in hand.
    cancel: Option<CancellationToken>,
    /// The request's id, for the debug line.
    id: &'a RequestId,
}

impl CancelOnDrop<'_> {
    /// The answer is in hand: dropping no longer cancels.
    fn disarm(mut self) {
        self.cancel = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel.cancel();
            tracing::debug!(request = %self.id, "client gone before the answer: request cancelled");
        }
    }
}

/// Whether a non-initialize message belongs to the 2026-07-28 era: its body carries
/// the per-request protocol version, or its version header names a modern (or unknown
/// but session-less) revision.
pub(super) fn is_modern(headers: &HeaderMap, message: &Message) -> bool {
    let params = match message {
        Message::Request(r) => r.params.as_ref(),
        Message::Notification(n) => n.params.as_ref(),
        Message::Response(_) => None,
    };
    if jsonrpc::meta_of(params).is_some_and(|m| m.contains_key(meta::PROTOCOL_VERSION)) {
        return true;
    }
    match headers
        .get(headers::MCP_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
    {
        None => {
            matches!(message, Message::Request(r) if r.method == method::DISCOVER || r.method == method::SUBSCRIPTIONS_LISTEN)
        }
        Some(v) => match ProtocolVersion::parse(v) {
            Some(v) => v.era() == Era::Modern,
            None => !headers.contains_key(headers::MCP_SESSION_ID),
        },
    }
}
