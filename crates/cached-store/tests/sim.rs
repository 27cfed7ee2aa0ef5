//! CachedStore against apiserver-sim through a real kube::Client: hits, misses, TTL (paused
//! time), bounds, single flight, freshness, 404s, fetch errors and timeouts, namespace and
//! scope handling, metadata-only feeding, and Secret data staying out of Debug output.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apiserver_sim::{ApiServerSim, Matcher, Rejection, Verb};
use common::*;
use compact_object::{CompactObject, CompactResource};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kstore_cached_store::{CachedStore, CachedStoreConfig, FeedError, FetchError, Reference};
use kube::Api;
use kube::api::ListParams;
use kube::core::ApiResource;
use serde_json::json;
use store_types::{Identity, KeyTuple, KubeObject, Store, StoreError};
use tokio::time::Instant;

fn gets(sim: &ApiServerSim) -> usize {
    sim.requests().count(Verb::Get, "secrets")
}

#[tokio::test(start_paused = true)]
async fn hit_miss_and_fixed_ttl_expiry() {
    let sim = sim_with_secrets("default", 3, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    assert_eq!(gets(&sim), 0, "feeding references fetches nothing");

    let got = store.get(&["default", "s-001"]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].identity().unwrap().name, "s-001");
    assert_eq!(gets(&sim), 1);
    let again = store.get(&["default", "s-001"]).await.unwrap();
    assert!(Arc::ptr_eq(&got[0], &again[0]), "a hit shares the cached object");
    assert_eq!(gets(&sim), 1);

    // Fixed expiry: reading at 60 s does not extend the 130 s TTL.
    tokio::time::advance(Duration::from_secs(60)).await;
    store.get(&["default", "s-001"]).await.unwrap();
    assert_eq!(gets(&sim), 1);
    tokio::time::advance(Duration::from_secs(69)).await;
    store.get(&["default", "s-001"]).await.unwrap();
    assert_eq!(gets(&sim), 1, "still fresh at 129 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    let refetched = store.get(&["default", "s-001"]).await.unwrap();
    assert_eq!(gets(&sim), 2, "expired at 131 s and refetched");
    assert!(!Arc::ptr_eq(&got[0], &refetched[0]));

    let s = store.cache_stats();
    assert_eq!((s.hits, s.misses, s.fetches, s.expirations), (3, 2, 2, 1));
    assert_eq!((s.entries, s.references), (1, 3));
    assert!(s.cached_bytes > 100);

    // A prefix get fetches the two others and hits the cached one.
    let all = store.get(&["default"]).await.unwrap();
    let names: Vec<_> = all.iter().map(|o| o.identity().unwrap().name.to_owned()).collect();
    assert_eq!(names, ["s-000", "s-001", "s-002"]);
    assert_eq!(gets(&sim), 4);
    assert!(store.get(&["default", "nope"]).await.unwrap().is_empty());
    assert!(matches!(store.get(&[]).await, Err(StoreError::KeyCount { .. })));

    assert!(store.evict("default", "s-001"));
    assert!(!store.evict("default", "s-001"), "already evicted");
    assert!(!store.evict("default", "unknown"));
    store.get(&["default", "s-001"]).await.unwrap();
    assert_eq!(gets(&sim), 5, "evict forces a refetch of that object");

    store.clear_cache();
    assert_eq!(store.cache_stats().entries, 0);
    store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&sim), 6, "clear_cache forces a refetch");
}

#[tokio::test(start_paused = true)]
async fn sweeps_remove_expired_entries() {
    let sim = sim_with_secrets("default", 10, 100).await;
    let config = secrets_config().ttl(Duration::from_secs(30)).sweep_interval(Duration::from_secs(10));
    let store = CachedStore::new(sim.client(), config).unwrap();
    feed_from_sim(&sim, &store);
    store.list().await.unwrap();
    assert_eq!(store.cache_stats().entries, 10);

    // Explicit sweep.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(store.sweep_expired(), 10);
    assert_eq!(store.cache_stats().entries, 0);

    // On-access sweep: a lookup of one object sweeps the other expired entries.
    store.list().await.unwrap();
    tokio::time::advance(Duration::from_secs(31)).await;
    store.get(&["default", "unknown"]).await.unwrap();
    let s = store.cache_stats();
    assert_eq!((s.entries, s.expirations), (0, 20));

    // Background sweeper.
    store.list().await.unwrap();
    let task = store.spawn_sweeper();
    tokio::time::advance(Duration::from_secs(41)).await;
    for _ in 0..100 {
        if store.cache_stats().entries == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(store.cache_stats().entries, 0, "the sweeper removed them");
    drop(store);
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the sweeper ends once the store is dropped")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn with_a_sweeper_on_paused_time_expiry_stays_fixed() {
    let sim = sim_with_secrets("default", 2, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    // On a current-thread runtime lookups keep reading the (paused) clock.
    let sweeper = store.spawn_sweeper();
    assert!(!store.cache_stats().sweeper_clock);
    let got = store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&sim), 1);
    // Reads do not extend the 130 s TTL, with a sweeper too.
    tokio::time::advance(Duration::from_secs(60)).await;
    store.get(&["default", "s-000"]).await.unwrap();
    tokio::time::advance(Duration::from_secs(69)).await;
    let again = store.get(&["default", "s-000"]).await.unwrap();
    assert!(Arc::ptr_eq(&got[0], &again[0]));
    assert_eq!(gets(&sim), 1, "still fresh at 129 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    let refetched = store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&sim), 2, "expired at 131 s and refetched");
    assert!(!Arc::ptr_eq(&got[0], &refetched[0]));

    // Without the sweeper: the same.
    sweeper.abort();
    assert!(sweeper.await.unwrap_err().is_cancelled());
    tokio::time::advance(Duration::from_secs(129)).await;
    store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&sim), 2, "still fresh at 129 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&sim), 3, "expired at 131 s and refetched");
    let s = store.cache_stats();
    assert_eq!((s.hits, s.misses, s.expirations), (3, 3, 2));
    store.validate().unwrap();
}

/// On a multi-thread runtime the sweeper keeps the clock lookups read; fetches time out alike.
/// Real time (paused time needs a current-thread runtime): bounds are generous, and what must
/// hold exactly — never expired early — is checked exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime_the_sweeper_keeps_the_clock_and_fetches_time_out() {
    let sim = sim_with_secrets("default", 2, 100).await;
    let ttl = Duration::from_millis(400);
    let backoff = Duration::from_millis(20);
    let config =
        secrets_config().ttl(ttl).fetch_timeout(Some(Duration::from_millis(300))).fetch_backoff(backoff, backoff);
    let store = CachedStore::new(sim.client(), config).unwrap();
    feed_from_sim(&sim, &store);
    assert!(!store.cache_stats().sweeper_clock);
    let sweeper = store.spawn_sweeper();
    assert!(store.cache_stats().sweeper_clock);

    // Fixed TTL against the sweeper's tick: hits until the TTL, a refetch soon after.
    let fetched = std::time::Instant::now();
    store.get(&["default", "s-000"]).await.unwrap();
    loop {
        let before = fetched.elapsed();
        store.get(&["default", "s-000"]).await.unwrap();
        if gets(&sim) == 2 {
            assert!(before >= ttl, "refetched {before:?} after the fetch, before the TTL");
            break;
        }
        assert!(before < ttl * 5, "not expired {before:?} after the fetch");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // One shared fetch of a slow object, timed out.
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_secs(5));
    let start = std::time::Instant::now();
    let (a, b) = tokio::join!(store.get_detailed(&["default", "s-001"]), store.get_detailed(&["default", "s-001"]));
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(4), "{elapsed:?}");
    for out in [a.unwrap(), b.unwrap()] {
        assert!(out.objects.is_empty());
        assert!(matches!(&*out.failed[0], FetchError::Timeout { after, .. } if *after == Duration::from_millis(300)));
        assert!(out.failed[0].to_string().contains("default/s-001"));
    }
    let s = store.cache_stats();
    assert_eq!((s.fetches, s.fetch_errors), (3, 1), "one shared fetch, one error");
    // The aborted request never fills the cache; the next lookup fetches anew.
    sim.faults().clear_latency();
    tokio::time::sleep(backoff * 2).await;
    assert_eq!(store.get(&["default", "s-001"]).await.unwrap().len(), 1, "retried after the timeout");
    assert_eq!(store.cache_stats().fetches, 4);
    store.validate().unwrap();

    // Without the sweeper, lookups read the clock again.
    sweeper.abort();
    assert!(sweeper.await.unwrap_err().is_cancelled());
    assert!(!store.cache_stats().sweeper_clock);
}

#[tokio::test]
async fn weight_and_entry_bounds_evict() {
    let sim = sim_with_secrets("default", 40, 8 * 1024).await;
    let store = CachedStore::new(sim.client(), secrets_config().max_bytes(Some(64 * 1024))).unwrap();
    feed_from_sim(&sim, &store);
    for i in 0..40 {
        store.get(&["default", &format!("s-{i:03}")]).await.unwrap();
    }
    let s = store.cache_stats();
    assert!(s.cached_bytes <= 64 * 1024, "{s:?}");
    assert!(s.entries < 40 && s.entries > 0, "{s:?}");
    assert!(s.evictions > 0, "{s:?}");
    assert_eq!(s.evictions as usize + s.entries, 40, "{s:?}");
    store.validate().unwrap();

    let store = CachedStore::new(sim.client(), secrets_config().max_bytes(Some(1 << 30)).max_entries(Some(5))).unwrap();
    feed_from_sim(&sim, &store);
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 40, "results are complete even when the cache is small");
    let s = store.cache_stats();
    assert!(s.entries <= 5, "{s:?}");
    assert_eq!(s.evictions as usize + s.entries, 40, "{s:?}");

    let store = CachedStore::new(sim.client(), secrets_config().max_bytes(None).max_entries(Some(3))).unwrap();
    feed_from_sim(&sim, &store);
    store.list().await.unwrap();
    assert!(store.cache_stats().entries <= 3);
}

#[tokio::test]
async fn one_hundred_concurrent_gets_send_one_get() {
    let sim = sim_with_secrets("default", 1, 100).await;
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_millis(50));
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    let results = futures::future::join_all((0..100).map(|_| {
        let store = store.handle();
        tokio::spawn(async move { store.get(&["default", "s-000"]).await })
    }))
    .await;
    let first = results[0].as_ref().unwrap().as_ref().unwrap()[0].clone();
    for r in results {
        let objects = r.unwrap().unwrap();
        assert!(Arc::ptr_eq(&objects[0], &first), "every caller got the one fetched object");
    }
    assert_eq!(gets(&sim), 1, "{:?}", sim.requests().entries());
    assert_eq!(store.cache_stats().fetches, 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_failed_fetch_and_the_next_caller_retries_after_the_backoff() {
    let sim = sim_with_secrets("default", 1, 100).await;
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_millis(50));
    sim.faults().reject_next(Matcher::verb(Verb::Get).resource("secrets"), 1, Rejection::status(500));
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    let results = futures::future::join_all((0..20).map(|_| store.get(&["default", "s-000"]))).await;
    for r in &results {
        let Err(StoreError::Fetch { failed, .. }) = r else {
            panic!("every caller sees the shared failure, got ok={}", r.is_ok())
        };
        assert_eq!(failed[0].key.name(), "s-000");
    }
    assert_eq!(gets(&sim), 1, "one GET for all twenty callers");
    let s = store.cache_stats();
    assert_eq!((s.fetch_errors, s.entries), (1, 0), "the failure is not cached");
    let out = store.get_detailed(&["default", "s-000"]).await.unwrap();
    assert!(matches!(&*out.failed[0], FetchError::BackingOff { failures: 1, .. }), "{}", out.failed[0]);
    assert_eq!(gets(&sim), 1, "no GET while backing off");
    tokio::time::sleep(kstore_cached_store::DEFAULT_FETCH_BACKOFF).await;
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1);
    assert_eq!(gets(&sim), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_caller_does_not_cancel_the_fetch() {
    let sim = sim_with_secrets("default", 1, 100).await;
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_secs(5));
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    let start = Instant::now();
    let cancelled = tokio::time::timeout(Duration::from_secs(1), store.get(&["default", "s-000"])).await;
    assert!(cancelled.is_err(), "the caller gave up after 1 s");
    // The fetch went on without it; the next caller joins it instead of sending another GET.
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(gets(&sim), 1);
    assert_eq!(store.cache_stats().entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_gets_over_a_hundred_objects_send_a_hundred_gets() {
    let sim = sim_with_secrets("default", 100, 200).await;
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_millis(20));
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let store = store.handle();
            tokio::spawn(async move {
                let name = format!("s-{:03}", i % 100);
                store.get(&["default", &name]).await.map(|o| o.len())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 1);
    }
    assert_eq!(gets(&sim), 100);
    let paths = sim.requests().path_counts();
    assert!(paths.values().all(|&n| n == 1), "one GET per object: {paths:?}");
    let s = store.cache_stats();
    assert_eq!((s.fetches, s.hits + s.misses, s.entries), (100, 1000, 100));
}

#[tokio::test]
async fn a_stale_fetch_is_not_cached() {
    let sim = sim_with_secrets("default", 1, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    let v = sim.get("secrets", Some("default"), "s-000").unwrap().unwrap();
    let newer = (rv_of(&v).parse::<u64>().unwrap() + 1000).to_string();
    // A watch event reported a version the API does not serve yet.
    store
        .apply_reference(
            Reference::new("default", "s-000", v["metadata"]["uid"].as_str(), Some(&newer)).unwrap(),
            KeyTuple::new(["default", "s-000"]),
        )
        .unwrap();
    let err = store.get(&["default", "s-000"]).await.unwrap_err();
    let StoreError::Fetch { failed, partial, .. } = &err else { panic!("{err}") };
    assert_eq!(
        (failed.clone(), *partial),
        (vec![Identity::new("default", "s-000").with_uid(v["metadata"]["uid"].as_str().unwrap())], 0)
    );
    assert!(err.to_string().contains("older than the known"), "{err}");
    assert_eq!(gets(&sim), 2, "refetched once");
    let s = store.cache_stats();
    assert_eq!((s.entries, s.stale_fetches, s.fetch_errors), (0, 2, 1));
}

#[tokio::test]
async fn watch_events_refresh_or_evict_entries() {
    let sim = sim_with_secrets("default", 2, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    let keys = KeyTuple::new(["default", "s-000"]);
    let old = store.get(&["default", "s-000"]).await.unwrap()[0].clone();

    // Same version again (a relist or resync): the entry stays.
    feed_from_sim(&sim, &store);
    store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&sim), 1);

    // A metadata-only MODIFIED event: the entry is dropped, the next get sees the new data.
    let mut changed = secret("default", "s-000", 100);
    changed["data"]["extra"] = json!("bmV3");
    let updated = sim.apply(changed).unwrap();
    store
        .apply_reference(
            Reference::new("default", "s-000", updated["metadata"]["uid"].as_str(), Some(&rv_of(&updated))).unwrap(),
            keys.clone(),
        )
        .unwrap();
    assert_eq!(store.cache_stats().invalidations, 1);
    let fresh = store.get(&["default", "s-000"]).await.unwrap()[0].clone();
    assert_eq!(gets(&sim), 2);
    assert_eq!(fresh.resource_version(), Some(rv_of(&updated).as_str()));
    assert!(fresh.pointer("/data/extra").is_some());
    assert!(old.pointer("/data/extra").is_none(), "results held by callers never change");

    // A full-watch update refreshes the cached entry without a fetch.
    let mut full = updated.clone();
    full["metadata"]["resourceVersion"] = json!((rv_of(&updated).parse::<u64>().unwrap() + 1).to_string());
    full["data"]["extra"] = json!("ZnVsbA==");
    let full = Arc::new(CompactObject::from_value(&full).unwrap());
    store.apply_full_object(full.clone(), keys.clone()).unwrap();
    let got = store.get(&["default", "s-000"]).await.unwrap();
    assert!(Arc::ptr_eq(&got[0], &full));
    assert_eq!(gets(&sim), 2);
    assert_eq!(store.cache_stats().refreshes, 1);

    // A full-watch update of an uncached object only keeps the reference.
    let other = sim.get("secrets", Some("default"), "s-001").unwrap().unwrap();
    store
        .apply_full_object(Arc::new(CompactObject::from_value(&other).unwrap()), KeyTuple::new(["default", "s-001"]))
        .unwrap();
    assert_eq!(store.cache_stats().entries, 1);

    // A watch delete removes reference and entry.
    let removed = store.delete_reference(&Identity::new("default", "s-000")).unwrap();
    assert_eq!(removed.name(), "s-000");
    assert!(store.get(&["default", "s-000"]).await.unwrap().is_empty());
    let s = store.cache_stats();
    assert_eq!((s.entries, s.references, s.invalidations), (0, 1, 2));
    assert_eq!(gets(&sim), 2);

    // A late delete of an earlier incarnation removes nothing.
    assert!(store.delete_reference(&Identity::new("default", "s-001").with_uid("another-uid")).is_none());
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn moving_keys_without_a_new_version_keeps_the_cached_object() {
    let sim = sim_with_secrets("default", 1, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    let before = store.get(&["default", "s-000"]).await.unwrap()[0].clone();
    let v = sim.get("secrets", Some("default"), "s-000").unwrap().unwrap();
    let same = Reference::new("default", "s-000", v["metadata"]["uid"].as_str(), Some(&rv_of(&v))).unwrap();
    store.apply_reference(same, KeyTuple::new(["moved", "s-000"])).unwrap();
    assert!(store.get(&["default", "s-000"]).await.unwrap().is_empty());
    let after = store.get(&["moved"]).await.unwrap();
    assert!(Arc::ptr_eq(&before, &after[0]), "the cached object moved with its reference");
    assert_eq!(gets(&sim), 1);
    store.validate().unwrap();
}

#[tokio::test]
async fn relist_keeps_unchanged_entries_and_drops_the_rest() {
    let sim = sim_with_secrets("default", 3, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    store.list().await.unwrap();
    assert_eq!(gets(&sim), 3);
    let updated = sim.apply(secret("default", "s-001", 120)).unwrap();
    sim.delete("secrets", Some("default"), "s-002").unwrap();
    let refs = sim.list("secrets", None).unwrap().into_iter().map(|v| {
        let m = &v["metadata"];
        let (ns, name) = (m["namespace"].as_str().unwrap(), m["name"].as_str().unwrap());
        (Reference::new(ns, name, m["uid"].as_str(), m["resourceVersion"].as_str()).unwrap(), KeyTuple::new([ns, name]))
    });
    let stats = store.replace_references(refs).unwrap();
    assert_eq!((stats.created, stats.modified, stats.deleted), (0, 1, 1));
    let s = store.cache_stats();
    assert_eq!((s.entries, s.invalidations, s.references), (1, 2, 2));
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].resource_version(), Some(rv_of(&updated).as_str()));
    assert_eq!(gets(&sim), 4, "only the modified object was refetched");
}

#[tokio::test]
async fn not_found_after_delete_is_empty_and_counted() {
    let sim = sim_with_secrets("default", 2, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    sim.delete("secrets", Some("default"), "s-000").unwrap();
    let got = store.get(&["default"]).await.unwrap();
    assert_eq!(got.len(), 1, "the deleted object is left out, the other returned");
    let detailed = store.get_detailed(&["default", "s-000"]).await.unwrap();
    assert!(detailed.objects.is_empty());
    assert_eq!(detailed.not_found.len(), 1);
    assert_eq!(detailed.not_found[0].key.name(), "s-000");
    let s = store.cache_stats();
    assert_eq!((s.not_found, s.negative_hits, s.fetch_errors), (1, 1, 0), "the 404 is remembered");
    assert_eq!(gets(&sim), 2);
}

#[tokio::test(start_paused = true)]
async fn fetch_errors_name_the_failed_objects_and_are_not_cached() {
    let sim = sim_with_secrets("default", 3, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config().max_concurrent_fetches(1)).unwrap();
    feed_from_sim(&sim, &store);
    sim.faults().reject_next(Matcher::verb(Verb::Get).resource("secrets"), 1, Rejection::status(500));
    let err = store.get(&["default"]).await.unwrap_err();
    let StoreError::Fetch { failed, partial, keys, .. } = &err else { panic!("{err}") };
    assert_eq!((failed.len(), *partial, keys.clone()), (1, 2, vec!["default".to_owned()]));
    assert!(err.to_string().contains(&failed[0].to_string()), "{err}");
    let failed_name = failed[0].key.name();
    assert_eq!(store.cache_stats().fetch_errors, 1);
    // The successful objects were cached; the failed one is retried after its backoff.
    tokio::time::sleep(kstore_cached_store::DEFAULT_FETCH_BACKOFF).await;
    let all = store.get(&["default"]).await.unwrap();
    assert_eq!(all.len(), 3);
    let paths = sim.requests().path_counts();
    assert_eq!(paths[&format!("/api/v1/namespaces/default/secrets/{failed_name}")], 2);
    assert_eq!(gets(&sim), 4);
}

#[tokio::test(start_paused = true)]
async fn fetches_time_out_after_ten_seconds_by_default() {
    let sim = sim_with_secrets("default", 1, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_secs(30));
    let start = Instant::now();
    let out = store.get_detailed(&["default", "s-000"]).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert!(matches!(&*out.failed[0], FetchError::Timeout { after, .. } if *after == Duration::from_secs(10)));
    assert!(out.failed[0].to_string().contains("default/s-000"));
    sim.faults().clear_latency();
    tokio::time::sleep(kstore_cached_store::DEFAULT_FETCH_BACKOFF).await;
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1, "retried after the backoff");
}

#[tokio::test]
async fn metadata_only_feed_never_lists_secret_bodies() {
    let sim = sim_with_secrets("team-a", 5, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    let api: Api<Secret> = Api::all(sim.client());
    for pom in api.list_metadata(&ListParams::default()).await.unwrap() {
        let ns = pom.metadata.namespace.clone().unwrap();
        let name = pom.metadata.name.clone().unwrap();
        store.apply_object(&pom, KeyTuple::new([ns, name])).unwrap();
    }
    assert_eq!(store.len(), 5);
    let got = store.get(&["team-a", "s-003"]).await.unwrap();
    assert!(got[0].pointer("/data/tls.crt").is_some(), "the fetch brings the body");
    let lists = sim.requests().filter(|r| r.verb == Verb::List || r.verb == Verb::Watch);
    assert!(!lists.is_empty());
    assert!(lists.iter().all(|r| r.metadata_only), "{lists:?}");
    assert_eq!(gets(&sim), 1);
}

#[tokio::test]
async fn namespace_restriction_wins() {
    let sim = ApiServerSim::builder().object(secret("a", "s", 10)).object(secret("b", "s", 10)).start().await.unwrap();
    let store = CachedStore::new(sim.client(), secrets_config().namespace("a")).unwrap();
    let err =
        store.apply_reference(Reference::new("b", "s", None, None).unwrap(), KeyTuple::new(["b", "s"])).unwrap_err();
    assert!(matches!(err, FeedError::OutsideNamespace { .. }), "{err}");
    store.apply_reference(Reference::new("a", "s", None, None).unwrap(), KeyTuple::new(["a", "s"])).unwrap();
    let got = store.get(&["a", "s"]).await.unwrap();
    assert_eq!(got[0].identity().unwrap().namespace, "a");
    let gets = sim.requests().filter(|r| r.verb == Verb::Get);
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].namespace.as_deref(), Some("a"));
    // Feeding a full object goes through the same check.
    let foreign = Arc::new(CompactObject::from_value(&secret("b", "t", 1)).unwrap());
    let err = store.apply_full_object(foreign, KeyTuple::new(["b", "t"])).unwrap_err();
    assert!(matches!(err, FeedError::OutsideNamespace { .. }), "{err}");
}

#[tokio::test]
async fn cluster_scoped_resources() {
    let sim = ApiServerSim::builder()
        .objects((0..3).map(|i| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{i}"), "labels": {"team": "x"}}})))
        .start()
        .await
        .unwrap();
    let config = CachedStoreConfig::new(ApiResource::erase::<Namespace>(&()), false, 1);
    let store = CachedStore::new(sim.client(), config).unwrap();
    for v in sim.list("namespaces", None).unwrap() {
        let name = v["metadata"]["name"].as_str().unwrap();
        store
            .apply_reference(Reference::new("", name, None, Some(&rv_of(&v))).unwrap(), KeyTuple::new([name]))
            .unwrap();
    }
    let got = store.get(&["ns-1"]).await.unwrap();
    assert_eq!(got[0].pointer("/metadata/labels/team").unwrap().as_str(), Some("x"));
    assert_eq!(sim.requests().count(Verb::Get, "namespaces"), 1);
    assert_eq!(store.list().await.unwrap().len(), 3);
    let err = store.apply_reference(Reference::new("x", "y", None, None).unwrap(), KeyTuple::new(["y"])).unwrap_err();
    assert!(matches!(err, FeedError::Scope { scope: "cluster-scoped", .. }), "{err}");
    let secrets = CachedStore::new(sim.client(), secrets_config()).unwrap();
    let err =
        secrets.apply_reference(Reference::new("", "y", None, None).unwrap(), KeyTuple::new(["", "y"])).unwrap_err();
    assert!(matches!(err, FeedError::Scope { scope: "namespaced", .. }), "{err}");
}

/// The watcher's configuration for these Secrets: keys `[namespace, name]`, the usual
/// `ignoreFields`.
fn watcher_indexer() -> Arc<indexer::Indexer> {
    let ignore = ["metadata.managedFields", "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"];
    Arc::new(indexer::Indexer::new(["metadata.namespace", "metadata.name"], ignore).unwrap())
}

/// The preparation step the watcher configures (crates/watcher/src/resource.rs): its indexer,
/// which removes the `ignoreFields` while decoding.
fn watcher_prepare(indexer: Arc<indexer::Indexer>) -> kstore_cached_store::Prepare {
    indexer
}

/// The same removal as a closure: decoded by the fetch, then pruned (two passes).
fn two_pass_prepare(indexer: Arc<indexer::Indexer>) -> kstore_cached_store::Prepare {
    Arc::new(move |obj: &CompactObject| Ok(indexer.prepare_compact(obj, false)?.unwrap_or_else(|| obj.clone())))
}

#[tokio::test]
async fn fetched_objects_are_byte_for_byte_what_the_watch_path_stores() {
    let mut s = secret("default", "p", 10);
    s["metadata"]["managedFields"] = json!([{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]);
    s["metadata"]["annotations"] = json!({
        "ratio": 1.0,
        "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Secret\"}",
        "keep": "me",
    });
    // Floats with and without fraction, big ones, negative ones: the sim serves them as written.
    s["spec"] = json!({"port": 80.0, "weight": 0.5, "n": [-3.0, 1e19, 1e300, 7]});
    let sim = ApiServerSim::builder().object(s).start().await.unwrap();
    let indexer = watcher_indexer();
    let store = CachedStore::new(sim.client(), secrets_config().prepare(watcher_prepare(indexer.clone()))).unwrap();
    feed_from_sim(&sim, &store);
    let fetched = store.get(&["default", "p"]).await.unwrap();
    let fetched = fetched[0].as_bytes();

    // The watch path: kube decodes list items and watch events as `CompactResource`, and the
    // watcher prepares them with `prepare_compact(&obj, false)`.
    let api: Api<CompactResource> = Api::namespaced_with(sim.client(), "default", &ApiResource::erase::<Secret>(&()));
    let listed = api.list(&ListParams::default()).await.unwrap().items.remove(0).into_object();
    // List items of built-in kinds come without kind/apiVersion; the watcher restores them.
    let listed = listed.with_type_meta("v1", "Secret").unwrap().expect("list items carry no kind/apiVersion");
    let got = api.get("p").await.unwrap().into_object();
    for decoded in [listed, got] {
        let watched = indexer.prepare_compact(&decoded, false).unwrap().expect("fields were removed");
        assert_eq!(watched.as_bytes(), fetched);
    }
    // Pruning while decoding (the indexer as the step) equals decoding then pruning.
    let two_pass = CachedStore::new(sim.client(), secrets_config().prepare(two_pass_prepare(indexer.clone()))).unwrap();
    feed_from_sim(&sim, &two_pass);
    assert_eq!(two_pass.get(&["default", "p"]).await.unwrap()[0].as_bytes(), fetched);
    let obj = store.get(&["default", "p"]).await.unwrap();
    assert!(obj[0].pointer("/metadata/managedFields").is_none());
    assert!(obj[0].pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration").is_none());
    assert_eq!(obj[0].pointer("/metadata/annotations/keep").and_then(|n| n.as_str()), Some("me"));
    assert_eq!(obj[0].pointer("/metadata/annotations/ratio").and_then(|n| n.as_u64()), Some(1));
    assert_eq!(obj[0].pointer("/spec/port").and_then(|n| n.as_u64()), Some(80));
    assert_eq!(obj[0].pointer("/spec/weight").and_then(|n| n.as_f64()), Some(0.5));
    assert_eq!(obj[0].pointer("/spec/n").unwrap().to_string(), "[-3,10000000000000000000,1e+300,7]");

    // Without a preparation step the response is cached exactly as served.
    let plain = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &plain);
    let plain = plain.get(&["default", "p"]).await.unwrap();
    assert_eq!(plain[0].pointer("/spec/port").and_then(|n| n.as_f64()), Some(80.0));
    assert!(plain[0].pointer("/spec/port").and_then(|n| n.as_u64()).is_none());
    assert!(plain[0].pointer("/metadata/managedFields").is_some());
}

#[tokio::test(start_paused = true)]
async fn malformed_and_non_object_responses_are_named_errors_and_cache_nothing() {
    let sim = sim_with_secrets("default", 1, 100).await;
    let prepared =
        CachedStore::new(sim.client(), secrets_config().prepare(watcher_prepare(watcher_indexer()))).unwrap();
    let two_pass =
        CachedStore::new(sim.client(), secrets_config().prepare(two_pass_prepare(watcher_indexer()))).unwrap();
    let plain = CachedStore::new(sim.client(), secrets_config()).unwrap();
    let mut sent = 0;
    for store in [&prepared, &two_pass, &plain] {
        feed_from_sim(&sim, store);
        for body in [&b"{\"metadata\":{\"name\":"[..], b"[1,2]", b"\"s-000\"", b"null", b"{} {}", b"\xff"] {
            sim.faults().answer_next(Matcher::verb(Verb::Get).resource("secrets"), 1, body);
            tokio::time::sleep(kstore_cached_store::DEFAULT_MAX_FETCH_BACKOFF).await;
            let detailed = store.get_detailed(&["default", "s-000"]).await.unwrap();
            sent += 1;
            assert_eq!(gets(&sim), sent);
            assert!(detailed.objects.is_empty() && detailed.not_found.is_empty());
            let [failed] = &detailed.failed[..] else { panic!("one failure for {body:?}: {detailed:?}") };
            assert_eq!(failed.identity().key.name(), "s-000");
            if body == b"\xff" {
                // Not UTF-8: kube's client refuses the body before it reaches the decoder.
                assert!(matches!(&**failed, FetchError::Api { source: kube::Error::FromUtf8(_), .. }), "{failed}");
            } else {
                assert!(matches!(**failed, FetchError::Encode { .. }), "{body:?}: {failed}");
                assert!(failed.to_string().contains("could not be encoded"), "{failed}");
            }
            assert_eq!(store.cache_stats().entries, 0, "nothing cached for {body:?}");
        }
        let s = store.cache_stats();
        assert_eq!((s.fetch_errors, s.entries), (6, 0));
        // The next, well-formed answer is fetched and cached.
        tokio::time::sleep(kstore_cached_store::DEFAULT_MAX_FETCH_BACKOFF).await;
        assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1);
        sent += 1;
        assert_eq!(store.cache_stats().entries, 1);
    }
    let non_object = {
        sim.faults().answer_next(Matcher::verb(Verb::Get).resource("secrets"), 1, "[1,2]");
        plain.evict("default", "s-000");
        plain.get_detailed(&["default", "s-000"]).await.unwrap().failed.remove(0)
    };
    assert!(non_object.to_string().contains("the API answered a JSON array, not an object"), "{non_object}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_preparation_is_a_named_error_and_caches_nothing() {
    let sim = sim_with_secrets("default", 1, 100).await;
    let refuse: kstore_cached_store::Prepare =
        Arc::new(|obj: &CompactObject| match obj.pointer("/metadata/labels/app") {
            Some(app) if app.as_str() == Some("s-000") => {
                Err(compact_object::Error::Unsupported { message: "refused".into() })
            }
            _ => Ok(obj.clone()),
        });
    let store = CachedStore::new(sim.client(), secrets_config().prepare(refuse)).unwrap();
    feed_from_sim(&sim, &store);
    let err = store.get(&["default", "s-000"]).await.unwrap_err();
    let StoreError::Fetch { failed, .. } = &err else { panic!("{err}") };
    assert_eq!(failed[0].key.name(), "s-000");
    tokio::time::sleep(kstore_cached_store::DEFAULT_FETCH_BACKOFF).await;
    let detailed = store.get_detailed(&["default", "s-000"]).await.unwrap();
    assert!(matches!(*detailed.failed[0], FetchError::Prepare { .. }), "{}", detailed.failed[0]);
    assert!(detailed.failed[0].to_string().contains("could not be prepared: unsupported input: refused"));
    assert_eq!(store.cache_stats().entries, 0);
    assert_eq!(gets(&sim), 2, "a failed preparation is not cached: every lookup after the backoff fetches");
}

#[tokio::test(start_paused = true)]
async fn a_fetched_object_over_max_object_bytes_is_a_named_error_and_caches_nothing() {
    let sim = sim_with_secrets("default", 1, 100).await;
    // Under a generous bound the object is fetched and cached; its size sets the tight bound.
    let roomy = CachedStore::new(sim.client(), secrets_config().max_object_bytes(1 << 20)).unwrap();
    feed_from_sim(&sim, &roomy);
    let held = roomy.get(&["default", "s-000"]).await.unwrap();
    let size = held.iter().next().unwrap().as_bytes().len() as u64;
    let exact = CachedStore::new(sim.client(), secrets_config().max_object_bytes(size)).unwrap();
    feed_from_sim(&sim, &exact);
    assert_eq!(exact.get(&["default", "s-000"]).await.unwrap().len(), 1, "a bound equal to the size admits it");

    let tight = CachedStore::new(sim.client(), secrets_config().max_object_bytes(size - 1)).unwrap();
    feed_from_sim(&sim, &tight);
    let detailed = tight.get_detailed(&["default", "s-000"]).await.unwrap();
    match &*detailed.failed[0] {
        FetchError::TooLarge { bytes, limit, identity, .. } => {
            assert_eq!((*bytes, *limit), (size, size - 1));
            assert_eq!(identity.key.name(), "s-000");
        }
        other => panic!("{other}"),
    }
    assert!(detailed.failed[0].to_string().contains("over the bound of"), "{}", detailed.failed[0]);
    assert_eq!(tight.cache_stats().entries, 0);
}

#[tokio::test]
async fn secret_data_never_shows_in_debug_output() {
    let sim = sim_with_secrets("default", 2, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config()).unwrap();
    feed_from_sim(&sim, &store);
    let detailed = store.get_detailed(&["default"]).await.unwrap();
    assert_eq!(detailed.objects.len(), 2);
    let stale = store.references().iter().next().unwrap().clone();
    let text = format!(
        "{store:?} {detailed:?} {:?} {stale:?} {:?} {:?}",
        store.cache_stats(),
        secrets_config(),
        store.get_references(&["default"]).unwrap()
    );
    assert!(!text.contains(SECRET_MARKER), "{text}");
    assert!(text.contains("CachedStore"));
}

/// A 404 is remembered for `not_found_ttl`: lookups of that version return nothing without a
/// GET until it passes; a watch event with a new version fetches at once.
#[tokio::test(start_paused = true)]
async fn a_not_found_answer_is_remembered_until_its_ttl() {
    let sim = sim_with_secrets("default", 1, 100).await;
    let ttl = Duration::from_secs(5);
    let store = CachedStore::new(sim.client(), secrets_config().not_found_ttl(ttl)).unwrap();
    feed_from_sim(&sim, &store);
    sim.delete("secrets", Some("default"), "s-000").unwrap();
    for _ in 0..5 {
        let out = store.get_detailed(&["default", "s-000"]).await.unwrap();
        assert_eq!((out.objects.len(), out.not_found.len(), out.failed.len()), (0, 1, 0));
        tokio::time::sleep(ttl / 10).await;
    }
    assert_eq!(gets(&sim), 1, "one GET while the 404 stands");
    let s = store.cache_stats();
    assert_eq!((s.not_found, s.negative_hits, s.misses), (1, 4, 5));
    tokio::time::sleep(ttl).await;
    assert!(store.get(&["default", "s-000"]).await.unwrap().is_empty());
    assert_eq!(gets(&sim), 2, "fetched again once the TTL passed");
    // The object comes back (a new version): the watch event allows a fetch at once.
    let back = sim.create(secret("default", "s-000", 100)).unwrap();
    let m = &back["metadata"];
    let r = Reference::new("default", "s-000", m["uid"].as_str(), m["resourceVersion"].as_str()).unwrap();
    store.apply_reference(r, KeyTuple::new(["default", "s-000"])).unwrap();
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1);
    assert_eq!(gets(&sim), 3);
    store.validate().unwrap();
}

/// Failed fetches back off per object version: no GET until the backoff passes, doubling per
/// consecutive failure up to the bound, a named error meanwhile, reset by a success; other
/// objects are not affected.
#[tokio::test(start_paused = true)]
async fn failed_fetches_back_off_per_object_doubling_to_a_bound_and_reset_on_success() {
    let sim = sim_with_secrets("default", 2, 100).await;
    let (initial, max) = (Duration::from_secs(1), Duration::from_secs(4));
    let store = CachedStore::new(sim.client(), secrets_config().fetch_backoff(initial, max)).unwrap();
    feed_from_sim(&sim, &store);
    let s000 = Matcher::verb(Verb::Get).resource("secrets");
    sim.faults().reject_next(s000.clone(), 5, Rejection::status(500));
    let path = "/api/v1/namespaces/default/secrets/s-000";
    let sent = |sim: &ApiServerSim| sim.requests().path_counts().get(path).copied().unwrap_or(0);

    // Failures 1..=5: lookups get `BackingOff` without a GET for 1, 2, 4, 4, 4 s (bounded),
    // then the next lookup fetches (and fails again while rejections remain).
    for failure in 1..=5u32 {
        let out = store.get_detailed(&["default", "s-000"]).await.unwrap();
        assert!(matches!(&*out.failed[0], FetchError::Api { .. }), "{}", out.failed[0]);
        assert_eq!(sent(&sim), failure as usize);
        let start = Instant::now();
        let wait = (initial * 2u32.pow(failure - 1)).min(max);
        while start.elapsed() < wait {
            let out = store.get_detailed(&["default", "s-000"]).await.unwrap();
            let [failed] = &out.failed[..] else { panic!("still failing: {out:?}") };
            match &**failed {
                FetchError::BackingOff { failures, retry_in, last, .. } => {
                    assert_eq!(*failures, failure);
                    assert!(*retry_in <= max);
                    assert!(matches!(**last, FetchError::Api { .. }));
                    assert!(failed.to_string().contains("default/s-000"), "{failed}");
                }
                other => panic!("backing off expected, got {other}"),
            }
            assert_eq!(sent(&sim), failure as usize, "no GET while backing off");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // Another object was never held back.
    assert_eq!(store.get(&["default", "s-001"]).await.unwrap().len(), 1);
    // The sixth GET succeeds (the rejections are used up) and resets the streak.
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1);
    assert_eq!(sent(&sim), 6);
    store.evict("default", "s-000");
    sim.faults().reject_next(s000, 1, Rejection::status(500));
    assert!(store.get(&["default", "s-000"]).await.is_err());
    tokio::time::sleep(initial).await;
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1, "back to the initial backoff");
    let s = store.cache_stats();
    assert_eq!(s.fetch_errors, 6);
    assert!(s.backed_off >= 5, "{s:?}");
    store.validate().unwrap();
}

/// `max_concurrent_fetches` limits the store, not one call: separate lookups share the permits.
#[tokio::test(start_paused = true)]
async fn the_fetch_limit_is_store_wide() {
    let sim = sim_with_secrets("default", 6, 100).await;
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_secs(1));
    let store = CachedStore::new(sim.client(), secrets_config().max_concurrent_fetches(2)).unwrap();
    feed_from_sim(&sim, &store);
    let start = Instant::now();
    let lookups = (0..6).map(|i| {
        let store = store.handle();
        tokio::spawn(async move {
            let name = format!("s-{i:03}");
            store.get(&["default", &name]).await.unwrap();
            Instant::now()
        })
    });
    let mut done: Vec<Duration> =
        futures::future::join_all(lookups).await.into_iter().map(|t| t.unwrap() - start).collect();
    done.sort();
    let secs: Vec<u64> = done.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, [1, 1, 2, 2, 3, 3], "two GETs at a time over six separate lookups");
    assert_eq!(gets(&sim), 6);
}

/// No lookup waits longer than one fetch timeout: not for a stale answer retried (each GET
/// slow), not for fetches queued behind the store-wide limit.
#[tokio::test(start_paused = true)]
async fn no_lookup_waits_longer_than_one_fetch_timeout() {
    let sim = sim_with_secrets("default", 3, 100).await;
    let timeout = Duration::from_secs(10);
    let config = secrets_config().fetch_timeout(Some(timeout)).max_concurrent_fetches(1);
    let store = CachedStore::new(sim.client(), config).unwrap();
    feed_from_sim(&sim, &store);
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_secs(6));

    // Queued: the first GET ends at 6 s, the second would end at 12 s, the third at 18 s.
    let start = Instant::now();
    let out = store.get_detailed(&["default"]).await.unwrap();
    assert_eq!(start.elapsed(), timeout);
    assert_eq!(out.objects.len(), 1);
    assert_eq!(out.failed.len(), 2);
    assert!(out.failed.iter().all(|e| matches!(**e, FetchError::Timeout { after, .. } if after == timeout)));

    // Stale twice: the reference is newer than the server's object; two 6 s GETs.
    let r = Reference::new("default", "s-002", None, Some("999999")).unwrap();
    store.apply_reference(r, KeyTuple::new(["default", "s-002"])).unwrap();
    let start = Instant::now();
    let out = store.get_detailed(&["default", "s-002"]).await.unwrap();
    assert_eq!(start.elapsed(), timeout, "one timeout, not two GETs' worth");
    assert!(matches!(*out.failed[0], FetchError::Timeout { .. }), "{}", out.failed[0]);
}

/// Eviction is quick_cache's policy as documented on `CachedStore`: not LRU (a read does not
/// protect an entry) and not insertion order. A store bounded to fewer than 64 entries has one
/// shard; its hot segment (97 % of the bound, here 2 entries) keeps the entries admitted first,
/// later ones enter the cold segment, and room is made by evicting the oldest cold entry — here
/// the one fetched last. (The Go original's docs promised insertion order.)
#[tokio::test]
async fn eviction_keeps_the_first_admitted_and_ignores_reads() {
    let sim = sim_with_secrets("default", 5, 100).await;
    let store = CachedStore::new(sim.client(), secrets_config().max_bytes(None).max_entries(Some(3))).unwrap();
    feed_from_sim(&sim, &store);
    for name in ["s-000", "s-001", "s-002"] {
        store.get(&["default", name]).await.unwrap();
    }
    // Read the first one again and again: a hit, which quick_cache never sees.
    for _ in 0..10 {
        store.get(&["default", "s-000"]).await.unwrap();
    }
    store.get(&["default", "s-003"]).await.unwrap();
    assert_eq!(gets(&sim), 4);
    let s = store.cache_stats();
    assert_eq!((s.entries, s.evictions), (3, 1));
    // s-000 and s-001 (hot) are still cached; s-002, fetched last before s-003, was evicted.
    for name in ["s-000", "s-001", "s-003"] {
        store.get(&["default", name]).await.unwrap();
    }
    assert_eq!(gets(&sim), 4, "s-000, s-001 and s-003 still cached");
    store.get(&["default", "s-002"]).await.unwrap();
    assert_eq!(gets(&sim), 5, "s-002 was the one evicted");
    store.validate().unwrap();
}
