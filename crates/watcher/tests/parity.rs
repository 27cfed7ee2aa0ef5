//! Behaviours of the Go original, each reproduced against apiserver-sim through a real
//! kube::Client: flushing pending change notifications without stopping (`ForceSync`), and
//! the object watcher's validation, separate sync callback and health accessors.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use apiserver_sim::{ApiServerSim, Matcher, Rejection};
use compact_object::CompactObject;
use kstore_watcher::{
    ObjectCallback, ObjectWatchError, ObjectWatchOptions, ObjectWatcher, ResourceWatcher, WatchOptions, WatchedResource,
};
use kube::api::ApiResource;
use kube::discovery::Scope;
use serde_json::{Value, json};
use store_types::ChangeStats;

mod common;
use common::eventually;

fn config_map(ns: &str, name: &str, v: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns, "name": name}, "data": {"v": v}})
}

/// `ForceSync`: pending notifications are delivered at once (here, long before the hour-long
/// debounce interval ends) and the watch keeps running and notifying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_delivers_pending_changes_and_the_watch_keeps_running() {
    let sim = ApiServerSim::builder().objects([config_map("a", "first", "1")]).start().await.unwrap();
    let calls: Arc<Mutex<Vec<ChangeStats>>> = Arc::default();
    let c2 = calls.clone();
    let opts = WatchOptions {
        debounce: Duration::from_secs(3600),
        on_change: Some(Arc::new(move |s| c2.lock().unwrap().push(s))),
        ..Default::default()
    };
    let cfg: WatchedResource = serde_yaml_ng::from_str(
        "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name]}",
    )
    .unwrap();
    let w = ResourceWatcher::start(sim.client(), cfg.compile("configmaps", &[]).unwrap(), opts).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), w.wait_for_sync()).await.unwrap();
    let store = w.store().clone();
    assert!(w.flush_changes().is_empty(), "the initial sync is not notified");

    sim.create(config_map("a", "second", "1")).unwrap();
    eventually("leading edge", || calls.lock().unwrap().len() == 1).await;
    sim.create(config_map("a", "third", "1")).unwrap();
    sim.apply(config_map("a", "first", "2")).unwrap();
    eventually("applied", || store.len() == 3 && !w.store().is_empty()).await;
    eventually("both recorded", || {
        let mem = w.store().as_memory().unwrap();
        mem.get_by_identity("a", "first").is_some_and(|o| o.pointer("/data/v").and_then(|v| v.as_str()) == Some("2"))
    })
    .await;
    assert_eq!(calls.lock().unwrap().len(), 1, "held back by the interval");
    let flushed = w.flush_changes();
    assert_eq!((flushed.created, flushed.modified), (1, 1));
    assert_eq!(calls.lock().unwrap().len(), 2, "delivered by the flush");

    // Still watching: a later change reaches the store and is delivered by the next flush.
    sim.delete("configmaps", Some("a"), "second").unwrap();
    eventually("deletion applied", || store.len() == 2).await;
    assert_eq!(w.flush_changes().deleted, 1);
    assert_eq!(
        calls.lock().unwrap().iter().map(|s| (s.created, s.modified, s.deleted)).collect::<Vec<_>>(),
        [(1, 0, 0), (1, 1, 0), (0, 0, 1)]
    );
    assert!(w.is_synced());
}

fn secret(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": ns, "name": name}, "data": {"password": value}})
}

fn secrets() -> ApiResource {
    ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&())
}

type Seen = Arc<Mutex<Vec<Option<String>>>>;

fn recorder() -> (ObjectCallback, Seen) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let cb: ObjectCallback = Arc::new(move |o: Option<Arc<CompactObject>>| {
        s2.lock().unwrap().push(o.and_then(|o| o.pointer("/data/password").and_then(|p| p.as_str().map(str::to_owned))))
    });
    (cb, seen)
}

/// The original's validation: an empty name, and a namespaced resource without namespace
/// (which would conflate `a/same` and `b/same`), are named errors; so is a namespace for a
/// cluster-scoped resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_watcher_validates_name_and_namespace() {
    let sim = ApiServerSim::builder()
        .objects([secret("a", "same", "YQ=="), secret("b", "same", "Yg==")])
        .start()
        .await
        .unwrap();
    let opts = ObjectWatchOptions::default;
    let e = ObjectWatcher::start(sim.client(), &secrets(), Scope::Namespaced, Some("a"), "", opts()).unwrap_err();
    assert_eq!(e, ObjectWatchError::EmptyName { plural: "secrets".into() });
    for ns in [None, Some("")] {
        let e = ObjectWatcher::start(sim.client(), &secrets(), Scope::Namespaced, ns, "same", opts()).unwrap_err();
        assert_eq!(e, ObjectWatchError::MissingNamespace { plural: "secrets".into(), name: "same".into() });
        assert!(e.to_string().contains("namespace is required"), "{e}");
    }
    let ns = ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&());
    let e = ObjectWatcher::start(sim.client(), &ns, Scope::Cluster, Some("a"), "a", opts()).unwrap_err();
    assert!(matches!(e, ObjectWatchError::ClusterScoped { .. }), "{e:?}");

    // With a namespace, `a/same` and `b/same` are different objects.
    let (cb, seen) = recorder();
    let opts = ObjectWatchOptions { on_sync_complete: Some(cb), on_change: None };
    let w = ObjectWatcher::start(sim.client(), &secrets(), Scope::Namespaced, Some("b"), "same", opts).unwrap();
    tokio::time::timeout(Duration::from_secs(20), w.wait_for_sync()).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [Some("Yg==".to_string())]);
}

/// The initial state goes to `on_sync_complete` only, later changes to `on_change` only; the
/// accessors report sync, the last event's time and the last watch error (cleared when the
/// watch recovers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_watcher_sync_callback_and_health_accessors() {
    let sim = ApiServerSim::builder().objects([secret("ops", "creds", "YQ==")]).start().await.unwrap();
    // The first lists fail: the watcher retries with backoff and reports the error meanwhile.
    sim.faults().reject_for(Matcher::any().resource("secrets"), Duration::from_millis(1500), Rejection::status(500));
    let (on_sync, synced) = recorder();
    let (on_change, changed) = recorder();
    let before = SystemTime::now();
    let w = ObjectWatcher::start(
        sim.client(),
        &secrets(),
        Scope::Namespaced,
        Some("ops"),
        "creds",
        ObjectWatchOptions { on_sync_complete: Some(on_sync), on_change: Some(on_change) },
    )
    .unwrap();
    assert!(!w.is_synced());
    eventually("the error is reported", || w.last_error().is_some()).await;
    let err = w.last_error().unwrap();
    assert!(err.at >= before);
    assert!(!w.is_synced(), "not synced while lists fail");
    assert!(w.last_event_time().is_none());
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("recovers");
    assert!(w.is_synced());
    assert!(w.last_error().is_none(), "cleared by the recovery");
    let first_event = w.last_event_time().expect("an event was received");
    assert!(first_event >= err.at);
    assert_eq!(*synced.lock().unwrap(), [Some("YQ==".to_string())], "initial state: sync callback");
    assert!(changed.lock().unwrap().is_empty(), "…and not a change");

    sim.apply(secret("ops", "creds", "Yw==")).unwrap();
    eventually("change", || changed.lock().unwrap().len() == 1).await;
    sim.delete("secrets", Some("ops"), "creds").unwrap();
    eventually("deletion", || changed.lock().unwrap().len() == 2).await;
    assert_eq!(*changed.lock().unwrap(), [Some("Yw==".to_string()), None]);
    assert_eq!(synced.lock().unwrap().len(), 1, "the sync callback fires once");
    assert!(w.last_event_time().unwrap() >= first_event);
    assert!(w.current().is_none());
}
