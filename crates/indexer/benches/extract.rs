//! Key extraction against `serde_json::Value::pointer`, side by side in one run.
//!
//! The target: extracting two keys (`metadata.namespace`, `metadata.labels['app']`)
//! from an Ingress takes at most 1.5× the time of two `Value::pointer` lookups on the same
//! object. `indexer/value` builds the full `KeyTuple` (the store's key, one allocation); the
//! pointer baseline only finds the two values.

use std::hint::black_box;

use compact_object::CompactObject;
use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::networking::v1::Ingress;
use kstore_indexer::{FieldSelector, Indexer, LabelSelector, Path, Typed};
use kube_core::DynamicObject;
use serde_json::{Value, json};

/// A realistic Ingress (about 800 bytes of JSON once managedFields are removed).
fn ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "shop-frontend",
            "namespace": "shop-production",
            "uid": "0f4d2a8c-3b1e-4c5f-9a7d-2e6b8c1d4f3a",
            "resourceVersion": "48213377",
            "generation": 4,
            "creationTimestamp": "2026-03-14T09:26:53Z",
            "labels": {
                "app": "shop-frontend",
                "app.kubernetes.io/part-of": "shop",
                "app.kubernetes.io/managed-by": "helm",
                "team": "storefront"
            },
            "annotations": {
                "haproxy.org/ssl-redirect": "true",
                "haproxy.org/timeout-server": "30s",
                "meta.helm.sh/release-name": "shop"
            }
        },
        "spec": {
            "ingressClassName": "haproxy",
            "tls": [{"hosts": ["shop.example.com", "www.shop.example.com"], "secretName": "shop-tls"}],
            "rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "frontend", "port": {"number": 80}}}},
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8080}}}}
                ]}},
                {"host": "www.shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "frontend", "port": {"number": 80}}}}
                ]}}
            ]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}
    })
}

fn bench(c: &mut Criterion) {
    let value = ingress();
    let typed: Ingress = serde_json::from_value(value.clone()).unwrap();
    let dynamic: DynamicObject = serde_json::from_value(value.clone()).unwrap();
    let compact = CompactObject::from_value(&value).unwrap();
    let ix = Indexer::new(["metadata.namespace", "metadata.labels['app']"], [""; 0]).unwrap();
    assert_eq!(ix.keys(&value).unwrap().to_vec(), ["shop-production", "shop-frontend"]);

    let mut g = c.benchmark_group("extract_two_keys");
    g.bench_function("serde_json_pointer_x2", |b| {
        b.iter(|| {
            let v = black_box(&value);
            (black_box(v.pointer("/metadata/namespace")), black_box(v.pointer("/metadata/labels/app")))
        })
    });
    g.bench_function("indexer/value", |b| b.iter(|| ix.keys(black_box(&value)).unwrap()));
    g.bench_function("indexer/typed", |b| b.iter(|| ix.keys(&Typed(black_box(&typed))).unwrap()));
    g.bench_function("indexer/dynamic", |b| b.iter(|| ix.keys(black_box(&dynamic)).unwrap()));
    g.bench_function("indexer/compact", |b| b.iter(|| ix.keys(black_box(&compact)).unwrap()));
    // The floor every `indexer/*` row pays: building the store key itself.
    g.bench_function("keytuple_new_only", |b| {
        b.iter(|| store_types::KeyTuple::new([black_box("shop-production"), black_box("shop-frontend")]))
    });
    g.bench_function("compact_pointer_x2", |b| {
        b.iter(|| {
            let o = black_box(&compact);
            (black_box(o.pointer("/metadata/namespace")), black_box(o.pointer("/metadata/labels/app")))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("other");
    let fsel = FieldSelector::parse("spec.ingressClassName=haproxy,metadata.namespace!=kube-system").unwrap();
    let lsel = LabelSelector::parse("app in (shop-frontend,shop-api),!legacy").unwrap();
    g.bench_function("field_selector/value", |b| b.iter(|| fsel.matches(black_box(&value))));
    g.bench_function("label_selector/value", |b| b.iter(|| lsel.matches(black_box(&value))));
    g.bench_function("parse_expression", |b| {
        b.iter(|| Path::parse(black_box("metadata.labels['kubernetes.io/service-name']")).unwrap())
    });
    let prep = Indexer::new(
        ["metadata.name"],
        ["metadata.managedFields", "metadata.annotations['meta.helm.sh/release-name']", "status"],
    )
    .unwrap();
    g.bench_function("prepare/value", |b| {
        b.iter_batched(
            || value.clone(),
            |mut v| {
                prep.prepare(&mut v);
                v
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
