//! A watcher's health is visible (`ResourceWatcher` and `ObjectWatcher`): a watch task that
//! dies (its runtime shutting down) makes `is_synced()` false and `health()` `Dead`; panicking
//! callbacks, even with a payload that panics when dropped, are contained; a retried watch error makes
//! it `Degraded` until the next event; and a periodic resync repairs events the watch lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apiserver_sim::{ApiServerSim, Matcher, Rejection, Verb};
use common::{eventually, on_big_stacks};
use kstore_watcher::{
    Health, ObjectWatchOptions, ObjectWatcher, ResourceLabels, ResourceWatcher, WatchMetrics, WatchOptions,
    WatchedResource,
};
use serde_json::{Value, json};

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": name}, "data": {"k": name}})
}

fn config() -> kstore_watcher::ResourceConfig {
    let r: WatchedResource = serde_yaml_ng::from_str(
        "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name]}",
    )
    .unwrap();
    r.compile("cm", &[]).unwrap()
}

fn held(w: &ResourceWatcher, name: &str) -> bool {
    w.store().as_memory().unwrap().get(&["ns", name]).is_ok_and(|o| o.len() == 1)
}

#[test]
fn a_watch_task_dropped_with_its_runtime_is_dead_and_no_longer_synced() {
    let sim_rt = tokio::runtime::Runtime::new().unwrap();
    let sim = sim_rt.block_on(ApiServerSim::builder().objects([cm("a")]).start()).unwrap();
    let watch_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let w = watch_rt.block_on(async {
        let w = ResourceWatcher::start(sim.client(), config(), WatchOptions::default()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("initial sync");
        w
    });
    assert!(w.is_synced() && w.is_ready());
    assert_eq!(w.health(), Health::Ready);
    // The runtime the watch task ran on shuts down; the watcher (and its store) live on.
    drop(watch_rt);
    assert!(!w.is_synced(), "a store nothing updates is not synced");
    assert!(!w.is_ready());
    assert!(matches!(w.health(), Health::Dead { reason } if reason.contains("dropped unfinished")), "{:?}", w.health());
    assert_eq!(w.store().len(), 1, "the store keeps its last state");
    w.stop();
    assert_eq!(w.health(), Health::Stopped);
    sim_rt.block_on(sim.shutdown());
}

/// A panic payload whose own drop panics: dropping the caught payload would panic again,
/// outside the isolation, so the watcher never drops it.
struct PanicsWhenDropped;

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("payload dropped");
    }
}

#[tokio::test]
async fn a_panic_payload_that_panics_when_dropped_is_contained_too() {
    let sim = ApiServerSim::builder().objects([cm("a")]).start().await.unwrap();
    let options = WatchOptions {
        on_sync_complete: Some(Arc::new(|_| std::panic::panic_any(PanicsWhenDropped))),
        ..WatchOptions::default()
    };
    let w = ResourceWatcher::start(sim.client(), config(), options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("initial sync");
    assert_eq!(w.callback_panics(), 1);
    sim.apply(cm("b")).unwrap();
    eventually("the watch goes on", || held(&w, "b")).await;
    assert_eq!(w.health(), Health::Ready);
    assert!(w.is_synced() && w.is_ready());
    w.stop();
    sim.shutdown().await;
}

fn object_watcher(sim: &ApiServerSim, name: &str, options: ObjectWatchOptions) -> ObjectWatcher {
    let ar = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    ObjectWatcher::start(sim.client(), &ar, kube::discovery::Scope::Namespaced, Some("ns"), name, options).unwrap()
}

#[tokio::test]
async fn object_watchers_contain_callback_panics_and_report_health() {
    let sim = ApiServerSim::builder().objects([cm("a")]).start().await.unwrap();
    let faults = sim.faults();
    faults.reject_for(Matcher::verb(Verb::List), Duration::from_secs(600), Rejection::status(500));
    let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = changes.clone();
    let options = ObjectWatchOptions {
        on_sync_complete: Some(Arc::new(|_| std::panic::panic_any(PanicsWhenDropped))),
        on_change: Some(Arc::new(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("on_change fails")
        })),
    };
    let w = object_watcher(&sim, "a", options);
    eventually(
        "Syncing with the list error",
        || matches!(w.health(), Health::Syncing { last_error: Some(e) } if e.contains("500")),
    )
    .await;
    assert!(!w.is_synced());
    faults.clear_rejections();
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("sync after the fault");
    eventually("Ready", || w.health() == Health::Ready).await;
    assert_eq!(w.callback_panics(), 1);
    for i in 0..3 {
        sim.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "a"}, "data": {"k": i.to_string()}}))
            .unwrap();
        let want = i + 1;
        eventually("each change reaches the panicking callback", || {
            changes.load(std::sync::atomic::Ordering::SeqCst) == want
        })
        .await;
    }
    assert_eq!(w.callback_panics(), 4);
    assert!(w.is_synced());
    assert_eq!(w.current().unwrap().pointer("/data/k").and_then(|v| v.as_str()), Some("2"));
    w.stop();
    assert_eq!(w.health(), Health::Stopped);
    sim.shutdown().await;
}

#[test]
fn an_object_too_deep_to_hold_is_reported_absent_and_counted() {
    // serde_json (here and in the simulator) recurses through the value: big stacks.
    on_big_stacks(async {
        let sim = ApiServerSim::builder().objects([cm("a")]).start().await.unwrap();
        let w = object_watcher(&sim, "a", ObjectWatchOptions::default());
        tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("initial sync");
        assert!(w.current().is_some());
        let mut deep = json!("bottom");
        for _ in 0..compact_object::MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        sim.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "a"}, "spec": deep}))
            .unwrap();
        eventually("reported absent", || w.current().is_none()).await;
        assert_eq!(w.rejected_objects(), 1);
        assert_eq!(w.health(), Health::Ready);
        sim.apply(cm("a")).unwrap();
        eventually("held again", || w.current().is_some()).await;
        w.stop();
        sim.shutdown().await;
    });
}

#[test]
fn an_object_watch_task_dropped_with_its_runtime_is_dead() {
    let sim_rt = tokio::runtime::Runtime::new().unwrap();
    let sim = sim_rt.block_on(ApiServerSim::builder().objects([cm("a")]).start()).unwrap();
    let watch_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let w = watch_rt.block_on(async {
        let w = object_watcher(&sim, "a", ObjectWatchOptions::default());
        tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("initial sync");
        w
    });
    assert!(w.is_synced());
    drop(watch_rt);
    assert!(!w.is_synced(), "a state nothing updates is not synced");
    assert!(matches!(w.health(), Health::Dead { reason } if reason.contains("dropped unfinished")), "{:?}", w.health());
    w.stop();
    assert_eq!(w.health(), Health::Stopped);
    sim_rt.block_on(sim.shutdown());
}

#[tokio::test]
async fn watch_errors_show_as_syncing_or_degraded_until_the_next_event() {
    let sim = ApiServerSim::builder().objects([cm("a")]).start().await.unwrap();
    let faults = sim.faults();
    faults.reject_for(Matcher::verb(Verb::List), Duration::from_secs(600), Rejection::status(500));
    let w = ResourceWatcher::start(sim.client(), config(), WatchOptions::default()).await.unwrap();
    eventually(
        "Syncing with the list error",
        || matches!(w.health(), Health::Syncing { last_error: Some(e) } if e.contains("500")),
    )
    .await;
    assert!(!w.is_synced());
    faults.clear_rejections();
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("sync after the fault");
    assert_eq!(w.health(), Health::Ready);

    // A running watch ends and every re-watch is rejected: degraded, store still serving.
    tokio::time::timeout(Duration::from_secs(30), sim.wait_for_watches(1)).await.expect("watching");
    faults.reject_for(Matcher::verbs(&[Verb::Watch, Verb::List]), Duration::from_secs(600), Rejection::status(500));
    assert_eq!(faults.end_watches(), 1);
    eventually("Degraded", || matches!(w.health(), Health::Degraded { .. })).await;
    assert!(w.is_synced() && w.is_ready(), "the last complete state is still served");
    assert!(held(&w, "a"));
    faults.clear_rejections();
    sim.apply(cm("b")).unwrap();
    eventually("the next event clears the error", || held(&w, "b") && w.health() == Health::Ready).await;
    w.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_resync_repairs_lost_events() {
    let sim = ApiServerSim::builder().objects([cm("a"), cm("victim")]).start().await.unwrap();
    let metrics = WatchMetrics::default();
    let every = Duration::from_secs(5);
    let options = WatchOptions { resync_interval: Some(every), metrics: metrics.clone(), ..WatchOptions::default() };
    let w = ResourceWatcher::start(sim.client(), config(), options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("initial sync");
    let relists = || metrics.relists.get_or_create(&ResourceLabels { resource: "cm".into() }).get();
    assert_eq!(relists(), 1);
    sim.wait_for_watches(1).await;

    // A creation and a deletion whose events are lost; the events after them arrive.
    sim.faults().lose_next_event();
    sim.apply(cm("lost")).unwrap();
    sim.apply(cm("marker1")).unwrap();
    eventually("marker1", || held(&w, "marker1")).await;
    sim.faults().lose_next_event();
    sim.delete("configmaps", Some("ns"), "victim").unwrap();
    sim.apply(cm("marker2")).unwrap();
    eventually("marker2", || held(&w, "marker2")).await;
    assert_eq!(relists(), 1, "no resync yet");
    assert!(!held(&w, "lost") && held(&w, "victim"), "the watch alone never learns of lost events");

    eventually("the resync repaired the store", || !held(&w, "victim") && held(&w, "lost")).await;
    assert!(relists() >= 2);
    assert_eq!(w.store().len(), sim.count("configmaps").unwrap());
    assert_eq!(w.health(), Health::Ready);
    w.store().as_memory().unwrap().validate().unwrap();
    w.stop();
    sim.shutdown().await;
}
