//! Heap bytes per object, measured with a counting global allocator.
//!
//! For each fixture (`fixtures/*.json`: realistic objects already without managedFields and the
//! last-applied annotation) it builds `N` copies with distinct names in each representation and
//! reports the heap growth per object (excluding the `Vec` slots that hold them, i.e. what
//! `size_of::<T>()` would add), next to the compact JSON size.
//!
//! Run: `cargo bench -p kstore-compact-object --bench memory` (add `--features compare` for jsonb and
//! ijson).

use heap_meter::CountingAllocator;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kstore_compact_object::CompactObject;
use serde::de::DeserializeOwned;

/// Counts live heap bytes (requested sizes; allocator overhead is not included).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const N: usize = 1000;

fn live() -> isize {
    heap_meter::live() as isize
}

/// Heap bytes per object of `build` applied to every input, excluding the holding `Vec`'s slots.
fn per_object<T>(inputs: &[Vec<u8>], build: impl Fn(&[u8]) -> T) -> f64 {
    let mut out: Vec<T> = Vec::with_capacity(inputs.len());
    let before = live();
    for input in inputs {
        out.push(build(input));
    }
    let grown = live() - before;
    let per = grown as f64 / inputs.len() as f64;
    drop(out);
    per
}

/// `N` copies of a fixture, each with a distinct `metadata.name`, `uid` and `resourceVersion`
/// (as every real object has), as compact JSON. All other values are identical across copies,
/// which flatters representations that intern string *values* (ijson): real objects differ in
/// more than these three fields.
fn copies(fixture: &[u8]) -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(fixture).unwrap();
    (0..N)
        .map(|i| {
            let mut v = v.clone();
            let name = format!("{}-{i:04}", v["metadata"]["name"].as_str().unwrap());
            v["metadata"]["name"] = name.into();
            v["metadata"]["uid"] = format!("5f1c7a2e-0b6d-4c1e-9a7f-{i:012}").into();
            v["metadata"]["resourceVersion"] = (48_000_000 + i).to_string().into();
            serde_json::to_vec(&v).unwrap()
        })
        .collect()
}

struct Row {
    fixture: &'static str,
    json: f64,
    cells: Vec<(&'static str, f64)>,
}

fn measure<K: DeserializeOwned>(fixture: &'static str, bytes: &[u8]) -> Row {
    let inputs = copies(bytes);
    let json = inputs.iter().map(Vec::len).sum::<usize>() as f64 / inputs.len() as f64;
    let mut cells = vec![
        ("CompactObject", per_object(&inputs, |b| CompactObject::from_slice(b).unwrap())),
        ("serde_json::Value", per_object(&inputs, |b| serde_json::from_slice::<serde_json::Value>(b).unwrap())),
        ("DynamicObject", per_object(&inputs, |b| serde_json::from_slice::<kube_core::DynamicObject>(b).unwrap())),
        ("typed k8s-openapi", per_object(&inputs, |b| serde_json::from_slice::<K>(b).unwrap())),
    ];
    #[cfg(feature = "compare")]
    {
        cells.push((
            "jsonb",
            // Shrunk to its length: jsonb reserves twice the input while parsing.
            per_object(&inputs, |b| {
                let owned = jsonb::parse_owned_jsonb(b).unwrap();
                jsonb::OwnedJsonb::new(owned.to_vec().into_boxed_slice().into_vec())
            }),
        ));
        cells.push(("ijson::IValue", per_object(&inputs, |b| serde_json::from_slice::<ijson::IValue>(b).unwrap())));
    }
    // `heap_size()` must report what the allocator saw (store statistics rely on it).
    let reported = inputs.iter().map(|b| CompactObject::from_slice(b).unwrap().heap_size()).sum::<usize>() as f64
        / inputs.len() as f64;
    // (The measurement also includes keys this fixture added to the shared table: < 1 B/object.)
    assert!(
        (cells[0].1 - reported).abs() < 1.0,
        "{fixture}: heap_size() says {reported}, the allocator {}",
        cells[0].1
    );
    // Clones of one decoded object: the Arc makes them nearly free.
    let one = CompactObject::from_slice(&inputs[0]).unwrap();
    let clones = per_object(&inputs, |_| one.clone());
    cells.push(("CompactObject clone", clones));
    Row { fixture, json, cells }
}

fn main() {
    // Criterion-style filters and flags are accepted and ignored.
    let before_table = live();
    // Seed the key table first so that its fixed part is reported once, below, instead of being
    // charged to whichever fixture happens to come first.
    let _ = kstore_compact_object::interner_stats();
    let seeded = live() - before_table;

    let rows = [
        measure::<Ingress>("Ingress", include_bytes!("../fixtures/ingress.json")),
        measure::<Service>("Service", include_bytes!("../fixtures/service.json")),
        measure::<EndpointSlice>("EndpointSlice", include_bytes!("../fixtures/endpointslice.json")),
        measure::<ConfigMap>("ConfigMap", include_bytes!("../fixtures/configmap.json")),
        measure::<Secret>("Secret (TLS)", include_bytes!("../fixtures/secret-tls.json")),
    ];
    let stats = kstore_compact_object::interner_stats();
    let objects = rows.len() * N;
    let share = stats.heap_bytes as f64 / objects as f64;

    println!("Heap bytes per object, N = {N} copies of each fixture (distinct name, uid, resourceVersion).");
    println!(
        "Key table: {} keys, {} bytes ({} at start-up) = {share:.1} bytes/object over the {objects} \
         CompactObjects; the 'CompactObject + table' column adds this share.",
        stats.keys, stats.heap_bytes, seeded
    );
    println!(
        "size_of: CompactObject {}, Value {}, DynamicObject {}.",
        size_of::<CompactObject>(),
        size_of::<serde_json::Value>(),
        size_of::<kube_core::DynamicObject>()
    );
    println!();
    let names: Vec<&str> = rows[0].cells.iter().map(|(n, _)| *n).collect();
    print!("| fixture | JSON bytes | CompactObject + table |");
    for n in &names {
        print!(" {n} |");
    }
    println!();
    print!("|---|---:|---:|");
    for _ in &names {
        print!("---:|");
    }
    println!();
    for row in &rows {
        let compact = row.cells[0].1 + share;
        print!("| {} | {:.0} | {:.0} ({:.2}×) |", row.fixture, row.json, compact, compact / row.json);
        for (_, bytes) in &row.cells {
            print!(" {:.0} ({:.2}×) |", bytes, bytes / row.json);
        }
        println!();
    }
}
