//! Tasks through the gateway: a task a node server starts is handed to the client
//! under a gateway task id, and every later task request is routed to the node that
//! owns it.
//!
//! The id the client sees is sealed ([`mcp_protocol::seal`], purpose [`PURPOSE`]): it
//! names the node, the backend's own task id, the backend's task shape and the
//! caller that started it, so any replica holding the session keys routes it, after
//! a restart too, and nobody can forge one or use another caller's.
//!
//! Both task shapes are served, whatever shape the backend speaks:
//! - 2025-11-25 (`params.task`; `tasks/get`, `tasks/result`, `tasks/list`,
//!   `tasks/cancel`): relayed to a 2025-11-25 backend; for a 2026-07-28 backend the
//!   call declares the tasks extension, `tasks/get` is reshaped and `tasks/result`
//!   polls the backend's `tasks/get` until the task ends. When such a backend answers
//!   at once instead of starting a task, the gateway keeps the answer as a finished
//!   task of its own, on this replica, for [`FINISHED_TTL`].
//! - 2026-07-28 (`io.modelcontextprotocol/tasks`: `resultType: "task"`, `tasks/get`,
//!   `tasks/update`, `tasks/cancel`): relayed to a 2026-07-28 backend with the ids
//!   swapped; a 2025-11-25 backend is asked with `params.task` for the tools it lists
//!   with `execution.taskSupport`, and its task is reshaped (`tasks/get` inlines the
//!   result from `tasks/result` once the task has ended).
//!
//! Status notifications: a 2026-07-28 client's `subscriptions/listen` naming task
//! ids follows each on its node ([`listen`]).
//!
//! `tasks/list` lists the tasks the caller started through this replica (at most
//! [`LIST_MAX`], newest first), each as the owning node reports it now.

use bytes::Bytes;
use mcp_protocol::jsonrpc::{self, ErrorObject};
use mcp_protocol::mcp::{Era, meta};
use mcp_protocol::seal::Sealer;
use mcp_protocol::server::{ClientRequest, ListenSink};
use mcp_protocol::session::SessionPush;
use mcp_protocol::tasks;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::Caller;
use crate::gateway::Gateway;

/// The seal purpose of gateway task ids.
pub const PURPOSE: &str = "mcp-task";
/// Tasks remembered per caller for `tasks/list`.
pub const LIST_MAX: usize = 64;
/// Callers whose tasks are remembered for `tasks/list` (the oldest caller is
/// forgotten beyond it).
pub const LIST_CALLERS_MAX: usize = 4096;
/// How long a result the gateway keeps as a finished task of its own stays.
pub const FINISHED_TTL: Duration = Duration::from_secs(300);
/// Most bytes of such results kept at once (the oldest go first).
pub const FINISHED_MAX_BYTES: usize = 8 << 20;
/// Bounds on how often `tasks/result` polls a 2026-07-28 backend.
const POLL_MIN: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(5);

/// What a gateway task id carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Handle {
    /// The node whose server runs the task.
    #[serde(rename = "n")]
    node: String,
    /// The backend's task id (empty for a task the gateway finished itself).
    #[serde(rename = "t")]
    backend_id: String,
    /// Whether the backend speaks the 2026-07-28 shape.
    #[serde(rename = "m")]
    modern: bool,
    /// Who started it (source and subject).
    #[serde(rename = "o")]
    owner: String,
}

/// A result the gateway holds as a finished task.
struct Finished {
    task: Map<String, Value>,
    result: Bytes,
    expires: Instant,
}

/// The gateway's task ids and the little it remembers about tasks.
pub struct Tasks {
    sealer: Arc<Sealer>,
    /// The tasks each caller started here, for `tasks/list`.
    started: Mutex<Started>,
    /// Results of tasks the gateway finished itself.
    finished: Mutex<Held>,
    /// Task watches running ([`listen`]).
    watches: Arc<std::sync::atomic::AtomicUsize>,
    /// 2025-11-25 tasks on 2025-11-25 backends whose status a caller's session
    /// hears: (pod, backend task id) -> (gateway id, the session).
    session_followers: Mutex<HashMap<(std::net::IpAddr, String), SessionFollower>>,
    /// Pods whose call session's GET stream is read for those statuses.
    readers: Mutex<std::collections::HashSet<std::net::IpAddr>>,
}

/// A caller's session hearing one task's status, until the task ends or `until`.
struct SessionFollower {
    id: String,
    session: SessionPush,
    until: Instant,
}

impl SessionFollower {
    fn live(&self) -> bool {
        !self.session.is_closed() && self.until > Instant::now()
    }
}

/// Tasks whose status is passed to a session from a call session's GET stream, at most.
pub const MAX_SESSION_FOLLOWERS: usize = 1024;
/// Pods whose call session's GET stream is read for task statuses, at most.
pub const MAX_READERS: usize = 64;

/// Per caller, the ids of the tasks it started here, newest last; callers in the
/// order they were first seen (the oldest is forgotten first).
#[derive(Default)]
struct Started {
    by_owner: HashMap<String, VecDeque<String>>,
    owners: VecDeque<String>,
}

/// Results held as finished tasks, by gateway id, oldest first, and their size.
#[derive(Default)]
struct Held {
    by_id: HashMap<String, Finished>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Who a request comes from, as task ids record it.
pub fn owner_of(extensions: &http::Extensions) -> String {
    match extensions.get::<Arc<Caller>>() {
        Some(c) => c.key(),
        None => Caller::anonymous().key(),
    }
}

/// Adds the tasks extension to a forwarded request's client capabilities, so a
/// 2026-07-28 backend may answer with a task (a 2025-11-25 caller asked for one, or
/// the request is a task method).
pub fn declare_extension(params: &mut Map<String, Value>) {
    let m = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(m) = m else { return };
    let caps = m
        .entry(meta::CLIENT_CAPABILITIES)
        .or_insert_with(|| Value::Object(Map::new()));
    if !caps.is_object() {
        *caps = Value::Object(Map::new());
    }
    let ext = caps
        .as_object_mut()
        .map(|c| c.entry("extensions").or_insert_with(|| json!({})));
    if let Some(ext) = ext {
        if !ext.is_object() {
            *ext = json!({});
        }
        if let Some(e) = ext.as_object_mut() {
            e.entry(tasks::EXTENSION).or_insert_with(|| json!({}));
        }
    }
}

/// How a tools/call asks for a task, in the client's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Asked {
    /// 2025-11-25 `params.task`.
    Legacy,
    /// 2026-07-28: the extension is declared; the server decides.
    Modern,
}

/// Whether a call of a client of `era` may get a task back.
pub fn asked(era: Era, params: &Map<String, Value>) -> Option<Asked> {
    match era {
        Era::Legacy => tasks::requested(params).map(|_| Asked::Legacy),
        Era::Modern => tasks::declares_extension(params).then_some(Asked::Modern),
    }
}

fn unknown_task() -> ErrorObject {
    ErrorObject::invalid_params(
        "Unknown task: the id was not issued by this gateway, belongs to another caller, or its keys were retired.",
    )
}

impl Tasks {
    /// Task ids sealed with `sealer` (the session key ring).
    pub fn new(sealer: Arc<Sealer>) -> Self {
        Tasks {
            sealer,
            started: Mutex::new(Default::default()),
            finished: Mutex::new(Default::default()),
            watches: Default::default(),
            session_followers: Default::default(),
            readers: Default::default(),
        }
    }

    fn seal(&self, handle: &Handle) -> String {
        self.sealer
            .seal(PURPOSE, &serde_json::to_vec(handle).unwrap_or_default())
    }

    fn open(&self, id: &str, owner: &str) -> Result<Handle, ErrorObject> {
        let plain = self.sealer.open(PURPOSE, id).map_err(|_| unknown_task())?;
        let handle: Handle = serde_json::from_slice(&plain).map_err(|_| unknown_task())?;
        if handle.owner != owner {
            return Err(unknown_task());
        }
        Ok(handle)
    }

    fn remember(&self, owner: &str, id: &str) {
        let mut guard = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let Started {
            by_owner,
            owners: order,
        } = &mut *guard;
        if !by_owner.contains_key(owner) {
            if by_owner.len() >= LIST_CALLERS_MAX
                && let Some(oldest) = order.pop_front()
            {
                by_owner.remove(&oldest);
            }
            order.push_back(owner.to_owned());
        }
        let ids = by_owner.entry(owner.to_owned()).or_default();
        if ids.len() >= LIST_MAX {
            ids.pop_front();
        }
        ids.push_back(id.to_owned());
    }

    fn keep_finished(&self, id: &str, task: Map<String, Value>, result: Bytes) {
        if result.len() > FINISHED_MAX_BYTES {
            return;
        }
        let mut guard = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let Held {
            by_id: map,
            order,
            bytes,
        } = &mut *guard;
        let now = Instant::now();
        while let Some(oldest) = order.front() {
            let stale = map.get(oldest).is_none_or(|f| f.expires <= now);
            if !stale && *bytes + result.len() <= FINISHED_MAX_BYTES {
                break;
            }
            if let Some(f) = map.remove(oldest) {
                *bytes -= f.result.len();
            }
            order.pop_front();
        }
        *bytes += result.len();
        order.push_back(id.to_owned());
        map.insert(
            id.to_owned(),
            Finished {
                task,
                result,
                expires: now + FINISHED_TTL,
            },
        );
    }

    /// The client's answer to a call that may have started a task on `node`: the
    /// backend's task under a gateway id, in the client's shape; `None` when `raw`
    /// is no task (relayed as it is).
    pub fn wrap_created(
        &self,
        asked: Asked,
        raw: &str,
        backend_modern: bool,
        node: &str,
        owner: &str,
    ) -> Option<Bytes> {
        if !raw.contains("\"taskId\"") && asked == Asked::Modern {
            return None;
        }
        let v: Value = serde_json::from_str(raw).ok()?;
        let created = if backend_modern {
            (v.get("resultType").and_then(Value::as_str) == Some("task"))
                .then(|| v.as_object().cloned())
                .flatten()
        } else {
            v.get("task")
                .and_then(Value::as_object)
                .map(tasks::to_modern_task)
        };
        let Some(mut task) = created else {
            if asked == Asked::Legacy && backend_modern {
                // A 2026-07-28 backend answered at once: the 2025-11-25 caller still
                // gets the task it asked for, finished, held here.
                return Some(self.finish_here(&v, node, owner));
            }
            return None;
        };
        let backend_id = task.get("taskId").and_then(Value::as_str)?.to_owned();
        let id = self.seal(&Handle {
            node: node.to_owned(),
            backend_id,
            modern: backend_modern,
            owner: owner.to_owned(),
        });
        self.remember(owner, &id);
        task.insert("taskId".into(), id.into());
        let out = match asked {
            Asked::Legacy => json!({ "task": tasks::to_legacy_task(&task) }),
            Asked::Modern => {
                task.shift_remove("result");
                task.shift_remove("error");
                task.insert("resultType".into(), "task".into());
                Value::Object(task)
            }
        };
        Some(Bytes::from(serde_json::to_vec(&out).unwrap_or_default()))
    }

    fn finish_here(&self, result: &Value, node: &str, owner: &str) -> Bytes {
        let id = self.seal(&Handle {
            node: node.to_owned(),
            backend_id: String::new(),
            modern: true,
            owner: owner.to_owned(),
        });
        let now = jiff::Timestamp::now().to_string();
        let mut task = Map::new();
        task.insert("taskId".into(), id.clone().into());
        task.insert("status".into(), "completed".into());
        task.insert("createdAt".into(), now.clone().into());
        task.insert("lastUpdatedAt".into(), now.into());
        task.insert("ttl".into(), (FINISHED_TTL.as_millis() as u64).into());
        let mut result = result.clone();
        mcp_protocol::mcp::strip_result_type(&mut result);
        set_related_task(&mut result, &id);
        self.keep_finished(
            &id,
            task.clone(),
            Bytes::from(serde_json::to_vec(&result).unwrap_or_default()),
        );
        self.remember(owner, &id);
        Bytes::from(serde_json::to_vec(&json!({ "task": task })).unwrap_or_default())
    }
}

/// Task watches (2026-07-28 listen streams following a task) at once.
pub const MAX_WATCHES: usize = 256;

/// 2026-07-28 `subscriptions/listen` with `taskIds`: each of the caller's tasks on a
/// 2026-07-28 backend is followed on a listen stream of its own to the owning node,
/// whose `notifications/tasks` are relayed on `sink` with the gateway's id, until the
/// task ends or the client's stream closes.
pub fn listen(
    gw: &Gateway,
    ids: &[String],
    sink: &ListenSink,
    extensions: &http::Extensions,
) -> Vec<String> {
    let Some(store) = gw.tasks() else {
        return Vec::new();
    };
    let owner = owner_of(extensions);
    let mut honoured = Vec::new();
    for id in ids {
        match start_follow(gw, store, id, &owner, || StatusSink::Listen(sink.clone())) {
            Follow::Started => honoured.push(id.clone()),
            Follow::NotFollowable => {}
            Follow::Full => break,
        }
    }
    honoured
}

/// Whether a task could be followed.
enum Follow {
    Started,
    /// Not the caller's, not on a 2026-07-28 backend, or its node is not ready.
    NotFollowable,
    /// [`MAX_WATCHES`] tasks are followed already.
    Full,
}

/// Follows the caller's task `id` on its 2026-07-28 node, its status going to the
/// sink `sink` makes, with a listen stream of its own.
fn start_follow(
    gw: &Gateway,
    store: &Tasks,
    id: &str,
    owner: &str,
    sink: impl FnOnce() -> StatusSink,
) -> Follow {
    let Ok(handle) = store.open(id, owner) else {
        return Follow::NotFollowable;
    };
    if !handle.modern || handle.backend_id.is_empty() {
        return Follow::NotFollowable;
    }
    let Ok(ip) = crate::prompts::node_ip(gw, Some(&handle.node)) else {
        return Follow::NotFollowable;
    };
    let Some(slot) = WatchSlot::take(&store.watches) else {
        return Follow::Full;
    };
    let client = gw.upstreams().probe(ip);
    let (sink, id) = (sink(), id.to_owned());
    tokio::spawn(async move {
        let _slot = slot;
        follow(client, handle, id, sink).await;
    });
    Follow::Started
}

/// One of the [`MAX_WATCHES`] task watches, given back when dropped.
struct WatchSlot(Arc<std::sync::atomic::AtomicUsize>);

impl WatchSlot {
    fn take(count: &Arc<std::sync::atomic::AtomicUsize>) -> Option<WatchSlot> {
        use std::sync::atomic::Ordering;
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WATCHES).then_some(n + 1)
            })
            .ok()
            .map(|_| WatchSlot(count.clone()))
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Where a followed task's status goes.
enum StatusSink {
    /// A 2026-07-28 listen stream: `notifications/tasks`, as the backend sent it.
    Listen(ListenSink),
    /// A 2025-11-25 session's GET stream: `notifications/tasks/status`, reshaped.
    Session(SessionPush),
}

impl StatusSink {
    fn is_closed(&self) -> bool {
        match self {
            StatusSink::Listen(l) => l.is_closed(),
            StatusSink::Session(s) => s.is_closed(),
        }
    }

    fn send(&self, task: Value) {
        match self {
            StatusSink::Listen(l) => {
                l.notify(tasks::NOTIFICATION, task);
            }
            StatusSink::Session(s) => {
                let legacy = task
                    .as_object()
                    .map(tasks::to_legacy_task)
                    .map(Value::Object)
                    .unwrap_or_default();
                s.send(Bytes::from(mcp_protocol::jsonrpc::notification_bytes(
                    tasks::STATUS_NOTIFICATION,
                    Some(&legacy),
                )));
            }
        }
    }
}

/// A 2025-11-25 caller's task on a 2026-07-28 backend: its end is announced on the
/// caller's session with `notifications/tasks/status` (followed like [`listen`]).
pub fn follow_for_session(gw: &Gateway, created: &[u8], owner: &str, session: SessionPush) {
    let Some(store) = gw.tasks() else { return };
    let Some(id) = serde_json::from_slice::<Value>(created)
        .ok()
        .and_then(|v| v["task"]["taskId"].as_str().map(str::to_owned))
    else {
        return;
    };
    start_follow(gw, store, &id, owner, || StatusSink::Session(session));
}

/// A 2025-11-25 caller's task on a 2025-11-25 backend: the backend announces its
/// status on the gateway's session with it, whose GET stream is read (one reader per
/// pod, while such tasks are open) and each status passed to the caller's session.
pub fn follow_on_call_session(
    gw: &Gateway,
    created: &[u8],
    owner: &str,
    session: SessionPush,
    ip: std::net::IpAddr,
) {
    let Some(store) = gw.tasks.clone() else {
        return;
    };
    let Some(id) = serde_json::from_slice::<Value>(created)
        .ok()
        .and_then(|v| v["task"]["taskId"].as_str().map(str::to_owned))
    else {
        return;
    };
    let Ok(handle) = store.open(&id, owner) else {
        return;
    };
    {
        let mut followers = store
            .session_followers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        followers.retain(|_, f| f.live());
        if followers.len() >= MAX_SESSION_FOLLOWERS {
            return;
        }
        followers.insert(
            (ip, handle.backend_id),
            SessionFollower {
                id,
                session,
                until: Instant::now() + TASK_FOLLOW_FOR,
            },
        );
    }
    let start = {
        let mut readers = store.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.len() < MAX_READERS && readers.insert(ip)
    };
    if start {
        let client = gw.upstreams().client(ip);
        tokio::spawn(read_statuses(store, client, ip));
    }
}

/// Reads a pod's call session GET stream for task statuses while any is followed.
async fn read_statuses(
    store: Arc<Tasks>,
    client: Arc<mcp_protocol::client::McpClient>,
    ip: std::net::IpAddr,
) {
    const READ_FOR: Duration = Duration::from_secs(30);
    loop {
        let followed = {
            let mut followers = store
                .session_followers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            followers.retain(|_, f| f.live());
            followers.keys().any(|(pod, _)| *pod == ip)
        };
        if !followed {
            store
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ip);
            return;
        }
        let mut on_note = |note: Bytes| {
            let Ok(mcp_protocol::jsonrpc::Message::Notification(n)) =
                mcp_protocol::jsonrpc::Message::from_slice(&note)
            else {
                return;
            };
            if n.method != tasks::STATUS_NOTIFICATION {
                return;
            }
            let Some(mut params) = n.params.map(Value::Object) else {
                return;
            };
            let Some(backend_id) = params["taskId"].as_str().map(str::to_owned) else {
                return;
            };
            let mut followers = store
                .session_followers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let key = (ip, backend_id);
            let Some(f) = followers.get(&key) else {
                return;
            };
            swap_ids(&mut params, &key.1, &f.id);
            f.session
                .send(Bytes::from(mcp_protocol::jsonrpc::notification_bytes(
                    tasks::STATUS_NOTIFICATION,
                    Some(&params),
                )));
            if params["status"].as_str().is_some_and(tasks::is_terminal) {
                followers.remove(&key);
            }
        };
        if let Err(e) = client
            .listen_notifications(READ_FOR, json!({}), &mut on_note)
            .await
        {
            tracing::debug!(%ip, error = %e, "could not read the call session's stream");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Relays one task's status from its node until it ends.
async fn follow(
    client: mcp_protocol::client::McpClient,
    handle: Handle,
    id: String,
    sink: StatusSink,
) {
    let ended = std::sync::atomic::AtomicBool::new(false);
    let mut on_note = |note: Bytes| {
        let Ok(mcp_protocol::jsonrpc::Message::Notification(n)) =
            mcp_protocol::jsonrpc::Message::from_slice(&note)
        else {
            return;
        };
        if n.method != tasks::NOTIFICATION {
            return;
        }
        let Some(mut params) = n.params.map(Value::Object) else {
            return;
        };
        if let Value::Object(m) = &mut params {
            m.shift_remove("_meta");
        }
        swap_ids(&mut params, &handle.backend_id, &id);
        if params
            .get("status")
            .and_then(Value::as_str)
            .is_some_and(tasks::is_terminal)
        {
            ended.store(true, std::sync::atomic::Ordering::Release);
        }
        sink.send(params);
    };
    let filter = json!({ "taskIds": [handle.backend_id.clone()] });
    let listening = client.listen_notifications(TASK_FOLLOW_FOR, filter, &mut on_note);
    // Ends once the task has ended or nobody listens.
    let closed = async {
        while !sink.is_closed() && !ended.load(std::sync::atomic::Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        end = listening => {
            if let Err(e) = end {
                tracing::debug!(node = %handle.node, error = %e, "could not follow a task");
            }
        }
        _ = closed => {}
    }
    client.close().await;
}

/// Longest a task is followed for one listen stream.
const TASK_FOLLOW_FOR: Duration = Duration::from_secs(3600);

/// Answers a task method: routed to the node that owns the task, or answered from
/// what the gateway holds.
pub async fn handle(gw: &Gateway, request: ClientRequest) -> Result<Bytes, ErrorObject> {
    let Some(store) = gw.tasks() else {
        return Err(ErrorObject::method_not_found(&request.method));
    };
    let era = request.outbound.version().era();
    let owner = owner_of(&request.extensions);
    let modern_only = matches!(request.method.as_str(), tasks::UPDATE);
    let legacy_only = matches!(request.method.as_str(), tasks::RESULT | tasks::LIST);
    if (era == Era::Legacy && modern_only) || (era == Era::Modern && legacy_only) {
        return Err(ErrorObject::method_not_found(&request.method));
    }
    if request.method == tasks::LIST {
        return list(gw, store, &owner, &request).await;
    }
    let id = tasks::task_id(&request.params)
        .ok_or_else(|| ErrorObject::invalid_params("params.taskId (a string) is required"))?
        .to_owned();
    let handle = store.open(&id, &owner)?;
    if handle.backend_id.is_empty() {
        return held(store, &id, &request.method);
    }
    let answer = routed(gw, &handle, &id, &request).await?;
    Ok(Bytes::from(serde_json::to_vec(&answer).unwrap_or_default()))
}

/// A task the gateway finished itself (2025-11-25 shapes only).
fn held(store: &Tasks, id: &str, method_name: &str) -> Result<Bytes, ErrorObject> {
    let guard = store.finished.lock().unwrap_or_else(|e| e.into_inner());
    let Some(f) = guard.by_id.get(id).filter(|f| f.expires > Instant::now()) else {
        return Err(ErrorObject::invalid_params(
            "This task's result is no longer held: it was kept by another gateway replica, or for longer than its TTL.",
        ));
    };
    Ok(match method_name {
        tasks::RESULT => f.result.clone(),
        _ => Bytes::from(serde_json::to_vec(&f.task).unwrap_or_default()),
    })
}

/// One task request sent to the owning node, with the ids swapped both ways.
async fn routed(
    gw: &Gateway,
    handle: &Handle,
    id: &str,
    request: &ClientRequest,
) -> Result<Value, ErrorObject> {
    let ip = crate::prompts::node_ip(gw, Some(&handle.node)).map_err(|e| {
        ErrorObject::invalid_params(format!(
            "The task's node \"{}\" cannot be reached now: {}",
            handle.node, e.message
        ))
    })?;
    let era = request.outbound.version().era();
    let mut params = Map::new();
    params.insert("taskId".into(), handle.backend_id.clone().into());
    if let Some(r) = request.params.get("inputResponses") {
        params.insert("inputResponses".into(), r.clone());
    }
    let swap = |mut v: Value| {
        swap_ids(&mut v, &handle.backend_id, id);
        v
    };
    match (era, handle.modern, request.method.as_str()) {
        // 2025-11-25 caller, 2026-07-28 backend: reshaped.
        (Era::Legacy, true, tasks::GET) => {
            let task = ask(gw, ip, tasks::GET, params, request).await?;
            Ok(swap(Value::Object(legacy_view(&task))))
        }
        (Era::Legacy, true, tasks::CANCEL) => {
            ask(gw, ip, tasks::CANCEL, params.clone(), request).await?;
            let task = ask(gw, ip, tasks::GET, params, request).await?;
            Ok(swap(Value::Object(legacy_view(&task))))
        }
        (Era::Legacy, true, tasks::RESULT) => {
            let result = wait_result(gw, ip, params, request).await?;
            let mut result = swap(result);
            mcp_protocol::mcp::strip_result_type(&mut result);
            set_related_task(&mut result, id);
            Ok(result)
        }
        // 2026-07-28 caller, 2025-11-25 backend: reshaped, the result fetched once
        // the task has ended.
        (Era::Modern, false, tasks::GET) => {
            let task = ask(gw, ip, tasks::GET, params.clone(), request).await?;
            let mut out = tasks::to_modern_task(&task);
            out.insert("resultType".into(), "complete".into());
            match task.get("status").and_then(Value::as_str) {
                Some("completed") => {
                    let mut result =
                        Value::Object(ask(gw, ip, tasks::RESULT, params, request).await?);
                    mcp_protocol::mcp::ensure_result_type(&mut result);
                    out.insert("result".into(), result);
                }
                Some("failed") => {
                    let error = match ask(gw, ip, tasks::RESULT, params, request).await {
                        Err(e) => serde_json::to_value(e).unwrap_or_default(),
                        Ok(_) => json!({"code": -32603, "message": "the task failed"}),
                    };
                    out.insert("error".into(), error);
                }
                _ => {}
            }
            Ok(swap(Value::Object(out)))
        }
        (Era::Modern, false, tasks::CANCEL) => {
            ask(gw, ip, tasks::CANCEL, params, request).await?;
            Ok(json!({"resultType": "complete"}))
        }
        (Era::Modern, false, _) => {
            // tasks/update: a 2025-11-25 task asks its questions on its own stream,
            // so there is nothing outstanding to answer here.
            ask(gw, ip, tasks::GET, params, request).await?;
            Ok(json!({"resultType": "complete"}))
        }
        // Same shape: relayed.
        (_, _, method_name) => {
            let answer = ask(gw, ip, method_name, params, request).await?;
            Ok(swap(Value::Object(answer)))
        }
    }
}

fn legacy_view(task: &Map<String, Value>) -> Map<String, Value> {
    tasks::to_legacy_task(task)
}

/// 2025-11-25 `tasks/result` over a 2026-07-28 backend: polls its `tasks/get` at
/// the interval it suggests (within bounds) until the task ends or the call's
/// deadline passes.
async fn wait_result(
    gw: &Gateway,
    ip: std::net::IpAddr,
    params: Map<String, Value>,
    request: &ClientRequest,
) -> Result<Value, ErrorObject> {
    let deadline = Instant::now() + gw.call_timeout();
    loop {
        let task = ask(gw, ip, tasks::GET, params.clone(), request).await?;
        match task.get("status").and_then(Value::as_str).unwrap_or("") {
            "completed" => {
                return Ok(task.get("result").cloned().unwrap_or_else(|| json!({})));
            }
            "failed" => {
                let error = task
                    .get("error")
                    .cloned()
                    .and_then(|e| serde_json::from_value(e).ok())
                    .unwrap_or_else(|| ErrorObject::internal("the task failed"));
                return Err(error);
            }
            "cancelled" => {
                return Err(ErrorObject::new(-32000, "The task was cancelled."));
            }
            _ => {}
        }
        let wait = task
            .get("pollIntervalMs")
            .and_then(Value::as_u64)
            .map_or(POLL_MIN * 5, Duration::from_millis)
            .clamp(POLL_MIN, POLL_MAX);
        if Instant::now() + wait > deadline {
            return Err(ErrorObject::internal(format!(
                "The task is still working after {} s; ask for its result again.",
                gw.call_timeout().as_secs()
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = request.cancel.cancelled() => {
                return Err(ErrorObject::new(jsonrpc::REQUEST_CANCELLED, "request cancelled"));
            }
        }
    }
}

/// Sends one task method to the pod at `ip` and returns its result object.
async fn ask(
    gw: &Gateway,
    ip: std::net::IpAddr,
    method_name: &str,
    mut params: Map<String, Value>,
    request: &ClientRequest,
) -> Result<Map<String, Value>, ErrorObject> {
    crate::upstream::prepare(&mut params, &request.outbound);
    declare_extension(&mut params);
    let client = gw.upstreams().client(ip);
    // The backend's notifications name its own task id: not relayed.
    let mut drop_note = |_: Bytes| {};
    let target = (ip, method_name);
    let raw =
        crate::prompts::ask_once(gw, &client, target, params, request, &mut drop_note).await?;
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ErrorObject::internal(format!(
            "The MCP server at pod IP {ip} answered {method_name} with something other than an object."
        ))),
    }
}

/// Ties a result to its task (`_meta` related-task), when the result is an object
/// whose `_meta` (if any) is one; a backend's odd result is left as it is.
fn set_related_task(result: &mut Value, id: &str) {
    let Value::Object(m) = result else { return };
    let meta = m
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert(tasks::RELATED_TASK.into(), json!({ "taskId": id }));
    }
}

/// Replaces the backend's task id by the gateway's wherever an answer names it
/// (`taskId` fields, `_meta` related-task), so the client only sees its own id.
fn swap_ids(v: &mut Value, backend_id: &str, id: &str) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if k == "taskId" && val.as_str() == Some(backend_id) {
                    *val = id.into();
                } else {
                    swap_ids(val, backend_id, id);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| swap_ids(x, backend_id, id)),
        _ => {}
    }
}

/// 2025-11-25 `tasks/list`: the caller's tasks started through this replica, as
/// their nodes report them now (tasks gone from their node are left out).
async fn list(
    gw: &Gateway,
    store: &Tasks,
    owner: &str,
    request: &ClientRequest,
) -> Result<Bytes, ErrorObject> {
    let ids: Vec<String> = {
        let guard = store.started.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .by_owner
            .get(owner)
            .map(|ids| ids.iter().rev().cloned().collect())
            .unwrap_or_default()
    };
    let lookups = ids.iter().map(|id| async move {
        let handle = store.open(id, owner).ok()?;
        if handle.backend_id.is_empty() {
            let raw = held(store, id, tasks::GET).ok()?;
            return serde_json::from_slice::<Value>(&raw).ok();
        }
        let probe = ClientRequest {
            id: request.id.clone(),
            method: tasks::GET.into(),
            params: Map::new(),
            outbound: request.outbound.clone(),
            cancel: request.cancel.clone(),
            extensions: http::Extensions::new(),
        };
        routed(gw, &handle, id, &probe).await.ok()
    });
    let found: Vec<Value> = futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect();
    Ok(Bytes::from(
        serde_json::to_vec(&json!({ "tasks": found })).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sealed_bound_to_their_caller_and_swapped_in_answers() {
        let store = Tasks::new(Sealer::random());
        let raw = r#"{"resultType":"task","taskId":"b1","status":"working","createdAt":"a","lastUpdatedAt":"a","ttlMs":1000}"#;
        let out = store
            .wrap_created(Asked::Modern, raw, true, "node-a", "Anonymous:x")
            .expect("a task");
        let v: Value = serde_json::from_slice(&out).unwrap();
        let id = v["taskId"].as_str().unwrap();
        assert_ne!(id, "b1");
        let handle = store.open(id, "Anonymous:x").unwrap();
        assert_eq!(
            (handle.node.as_str(), handle.backend_id.as_str()),
            ("node-a", "b1")
        );
        assert!(store.open(id, "Anonymous:y").is_err(), "another caller");
        assert!(store.open("forged", "Anonymous:x").is_err());
        let mut answer = json!({"taskId": "b1", "_meta": {tasks::RELATED_TASK: {"taskId": "b1"}}});
        swap_ids(&mut answer, "b1", id);
        assert_eq!(answer["taskId"], id);
        assert_eq!(answer["_meta"][tasks::RELATED_TASK]["taskId"], id);
    }

    #[test]
    fn a_legacy_caller_gets_its_shape_and_plain_results_are_not_tasks() {
        let store = Tasks::new(Sealer::random());
        let legacy = r#"{"task":{"taskId":"b2","status":"working","createdAt":"a","lastUpdatedAt":"a","ttl":null}}"#;
        let out = store
            .wrap_created(Asked::Legacy, legacy, false, "n", "o")
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v["task"]["taskId"].as_str().unwrap() != "b2");
        assert!(v["task"].get("ttl").is_some());
        let plain = r#"{"resultType":"complete","content":[]}"#;
        assert!(
            store
                .wrap_created(Asked::Modern, plain, true, "n", "o")
                .is_none()
        );
        // A 2025-11-25 caller asked for a task and the backend answered at once.
        let held = store
            .wrap_created(Asked::Legacy, plain, true, "n", "o")
            .unwrap();
        let v: Value = serde_json::from_slice(&held).unwrap();
        assert_eq!(v["task"]["status"], "completed");
        let id = v["task"]["taskId"].as_str().unwrap();
        let result: Value =
            serde_json::from_slice(&super::held(&store, id, tasks::RESULT).unwrap()).unwrap();
        assert!(result.get("resultType").is_none());
        assert_eq!(result["_meta"][tasks::RELATED_TASK]["taskId"], id);
    }

    #[test]
    fn remembered_tasks_and_held_results_are_bounded() {
        let store = Tasks::new(Sealer::random());
        for i in 0..LIST_MAX + 5 {
            store.remember("o", &format!("t{i}"));
        }
        assert_eq!(store.started.lock().unwrap().by_owner["o"].len(), LIST_MAX);
        let big = Bytes::from(vec![b' '; FINISHED_MAX_BYTES / 2 + 1]);
        store.keep_finished("a", Map::new(), big.clone());
        store.keep_finished("b", Map::new(), big);
        let guard = store.finished.lock().unwrap();
        assert!(guard.bytes <= FINISHED_MAX_BYTES);
        assert!(!guard.by_id.contains_key("a") && guard.by_id.contains_key("b"));
    }
}

#[cfg(test)]
mod odd_results {
    use super::*;

    #[test]
    fn odd_backend_results_are_left_alone() {
        for mut v in [json!(5), json!([1]), json!({"_meta": 1}), json!("x")] {
            let before = v.clone();
            set_related_task(&mut v, "t");
            assert_eq!(v, before);
        }
        let mut v = json!({"content": []});
        set_related_task(&mut v, "t");
        assert_eq!(v["_meta"][tasks::RELATED_TASK]["taskId"], "t");
        let store = Tasks::new(Sealer::random());
        // A 2026-07-28 backend answering a 2025-11-25 task request with a non-object.
        assert!(
            store
                .wrap_created(Asked::Legacy, "5", true, "n", "o")
                .is_some()
        );
    }
}
