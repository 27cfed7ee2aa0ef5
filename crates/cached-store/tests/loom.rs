//! Loom models of the CachedStore's single flight, freshness and eviction logic
//! (`cargo xtask loom`, which builds with `--cfg kstore_loom`). Loom explores the interleavings
//! of the threads below (bounded by `LOOM_MAX_PREEMPTIONS`) and checks, in each, what the
//! store promises: one fetch per missing object, no stale object after a watch event, nothing
//! left behind by a delete, and cache accounting that `validate()` accepts.
//!
//! Under `kstore_loom`, `src/sync.rs` swaps the store's mutexes, atomics, cache slots and
//! in-flight map for loom's, quick_cache for a loom-aware stand-in with the same contract, and
//! the spawned fetch task for a loom thread. The API server is a loom-locked map answering the
//! GET the store builds, so where the fetch reads the server is itself an interleaving point.
#![cfg(kstore_loom)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kstore_cached_store::{CachedStore, CachedStoreConfig, CompactObject, Reference};
use kube::core::{ApiResource, Status};
use loom::future::block_on;
use store_types::{Identity, KeyTuple, KubeObject, Objects, Store};

/// The API server: current resourceVersion of each secret in namespace `ns`, and a count of
/// the GETs it answered.
#[derive(Clone)]
struct Server {
    objects: Arc<loom::sync::Mutex<BTreeMap<&'static str, u64>>>,
    gets: Arc<AtomicUsize>,
}

fn secret_json(name: &str, rv: u64) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}","namespace":"ns","uid":"uid-{name}","resourceVersion":"{rv}"}},"data":{{"v":"{rv}"}}}}"#
    )
}

impl Server {
    fn new(objects: &[(&'static str, u64)]) -> Server {
        Server {
            objects: Arc::new(loom::sync::Mutex::new(objects.iter().copied().collect())),
            gets: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A store fetching from this server; `max_entries` bounds the cache. The TTL is far longer
    /// than a model runs (time is not modelled) and there is no fetch timeout.
    fn store(&self, max_entries: usize) -> CachedStore {
        let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2)
            .ttl(Duration::from_secs(3600))
            .fetch_timeout(None)
            .max_bytes(None)
            .max_entries(Some(max_entries));
        let server = self.clone();
        CachedStore::with_model_server(config, move |path| server.get(path)).unwrap()
    }

    /// [`store`](Self::store) holding a reference to every object of this server, at its
    /// current resourceVersion: the starting point of every model. Shared (`Arc`) because the
    /// models' threads both read and feed it.
    fn referenced_store(&self, max_entries: usize) -> std::sync::Arc<CachedStore> {
        let store = self.store(max_entries);
        let objects: Vec<(&str, u64)> = self.objects.lock().unwrap().iter().map(|(n, rv)| (*n, *rv)).collect();
        for (name, rv) in objects {
            store.apply_reference(reference(name, rv), keys(name)).unwrap();
        }
        std::sync::Arc::new(store)
    }

    /// Answers `GET /api/v1/namespaces/ns/secrets/NAME`.
    fn get(&self, path: &str) -> Result<String, kube::Error> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let name = path.strip_prefix("/api/v1/namespaces/ns/secrets/").expect("the store GETs one secret");
        match self.objects.lock().unwrap().get(name) {
            Some(rv) => Ok(secret_json(name, *rv)),
            None => Err(kube::Error::Api(Box::new(Status {
                code: 404,
                reason: "NotFound".into(),
                message: format!("secrets \"{name}\" not found"),
                ..Status::default()
            }))),
        }
    }

    fn set(&self, name: &'static str, rv: u64) {
        self.objects.lock().unwrap().insert(name, rv);
    }

    fn delete(&self, name: &str) {
        self.objects.lock().unwrap().remove(name);
    }

    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

fn reference(name: &str, rv: u64) -> Reference {
    Reference::new("ns", name, Some(&format!("uid-{name}")), Some(&rv.to_string())).unwrap()
}

fn keys(name: &str) -> KeyTuple {
    KeyTuple::new(["ns", name])
}

/// The resourceVersions of a lookup's objects.
fn versions(objects: &Objects<CompactObject>) -> Vec<u64> {
    objects.iter().map(|o| o.resource_version().unwrap().parse().unwrap()).collect()
}

fn get(store: &CachedStore, name: &str) -> Vec<u64> {
    versions(&block_on(store.get(&["ns", name])).expect("lookup failed"))
}

/// `loom::model`, printing how many executions it explored (`-- --nocapture`).
fn model(name: &str, f: impl Fn() + Send + Sync + 'static) {
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let start = std::time::Instant::now();
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!("{name}: {} executions in {:.1?}", executions.load(Ordering::Relaxed), start.elapsed());
}

/// Checks that hold once every thread of a model is done.
fn check_quiescent(store: &CachedStore) {
    assert_eq!(store.fetches_in_flight(), 0, "a fetch was left in the in-flight map");
    store.validate().unwrap();
}

/// (a) Two concurrent lookups of one missing object: exactly one GET, both get the object.
/// Guards `load()`'s single flight: the in-flight map, and the cache re-check under its lock
/// (a lookup that missed before a fetch filled the cache and left the map must not fetch
/// again).
#[test]
fn concurrent_misses_share_one_fetch() {
    model("concurrent_misses_share_one_fetch", || {
        let server = Server::new(&[("a", 1)]);
        let store = server.referenced_store(4);

        let other = {
            let store = store.clone();
            loom::thread::spawn(move || get(&store, "a"))
        };
        let mine = get(&store, "a");
        let theirs = other.join().unwrap();

        assert_eq!((mine, theirs), (vec![1], vec![1]));
        assert_eq!(server.gets(), 1, "one missing object, two lookups: one GET");
        let stats = store.cache_stats();
        assert_eq!((stats.fetches, stats.misses + stats.hits, stats.entries), (1, 2, 1));
        check_quiescent(&store);
    });
}

/// (b) A lookup whose fetch reads rv 1 races a watch update to rv 2 (the server changes, then
/// the watch event is applied through `update`). Whatever the interleaving, the racing lookup
/// returns rv 1 or 2, a lookup made after the update is applied returns rv 2, and the cache
/// never holds rv 1 for the new reference. Guards `fill()`'s version-id check under the feed
/// lock, `fetch_fresh()`'s resourceVersion check and `retire()`'s carry-over rule.
fn fetch_races_update(name: &str, update: fn(&CachedStore, &Server)) {
    model(name, move || {
        let server = Server::new(&[("a", 1)]);
        let store = server.referenced_store(4);

        let watcher = {
            let (store, server) = (store.clone(), server.clone());
            loom::thread::spawn(move || {
                server.set("a", 2);
                update(&store, &server);
                // Read after the event was applied: never the old object.
                assert_eq!(get(&store, "a"), vec![2], "a lookup after the update saw the old object");
            })
        };
        let racing = get(&store, "a");
        assert!(racing == vec![1] || racing == vec![2], "racing lookup got {racing:?}");
        watcher.join().unwrap();

        let current = store.get_references(&["ns", "a"]).unwrap();
        assert_eq!(current[0].resource_version(), Some("2"));
        assert_eq!(get(&store, "a"), vec![2], "the cache serves the old object after the update");
        check_quiescent(&store);
    });
}

/// (b) with a metadata-only watch: the update carries the reference only.
#[test]
fn fetch_racing_a_reference_update_never_caches_the_old_version() {
    fetch_races_update("fetch_racing_a_reference_update", |store, _| {
        store.apply_reference(reference("a", 2), keys("a")).unwrap();
    });
}

/// (b) with a full watch: the update carries the new object, which replaces a cached entry.
#[test]
fn fetch_racing_a_full_object_update_never_caches_the_old_version() {
    fetch_races_update("fetch_racing_a_full_object_update", |store, _| {
        let object = CompactObject::from_slice(secret_json("a", 2).as_bytes()).unwrap();
        store.apply_full_object(Arc::new(object), keys("a")).unwrap();
    });
}

/// (c) A lookup's fetch races a watch delete (the server deletes, then the event is applied):
/// afterwards neither the reference nor a cache entry remains, and no fetch is in flight.
/// Guards `fill()` (under the feed lock, only for the reference still stored) and
/// `delete_reference()`'s uncache.
#[test]
fn fetch_racing_a_delete_leaves_nothing_behind() {
    model("fetch_racing_a_delete_leaves_nothing_behind", || {
        let server = Server::new(&[("a", 1)]);
        let store = server.referenced_store(4);

        let watcher = {
            let (store, server) = (store.clone(), server.clone());
            loom::thread::spawn(move || {
                server.delete("a");
                store.delete_reference(&Identity::new("ns", "a")).is_some()
            })
        };
        // Either the object (fetched before the delete) or nothing (404, or the reference was
        // already gone).
        let racing = get(&store, "a");
        assert!(racing.is_empty() || racing == vec![1], "racing lookup got {racing:?}");
        assert!(watcher.join().unwrap(), "the delete found no reference");

        let stats = store.cache_stats();
        assert_eq!((stats.references, stats.entries, stats.cached_bytes), (0, 0, 0), "left behind: {stats:?}");
        assert!(get(&store, "a").is_empty());
        check_quiescent(&store);
    });
}

/// (d) Two fills race under a one-entry bound (the second evicts the first through the
/// lifecycle hook) and a concurrent `clear_cache()`: every slot and cache entry still match
/// (`validate()`), at most one object is cached, and both lookups got their objects. Guards
/// `install()` / `uncache()` / `clear_cache_locked()` under the feed lock and the eviction
/// hook's slot clearing. (Five threads: loom's limit, so no lookups after the race.)
#[test]
fn fills_racing_eviction_and_clear_keep_accounting() {
    model("fills_racing_eviction_and_clear_keep_accounting", || {
        let server = Server::new(&[("a", 1), ("b", 7)]);
        let store = server.referenced_store(1);

        let readers = ["a", "b"].map(|name| {
            let store = store.clone();
            loom::thread::spawn(move || get(&store, name))
        });
        store.clear_cache();
        let [a, b] = readers.map(|r| r.join().unwrap());
        assert_eq!((a, b), (vec![1], vec![7]));

        let stats = store.cache_stats();
        assert!(stats.entries <= 1, "{stats:?}");
        assert_eq!(server.gets(), 2);
        check_quiescent(&store);
    });
}

/// (d) A fill (evicting the cached object under a one-entry bound) races a sweep, which runs
/// without the feed lock, and an explicit eviction of the object being filled: `validate()`
/// holds and the cached object, if any, is the current one. Guards `sweep()`'s liveness check
/// and `clear_slot_if()`, `evict()`, and `install()` against them.
#[test]
fn fill_racing_sweep_and_evict_keeps_accounting() {
    model("fill_racing_sweep_and_evict_keeps_accounting", || {
        let server = Server::new(&[("a", 1), ("b", 7)]);
        let store = server.referenced_store(1);
        assert_eq!(get(&store, "a"), vec![1]);

        let sweeper = {
            let store = store.clone();
            loom::thread::spawn(move || store.sweep_expired())
        };
        let evictor = {
            let store = store.clone();
            loom::thread::spawn(move || {
                store.evict("ns", "b");
            })
        };
        assert_eq!(get(&store, "b"), vec![7]);
        assert_eq!(sweeper.join().unwrap(), 0, "nothing is expired or orphaned");
        evictor.join().unwrap();

        assert!(store.cache_stats().entries <= 1);
        check_quiescent(&store);
    });
}
