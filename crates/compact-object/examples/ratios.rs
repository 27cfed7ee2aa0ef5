//! Interference-resistant time ratios of CompactObject against serde_json::Value.
//!
//! `benches/speed.rs` (criterion) is the reference benchmark, but on a shared, loaded machine its
//! absolute times swing by 2×. This example alternates short batches of the two contenders many
//! times and keeps each one's fastest batch, so both are measured under the same (least
//! disturbed) conditions and their ratio is stable.
//!
//! Run: `cargo run --release -p kstore-compact-object --example ratios`

use std::hint::black_box;
use std::time::{Duration, Instant};

use kstore_compact_object::CompactObject;
use serde_json::Value;

const FIXTURES: &[(&str, &[u8], &str)] = &[
    ("ingress", include_bytes!("../fixtures/ingress.json"), "/metadata/labels/app.kubernetes.io~1name"),
    ("service", include_bytes!("../fixtures/service.json"), "/spec/selector/app.kubernetes.io~1name"),
    ("endpointslice", include_bytes!("../fixtures/endpointslice.json"), "/endpoints/19/nodeName"),
    ("configmap", include_bytes!("../fixtures/configmap.json"), "/metadata/labels/app.kubernetes.io~1name"),
    ("secret", include_bytes!("../fixtures/secret-tls.json"), "/metadata/annotations/cert-manager.io~1common-name"),
];

/// Fastest time per call of `a` and of `b`, over `rounds` alternating batches.
fn race(mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    // Size a batch to roughly 100 µs of `a`.
    let start = Instant::now();
    let mut calibrate = 0u32;
    while start.elapsed() < Duration::from_millis(5) {
        a();
        calibrate += 1;
    }
    let batch = (calibrate / 50).max(1);
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..300 {
        let t = Instant::now();
        for _ in 0..batch {
            a();
        }
        best_a = best_a.min(t.elapsed() / batch);
        let t = Instant::now();
        for _ in 0..batch {
            b();
        }
        best_b = best_b.min(t.elapsed() / batch);
    }
    (best_a, best_b)
}

fn row(op: &str, fixture: &str, (value, compact): (Duration, Duration), limit: f64) {
    let ratio = compact.as_secs_f64() / value.as_secs_f64();
    let limit = if limit.is_nan() { "—".to_owned() } else { format!("≤ {limit}×") };
    println!("| {op} | {fixture} | {value:.2?} | {compact:.2?} | {ratio:.2}× | {limit} |");
}

fn main() {
    println!("| operation | fixture | serde_json::Value | CompactObject | ratio | required |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, json, _) in FIXTURES {
        let json = json.trim_ascii_end();
        row(
            "build from bytes",
            name,
            race(
                || drop(black_box(serde_json::from_slice::<Value>(black_box(json)).unwrap())),
                || drop(black_box(CompactObject::from_slice(black_box(json)).unwrap())),
            ),
            1.5,
        );
    }
    for (name, json, pointer) in FIXTURES {
        let value: Value = serde_json::from_slice(json).unwrap();
        let compact = CompactObject::from_slice(json).unwrap();
        row(
            "3-level pointer",
            name,
            race(
                || {
                    black_box(black_box(&value).pointer(black_box(pointer)).is_some());
                },
                || {
                    black_box(black_box(&compact).pointer(black_box(pointer)).is_some());
                },
            ),
            2.0,
        );
    }
    let json = FIXTURES[0].1;
    let value: Value = serde_json::from_slice(json).unwrap();
    let compact = CompactObject::from_slice(json).unwrap();
    row(
        "spec.rules[0].host get chain",
        "ingress",
        race(
            || {
                black_box(
                    black_box(&value)
                        .get("spec")
                        .and_then(|s| s.get("rules"))
                        .and_then(|r| r.get(0))
                        .and_then(|r| r.get("host"))
                        .and_then(Value::as_str),
                );
            },
            || {
                black_box(
                    black_box(&compact)
                        .root()
                        .get("spec")
                        .and_then(|s| s.get("rules"))
                        .and_then(|r| r.index(0))
                        .and_then(|r| r.get("host"))
                        .and_then(|h| h.as_str()),
                );
            },
        ),
        2.0,
    );
    // Typed object → dynamic form (not a requirement; shows `from_serialize`'s one-pass path).
    let typed: k8s_openapi::api::networking::v1::Ingress = serde_json::from_slice(FIXTURES[0].1).unwrap();
    row(
        "from typed (to_value / from_serialize)",
        "ingress",
        race(
            || drop(black_box(serde_json::to_value(black_box(&typed)).unwrap())),
            || drop(black_box(CompactObject::from_serialize(black_box(&typed)).unwrap())),
        ),
        f64::NAN,
    );
    for (name, json, _) in FIXTURES {
        let value: Value = serde_json::from_slice(json).unwrap();
        let compact = CompactObject::from_slice(json).unwrap();
        let mut out_a = Vec::with_capacity(json.len() * 2);
        let mut out_b = Vec::with_capacity(json.len() * 2);
        row(
            "Serialize to JSON",
            name,
            race(
                || {
                    out_a.clear();
                    serde_json::to_writer(&mut out_a, black_box(&value)).unwrap();
                },
                || {
                    out_b.clear();
                    serde_json::to_writer(&mut out_b, black_box(&compact)).unwrap();
                },
            ),
            1.5,
        );
    }
}
