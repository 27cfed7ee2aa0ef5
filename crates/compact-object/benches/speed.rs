//! CompactObject against serde_json::Value on the same fixtures, in one run: building from JSON
//! bytes, a 3-level path lookup, and a full `Serialize` traversal (to JSON bytes).
//!
//! Run: `cargo bench -p kstore-compact-object --bench speed -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kstore_compact_object::CompactObject;
use serde_json::Value;

/// (name, JSON, a 3-level JSON pointer that exists in it)
const FIXTURES: &[(&str, &[u8], &str)] = &[
    ("ingress", include_bytes!("../fixtures/ingress.json"), "/metadata/labels/app.kubernetes.io~1name"),
    ("service", include_bytes!("../fixtures/service.json"), "/spec/selector/app.kubernetes.io~1name"),
    ("endpointslice", include_bytes!("../fixtures/endpointslice.json"), "/endpoints/19/nodeName"),
    ("configmap", include_bytes!("../fixtures/configmap.json"), "/metadata/labels/app.kubernetes.io~1name"),
    ("secret", include_bytes!("../fixtures/secret-tls.json"), "/metadata/annotations/cert-manager.io~1common-name"),
];

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build_from_bytes");
    for (name, json, _) in FIXTURES {
        let json = json.trim_ascii_end();
        g.bench_function(format!("{name}/serde_json::Value"), |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(json)).unwrap())
        });
        g.bench_function(format!("{name}/CompactObject"), |b| {
            b.iter(|| CompactObject::from_slice(black_box(json)).unwrap())
        });
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("path_lookup_3_levels");
    for (name, json, pointer) in FIXTURES {
        let value: Value = serde_json::from_slice(json).unwrap();
        let compact = CompactObject::from_slice(json).unwrap();
        assert_eq!(value.pointer(pointer).unwrap(), &compact.pointer(pointer).unwrap().to_value());
        g.bench_function(format!("{name}/Value::pointer"), |b| {
            b.iter(|| black_box(&value).pointer(black_box(pointer)).is_some())
        });
        g.bench_function(format!("{name}/CompactObject::pointer"), |b| {
            b.iter(|| black_box(&compact).pointer(black_box(pointer)).is_some())
        });
    }
    // The example, as a chain of `get`/`index` calls (no pointer parsing).
    let json = FIXTURES[0].1;
    let value: Value = serde_json::from_slice(json).unwrap();
    let compact = CompactObject::from_slice(json).unwrap();
    g.bench_function("ingress spec.rules[0].host/Value get chain", |b| {
        b.iter(|| {
            black_box(&value)
                .get("spec")
                .and_then(|s| s.get("rules"))
                .and_then(|r| r.get(0))
                .and_then(|r| r.get("host"))
                .and_then(Value::as_str)
                .map(str::len)
        })
    });
    g.bench_function("ingress spec.rules[0].host/CompactObject get chain", |b| {
        b.iter(|| {
            black_box(&compact)
                .root()
                .get("spec")
                .and_then(|s| s.get("rules"))
                .and_then(|r| r.index(0))
                .and_then(|r| r.get("host"))
                .and_then(|h| h.as_str())
                .map(str::len)
        })
    });
    g.finish();
}

fn serialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("serialize_to_json");
    for (name, json, _) in FIXTURES {
        let value: Value = serde_json::from_slice(json).unwrap();
        let compact = CompactObject::from_slice(json).unwrap();
        let mut out = Vec::with_capacity(json.len() * 2);
        g.bench_function(format!("{name}/serde_json::Value"), |b| {
            b.iter(|| {
                out.clear();
                serde_json::to_writer(&mut out, black_box(&value)).unwrap();
                out.len()
            })
        });
        g.bench_function(format!("{name}/CompactObject"), |b| {
            b.iter(|| {
                out.clear();
                serde_json::to_writer(&mut out, black_box(&compact)).unwrap();
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, build, lookup, serialize);
criterion_main!(benches);
