//! Unit tests of the session store: sealed ids across replicas, caps, expiry, DELETE.
use super::*;
use crate::jsonrpc::RequestId;
use crate::mcp::LogLevel;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn store(max: usize, idle: Duration) -> SessionStore {
    SessionStore::new(SessionConfig {
        idle_timeout: idle,
        max_sessions: max,
        ..SessionConfig::default()
    })
}

fn rx() -> super::ChangeSignal {
    tokio::sync::watch::channel(super::ListChanges::default()).1
}

fn start(version: ProtocolVersion) -> SessionStart {
    SessionStart {
        version,
        capabilities: json!({"elicitation": {"form": {}}}),
        client_info: json!({"name": "test-client", "version": "1.0"}),
    }
}

fn mint(s: &SessionStore, owner: &str) -> Arc<Session> {
    s.create(start(ProtocolVersion::V2025_11_25), rx(), owner, false)
        .unwrap()
}

fn get(s: &SessionStore, id: &str) -> Result<Arc<Session>, Lookup> {
    s.get(id, None, rx)
}

#[test]
fn ids_are_sealed_and_open_on_every_replica_sharing_the_key() {
    let keys = Sealer::from_text(&crate::seal::new_key_line()).unwrap();
    let config = SessionConfig {
        keys: Some(keys),
        ..SessionConfig::default()
    };
    let (a, b) = (SessionStore::new(config.clone()), SessionStore::new(config));
    let one = a
        .create(start(ProtocolVersion::V2025_03_26), rx(), "c", false)
        .unwrap();
    let two = mint(&a, "c");
    assert_ne!(one.id, two.id);
    assert!(
        one.id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    // Replica b never saw it: rebuilt from the id, with what initialize told.
    let there = get(&b, &one.id).unwrap();
    assert_eq!(there.version, ProtocolVersion::V2025_03_26);
    assert_eq!(
        there.client_capabilities(),
        json!({"elicitation": {"form": {}}})
    );
    assert_eq!(there.client_info()["name"], "test-client");
    assert_eq!(b.len(), 1);
    // Another key opens nothing; an altered id is not ours.
    assert_eq!(
        get(&store(10, Duration::from_secs(60)), &one.id).unwrap_err(),
        Lookup::Unknown
    );
    let mut altered = one.id.clone().into_bytes();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        get(&a, std::str::from_utf8(&altered).unwrap()).unwrap_err(),
        Lookup::Unknown
    );
    assert_eq!(get(&a, "nope").unwrap_err(), Lookup::Unknown);
    // DELETE ends it where it is deleted, for its whole lifetime; b keeps it (see
    // the module documentation).
    a.remove(&one.id, None).unwrap();
    assert_eq!(get(&a, &one.id).unwrap_err(), Lookup::Unknown);
    assert_eq!(a.remove(&one.id, None).unwrap_err(), Lookup::Unknown);
    assert!(get(&b, &one.id).is_ok());
    assert_eq!(a.len(), 1);
}

#[test]
fn a_bound_session_answers_its_owner_only() {
    let s = store(10, Duration::from_secs(60));
    let mine = s
        .create(
            start(ProtocolVersion::V2025_11_25),
            rx(),
            "oauth:alice",
            true,
        )
        .unwrap();
    assert!(s.get(&mine.id, Some("oauth:alice"), rx).is_ok());
    assert_eq!(
        s.get(&mine.id, Some("oauth:bob"), rx).unwrap_err(),
        Lookup::Unknown
    );
    assert_eq!(s.get(&mine.id, None, rx).unwrap_err(), Lookup::Unknown);
    assert_eq!(
        s.remove(&mine.id, Some("oauth:bob")).unwrap_err(),
        Lookup::Unknown
    );
    let long = "x".repeat(1000);
    let l = s
        .create(start(ProtocolVersion::V2025_11_25), rx(), &long, true)
        .unwrap();
    assert!(s.get(&l.id, Some(&long), rx).is_ok());
}

#[test]
fn big_capabilities_are_reduced_to_fit_an_id() {
    let s = store(10, Duration::from_secs(60));
    let huge = "y".repeat(10_000);
    let session = s
        .create(
            SessionStart {
                version: ProtocolVersion::V2025_11_25,
                capabilities: json!({"sampling": {"x": huge}, "roots": {"listChanged": true}}),
                client_info: json!({"name": huge, "version": "2"}),
            },
            rx(),
            "c",
            false,
        )
        .unwrap();
    assert!(session.id.len() < crate::seal::MAX_TOKEN_CHARS);
    assert_eq!(
        session.client_capabilities(),
        json!({"sampling": {}, "roots": {}})
    );
    let again = get(&s, &session.id).unwrap();
    assert_eq!(
        again.client_capabilities(),
        json!({"sampling": {}, "roots": {}})
    );
}

#[test]
fn a_full_cache_drops_the_least_recently_used_idle_entry_without_ending_it() {
    let s = store(3, Duration::from_secs(3600));
    let a = mint(&s, "x");
    let b = mint(&s, "y");
    let busy = mint(&s, "z");
    let _stream = busy.stream_guard();
    std::thread::sleep(Duration::from_millis(2));
    get(&s, &a.id).unwrap(); // a is now more recent than b
    b.set_log_level(LogLevel::Error);
    let _d = mint(&s, "w");
    assert_eq!(s.len(), 3);
    // b was dropped from the cache: rebuilt, without its per-replica level.
    let b2 = get(&s, &b.id).unwrap();
    assert!(!Arc::ptr_eq(&b, &b2));
    assert_eq!(b2.log_level(), None);
    // Only busy entries left to drop: refused.
    let full = store(1, Duration::from_secs(60));
    let x = mint(&full, "x");
    let _g = x.stream_guard();
    assert!(
        full.create(start(ProtocolVersion::V2025_11_25), rx(), "y", false)
            .is_none()
    );
    assert_eq!(
        get(&full, &a.id).unwrap_err(),
        Lookup::Unknown,
        "another key"
    );
}

#[test]
fn one_owner_only_churns_its_own_entries_and_holds_few_busy_ones() {
    let s = SessionStore::new(SessionConfig {
        max_sessions: 100,
        max_per_owner: 2,
        ..SessionConfig::default()
    });
    let victim = mint(&s, "good");
    let flood: Vec<Arc<Session>> = (0..50).map(|_| mint(&s, "flood")).collect();
    assert_eq!(s.len(), 3);
    assert!(
        Arc::ptr_eq(&victim, &get(&s, &victim.id).unwrap()),
        "still cached"
    );
    // The flooder's first session is still valid, rebuilt.
    assert!(get(&s, &flood[0].id).is_ok());
    // Two busy sessions of one owner: a third is refused.
    let _g1 = get(&s, &flood[0].id).unwrap().stream_guard();
    let _g2 = get(&s, &flood[1].id).unwrap().stream_guard();
    assert_eq!(get(&s, &flood[2].id).unwrap_err(), Lookup::Busy);
    assert!(
        s.create(start(ProtocolVersion::V2025_11_25), rx(), "flood", false)
            .is_none()
    );
    assert!(mint(&s, "other").id.len() > 32);
}

#[tokio::test]
async fn a_cached_session_stops_opening_once_its_key_is_retired() {
    let dir = std::env::temp_dir().join(format!("session-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys");
    std::fs::write(&path, crate::seal::new_key_line()).unwrap();
    let keys = Sealer::from_file(&path).unwrap();
    let s = SessionStore::new(SessionConfig {
        keys: Some(keys.clone()),
        ..SessionConfig::default()
    });
    let c = mint(&s, "c");
    assert!(get(&s, &c.id).is_ok(), "cached and valid");
    let stop = CancellationToken::new();
    keys.watch_every(Duration::from_millis(20), stop.clone());
    std::fs::write(&path, crate::seal::new_key_line()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while keys.holds_key_of(&c.id) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    assert_eq!(get(&s, &c.id).unwrap_err(), Lookup::Unknown);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn lifetime_is_sealed_in_the_id() {
    let short = SessionStore::new(SessionConfig {
        max_lifetime: Duration::ZERO,
        ..SessionConfig::default()
    });
    let c = mint(&short, "c");
    let _busy = c.stream_guard();
    std::thread::sleep(Duration::from_millis(3));
    assert_eq!(
        get(&short, &c.id).unwrap_err(),
        Lookup::Unknown,
        "past its lifetime even when busy"
    );
    // Idle entries only leave the cache.
    let s = store(1, Duration::ZERO);
    let a = mint(&s, "a");
    std::thread::sleep(Duration::from_millis(3));
    let _b = mint(&s, "b");
    assert!(get(&s, &a.id).is_ok());
}

#[test]
fn cancel_reaches_tracked_requests() {
    let s = store(2, Duration::from_secs(60));
    let a = mint(&s, "c");
    let token = CancellationToken::new();
    let guard = a.track(RequestId::Number(5), token.clone());
    assert!(!a.cancel(&RequestId::Number(6)));
    assert!(a.cancel(&RequestId::Number(5)));
    assert!(token.is_cancelled());
    drop(guard);
    assert!(!a.cancel(&RequestId::Number(5)));
}

#[test]
fn the_ended_record_is_capped() {
    let mut state = StoreState::default();
    for i in 0..(MAX_ENDED as u128 + 10) {
        state.record_ended(i, 1_000 + i as u64, 0);
    }
    assert!(state.ended.len() <= MAX_ENDED);
    assert!(
        state.ended.contains_key(&(MAX_ENDED as u128 + 9)),
        "the latest is kept"
    );
}
