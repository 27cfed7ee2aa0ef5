//! Integration tests: the watcher against apiserver-sim through a real kube::Client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use compact_object::CompactObject;
use kstore_watcher::{ResourceWatcher, WatchOptions, WatchedResource};
use memory_store::ReadHandle;
use serde_json::{Value, json};
use store_types::ChangeStats;

mod common;
use common::eventually;

fn slice(ns: &str, name: &str, service: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": service, "app": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
        "ports": [{"port": 8080.0, "protocol": "TCP"}]
    })
}

fn service(ns: &str, name: &str, ty: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name, "labels": {"app": name}},
        "spec": {"type": ty, "ports": [{"port": 80}]}
    })
}

fn resource(yaml: &str) -> kstore_watcher::ResourceConfig {
    let r: WatchedResource = serde_yaml_ng::from_str(yaml).unwrap();
    r.compile("test", &["metadata.managedFields".to_string()]).unwrap()
}

const SLICES: &str = "{apiVersion: discovery.k8s.io/v1, resources: endpointslices, \
    indexBy: [metadata.namespace, \"metadata.labels['kubernetes.io/service-name']\"]}";

async fn start(sim: &ApiServerSim, yaml: &str, options: WatchOptions) -> ResourceWatcher {
    let w = ResourceWatcher::start(sim.client(), resource(yaml), options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), w.wait_for_sync()).await.expect("initial sync");
    w
}

fn mem(w: &ResourceWatcher) -> &ReadHandle<CompactObject> {
    w.store().as_memory().unwrap()
}

fn names(store: &ReadHandle<CompactObject>, keys: &[&str]) -> Vec<String> {
    store
        .get(keys)
        .unwrap()
        .iter()
        .map(|o| o.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default().to_owned())
        .collect()
}

fn rv_of(store: &ReadHandle<CompactObject>, ns: &str, name: &str) -> Option<String> {
    let o = store.get_by_identity(ns, name)?;
    store_types::KubeObject::resource_version(&*o).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_paged_and_streaming_then_add_modify_delete() {
    let sim = ApiServerSim::builder()
        .objects((0..25).map(|i| slice("default", &format!("web-{i:02}"), "web")))
        .start()
        .await
        .unwrap();
    for streaming in [false, true] {
        let synced = Arc::new(Mutex::new(None));
        let s2 = synced.clone();
        let opts = WatchOptions {
            streaming_lists: streaming,
            page_size: Some(10),
            on_sync_complete: Some(Arc::new(move |n| *s2.lock().unwrap() = Some(n))),
            ..Default::default()
        };
        let w = start(&sim, SLICES, opts).await;
        let store = mem(&w);
        assert_eq!(store.len(), 25, "streaming={streaming}");
        assert_eq!(*synced.lock().unwrap(), Some(25));
        store.validate().unwrap();
        // Field removal happened before storage; numbers were normalised.
        let first = store.get(&["default", "web"]).unwrap()[0].clone();
        assert!(first.pointer("/metadata/managedFields").is_none());
        assert_eq!(first.pointer("/ports/0/port").unwrap().as_i64(), Some(8080));
        w.stop();
    }
    let paged_lists = sim.requests().filter(|r| r.query_param("limit").as_deref() == Some("10")).len();
    assert!(paged_lists >= 3, "the paged sync used several pages ({paged_lists})");
    assert!(!sim.requests().filter(|r| r.query_param("sendInitialEvents").as_deref() == Some("true")).is_empty());

    let w = start(&sim, SLICES, WatchOptions::default()).await;
    let store = mem(&w).clone();
    sim.create(slice("other", "db-0", "db")).unwrap();
    eventually("created", || store.len() == 26).await;
    let mut changed = slice("other", "db-0", "db");
    changed["endpoints"] = json!([{"addresses": ["10.0.0.2"]}]);
    let after = sim.apply(changed).unwrap();
    let rv = after["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    eventually("modified", || rv_of(&store, "other", "db-0").as_deref() == Some(rv.as_str())).await;
    sim.delete("endpointslices", Some("other"), "db-0").unwrap();
    eventually("deleted", || store.len() == 25).await;
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_change_moves_and_deleting_one_slice_keeps_siblings() {
    let sim = ApiServerSim::builder()
        .objects(["a", "b", "c"].map(|n| slice("default", &format!("web-{n}"), "web")))
        .start()
        .await
        .unwrap();
    let w = start(&sim, SLICES, WatchOptions::default()).await;
    let store = mem(&w).clone();
    assert_eq!(names(&store, &["default", "web"]), ["web-a", "web-b", "web-c"]);

    sim.delete("endpointslices", Some("default"), "web-b").unwrap();
    eventually("one slice deleted", || store.len() == 2).await;
    assert_eq!(names(&store, &["default", "web"]), ["web-a", "web-c"], "siblings stay");

    sim.apply(slice("default", "web-c", "api")).unwrap();
    eventually("moved", || names(&store, &["default", "api"]) == ["web-c"]).await;
    assert_eq!(names(&store, &["default", "web"]), ["web-a"], "no stale copy under the old key");
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_410_relist_removes_ghosts() {
    let sim = ApiServerSim::builder()
        .objects((0..5).map(|i| slice("default", &format!("s{i}"), "web")))
        .start()
        .await
        .unwrap();
    let w = start(&sim, SLICES, WatchOptions::default()).await;
    let store = mem(&w).clone();
    sim.wait_for_watches(1).await;
    // While events are held back: delete two objects, add one, and compact the event log so
    // the watcher's resume point is gone.
    sim.faults().pause_events();
    sim.delete("endpointslices", Some("default"), "s1").unwrap();
    sim.delete("endpointslices", Some("default"), "s3").unwrap();
    sim.create(slice("default", "s9", "web")).unwrap();
    sim.faults().compact();
    let lists_before =
        sim.requests().filter(|r| r.query_param("watch").is_none() && r.path.ends_with("/endpointslices")).len();
    sim.faults().end_watches();
    sim.faults().resume_events();
    eventually("relisted without ghosts", || names(&store, &["default"]) == ["s0", "s2", "s4", "s9"]).await;
    let lists_after =
        sim.requests().filter(|r| r.query_param("watch").is_none() && r.path.ends_with("/endpointslices")).len();
    assert!(lists_after > lists_before, "a relist was served");
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selector_transitions_namespaces_and_label_selectors() {
    let sim = ApiServerSim::builder()
        .objects([
            service("a", "web", "ClusterIP"),
            service("a", "db", "NodePort"),
            service("b", "web", "ClusterIP"),
            service("c", "web", "ClusterIP"),
        ])
        .start()
        .await
        .unwrap();
    // Client-side field selector on a non-metadata field.
    let w = start(
        &sim,
        "{apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name], fieldSelector: spec.type=ClusterIP}",
        WatchOptions::default(),
    )
    .await;
    let store = mem(&w).clone();
    assert_eq!(store.len(), 3);
    sim.apply(service("a", "web", "NodePort")).unwrap();
    eventually("no longer matching → deleted", || store.get(&["a", "web"]).unwrap().is_empty()).await;
    sim.apply(service("a", "db", "ClusterIP")).unwrap();
    eventually("now matching → added", || store.get(&["a", "db"]).unwrap().len() == 1).await;
    w.stop();

    // Namespace restriction: two namespaces, one watch each.
    let w = start(
        &sim,
        "{apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name], namespaces: [a, b]}",
        WatchOptions::default(),
    )
    .await;
    let store = mem(&w).clone();
    assert_eq!(
        store.list().iter().filter(|o| o.pointer("/metadata/namespace").unwrap().as_str() == Some("c")).count(),
        0
    );
    assert_eq!(store.len(), 3);
    sim.create(service("c", "other", "ClusterIP")).unwrap();
    sim.create(service("b", "other", "ClusterIP")).unwrap();
    eventually("b/other arrives", || store.len() == 4).await;
    assert!(store.get(&["c"]).unwrap().is_empty());
    w.stop();

    // Set-based label selector, evaluated by the server.
    let w = start(
        &sim,
        "{apiVersion: v1, resources: services, indexBy: [metadata.name], labelSelector: 'app in (db, other),app notin (web)'}",
        WatchOptions::default(),
    )
    .await;
    let store = mem(&w).clone();
    assert_eq!(names(&store, &["db"]), ["db"]);
    assert_eq!(store.len(), 3, "a/db, b/other, c/other");
    assert!(store.get(&["web"]).unwrap().is_empty());
    let watches: Vec<_> = sim.requests().filter(|r| r.query_param("labelSelector").is_some());
    assert!(!watches.is_empty(), "the selector went to the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extraction_failures_are_counted_not_stored() {
    let sim = ApiServerSim::builder().objects([service("a", "web", "ClusterIP")]).start().await.unwrap();
    let w = start(
        &sim,
        "{apiVersion: v1, resources: services, indexBy: [metadata.namespace, \"metadata.labels['tier']\"]}",
        WatchOptions::default(),
    )
    .await;
    assert_eq!(w.store().len(), 0, "no tier label: not stored");
    assert_eq!(w.extraction_failures(), 1);
    let mut with_tier = service("a", "web", "ClusterIP");
    with_tier["metadata"]["labels"]["tier"] = json!("front");
    sim.apply(with_tier).unwrap();
    let store = mem(&w).clone();
    eventually("stored once the key exists", || store.get(&["a", "front"]).unwrap().len() == 1).await;
    // The label goes away again: the object leaves the store rather than staying stale.
    sim.apply(service("a", "web", "ClusterIP")).unwrap();
    eventually("removed", || store.is_empty()).await;
    assert_eq!(w.extraction_failures(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_notifications_are_debounced_and_skip_initial_sync() {
    let sim = ApiServerSim::builder()
        .objects((0..3).map(|i| slice("default", &format!("s{i}"), "web")))
        .start()
        .await
        .unwrap();
    let calls: Arc<Mutex<Vec<ChangeStats>>> = Arc::default();
    let c2 = calls.clone();
    let opts = WatchOptions {
        debounce: Duration::from_millis(300),
        on_change: Some(Arc::new(move |s| c2.lock().unwrap().push(s))),
        ..Default::default()
    };
    let w = start(&sim, SLICES, opts).await;
    let store = mem(&w).clone();
    assert!(calls.lock().unwrap().is_empty(), "initial sync is not notified by default");
    for i in 10..15 {
        sim.create(slice("default", &format!("s{i}"), "web")).unwrap();
    }
    eventually("all applied", || store.len() == 8).await;
    eventually("trailing notification", || calls.lock().unwrap().iter().map(|s| s.created).sum::<u64>() == 5).await;
    let c = calls.lock().unwrap().clone();
    assert!(c.len() <= 3, "debounced into a few notifications: {c:?}");
    assert!(c.iter().all(|s| !s.is_empty() && !s.is_initial_sync));
    w.stop();
    w.stop();
}

fn secret(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": ns, "name": name}, "type": "Opaque", "data": {"password": value}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_object_watcher_reports_every_secret_change_once() {
    let sim = ApiServerSim::builder()
        .objects([secret("ops", "creds", "YQ=="), secret("ops", "other", "Yg==")])
        .start()
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let s2 = seen.clone();
    let record: kstore_watcher::ObjectCallback = Arc::new(move |o: Option<Arc<CompactObject>>| {
        s2.lock().unwrap().push(o.map(|o| o.pointer("/data/password").unwrap().as_str().unwrap().to_owned()))
    });
    let ar = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
    let w = kstore_watcher::ObjectWatcher::start(
        sim.client(),
        &ar,
        kube::discovery::Scope::Namespaced,
        Some("ops"),
        "creds",
        kstore_watcher::ObjectWatchOptions { on_sync_complete: Some(record.clone()), on_change: Some(record) },
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(20), w.wait_for_sync()).await.unwrap();
    assert_eq!(w.current().unwrap().pointer("/data/password").unwrap().as_str(), Some("YQ=="));
    sim.apply(secret("ops", "creds", "Yw==")).unwrap();
    sim.apply(secret("ops", "other", "ZA==")).unwrap(); // another object: not reported
    sim.apply(secret("ops", "creds", "ZQ==")).unwrap();
    eventually("two updates seen", || seen.lock().unwrap().len() == 3).await;
    // A reconnect re-lists the same version: not a change.
    sim.faults().end_watches();
    sim.delete("secrets", Some("ops"), "creds").unwrap();
    eventually("deletion seen", || seen.lock().unwrap().len() == 4).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [Some("YQ==".to_string()), Some("Yw==".to_string()), Some("ZQ==".to_string()), None]
    );
    assert!(w.current().is_none());
    assert!(!format!("{w:?}").contains("ZQ=="), "Debug never shows Secret data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_set_snapshot_is_consistent_while_writes_continue() {
    let sim = ApiServerSim::builder()
        .objects([
            service("default", "web", "ClusterIP"),
            slice("default", "web-1", "web"),
            slice("default", "web-2", "web"),
        ])
        .start()
        .await
        .unwrap();
    let config = kstore_watcher::WatchConfig::from_yaml(
        r#"
ignoreFields: [metadata.managedFields]
watchedResources:
  services: {apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name]}
  endpoints:
    apiVersion: discovery.k8s.io/v1
    resources: endpointslices
    indexBy: [metadata.namespace, "metadata.labels['kubernetes.io/service-name']"]
"#,
    )
    .unwrap();
    let set =
        kstore_watcher::ResourceSet::start(sim.client(), &config, kstore_watcher::SetOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), set.wait_for_sync()).await.unwrap();
    assert!(set.is_synced());
    let view = set.snapshot();
    assert!(matches!(
        view.get_single("services", &["default", "web"]).await.unwrap(),
        kstore_watcher::Single::Found(_)
    ));
    assert!(matches!(
        view.get_single("endpoints", &["default", "web"]).await.unwrap(),
        kstore_watcher::Single::Ambiguous(2)
    ));
    assert!(matches!(
        view.get_single("services", &["default", "nope"]).await.unwrap(),
        kstore_watcher::Single::NotFound
    ));
    assert!(matches!(view.list("secrets").await, Err(kstore_watcher::LookupError::UnknownResource { .. })));
    assert!(matches!(view.fetch("services", &["a", "b", "c"]).await, Err(kstore_watcher::LookupError::Store { .. })));

    for i in 0..20 {
        sim.create(slice("default", &format!("web-x{i}"), "web")).unwrap();
        sim.create(service("default", &format!("svc-{i}"), "ClusterIP")).unwrap();
    }
    let endpoints = set.watcher("endpoints").unwrap().store().clone();
    eventually("writes applied", || endpoints.len() == 22).await;
    // The old view never changed under the reader…
    assert_eq!(view.len("endpoints").unwrap(), 2);
    assert_eq!(view.len("services").unwrap(), 1);
    assert_eq!(view.fetch("endpoints", &["default"]).await.unwrap().len(), 2);
    // …and a new one sees everything.
    let services = set.watcher("services").unwrap().store().clone();
    eventually("services applied", || services.len() == 21).await;
    let now = set.snapshot();
    assert_eq!(now.list("endpoints").await.unwrap().len(), 22);
    assert_eq!(now.resources().collect::<Vec<_>>(), ["endpoints", "services"]);
    set.stop();
    set.stop();
}

#[tokio::test]
async fn invalid_configuration_starts_nothing() {
    let bad = [
        ("{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: []}}}", "indexBy"),
        (
            "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [\"metadata.labels['x\"]}}}",
            "unclosed",
        ),
        (
            "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], labelSelector: 'a in (b'}}}",
            "labelSelector",
        ),
        (
            "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], namespaceSelector: {}}}}",
            "namespaceSelector",
        ),
        (
            "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], cacheTTL: 10}}}",
            "duration",
        ),
        (
            "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], cacheTTL: 1m}}}",
            "cacheTTL",
        ),
        (
            "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], namespace: a, namespaces: [b]}}}",
            "namespaces",
        ),
        ("{watchedResources: {x: {apiVersion: a/b/c, resources: services, indexBy: [metadata.name]}}}", "apiVersion"),
        (
            "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], ignoreFields: [metadata.name]}}}",
            "metadata.name",
        ),
    ];
    for (yaml, expected) in bad {
        let err = kstore_watcher::WatchConfig::from_yaml(yaml).and_then(|c| c.compile().map(drop));
        let msg = err.expect_err(yaml).to_string();
        assert!(msg.contains(expected), "{yaml}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_secrets_use_a_metadata_watch_and_fetch_when_read() {
    let sim = ApiServerSim::builder()
        .objects([secret("a", "one", "MQ=="), secret("a", "two", "Mg=="), secret("b", "three", "Mw==")])
        .start()
        .await
        .unwrap();
    let w = start(
        &sim,
        "{apiVersion: v1, resources: secrets, indexBy: [metadata.namespace, metadata.name], store: on-demand, cacheTTL: 1m}",
        WatchOptions::default(),
    )
    .await;
    let cached = w.store().as_cached().unwrap().clone();
    assert_eq!(w.store().len(), 3);
    let store = w.store().as_dyn();
    let got = store.get(&["a", "two"]).await.unwrap();
    assert_eq!(got[0].pointer("/data/password").unwrap().as_str(), Some("Mg=="));
    assert_eq!(store.get(&["a"]).await.unwrap().len(), 2);

    sim.apply(secret("a", "two", "MjI=")).unwrap();
    eventually("new version referenced", || {
        cached.get_references(&["a", "two"]).unwrap()[0].resource_version()
            != got[0].pointer("/metadata/resourceVersion").unwrap().as_str()
    })
    .await;
    let fresh = store.get(&["a", "two"]).await.unwrap();
    assert_eq!(fresh[0].pointer("/data/password").unwrap().as_str(), Some("MjI="), "never stale after a watch event");
    sim.delete("secrets", Some("b"), "three").unwrap();
    eventually("reference removed", || cached.references().len() == 2).await;
    assert!(store.get(&["b", "three"]).await.unwrap().is_empty());

    // Bodies were never listed or watched: every list/watch of secrets was metadata-only.
    let full_lists: Vec<_> =
        sim.requests().filter(|r| r.resource.as_deref() == Some("secrets") && r.name.is_none() && !r.metadata_only);
    assert!(full_lists.is_empty(), "full Secret lists/watches served: {full_lists:?}");
    assert!(cached.cache_stats().fetches >= 2);
}

/// A Service as `kubectl apply` leaves it, with ports written as floats (`80.0`), as some
/// clients send them.
fn applied_service(ns: &str, name: &str, port: f64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "namespace": ns, "name": name, "labels": {"app": name},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Service\"}", "team": "shop"},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"type": "ClusterIP", "ports": [{"port": port, "targetPort": 8080.0}], "weight": 0.25}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_fetched_on_demand_are_byte_for_byte_the_objects_a_watch_stores() {
    let sim = ApiServerSim::builder()
        .objects([applied_service("a", "web", 80.0), applied_service("a", "api", 443.0)])
        .start()
        .await
        .unwrap();
    const IGNORE: &str = "ignoreFields: [\"metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']\"]";
    let full = start(
        &sim,
        &format!("{{apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name], {IGNORE}}}"),
        WatchOptions::default(),
    )
    .await;
    // Fed by a metadata-only watch: every object comes from a fetch.
    let fetched = start(
        &sim,
        &format!(
            "{{apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name], store: on-demand, {IGNORE}}}"
        ),
        WatchOptions::default(),
    )
    .await;
    // Fed by a full watch (an index reads the spec): fetched objects, and cached ones replaced
    // by the watch's version when the object changes.
    let mixed = start(
        &sim,
        &format!("{{apiVersion: v1, resources: services, indexBy: [metadata.namespace, spec.type], store: on-demand, {IGNORE}}}"),
        WatchOptions::default(),
    )
    .await;
    let watched = |name: &str| mem(&full).get_by_identity("a", name).unwrap();
    for name in ["web", "api"] {
        let got = fetched.store().as_dyn().get(&["a", name]).await.unwrap();
        assert_eq!(got[0].as_bytes(), watched(name).as_bytes(), "{name}: {} vs {}", got[0], watched(name));
    }
    let web = watched("web");
    assert!(web.pointer("/metadata/managedFields").is_none());
    assert!(web.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration").is_none());
    assert_eq!(web.pointer("/spec/ports/0/targetPort").and_then(|n| n.as_u64()), Some(8080));
    assert_eq!(web.pointer("/spec/weight").and_then(|n| n.as_f64()), Some(0.25));

    let mixed_store = mixed.store().as_dyn();
    let by_fetch = mixed_store.get(&["a", "ClusterIP"]).await.unwrap();
    assert_eq!(by_fetch.len(), 2);
    for o in by_fetch.iter() {
        let name = o.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap();
        assert_eq!(o.as_bytes(), watched(name).as_bytes(), "{name}");
    }
    // A change: the full watch hands its (prepared) object to the cache in place of the fetched one.
    let fetches = mixed.store().as_cached().unwrap().cache_stats().fetches;
    sim.apply(applied_service("a", "web", 8080.0)).unwrap();
    eventually("the memory store has the new version", || {
        watched("web").pointer("/spec/ports/0/port").and_then(|n| n.as_u64()) == Some(8080)
    })
    .await;
    eventually("the cache has the watch's version", || mixed.store().as_cached().unwrap().cache_stats().refreshes >= 1)
        .await;
    let after = mixed_store.get(&["a", "ClusterIP"]).await.unwrap();
    let web_after = after.iter().find(|o| o.pointer("/metadata/name").and_then(|n| n.as_str()) == Some("web")).unwrap();
    assert_eq!(web_after.as_bytes(), watched("web").as_bytes());
    assert_eq!(mixed.store().as_cached().unwrap().cache_stats().fetches, fetches, "served from the watch, not fetched");
    let new_version = store_types::KubeObject::resource_version(&*watched("web")).map(str::to_owned);
    let fetched_refs = fetched.store().as_cached().unwrap().clone();
    eventually("the metadata feed has the new version", || {
        fetched_refs.get_references(&["a", "web"]).unwrap()[0].resource_version() == new_version.as_deref()
    })
    .await;
    let refetched = fetched.store().as_dyn().get(&["a", "web"]).await.unwrap();
    assert_eq!(refetched[0].as_bytes(), watched("web").as_bytes());
}
