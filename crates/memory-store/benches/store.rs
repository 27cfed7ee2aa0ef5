//! MemoryStore vs kube-rs `reflector::Store` vs a plain `HashMap`, side by side in one run,
//! on the same ConfigMaps (`cargo bench -p kstore-memory-store --bench store`).

#![allow(missing_docs)]

#[path = "support/data.rs"]
mod data;

use data::{SIZES, configmap, consume, keys_of, now};

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::ConfigMap;
use kstore_memory_store::MemoryStore;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use store_types::{Identity, KeyTuple, Store};

/// `n` ConfigMaps over `namespaces` namespaces (round-robin).
fn data(n: usize, namespaces: usize) -> Vec<Arc<ConfigMap>> {
    (0..n).map(|i| Arc::new(configmap(i % namespaces, i, 1))).collect()
}

struct Peers {
    objs: Vec<Arc<ConfigMap>>,
    mem: MemoryStore<ConfigMap>,
    kube: reflector::Store<ConfigMap>,
    kube_writer: reflector::store::Writer<ConfigMap>,
    map: HashMap<(String, String), Arc<ConfigMap>, foldhash::fast::RandomState>,
}

fn build(n: usize, namespaces: usize) -> Peers {
    let objs = data(n, namespaces);
    let mem = MemoryStore::new(2).unwrap();
    mem.replace_all(objs.iter().map(|o| (o.clone(), keys_of(o)))).unwrap();
    let (kube, mut writer) = reflector::store::<ConfigMap>();
    for o in &objs {
        writer.apply_watcher_event(&watcher::Event::Apply(ConfigMap::clone(o)));
    }
    let map = objs
        .iter()
        .map(|o| ((o.metadata.namespace.clone().unwrap(), o.metadata.name.clone().unwrap()), o.clone()))
        .collect();
    Peers { objs, mem, kube, kube_writer: writer, map }
}

/// A fixed pseudo-random order of lookups, so every peer sees the same sequence.
fn probe_order(n: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn exact_get(c: &mut Criterion) {
    let mut g = c.benchmark_group("exact_get");
    for n in SIZES {
        let p = build(n, 1000.min(n));
        let order = probe_order(n);
        let ids: Vec<(String, String)> = order
            .iter()
            .map(|&i| (p.objs[i].metadata.namespace.clone().unwrap(), p.objs[i].metadata.name.clone().unwrap()))
            .collect();
        let refs: Vec<ObjectRef<ConfigMap>> = ids.iter().map(|(ns, name)| ObjectRef::new(name).within(ns)).collect();
        g.bench_with_input(BenchmarkId::new("memory_store", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let (ns, name) = &ids[i & 4095];
                i += 1;
                consume(p.mem.get(&[ns.as_str(), name.as_str()]).unwrap())
            })
        });
        let mut reader = p.mem.reader();
        g.bench_with_input(BenchmarkId::new("memory_store_reader", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let (ns, name) = &ids[i & 4095];
                i += 1;
                consume(reader.get(&[ns.as_str(), name.as_str()]).unwrap())
            })
        });
        let dyn_store: &dyn Store<ConfigMap> = &p.mem;
        g.bench_with_input(BenchmarkId::new("memory_store_trait", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let (ns, name) = &ids[i & 4095];
                i += 1;
                consume(now(dyn_store.get(&[ns.as_str(), name.as_str()])).unwrap())
            })
        });
        let snap = p.mem.snapshot();
        g.bench_with_input(BenchmarkId::new("memory_store_snapshot", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let (ns, name) = &ids[i & 4095];
                i += 1;
                consume(snap.get(&[ns.as_str(), name.as_str()]).unwrap())
            })
        });
        g.bench_with_input(BenchmarkId::new("kube_reflector", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let r = &refs[i & 4095];
                i += 1;
                consume(p.kube.get(r))
            })
        });
        g.bench_with_input(BenchmarkId::new("hashmap", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let k = &ids[i & 4095];
                i += 1;
                consume(p.map.get(k).cloned())
            })
        });
    }
    g.finish();
}

/// A namespace query returning 100 objects, in stores of 1k, 10k and 100k objects.
fn partial_get(c: &mut Criterion) {
    let mut g = c.benchmark_group("namespace_get_100");
    for n in SIZES {
        let p = build(n, n / 100);
        let ns = "ns-0007";
        assert_eq!(p.mem.get(&[ns]).unwrap().len(), 100);
        g.bench_with_input(BenchmarkId::new("memory_store", n), &n, |b, _| {
            b.iter(|| black_box(p.mem.get(&[ns]).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("kube_reflector_state_filter", n), &n, |b, _| {
            b.iter(|| {
                let v: Vec<Arc<ConfigMap>> =
                    p.kube.state().into_iter().filter(|o| o.metadata.namespace.as_deref() == Some(ns)).collect();
                black_box(v)
            })
        });
        g.bench_with_input(BenchmarkId::new("hashmap_scan", n), &n, |b, _| {
            b.iter(|| {
                let v: Vec<Arc<ConfigMap>> = p.map.iter().filter(|(k, _)| k.0 == ns).map(|(_, v)| v.clone()).collect();
                black_box(v)
            })
        });
    }
    g.finish();
}

fn list(c: &mut Criterion) {
    let mut g = c.benchmark_group("list");
    for n in SIZES {
        let p = build(n, 1000.min(n));
        g.bench_with_input(BenchmarkId::new("memory_store", n), &n, |b, _| b.iter(|| black_box(p.mem.list())));
        g.bench_with_input(BenchmarkId::new("kube_reflector", n), &n, |b, _| b.iter(|| black_box(p.kube.state())));
        g.bench_with_input(BenchmarkId::new("hashmap", n), &n, |b, _| {
            b.iter(|| black_box(p.map.values().cloned().collect::<Vec<_>>()))
        });
    }
    g.finish();
}

/// Writes on a 10k store: add + delete of a new object, update with a key change.
fn writes(c: &mut Criterion) {
    let mut g = c.benchmark_group("writes_10k");
    let n = 10_000;
    let mut p = build(n, 1000);
    let fresh = Arc::new(configmap(1, 999_999, 1));
    let fresh_keys = keys_of(&fresh);
    let fresh_id = Identity::new("ns-0001", "cm-999999");
    g.bench_function("add_delete/memory_store", |b| {
        b.iter(|| {
            p.mem.add(fresh.clone(), fresh_keys.clone()).unwrap();
            black_box(p.mem.delete(&fresh_id))
        })
    });
    g.bench_function("add_delete/kube_reflector", |b| {
        b.iter(|| {
            p.kube_writer.apply_watcher_event(&watcher::Event::Apply(ConfigMap::clone(&fresh)));
            p.kube_writer.apply_watcher_event(&watcher::Event::Delete(ConfigMap::clone(&fresh)));
        })
    });
    g.bench_function("add_delete/hashmap", |b| {
        let k = ("ns-0001".to_string(), "cm-999999".to_string());
        b.iter(|| {
            p.map.insert(k.clone(), fresh.clone());
            black_box(p.map.remove(&k))
        })
    });
    let moving = [Arc::new(configmap(3, 3, 2)), Arc::new(configmap(3, 3, 3))];
    let key_choices = [KeyTuple::new(["ns-0003", "a"]), KeyTuple::new(["ns-0003", "b"])];
    g.bench_function("update_key_change/memory_store", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            p.mem.update(moving[i & 1].clone(), key_choices[i & 1].clone()).unwrap()
        })
    });
    g.bench_function("update/kube_reflector", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            p.kube_writer.apply_watcher_event(&watcher::Event::Apply(ConfigMap::clone(&moving[i & 1])));
        })
    });
    g.finish();
}

/// Publishing 10k changes at once into a 100k store.
fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_10k_into_100k");
    g.sample_size(10);
    let mut p = build(100_000, 1000);
    let mut round = 1u64;
    g.bench_function("memory_store_batch", |b| {
        b.iter(|| {
            round += 1;
            let mut batch = p.mem.batch();
            for i in 0..10_000 {
                let o = Arc::new(configmap(i % 1000, i, round));
                let k = keys_of(&o);
                batch.upsert(o, k).unwrap();
            }
            black_box(batch.commit())
        })
    });
    g.bench_function("kube_reflector_apply", |b| {
        b.iter(|| {
            round += 1;
            for i in 0..10_000 {
                p.kube_writer.apply_watcher_event(&watcher::Event::Apply(configmap(i % 1000, i, round)));
            }
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = exact_get, partial_get, list, writes, batch }
criterion_main!(benches);
