//! Key interning happens after pruning: a full watch whose `ignoreFields` remove
//! `metadata.managedFields` never puts a managedFields key into compact-object's process-wide
//! key table, even when every object carries keys of its own there (`k:{"uid":"…"}`), as
//! objects owned by controllers do on a real cluster.
//!
//! One test in this file on purpose: the key table is per process, and the assertions count
//! what it holds.

use std::time::Duration;

use apiserver_sim::ApiServerSim;
use compact_object::{CompactResource, interner_stats};
use kstore_watcher::{ResourceWatcher, WatchOptions, WatchedResource};
use serde_json::{Value, json};

const OBJECTS: usize = 20_000;

/// A ConfigMap whose managedFields name its owner by uid: one key no other object has.
fn config_map(i: usize) -> Value {
    let owner = format!("k:{{\"uid\":\"6f0e5a4c-0000-4000-8000-{i:012}\"}}");
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "namespace": format!("ns-{}", i % 10), "name": format!("cm-{i}"),
            "labels": {"app": "web"},
            "managedFields": [{
                "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:config": {}}, "f:metadata": {"f:ownerReferences": {".": {}, owner: {}}}}
            }]
        },
        "data": {"config": format!("value {i}")}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_keys_never_enter_the_key_table() {
    let sim = ApiServerSim::builder().objects((0..OBJECTS).map(config_map)).start().await.unwrap();
    let r: WatchedResource = serde_yaml_ng::from_str(
        "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name], ignoreFields: [metadata.managedFields]}",
    )
    .unwrap();
    let before = interner_stats().keys;
    let w = ResourceWatcher::start(sim.client(), r.compile("cm", &[]).unwrap(), WatchOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), w.wait_for_sync()).await.expect("initial sync");
    let store = w.store().as_memory().unwrap().clone();
    assert_eq!(store.len(), OBJECTS);
    let held = store.get(&["ns-3", "cm-3"]).unwrap();
    let held = held.iter().next().unwrap();
    assert!(held.pointer("/metadata/managedFields").is_none());
    assert_eq!(held.pointer("/data/config").and_then(|v| v.as_str()), Some("value 3"));

    // Watch events too: 100 more objects, each with an owner key never seen before.
    for i in OBJECTS..OBJECTS + 100 {
        sim.create(config_map(i)).unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.len() < OBJECTS + 100 {
        assert!(tokio::time::Instant::now() < deadline, "watch events stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let added = interner_stats().keys - before;
    // The kept keys of these objects are few and mostly pre-seeded; the managedFields keys
    // would be 20,100 (owner keys) plus their siblings, and fill the table (`MAX_KEYS`).
    assert!(added < 50, "{added} keys interned by the watch");

    // The same objects decoded outside the watcher's scope do intern their owner keys: the
    // assertion above can fail.
    let text = serde_json::to_string(&config_map(OBJECTS + 100)).unwrap();
    let whole: CompactResource = serde_json::from_str(&text).unwrap();
    assert!(whole.object().pointer("/metadata/managedFields").is_some());
    assert!(interner_stats().keys > before + added, "an unpruned decode interns the new owner key");
    w.stop();
    sim.shutdown().await;
}
