//! `cluster::Discovery` against the fake Kubernetes API server, through a real kube client
//! built from the fake's kubeconfig: the initial list, live changes, slices joined and paged,
//! and every failure the design names (410 Gone, dropped watch, 401, 403, API down) — the last
//! known map must keep being served while status reports the trouble.
//!
//! Conditions are polled with a bounded deadline; nothing asserts wall-clock durations.

#[path = "support/fake_kube.rs"]
mod fake_kube;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kube::{AuthMode, FOREIGN_NODE, FakeKube, FakeKubeOptions, GoneStyle};
use k8s_aggregator_mcp::cluster::{Discovery, NodeMap, WatchOptions, client_from_config};
use serde_json::json;

/// Upper bound for any awaited condition; generous for a loaded 2-core CI machine.
const DEADLINE: Duration = Duration::from_secs(10);

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Short backoff so recovery tests do not wait for production delays.
fn fast() -> WatchOptions {
    WatchOptions {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..WatchOptions::default()
    }
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn discovery(kube: &FakeKube, options: WatchOptions) -> Discovery {
    // `RUST_LOG=k8s_aggregator_mcp=debug cargo test --test discovery` shows what happened.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // Built exactly as the gateway builds its client, from the fake's kubeconfig.
    let client = match kube.config().await.map(client_from_config) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("kube client: {e}"),
        Err(e) => panic!("kubeconfig of the fake: {e}"),
    };
    let opts = kube.options();
    Discovery::watch_with(client, &opts.namespace, &opts.service, options)
}

async fn synced(d: &Discovery) -> Arc<NodeMap> {
    match d.wait_synced(DEADLINE).await {
        Ok(map) => map,
        Err(e) => panic!("discovery did not sync: {e}"),
    }
}

fn summary(map: &NodeMap) -> Vec<(String, IpAddr, bool)> {
    map.iter()
        .map(|e| (e.node.clone(), e.ip, e.ready))
        .collect()
}

#[tokio::test]
async fn initial_list_gives_the_map_and_only_list_watch_are_used() {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    kube.set_node("node-b", ip(3), false);
    let v6: IpAddr = "fd00::4".parse().unwrap();
    kube.set_node("node-c", v6, true);

    let d = discovery(&kube, fast()).await;
    let map = synced(&d).await;
    assert_eq!(
        summary(&map),
        vec![
            ("node-a".into(), ip(2), true),
            ("node-b".into(), ip(3), false),
            ("node-c".into(), v6, true),
        ]
    );
    assert!(
        map.get(FOREIGN_NODE).is_none(),
        "the label selector must exclude other Services"
    );
    assert_eq!(
        map.get("node-a").unwrap().pod.as_deref(),
        Some("node-mcp-server-node-a")
    );
    assert_eq!(
        map.ready().map(|e| e.node.as_str()).collect::<Vec<_>>(),
        ["node-a", "node-c"]
    );
    let status = d.status();
    assert!(status.synced && status.healthy && status.last_error.is_none());
    assert!(
        Arc::ptr_eq(&map, &d.nodes()),
        "no republish without a change"
    );

    eventually("a watch is open", || kube.open_watches() > 0).await;
    let expected_path = "/apis/discovery.k8s.io/v1/namespaces/mcp-server/endpointslices";
    for r in kube.requests() {
        assert_eq!(r.method, "GET", "{r:?}");
        assert_eq!(r.path, expected_path, "{r:?}");
        assert!(matches!(r.verb().as_str(), "list" | "watch"), "{r:?}");
        assert_eq!(
            r.param("labelSelector").as_deref(),
            Some("kubernetes.io/service-name=backend-mcp-service"),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn nodes_added_removed_and_unready_while_running() {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    kube.set_node("node-b", ip(3), true);
    let d = discovery(&kube, fast()).await;
    let mut changes = d.changes();
    synced(&d).await;
    changes.borrow_and_update();

    kube.set_node("node-c", ip(4), true);
    eventually("node-c added", || {
        d.nodes().get("node-c").is_some_and(|e| e.ready)
    })
    .await;
    assert!(
        changes.has_changed().unwrap_or(false),
        "changes() is notified"
    );

    kube.set_node("node-a", ip(2), false);
    eventually("node-a unready", || {
        d.nodes().get("node-a").is_some_and(|e| !e.ready)
    })
    .await;
    assert_eq!(d.nodes().ready().count(), 2);

    kube.remove_node("node-b");
    eventually("node-b removed", || d.nodes().get("node-b").is_none()).await;

    kube.set_node("node-a", ip(12), true);
    eventually("node-a ready on a new IP", || {
        d.nodes()
            .get("node-a")
            .is_some_and(|e| e.ready && e.ip == ip(12))
    })
    .await;

    kube.remove_node("node-a");
    kube.remove_node("node-c");
    eventually("all nodes gone", || d.nodes().is_empty()).await;
    assert!(d.status().healthy);
}

#[tokio::test]
async fn slices_are_joined_paged_and_deleted() {
    let kube = FakeKube::start_with(FakeKubeOptions {
        slice_count: 3,
        ..FakeKubeOptions::default()
    })
    .await;
    for i in 0..7u8 {
        kube.set_node(&format!("node-{i}"), ip(10 + i), true);
    }
    let d = discovery(
        &kube,
        WatchOptions {
            page_size: Some(2),
            ..fast()
        },
    )
    .await;
    let map = synced(&d).await;
    assert_eq!(map.len(), 7, "{map:?}");
    let lists: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.verb() == "list")
        .collect();
    assert!(
        lists
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("2")),
        "{lists:?}"
    );
    assert!(
        lists.iter().any(|r| r.param("continue").is_some()),
        "paged: {lists:?}"
    );

    // Slot 0 holds node-0, node-3, node-6: removing them deletes that slice.
    let before = kube.slices().len();
    for n in ["node-0", "node-3", "node-6"] {
        kube.remove_node(n);
    }
    assert_eq!(
        kube.slices().len(),
        before - 1,
        "the emptied slice is deleted"
    );
    eventually("slice deletion reflected", || d.nodes().len() == 4).await;
    assert_eq!(
        d.nodes().names().collect::<Vec<_>>(),
        ["node-1", "node-2", "node-4", "node-5"]
    );

    // Rolling update: node-1 has its old pod (managed slice) and a new pod (another slice).
    // While both are ready the order is deterministic (pod name: the old one sorts first);
    // once the old pod is not ready, the ready new one wins.
    kube.put_slice(
        "backend-mcp-service-rollout",
        json!({
            "addressType": "IPv4",
            "endpoints": [
                { "addresses": ["127.0.0.99"], "nodeName": "node-1", "conditions": { "ready": true },
                  "targetRef": { "kind": "Pod", "name": "node-mcp-server-x-new" } },
                { "addresses": ["127.0.0.98"], "conditions": { "ready": true } },
                { "addresses": [], "nodeName": "node-9" },
            ],
        }),
    );
    kube.set_node("node-1", ip(11), false);
    eventually("ready replacement preferred", || {
        d.nodes()
            .get("node-1")
            .is_some_and(|e| e.ready && e.ip == ip(99))
    })
    .await;
    assert!(
        d.nodes().get("node-9").is_none(),
        "endpoints without addresses are ignored"
    );
    assert_eq!(d.nodes().len(), 4);
    kube.set_node("node-1", ip(11), true);
    eventually("both ready: deterministic pick", || {
        d.nodes()
            .get("node-1")
            .is_some_and(|e| e.ip == ip(11) && e.pod.as_deref() == Some("node-mcp-server-node-1"))
    })
    .await;
}

#[tokio::test]
async fn expired_watch_relists_and_keeps_serving() {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    let d = discovery(&kube, fast()).await;
    let before = synced(&d).await;
    eventually("a watch is open", || kube.open_watches() > 0).await;
    let lists = || {
        kube.requests()
            .iter()
            .filter(|r| r.verb() == "list")
            .count()
    };
    let lists_before = lists();

    kube.expire_watches();
    eventually("the 410 is reported", || {
        d.status()
            .last_error
            .is_some_and(|e| e.contains("410") || e.contains("Expired"))
    })
    .await;
    assert_eq!(
        summary(&d.nodes()),
        summary(&before),
        "map kept while re-listing"
    );
    eventually("healthy again after the relist", || d.status().healthy).await;
    assert!(lists() > lists_before, "a 410 forces a fresh list");

    kube.set_node("node-b", ip(3), true);
    eventually("changes flow after the relist", || {
        d.nodes().get("node-b").is_some()
    })
    .await;

    // The other flavour: the watch is resumed from a compacted version and refused with
    // HTTP 410 (no ERROR event); discovery must re-list rather than retry the same version.
    for style in [GoneStyle::Http, GoneStyle::Event] {
        eventually("a watch is open", || kube.open_watches() > 0).await;
        kube.set_gone_style(style);
        let lists_before = lists();
        kube.compact();
        kube.drop_watches();
        eventually("a fresh list after the refused resume", || {
            lists() > lists_before
        })
        .await;
        assert!(d.status().last_error.is_some_and(|e| e.contains("410")));
        eventually("healthy again", || d.status().healthy).await;
        let node = format!("node-{style:?}");
        kube.set_node(&node, ip(20), true);
        eventually("changes flow", || d.nodes().get(&node).is_some()).await;
    }
}

#[tokio::test]
async fn dropped_watch_resumes_without_losing_the_map() {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    let d = discovery(&kube, fast()).await;
    let before = synced(&d).await;
    for _ in 0..3 {
        eventually("a watch is open", || kube.open_watches() > 0).await;
        let watches = kube.watch_requests();
        kube.drop_watches();
        eventually("the watch is re-established", || {
            kube.watch_requests() > watches
        })
        .await;
        assert_eq!(summary(&d.nodes()), summary(&before));
    }
    // A change made while no watch is open is replayed from the resourceVersion.
    kube.drop_watches();
    kube.set_node("node-b", ip(3), true);
    eventually("change after the drop arrives", || {
        d.nodes().get("node-b").is_some()
    })
    .await;
    assert!(d.status().healthy, "{:?}", d.status());
}

#[tokio::test]
async fn watch_timeout_resumes_from_the_last_bookmark() {
    let kube = FakeKube::start_with(FakeKubeOptions {
        bookmark_interval: Duration::from_millis(100),
        ..FakeKubeOptions::default()
    })
    .await;
    kube.set_node("node-a", ip(2), true);
    let d = discovery(
        &kube,
        WatchOptions {
            watch_timeout: Some(1),
            ..fast()
        },
    )
    .await;
    synced(&d).await;
    eventually("a watch is open", || kube.open_watches() > 0).await;
    let lists = kube
        .requests()
        .iter()
        .filter(|r| r.verb() == "list")
        .count();
    // History is compacted without telling the open watch; only a bookmark carries the new
    // version to the client, so the resume after `timeoutSeconds` must not get a 410.
    kube.compact();
    let compacted = kube.resource_version().to_string();
    let watches = kube.watch_requests();
    eventually("the watch is resumed after its timeout", || {
        kube.watch_requests() > watches
    })
    .await;
    let resumed = kube.requests().into_iter().rfind(|r| r.verb() == "watch");
    assert_eq!(
        resumed.and_then(|r| r.param("resourceVersion")),
        Some(compacted)
    );
    assert_eq!(
        kube.requests()
            .iter()
            .filter(|r| r.verb() == "list")
            .count(),
        lists
    );
    assert!(
        d.status().healthy && d.status().last_error.is_none(),
        "{:?}",
        d.status()
    );
    assert_eq!(d.nodes().len(), 1);
}

/// Shared body of the credential tests: break auth, force a new request, check the map is kept
/// and the error reported, then restore and check recovery.
async fn auth_failure_keeps_map(mode: AuthMode, expect_in_error: &[&str]) {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    kube.set_node("node-b", ip(3), true);
    let d = discovery(&kube, fast()).await;
    let before = synced(&d).await;
    eventually("a watch is open", || kube.open_watches() > 0).await;

    kube.set_auth(mode);
    kube.drop_watches();
    eventually("unhealthy with the error", || {
        let s = d.status();
        !s.healthy && s.last_error.is_some() && s.unhealthy_since.is_some()
    })
    .await;
    let status = d.status();
    let error = status.last_error.unwrap_or_default();
    for needle in expect_in_error {
        assert!(
            error.contains(needle),
            "{error:?} should mention {needle:?}"
        );
    }
    assert!(status.synced, "still synced: the map is stale, not absent");
    assert_eq!(summary(&d.nodes()), summary(&before), "last known map kept");

    kube.set_auth(AuthMode::Ok);
    eventually("recovered", || d.status().healthy).await;
    assert!(d.status().unhealthy_since.is_none());
    kube.remove_node("node-b");
    eventually("changes flow again", || d.nodes().get("node-b").is_none()).await;
}

#[tokio::test]
async fn unauthorized_keeps_last_map_and_reports() {
    auth_failure_keeps_map(AuthMode::Unauthorized, &["401", "credentials"]).await;
}

#[tokio::test]
async fn forbidden_keeps_last_map_and_reports() {
    auth_failure_keeps_map(
        AuthMode::Forbidden,
        &["403", "endpointslices", "RBAC", "mcp-server"],
    )
    .await;
}

#[tokio::test]
async fn role_without_watch_still_lists_and_reports() {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    kube.set_auth(AuthMode::ForbiddenWatch);
    let d = discovery(&kube, fast()).await;
    synced(&d).await;
    eventually("the refused watch is reported", || {
        d.status()
            .last_error
            .is_some_and(|e| e.starts_with("watch") && e.contains("403"))
    })
    .await;
    // Each relist still refreshes the map.
    kube.set_node("node-b", ip(3), true);
    eventually("a relist picks up node-b", || {
        d.nodes().get("node-b").is_some()
    })
    .await;

    kube.set_auth(AuthMode::Ok);
    eventually("a watch is open", || kube.open_watches() > 0).await;
    eventually("healthy", || d.status().healthy).await;
    kube.remove_node("node-a");
    eventually("watch events flow", || d.nodes().get("node-a").is_none()).await;
}

#[tokio::test]
async fn api_down_or_unavailable_keeps_last_map() {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    let d = discovery(&kube, fast()).await;
    let before = synced(&d).await;

    kube.set_down(true);
    eventually("unhealthy while down", || !d.status().healthy).await;
    assert_eq!(summary(&d.nodes()), summary(&before));
    kube.set_node("node-b", ip(3), true); // happens while the gateway cannot see it
    kube.set_down(false);
    eventually("recovered with the missed change", || {
        d.status().healthy && d.nodes().get("node-b").is_some()
    })
    .await;

    kube.set_unavailable(true);
    eventually("unhealthy on 503", || {
        let s = d.status();
        !s.healthy && s.last_error.is_some_and(|e| e.contains("503"))
    })
    .await;
    assert_eq!(d.nodes().len(), 2);
    kube.set_unavailable(false);
    eventually("recovered after 503", || d.status().healthy).await;
}

#[tokio::test]
async fn wait_synced_times_out_naming_service_and_namespace() {
    let kube = FakeKube::start().await;
    kube.set_down(true);
    let d = discovery(&kube, fast()).await;
    let err = match d.wait_synced(Duration::from_millis(300)).await {
        Ok(map) => panic!("synced against a down API server: {map:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("backend-mcp-service") && err.contains("mcp-server"),
        "{err}"
    );
    assert!(!d.status().synced && !d.status().healthy);

    // With RBAC missing, the message carries the cause.
    kube.set_auth(AuthMode::Forbidden);
    kube.set_down(false);
    eventually("the 403 is seen", || {
        d.status().last_error.is_some_and(|e| e.contains("403"))
    })
    .await;
    let err = match d.wait_synced(Duration::from_millis(100)).await {
        Ok(map) => panic!("synced while forbidden: {map:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("backend-mcp-service") && err.contains("403"),
        "{err}"
    );

    // And once allowed, the same handle syncs (an empty Service is a valid answer).
    kube.set_auth(AuthMode::Ok);
    let map = synced(&d).await;
    assert!(map.is_empty());
}

#[tokio::test]
async fn dropping_every_handle_stops_the_watch() {
    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    let d = discovery(&kube, fast()).await;
    synced(&d).await;
    eventually("a watch is open", || kube.open_watches() > 0).await;
    drop(d);
    eventually("the watch connection is closed", || {
        kube.open_watches() == 0
    })
    .await;
}

#[tokio::test]
async fn fixed_nodes_are_synced_and_healthy() {
    let d = Discovery::fixed(NodeMap::from_endpoints([
        k8s_aggregator_mcp::cluster::NodeEndpoint {
            node: "demo-node-1".into(),
            ip: ip(2),
            ready: true,
            pod: None,
            zone: None,
            terminating: false,
        },
    ]));
    let map = match d.wait_synced(Duration::from_millis(1)).await {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(map.names().collect::<Vec<_>>(), ["demo-node-1"]);
    let s = d.status();
    assert!(s.synced && s.healthy);
}

/// The fake also serves kube-runtime's streaming-list mode (`sendInitialEvents=true`), so
/// other tests may use it; checked here with a bare watcher.
#[tokio::test]
async fn fake_serves_streaming_lists() {
    use futures_util::StreamExt;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::runtime::watcher::{self, Event};

    let kube = FakeKube::start().await;
    kube.set_node("node-a", ip(2), true);
    let client = match kube.client().await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let api: kube::Api<EndpointSlice> = kube::Api::namespaced(client, "mcp-server");
    let config = watcher::Config::default()
        .labels("kubernetes.io/service-name=backend-mcp-service")
        .streaming_lists();
    let mut stream = watcher::watcher(api, config).boxed();
    let mut names = Vec::new();
    let done = tokio::time::timeout(DEADLINE, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::InitApply(s)) => names.extend(s.metadata.name),
                Ok(Event::InitDone) => return true,
                Ok(_) => {}
                Err(e) => panic!("watcher error: {e}"),
            }
        }
        false
    })
    .await;
    assert_eq!(done, Ok(true));
    assert_eq!(names, ["backend-mcp-service-ipv4-0"]);
    let r = kube.requests();
    assert!(r.iter().all(|r| r.verb() == "watch"), "{r:?}");
    assert_eq!(r[0].param("sendInitialEvents").as_deref(), Some("true"));
}
