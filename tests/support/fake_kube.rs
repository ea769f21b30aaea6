//! A fake Kubernetes API server for integration tests: EndpointSlices only, real wire format.
//!
//! The gateway discovers its backends by watching the EndpointSlices of a Service. Tests need
//! to drive that discovery — add, remove or unready a node, break the watch, revoke access —
//! while the real gateway code (kube-rs client, kube-runtime watcher) talks to a real socket.
//! So this is a small HTTP/1.1 server on hyper that speaks what kube-rs sends and expects:
//!
//! - `GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices` lists (`labelSelector`,
//!   `limit` / `continue` paging with consistent snapshots, list `metadata.resourceVersion`);
//! - the same path with `watch=true` streams newline-delimited `WatchEvent`s (`ADDED`,
//!   `MODIFIED`, `DELETED`, `BOOKMARK` when `allowWatchBookmarks=true`, `ERROR`) over a chunked
//!   response held open until `timeoutSeconds`; resuming from `resourceVersion=N` replays what
//!   happened after N; `sendInitialEvents=true` streaming lists are supported too;
//! - 410 Gone as a real API server does it: an `ERROR` event carrying a `Status` with code 410
//!   reason `Expired` on a watch from a compacted resourceVersion (or, with [`GoneStyle::Http`],
//!   an HTTP 410), and HTTP 410 for an expired `continue` token;
//! - bearer-token auth: a wrong or missing token gets a 401 `Status`; [`AuthMode::Forbidden`]
//!   answers 403 with the RBAC message a real server gives;
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews` (TokenReview, what the gateway's
//!   Kubernetes auth mode calls): tokens registered with [`FakeKube::add_token`] are
//!   `authenticated: true` with their `user` (username, uid, groups) and the `audiences`
//!   they share with `spec.audiences` (the API server's own audience when none is asked);
//!   any other token, or one for other audiences, gets `authenticated` unset and the
//!   `error` text a real API server gives. [`FakeKube::set_token_review`] makes reviews
//!   fail (500, or 403 as when the caller lacks `system:auth-delegator`);
//!   [`FakeKube::set_down`] makes them unreachable like everything else.
//!
//! Every node set through the handle is one endpoint (with `nodeName`, `conditions`, a Pod
//! `targetRef`) in an EndpointSlice labelled `kubernetes.io/service-name`; with
//! [`FakeKubeOptions::slice_count`] > 1 nodes are spread over several slices (round robin, and
//! a node stays in its slice, as the EndpointSlice controller keeps it). A slice that becomes
//! empty is deleted. One unrelated slice of another Service (`other-service`, node
//! `foreign-node`) is always present, so a client that ignores the label selector is caught.
//!
//! ```ignore
//! #[path = "support/fake_kube.rs"]
//! mod fake_kube;
//! let kube = fake_kube::FakeKube::start().await;
//! kube.set_node("node-a", [127, 0, 0, 2], true);
//! // run the gateway with KUBECONFIG=kube.kubeconfig_path(), or:
//! let client = kube.client().await?;
//! kube.set_node("node-a", [127, 0, 0, 2], false); // unready while running
//! kube.expire_watches();                          // 410 Gone
//! assert!(kube.requests().iter().all(|r| matches!(r.verb(), "list" | "watch")));
//! ```
//!
//! The server runs on the test's tokio runtime and stops when the [`FakeKube`] is dropped
//! (the kubeconfig's temporary directory is removed then too).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// The API group path of EndpointSlices.
const GROUP_PATH: &str = "/apis/discovery.k8s.io/v1";
/// Where TokenReviews are created (cluster-scoped).
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
/// The API server's own audience: what a TokenReview without `spec.audiences` checks.
pub const API_SERVER_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// A token the fake's TokenReview accepts, and whom it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// `status.user.username`, e.g. `system:serviceaccount:ns:name`.
    pub username: String,
    /// `status.user.uid`.
    pub uid: String,
    /// `status.user.groups`.
    pub groups: Vec<String>,
    /// The audiences the token was minted for (`kubectl create token --audience`).
    pub audiences: Vec<String>,
}

impl TokenUser {
    /// The user of a ServiceAccount token minted for `audiences`, with the groups a real
    /// API server gives (`system:serviceaccounts`, `system:serviceaccounts:<ns>`,
    /// `system:authenticated`).
    pub fn service_account(namespace: &str, name: &str, audiences: &[&str]) -> Self {
        TokenUser {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: format!("sa-uid-{namespace}-{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// How TokenReviews are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenReviewMode {
    /// Review the token (registered tokens are authenticated).
    Normal,
    /// Answer every review with 500 InternalError (an authenticator webhook down, etcd
    /// trouble...).
    Error,
    /// Answer 403: the requester may not create tokenreviews (no `system:auth-delegator`).
    Forbidden,
}

/// The label the EndpointSlice controller puts on every slice of a Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Service of the always-present unrelated slice (must never show up in the gateway's map).
pub const FOREIGN_SERVICE: &str = "other-service";
/// Node of the always-present unrelated slice.
pub const FOREIGN_NODE: &str = "foreign-node";

/// How the fake answers credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The configured bearer token is accepted; anything else gets 401.
    Ok,
    /// Every request gets 401 Unauthorized (revoked or expired token).
    Unauthorized,
    /// Every request gets 403 Forbidden (RBAC missing).
    Forbidden,
    /// Lists are allowed, watches get 403 (a Role granting `list` but not `watch`).
    ForbiddenWatch,
}

/// How a watch from an expired resourceVersion is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneStyle {
    /// HTTP 200 with one `ERROR` event (Status code 410, reason Expired): what the API server's
    /// watch cache does.
    Event,
    /// HTTP 410 with a Status body: what some proxies / older servers do.
    Http,
}

/// One request the fake received (also those it refused with 401/403/410).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path without query, e.g. `/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices`.
    pub path: String,
    /// Raw query string (without `?`), percent-encoded as sent.
    pub query: String,
    /// HTTP status the fake answered.
    pub status: u16,
}

impl RecordedRequest {
    /// Decoded value of query parameter `key`, if present.
    pub fn param(&self, key: &str) -> Option<String> {
        parse_query(&self.query).remove(key)
    }

    /// The Kubernetes RBAC verb this request needs: `watch`, `list`, `get`, `create` (POST),
    /// or the lowercase HTTP method for anything else — so a test can compare it with the
    /// Role's verbs.
    pub fn verb(&self) -> String {
        let is_collection = self.path.ends_with("/endpointslices");
        match self.method.as_str() {
            "GET" if self.param("watch").is_some_and(|w| w == "true" || w == "1") => "watch".into(),
            "GET" if is_collection => "list".into(),
            "GET" => "get".into(),
            "POST" => "create".into(),
            other => other.to_ascii_lowercase(),
        }
    }

    /// The resource addressed (`endpointslices` or `tokenreviews`).
    pub fn resource(&self) -> Option<&str> {
        if self.path == TOKEN_REVIEW_PATH {
            return Some("tokenreviews");
        }
        let rest = self.path.strip_prefix(GROUP_PATH)?;
        let mut parts = rest.trim_start_matches('/').split('/');
        match parts.next()? {
            "namespaces" => {
                parts.next()?;
                parts.next()
            }
            other => Some(other),
        }
    }
}

/// Settings of the fake, fixed at start.
#[derive(Debug, Clone)]
pub struct FakeKubeOptions {
    /// Namespace of the Service (the default `mcp-server`).
    pub namespace: String,
    /// Service whose slices `set_node` maintains (the default `backend-mcp-service`).
    pub service: String,
    /// Bearer token the kubeconfig carries and the server accepts.
    pub token: String,
    /// Number of EndpointSlices (per address family) nodes are spread over; at least 1.
    pub slice_count: usize,
    /// Port listed in the slices' `ports` (name `mcp`, TCP).
    pub port: u16,
    /// How often an open watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for FakeKubeOptions {
    fn default() -> Self {
        Self {
            namespace: "mcp-server".into(),
            service: "backend-mcp-service".into(),
            token: "fake-token-0123456789".into(),
            slice_count: 1,
            port: 9028,
            bookmark_interval: Duration::from_secs(2),
        }
    }
}

/// Handle to a running fake API server; dropping it stops the server.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    dir: PathBuf,
    kubeconfig: PathBuf,
    accept_task: tokio::task::JoinHandle<()>,
}

/// What a watch connection is told.
#[derive(Clone)]
enum Msg {
    /// A change to stream if it matches the watch's selector.
    Event(Arc<StoredEvent>),
    /// Abort the connection (as if the network dropped it).
    Drop,
    /// Send an ERROR 410 event and end the watch.
    Expire,
}

/// One entry of the event history (what a watch resuming from an older version replays).
struct StoredEvent {
    rv: u64,
    kind: &'static str,
    object: Value,
}

struct Shared {
    options: FakeKubeOptions,
    state: Mutex<State>,
    events: broadcast::Sender<Msg>,
    open_watches: AtomicUsize,
}

/// A node set through [`FakeKube::set_node`].
struct NodeSpec {
    ip: IpAddr,
    ready: bool,
    slot: usize,
    /// `zone` of the endpoint (the node's topology.kubernetes.io/zone), if set.
    zone: Option<String>,
}

struct State {
    /// The etcd revision: bumped by every change.
    rv: u64,
    /// Current slices by name (all namespaces share one map; names carry no namespace).
    slices: BTreeMap<String, Value>,
    history: Vec<Arc<StoredEvent>>,
    /// Watches from a resourceVersion below this (and continue tokens of older lists) get 410.
    expired_below: u64,
    nodes: BTreeMap<String, NodeSpec>,
    next_slot: usize,
    next_uid: u64,
    auth: AuthMode,
    down: bool,
    unavailable: bool,
    gone_style: GoneStyle,
    requests: Vec<RecordedRequest>,
    /// Tokens TokenReview accepts.
    tokens: HashMap<String, TokenUser>,
    token_review: TokenReviewMode,
    /// Paged lists in progress: id -> (resourceVersion, all items).
    snapshots: HashMap<u64, (u64, Vec<Value>)>,
    next_snapshot: u64,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock can only come from a test assertion; keep serving.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeKube {
    /// Start with [`FakeKubeOptions::default`] on 127.0.0.1, an OS-chosen port.
    pub async fn start() -> Self {
        Self::start_with(FakeKubeOptions::default()).await
    }

    /// Start with explicit options. Panics only if the loopback socket or the temporary
    /// kubeconfig cannot be created (a broken test machine).
    pub async fn start_with(mut options: FakeKubeOptions) -> Self {
        options.slice_count = options.slice_count.max(1);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(State {
                rv: 100,
                slices: BTreeMap::new(),
                history: Vec::new(),
                expired_below: 0,
                nodes: BTreeMap::new(),
                next_slot: 0,
                next_uid: 1,
                auth: AuthMode::Ok,
                down: false,
                unavailable: false,
                gone_style: GoneStyle::Event,
                requests: Vec::new(),
                tokens: HashMap::new(),
                token_review: TokenReviewMode::Normal,
                snapshots: HashMap::new(),
                next_snapshot: 1,
            }),
            events,
            open_watches: AtomicUsize::new(0),
        });
        {
            let mut st = lock(&shared);
            let foreign = managed_slice_object(
                &shared.options,
                FOREIGN_SERVICE,
                "IPv4",
                &[(
                    FOREIGN_NODE.to_string(),
                    "10.99.0.1".parse().expect("literal"),
                    true,
                )],
            );
            st.upsert(&shared, &format!("{FOREIGN_SERVICE}-ipv4-0"), foreign);
        }
        let dir = unique_temp_dir();
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(addr, &shared.options))
            .expect("write kubeconfig");
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            shared,
            addr,
            dir,
            kubeconfig,
            accept_task,
        }
    }

    /// Path of a kubeconfig (server, bearer token, namespace) for this fake; point
    /// `KUBECONFIG` at it to run the gateway exactly as on a laptop.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Base URL of the server, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The options the fake runs with (namespace, service, token, ...).
    pub fn options(&self) -> &FakeKubeOptions {
        &self.shared.options
    }

    /// The kube `Config` read from [`FakeKube::kubeconfig_path`], as `Config::infer` would
    /// produce with `KUBECONFIG` pointing there (without touching the process environment).
    pub async fn config(&self) -> Result<kube::Config, BoxError> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let options = kube::config::KubeConfigOptions::default();
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?)
    }

    /// A plain kube client for this fake (kube's defaults, including its 503 retries).
    pub async fn client(&self) -> Result<kube::Client, BoxError> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }

    /// Add or update `node`: one endpoint with `ip` and `ready` in the Service's slices.
    pub fn set_node(&self, node: &str, ip: impl Into<IpAddr>, ready: bool) {
        let ip = ip.into();
        let shared = &self.shared;
        let mut st = lock(shared);
        let (slot, old_ip, zone) = match st.nodes.get(node) {
            Some(spec) => (spec.slot, Some(spec.ip), spec.zone.clone()),
            None => {
                let slot = st.next_slot % shared.options.slice_count;
                st.next_slot += 1;
                (slot, None, None)
            }
        };
        st.nodes.insert(
            node.to_string(),
            NodeSpec {
                ip,
                ready,
                slot,
                zone,
            },
        );
        st.sync_slice(shared, family(ip), slot);
        if let Some(old) = old_ip.filter(|old| family(*old) != family(ip)) {
            st.sync_slice(shared, family(old), slot);
        }
    }

    /// Set the `zone` of `node`'s endpoint (as the EndpointSlice controller copies it
    /// from the Node's topology.kubernetes.io/zone label); kept across `set_node`.
    pub fn set_node_zone(&self, node: &str, zone: &str) {
        let shared = &self.shared;
        let mut st = lock(shared);
        let Some(spec) = st.nodes.get_mut(node) else {
            return;
        };
        spec.zone = Some(zone.to_string());
        let (ip, slot) = (spec.ip, spec.slot);
        st.sync_slice(shared, family(ip), slot);
    }

    /// Remove `node` from the Service's slices (its slice is deleted if it becomes empty).
    pub fn remove_node(&self, node: &str) {
        let shared = &self.shared;
        let mut st = lock(shared);
        if let Some(spec) = st.nodes.remove(node) {
            st.sync_slice(shared, family(spec.ip), spec.slot);
        }
    }

    /// Create or replace a slice verbatim (for shapes `set_node` does not make: several
    /// endpoints per node, missing `nodeName`, FQDN slices, ...). `slice` needs at least
    /// `addressType` and `endpoints`; name, namespace, uid and resourceVersion are filled in,
    /// and the Service label is added when `metadata.labels` is absent.
    pub fn put_slice(&self, name: &str, mut slice: Value) {
        let shared = &self.shared;
        if slice.pointer("/metadata/labels").is_none() {
            let labels = json!({ SERVICE_NAME_LABEL: shared.options.service });
            match slice.get_mut("metadata").and_then(Value::as_object_mut) {
                Some(meta) => {
                    meta.insert("labels".into(), labels);
                }
                None => slice["metadata"] = json!({ "labels": labels }),
            }
        }
        lock(shared).upsert(shared, name, slice);
    }

    /// Delete a slice by name (no-op if absent).
    pub fn delete_slice(&self, name: &str) {
        let shared = &self.shared;
        lock(shared).delete(shared, name);
    }

    /// Current slices (as a list would return them, but unfiltered).
    pub fn slices(&self) -> Vec<Value> {
        lock(&self.shared).slices.values().cloned().collect()
    }

    /// Current resourceVersion of the fake's store.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared).rv
    }

    /// Compact history: open watches get an `ERROR` 410 event and end, and any watch resuming
    /// from an older resourceVersion (or list continuing an older page) gets 410 — the client
    /// must re-list.
    pub fn expire_watches(&self) {
        self.compact();
        let _ = self.shared.events.send(Msg::Expire);
    }

    /// Compact history silently: open watches keep streaming, but a watch resuming from any
    /// resourceVersion issued so far (say after [`FakeKube::drop_watches`]) is refused with 410
    /// (styled by [`FakeKube::set_gone_style`]), as is a list continuing an older page.
    pub fn compact(&self) {
        let mut st = lock(&self.shared);
        st.rv += 1;
        st.expired_below = st.rv;
        let floor = st.expired_below;
        st.history.retain(|e| e.rv >= floor);
    }

    /// Abort every open watch connection mid-stream (as a network drop or an API server
    /// restart would); clients resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        let _ = self.shared.events.send(Msg::Drop);
    }

    /// How credentials are answered from now on (open watches are not affected, as on a real
    /// server; call [`FakeKube::drop_watches`] to force the client to ask again).
    pub fn set_auth(&self, mode: AuthMode) {
        lock(&self.shared).auth = mode;
    }

    /// Whether a watch from an expired resourceVersion gets an ERROR event or HTTP 410.
    pub fn set_gone_style(&self, style: GoneStyle) {
        lock(&self.shared).gone_style = style;
    }

    /// `true`: the API server is unreachable — open watches are aborted and every new
    /// connection or request is closed without an answer. `false`: back to normal.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared).down = down;
        if down {
            self.drop_watches();
        }
    }

    /// `true`: every request is answered 503 ServiceUnavailable (an overloaded API server or a
    /// proxy in front of it); open watches are aborted.
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.shared).unavailable = unavailable;
        if unavailable {
            self.drop_watches();
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Let TokenReview accept `token` as `user` (replaces an earlier registration).
    pub fn add_token(&self, token: &str, user: TokenUser) {
        lock(&self.shared).tokens.insert(token.to_string(), user);
    }

    /// Forget `token` (as if it was revoked: its ServiceAccount or Pod deleted).
    pub fn revoke_token(&self, token: &str) {
        lock(&self.shared).tokens.remove(token);
    }

    /// How TokenReviews are answered from now on.
    pub fn set_token_review(&self, mode: TokenReviewMode) {
        lock(&self.shared).token_review = mode;
    }

    /// Number of TokenReviews received so far (answered or refused).
    pub fn token_reviews(&self) -> usize {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.path == TOKEN_REVIEW_PATH)
            .count()
    }

    /// Number of watch requests received so far (answered or refused).
    pub fn watch_requests(&self) -> usize {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.verb() == "watch")
            .count()
    }

    /// Number of watch connections currently streaming.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.accept_task.abort();
        let _ = self.shared.events.send(Msg::Drop);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl State {
    /// Rebuild the managed slice for (`family`, `slot`) from the node specs.
    fn sync_slice(&mut self, shared: &Shared, family: &'static str, slot: usize) {
        let opts = &shared.options;
        let name = format!("{}-{}-{slot}", opts.service, family.to_ascii_lowercase());
        let endpoints: Vec<(String, IpAddr, bool)> = self
            .nodes
            .iter()
            .filter(|(_, s)| s.slot == slot && self::family(s.ip) == family)
            .map(|(n, s)| (n.clone(), s.ip, s.ready))
            .collect();
        if endpoints.is_empty() {
            self.delete(shared, &name);
            return;
        }
        let mut object = managed_slice_object(opts, &opts.service, family, &endpoints);
        if let Some(Value::Array(eps)) = object.get_mut("endpoints") {
            for ep in eps {
                let zone = ep["nodeName"]
                    .as_str()
                    .and_then(|n| self.nodes.get(n))
                    .and_then(|s| s.zone.clone());
                if let (Some(z), Value::Object(m)) = (zone, ep) {
                    m.insert("zone".into(), z.into());
                }
            }
        }
        let unchanged = self
            .slices
            .get(&name)
            .is_some_and(|cur| cur.get("endpoints") == object.get("endpoints"));
        if !unchanged {
            self.upsert(shared, &name, object);
        }
    }

    /// Store `object` under `name` with fresh bookkeeping metadata; emit ADDED / MODIFIED.
    fn upsert(&mut self, shared: &Shared, name: &str, mut object: Value) {
        self.rv += 1;
        let previous = self.slices.get(name);
        let uid = previous
            .and_then(|p| p.pointer("/metadata/uid").cloned())
            .unwrap_or_else(|| {
                self.next_uid += 1;
                json!(format!("00000000-0000-4000-8000-{:012}", self.next_uid))
            });
        let generation = previous
            .and_then(|p| p.pointer("/metadata/generation").and_then(Value::as_u64))
            .unwrap_or(0)
            + 1;
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        if !object.is_object() {
            object = json!({});
        }
        object["kind"] = json!("EndpointSlice");
        object["apiVersion"] = json!("discovery.k8s.io/v1");
        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        let meta = &mut object["metadata"];
        meta["name"] = json!(name);
        meta["namespace"] = json!(shared.options.namespace);
        meta["uid"] = uid;
        meta["resourceVersion"] = json!(self.rv.to_string());
        meta["generation"] = json!(generation);
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        }
        self.slices.insert(name.to_string(), object.clone());
        self.emit(shared, kind, object);
    }

    /// Remove `name`; emit DELETED (with the deletion's resourceVersion, as etcd does).
    fn delete(&mut self, shared: &Shared, name: &str) {
        if let Some(mut object) = self.slices.remove(name) {
            self.rv += 1;
            object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.emit(shared, "DELETED", object);
        }
    }

    fn emit(&mut self, shared: &Shared, kind: &'static str, object: Value) {
        let event = Arc::new(StoredEvent {
            rv: self.rv,
            kind,
            object,
        });
        self.history.push(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = shared.events.send(Msg::Event(event));
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// A slice as the EndpointSlice controller writes it for a DaemonSet-backed Service.
fn managed_slice_object(
    opts: &FakeKubeOptions,
    service: &str,
    address_type: &str,
    endpoints: &[(String, IpAddr, bool)],
) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(node, ip, ready)| {
            json!({
                "addresses": [ip.to_string()],
                "conditions": { "ready": ready, "serving": ready, "terminating": false },
                "targetRef": {
                    "kind": "Pod",
                    "namespace": opts.namespace,
                    "name": format!("node-mcp-server-{node}"),
                    "uid": format!("pod-uid-{node}"),
                },
                "nodeName": node,
            })
        })
        .collect();
    json!({
        "metadata": {
            "generateName": format!("{service}-"),
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                SERVICE_NAME_LABEL: service,
            },
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Service",
                "name": service,
                "uid": format!("svc-uid-{service}"),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{ "name": "mcp", "port": opts.port, "protocol": "TCP" }],
    })
}

fn kubeconfig_text(addr: SocketAddr, opts: &FakeKubeOptions) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {ns}\n\
         current-context: fake\nusers:\n- name: fake\n  user:\n    token: {token}\n",
        ns = opts.namespace,
        token = opts.token,
    )
}

fn unique_temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "fake-kube-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await; // e.g. out of file descriptors
            continue;
        };
        while connections.try_join_next().is_some() {}
        if lock(&shared).down {
            drop(stream); // as close to "connection refused" as a bound port gets
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let token_ok = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == shared.options.token);
    let params = parse_query(&query);
    let body = if method == Method::POST {
        match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Err(e.into()),
        }
    } else {
        Bytes::new()
    };
    let mut record = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        status: 0,
    };
    let (down, unavailable, auth) = {
        let st = lock(&shared);
        (st.down, st.unavailable, st.auth)
    };
    if down {
        return Err("fake API server is down".into());
    }
    let response = if unavailable {
        status_response(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            None,
        )
    } else if auth == AuthMode::Unauthorized || !token_ok {
        status_response(401, "Unauthorized", "Unauthorized", None)
    } else if auth == AuthMode::Forbidden
        || (auth == AuthMode::ForbiddenWatch && record.verb() == "watch")
    {
        let ns = namespace_of(&path).unwrap_or("");
        let user = format!(
            "system:serviceaccount:{}:k8s-aggregator-mcp",
            shared.options.namespace
        );
        let message = format!(
            "endpointslices.discovery.k8s.io is forbidden: User \"{user}\" cannot {} resource \"endpointslices\" in API group \"discovery.k8s.io\" in the namespace \"{ns}\"",
            record.verb()
        );
        status_response(
            403,
            "Forbidden",
            &message,
            Some(json!({"group": "discovery.k8s.io", "kind": "endpointslices"})),
        )
    } else if method == Method::POST && path == TOKEN_REVIEW_PATH {
        token_review(&shared, &body)
    } else if method != Method::GET {
        status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        )
    } else {
        route(&shared, &path, &params)
    };
    record.status = response.status().as_u16();
    lock(&shared).requests.push(record);
    Ok(response)
}

/// A TokenReview answered as kube-apiserver does (authentication.k8s.io/v1).
fn token_review(shared: &Shared, body: &[u8]) -> Response<Body> {
    let (mode, user) = {
        let st = lock(shared);
        let review: Option<Value> = serde_json::from_slice(body).ok();
        let token = review
            .as_ref()
            .and_then(|r| r.pointer("/spec/token"))
            .and_then(Value::as_str)
            .unwrap_or("");
        (st.token_review, st.tokens.get(token).cloned())
    };
    match mode {
        TokenReviewMode::Normal => {}
        TokenReviewMode::Error => {
            return status_response(
                500,
                "InternalError",
                "Internal error occurred: the authentication webhook is unavailable",
                None,
            );
        }
        TokenReviewMode::Forbidden => {
            let user = format!(
                "system:serviceaccount:{}:k8s-aggregator-mcp",
                shared.options.namespace
            );
            return status_response(
                403,
                "Forbidden",
                &format!(
                    "tokenreviews.authentication.k8s.io is forbidden: User \"{user}\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
                ),
                Some(json!({"group": "authentication.k8s.io", "kind": "tokenreviews"})),
            );
        }
    }
    let Ok(review) = serde_json::from_slice::<Value>(body) else {
        return status_response(400, "BadRequest", "the body is not a TokenReview", None);
    };
    if review["kind"] != "TokenReview" && !review["kind"].is_null() {
        return status_response(400, "BadRequest", "the body is not a TokenReview", None);
    }
    let asked: Vec<String> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let asked = if asked.is_empty() {
        vec![API_SERVER_AUDIENCE.to_string()]
    } else {
        asked
    };
    let mut spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    if spec.get("audiences").is_none() {
        spec["audiences"] = json!([]);
    }
    let status = match user {
        None => json!({
            "user": {},
            "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive, token lookup failed]",
        }),
        Some(u) => {
            let granted: Vec<&String> = u.audiences.iter().filter(|a| asked.contains(a)).collect();
            if granted.is_empty() {
                json!({
                    "user": {},
                    "error": format!(
                        "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                        u.audiences, asked
                    ),
                })
            } else {
                json!({
                    "authenticated": true,
                    "user": {
                        "username": u.username,
                        "uid": u.uid,
                        "groups": u.groups,
                        "extra": {
                            "authentication.kubernetes.io/credential-id": [format!("JTI={}", u.uid)],
                        },
                    },
                    "audiences": granted,
                })
            }
        }
    };
    json_response(
        201,
        &json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": { "creationTimestamp": null },
            "spec": spec,
            "status": status,
        }),
    )
}

/// `Some(ns)` for `/apis/discovery.k8s.io/v1/namespaces/{ns}/...`.
fn namespace_of(path: &str) -> Option<&str> {
    path.strip_prefix(GROUP_PATH)?
        .strip_prefix("/namespaces/")?
        .split('/')
        .next()
}

fn route(shared: &Arc<Shared>, path: &str, params: &HashMap<String, String>) -> Response<Body> {
    let Some(rest) = path.strip_prefix(GROUP_PATH) else {
        return not_found();
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (namespace, name) = match segments.as_slice() {
        ["endpointslices"] => (None, None),
        ["namespaces", ns, "endpointslices"] => (Some(*ns), None),
        ["namespaces", ns, "endpointslices", name] => (Some(*ns), Some(*name)),
        _ => return not_found(),
    };
    let selector = match params.get("labelSelector").map(|s| Selector::parse(s)) {
        Some(Ok(s)) => s,
        Some(Err(msg)) => return status_response(400, "BadRequest", &msg, None),
        None => Selector::default(),
    };
    let scope = Scope {
        namespace: namespace.map(str::to_string),
        selector,
    };
    if let Some(name) = name {
        let st = lock(shared);
        return match st.slices.get(name).filter(|o| scope.matches(o)) {
            Some(object) => json_response(200, object),
            None => not_found(),
        };
    }
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        start_watch(shared, scope, params)
    } else {
        list(shared, &scope, params)
    }
}

/// What a list or watch covers: namespace and label selector.
struct Scope {
    namespace: Option<String>,
    selector: Selector,
}

impl Scope {
    fn matches(&self, object: &Value) -> bool {
        let ns_ok = match &self.namespace {
            Some(ns) => {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(ns)
            }
            None => true,
        };
        ns_ok && self.selector.matches(object.pointer("/metadata/labels"))
    }
}

/// Equality-based label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated.
#[derive(Default)]
struct Selector(Vec<(String, Op)>);

enum Op {
    Eq(String),
    Ne(String),
    Exists,
    NotExists,
}

impl Selector {
    fn parse(s: &str) -> Result<Self, String> {
        if s.contains('(') {
            return Err(format!(
                "unable to parse requirement: set-based selector not supported by the fake: {s}"
            ));
        }
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                (k.trim().to_string(), Op::Ne(v.trim().to_string()))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k.trim().to_string(), Op::Eq(v.trim().to_string()))
            } else if let Some(k) = part.strip_prefix('!') {
                (k.trim().to_string(), Op::NotExists)
            } else {
                (part.to_string(), Op::Exists)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    fn matches(&self, labels: Option<&Value>) -> bool {
        self.0.iter().all(|(key, op)| {
            let value = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            match op {
                Op::Eq(v) => value == Some(v.as_str()),
                Op::Ne(v) => value != Some(v.as_str()),
                Op::Exists => value.is_some(),
                Op::NotExists => value.is_none(),
            }
        })
    }
}

fn list(shared: &Shared, scope: &Scope, params: &HashMap<String, String>) -> Response<Body> {
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut st = lock(shared);
    let (id, rv, offset) = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let parsed = token
                .split_once(':')
                .and_then(|(id, off)| Some((id.parse::<u64>().ok()?, off.parse::<usize>().ok()?)));
            let Some((id, offset)) = parsed else {
                return status_response(400, "BadRequest", "invalid continue token", None);
            };
            match st.snapshots.get(&id) {
                Some((rv, _)) if *rv >= st.expired_below => (id, *rv, offset),
                _ => {
                    return status_response(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                        None,
                    );
                }
            }
        }
        None => {
            let items: Vec<Value> = st
                .slices
                .values()
                .filter(|o| scope.matches(o))
                .map(list_item)
                .collect();
            let id = st.next_snapshot;
            st.next_snapshot += 1;
            let rv = st.rv;
            st.snapshots.insert(id, (rv, items));
            (id, rv, 0)
        }
    };
    let Some((_, items)) = st.snapshots.get(&id) else {
        return status_response(500, "InternalError", "snapshot vanished", None);
    };
    let end = limit.map_or(items.len(), |l| offset.saturating_add(l).min(items.len()));
    let page: Vec<Value> = items.get(offset.min(end)..end).unwrap_or_default().to_vec();
    let remaining = items.len() - end;
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if remaining > 0 {
        metadata["continue"] = json!(format!("{id}:{end}"));
        metadata["remainingItemCount"] = json!(remaining);
    } else {
        st.snapshots.remove(&id);
    }
    json_response(
        200,
        &json!({
            "kind": "EndpointSliceList",
            "apiVersion": "discovery.k8s.io/v1",
            "metadata": metadata,
            "items": page,
        }),
    )
}

/// Items of a list carry no kind / apiVersion on a real server.
fn list_item(object: &Value) -> Value {
    let mut item = object.clone();
    if let Some(map) = item.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
}

fn start_watch(
    shared: &Arc<Shared>,
    scope: Scope,
    params: &HashMap<String, String>,
) -> Response<Body> {
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let initial_events = params.get("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let from = params
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && rv.as_str() != "0")
        .map(|rv| rv.parse::<u64>());
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let subscription;
    {
        let st = lock(shared);
        match from {
            Some(Err(_)) => {
                return status_response(400, "BadRequest", "invalid resourceVersion", None);
            }
            Some(Ok(rv)) if rv < st.expired_below => {
                let message = format!("too old resource version: {rv} ({})", st.expired_below);
                if st.gone_style == GoneStyle::Http {
                    return status_response(410, "Expired", &message, None);
                }
                let line = event_line("ERROR", &status_object(410, "Expired", &message, None));
                return stream_response(futures_from(vec![line]));
            }
            Some(Ok(rv)) => {
                for event in st
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && scope.matches(&e.object))
                {
                    first.push(event_line(event.kind, &event.object));
                }
            }
            None => {
                for object in st.slices.values().filter(|o| scope.matches(o)) {
                    first.push(event_line("ADDED", object));
                }
                if initial_events {
                    let mut bookmark = bookmark_object(st.rv);
                    bookmark["metadata"]["annotations"] =
                        json!({"k8s.io/initial-events-end": "true"});
                    first.push(event_line("BOOKMARK", &bookmark));
                }
            }
        }
        subscription = shared.events.subscribe();
    }
    tokio::spawn(watch_task(
        shared.clone(),
        scope,
        subscription,
        tx,
        first,
        bookmarks,
        timeout,
    ));
    stream_response(rx_stream(rx))
}

async fn watch_task(
    shared: Arc<Shared>,
    scope: Scope,
    mut events: broadcast::Receiver<Msg>,
    tx: mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
    first: Vec<Bytes>,
    bookmarks: bool,
    timeout: Option<Duration>,
) {
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let _guard = OpenWatchGuard(shared.clone());
    for line in first {
        if tx.send(Ok(Frame::data(line))).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(24 * 3600)));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(shared.options.bookmark_interval);
    tick.tick().await; // the first tick is immediate
    loop {
        let line = tokio::select! {
            _ = &mut deadline => return, // clean end of the chunked body, as on timeoutSeconds
            _ = tx.closed() => return,
            _ = tick.tick(), if bookmarks => event_line("BOOKMARK", &bookmark_object(lock(&shared).rv)),
            msg = events.recv() => match msg {
                Ok(Msg::Event(e)) if scope.matches(&e.object) => event_line(e.kind, &e.object),
                Ok(Msg::Event(_)) => continue,
                Ok(Msg::Expire) => {
                    let message = format!("too old resource version (compacted at {})", lock(&shared).expired_below);
                    let line = event_line("ERROR", &status_object(410, "Expired", &message, None));
                    let _ = tx.send(Ok(Frame::data(line))).await;
                    return;
                }
                Ok(Msg::Drop) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(Err("watch dropped by the fake API server".into())).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(Ok(Frame::data(line))).await.is_err() {
            return;
        }
    }
}

struct OpenWatchGuard(Arc<Shared>);

impl Drop for OpenWatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({ "type": kind, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark_object(rv: u64) -> Value {
    json!({
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": { "resourceVersion": rv.to_string(), "creationTimestamp": null },
    })
}

fn status_object(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    json_response(code, &status_object(code, reason, message, details))
}

fn not_found() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        None,
    )
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn stream_response<S>(stream: S) -> Response<Body>
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync + 'static,
{
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache, private"),
    );
    response
}

fn futures_from(
    lines: Vec<Bytes>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync {
    futures_util::stream::iter(lines.into_iter().map(|l| Ok(Frame::data(l))))
}

fn rx_stream(
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Decode a query string (`+` and `%XX`); later duplicates win. Leading `&` (kube-rs sends
/// `?&watch=true...`) is fine.
fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
