//! Loom models of the store's write and publication protocol (`cargo xtask loom`, which builds
//! with `--cfg kstore_loom`). Loom explores every interleaving of the threads below and checks,
//! in each, that readers (one-shot gets, snapshots, cached `Reader`s) only ever see complete
//! states and never go back to an older one, and that concurrent writers lose nothing: each
//! writer copies the current state under the writer lock and publishes the modified copy whole.
//! Publication goes through the loom stand-in for arc-swap in `src/sync.rs` (same operations,
//! and the same `Relaxed` revalidation of a cached state); arc-swap's own reclamation is not
//! modelled (loom cannot see inside it).
#![cfg(kstore_loom)]

use std::sync::Arc;

use kstore_memory_store::MemoryStore;
use store_types::{Identity, IdentityRef, KeyTuple, KubeObject};

#[derive(Debug)]
struct Obj {
    name: &'static str,
    version: &'static str,
}

impl KubeObject for Obj {
    fn identity(&self) -> Option<IdentityRef<'_>> {
        Some(IdentityRef { namespace: "ns", name: self.name, uid: None })
    }
    fn resource_version(&self) -> Option<&str> {
        Some(self.version)
    }
}

fn obj(name: &'static str, version: &'static str) -> Arc<Obj> {
    Arc::new(Obj { name, version })
}

/// A batch moving two objects to a new key and a concurrent single write: a reader sees both
/// objects under the old key or both under the new one, never one of each; neither write is
/// lost.
#[test]
fn batch_is_atomic_and_concurrent_writes_are_not_lost() {
    loom::model(|| {
        let store = Arc::new(MemoryStore::<Obj>::new(1).unwrap());
        store.add(obj("a", "1"), KeyTuple::new(["old"])).unwrap();
        store.add(obj("b", "1"), KeyTuple::new(["old"])).unwrap();

        let batcher = {
            let store = store.clone();
            loom::thread::spawn(move || {
                let mut batch = store.batch();
                batch.upsert(obj("a", "2"), KeyTuple::new(["new"])).unwrap();
                batch.upsert(obj("b", "2"), KeyTuple::new(["new"])).unwrap();
                batch.commit();
            })
        };
        let writer = {
            let store = store.clone();
            loom::thread::spawn(move || {
                store.add(obj("c", "1"), KeyTuple::new(["other"])).unwrap();
            })
        };

        // The reader: whatever it sees is a complete state.
        let snap = store.snapshot();
        let (old, new) = (snap.get(&["old"]).unwrap().len(), snap.get(&["new"]).unwrap().len());
        assert!((old, new) == (2, 0) || (old, new) == (0, 2), "half-applied batch: old {old}, new {new}");
        snap.validate().unwrap();

        batcher.join().unwrap();
        writer.join().unwrap();
        assert_eq!(store.get(&["new"]).unwrap().len(), 2, "the batch was lost");
        assert_eq!(store.get(&["other"]).unwrap().len(), 1, "the single write was lost");
        store.validate().unwrap();
    });
}

/// Two writers deleting and re-adding concurrently: every interleaving ends in a state that
/// one of the serial orders produces.
#[test]
fn concurrent_delete_and_update_serialise() {
    loom::model(|| {
        let store = Arc::new(MemoryStore::<Obj>::new(1).unwrap());
        store.add(obj("a", "1"), KeyTuple::new(["k"])).unwrap();
        let deleter = {
            let store = store.clone();
            loom::thread::spawn(move || store.delete(&Identity::new("ns", "a")).is_some())
        };
        let updater = {
            let store = store.clone();
            loom::thread::spawn(move || store.update(obj("a", "2"), KeyTuple::new(["k2"])).unwrap())
        };
        let deleted = deleter.join().unwrap();
        updater.join().unwrap();
        assert!(deleted, "the object existed before both writes");
        // Delete then update: present under k2. Update then delete: absent everywhere.
        let now = store.list();
        match now.len() {
            0 => assert!(store.get(&["k"]).unwrap().is_empty()),
            1 => assert_eq!(store.get(&["k2"]).unwrap()[0].version, "2"),
            n => panic!("{n} objects after two serial writes"),
        }
        store.validate().unwrap();
    });
}

/// One-shot readers (`get`, which loads the state for the lookup) and a cached `Reader` handle
/// race two publications (a single write and a batch): every read sees a complete state, and
/// versions never go backwards for one reader, across one-shot and cached reads.
#[test]
fn reads_race_publication() {
    loom::model(|| {
        let store = Arc::new(MemoryStore::<Obj>::new(1).unwrap());
        store.add(obj("a", "1"), KeyTuple::new(["k"])).unwrap();

        let writer = {
            let store = store.clone();
            loom::thread::spawn(move || {
                store.update(obj("a", "2"), KeyTuple::new(["k"])).unwrap();
                let mut batch = store.batch();
                batch.upsert(obj("a", "3"), KeyTuple::new(["k"])).unwrap();
                batch.commit();
            })
        };
        let reader = {
            let store = store.handle();
            loom::thread::spawn(move || {
                let first = store.get(&["k"]).unwrap()[0].version;
                let second = store.get(&["k"]).unwrap()[0].version;
                assert!(first <= second, "went back from {first} to {second}");
                assert_eq!(store.len(), 1);
            })
        };

        let mut handle = store.reader();
        let seen = handle.get(&["k"]).unwrap()[0].version;
        let one_shot = store.get(&["k"]).unwrap()[0].version;
        let again = handle.get(&["k"]).unwrap()[0].version;
        assert!(seen <= one_shot, "a one-shot get went back from {seen} to {one_shot}");
        assert!(one_shot <= again, "the reader handle went back from {one_shot} to {again}");

        writer.join().unwrap();
        reader.join().unwrap();
        assert_eq!(store.get(&["k"]).unwrap()[0].version, "3");
        assert_eq!(handle.get(&["k"]).unwrap()[0].version, "3");
        store.validate().unwrap();
    });
}
