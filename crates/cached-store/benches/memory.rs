//! Heap bytes of 10 000 TLS Secrets as `kubectl apply` leaves them (with `managedFields` and
//! the last-applied annotation, which holds a copy of the Secret's data), held the ways a
//! controller can hold them, side by side in one run, measured with heap-meter's counting
//! allocator:
//!
//! * kstore's `CachedStore` holding references only (fed as from a metadata-only watch);
//! * kstore's `MemoryStore<CompactObject>` holding the Secrets, prepared as the watcher
//!   prepares them (`ignoreFields`: `managedFields`, the last-applied annotation);
//! * the naive kube-rs user: a `reflector::Store<Secret>` of every Secret as delivered;
//! * the careful kube-rs user of full objects: the same reflector with `.modify()` removing the
//!   same two fields;
//! * a kube-rs metadata reflector as delivered (`metadata_watcher`, no `.modify()`): it keeps
//!   the last-applied annotation, so it holds every Secret's data after all;
//! * **the careful kube-rs user of Secrets**: `metadata_watcher` with `.modify()` removing
//!   those fields into a reflector, and `Api::get` when a Secret is read (nothing kept).
//!
//! The kube-rs rows run the real reflector (`reflector::reflector` over a stream of watcher
//! events, `.modify()` from `WatchStreamExt`) on events built in memory.
//!
//! Run: `cargo bench -p kstore-cached-store --bench memory`.

#![allow(missing_docs)]

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kstore_cached_store::{CachedStore, CachedStoreConfig, CompactObject, LAST_APPLIED_ANNOTATION, Reference};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, reflector, watcher};
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

/// A typical TLS Secret as the apiserver returns it after `kubectl apply`: a ~1.6 KB
/// certificate and a ~1.7 KB key (base64), labels, an annotation, uid and resourceVersion, the
/// last-applied annotation (the applied manifest, data included, as kubectl writes it) and
/// the `managedFields` entry of kubectl's client-side apply.
fn tls_secret(i: usize) -> Value {
    let cert: String = "MIIEpDCCA4ygAwIBAgIQ".repeat(80);
    let key: String = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(54);
    let (ns, name) = (format!("team-{:03}", i % 100), format!("ingress-tls-{i:05}"));
    let labels = json!({"app.kubernetes.io/name": "web", "cert-manager.io/certificate-name": format!("web-{i}")});
    let data = json!({"tls.crt": cert, "tls.key": key, "ca.crt": ""});
    let manifest = json!({"apiVersion": "v1", "data": data, "kind": "Secret",
        "metadata": {"annotations": {"cert-manager.io/issuer-name": "letsencrypt"}, "labels": labels,
            "name": name, "namespace": ns}, "type": "kubernetes.io/tls"});
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "namespace": ns,
            "name": name,
            "uid": format!("7c9e6679-7425-40de-944b-{:012x}", i),
            "resourceVersion": (1_000_000 + i).to_string(),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": labels,
            "annotations": {
                "cert-manager.io/issuer-name": "letsencrypt",
                LAST_APPLIED_ANNOTATION: format!("{}\n", serde_json::to_string(&manifest).unwrap()),
            },
            "managedFields": [{
                "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:ca.crt": {}, "f:tls.crt": {}, "f:tls.key": {}},
                    "f:metadata": {"f:annotations": {".": {}, "f:cert-manager.io/issuer-name": {},
                        "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                        "f:labels": {".": {}, "f:app.kubernetes.io/name": {}, "f:cert-manager.io/certificate-name": {}}},
                    "f:type": {}},
            }],
        },
        "type": "kubernetes.io/tls",
        "data": data,
    })
}

/// What a careful kube-rs user's `.modify()` removes: the same fields kstore's `ignoreFields`
/// removes in the watcher's configuration.
fn strip(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = &mut meta.annotations {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// Heap held by a kube-rs reflector store after the real reflector consumed `events` (through
/// `modify` when given).
fn reflected<K>(rt: &tokio::runtime::Runtime, objects: &[K], modify: Option<fn(&mut K)>) -> (isize, reflector::Store<K>)
where
    K: kube::Resource + Clone + std::fmt::Debug + Send + Sync + serde::de::DeserializeOwned + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    // Measured from before the events exist: the objects they carry are what the store keeps.
    let before = live();
    let events: Vec<Result<watcher::Event<K>, watcher::Error>> = std::iter::once(Ok(watcher::Event::Init))
        .chain(objects.iter().cloned().map(|o| Ok(watcher::Event::InitApply(o))))
        .chain(std::iter::once(Ok(watcher::Event::InitDone)))
        .collect();
    let (store, writer) = reflector::store::<K>();
    let stream = futures::stream::iter(events);
    match modify {
        Some(f) => rt.block_on(reflector::reflector(writer, stream.modify(f)).for_each(|_| async {})),
        None => rt.block_on(reflector::reflector(writer, stream).for_each(|_| async {})),
    }
    (live() - before, store)
}

fn keys_of(ns: &str, name: &str) -> KeyTuple {
    KeyTuple::new([ns, name])
}

fn report(what: &str, bytes: isize, json_bytes: usize) {
    println!(
        "{what:<74} {:>12} B total {:>9.0} B/object {:>6.2}x JSON",
        bytes,
        bytes as f64 / N as f64,
        bytes as f64 / json_bytes as f64
    );
}

fn report_vs(what: &str, bytes: isize, json_bytes: usize, cached: isize) {
    report(what, bytes, json_bytes);
    println!("{:<74} {:>8.1}x the CachedStore", "", bytes as f64 / cached as f64);
}

fn main() {
    assert!(heap_meter::installed());
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
    println!(
        "{N} TLS Secrets as kubectl apply leaves them, {:.0} B of compact JSON each",
        json_bytes as f64 / N as f64
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = || {
        rt.block_on(async { kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap() })
    };

    // References alone (what the index holds per object, before index overhead).
    let before = live();
    let refs: Vec<Arc<Reference>> = metas
        .iter()
        .map(|(ns, name, uid, rv)| Arc::new(Reference::new(ns, name, Some(uid), Some(rv)).unwrap()))
        .collect();
    let grown = live() - before - (N * size_of::<Arc<Reference>>()) as isize;
    report("Arc<Reference> alone", grown, json_bytes);
    drop(refs);

    // kstore: CachedStore, a MemoryStore of references, empty cache.
    let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2);
    let before = live();
    let store = CachedStore::new(client(), config).unwrap();
    let empty = live() - before;
    let before = live();
    for (ns, name, uid, rv) in &metas {
        store.apply_reference(Reference::new(ns, name, Some(uid), Some(rv)).unwrap(), keys_of(ns, name)).unwrap();
    }
    let cached = live() - before;
    report("kstore CachedStore: references + [ns, name] index", cached, json_bytes);
    println!("  (empty CachedStore incl. cache shards: {empty} B, not included above)");
    drop(store);

    // The same references fed by one relist (the watcher's initial list).
    let store = CachedStore::new(client(), CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2)).unwrap();
    let before = live();
    store
        .replace_references(
            metas
                .iter()
                .map(|(ns, name, uid, rv)| (Reference::new(ns, name, Some(uid), Some(rv)).unwrap(), keys_of(ns, name))),
        )
        .unwrap();
    report("kstore CachedStore: the same, fed by one relist", live() - before, json_bytes);
    drop(store);

    // The same with a one-key index (the MemoryStore's general layout).
    let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 1);
    let store = CachedStore::new(client(), config).unwrap();
    let before = live();
    for (ns, name, uid, rv) in &metas {
        store.apply_reference(Reference::new(ns, name, Some(uid), Some(rv)).unwrap(), KeyTuple::new([name])).unwrap();
    }
    report("kstore CachedStore: references + [name] index", live() - before, json_bytes);
    drop(store);

    // kstore: MemoryStore of the Secrets, prepared as the watcher prepares them.
    let indexer = indexer::Indexer::new(
        ["metadata.namespace", "metadata.name"],
        ["metadata.managedFields", "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"],
    )
    .unwrap();
    let texts: Vec<String> = values.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
    let before = live();
    let mem = MemoryStore::new(2).unwrap();
    for (text, (ns, name, _, _)) in texts.iter().zip(&metas) {
        let object: Arc<CompactObject> = Arc::new(indexer.decode_compact(text).unwrap());
        mem.add(object, keys_of(ns, name)).unwrap();
    }
    report_vs("kstore MemoryStore<CompactObject>, ignoreFields as the watcher", live() - before, json_bytes, cached);
    drop(mem);
    drop(texts);

    // kube-rs, full Secrets: as delivered (naive) and with `.modify()` (careful).
    let (bytes, store) = reflected(&rt, &secrets, None);
    report_vs("kube-rs reflector<Secret>, as delivered (naive)", bytes, json_bytes, cached);
    drop(store);
    let (bytes, store) = reflected(&rt, &secrets, Some(|s: &mut Secret| strip(&mut s.metadata)));
    report_vs("kube-rs reflector<Secret> + .modify() (careful, full objects)", bytes, json_bytes, cached);
    drop(store);

    // kube-rs, metadata only: as delivered, and the careful Secrets user's
    // metadata_watcher + .modify() (+ Api::get per read, which keeps nothing).
    let (bytes, store) = reflected(&rt, &poms, None);
    report_vs("kube-rs metadata_watcher reflector, as delivered (holds the data)", bytes, json_bytes, cached);
    drop(store);
    let (bytes, store) = reflected(&rt, &poms, Some(|p: &mut PartialObjectMeta<Secret>| strip(&mut p.metadata)));
    report_vs("kube-rs metadata_watcher + .modify() + Api::get (careful, Secrets)", bytes, json_bytes, cached);
    drop(store);
}
