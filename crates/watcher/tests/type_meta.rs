//! A real API server lists built-in kinds without `kind`/`apiVersion` per item, but sends them
//! in watch events and GET responses; kstore restores them, so the same object stored from a
//! list page, from a watch event and from a CachedStore fetch is byte-identical.

use std::time::Duration;

use apiserver_sim::{ApiServerSim, Verb};
use compact_object::CompactObject;
use kstore_watcher::{ResourceWatcher, WatchOptions, WatchedResource};
use serde_json::json;

fn resource(yaml: &str) -> kstore_watcher::ResourceConfig {
    let r: WatchedResource = serde_yaml_ng::from_str(yaml).unwrap();
    r.compile("test", &["metadata.managedFields".to_string()]).unwrap()
}

async fn start(sim: &ApiServerSim, yaml: &str) -> ResourceWatcher {
    let w = ResourceWatcher::start(sim.client(), resource(yaml), WatchOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), w.wait_for_sync()).await.expect("initial sync");
    w
}

fn stored(w: &ResourceWatcher, ns: &str, name: &str) -> Option<std::sync::Arc<CompactObject>> {
    w.store().as_memory().unwrap().get_by_identity(ns, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_watched_and_fetched_objects_are_byte_identical() {
    let sim = ApiServerSim::start().await.unwrap();
    let full = "{apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name]}";
    // Started before the object exists: it arrives in a watch event.
    let watched = start(&sim, full).await;
    sim.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "shop", "name": "web", "labels": {"app": "web"},
                     "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80.0, "targetPort": 8080}]}
    }))
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stored(&watched, "shop", "web").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the watch event never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lists_before = sim.requests().count(Verb::List, "services");
    // Started after: it arrives in a list page, whose items carry no kind/apiVersion.
    let listed = start(&sim, full).await;
    assert!(sim.requests().count(Verb::List, "services") > lists_before, "the second watcher listed");
    // On demand: references from a metadata-only list, the object from a GET.
    let on_demand = start(
        &sim,
        "{apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name], store: on-demand}",
    )
    .await;
    let fetched = on_demand.store().as_dyn().get(&["shop", "web"]).await.unwrap();
    assert_eq!(fetched.len(), 1);

    let from_watch = stored(&watched, "shop", "web").unwrap();
    let from_list = stored(&listed, "shop", "web").unwrap();
    assert_eq!(from_watch.root().get("kind").and_then(|k| k.as_str()), Some("Service"));
    assert_eq!(from_watch.root().get("apiVersion").and_then(|k| k.as_str()), Some("v1"));
    assert!(from_watch.pointer("/metadata/managedFields").is_none());
    assert_eq!(from_list.to_string(), from_watch.to_string());
    assert_eq!(from_list.as_bytes(), from_watch.as_bytes());
    assert_eq!(fetched[0].as_bytes(), from_watch.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_keep_their_own_type_meta() {
    let sim = ApiServerSim::builder()
        .resource(apiserver_sim::ResourceDef::new(
            "example.com",
            "v1",
            "Widget",
            "widgets",
            apiserver_sim::Scope::Namespaced,
        ))
        .object(json!({"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"namespace": "ns", "name": "w"}, "spec": {"size": 3}}))
        .start()
        .await
        .unwrap();
    let w =
        start(&sim, "{apiVersion: example.com/v1, resources: widgets, indexBy: [metadata.namespace, metadata.name]}")
            .await;
    let o = stored(&w, "ns", "w").unwrap();
    assert_eq!(o.root().get("kind").and_then(|k| k.as_str()), Some("Widget"));
    assert_eq!(o.root().get("apiVersion").and_then(|k| k.as_str()), Some("example.com/v1"));
    assert_eq!(o.pointer("/spec/size").and_then(|n| n.as_u64()), Some(3));
}
