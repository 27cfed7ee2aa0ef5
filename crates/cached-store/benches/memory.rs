//! Heap bytes of 10 000 Secrets held three ways, side by side in one run, measured with a
//! counting global allocator:
//!
//! * a `CachedStore` holding references only (fed as from a metadata-only watch),
//! * a `MemoryStore<CompactObject>` holding the Secrets themselves,
//! * a kube-rs `reflector::Store<Secret>` of the same Secrets (and one of their
//!   `PartialObjectMeta`, what a kube-rs metadata-only reflector would hold).
//!
//! Run: `cargo bench -p kstore-cached-store --bench memory`.

#![allow(missing_docs)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kstore_cached_store::{CachedStore, CachedStoreConfig, CompactObject, Reference};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::{reflector, watcher};
use memory_store::MemoryStore;
use serde_json::{Value, json};
use store_types::KeyTuple;

#[global_allocator]
static GLOBAL: heap_meter::CountingAllocator = heap_meter::CountingAllocator;

const N: usize = 10_000;

/// Live heap bytes (requested sizes; allocator overhead is not included).
fn live() -> isize {
    heap_meter::live() as isize
}

/// A typical TLS Secret as the apiserver returns it: a ~1.6 KB certificate and a ~1.7 KB key
/// (base64), labels, an owner-ish annotation, uid and resourceVersion.
fn tls_secret(i: usize) -> Value {
    let cert: String = "MIIEpDCCA4ygAwIBAgIQ".repeat(80);
    let key: String = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(54);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "namespace": format!("team-{:03}", i % 100),
            "name": format!("ingress-tls-{i:05}"),
            "uid": format!("7c9e6679-7425-40de-944b-{:012x}", i),
            "resourceVersion": (1_000_000 + i).to_string(),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app.kubernetes.io/name": "web", "cert-manager.io/certificate-name": format!("web-{i}")},
            "annotations": {"cert-manager.io/issuer-name": "letsencrypt"},
        },
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": cert, "tls.key": key, "ca.crt": ""},
    })
}

fn keys_of(ns: &str, name: &str) -> KeyTuple {
    KeyTuple::new([ns, name])
}

fn report(what: &str, bytes: isize, json_bytes: usize) {
    println!(
        "{what:<58} {:>12} B total {:>9.0} B/object {:>6.2}x JSON",
        bytes,
        bytes as f64 / N as f64,
        bytes as f64 / json_bytes as f64
    );
}

fn main() {
    let values: Vec<Value> = (0..N).map(tls_secret).collect();
    let json_bytes: usize = values.iter().map(|v| serde_json::to_vec(v).unwrap().len()).sum();
    let metas: Vec<(String, String, String, String)> = values
        .iter()
        .map(|v| {
            let m = &v["metadata"];
            let s = |k: &str| m[k].as_str().unwrap().to_owned();
            (s("namespace"), s("name"), s("uid"), s("resourceVersion"))
        })
        .collect();
    let secrets: Vec<Secret> = values.iter().map(|v| serde_json::from_value(v.clone()).unwrap()).collect();
    let poms: Vec<PartialObjectMeta<Secret>> =
        secrets.iter().map(|s| PartialObjectMeta { metadata: s.metadata.clone(), ..Default::default() }).collect();
    println!("{N} TLS Secrets, {:.0} B of compact JSON each", json_bytes as f64 / N as f64);

    // References alone (what the index holds per object, before index overhead).
    let before = live();
    let refs: Vec<Arc<Reference>> = metas
        .iter()
        .map(|(ns, name, uid, rv)| Arc::new(Reference::new(ns, name, Some(uid), Some(rv)).unwrap()))
        .collect();
    let grown = live() - before - (N * size_of::<Arc<Reference>>()) as isize;
    report("Arc<Reference> alone", grown, json_bytes);
    drop(refs);

    // CachedStore: a MemoryStore of references, empty cache.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt
        .block_on(async { kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap() });
    let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2);
    let before = live();
    let cached = CachedStore::new(client, config).unwrap();
    let empty = live() - before;
    let before = live();
    for (ns, name, uid, rv) in &metas {
        cached.apply_reference(Reference::new(ns, name, Some(uid), Some(rv)).unwrap(), keys_of(ns, name)).unwrap();
    }
    report("CachedStore: references + [ns, name] index", live() - before, json_bytes);
    println!("  (empty CachedStore incl. cache shards: {empty} B, not included above)");
    drop(cached);

    // The same references fed by one relist (the watcher's initial list).
    let client = rt
        .block_on(async { kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap() });
    let cached = CachedStore::new(client, CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2)).unwrap();
    let before = live();
    cached
        .replace_references(
            metas
                .iter()
                .map(|(ns, name, uid, rv)| (Reference::new(ns, name, Some(uid), Some(rv)).unwrap(), keys_of(ns, name))),
        )
        .unwrap();
    report("CachedStore: the same, fed by one relist", live() - before, json_bytes);
    drop(cached);

    // The same with a one-key index (no ordered map for prefix lookups).
    let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 1);
    let client = rt
        .block_on(async { kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap() });
    let cached = CachedStore::new(client, config).unwrap();
    let before = live();
    for (ns, name, uid, rv) in &metas {
        cached.apply_reference(Reference::new(ns, name, Some(uid), Some(rv)).unwrap(), KeyTuple::new([name])).unwrap();
    }
    report("CachedStore: references + [name] index", live() - before, json_bytes);
    drop(cached);

    // MemoryStore of the Secrets as compact objects.
    let compact: Vec<Arc<CompactObject>> =
        values.iter().map(|v| Arc::new(CompactObject::from_value(v).unwrap())).collect();
    let before = live();
    let compact_objects: Vec<Arc<CompactObject>> =
        values.iter().map(|v| Arc::new(CompactObject::from_value(v).unwrap())).collect();
    let objects_only = live() - before - (N * size_of::<Arc<CompactObject>>()) as isize;
    let mem = MemoryStore::new(2).unwrap();
    for (o, (ns, name, _, _)) in compact_objects.into_iter().zip(&metas) {
        mem.add(o, keys_of(ns, name)).unwrap();
    }
    report("MemoryStore<CompactObject>: Secrets + [ns, name] index", live() - before, json_bytes);
    report("  of which the CompactObjects", objects_only, json_bytes);
    drop(mem);
    drop(compact);

    // kube-rs reflector of the typed Secrets.
    let before = live();
    let (store, mut writer) = reflector::store::<Secret>();
    for s in &secrets {
        writer.apply_watcher_event(&watcher::Event::Apply(s.clone()));
    }
    report("kube-rs reflector::Store<Secret>", live() - before, json_bytes);
    drop((store, writer));

    // kube-rs reflector of PartialObjectMeta (metadata-only reflector).
    let before = live();
    let (store, mut writer) = reflector::store::<PartialObjectMeta<Secret>>();
    for p in &poms {
        writer.apply_watcher_event(&watcher::Event::Apply(p.clone()));
    }
    report("kube-rs reflector::Store<PartialObjectMeta<Secret>>", live() - before, json_bytes);
    drop((store, writer));
}
