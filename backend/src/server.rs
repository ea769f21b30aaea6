//! The MCP face of the node tools: a [`McpHandler`] over [`crate::tools`], plus the
//! HTTP routes of the process (`/mcp`, `/mcp/`, `/healthz`).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use mcp_protocol::body::{self, Body};
use mcp_protocol::headers::ParamHeader;
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{self, Era};
use mcp_protocol::server::{BoxFuture, McpHandler, McpServer, ServerConfig, ToolCall};
use mcp_protocol::telemetry::KeyValue;
use mcp_protocol::tracecontext::{HeaderTraceContext, TraceContext};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;

use crate::auth::ClientAuth;
use crate::tools::{self, CallError, ToolContext};

/// The node tools as an MCP tool handler.
pub struct NodeTools {
    /// Node name and host paths the tools read.
    ctx: Arc<ToolContext>,
    /// What is listed now (replaced when `HIDE_TOOLS_FILE` changes).
    listing: Arc<RwLock<Listing>>,
    /// Whether `confirm_cpu_usage` and `ask_client` are served (`INTERACTIVE_TOOLS`).
    interactive: bool,
    /// `cpu_usage` runs started as tasks.
    tasks: Arc<crate::tasks::TaskStore>,
    /// What `HIDE_TOOLS_FILE` names now (tools, the prompt or the resource URI).
    hidden: Arc<RwLock<Vec<String>>>,
    /// Who is subscribed to `node://os-release`.
    subscriptions: Arc<crate::watch::Subscriptions>,
    /// The trace exporter, when OTLP export is on.
    telemetry: Option<Arc<mcp_protocol::telemetry::Telemetry>>,
}

/// The tools/list answers and the names they list.
struct Listing {
    /// Serialized tools/list results, legacy and modern, built once per tool set.
    legacy: Bytes,
    modern: Bytes,
    /// Listed tool names (none declares `x-mcp-header`).
    names: HashMap<String, Arc<[ParamHeader]>>,
}

/// Test knobs of the node server, so one binary can play several builds.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// Also serve `confirm_cpu_usage` and `ask_client` (`INTERACTIVE_TOOLS`).
    pub interactive: bool,
    /// `TOOL_VARIANT=b`: `list_processes` has another schema (an extra optional
    /// parameter), as a second build of the same tool would.
    pub variant: Option<String>,
    /// `HIDE_TOOLS_FILE`: a file of tool names not to offer (comma-separated; the
    /// prompt's name and the resource's URI count too), read again every
    /// [`TOOLS_FILE_POLL`]; a change is announced with the list_changed notification of
    /// each list it touches.
    pub hide_tools_file: Option<std::path::PathBuf>,
    /// Spans exported over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`), when set: a server
    /// span per tools/call, continuing the caller's (the gateway's) trace.
    pub telemetry: Option<Arc<mcp_protocol::telemetry::Telemetry>>,
}

/// How often `HIDE_TOOLS_FILE` is read.
pub const TOOLS_FILE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

impl Listing {
    fn new(defs: &[serde_json::Value], list_ttl_ms: u64) -> Self {
        let list = |era, defs: &[serde_json::Value]| {
            Bytes::from(
                serde_json::to_vec(&mcp::tools_list_result(era, defs, None, list_ttl_ms))
                    .unwrap_or_default(),
            )
        };
        let mut defs = defs.to_vec();
        crate::tasks::mark_task_support(&mut defs);
        let defs = &defs[..];
        Listing {
            legacy: list(Era::Legacy, defs),
            modern: list(Era::Modern, defs),
            names: defs
                .iter()
                .filter_map(|d| d["name"].as_str())
                .map(|n| (n.to_string(), Arc::from(Vec::new())))
                .collect(),
        }
    }
}

/// `list_processes` as build B defines it: one more optional parameter.
fn variant_b(mut defs: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    for d in &mut defs {
        if d["name"] == "list_processes"
            && let Some(props) = d
                .pointer_mut("/inputSchema/properties")
                .and_then(serde_json::Value::as_object_mut)
        {
            props.insert(
                "variant".into(),
                serde_json::json!({"type": "string", "description": "Only in build B's schema (a catalog test knob; the tool refuses it)."}),
            );
        }
    }
    defs
}

impl NodeTools {
    /// Builds the handler and its cached tools/list answers.
    pub fn new(ctx: ToolContext, list_ttl_ms: u64) -> Self {
        Self::with_interactive(ctx, list_ttl_ms, false)
    }

    /// [`NodeTools::new`], with `confirm_cpu_usage` when `interactive` (a tool that
    /// logs and asks the client mid-call, for testing a relay).
    pub fn with_interactive(ctx: ToolContext, list_ttl_ms: u64, interactive: bool) -> Self {
        let knobs = Knobs {
            interactive,
            ..Knobs::default()
        };
        Self::with_knobs(ctx, list_ttl_ms, &knobs, &[])
    }

    /// [`NodeTools::new`] with the test knobs, not offering `hidden` either.
    fn with_knobs(ctx: ToolContext, list_ttl_ms: u64, knobs: &Knobs, hidden: &[String]) -> Self {
        let subscriptions = crate::watch::Subscriptions::new(ctx.host.root.join("etc/os-release"));
        let listing = Arc::new(RwLock::new(Listing::new(
            &Self::defs(&ctx, knobs, hidden),
            list_ttl_ms,
        )));
        NodeTools {
            ctx: Arc::new(ctx),
            listing,
            interactive: knobs.interactive,
            tasks: Default::default(),
            hidden: Arc::new(RwLock::new(hidden.to_vec())),
            subscriptions,
            telemetry: knobs.telemetry.clone(),
        }
    }

    /// The definitions served under `knobs`, without `hidden`.
    fn defs(ctx: &ToolContext, knobs: &Knobs, hidden: &[String]) -> Vec<serde_json::Value> {
        let mut defs = ctx.definitions();
        if knobs.interactive {
            defs.push(crate::interactive::definition());
            defs.push(crate::interactive::ask_definition());
        }
        if knobs.variant.as_deref() == Some("b") {
            defs = variant_b(defs);
        }
        defs.retain(|d| !hidden.iter().any(|h| d["name"] == h.as_str()));
        defs
    }
}

impl McpHandler for NodeTools {
    fn list_tools(&self, era: Era, cursor: Option<&str>) -> Result<Bytes, ErrorObject> {
        if let Some(c) = cursor {
            return Err(ErrorObject::invalid_params(format!(
                "unknown cursor {c:?}: this server lists all tools on one page"
            )));
        }
        let listing = self.listing.read().unwrap_or_else(|e| e.into_inner());
        Ok(match era {
            Era::Legacy => listing.legacy.clone(),
            Era::Modern => listing.modern.clone(),
        })
    }

    fn param_headers(&self, tool: &str) -> Option<Arc<[ParamHeader]>> {
        let listing = self.listing.read().unwrap_or_else(|e| e.into_inner());
        listing.names.get(tool).cloned()
    }

    fn handles(&self, method_name: &str) -> bool {
        crate::content::handles(method_name)
            || mcp_protocol::tasks::is_task_method(method_name)
            || matches!(method_name, SUBSCRIBE | UNSUBSCRIBE)
    }

    fn listen_resources(
        &self,
        uris: &[String],
        sink: &mcp_protocol::server::ListenSink,
        _extensions: &http::Extensions,
    ) -> Vec<String> {
        let os_release = crate::content::OS_RELEASE;
        if uris.iter().any(|u| u == os_release) && self.subscriptions.subscribe_listen(sink) {
            vec![os_release.to_string()]
        } else {
            Vec::new()
        }
    }

    fn listen_tasks(
        &self,
        task_ids: &[String],
        sink: &mcp_protocol::server::ListenSink,
        _extensions: &http::Extensions,
    ) -> Vec<String> {
        self.tasks.listen(task_ids, sink)
    }

    fn handle_request(
        &self,
        request: mcp_protocol::server::ClientRequest,
    ) -> BoxFuture<Result<Bytes, ErrorObject>> {
        let era = request.outbound.version().era();
        if matches!(request.method.as_str(), SUBSCRIBE | UNSUBSCRIBE) {
            let answer = self.subscribe(&request);
            return Box::pin(async move { answer.map(|()| Bytes::from_static(b"{}")) });
        }
        if mcp_protocol::tasks::is_task_method(&request.method) {
            let tasks = self.tasks.clone();
            return Box::pin(async move {
                let answer = tasks.handle(era, &request.method, &request.params).await?;
                serde_json::to_vec(&answer)
                    .map(Bytes::from)
                    .map_err(ErrorObject::internal)
            });
        }
        let hidden = self
            .hidden
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if request.method == mcp::method::PROMPTS_GET
            && request
                .params
                .get("name")
                .and_then(serde_json::Value::as_str)
                == Some(crate::content::TRIAGE)
        {
            let ctx = self.ctx.clone();
            return Box::pin(async move {
                let answer =
                    match crate::content::ask_symptom(&request.outbound, &request.params).await {
                        Ok(params) => {
                            crate::content::answer(&ctx, era, &request.method, &params, &hidden)?
                        }
                        Err(input_required) => input_required,
                    };
                serde_json::to_vec(&answer)
                    .map(Bytes::from)
                    .map_err(ErrorObject::internal)
            });
        }
        let answer =
            crate::content::answer(&self.ctx, era, &request.method, &request.params, &hidden)
                .and_then(|v| serde_json::to_vec(&v).map_err(ErrorObject::internal));
        Box::pin(async move { answer.map(Bytes::from) })
    }

    fn call_tool(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        match &self.telemetry {
            None => self.serve_call(call),
            Some(t) => {
                let node = KeyValue::new("k8s.node.name", self.ctx.node_name.clone());
                mcp_protocol::telemetry::tool_call(t, call, vec![node], |c| self.serve_call(c))
            }
        }
    }
}

impl NodeTools {
    fn serve_call(&self, call: ToolCall) -> BoxFuture<Result<Bytes, ErrorObject>> {
        let ctx = self.ctx.clone();
        let listed = {
            let listing = self.listing.read().unwrap_or_else(|e| e.into_inner());
            listing.names.contains_key(&call.name)
        };
        if !listed {
            let name = call.name.clone();
            return Box::pin(async move {
                Err(ErrorObject::invalid_params(format!("Unknown tool: {name}")))
            });
        }
        if crate::tasks::wanted(call.version.era(), &call.name, &call.params) {
            let session = call.outbound.session_push();
            let answer = self
                .tasks
                .start(ctx, call.version.era(), &call.params, session);
            return Box::pin(async move { answer });
        }
        if self.interactive && call.name == crate::interactive::NAME {
            return Box::pin(confirm_cpu_usage(ctx, call));
        }
        if self.interactive && call.name == crate::interactive::ASK {
            return Box::pin(async move {
                let result = crate::interactive::ask_client(&call, &ctx.node_name).await;
                serde_json::to_vec(&result)
                    .map(Bytes::from)
                    .map_err(ErrorObject::internal)
            });
        }
        Box::pin(async move {
            tracing::debug!(tool = %call.name, "tool call started");
            let era = call.version.era();
            let empty = serde_json::Map::new();
            let args = call.arguments().unwrap_or(&empty);
            let outcome = run_with_progress(&ctx, &call, args, &call.cancel).await;
            let result = match outcome {
                Ok(out) => mcp::tool_result(era, &out.text, Some(out.structured), false),
                Err(CallError::UnknownTool(name)) => {
                    return Err(ErrorObject::invalid_params(format!("Unknown tool: {name}")));
                }
                Err(CallError::Cancelled) => {
                    return Err(ErrorObject::new(
                        jsonrpc::REQUEST_CANCELLED,
                        "request cancelled",
                    ));
                }
                Err(e @ (CallError::InvalidArguments(_) | CallError::Failed(_))) => {
                    mcp::tool_result(era, &e.to_string(), None, true)
                }
            };
            serde_json::to_vec(&result)
                .map(Bytes::from)
                .map_err(ErrorObject::internal)
        })
    }
}

/// 2025-11-25 resource subscription methods.
const SUBSCRIBE: &str = "resources/subscribe";
const UNSUBSCRIBE: &str = "resources/unsubscribe";

impl NodeTools {
    /// `resources/subscribe` / `resources/unsubscribe` of a legacy session.
    fn subscribe(&self, request: &mcp_protocol::server::ClientRequest) -> Result<(), ErrorObject> {
        let uri = request
            .params
            .get("uri")
            .and_then(serde_json::Value::as_str);
        if uri != Some(crate::content::OS_RELEASE) {
            return Err(ErrorObject::new(-32002, "Resource not found")
                .with_data(serde_json::json!({ "uri": uri })));
        }
        let (Some(session), Some(push)) = (
            request.outbound.session_id(),
            request.outbound.session_push(),
        ) else {
            return Err(ErrorObject::method_not_found(&request.method));
        };
        if request.method == UNSUBSCRIBE {
            self.subscriptions.unsubscribe_session(session);
        } else if !self.subscriptions.subscribe_session(session, push) {
            return Err(ErrorObject::internal(
                "This node server has as many resource subscribers as it takes; try again later.",
            ));
        }
        Ok(())
    }
}

/// `confirm_cpu_usage`: log, ask, then sample (or say why not).
async fn confirm_cpu_usage(ctx: Arc<ToolContext>, call: ToolCall) -> Result<Bytes, ErrorObject> {
    use crate::interactive::{Decision, confirm};
    let era = call.version.era();
    let seconds = call
        .arguments()
        .and_then(|a| a.get("seconds"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 30);
    let node = ctx.node_name.clone();
    let result = match confirm(&call, &node, seconds).await {
        Decision::Ask(input_required) => input_required,
        Decision::Stop(why) => {
            mcp::tool_result(era, &format!("{node}: not sampled: {why}"), None, false)
        }
        Decision::Proceed => {
            let mut args = serde_json::Map::new();
            args.insert("seconds".into(), seconds.into());
            match tools::call(&ctx, "cpu_usage", &args, None, &call.cancel).await {
                Ok(out) => {
                    call.outbound.log(
                        mcp_protocol::mcp::LogLevel::Info,
                        Some(crate::interactive::NAME),
                        serde_json::json!("sampled"),
                    );
                    mcp::tool_result(
                        era,
                        &format!("{node}: confirmed; {}", out.text),
                        Some(out.structured),
                        false,
                    )
                }
                Err(e) => mcp::tool_result(era, &e.to_string(), None, true),
            }
        }
    };
    serde_json::to_vec(&result)
        .map(Bytes::from)
        .map_err(ErrorObject::internal)
}

/// Runs a tool, forwarding its progress updates to the client as they happen.
async fn run_with_progress(
    ctx: &ToolContext,
    call: &ToolCall,
    args: &serde_json::Map<String, serde_json::Value>,
    cancel: &CancellationToken,
) -> Result<tools::ToolOutput, CallError> {
    let Some(sink) = &call.progress else {
        return tools::call(ctx, &call.name, args, None, cancel).await;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let work = tools::call(ctx, &call.name, args, Some(tx), cancel);
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            Some(u) = rx.recv() => sink.progress(u.progress, u.total, u.message.as_deref()),
            out = &mut work => {
                while let Ok(u) = rx.try_recv() {
                    sink.progress(u.progress, u.total, u.message.as_deref());
                }
                return out;
            }
        }
    }
}

/// Routes one HTTP request: the MCP endpoint (behind `auth`, every method) and the
/// health check (open, for the kubelet).
pub async fn route(
    server: McpServer<NodeTools>,
    auth: Arc<ClientAuth>,
    mut req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (_, "/mcp" | "/mcp/") => match auth.check(req.headers()).await {
            Ok(()) => {
                if server.handler().telemetry.is_some()
                    && let Some(context) = TraceContext::from_headers(req.headers())
                {
                    req.extensions_mut().insert(HeaderTraceContext(context));
                }
                server.handle(req).await
            }
            Err(refusal) => {
                tracing::debug!(reason = refusal.label(), method = %req.method(), "MCP request refused");
                refusal.response()
            }
        },
        (&Method::GET, "/healthz") => body::text_response(StatusCode::OK, "ok\n"),
        _ => body::text_response(
            StatusCode::NOT_FOUND,
            "not found: the MCP endpoint is /mcp\n",
        ),
    }
}

/// The transport settings of the node server.
pub fn server_config(node_name: &str) -> ServerConfig {
    let mut cfg = ServerConfig::new("node-mcp-server", env!("CARGO_PKG_VERSION"));
    cfg.info.title = Some("Kubernetes node tools".into());
    // The gateway accepts bodies up to 4 MiB and re-wraps them (its own id and
    // `_meta`): leave room so a request the gateway took is never too large here.
    cfg.max_body_bytes = 4 * 1024 * 1024 + 64 * 1024;
    // Only the gateway calls a node server: a smaller budget keeps what slow or
    // parked requests can pin well inside the pod's 128Mi.
    cfg.body_budget_bytes = 16 * 1024 * 1024;
    cfg.instructions = Some(format!(
        "Read-only tools that report on the Kubernetes node {node_name}: identity, processes, disks and CPU."
    ));
    cfg
}

/// The node server's connection limits: the gateway pools a few connections per
/// pod, so 256 leaves ample room while bounding what they can pin (256 x 64 KiB).
pub fn connection_limits() -> mcp_protocol::serve::ConnectionLimits {
    mcp_protocol::serve::ConnectionLimits {
        max_connections: 256,
        ..Default::default()
    }
}

/// Serves the node tools on `listener` to anyone until `shutdown` resolves. The
/// gateway's demo mode runs several of these in one process.
pub async fn run(
    listener: tokio::net::TcpListener,
    ctx: ToolContext,
    shutdown: impl std::future::Future<Output = ()>,
) {
    run_with_auth(listener, ctx, Arc::new(ClientAuth::None), shutdown).await
}

/// Serves the node tools on `listener` to callers `auth` accepts until `shutdown`
/// resolves.
pub async fn run_with_auth(
    listener: tokio::net::TcpListener,
    ctx: ToolContext,
    auth: Arc<ClientAuth>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    run_with_options(listener, ctx, auth, false, shutdown).await
}

/// [`run_with_auth`], serving `confirm_cpu_usage` too when `interactive`
/// (`INTERACTIVE_TOOLS`).
pub async fn run_with_options(
    listener: tokio::net::TcpListener,
    ctx: ToolContext,
    auth: Arc<ClientAuth>,
    interactive: bool,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let knobs = Knobs {
        interactive,
        ..Knobs::default()
    };
    run_with_knobs(listener, ctx, auth, knobs, shutdown).await
}

/// [`run_with_auth`] with the test [`Knobs`].
pub async fn run_with_knobs(
    listener: tokio::net::TcpListener,
    ctx: ToolContext,
    auth: Arc<ClientAuth>,
    knobs: Knobs,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let cfg = server_config(&ctx.node_name);
    let ttl = cfg.list_ttl_ms;
    let read_hidden = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let hidden = knobs
        .hide_tools_file
        .as_deref()
        .map(read_hidden)
        .unwrap_or_default();
    let tools = NodeTools::with_knobs(ctx.clone(), ttl, &knobs, &hidden);
    let telemetry = knobs.telemetry.clone();
    let listing = tools.listing.clone();
    let hidden_now = tools.hidden.clone();
    let server = McpServer::new(cfg, tools);
    server.set_capabilities(crate::content::capabilities());
    let watcher = knobs.hide_tools_file.clone().map(|path| {
        let server = server.clone();
        tokio::spawn(async move {
            let mut current = hidden;
            loop {
                tokio::time::sleep(TOOLS_FILE_POLL).await;
                let next = read_hidden(&path);
                if next != current {
                    tracing::info!(hidden = ?next, "HIDE_TOOLS_FILE changed; announcing the new lists");
                    let defs = NodeTools::defs(&ctx, &knobs, &next);
                    *listing.write().unwrap_or_else(|e| e.into_inner()) = Listing::new(&defs, ttl);
                    *hidden_now.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
                    let flipped = |name: &str| {
                        current.iter().any(|h| h == name) != next.iter().any(|h| h == name)
                    };
                    if flipped(crate::content::TRIAGE) {
                        server.notify_prompts_changed();
                    }
                    if flipped(crate::content::OS_RELEASE) {
                        server.notify_resources_changed();
                    }
                    current = next;
                    server.notify_tools_changed();
                }
            }
        })
    });
    let stop = server.clone();
    let shutdown = async move {
        shutdown.await;
        stop.shutdown();
    };
    mcp_protocol::serve::serve_with(
        listener,
        connection_limits(),
        move |req| route(server.clone(), auth.clone(), req),
        shutdown,
        std::time::Duration::from_secs(10),
    )
    .await;
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(t) = telemetry {
        // The last spans are exported before the process exits.
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
}
