//! Proptest model of what-if overlays: for a random store and random proposed changes, every
//! lookup of `snapshot.overlay(changes)` equals the same lookup on a copy of the store with the
//! changes applied (which `validate()` checks), the base store is untouched, and later writes
//! to the store never reach the overlay.

use std::collections::BTreeSet;

use kstore_memory_store::{Changes, MemoryStore};
use proptest::prelude::*;
use store_types::{Identity, KeyTuple, ObjectKey};

mod common;
use common::{Obj, obj, refs, seen};

const N: usize = 2;

#[derive(Clone, Debug)]
enum Change {
    Upsert { ns: String, name: String, keys: Vec<String>, rv: u8 },
    Delete { ns: String, name: String },
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "b", "a/b", "default", "\0", "a-key-element-that-is-longer-than-an-inline-key"])
        .prop_map(String::from)
}
fn ns() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "default", "kube"]).prop_map(String::from)
}
fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["x", "y", "z", "w"]).prop_map(String::from)
}
/// Key tuples: random words, or the object's own identity (the identity-keyed layout).
fn keys_for(ns: String, name: String, own: bool) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(word(), N).prop_map(move |k| if own { vec![ns.clone(), name.clone()] } else { k })
}
fn object() -> impl Strategy<Value = (String, String, Vec<String>, u8)> {
    (ns(), name(), any::<bool>(), 0u8..3)
        .prop_flat_map(|(ns, name, own, rv)| (Just(ns.clone()), Just(name.clone()), keys_for(ns, name, own), Just(rv)))
}
fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => object().prop_map(|(ns, name, keys, rv)| Change::Upsert { ns, name, keys, rv: rv + 10 }),
        2 => (ns(), name()).prop_map(|(ns, name)| Change::Delete { ns, name }),
    ]
}

fn fill(store: &MemoryStore<Obj>, base: &[(String, String, Vec<String>, u8)]) {
    for (ns, name, keys, rv) in base {
        store.update(obj(ns, name, *rv), KeyTuple::new(keys.iter().map(String::as_str))).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn overlay_equals_a_copy_with_the_changes_applied(
        base in prop::collection::vec(object(), 0..12),
        changes in prop::collection::vec(change(), 0..8),
        later in prop::collection::vec(object(), 0..3),
    ) {
        let store = MemoryStore::<Obj>::new(N).unwrap();
        fill(&store, &base);
        let before: Vec<_> = seen(&store.list());
        let copy = MemoryStore::<Obj>::new(N).unwrap();
        fill(&copy, &base);

        let mut proposed = Changes::new(N);
        let mut queries: BTreeSet<Vec<String>> = BTreeSet::new();
        let mut identities: BTreeSet<(String, String)> = BTreeSet::new();
        for c in &changes {
            match c {
                Change::Upsert { ns, name, keys, rv } => {
                    let k = KeyTuple::new(keys.iter().map(String::as_str));
                    proposed.upsert(obj(ns, name, *rv), k.clone()).unwrap();
                    copy.update(obj(ns, name, *rv), k).unwrap();
                    identities.insert((ns.clone(), name.clone()));
                    queries.insert(keys.clone());
                }
                Change::Delete { ns, name } => {
                    proposed.delete(ns, name);
                    copy.delete(&Identity::new(ns, name));
                    identities.insert((ns.clone(), name.clone()));
                }
            }
        }
        copy.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (ns, name, keys, _) in &base {
            queries.insert(keys.clone());
            identities.insert((ns.clone(), name.clone()));
        }
        let prefixes: Vec<Vec<String>> = queries.iter().map(|k| k[..1].to_vec()).collect();
        queries.extend(prefixes);
        queries.insert(vec!["nothing".into()]);
        queries.insert(vec!["nothing".into(), "here".into()]);

        let snap = store.snapshot();
        let overlay = snap.overlay(proposed);
        // Later writes to the store reach neither the snapshot nor the overlay.
        fill(&store, &later);

        let check = |label: &str| -> Result<(), TestCaseError> {
            for q in &queries {
                let got = overlay.get(&refs(q)).unwrap();
                let want = copy.get(&refs(q)).unwrap();
                prop_assert_eq!(seen(&got), seen(&want), "{} get {:?}", label, q);
            }
            prop_assert_eq!(seen(&overlay.list()), seen(&copy.list()), "{} list", label);
            prop_assert_eq!(seen(&overlay.iter().cloned().collect::<Vec<_>>()), seen(&copy.list()));
            prop_assert_eq!(overlay.len(), copy.len(), "{} len", label);
            for (ns, name) in &identities {
                let got = overlay.get_by_identity(ns, name).map(|o| o.rv.clone());
                let want = copy.get_by_identity(ns, name).map(|o| o.rv.clone());
                prop_assert_eq!(got, want, "{} identity {}/{}", label, ns, name);
            }
            Ok(())
        };
        check("overlay")?;

        // Summary: created/modified/deleted relative to the base; absent deletions listed.
        let s = overlay.summary();
        let in_base = |ns: &str, name: &str| snap.get_by_identity(ns, name).is_some();
        let mut last: std::collections::BTreeMap<(String, String), bool> = Default::default();
        for c in &changes {
            match c {
                Change::Upsert { ns, name, .. } => { last.insert((ns.clone(), name.clone()), true); }
                Change::Delete { ns, name } => { last.insert((ns.clone(), name.clone()), false); }
            }
        }
        let created = last.iter().filter(|((ns, n), up)| **up && !in_base(ns, n)).count();
        let modified = last.iter().filter(|((ns, n), up)| **up && in_base(ns, n)).count();
        let deleted = last.iter().filter(|((ns, n), up)| !**up && in_base(ns, n)).count();
        let absent: Vec<ObjectKey> =
            last.iter().filter(|((ns, n), up)| !**up && !in_base(ns, n)).map(|((ns, n), _)| ObjectKey::new(ns, n)).collect();
        prop_assert_eq!((s.created, s.modified, s.deleted), (created, modified, deleted));
        prop_assert_eq!(&s.absent_deletions, &absent);

        // The base is untouched by the overlay.
        prop_assert_eq!(seen(&snap.list()), before);
        snap.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        store.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
