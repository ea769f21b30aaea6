//! The 2026-07-28 rules: per-request version and capabilities, header mirroring, server/discover and subscriptions/listen.

use super::*;

impl<H: McpHandler> McpServer<H> {
    /// A 2026-07-28 request: stateless, headers mirror the body.
    pub(super) async fn modern(
        &self,
        headers: &HeaderMap,
        extensions: http::Extensions,
        budget: Option<Arc<body::BudgetShare>>,
        accepts: Accepts,
        message: Message,
    ) -> Response<Body> {
        let req = match message {
            Message::Notification(_) => return body::status_response(StatusCode::ACCEPTED),
            Message::Response(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    &ErrorObject::invalid_request(
                        "clients do not send responses in protocol version 2026-07-28",
                    ),
                );
            }
            Message::Request(req) => req,
        };
        let id = Some(&req.id);
        let header_version = headers
            .get(headers::MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok());
        // Looked up once: the version, the capabilities and the context all read it.
        let request_meta = req.meta();
        let body_version = request_meta
            .and_then(|m| m.get(meta::PROTOCOL_VERSION))
            .and_then(Value::as_str);
        let requested = match (header_version, body_version) {
            (None, _) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    &ErrorObject::header_mismatch("the MCP-Protocol-Version header is required"),
                );
            }
            (Some(_), None) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    &ErrorObject::invalid_params(format!(
                        "params._meta[\"{}\"] is required",
                        meta::PROTOCOL_VERSION
                    )),
                );
            }
            (Some(h), Some(b)) if h != b => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    &ErrorObject::header_mismatch(format!(
                        "MCP-Protocol-Version header value '{h}' does not match body value '{b}'"
                    )),
                );
            }
            (Some(h), Some(_)) => h,
        };
        let version = match ProtocolVersion::parse(requested) {
            Some(v) if v.era() == Era::Modern => v,
            _ => return unsupported_version(id, requested, true),
        };
        let Some(client_capabilities) = request_meta.and_then(|m| m.get(meta::CLIENT_CAPABILITIES))
        else {
            return error_response(
                StatusCode::BAD_REQUEST,
                id,
                &ErrorObject::invalid_params(format!(
                    "params._meta[\"{}\"] is required",
                    meta::CLIENT_CAPABILITIES
                )),
            );
        };
        if let Err(e) = headers::check_standard_headers(headers, &req) {
            return error_response(StatusCode::BAD_REQUEST, id, &e);
        }
        let ctx = Ctx {
            version,
            accepts,
            session: None,
            client_capabilities: client_capabilities.clone(),
            extensions,
            budget,
        };
        match req.method.as_str() {
            method::DISCOVER => {
                let cfg = &self.inner.config;
                let result = mcp::discover_result(
                    &cfg.info,
                    &self.capabilities(),
                    cfg.instructions.as_deref(),
                    cfg.list_ttl_ms,
                );
                json_result(&req.id, &result)
            }
            method::TOOLS_LIST => self.list(&ctx, &req),
            method::TOOLS_CALL => self.call(ctx, req, Some(headers)).await,
            method::SUBSCRIPTIONS_LISTEN => self.listen(&ctx, req),
            m if self.inner.handler.handles(m) => self.other(ctx, req).await,
            _ => error_response(
                StatusCode::NOT_FOUND,
                id,
                &ErrorObject::method_not_found(&req.method),
            ),
        }
    }

    /// 2026-07-28 `subscriptions/listen`: acknowledge, then list_changed on catalog changes.
    pub(super) fn listen(&self, ctx: &Ctx, req: Request) -> Response<Body> {
        let Some(filter) = req
            .params
            .as_ref()
            .and_then(|p| p.get("notifications"))
            .and_then(Value::as_object)
        else {
            return error_response(
                StatusCode::OK,
                Some(&req.id),
                &ErrorObject::invalid_params(
                    "subscriptions/listen needs params.notifications (an object)",
                ),
            );
        };
        if !ctx.accepts.sse {
            return error_response(
                StatusCode::NOT_ACCEPTABLE,
                Some(&req.id),
                &ErrorObject::invalid_request(
                    "subscriptions/listen answers with text/event-stream",
                ),
            );
        }
        let Ok(slot) = self.inner.streams.clone().try_acquire_owned() else {
            return busy(Some(&req.id), "too many open streams; retry shortly");
        };
        let caps = self.capabilities();
        let sub_meta = json!({ meta::SUBSCRIPTION_ID: req.id.to_value() });
        let mut honoured = Map::new();
        let mut frames = ListFrames::default();
        // A list is honoured when asked for and served with change notifications.
        for (field, list, method_name, slot) in [
            (
                "toolsListChanged",
                "tools",
                method::TOOLS_LIST_CHANGED,
                &mut frames.tools,
            ),
            (
                "promptsListChanged",
                "prompts",
                method::PROMPTS_LIST_CHANGED,
                &mut frames.prompts,
            ),
            (
                "resourcesListChanged",
                "resources",
                method::RESOURCES_LIST_CHANGED,
                &mut frames.resources,
            ),
        ] {
            let served = list == "tools"
                || caps.pointer(&format!("/{list}/listChanged")) == Some(&Value::Bool(true));
            if served && filter.get(field) == Some(&Value::Bool(true)) {
                honoured.insert(field.into(), true.into());
                *slot = Some(jsonrpc::notification_bytes(
                    method_name,
                    Some(&json!({ "_meta": sub_meta })),
                ));
            }
        }
        // Resource and task subscriptions, when the handler serves them (what it
        // serves none of is left out of the acknowledgement).
        let (tx, rx) = mpsc::channel(LISTEN_QUEUE);
        let sink = ListenSink::new(tx, sub_meta.clone());
        let strings = |field: &str| -> Option<Vec<String>> {
            let Some(Value::Array(items)) = filter.get(field) else {
                return None;
            };
            Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .take(MAX_RESOURCE_SUBSCRIPTIONS)
                    .map(str::to_owned)
                    .collect(),
            )
        };
        let mut serving = false;
        if let Some(uris) = strings("resourceSubscriptions") {
            let got = self
                .inner
                .handler
                .listen_resources(&uris, &sink, &ctx.extensions);
            if !got.is_empty() {
                serving = true;
                honoured.insert("resourceSubscriptions".into(), got.into());
            }
        }
        if let Some(ids) = strings("taskIds") {
            if !crate::tasks::declares_extension(req.params.as_ref().unwrap_or(&Map::new())) {
                return error_response(
                    StatusCode::OK,
                    Some(&req.id),
                    &ErrorObject::new(
                        crate::tasks::MISSING_CAPABILITY,
                        "Missing required client capability",
                    )
                    .with_data(json!({"requiredCapabilities":
                        {"extensions": {crate::tasks::EXTENSION: {}}}})),
                );
            }
            let got = self
                .inner
                .handler
                .listen_tasks(&ids, &sink, &ctx.extensions);
            if !got.is_empty() {
                serving = true;
                honoured.insert("taskIds".into(), got.into());
            }
        }
        drop(sink);
        let pushed = serving.then(|| Arc::new(tokio::sync::Mutex::new(rx)));
        let ack = jsonrpc::notification_bytes(
            method::SUBSCRIPTIONS_ACKNOWLEDGED,
            Some(&json!({ "_meta": sub_meta, "notifications": honoured })),
        );
        let closing = jsonrpc::result_bytes(
            &req.id,
            &serde_json::to_vec(&json!({ "resultType": "complete", "_meta": sub_meta }))
                .unwrap_or_default(),
        );
        let rx = Arc::new(tokio::sync::Mutex::new(self.inner.list_changes.subscribe()));
        let first = stream::once(async move { sse::encode_event(&ack) });
        let rest = change_stream(
            rx,
            frames,
            pushed,
            self.inner.shutdown.clone(),
            self.inner.config.keep_alive,
            StreamHold {
                _session: None,
                _slot: slot,
            },
        );
        let end = stream::once(async move { sse::encode_event(&closing) });
        body::sse_response(first.chain(rest).chain(end))
    }
}
