//! `cpu_usage` as a task, so a long sample survives a dropped connection: the call is
//! answered at once with a task handle, the sample runs in the background, and the
//! caller polls for it.
//!
//! Asked for in either shape: a 2025-11-25 session sends `params.task` (the tool is
//! listed with `execution.taskSupport: "optional"`, see [`mark_task_support`]) and fetches the result with
//! `tasks/result`; a 2026-07-28 request declares the `io.modelcontextprotocol/tasks`
//! extension in its client capabilities and gets the result inlined by `tasks/get`.
//! Tasks are kept in memory, at most [`MAX_TASKS`], each until its TTL ends.
//!
//! Task ids are random 128-bit handles, not bound to a session: the node server's
//! only client is the gateway, whose upstream session may be renewed while a task
//! runs, and which binds each task to its own caller.

use bytes::Bytes;
use mcp_protocol::jsonrpc::ErrorObject;
use mcp_protocol::mcp::Era;
use mcp_protocol::server::ListenSink;
use mcp_protocol::session::SessionPush;
use mcp_protocol::tasks;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::tools::{self, CallError, ToolContext};

/// Most tasks kept at once; a task asked for beyond it is refused.
pub const MAX_TASKS: usize = 1024;
/// How long a task is kept when the caller names no TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The longest TTL granted.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// The polling interval suggested to callers.
pub const POLL_INTERVAL_MS: u64 = 500;
/// The tool that runs as a task when asked.
pub const TOOL: &str = "cpu_usage";
/// Longest `tasks/result` wait before the caller is told to ask again.
const RESULT_WAIT: Duration = Duration::from_secs(120);

/// One task's state.
struct Task {
    status: &'static str,
    message: Option<String>,
    created_at: String,
    updated_at: String,
    ttl_ms: u64,
    expires: Instant,
    /// The tool result (completed) or JSON-RPC error (failed).
    outcome: Option<Result<Value, Value>>,
    cancel: CancellationToken,
    /// Fires when the task reaches a final status.
    done: tokio::sync::watch::Sender<bool>,
    /// 2026-07-28 listen streams told when the task ends (at most [`MAX_LISTENERS`]).
    listeners: Vec<ListenSink>,
    /// 2025-11-25: the session that started it, told with
    /// `notifications/tasks/status` when it ends.
    session: Option<SessionPush>,
}

/// Listen streams per task at most.
pub const MAX_LISTENERS: usize = 16;

impl Task {
    /// Tells the listen streams following this task, and the legacy session that
    /// started it, its (final) state.
    fn announce(&mut self, id: &str) {
        let state = Value::Object(self.to_modern(id, true));
        for l in self.listeners.drain(..) {
            l.notify(tasks::NOTIFICATION, state.clone());
        }
        if let Some(session) = self.session.take() {
            let legacy = Value::Object(tasks::to_legacy_task(&self.to_modern(id, false)));
            session.send(Bytes::from(mcp_protocol::jsonrpc::notification_bytes(
                tasks::STATUS_NOTIFICATION,
                Some(&legacy),
            )));
        }
    }

    /// The task in the modern shape (`resultType` not included), with its result or
    /// error when `detailed`.
    fn to_modern(&self, id: &str, detailed: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("taskId".into(), id.into());
        m.insert("status".into(), self.status.into());
        if let Some(msg) = &self.message {
            m.insert("statusMessage".into(), msg.clone().into());
        }
        m.insert("createdAt".into(), self.created_at.clone().into());
        m.insert("lastUpdatedAt".into(), self.updated_at.clone().into());
        m.insert("ttlMs".into(), self.ttl_ms.into());
        m.insert("pollIntervalMs".into(), POLL_INTERVAL_MS.into());
        if detailed {
            match &self.outcome {
                Some(Ok(result)) => {
                    m.insert("result".into(), result.clone());
                }
                Some(Err(error)) => {
                    m.insert("error".into(), error.clone());
                }
                None => {}
            }
        }
        m
    }

    fn shaped(&self, id: &str, era: Era) -> Map<String, Value> {
        match era {
            Era::Modern => self.to_modern(id, true),
            Era::Legacy => tasks::to_legacy_task(&self.to_modern(id, false)),
        }
    }
}

/// The node server's tasks.
#[derive(Default)]
pub struct TaskStore {
    tasks: Mutex<HashMap<String, Task>>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Whether a call asks to run as a task, in the shape of `era`.
pub fn wanted(era: Era, name: &str, params: &Map<String, Value>) -> bool {
    name == TOOL
        && match era {
            Era::Legacy => tasks::requested(params).is_some(),
            Era::Modern => tasks::declares_extension(params),
        }
}

/// `cpu_usage` is listed with `execution.taskSupport: "optional"`: the 2025-11-25
/// field, kept in the 2026-07-28 listing too (which allows extra fields), so a relay
/// that learned the tools in one revision serves the same definition in both.
pub fn mark_task_support(defs: &mut [Value]) {
    for d in defs {
        if d.get("name").and_then(Value::as_str) == Some(TOOL) {
            d["execution"] = json!({ "taskSupport": "optional" });
        }
    }
}

impl TaskStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `cpu_usage` with `args` in the background and answers the call with its
    /// task (`CreateTaskResult` of the caller's era).
    pub fn start(
        self: &Arc<Self>,
        ctx: Arc<ToolContext>,
        era: Era,
        params: &Map<String, Value>,
        session: Option<SessionPush>,
    ) -> Result<Bytes, ErrorObject> {
        let ttl = tasks::requested(params)
            .and_then(|t| t.get("ttl"))
            .and_then(Value::as_u64)
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_TTL)
            .min(MAX_TTL);
        let id = format!("{:032x}", rand::random::<u128>());
        let cancel = CancellationToken::new();
        let created = now();
        let task = Task {
            status: "working",
            message: Some("Sampling CPU usage.".into()),
            created_at: created.clone(),
            updated_at: created,
            ttl_ms: ttl.as_millis() as u64,
            expires: Instant::now() + ttl,
            outcome: None,
            cancel: cancel.clone(),
            done: tokio::sync::watch::channel(false).0,
            listeners: Vec::new(),
            session,
        };
        let created = {
            let mut map = self.lock();
            let now = Instant::now();
            map.retain(|_, t| t.expires > now);
            if map.len() >= MAX_TASKS {
                return Err(ErrorObject::internal(format!(
                    "This node server is keeping {MAX_TASKS} tasks already; try again when some have ended."
                )));
            }
            let created = match era {
                Era::Modern => {
                    let mut m = task.to_modern(&id, false);
                    m.insert("resultType".into(), "task".into());
                    Value::Object(m)
                }
                Era::Legacy => {
                    json!({ "task": tasks::to_legacy_task(&task.to_modern(&id, false)) })
                }
            };
            map.insert(id.clone(), task);
            created
        };
        let args = params
            .get("arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let store = self.clone();
        tokio::spawn(async move {
            tracing::debug!(task = %id, "task started");
            let outcome = tools::call(&ctx, TOOL, &args, None, &cancel).await;
            store.finish(&id, era, outcome);
        });
        serde_json::to_vec(&created)
            .map(Bytes::from)
            .map_err(ErrorObject::internal)
    }

    fn finish(&self, id: &str, era: Era, outcome: Result<tools::ToolOutput, CallError>) {
        let mut map = self.lock();
        let Some(task) = map.get_mut(id) else {
            return;
        };
        if tasks::is_terminal(task.status) {
            return;
        }
        let result = |text: &str, structured, is_error| {
            let mut r = mcp_protocol::mcp::tool_result(era, text, structured, is_error);
            if era == Era::Legacy {
                r["_meta"] = json!({ tasks::RELATED_TASK: { "taskId": id } });
            }
            r
        };
        let (status, outcome) = match outcome {
            Ok(out) => (
                "completed",
                Some(Ok(result(&out.text, Some(out.structured), false))),
            ),
            Err(CallError::Cancelled) => ("cancelled", None),
            Err(CallError::UnknownTool(name)) => (
                "failed",
                Some(Err(
                    json!({"code": -32602, "message": format!("Unknown tool: {name}")}),
                )),
            ),
            Err(e @ (CallError::InvalidArguments(_) | CallError::Failed(_))) => {
                ("completed", Some(Ok(result(&e.to_string(), None, true))))
            }
        };
        task.status = status;
        task.message = None;
        task.outcome = outcome;
        task.updated_at = now();
        task.done.send_replace(true);
        task.announce(id);
        tracing::debug!(task = %id, status, "task ended");
    }

    /// 2026-07-28 `subscriptions/listen` for `ids`: the known ones are reported with
    /// `notifications/tasks` on `sink` when they end (at once when they have).
    pub fn listen(&self, ids: &[String], sink: &ListenSink) -> Vec<String> {
        let mut map = self.lock();
        let mut honoured = Vec::new();
        for id in ids {
            let Some(task) = map.get_mut(id) else {
                continue;
            };
            if tasks::is_terminal(task.status) {
                sink.notify(tasks::NOTIFICATION, Value::Object(task.to_modern(id, true)));
            } else if task.listeners.len() < MAX_LISTENERS {
                task.listeners.retain(|l| !l.is_closed());
                task.listeners.push(sink.clone());
            } else {
                continue;
            }
            honoured.push(id.clone());
        }
        honoured
    }

    /// Answers a task method in the caller's era.
    pub async fn handle(
        &self,
        era: Era,
        method_name: &str,
        params: &Map<String, Value>,
    ) -> Result<Value, ErrorObject> {
        let complete = |mut m: Map<String, Value>| {
            if era == Era::Modern {
                m.insert("resultType".into(), "complete".into());
            }
            Value::Object(m)
        };
        if method_name == tasks::LIST {
            let map = self.lock();
            let now = Instant::now();
            let mut listed: Vec<(&String, &Task)> =
                map.iter().filter(|(_, t)| t.expires > now).collect();
            listed.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then(a.0.cmp(b.0)));
            let items: Vec<Value> = listed
                .into_iter()
                .map(|(id, t)| Value::Object(t.shaped(id, Era::Legacy)))
                .collect();
            return Ok(json!({ "tasks": items }));
        }
        let id = tasks::task_id(params)
            .ok_or_else(|| ErrorObject::invalid_params("params.taskId (a string) is required"))?
            .to_owned();
        let unknown = || ErrorObject::invalid_params(format!("Unknown task: {id}"));
        match method_name {
            tasks::GET => {
                let map = self.lock();
                let task = map
                    .get(&id)
                    .filter(|t| t.expires > Instant::now())
                    .ok_or_else(unknown)?;
                Ok(complete(task.shaped(&id, era)))
            }
            tasks::CANCEL => {
                let mut map = self.lock();
                let task = map.get_mut(&id).ok_or_else(unknown)?;
                if !tasks::is_terminal(task.status) {
                    task.cancel.cancel();
                    task.status = "cancelled";
                    task.message = Some("Cancelled by the caller.".into());
                    task.updated_at = now();
                    task.done.send_replace(true);
                    task.announce(&id);
                }
                Ok(match era {
                    Era::Modern => complete(Map::new()),
                    Era::Legacy => Value::Object(task.shaped(&id, era)),
                })
            }
            tasks::UPDATE => {
                // cpu_usage asks nothing: every response is for a key never issued.
                self.lock().get(&id).ok_or_else(unknown)?;
                Ok(complete(Map::new()))
            }
            tasks::RESULT => {
                let mut done = self.lock().get(&id).ok_or_else(unknown)?.done.subscribe();
                let waited =
                    tokio::time::timeout(RESULT_WAIT, done.wait_for(|finished| *finished)).await;
                if waited.is_err() {
                    return Err(ErrorObject::internal(format!(
                        "Task {id} is still working; ask for its result again."
                    )));
                }
                let map = self.lock();
                let task = map.get(&id).ok_or_else(unknown)?;
                match &task.outcome {
                    Some(Ok(result)) => Ok(result.clone()),
                    Some(Err(error)) => Err(serde_json::from_value(error.clone())
                        .unwrap_or_else(|_| ErrorObject::internal("task failed"))),
                    None => Err(
                        ErrorObject::new(-32000, format!("Task {id} was cancelled."))
                            .with_data(json!({ tasks::RELATED_TASK: { "taskId": id } })),
                    ),
                }
            }
            other => Err(ErrorObject::method_not_found(other)),
        }
    }
}
