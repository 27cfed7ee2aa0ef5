//! The bad-input catalogue: every class of bad input gets a named error (or a documented,
//! deterministic treatment), nothing is stored wrongly and nothing panics.

use std::sync::Arc;
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use compact_object::CompactObject;
use kstore_watcher::{ConfigError, ResourceWatcher, WatchConfig, WatchOptions, WatchedResource};
use memory_store::{MemoryStore, ReadHandle};
use serde_json::{Value, json};
use store_types::{KeyTuple, StoreError};

mod common;
use common::eventually;

async fn start(sim: &ApiServerSim, yaml: &str) -> ResourceWatcher {
    let r: WatchedResource = serde_yaml_ng::from_str(yaml).unwrap();
    let w =
        ResourceWatcher::start(sim.client(), r.compile("test", &[]).unwrap(), WatchOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), w.wait_for_sync()).await.expect("initial sync");
    w
}

fn config_map(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": name}, "spec": spec})
}

fn names(store: &ReadHandle<CompactObject>, keys: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = store
        .get(keys)
        .unwrap()
        .iter()
        .map(|o| o.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

fn obj(name: &str) -> Arc<CompactObject> {
    Arc::new(CompactObject::from_value(&json!({"metadata": {"namespace": "ns", "name": name}})).unwrap())
}

#[test]
fn wrong_key_counts_are_named_errors_and_store_nothing() {
    assert!(matches!(MemoryStore::<CompactObject>::new(0), Err(StoreError::NoIndexKeys)));
    let store = MemoryStore::<CompactObject>::new(2).unwrap();
    store.add(obj("a"), KeyTuple::from(["ns", "a"])).unwrap();
    // Too many keys for a get; zero keys; one key too few / many for writes.
    for keys in [&["ns", "a", "x"][..], &[]] {
        let err = store.get(keys).expect_err("wrong get arity");
        assert!(matches!(err, StoreError::KeyCount { got, .. } if got == keys.len()), "{err}");
        assert!(err.to_string().contains("expected"), "{err}");
    }
    for keys in [KeyTuple::from(["ns"]), KeyTuple::from(["ns", "b", "c"])] {
        let err = store.add(obj("b"), keys.clone()).expect_err("wrong add arity");
        assert!(matches!(err, StoreError::KeyCount { .. }), "{err}");
        let err = store.update(obj("b"), keys).expect_err("wrong update arity");
        assert!(matches!(err, StoreError::KeyCount { .. }), "{err}");
    }
    // An object without a name has no identity: a named error, not a ghost entry.
    let nameless = Arc::new(CompactObject::from_value(&json!({"metadata": {"namespace": "ns"}})).unwrap());
    let err = store.add(nameless, KeyTuple::from(["ns", "x"])).expect_err("nameless");
    assert!(matches!(err, StoreError::MissingIdentity { .. }), "{err}");
    assert_eq!(store.len(), 1, "nothing stored by the failed writes");
    assert_eq!(store.get(&["ns"]).unwrap().len(), 1);
    store.validate().unwrap();
}

fn compile_err(yaml: &str) -> ConfigError {
    match WatchConfig::from_yaml(yaml).and_then(|c| c.compile().map(drop)) {
        Err(e) => e,
        Ok(()) => panic!("accepted: {yaml}"),
    }
}

#[test]
fn invalid_expressions_name_the_field_and_the_resource() {
    let cases: &[(&str, &str)] = &[
        ("indexBy: [\"metadata.labels['app\"]", "indexBy[0]"),
        ("indexBy: [metadata.name, \"spec..x\"]", "indexBy[1]"),
        ("indexBy: [metadata.name], ignoreFields: [\"metadata.annotations[\"]", "ignoreFields[0]"),
        ("indexBy: [metadata.name], ignoreFields: [\"spec.items[*]\"]", "ignoreFields pattern"),
        ("indexBy: [\"metadata.labels['a']\"], ignoreFields: [metadata.labels]", "indexBy expression"),
        ("indexBy: [metadata.name], labelSelector: 'a in (b'", "labelSelector"),
        ("indexBy: [metadata.name], labelSelector: '!!a'", "labelSelector"),
        ("indexBy: [metadata.name], fieldSelector: 'spec.type'", "fieldSelector"),
        ("indexBy: [metadata.name], fieldSelector: '=x'", "fieldSelector"),
    ];
    for (fields, field) in cases {
        let yaml = format!("{{watchedResources: {{my-ingresses: {{apiVersion: v1, resources: services, {fields}}}}}}}");
        let err = compile_err(&yaml);
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                ConfigError::Indexer { .. } | ConfigError::LabelSelector { .. } | ConfigError::FieldSelector { .. }
            ),
            "{yaml}: {err:?}"
        );
        assert!(msg.contains("my-ingresses"), "names the resource: {msg}");
        assert!(msg.contains(field), "names {field}: {msg}");
    }
}

#[test]
fn unknown_or_mistyped_config_fields_are_rejected() {
    let cases = [
        // unknown fields, at both levels
        "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], indexby: [a]}}}",
        "{watchedResource: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name]}}}",
        // mistyped values
        "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: metadata.name}}}",
        "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], store: fulll}}}",
        "{watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name], namespaces: 5}}}",
        "{watchedResources: {x: {apiVersion: v1, resources: [services], indexBy: [metadata.name]}}}",
        "{watchedResources: [x]}",
        "watchedResources: {x: {apiVersion: v1, resources: services, indexBy: [metadata.name]}}\n\t- broken",
    ];
    for yaml in cases {
        let err = compile_err(yaml);
        assert!(matches!(err, ConfigError::Parse { .. } | ConfigError::Invalid { .. }), "{yaml}: {err:?}");
        assert!(err.to_string().starts_with("invalid watch configuration") || err.to_string().contains("field"));
    }
    // The parse error says which field.
    let msg = compile_err(cases[0]).to_string();
    assert!(msg.contains("indexby"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_string_index_values_become_key_strings_and_missing_ones_are_counted() {
    let sim = ApiServerSim::builder()
        .objects([
            config_map("int", json!({"v": 80})),
            config_map("float-int", json!({"v": 80.0})),
            config_map("float", json!({"v": 0.5})),
            config_map("bool", json!({"v": true})),
            config_map("map", json!({"v": {"b": 1, "a": "x"}})),
            config_map("array", json!({"v": [1, "x"]})),
            config_map("string", json!({"v": "80"})),
            config_map("missing", json!({"w": 1})),
            config_map("no-spec", Value::Null),
        ])
        .start()
        .await
        .unwrap();
    let w = start(&sim, "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, spec.v]}").await;
    let store = w.store().as_memory().unwrap().clone();
    assert_eq!(names(&store, &["ns", "80"]), ["float-int", "int", "string"], "80, 80.0 and \"80\" share a key");
    assert_eq!(names(&store, &["ns", "0.5"]), ["float"]);
    assert_eq!(names(&store, &["ns", "true"]), ["bool"]);
    assert_eq!(
        names(&store, &["ns", r#"{"a":"x","b":1}"#]).len() + names(&store, &["ns", r#"{"b":1,"a":"x"}"#]).len(),
        1
    );
    assert_eq!(names(&store, &["ns", r#"[1,"x"]"#]), ["array"]);
    // Missing index fields: counted, not stored.
    assert_eq!(store.len(), 7);
    assert!(store.get_by_identity("ns", "missing").is_none());
    assert!(store.get_by_identity("ns", "no-spec").is_none());
    assert_eq!(w.extraction_failures(), 2);
    // The value appears later: stored; it disappears again: removed, counted again.
    sim.apply(config_map("missing", json!({"v": "late"}))).unwrap();
    eventually("stored once the key exists", || store.get(&["ns", "late"]).unwrap().len() == 1).await;
    sim.apply(config_map("missing", json!({"w": 2}))).unwrap();
    eventually("removed when the key goes", || store.get_by_identity("ns", "missing").is_none()).await;
    assert_eq!(w.extraction_failures(), 3);
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_slashes_empty_strings_and_unicode_never_collide() {
    let sim = ApiServerSim::builder()
        .objects([
            config_map("slash-first", json!({"v": "a/b", "w": "c"})),
            config_map("slash-second", json!({"v": "a", "w": "b/c"})),
            config_map("joined", json!({"v": "a/b/c", "w": ""})),
            config_map("empty-both", json!({"v": "", "w": ""})),
            config_map("empty-first", json!({"v": "", "w": "x"})),
            config_map("unicode", json!({"v": "ünïcødé/🙂", "w": "\u{0}nul"})),
            config_map("spaces", json!({"v": " a", "w": "b "})),
        ])
        .start()
        .await
        .unwrap();
    let w = start(&sim, "{apiVersion: v1, resources: configmaps, indexBy: [spec.v, spec.w]}").await;
    let store = w.store().as_memory().unwrap().clone();
    assert_eq!(store.len(), 7);
    assert_eq!(names(&store, &["a/b", "c"]), ["slash-first"]);
    assert_eq!(names(&store, &["a", "b/c"]), ["slash-second"]);
    assert_eq!(names(&store, &["a/b/c", ""]), ["joined"]);
    assert_eq!(names(&store, &["", ""]), ["empty-both"]);
    assert_eq!(names(&store, &["", "x"]), ["empty-first"]);
    assert_eq!(names(&store, &[""]), ["empty-both", "empty-first"], "prefix of the empty key");
    assert_eq!(names(&store, &["a"]), ["slash-second"], "a prefix is a whole element, not a byte prefix");
    assert_eq!(names(&store, &["a/b"]), ["slash-first"]);
    assert_eq!(names(&store, &["ünïcødé/🙂", "\u{0}nul"]), ["unicode"]);
    assert_eq!(names(&store, &[" a", "b "]), ["spaces"]);
    assert!(store.get(&["a", "b"]).unwrap().is_empty());
    assert!(store.get(&["a b", ""]).unwrap().is_empty());
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_object_is_stored_and_read_back() {
    let big: String = (0..10 * 1024 * 1024).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "big"}, "data": {"blob": big}});
    let sim = ApiServerSim::builder().objects([cm]).start().await.unwrap();
    // Larger than a stock API server accepts, so larger than the default `maxObjectBytes`
    // (8 MiB): skipped and counted unless the bound is raised.
    let bounded =
        start(&sim, "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name]}").await;
    assert_eq!((bounded.store().len(), bounded.rejected_objects()), (0, 1));
    bounded.stop();
    let raised = "maxObjectBytes: 16777216";
    let full = start(
        &sim,
        &format!("{{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name], {raised}}}"),
    )
    .await;
    let store = full.store().as_memory().unwrap();
    let got = store.get(&["ns", "big"]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].pointer("/data/blob").and_then(|n| n.as_str()), Some(big.as_str()));
    // The same through an on-demand store: fetched, cached, read back whole.
    let cached = start(
        &sim,
        &format!(
            "{{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name], store: on-demand, {raised}}}"
        ),
    )
    .await;
    let got = cached.store().as_dyn().get(&["ns", "big"]).await.unwrap();
    assert_eq!(got[0].pointer("/data/blob").and_then(|n| n.as_str()).map(str::len), Some(big.len()));
    assert_eq!(got[0].pointer("/data/blob").and_then(|n| n.as_str()), Some(big.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_from_the_api_is_an_error_event_not_a_stored_object() {
    let sim = ApiServerSim::builder().objects([config_map("a", json!({"v": "1"}))]).start().await.unwrap();
    let w = start(&sim, "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, spec.v]}").await;
    let store = w.store().as_memory().unwrap().clone();
    tokio::time::timeout(Duration::from_secs(10), sim.wait_for_watches(1)).await.unwrap();
    for i in 2..5 {
        sim.faults().malformed_event();
        sim.apply(config_map(&format!("m{i}"), json!({"v": i.to_string()}))).unwrap();
    }
    eventually("events after the malformed lines applied", || store.len() == 4).await;
    for i in 2..5 {
        assert_eq!(names(&store, &["ns", &i.to_string()]), [format!("m{i}")]);
    }
    assert!(store.list().iter().all(|o| o.pointer("/metadata/name").is_some()));
    store.validate().unwrap();
}

/// A hand-written API endpoint (apiserver-sim cannot send an unknown event type): a list of one
/// ConfigMap, then a watch stream with an event of an unknown type followed by a valid ADDED.
async fn fake_api_with_unknown_event_type() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cm = |name: &str, rv: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"namespace": "ns", "name": name, "uid": format!("uid-{name}"), "resourceVersion": rv}})
    };
    let list = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"}, "items": [cm("a", "1")]})
        .to_string();
    let events = format!(
        "{}\n{}\n",
        json!({"type": "SURPRISE", "object": cm("surprise", "2")}),
        json!({"type": "ADDED", "object": cm("b", "3")})
    );
    tokio::spawn(async move {
        // Bounded: a handful of connections is all the test needs.
        for _ in 0..16 {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (list, events) = (list.clone(), events.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                if head.lines().next().unwrap_or_default().contains("watch=true") {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{events}"
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                    // Keep the stream open (no reconnect loop) for the rest of the test.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                } else {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
                        list.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_event_of_unknown_type_is_skipped_not_stored() {
    let addr = fake_api_with_unknown_event_type().await;
    let client = kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap())).unwrap();
    let ar = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    let r: WatchedResource = serde_yaml_ng::from_str(
        "{apiVersion: v1, resources: configmaps, indexBy: [metadata.namespace, metadata.name]}",
    )
    .unwrap();
    let options = WatchOptions { api_resource: Some((ar, kube::discovery::Scope::Namespaced)), ..Default::default() };
    let w = ResourceWatcher::start(client, r.compile("configmaps", &[]).unwrap(), options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), w.wait_for_sync()).await.expect("initial sync");
    let store = w.store().as_memory().unwrap().clone();
    eventually("the event after the unknown one applied", || store.len() == 2).await;
    assert_eq!(names(&store, &["ns"]), ["a", "b"], "the unknown event's object is not stored");
    store.validate().unwrap();
    w.stop();
}
