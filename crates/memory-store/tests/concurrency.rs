//! Writers flip the store between complete states while readers check they only ever see
//! complete states (never a half-applied batch or relist).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use kstore_memory_store::MemoryStore;
use store_types::{IdentityRef, KeyTuple, KubeObject};

#[derive(Debug)]
struct Obj {
    name: String,
    generation: String,
}

impl KubeObject for Obj {
    fn identity(&self) -> Option<IdentityRef<'_>> {
        Some(IdentityRef { namespace: "ns", name: &self.name, uid: None })
    }
    fn resource_version(&self) -> Option<&str> {
        Some(&self.generation)
    }
}

const OBJECTS: usize = 200;

/// State `g`: every object carries generation `g` and sits under key `["ns", g % 3]`.
fn state(g: usize) -> Vec<(Arc<Obj>, KeyTuple)> {
    (0..OBJECTS)
        .map(|i| {
            let o = Obj { name: format!("o{i:03}"), generation: g.to_string() };
            (Arc::new(o), KeyTuple::new(["ns".to_string(), (g % 3).to_string()]))
        })
        .collect()
}

#[test]
fn readers_only_see_complete_states() {
    let store = Arc::new(MemoryStore::<Obj>::new(2).unwrap()); // two writer threads share the writer
    store.replace_all(state(0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..2 {
        let store = store.clone();
        handles.push(thread::spawn(move || {
            for round in 1..=150 {
                let g = round * 2 + w;
                if round % 2 == 0 {
                    store.replace_all(state(g)).unwrap();
                } else {
                    let mut b = store.batch();
                    for (o, k) in state(g) {
                        b.upsert(o, k).unwrap();
                    }
                    b.commit();
                }
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (store, stop, checks) = (store.handle(), stop.clone(), checks.clone());
        readers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let snap = store.snapshot();
                let all = snap.list();
                assert_eq!(all.len(), OBJECTS, "a state with missing objects was visible");
                let g = &all[0].generation;
                assert!(all.iter().all(|o| &o.generation == g), "mixed generations in one snapshot");
                let key = (g.parse::<usize>().unwrap() % 3).to_string();
                assert_eq!(snap.get(&["ns", &key]).unwrap().len(), OBJECTS);
                assert_eq!(snap.get(&["ns"]).unwrap().len(), OBJECTS);
                // Direct reads (no snapshot) also only see complete buckets.
                for k in ["0", "1", "2"] {
                    let n = store.get(&["ns", k]).unwrap().len();
                    assert!(n == 0 || n == OBJECTS, "half-moved bucket of {n}");
                }
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(checks.load(Ordering::Relaxed) > 0);
    store.validate().unwrap();
    assert_eq!(store.len(), OBJECTS);
}
