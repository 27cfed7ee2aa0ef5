//! CachedStore lookups side by side with their baselines, in one run:
//!
//! * `hit`: an exact get of one cached Secret through the `Store` trait, against
//!   `MemoryStore::get` of the same Secret (inherent and through the `Store` trait);
//! * `miss`: a get whose object is not cached (one GET to apiserver-sim, compact encoding,
//!   cache fill), against a plain `kube::Api::get` of the same Secret, both as `DynamicObject`
//!   and as typed `Secret`; with and without the preparation step the watcher configures
//!   (the indexer's `ignoreFields` and number normalisation);
//! * `miss (applied Secret)`: the same on a TLS Secret as `kubectl apply` leaves it
//!   (apiserver-sim's generator: `managedFields` and a last-applied annotation holding a copy of
//!   the object), where the preparation removes about half of the object;
//! * `miss decode`: the CPU part of a miss alone, on the response text of both Secrets: the
//!   fetch's decode pruned while parsing (`Indexer::decode_compact`), the normalised decode
//!   then `prepare_compact` it replaced, the older path (parse into a `serde_json::Value`,
//!   `Indexer::prepare`, `CompactObject::from_value`, reproduced here), and the `DynamicObject`
//!   decode `Api::get` does.
//!
//! The main CachedStore runs its sweeper on a multi-thread runtime, as the watcher does: lookups
//! then read the sweeper's clock tick. The variants without a sweeper read the clock on every
//! lookup. Every fetch runs under its own timer (the fetch timeout) and takes a permit of the
//! store-wide fetch semaphore.
//!
//! Run: `cargo bench -p kstore-cached-store --bench cached`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use apiserver_sim::generate::{Cluster, Kind};
use criterion::{Criterion, criterion_group, criterion_main};
use indexer::Indexer;
use k8s_openapi::api::core::v1::Secret;
use kstore_cached_store::{CachedStore, CachedStoreConfig, CompactObject, Reference};
use kube::Api;
use kube::core::{ApiResource, DynamicObject};
use memory_store::MemoryStore;
use serde_json::{Value, json};
use store_types::{KeyTuple, Store};

const N: usize = 1000;

fn tls_secret(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "namespace": format!("team-{:02}", i % 10),
            "name": format!("ingress-tls-{i:04}"),
            "labels": {"app.kubernetes.io/name": "web"},
        },
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": "MIIEpDCCA4ygAwIBAgIQ".repeat(80),
            "tls.key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(54),
        },
    })
}

fn key_of(v: &Value) -> (String, String) {
    let m = &v["metadata"];
    (m["namespace"].as_str().unwrap().to_owned(), m["name"].as_str().unwrap().to_owned())
}

/// The watcher's compiled configuration for these Secrets: keys `[namespace, name]`, and the
/// `ignoreFields` a kstore configuration typically sets.
fn watcher_indexer() -> Arc<Indexer> {
    Arc::new(
        Indexer::new(
            ["metadata.namespace", "metadata.name"],
            ["metadata.managedFields", "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"],
        )
        .unwrap(),
    )
}

/// `config` with the preparation step the watcher configures (crates/watcher/src/resource.rs):
/// its indexer, which removes the `ignoreFields` while decoding.
fn prepared_like_the_watcher(config: CachedStoreConfig, indexer: Arc<Indexer>) -> CachedStoreConfig {
    config.prepare(indexer)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let applied = Cluster::new(7).namespaces(1).apps_per_namespace(1).only(&[Kind::Secret]).build();
    assert_eq!(applied.len(), 1);
    let sim = rt.block_on(async {
        ApiServerSim::builder().objects((0..N).map(tls_secret)).objects(applied).start().await.unwrap()
    });
    let mut stored = sim.list("secrets", None).unwrap();
    let applied = stored.remove(stored.iter().position(|v| v["metadata"]["managedFields"].is_array()).unwrap());
    let client = rt.block_on(async { sim.client() });
    let ar = ApiResource::erase::<Secret>(&());
    let cached =
        rt.block_on(async { CachedStore::new(client.clone(), CachedStoreConfig::new(ar.clone(), true, 2)).unwrap() });
    // The sweeper runs on a multi-thread runtime, as the watcher's does: there it keeps the
    // clock lookups read (on a current-thread runtime it would not).
    let sweeper_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let indexer = watcher_indexer();
    // As the watcher runs them: with the indexer's preparation and a sweeper.
    let prepared = rt.block_on(async {
        CachedStore::new(
            client.clone(),
            prepared_like_the_watcher(CachedStoreConfig::new(ar.clone(), true, 2), indexer),
        )
        .unwrap()
    });
    let _sweepers = {
        let _runtime = sweeper_rt.enter();
        [cached.spawn_sweeper(), prepared.spawn_sweeper()]
    };
    assert!(cached.cache_stats().sweeper_clock && prepared.cache_stats().sweeper_clock);
    // The same store without a sweeper (a clock read per lookup).
    let unswept = CachedStore::new(client.clone(), CachedStoreConfig::new(ar.clone(), true, 2)).unwrap();
    // The same store without the per-fetch timeout, to show what the timer costs.
    let untimed =
        CachedStore::new(client.clone(), CachedStoreConfig::new(ar.clone(), true, 2).fetch_timeout(None)).unwrap();
    let mem = MemoryStore::<CompactObject>::new(2).unwrap();
    for v in stored.iter().chain([&applied]) {
        let (ns, name) = key_of(v);
        let m = &v["metadata"];
        for store in [&cached, &prepared, &unswept, &untimed] {
            store
                .apply_reference(
                    Reference::new(&ns, &name, m["uid"].as_str(), m["resourceVersion"].as_str()).unwrap(),
                    KeyTuple::new([&ns, &name]),
                )
                .unwrap();
        }
        mem.add(Arc::new(CompactObject::from_value(v).unwrap()), KeyTuple::new([&ns, &name])).unwrap();
    }
    let (ns, name) = key_of(&stored[N / 2]);
    let keys = [ns.as_str(), name.as_str()];
    let (applied_ns, applied_name) = key_of(&applied);
    let applied_keys = [applied_ns.as_str(), applied_name.as_str()];
    rt.block_on(async {
        assert_eq!(Store::get(&cached, &keys).await.unwrap().len(), 1);
        assert_eq!(Store::get(&unswept, &keys).await.unwrap().len(), 1);
        assert_eq!(Store::get(&prepared, &keys).await.unwrap(), Store::get(&cached, &keys).await.unwrap());
        // The preparation removes what it should from the applied Secret, and nothing else.
        let mut expected = applied.clone();
        watcher_indexer().prepare(&mut expected);
        let got = Store::get(&prepared, &applied_keys).await.unwrap();
        assert_eq!(got[0].to_value(), expected);
        assert!(got[0].pointer("/metadata/managedFields").is_none());
        let unprepared = Store::get(&cached, &applied_keys).await.unwrap();
        println!(
            "applied Secret: {} B as fetched, {} B prepared (compact encoding)",
            unprepared[0].as_bytes().len(),
            got[0].as_bytes().len()
        );
    });

    let mut g = c.benchmark_group("hit");
    g.bench_function("MemoryStore::get (inherent)", |b| b.iter(|| black_box(mem.get(black_box(&keys)).unwrap())));
    g.bench_function("MemoryStore via Store::get", |b| {
        b.to_async(&rt).iter(|| async { black_box(Store::get(&mem, black_box(&keys)).await.unwrap()) })
    });
    g.bench_function("CachedStore via Store::get (hit)", |b| {
        b.to_async(&rt).iter(|| async { black_box(Store::get(&cached, black_box(&keys)).await.unwrap()) })
    });
    g.bench_function("CachedStore via Store::get (hit, no sweeper)", |b| {
        b.to_async(&rt).iter(|| async { black_box(Store::get(&unswept, black_box(&keys)).await.unwrap()) })
    });
    g.finish();

    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let typed: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut g = c.benchmark_group("miss");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("Api<DynamicObject>::get", |b| {
        b.to_async(&rt).iter(|| async { black_box(dynamic.get(&name).await.unwrap()) })
    });
    g.bench_function("Api<Secret>::get", |b| {
        b.to_async(&rt).iter(|| async { black_box(typed.get(&name).await.unwrap()) })
    });
    g.bench_function("CachedStore via Store::get (miss)", |b| {
        b.to_async(&rt).iter(|| async {
            cached.evict(&ns, &name);
            black_box(Store::get(&cached, &keys).await.unwrap())
        })
    });
    g.bench_function("CachedStore via Store::get (miss, prepared like the watcher)", |b| {
        b.to_async(&rt).iter(|| async {
            prepared.evict(&ns, &name);
            black_box(Store::get(&prepared, &keys).await.unwrap())
        })
    });
    g.bench_function("CachedStore via Store::get (miss, no sweeper)", |b| {
        b.to_async(&rt).iter(|| async {
            unswept.evict(&ns, &name);
            black_box(Store::get(&unswept, &keys).await.unwrap())
        })
    });
    g.bench_function("CachedStore via Store::get (miss, no fetch timeout)", |b| {
        b.to_async(&rt).iter(|| async {
            untimed.evict(&ns, &name);
            black_box(Store::get(&untimed, &keys).await.unwrap())
        })
    });
    g.finish();

    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &applied_ns, &ar);
    let typed: Api<Secret> = Api::namespaced(client.clone(), &applied_ns);
    let mut g = c.benchmark_group("miss (applied Secret)");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("Api<DynamicObject>::get", |b| {
        b.to_async(&rt).iter(|| async { black_box(dynamic.get(&applied_name).await.unwrap()) })
    });
    g.bench_function("Api<Secret>::get", |b| {
        b.to_async(&rt).iter(|| async { black_box(typed.get(&applied_name).await.unwrap()) })
    });
    g.bench_function("CachedStore via Store::get (miss, no preparation)", |b| {
        b.to_async(&rt).iter(|| async {
            cached.evict(&applied_ns, &applied_name);
            black_box(Store::get(&cached, &applied_keys).await.unwrap())
        })
    });
    g.bench_function("CachedStore via Store::get (miss, prepared like the watcher)", |b| {
        b.to_async(&rt).iter(|| async {
            prepared.evict(&applied_ns, &applied_name);
            black_box(Store::get(&prepared, &applied_keys).await.unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("miss decode");
    let indexer = watcher_indexer();
    for (label, v) in [("TLS Secret", &stored[N / 2]), ("applied Secret", &applied)] {
        // What apiserver-sim sends (it serializes its `Value` the same way), as the text kube's
        // `request_text` hands over; kube, the old and the new path all parse that `str`.
        let body = serde_json::to_string(v).unwrap();
        g.throughput(criterion::Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("{label}: DynamicObject (Api::get's decode)"), |b| {
            b.iter(|| black_box(serde_json::from_str::<DynamicObject>(black_box(&body)).unwrap()))
        });
        g.bench_function(format!("{label}: parse (no preparation)"), |b| {
            b.iter(|| black_box(black_box(body.as_str()).parse::<CompactObject>().unwrap()))
        });
        g.bench_function(format!("{label}: Indexer::decode_compact (fetch now, one pass)"), |b| {
            b.iter(|| black_box(indexer.decode_compact(black_box(&body)).unwrap()))
        });
        g.bench_function(format!("{label}: from_str_normalized + prepare_compact (two passes)"), |b| {
            b.iter(|| {
                let obj = CompactObject::from_str_normalized(black_box(&body)).unwrap();
                black_box(indexer.prepare_compact(&obj, false).unwrap().unwrap_or(obj))
            })
        });
        g.bench_function(format!("{label}: Value + Indexer::prepare + from_value (fetch before)"), |b| {
            b.iter(|| {
                let mut value: Value = serde_json::from_str(black_box(&body)).unwrap();
                indexer.prepare(&mut value);
                black_box(CompactObject::from_value(&value).unwrap())
            })
        });
    }
    g.finish();
    let s = cached.cache_stats();
    println!("cache stats after the run: hits {} misses {} fetches {}", s.hits, s.misses, s.fetches);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
