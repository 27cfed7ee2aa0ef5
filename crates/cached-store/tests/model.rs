//! Proptest state machines for CachedStore's key semantics.
//!
//! * `reference_index_matches_memory_store`: every feeding call is mirrored on a plain
//!   `MemoryStore<Reference>` (the one index implementation, whose own model test is
//!   `crates/memory-store/tests/model.rs`) and on a `BTreeMap` model; every read of references
//!   must agree with both, and the index must validate after every step.
//! * `reads_through_the_sim_match_the_model`: the same operations drive apiserver-sim too, and
//!   every `Store::get`/`list` — answered from the cache or fetched through kube — must return
//!   exactly the model's objects at exactly the model's resourceVersions (never a stale one).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use apiserver_sim::ApiServerSim;
use common::*;
use kstore_cached_store::{CachedStore, Reference};
use memory_store::MemoryStore;
use proptest::prelude::*;
use store_types::{Identity, KeyTuple, KubeObject, Store};

const N: usize = 2;
/// (namespace, name) → (keys, resourceVersion).
type Model = BTreeMap<(String, String), (Vec<String>, String)>;

#[derive(Clone, Debug)]
enum Op {
    Put { ns: String, name: String, keys: Vec<String> },
    Delete { ns: String, name: String },
    DeleteAllUnder { keys: Vec<String> },
    Get { keys: Vec<String> },
    List,
    Relist,
    ClearCache,
    Clear,
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "b", "a/b", "b/c", "ä"]).prop_map(String::from)
}
fn ns() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["default", "kube"]).prop_map(String::from)
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
        5 => (ns(), name(), prop_oneof![9 => full_keys(), 1 => any_keys()])
            .prop_map(|(ns, name, keys)| Op::Put { ns, name, keys }),
        2 => (ns(), name()).prop_map(|(ns, name)| Op::Delete { ns, name }),
        1 => any_keys().prop_map(|keys| Op::DeleteAllUnder { keys }),
        4 => any_keys().prop_map(|keys| Op::Get { keys }),
        1 => Just(Op::List),
        1 => Just(Op::Relist),
        1 => Just(Op::ClearCache),
        1 => Just(Op::Clear),
    ]
}

fn model_get(model: &Model, keys: &[String]) -> Vec<(String, String, String)> {
    model
        .iter()
        .filter(|(_, (k, _))| k.starts_with(keys))
        .map(|((ns, name), (_, rv))| (ns.clone(), name.clone(), rv.clone()))
        .collect()
}

fn seen<T: KubeObject>(objs: &[Arc<T>]) -> Vec<(String, String, String)> {
    objs.iter()
        .map(|o| {
            let id = o.identity().unwrap();
            (id.namespace.to_owned(), id.name.to_owned(), o.resource_version().unwrap_or_default().to_owned())
        })
        .collect()
}

fn strs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

/// One step, mirrored on the store, the model, the oracle MemoryStore and (if given) the sim.
/// `rv` is the resourceVersion a `Put` gets (from the sim, or a counter).
async fn step(
    op: Op,
    store: &CachedStore,
    oracle: &MemoryStore<Reference>,
    model: &mut Model,
    sim: Option<&ApiServerSim>,
    counter: &mut u64,
) -> Result<(), TestCaseError> {
    let valid = |keys: &[String]| (1..=N).contains(&keys.len());
    match op {
        Op::Put { ns, name, keys } => {
            // The sim changes only when the store can take the event: otherwise a later fetch
            // would (correctly) return an object newer than the model knows.
            let (uid, rv) = match sim.filter(|_| keys.len() == N) {
                Some(sim) => {
                    // A new body every time, so every Put is a new resourceVersion.
                    *counter += 1;
                    let mut body = secret(&ns, &name, 64);
                    body["data"]["generation"] = serde_json::json!(counter.to_string());
                    let v = sim.apply(body).unwrap();
                    (v["metadata"]["uid"].as_str().map(str::to_owned), rv_of(&v))
                }
                None => {
                    *counter += 1;
                    (None, counter.to_string())
                }
            };
            let r = Reference::new(&ns, &name, uid.as_deref(), Some(&rv)).unwrap();
            let got = store.apply_reference(r.clone(), KeyTuple::new(&keys));
            let want = oracle.update(Arc::new(r), KeyTuple::new(&keys));
            prop_assert_eq!(got.is_ok(), want.is_ok());
            if keys.len() == N {
                prop_assert_eq!(got.unwrap(), want.unwrap());
                model.insert((ns, name), (keys, rv));
            } else {
                prop_assert!(got.is_err());
            }
        }
        Op::Delete { ns, name } => {
            if let Some(sim) = sim {
                let _ = sim.delete("secrets", Some(&ns), &name);
            }
            let got = store.delete_reference(&Identity::new(&ns, &name));
            let want = oracle.delete(&Identity::new(&ns, &name));
            prop_assert_eq!(got.map(|r| r.name().to_owned()), want.map(|r| r.name().to_owned()));
            model.remove(&(ns, name));
        }
        Op::DeleteAllUnder { keys } => {
            let got = store.delete_all_under(&strs(&keys));
            let want = oracle.delete_all_under(&strs(&keys));
            prop_assert_eq!(got.is_ok(), valid(&keys));
            if valid(&keys) {
                prop_assert_eq!(got.unwrap(), want.unwrap());
                model.retain(|_, (k, _)| !k.starts_with(&keys));
            }
        }
        Op::Get { keys } => {
            let refs = store.get_references(&strs(&keys));
            prop_assert_eq!(refs.is_ok(), valid(&keys));
            if valid(&keys) {
                let expected = model_get(model, &keys);
                prop_assert_eq!(seen(&refs.unwrap()), expected.clone());
                prop_assert_eq!(seen(&oracle.get(&strs(&keys)).unwrap()), expected.clone());
                if sim.is_some() {
                    let objects = Store::get(store, &strs(&keys)).await.unwrap();
                    prop_assert_eq!(seen(&objects), expected);
                }
            }
        }
        Op::List => {
            let expected = model_get(model, &[]);
            prop_assert_eq!(seen(&store.references().list()), expected.clone());
            if sim.is_some() {
                prop_assert_eq!(seen(&Store::list(store).await.unwrap()), expected);
            }
        }
        Op::Relist => {
            let items: Vec<_> = store
                .references()
                .iter()
                .map(|r| {
                    let (keys, _) = &model[&(r.namespace().to_owned(), r.name().to_owned())];
                    (Reference::clone(r), KeyTuple::new(keys))
                })
                .collect();
            let before = store.cache_stats().entries;
            let stats = store.replace_references(items).unwrap();
            prop_assert!(stats.is_empty(), "{:?}", stats);
            prop_assert_eq!(store.cache_stats().entries, before, "an identical relist keeps the cache");
        }
        Op::ClearCache => store.clear_cache(),
        Op::Clear => {
            store.clear();
            oracle.clear();
            model.clear();
        }
    }
    prop_assert_eq!(Store::len(store), model.len());
    if let Err(e) = store.validate() {
        return Err(TestCaseError::fail(e));
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reference_index_matches_memory_store(ops in prop::collection::vec(op(), 1..40)) {
        let rt = runtime();
        rt.block_on(async {
            // No request is ever sent: reads here look at references only.
            let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
            let store = CachedStore::new(client, secrets_config()).unwrap();
            let oracle = MemoryStore::<Reference>::new(N).unwrap();
            let mut model = Model::new();
            let mut counter = 0;
            for op in ops {
                step(op, &store, &oracle, &mut model, None, &mut counter).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reads_through_the_sim_match_the_model(ops in prop::collection::vec(op(), 1..30)) {
        let rt = runtime();
        rt.block_on(async {
            let sim = ApiServerSim::start().await.unwrap();
            // A cache smaller than the 8 possible objects, so evictions happen too.
            let config = secrets_config().max_bytes(None).max_entries(Some(3));
            let store = CachedStore::new(sim.client(), config).unwrap();
            let oracle = MemoryStore::<Reference>::new(N).unwrap();
            let mut model = Model::new();
            let mut counter = 0;
            for op in ops {
                step(op, &store, &oracle, &mut model, Some(&sim), &mut counter).await?;
            }
            let s = store.cache_stats();
            prop_assert_eq!((s.fetch_errors, s.stale_fetches), (0, 0));
            prop_assert!(s.entries <= 3);
            Ok::<(), TestCaseError>(())
        })?;
    }
}
