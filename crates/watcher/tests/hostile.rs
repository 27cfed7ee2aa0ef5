//! Hostile objects cannot stop a store: through a real `kube::Client` against apiserver-sim, an
//! object nested deeper than compact-object's limit (the Kubernetes API server's 10,000 levels)
//! is skipped, counted and logged, while the rest of its list page — including an object
//! exactly 10,000 levels deep — is stored, on the initial list and on watch events.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use common::{eventually, on_big_stacks};
use compact_object::{CompactObject, MAX_DEPTH};
use kstore_watcher::{ResourceWatcher, WatchOptions, WatchedResource};
use memory_store::ReadHandle;
use serde_json::{Value, json};

/// A ConfigMap named `name` nested `depth` levels deep in total (the root object is level 1).
fn deep(name: &str, depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth - 1 {
        v = Value::Array(vec![v]);
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": name}, "data": {"k": "v"}, "spec": v})
}

fn plain(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": name}, "data": {"k": name}})
}

fn names(store: &ReadHandle<CompactObject>) -> Vec<String> {
    let mut v: Vec<String> = store.list().iter().map(|o| o.identity_name().to_owned()).collect();
    v.sort();
    v
}

trait Name {
    fn identity_name(&self) -> &str;
}
impl Name for CompactObject {
    fn identity_name(&self) -> &str {
        self.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default()
    }
}

#[test]
fn too_deep_objects_are_skipped_counted_and_the_rest_is_stored() {
    on_big_stacks(async {
        let sim = ApiServerSim::builder()
            .objects([
                plain("a"),
                deep("too-deep", MAX_DEPTH + 1),
                plain("b"),
                deep("deepest", MAX_DEPTH),
                deep("past-serde-json", 200),
                plain("c"),
            ])
            .start()
            .await
            .unwrap();
        let r: WatchedResource = serde_yaml_ng::from_str(
            "{apiVersion: v1, resources: configmaps, namespaces: [ns], indexBy: [metadata.namespace, metadata.name], ignoreFields: [metadata.managedFields]}",
        )
        .unwrap();
        let w =
            ResourceWatcher::start(sim.client(), r.compile("cm", &[]).unwrap(), WatchOptions::default()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync())
            .await
            .expect("initial sync despite a too-deep object");
        let store = w.store().as_memory().unwrap().clone();
        assert_eq!(names(&store), ["a", "b", "c", "deepest", "past-serde-json"]);
        assert_eq!(w.rejected_objects(), 1);
        // The 10,000-level object is held whole.
        let deepest = store.get(&["ns", "deepest"]).unwrap();
        let want = CompactObject::from_value(&deep("deepest", MAX_DEPTH)).unwrap();
        let held = deepest.iter().next().unwrap();
        assert!(held.pointer("/spec").unwrap() == want.pointer("/spec").unwrap());

        // Watch events: an object that becomes too deep is removed (not kept stale) and
        // counted; one that becomes representable is stored.
        sim.apply(deep("a", MAX_DEPTH + 5)).unwrap();
        sim.apply(plain("too-deep")).unwrap();
        eventually("a removed, too-deep stored", || {
            names(&store) == ["b", "c", "deepest", "past-serde-json", "too-deep"]
        })
        .await;
        assert_eq!(w.rejected_objects(), 2);
        sim.apply(plain("d")).unwrap();
        eventually("the watch goes on", || store.get(&["ns", "d"]).is_ok_and(|o| o.len() == 1)).await;
        store.validate().unwrap();
        w.stop();
        sim.shutdown().await;
    });
}

#[tokio::test]
async fn panicking_callbacks_are_caught_counted_and_the_watcher_goes_on() {
    let sim = ApiServerSim::builder().objects([plain("a")]).start().await.unwrap();
    let changes = Arc::new(AtomicUsize::new(0));
    let seen = changes.clone();
    let options = WatchOptions {
        debounce: Duration::from_millis(5),
        on_sync_complete: Some(Arc::new(|_| panic!("on_sync_complete fails"))),
        on_change: Some(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
            panic!("on_change fails")
        })),
        ..WatchOptions::default()
    };
    let r: WatchedResource = serde_yaml_ng::from_str(
        "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name]}",
    )
    .unwrap();
    let w = ResourceWatcher::start(sim.client(), r.compile("cm", &[]).unwrap(), options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("sync despite the panic");
    assert!(w.is_synced());
    assert_eq!(w.callback_panics(), 1);
    let store = w.store().as_memory().unwrap().clone();
    for i in 0..3 {
        sim.apply(plain(&format!("n{i}"))).unwrap();
        let name = format!("n{i}");
        eventually("the watch goes on after callback panics", || store.get(&["ns", &name]).is_ok_and(|o| o.len() == 1))
            .await;
        eventually("on_change called again", || changes.load(Ordering::Relaxed) > i).await;
    }
    assert!(w.callback_panics() > 3, "{}", w.callback_panics());
    w.stop();
    sim.shutdown().await;
}

/// A ConfigMap whose data holds `bytes` bytes.
fn sized(name: &str, bytes: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": name}, "data": {"blob": "x".repeat(bytes)}})
}

#[tokio::test]
async fn objects_over_max_object_bytes_are_skipped_counted_and_the_rest_of_the_page_is_stored() {
    let sim = ApiServerSim::builder()
        .objects([plain("a"), sized("huge", 5000), plain("b"), sized("fits", 1000), plain("c")])
        .start()
        .await
        .unwrap();
    let yaml =
        "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name], maxObjectBytes: 2048}";
    let r: WatchedResource = serde_yaml_ng::from_str(yaml).unwrap();
    let metrics = kstore_watcher::WatchMetrics::default();
    // One page holds every object.
    let options = WatchOptions { page_size: Some(50), metrics: metrics.clone(), ..WatchOptions::default() };
    let w = ResourceWatcher::start(sim.client(), r.compile("cm", &[]).unwrap(), options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("initial sync despite a huge object");
    let store = w.store().as_memory().unwrap().clone();
    assert_eq!(names(&store), ["a", "b", "c", "fits"]);
    assert_eq!((w.rejected_objects(), w.skipped_identities()), (1, 1));
    let rejected =
        || metrics.rejected_objects.get_or_create(&kstore_watcher::ResourceLabels { resource: "cm".into() }).get();
    assert_eq!(rejected(), 1);

    // Watch events: an object that grows past the bound is removed (never kept stale), one
    // that shrinks under it is stored.
    sim.apply(sized("b", 4000)).unwrap();
    sim.apply(sized("huge", 10)).unwrap();
    eventually("b removed, huge stored", || names(&store) == ["a", "c", "fits", "huge"]).await;
    assert_eq!((w.rejected_objects(), w.skipped_identities(), rejected()), (2, 1, 2));
    store.validate().unwrap();
    w.stop();

    // The default bound (8 MiB) stores them all.
    let r: WatchedResource = serde_yaml_ng::from_str(&yaml.replace(", maxObjectBytes: 2048", "")).unwrap();
    let w = ResourceWatcher::start(sim.client(), r.compile("cm", &[]).unwrap(), WatchOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), w.wait_for_sync()).await.expect("sync");
    assert_eq!(w.store().len(), 5);
    assert_eq!(w.skipped_identities(), 0);
    w.stop();
    sim.shutdown().await;
}
