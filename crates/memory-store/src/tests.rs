//! Unit tests for every numbered behaviour of the MemoryStore issue.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use store_types::{Identity, KeyTuple, Operation, Store, StoreError};

use crate::{Change, MemoryStore};

fn cm(ns: &str, name: &str, rv: &str) -> Arc<ConfigMap> {
    let mut c = ConfigMap::default();
    c.metadata.namespace = (!ns.is_empty()).then(|| ns.to_owned());
    c.metadata.name = Some(name.to_owned());
    c.metadata.resource_version = Some(rv.to_owned());
    c.metadata.uid = Some(format!("uid-{ns}-{name}"));
    Arc::new(c)
}

fn names(objs: &[Arc<ConfigMap>]) -> Vec<String> {
    objs.iter()
        .map(|o| format!("{}/{}", o.metadata.namespace.as_deref().unwrap_or(""), o.metadata.name.as_deref().unwrap()))
        .collect()
}

fn k<const N: usize>(v: [&str; N]) -> KeyTuple {
    KeyTuple::new(v)
}

#[test]
fn zero_keys_is_an_error() {
    assert!(matches!(MemoryStore::<ConfigMap>::new(0), Err(StoreError::NoIndexKeys)));
    assert_eq!(MemoryStore::<ConfigMap>::new(3).unwrap().num_keys(), 3);
}

#[test]
fn add_update_need_exactly_n_keys_and_get_needs_one_to_n() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    for (op, r) in [
        (Operation::Add, s.add(cm("a", "x", "1"), k(["a"]))),
        (Operation::Update, s.update(cm("a", "x", "1"), k(["a", "x", "y"]))),
    ] {
        match r {
            Err(StoreError::KeyCount { op: o, got, keys, .. }) => {
                assert_eq!(o, op);
                assert!(got == 1 || got == 3);
                assert_eq!(keys[0], "a");
            }
            other => panic!("{op}: expected KeyCount, got {other:?}"),
        }
    }
    assert!(matches!(s.get(&[]), Err(StoreError::KeyCount { got: 0, .. })));
    assert!(matches!(s.get(&["a", "b", "c"]), Err(StoreError::KeyCount { got: 3, .. })));
    assert!(matches!(s.delete_all_under(&[]), Err(StoreError::KeyCount { op: Operation::DeleteAllUnder, .. })));
    assert!(s.is_empty(), "nothing stored by failed operations");
    // A miss is an empty result, not an error.
    assert!(s.get(&["a", "x"]).unwrap().is_empty());
    assert!(s.get(&["a"]).unwrap().is_empty());
}

#[test]
fn object_without_name_is_rejected() {
    let s = MemoryStore::<ConfigMap>::new(1).unwrap();
    let err = s.add(Arc::new(ConfigMap::default()), k(["x"])).unwrap_err();
    assert!(matches!(err, StoreError::MissingIdentity { op: Operation::Add, .. }));
    assert!(err.to_string().contains("[\"x\"]"));
    assert!(s.is_empty());
}

#[test]
fn keys_are_tuples_not_joined_strings() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    s.add(cm("n", "one", "1"), k(["a/b", "c"])).unwrap();
    s.add(cm("n", "two", "1"), k(["a", "b/c"])).unwrap();
    s.add(cm("n", "three", "1"), k(["", ""])).unwrap();
    s.add(cm("n", "four", "1"), k(["ü\0", "🙂"])).unwrap();
    assert_eq!(names(&s.get(&["a/b", "c"]).unwrap()), ["n/one"]);
    assert_eq!(names(&s.get(&["a", "b/c"]).unwrap()), ["n/two"]);
    assert_eq!(names(&s.get(&["a"]).unwrap()), ["n/two"]);
    assert_eq!(names(&s.get(&["", ""]).unwrap()), ["n/three"]);
    assert_eq!(names(&s.get(&[""]).unwrap()), ["n/three"]);
    assert_eq!(names(&s.get(&["ü\0", "🙂"]).unwrap()), ["n/four"]);
    assert!(s.get(&["ü"]).unwrap().is_empty());
    s.validate().unwrap();
}

#[test]
fn exact_gets_of_inline_and_long_keys_with_nul_and_terminator_bytes() {
    // Short tuples are held inline in the exact index (length-prefixed raw bytes), long ones
    // as their `KeyTuple`; both are hashed raw. Elements that contain `\0`, or the bytes of a
    // `KeyTuple` terminator (`\0\u{1}`), must find exactly their own objects either way.
    let long = "a-key-element-that-is-longer-than-an-inline-key-holds";
    let tuples: [[&str; 2]; 8] = [
        ["a", ""],
        ["a\0\u{1}", ""],
        ["a\0", "\u{1}"],
        ["\0", "\0"],
        ["", "\0\0"],
        [long, "\0"],
        [long, "\0\u{1}"],
        ["a", long],
    ];
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    for (i, keys) in tuples.iter().enumerate() {
        s.add(cm("n", &format!("o{i}"), "1"), k(*keys)).unwrap();
    }
    for (i, keys) in tuples.iter().enumerate() {
        assert_eq!(names(&s.get(keys).unwrap()), [format!("n/o{i}")], "{keys:?}");
        assert_eq!(s.get_with(keys, |o| o.len()).unwrap(), 1);
    }
    assert!(s.get(&["a\0", "\u{1}\0"]).unwrap().is_empty());
    assert!(s.get(&[long, ""]).unwrap().is_empty());
    s.validate().unwrap();
    // Moving every object to another tuple leaves nothing under the old ones.
    for (i, _) in tuples.iter().enumerate() {
        s.update(cm("n", &format!("o{i}"), "2"), k(["moved", "\0"])).unwrap();
    }
    for keys in &tuples {
        assert!(s.get(keys).unwrap().is_empty(), "{keys:?}");
    }
    assert_eq!(s.get(&["moved", "\0"]).unwrap().len(), tuples.len());
    s.validate().unwrap();
}

#[test]
fn non_unique_keys_and_identity() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    for name in ["c", "a", "b"] {
        assert_eq!(s.add(cm("default", name, "1"), k(["default", "svc"])).unwrap(), Change::Created);
    }
    assert_eq!(names(&s.get(&["default", "svc"]).unwrap()), ["default/a", "default/b", "default/c"]);
    // Adding the same identity again replaces, never duplicates.
    assert_eq!(s.add(cm("default", "a", "2"), k(["default", "svc"])).unwrap(), Change::Modified { moved: false });
    assert_eq!(s.len(), 3);
    assert_eq!(s.stats().key_tuples, 1);
    s.validate().unwrap();
}

#[test]
fn update_moves_and_adds() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    s.add(cm("ns", "x", "1"), k(["ns", "old"])).unwrap();
    assert_eq!(s.update(cm("ns", "x", "2"), k(["ns", "new"])).unwrap(), Change::Modified { moved: true });
    assert!(s.get(&["ns", "old"]).unwrap().is_empty(), "no stale copy under the old keys");
    assert_eq!(s.get(&["ns", "new"]).unwrap()[0].metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(s.update(cm("ns", "y", "1"), k(["ns", "y"])).unwrap(), Change::Created);
    // Same uid, resourceVersion and keys: nothing to do.
    assert_eq!(s.update(cm("ns", "y", "1"), k(["ns", "y"])).unwrap(), Change::Unchanged);
    assert_eq!(s.len(), 2);
    s.validate().unwrap();
}

#[test]
fn delete_removes_exactly_one_and_bulk_is_explicit() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    // EndpointSlices of one Service share the key tuple.
    for name in ["web-1", "web-2", "web-3"] {
        s.add(cm("default", name, "1"), k(["default", "web"])).unwrap();
    }
    s.add(cm("default", "db-1", "1"), k(["default", "db"])).unwrap();
    s.add(cm("other", "web-1", "1"), k(["other", "web"])).unwrap();
    let removed = s.delete(&Identity::new("default", "web-2")).unwrap();
    assert_eq!(removed.metadata.name.as_deref(), Some("web-2"));
    assert_eq!(names(&s.get(&["default", "web"]).unwrap()), ["default/web-1", "default/web-3"]);
    assert!(s.delete(&Identity::new("default", "web-2")).is_none(), "already gone");
    // A delete carrying another incarnation's uid leaves the current object alone.
    assert!(s.delete(&Identity::new("default", "web-1").with_uid("stale")).is_none());
    assert!(s.delete(&Identity::new("default", "web-1").with_uid("uid-default-web-1")).is_some());
    assert_eq!(s.delete_all_under(&["default"]).unwrap(), 2);
    assert_eq!(names(&s.list()), ["other/web-1"]);
    assert_eq!(s.delete_all_under(&["other", "web"]).unwrap(), 1);
    assert!(s.is_empty());
    s.validate().unwrap();
}

#[test]
fn partial_keys_select_by_prefix_in_order() {
    let s = MemoryStore::<ConfigMap>::new(3).unwrap();
    // Keys deliberately not in (namespace, name) order.
    s.add(cm("default", "b", "1"), k(["default", "z", "1"])).unwrap();
    s.add(cm("default", "a", "1"), k(["default", "y", "2"])).unwrap();
    s.add(cm("default", "c", "1"), k(["default", "y", "1"])).unwrap();
    s.add(cm("defaultx", "a", "1"), k(["defaultx", "y", "1"])).unwrap();
    s.add(cm("kube", "a", "1"), k(["kube", "y", "1"])).unwrap();
    assert_eq!(names(&s.get(&["default"]).unwrap()), ["default/a", "default/b", "default/c"]);
    assert_eq!(names(&s.get(&["default", "y"]).unwrap()), ["default/a", "default/c"]);
    assert_eq!(names(&s.get(&["default", "y", "1"]).unwrap()), ["default/c"]);
    assert_eq!(names(&s.list()), ["default/a", "default/b", "default/c", "defaultx/a", "kube/a"]);
    assert!(s.get(&["defaul"]).unwrap().is_empty(), "prefix is by element, not by string");
}

#[test]
fn results_never_change_and_snapshots_are_stable() {
    let s = MemoryStore::<ConfigMap>::new(1).unwrap();
    s.add(cm("ns", "a", "1"), k(["x"])).unwrap();
    let held = s.get(&["x"]).unwrap();
    let snap = s.snapshot();
    s.update(cm("ns", "a", "2"), k(["x"])).unwrap();
    s.add(cm("ns", "b", "1"), k(["x"])).unwrap();
    s.clear();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].metadata.resource_version.as_deref(), Some("1"));
    assert_eq!(snap.len(), 1);
    assert_eq!(snap.get(&["x"]).unwrap()[0].metadata.resource_version.as_deref(), Some("1"));
    assert_eq!(snap.iter().count(), 1);
    let (o, keys) = snap.entries().next().unwrap();
    assert_eq!((o.metadata.name.as_deref(), keys.to_vec()), (Some("a"), vec!["x".to_string()]));
    assert!(s.is_empty());
}

#[test]
fn reader_sees_every_new_state() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    let mut r = s.reader();
    assert!(r.is_empty());
    s.add(cm("ns", "a", "1"), k(["ns", "a"])).unwrap();
    assert_eq!(names(&r.get(&["ns", "a"]).unwrap()), ["ns/a"]);
    s.update(cm("ns", "a", "2"), k(["ns", "b"])).unwrap();
    assert!(r.get(&["ns", "a"]).unwrap().is_empty());
    assert_eq!(r.get(&["ns"]).unwrap()[0].metadata.resource_version.as_deref(), Some("2"));
    let mut r2 = r.clone();
    s.clear();
    assert_eq!((r.len(), r2.list().len(), r.snapshot().len()), (0, 0, 0));
}

#[test]
fn batch_publishes_once() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    s.add(cm("ns", "keep", "1"), k(["ns", "keep"])).unwrap();
    let reader = s.handle();
    let mut b = s.batch();
    for i in 0..100 {
        b.upsert(cm("ns", &format!("o{i}"), "1"), k(["ns", "o"])).unwrap();
    }
    assert!(b.delete(&Identity::new("ns", "keep")).is_some());
    assert_eq!(b.get(&["ns", "o"]).unwrap().len(), 100, "the batch sees its own changes");
    assert_eq!(reader.len(), 1, "readers see the old state until commit");
    assert!(b.upsert(cm("ns", "bad", "1"), k(["ns"])).is_err());
    let stats = b.commit();
    assert_eq!((stats.created, stats.modified, stats.deleted), (100, 0, 1));
    assert_eq!(reader.len(), 100);
    s.validate().unwrap();

    // A dropped batch publishes nothing.
    let mut b = s.batch();
    b.clear();
    drop(b);
    assert_eq!(s.len(), 100);
}

#[test]
fn replace_all_is_a_relist() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    s.add(cm("ns", "ghost", "1"), k(["ns", "a"])).unwrap();
    s.add(cm("ns", "same", "1"), k(["ns", "a"])).unwrap();
    s.add(cm("ns", "changed", "1"), k(["ns", "a"])).unwrap();
    let stats = s
        .replace_all([
            (cm("ns", "same", "1"), k(["ns", "a"])),
            (cm("ns", "changed", "2"), k(["ns", "b"])),
            (cm("ns", "new", "1"), k(["ns", "a"])),
        ])
        .unwrap();
    assert_eq!((stats.created, stats.modified, stats.deleted), (1, 1, 1));
    assert_eq!(names(&s.list()), ["ns/changed", "ns/new", "ns/same"]);
    assert_eq!(names(&s.get(&["ns", "b"]).unwrap()), ["ns/changed"]);
    s.validate().unwrap();
    // Bad input: nothing is published.
    assert!(s.replace_all([(cm("ns", "x", "1"), k(["ns"]))]).is_err());
    assert_eq!(s.len(), 3);
}

/// Objects prepared one by one and published together are the relist `replace_all` makes, in
/// both layouts (keys that are the identity, keys that are not), with duplicates (the later
/// wins) and out of order; bad items are refused when prepared or published, and then nothing
/// is published.
#[test]
fn prepared_relist_equals_replace_all() {
    for keyed_by_identity in [true, false] {
        let keys = |o: &Arc<ConfigMap>| {
            let (ns, name) = (o.metadata.namespace.as_deref().unwrap(), o.metadata.name.as_deref().unwrap());
            if keyed_by_identity { k([ns, name]) } else { k([ns, &name[..1]]) }
        };
        let first: Vec<Arc<ConfigMap>> =
            vec![cm("b", "y", "1"), cm("a", "x", "1"), cm("a", "z", "1"), cm("b", "y", "2")];
        let second: Vec<Arc<ConfigMap>> = vec![cm("a", "x", "1"), cm("a", "z", "2"), cm("c", "w", "1")];
        let plain = MemoryStore::<ConfigMap>::new(2).unwrap();
        let prepared = MemoryStore::<ConfigMap>::new(2).unwrap();
        for list in [&first, &second] {
            let a = plain.replace_all(list.iter().map(|o| (o.clone(), keys(o)))).unwrap();
            let items = list.iter().map(|o| prepared.prepare(o.clone(), keys(o)).unwrap()).collect();
            let b = prepared.replace_all_prepared(items).unwrap();
            assert_eq!((a.created, a.modified, a.deleted), (b.created, b.modified, b.deleted));
            assert_eq!(names(&plain.list()), names(&prepared.list()));
            for o in list {
                let key = keys(o);
                let elements: Vec<String> = key.elements().collect();
                let elements: Vec<&str> = elements.iter().map(String::as_str).collect();
                assert_eq!(names(&plain.get(&elements).unwrap()), names(&prepared.get(&elements).unwrap()));
            }
            prepared.validate().unwrap();
            assert_eq!(plain.mod_count(), prepared.mod_count());
        }
        // The later copy of b/y won in the first list; the second list moved it out.
        assert_eq!(names(&prepared.list()), ["a/x", "a/z", "c/w"]);
    }
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    s.replace_all([(cm("a", "x", "1"), k(["a", "x"]))]).unwrap();
    assert!(matches!(s.prepare(cm("a", "y", "1"), k(["a"])), Err(StoreError::KeyCount { .. })));
    assert!(matches!(
        s.prepare(Arc::new(ConfigMap::default()), k(["a", "y"])),
        Err(StoreError::MissingIdentity { .. })
    ));
    // An item prepared by a store of another number of keys is refused; nothing is published.
    let three = MemoryStore::<ConfigMap>::new(3).unwrap();
    let foreign = three.prepare(cm("a", "y", "1"), k(["a", "y", "z"])).unwrap();
    let local = s.prepare(cm("a", "z", "1"), k(["a", "z"])).unwrap();
    assert!(matches!(s.replace_all_prepared(vec![local, foreign]), Err(StoreError::KeyCount { .. })));
    assert_eq!(names(&s.list()), ["a/x"]);
}

#[test]
fn stats_count_objects_keys_and_bytes() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    assert_eq!(s.stats().estimated_bytes, 0);
    s.add(cm("ns", "a", "1"), k(["ns", "x"])).unwrap();
    s.add(cm("ns", "b", "1"), k(["ns", "x"])).unwrap();
    s.add(cm("ns", "c", "1"), k(["ns", "y"])).unwrap();
    let st = s.stats();
    assert_eq!((st.objects, st.key_tuples), (3, 2));
    assert!(st.estimated_bytes > 3 * std::mem::size_of::<ConfigMap>());
    s.clear();
    assert_eq!(s.stats().estimated_bytes, 0);
}

#[test]
fn cluster_scoped_objects() {
    let s = MemoryStore::<ConfigMap>::new(1).unwrap();
    s.add(cm("", "global", "1"), k(["global"])).unwrap();
    assert!(s.get_by_identity("", "global").is_some());
    assert!(s.delete(&Identity::new("", "global")).is_some());
}

#[test]
fn send_sync_clone() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    fn assert_clone<T: Clone>() {}
    assert_send_sync::<MemoryStore<ConfigMap>>();
    assert_send_sync::<crate::ReadHandle<ConfigMap>>();
    assert_clone::<crate::ReadHandle<ConfigMap>>();
    assert_send_sync::<crate::Snapshot<ConfigMap>>();
    assert_clone::<crate::Snapshot<ConfigMap>>();
    assert_send_sync::<crate::Reader<ConfigMap>>();
    fn assert_dyn(_: &dyn Store<ConfigMap>) {}
    let s = MemoryStore::<ConfigMap>::new(1).unwrap();
    assert_dyn(&s);
    assert_dyn(&s.handle());
    assert_dyn(&s.snapshot());
    assert_eq!(format!("{s:?}"), "MemoryStore { num_keys: 1, objects: 0, key_tuples: 0 }");
    assert_eq!(format!("{:?}", s.handle()), "ReadHandle { num_keys: 1, objects: 0, key_tuples: 0 }");
}

/// The writer, a read handle and a snapshot answer the read-only trait like the inherent
/// methods; the handle follows later writes, the snapshot does not.
#[tokio::test]
async fn store_trait_reads_every_handle() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    s.add(cm("ns", "a", "1"), k(["ns", "a"])).unwrap();
    s.update(cm("ns", "a", "2"), k(["ns", "b"])).unwrap();
    let handle = s.handle();
    let snapshot = s.snapshot();
    for d in [&s as &dyn Store<ConfigMap>, &handle, &snapshot] {
        assert_eq!(d.num_keys(), 2);
        assert_eq!(d.get(&["ns"]).await.unwrap().len(), 1);
        assert!(d.get(&["ns", "a"]).await.unwrap().is_empty(), "moved to its new keys");
        assert_eq!(d.get(&["ns", "b"]).await.unwrap().len(), 1);
        assert_eq!(d.get_by_identity("ns", "a").await.unwrap().len(), 1, "found by identity, whatever its keys");
        assert!(d.get_by_identity("ns", "b").await.unwrap().is_empty());
        assert!(matches!(d.get(&["ns", "b", "c"]).await, Err(StoreError::KeyCount { .. })));
        assert_eq!(d.list().await.unwrap().len(), 1);
        assert_eq!(d.len(), 1);
    }
    assert!(s.delete(&Identity::new("ns", "a")).is_some());
    assert!(Store::is_empty(&handle), "a handle sees later writes");
    assert!(Store::get_by_identity(&handle, "ns", "a").await.unwrap().is_empty());
    assert_eq!(Store::len(&snapshot), 1, "a snapshot does not");
    s.add(cm("ns", "c", "1"), k(["ns", "c"])).unwrap();
    drop(s);
    assert_eq!(handle.len(), 1, "the last published state outlives the writer");
}

/// No state outlives its last holder: a write frees the state it replaced at once (the
/// replaced objects with it, deleted Secrets among them), unless a snapshot, a `Reader` or a
/// guard still holds it, and then when that holder lets go.
#[test]
fn replaced_states_are_freed_when_their_last_holder_lets_go() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    let first = cm("ns", "a", "1");
    s.add(first.clone(), k(["ns", "a"])).unwrap();
    s.add(cm("ns", "a", "2"), k(["ns", "a"])).unwrap();
    assert_eq!(Arc::strong_count(&first), 1, "the state holding version 1 was freed by the write");

    let second = s.get(&["ns", "a"]).unwrap()[0].clone();
    let snapshot = s.snapshot();
    let mut reader = s.reader();
    assert_eq!(reader.len(), 1);
    assert!(s.delete(&Identity::new("ns", "a")).is_some());
    assert!(Arc::strong_count(&second) > 1, "the snapshot and the reader still hold the state");
    drop(snapshot);
    assert!(Arc::strong_count(&second) > 1, "the reader still holds the state");
    assert_eq!(reader.len(), 0, "the reader moves to the new state");
    assert_eq!(Arc::strong_count(&second), 1, "nothing holds the deleted object any more");

    // Many single writes keep no replaced state alive.
    let objects: Vec<_> = (0..20).map(|i| cm("ns", &format!("o{i}"), "1")).collect();
    for o in &objects {
        let name = o.metadata.name.clone().unwrap();
        s.add(o.clone(), k(["ns", &name])).unwrap();
    }
    s.clear();
    assert!(objects.iter().all(|o| Arc::strong_count(o) == 1), "clear freed every object");
}

/// Readers load and check states while writers publish as fast as they can: every state read
/// is complete (its objects agree on one version), versions never go backwards for one reader,
/// and every object is freed once the store is.
#[test]
fn readers_race_publication() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop) = (s.handle(), stop.clone());
            std::thread::spawn(move || {
                let mut reader = s.reader();
                let (mut last, mut reads) = (0u64, 0u64);
                let version = |objs: &[Arc<ConfigMap>]| -> u64 {
                    let vs: Vec<u64> =
                        objs.iter().map(|o| o.metadata.resource_version.as_deref().unwrap().parse().unwrap()).collect();
                    assert!(vs.windows(2).all(|w| w[0] == w[1]), "half-applied batch: {vs:?}");
                    vs.first().copied().unwrap_or(0)
                };
                while !stop.load(std::sync::atomic::Ordering::SeqCst) || reads < 1000 {
                    let one = s.get_with(&["ns", "a"], |o| version(o)).unwrap();
                    let all = version(&s.get(&["ns"]).unwrap());
                    let cached = version(&reader.get(&["ns"]).unwrap());
                    assert!(one >= last && all >= one && cached >= all, "went back: {last} {one} {all} {cached}");
                    last = cached;
                    reads += 1;
                }
            })
        })
        .collect();
    let mut held = Vec::new();
    for v in 1..=2000u64 {
        let mut batch = s.batch();
        for name in ["a", "b", "c"] {
            let o = cm("ns", name, &v.to_string());
            if v % 500 == 0 {
                held.push(o.clone());
            }
            batch.upsert(o, k(["ns", name])).unwrap();
        }
        batch.commit();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    s.validate().unwrap();
    drop(s);
    assert!(held.iter().all(|o| Arc::strong_count(o) == 1), "every state was freed with the store");
}

/// `for_each_under` visits what `get` returns, in the same order, without taking a reference
/// count, in every layout (objects keyed otherwise, keyed by identity, identity-keyed).
#[test]
fn for_each_under_borrows_what_get_returns() {
    let visit = |s: &MemoryStore<ConfigMap>, keys: &[&str]| {
        let id = |o: &ConfigMap| format!("{:?}/{:?}", o.metadata.namespace, o.metadata.name);
        let before: std::collections::HashMap<String, usize> =
            s.snapshot().iter().map(|o| (id(o), Arc::strong_count(o))).collect();
        let mut seen = Vec::new();
        let n = s
            .for_each_under(keys, |o| {
                // Borrowed: no reference count added for the visit.
                assert_eq!(Arc::strong_count(o), before[&id(o)]);
                seen.push(o.clone());
            })
            .unwrap();
        assert_eq!(n, seen.len());
        let got = s.get(keys).unwrap();
        assert_eq!(names(&seen), names(&got));
        assert_eq!(s.snapshot().for_each_under(keys, |_| {}).unwrap(), n);
        names(&seen)
    };
    // Keyed by [label, namespace, name]; inserted in an order that is neither.
    let s = MemoryStore::<ConfigMap>::new(3).unwrap();
    let mut held = Vec::new();
    for (label, ns, name) in [("web", "b", "y"), ("db", "a", "x"), ("web", "a", "z"), ("web", "a", "w")] {
        let o = cm(ns, name, "1");
        held.push(o.clone());
        s.add(o, k([label, ns, name])).unwrap();
    }
    assert_eq!(visit(&s, &["web"]), ["a/w", "a/z", "b/y"]);
    assert_eq!(visit(&s, &["web", "a"]), ["a/w", "a/z"]);
    assert_eq!(visit(&s, &["web", "a", "z"]), ["a/z"]);
    assert!(visit(&s, &["none"]).is_empty());
    for keys in [&[][..], &["a", "b", "c", "d"][..]] {
        assert!(matches!(s.for_each_under(keys, |_| panic!("visited")), Err(StoreError::KeyCount { .. })));
    }
    drop(s);
    // Keyed by [namespace, name]: the objects map is walked in place.
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    for o in &held {
        let (ns, name) = (o.metadata.namespace.clone().unwrap(), o.metadata.name.clone().unwrap());
        s.add(o.clone(), k([&ns, &name])).unwrap();
    }
    assert_eq!(visit(&s, &["a"]), ["a/w", "a/x", "a/z"]);
    assert_eq!(visit(&s, &["b", "y"]), ["b/y"]);
}

#[test]
fn prefix_gets_walk_the_objects_map_when_keys_are_identities() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    for (ns, name) in [("a", "x"), ("b", "y"), ("b", "x"), ("b\0c", "z"), ("bc", "w"), ("", "v")] {
        s.add(cm(ns, name, "1"), k([ns, name])).unwrap();
    }
    assert_eq!(names(&s.get(&["b"]).unwrap()), ["b/x", "b/y"]);
    assert_eq!(names(&s.get(&["b\0c"]).unwrap()), ["b\0c/z"]);
    assert_eq!(names(&s.get(&[""]).unwrap()), ["/v"]);
    assert!(s.get(&["c"]).unwrap().is_empty());
    // One object keyed otherwise: the ordered index answers, with the same results.
    s.add(cm("b", "moved", "1"), k(["b", "zz"])).unwrap();
    assert_eq!(names(&s.get(&["b"]).unwrap()), ["b/moved", "b/x", "b/y"]);
    assert_eq!(names(&s.get(&["b\0c"]).unwrap()), ["b\0c/z"]);
    s.validate().unwrap();
}

/// The Go original's `ModCount`: every published object change counts once, from every
/// handle; writes that change nothing do not count; a snapshot keeps the count of its state.
#[test]
fn mod_count_counts_published_changes_from_every_handle() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    let mut reader = s.reader();
    assert_eq!((s.mod_count(), reader.mod_count(), s.snapshot().mod_count()), (0, 0, 0));
    s.add(cm("a", "x", "1"), k(["a", "x"])).unwrap();
    assert_eq!(s.mod_count(), 1);
    let before = s.snapshot();
    // Same uid, resourceVersion and keys: unchanged, not counted.
    assert_eq!(s.update(cm("a", "x", "1"), k(["a", "x"])).unwrap(), Change::Unchanged);
    assert_eq!(s.mod_count(), 1);
    s.update(cm("a", "x", "2"), k(["a", "moved"])).unwrap();
    assert_eq!(s.mod_count(), 2);
    assert!(s.delete(&Identity::new("a", "absent")).is_none());
    assert_eq!(s.mod_count(), 2, "a delete of nothing is no change");
    let mut b = s.batch();
    b.upsert(cm("b", "1", "1"), k(["b", "1"])).unwrap();
    b.upsert(cm("b", "2", "1"), k(["b", "2"])).unwrap();
    assert_eq!(b.mod_count(), 4);
    assert_eq!(s.mod_count(), 2, "uncommitted");
    b.commit();
    assert_eq!((s.mod_count(), reader.mod_count()), (4, 4));
    assert_eq!(s.delete_all_under(&["b"]).unwrap(), 2);
    assert_eq!(s.mod_count(), 6);
    // A relist counts what it changed: one modified, one created, none deleted.
    let stats = s.replace_all([(cm("a", "x", "3"), k(["a", "moved"])), (cm("c", "y", "1"), k(["c", "y"]))]).unwrap();
    assert_eq!((stats.created, stats.modified, stats.deleted), (1, 1, 0));
    assert_eq!(s.mod_count(), 8);
    s.replace_all([(cm("a", "x", "3"), k(["a", "moved"])), (cm("c", "y", "1"), k(["c", "y"]))]).unwrap();
    assert_eq!(s.mod_count(), 8, "an identical relist changes nothing");
    s.clear();
    assert_eq!(s.mod_count(), 10, "clear deletes two objects");
    assert_eq!(before.mod_count(), 1, "a snapshot keeps its state's count");
    // The identity-keyed layout counts the same way, across its switch to keyed.
    let ids = MemoryStore::<crate::tests::Ref>::new(2).unwrap();
    ids.add(Arc::new(Ref("a".into(), "x".into())), k(["a", "x"])).unwrap();
    ids.add(Arc::new(Ref("a".into(), "y".into())), k(["other", "keys"])).unwrap();
    assert_eq!(ids.mod_count(), 2);
    ids.validate().unwrap();
}

/// An object with a cheap identity (the identity-keyed layout).
#[derive(Debug)]
struct Ref(String, String);

impl store_types::KubeObject for Ref {
    fn identity(&self) -> Option<store_types::IdentityRef<'_>> {
        Some(store_types::IdentityRef { namespace: &self.0, name: &self.1, uid: None })
    }
    fn resource_version(&self) -> Option<&str> {
        None
    }
    const CHEAP_IDENTITY: bool = true;
    fn heap_size(&self) -> usize {
        self.0.len() + self.1.len()
    }
}
