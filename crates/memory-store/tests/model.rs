//! Proptest state machine: MemoryStore against a simple model (a `BTreeMap` of identity →
//! (keys, version)), over a small alphabet that forces key collisions, `/` and `""` in keys.
//! After every step the store's `validate()` must pass and every read must agree with the model.

use std::collections::BTreeMap;

use kstore_memory_store::MemoryStore;
use proptest::prelude::*;
use store_types::{Identity, KeyTuple};

mod common;
use common::{Obj, obj, refs, seen};

const N: usize = 2;
type Model = BTreeMap<(String, String), (Vec<String>, String)>;

#[derive(Clone, Debug)]
enum Op {
    Add { ns: String, name: String, keys: Vec<String>, rv: u8 },
    Update { ns: String, name: String, keys: Vec<String>, rv: u8 },
    Delete { ns: String, name: String },
    DeleteAllUnder { keys: Vec<String> },
    Get { keys: Vec<String> },
    List,
    Clear,
    Batch { ops: Vec<(String, String, Vec<String>, Option<u8>)> },
    ReplaceAll { objs: Vec<(String, String, Vec<String>, u8)> },
}

fn word() -> impl Strategy<Value = String> {
    // "default" is also a namespace: prefix gets of identity-keyed objects select namespaces.
    // "\0" and "a\0\u{1}" (which spells the encoding of `["a", ""]` without its last
    // terminator) check the raw hashing and comparison of exact lookups; the long word makes
    // key tuples too long to be held inline in the exact index.
    prop::sample::select(vec![
        "",
        "a",
        "b",
        "a/b",
        "b/c",
        "ä",
        "default",
        "\0",
        "a\0\u{1}",
        "a-key-element-that-is-longer-than-an-inline-key-holds",
    ])
    .prop_map(String::from)
}
fn ns() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "default", "kube", "k\0"]).prop_map(String::from)
}
fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["x", "y", "z", "w"]).prop_map(String::from)
}
fn full_keys() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(word(), N)
}
fn any_keys() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(word(), 0..=N + 1)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (ns(), name(), full_keys(), 0u8..3).prop_map(|(ns, name, keys, rv)| Op::Add { ns, name, keys, rv }),
        // Keys equal to the identity: the store's "keys are identities" fast path.
        3 => (ns(), name(), 0u8..3).prop_map(|(ns, name, rv)| {
            let keys = vec![ns.clone(), name.clone()];
            Op::Add { ns, name, keys, rv }
        }),
        4 => (ns(), name(), prop_oneof![9 => full_keys(), 1 => any_keys()], 0u8..3)
            .prop_map(|(ns, name, keys, rv)| Op::Update { ns, name, keys, rv }),
        2 => (ns(), name()).prop_map(|(ns, name)| Op::Delete { ns, name }),
        1 => any_keys().prop_map(|keys| Op::DeleteAllUnder { keys }),
        3 => any_keys().prop_map(|keys| Op::Get { keys }),
        1 => Just(Op::List),
        1 => Just(Op::Clear),
        1 => prop::collection::vec((ns(), name(), full_keys(), prop::option::of(0u8..3)), 0..8)
            .prop_map(|ops| Op::Batch { ops }),
        1 => prop::collection::vec((ns(), name(), full_keys(), 0u8..3), 0..8).prop_map(|objs| Op::ReplaceAll { objs }),
    ]
}

fn model_get(model: &Model, keys: &[String]) -> Vec<(String, String, String)> {
    // BTreeMap iteration is already (namespace, name) order.
    model
        .iter()
        .filter(|(_, (k, _))| k.starts_with(keys))
        .map(|((ns, name), (_, rv))| (ns.clone(), name.clone(), rv.clone()))
        .collect()
}

/// `op` with every full key tuple replaced by the object's own `[namespace, name]`: the store's
/// identity-keyed layout.
fn identity_keyed(op: Op) -> Op {
    let own = |ns: &str, name: &str, keys: Vec<String>| {
        if keys.len() == N { vec![ns.to_owned(), name.to_owned()] } else { keys }
    };
    match op {
        Op::Add { ns, name, keys, rv } => Op::Add { keys: own(&ns, &name, keys), ns, name, rv },
        Op::Update { ns, name, keys, rv } => Op::Update { keys: own(&ns, &name, keys), ns, name, rv },
        Op::Batch { ops } => Op::Batch {
            ops: ops
                .into_iter()
                .map(|(ns, name, keys, rv)| (ns.clone(), name.clone(), own(&ns, &name, keys), rv))
                .collect(),
        },
        Op::ReplaceAll { objs } => Op::ReplaceAll {
            objs: objs
                .into_iter()
                .map(|(ns, name, keys, rv)| (ns.clone(), name.clone(), own(&ns, &name, keys), rv))
                .collect(),
        },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }

    /// Keys equal to identities throughout, except (maybe) one step whose keys are not: the
    /// identity-keyed layout, and its switch to the keyed one.
    #[test]
    fn identity_keyed_store_matches_model(ops in prop::collection::vec(op(), 1..60), keep in 0..90usize) {
        run(ops.into_iter().enumerate().map(|(i, op)| if i == keep { op } else { identity_keyed(op) }).collect())?;
    }

    /// The same for objects whose identity-table entries hold no inline identity (the lookup
    /// reads each candidate object's identity instead).
    #[test]
    fn identity_keyed_store_without_inline_identities_matches_model(
        ops in prop::collection::vec(op(), 1..60),
        keep in 0..90usize,
    ) {
        run_with::<false>(ops.into_iter().enumerate().map(|(i, op)| if i == keep { op } else { identity_keyed(op) }).collect())?;
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_with::<true>(ops)
}

fn run_with<const INLINE: bool>(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store = MemoryStore::<Obj<INLINE>>::new(N).unwrap();
    let mut model = Model::new();
    for op in ops {
        // The modification count: never goes back; grows when the content changed; stays when
        // a write changed nothing (a batch may change and change back, so only "never back").
        let (count_before, model_before) = (store.mod_count(), model.clone());
        let is_batch = matches!(op, Op::Batch { .. });
        match op {
            Op::Add { ns, name, keys, rv } | Op::Update { ns, name, keys, rv } => {
                let r = store.update(obj(&ns, &name, rv), KeyTuple::new(&keys));
                if keys.len() == N {
                    r.unwrap();
                    model.insert((ns, name), (keys, rv.to_string()));
                } else {
                    prop_assert!(r.is_err());
                }
            }
            Op::Delete { ns, name } => {
                let got = store.delete(&Identity::new(&ns, &name)).map(|o| o.rv.clone());
                prop_assert_eq!(got, model.remove(&(ns, name)).map(|(_, rv)| rv));
            }
            Op::DeleteAllUnder { keys } => {
                let r = store.delete_all_under(&refs(&keys));
                if (1..=N).contains(&keys.len()) {
                    let before = model.len();
                    model.retain(|_, (k, _)| !k.starts_with(&keys));
                    prop_assert_eq!(r.unwrap(), before - model.len());
                } else {
                    prop_assert!(r.is_err());
                }
            }
            Op::Get { keys } => {
                let r = store.get(&refs(&keys));
                let borrowed = store.get_with(&refs(&keys), seen);
                let mut visited = Vec::new();
                let visit = store.for_each_under(&refs(&keys), |o| visited.push(o.clone()));
                let mut visited_snapshot = Vec::new();
                let visit_snapshot =
                    store.snapshot().for_each_under(&refs(&keys), |o| visited_snapshot.push(o.clone()));
                if (1..=N).contains(&keys.len()) {
                    let expected = model_get(&model, &keys);
                    prop_assert_eq!(seen(&r.unwrap()), expected.clone());
                    prop_assert_eq!(borrowed.unwrap(), expected.clone());
                    prop_assert_eq!(visit.unwrap(), expected.len());
                    prop_assert_eq!(seen(&visited), expected.clone());
                    prop_assert_eq!(visit_snapshot.unwrap(), expected.len());
                    prop_assert_eq!(seen(&visited_snapshot), expected);
                } else {
                    prop_assert!(r.is_err());
                    prop_assert!(borrowed.is_err());
                    prop_assert!(visit.is_err() && visited.is_empty());
                    prop_assert!(visit_snapshot.is_err() && visited_snapshot.is_empty());
                }
            }
            Op::List => prop_assert_eq!(seen(&store.list()), model_get(&model, &[])),
            Op::Clear => {
                store.clear();
                model.clear();
            }
            Op::Batch { ops } => {
                let mut b = store.batch();
                for (ns, name, keys, rv) in ops {
                    match rv {
                        Some(rv) => {
                            b.upsert(obj(&ns, &name, rv), KeyTuple::new(&keys)).unwrap();
                            model.insert((ns, name), (keys, rv.to_string()));
                        }
                        None => {
                            b.delete(&Identity::new(&ns, &name));
                            model.remove(&(ns, name));
                        }
                    }
                }
                b.commit();
            }
            Op::ReplaceAll { objs } => {
                let mut next = Model::new();
                let items: Vec<_> = objs
                    .into_iter()
                    .map(|(ns, name, keys, rv)| {
                        next.insert((ns.clone(), name.clone()), (keys.clone(), rv.to_string()));
                        (obj(&ns, &name, rv), KeyTuple::new(&keys))
                    })
                    .collect();
                let stats = store.replace_all(items).unwrap();
                let deleted = model.keys().filter(|k| !next.contains_key(*k)).count() as u64;
                let created = next.keys().filter(|k| !model.contains_key(*k)).count() as u64;
                let modified = next.iter().filter(|(k, v)| model.get(*k).is_some_and(|old| old != *v)).count() as u64;
                prop_assert_eq!((stats.created, stats.deleted, stats.modified), (created, deleted, modified));
                model = next;
            }
        }
        if let Err(e) = store.validate() {
            return Err(TestCaseError::fail(e.to_string()));
        }
        let count = store.mod_count();
        prop_assert!(count >= count_before, "mod_count went back: {} -> {}", count_before, count);
        if model != model_before {
            prop_assert!(count > count_before, "content changed but mod_count stayed at {}", count);
        } else if !is_batch {
            prop_assert_eq!(count, count_before, "nothing changed but mod_count moved");
        }
        prop_assert_eq!(store.snapshot().mod_count(), count);
        prop_assert_eq!(store.handle().mod_count(), count);
        prop_assert_eq!(store.len(), model.len());
        prop_assert_eq!(seen(&store.list()), model_get(&model, &[]));
        let entries: Vec<_> =
            store.snapshot().entries().map(|(o, k)| ((o.ns.clone(), o.name.clone()), k.to_vec())).collect();
        let expected: Vec<_> = model.iter().map(|(id, (k, _))| (id.clone(), k.clone())).collect();
        prop_assert_eq!(entries, expected);
        for ((ns, name), (_, rv)) in &model {
            prop_assert_eq!(store.get_by_identity(ns, name).map(|o| o.rv.clone()), Some(rv.clone()));
        }
    }
    Ok(())
}
