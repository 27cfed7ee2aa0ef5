//! What-if overlays: building an overlay of 10 changes (5 modifications, 3 additions, 2
//! deletions) over stores of 1k, 10k and 100k ConfigMaps keyed by `[namespace, name]`, and
//! lookups through the overlay beside the same lookups on the snapshot, in one run.
//!
//! `cargo bench -p kstore-memory-store --bench overlay`

#![allow(missing_docs)]

#[path = "support/data.rs"]
#[allow(dead_code)]
mod data;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use data::{SIZES, configmap, consume, keys_of};
use k8s_openapi::api::core::v1::ConfigMap;
use kstore_memory_store::{Changes, MemoryStore};

/// 100 ConfigMaps per namespace.
const PER_NS: usize = 100;

fn store(n: usize) -> MemoryStore<ConfigMap> {
    let s = MemoryStore::new(2).unwrap();
    s.replace_all((0..n).map(|i| {
        let c = Arc::new(configmap(i / PER_NS, i, 1));
        let k = keys_of(&c);
        (c, k)
    }))
    .unwrap();
    s
}

/// Proposed objects with their keys.
type Upserts = Vec<(Arc<ConfigMap>, kstore_memory_store::KeyTuple)>;

/// The proposal: objects spread over the store, prepared before the measurement (the
/// measurement is the overlay's, not the objects' construction).
fn proposal(n: usize) -> (Upserts, Vec<(String, String)>) {
    let mut upserts = Vec::new();
    for j in 0..5 {
        let i = j * n / 5 + 7;
        let c = Arc::new(configmap(i / PER_NS, i, 2));
        upserts.push((c.clone(), keys_of(&c)));
    }
    for j in 0..3 {
        let c = Arc::new(configmap(j, n + j, 1));
        upserts.push((c.clone(), keys_of(&c)));
    }
    let deletes = (0..2)
        .map(|j| {
            let i = j * n / 2 + 3;
            (format!("ns-{:04}", i / PER_NS), format!("cm-{i:06}"))
        })
        .collect();
    (upserts, deletes)
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("overlay");
    for n in SIZES {
        let s = store(n);
        let snap = s.snapshot();
        let (upserts, deletes) = proposal(n);
        g.bench_with_input(BenchmarkId::new("build_10_changes", n), &n, |b, _| {
            b.iter(|| {
                let mut changes = Changes::new(2);
                for (o, k) in &upserts {
                    changes.upsert(o.clone(), k.clone()).unwrap();
                }
                for (ns, name) in &deletes {
                    changes.delete(ns, name);
                }
                consume(snap.overlay(changes));
            })
        });
        let mut changes = Changes::new(2);
        for (o, k) in &upserts {
            changes.upsert(o.clone(), k.clone()).unwrap();
        }
        let overlay = snap.overlay(changes);
        // An exact get no change touches, and one of a modified object.
        let quiet = configmap(1, PER_NS + 1, 1);
        let quiet = [quiet.metadata.namespace.as_deref().unwrap(), quiet.metadata.name.as_deref().unwrap()];
        let (touched, _) = &upserts[0];
        let touched = [touched.metadata.namespace.as_deref().unwrap(), touched.metadata.name.as_deref().unwrap()];
        g.bench_with_input(BenchmarkId::new("snapshot_get", n), &n, |b, _| b.iter(|| consume(snap.get(&quiet))));
        g.bench_with_input(BenchmarkId::new("overlay_get_untouched", n), &n, |b, _| {
            b.iter(|| consume(overlay.get(&quiet)))
        });
        g.bench_with_input(BenchmarkId::new("overlay_get_modified", n), &n, |b, _| {
            b.iter(|| consume(overlay.get(&touched)))
        });
        g.bench_with_input(BenchmarkId::new("snapshot_namespace_get", n), &n, |b, _| {
            b.iter(|| consume(snap.get(&[touched[0]])))
        });
        g.bench_with_input(BenchmarkId::new("overlay_namespace_get", n), &n, |b, _| {
            b.iter(|| consume(overlay.get(&[touched[0]])))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .without_plots()
}

criterion_group! { name = benches; config = config(); targets = build }
criterion_main!(benches);
