//! Fault-injection convergence: a `ResourceSet` (two full stores, one with non-unique keys, and
//! an on-demand store) runs against apiserver-sim through a real `kube::Client` while a seeded
//! workload creates, updates (including index-key changes) and deletes objects and each scenario
//! injects its fault. Once the fault stops, every store must equal the simulator's state within a
//! bounded time: same identities, uids, keys and resourceVersions, no lost, ghost or duplicate
//! object, `validate()` passing, and CachedStore reads returning the current objects.
//!
//! Each scenario is one test running all its seeds concurrently (every seed has its own
//! simulator). A failure names the scenario and seed; replay one with
//! `KSTORE_SEED=<n> KSTORE_SCENARIO=<name> cargo test -p kstore-watcher --test reliability`.
//! `KSTORE_SEEDS=<n>` changes the number of seeds, `KSTORE_BURST=<n>` the size of the relist
//! burst, and `KSTORE_SOAK_MINUTES=<m>` the duration of the ignored `soak` test.

mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apiserver_sim::generate::Rng;
use apiserver_sim::{ApiServerSim, Matcher, Rejection, Verb};
use kstore_watcher::{ResourceSet, SetOptions, WatchConfig};
use store_types::Store;
use support::{BadKind, Checked, OpCounts, Workload, check_skipped, cluster, converge, env_u64, seeds, selected};

/// Seeds per scenario in CI.
const SEEDS: u64 = 20;
/// Bound on the initial sync and on convergence after the faults stop.
const SYNC_WITHIN: Duration = Duration::from_secs(30);
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
/// Seeds run concurrently (each with its own simulator).
const CONCURRENT: usize = 20;
/// Bound on waiting for a fault to be observed in the request log.
const OBSERVE_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    WatchEnded,
    WatchAborted,
    Gone410,
    ExpiredContinue,
    RejectList,
    RejectWatch,
    RejectGet,
    Latency,
    MalformedEvent,
    PausedPastIdleTimeout,
    Restart,
    RelistBurst,
    RecreatedWhileDisconnected,
    Mixed,
    ConcurrentReaders,
    DeepObject,
    UndecodableItem,
    PanickingCallback,
    Gone410MidStream,
}

use Scenario::*;

const ALL: [Scenario; 19] = [
    WatchEnded,
    WatchAborted,
    Gone410,
    ExpiredContinue,
    RejectList,
    RejectWatch,
    RejectGet,
    Latency,
    MalformedEvent,
    PausedPastIdleTimeout,
    Restart,
    RelistBurst,
    RecreatedWhileDisconnected,
    Mixed,
    ConcurrentReaders,
    DeepObject,
    UndecodableItem,
    PanickingCallback,
    Gone410MidStream,
];

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            WatchEnded => "watch_ended",
            WatchAborted => "watch_aborted",
            Gone410 => "gone_410",
            ExpiredContinue => "expired_continue",
            RejectList => "reject_list",
            RejectWatch => "reject_watch",
            RejectGet => "reject_get",
            Latency => "latency",
            MalformedEvent => "malformed_event",
            PausedPastIdleTimeout => "paused_past_idle_timeout",
            Restart => "restart",
            RelistBurst => "relist_burst",
            RecreatedWhileDisconnected => "recreated_while_disconnected",
            Mixed => "mixed",
            ConcurrentReaders => "concurrent_readers",
            DeepObject => "deep_object",
            UndecodableItem => "undecodable_item",
            PanickingCallback => "panicking_callback",
            Gone410MidStream => "gone_410_mid_stream",
        }
    }

    /// Bad objects in the cluster the watchers first list.
    fn initial_bad(self) -> &'static [BadKind] {
        match self {
            DeepObject => &[BadKind::Deep, BadKind::Deep],
            UndecodableItem => &[BadKind::HugeService, BadKind::HugeSecret, BadKind::UnlabelledSlice],
            _ => &[],
        }
    }

    /// Odd seeds use streaming lists, except where the fault needs paged lists.
    fn streaming(self, seed: u64) -> bool {
        seed % 2 == 1 && !matches!(self, ExpiredContinue | RejectList | RelistBurst)
    }

    fn page_size(self) -> u32 {
        match self {
            ExpiredContinue => 1,
            RelistBurst => 4,
            _ => 7,
        }
    }
}

/// What one seed did and checked.
#[derive(Debug, Default, Clone, Copy)]
struct SeedReport {
    faults: u64,
    /// Reads checked by concurrent readers (snapshot buckets, CachedStore freshness).
    reader_checks: u64,
    /// Bad objects in the simulator at the end, each checked absent from its store and counted.
    bad: u64,
    ops: OpCounts,
    checked: Checked,
}

/// 500, 503 or 429 with Retry-After, by seed.
fn rejection(seed: u64) -> Rejection {
    match seed % 3 {
        0 => Rejection::status(500),
        1 => Rejection::status(503),
        _ => Rejection::too_many_requests(1),
    }
}

/// Waits (bounded) until `n` requests matching `pred` are in the log; returns how many.
async fn observe(
    sim: &ApiServerSim,
    what: &str,
    n: usize,
    pred: impl Fn(&apiserver_sim::RequestRecord) -> bool,
) -> Result<u64, String> {
    let deadline = tokio::time::Instant::now() + OBSERVE_WITHIN;
    loop {
        let found = sim.requests().filter(&pred).len();
        if found >= n {
            return Ok(found as u64);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("fault never observed: {what} ({found} of {n})"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn watches_open(sim: &ApiServerSim, n: usize) -> Result<(), String> {
    tokio::time::timeout(OBSERVE_WITHIN, sim.wait_for_watches(n)).await.map_err(|_| format!("{n} watches never open"))
}

/// Reads every secret once so the CachedStore holds them: a stale cache entry after the fault
/// would then show in the final reads.
async fn warm_cache(set: &ResourceSet) {
    if let Some(c) = set.watcher("secrets").and_then(|w| w.store().as_cached()) {
        let _ = Store::list(c).await;
    }
}

/// The list requests that start a (re)list: a first page, or a streaming list.
fn is_relist(r: &apiserver_sim::RequestRecord) -> bool {
    (r.verb == Verb::List && r.query_param("continue").is_none())
        || r.query_param("sendInitialEvents").as_deref() == Some("true")
}

/// Ends every running watch with a 410 ERROR event; waits (bounded) until every stream told
/// has relisted. Returns how many streams were told.
async fn expire_and_relist(sim: &ApiServerSim, streams: usize) -> Result<u64, String> {
    watches_open(sim, streams).await?;
    let before = sim.requests().filter(is_relist).len();
    let told = sim.faults().expire_watches();
    observe(sim, "relists after a 410 ending a running watch", before + told, is_relist).await?;
    Ok(told as u64)
}

async fn run_seed(sc: Scenario, seed: u64) -> Result<SeedReport, String> {
    let mut objects = cluster(seed);
    let first_namespace = support::namespaces_of(&objects).first().cloned().ok_or("no namespace")?;
    for (n, kind) in sc.initial_bad().iter().enumerate() {
        objects.push(kind.object(&first_namespace, n as u64));
    }
    let sim = ApiServerSim::builder()
        .objects(objects.clone())
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let mut wl = Workload::new(seed, &objects);
    let client = if sc == PausedPastIdleTimeout {
        // The watch's idle timeout: kube's own is timeoutSeconds + 5 s (295 s, not
        // configurable through WatchOptions), so the transport's read timeout plays that role.
        let mut cfg = sim.config();
        cfg.read_timeout = Some(Duration::from_secs(1));
        cfg.reset_reader_on_write = true;
        kube::Client::try_from(cfg).map_err(|e| e.to_string())?
    } else {
        sim.client()
    };
    // Half the seeds (2 and 3 mod 4, independent of the list mode) watch per namespace: one
    // stream per namespace, relists published per namespace.
    let per_namespace = seed % 4 >= 2;
    let namespaces = support::namespaces_of(&objects);
    let mut yaml = support::config(per_namespace.then_some(namespaces.as_slice()));
    if sc == UndecodableItem {
        yaml = format!("maxObjectBytes: {}\n{yaml}", support::SMALL_OBJECT_BOUND);
    }
    let config = WatchConfig::from_yaml(&yaml).map_err(|e| e.to_string())?;
    let streams = if per_namespace { 3 * namespaces.len() } else { 3 };
    let mut options = SetOptions {
        streaming_lists: sc.streaming(seed),
        page_size: Some(sc.page_size()),
        debounce: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    // Panics thrown by the callbacks of `panicking_callback`: on_sync_complete of one
    // resource, and every other on_change call (the first included).
    let thrown = Arc::new(AtomicU64::new(0));
    let on_change_calls = Arc::new(AtomicU64::new(0));
    if sc == PanickingCallback {
        let t = thrown.clone();
        options.on_sync_complete = Some(Arc::new(move |resource, _| {
            if resource == "services" {
                t.fetch_add(1, Ordering::SeqCst);
                panic!("injected: on_sync_complete of {resource}");
            }
        }));
        let (t, calls) = (thrown.clone(), on_change_calls.clone());
        options.on_change = Some(Arc::new(move |resource, _| {
            if calls.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                t.fetch_add(1, Ordering::SeqCst);
                panic!("injected: on_change of {resource}");
            }
        }));
    }
    let faults = sim.faults();
    let mut fired = 0u64;
    let mut reader_checks = 0u64;

    if sc == ExpiredContinue {
        // Slow pages, so the initial paged lists are in progress when the log is compacted.
        faults.set_latency(Matcher::verb(Verb::List), Duration::from_millis(50));
    }
    let set = ResourceSet::start(client, &config, options).await.map_err(|e| e.to_string())?;
    if sc == ExpiredContinue {
        observe(&sim, "a continued list", 1, |r| r.verb == Verb::List && r.query_param("continue").is_some()).await?;
        let expired = |sim: &ApiServerSim| {
            sim.requests()
                .filter(|r| r.verb == Verb::List && r.status == 410 && r.query_param("continue").is_some())
                .len()
        };
        // A write and compaction while pages are pending; again (bounded) if every list
        // happened to be between pages' responses and none was caught.
        for _ in 0..5 {
            wl.run(&sim, 1).await?;
            faults.compact();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while expired(&sim) == 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if expired(&sim) > 0 {
                break;
            }
        }
        fired = observe(&sim, "410 on a continue token", 1, |r| {
            r.verb == Verb::List && r.status == 410 && r.query_param("continue").is_some()
        })
        .await?;
        faults.clear_latency();
    }
    tokio::time::timeout(SYNC_WITHIN, set.wait_for_sync()).await.map_err(|_| "initial sync timed out".to_string())?;
    warm_cache(&set).await;
    wl.run(&sim, 12).await?;
    watches_open(&sim, streams).await?;

    match sc {
        WatchEnded => {
            for _ in 0..3 {
                watches_open(&sim, streams).await?;
                fired += faults.end_watches() as u64;
                wl.run(&sim, 5).await?;
            }
        }
        WatchAborted => {
            wl.run(&sim, 3).await?;
            fired += faults.abort_watches() as u64;
            wl.run(&sim, 10).await?;
        }
        Gone410 => {
            let relists = |sim: &ApiServerSim| {
                sim.requests()
                    .filter(|r| {
                        (r.verb == Verb::List && r.query_param("continue").is_none())
                            || r.query_param("sendInitialEvents").as_deref() == Some("true")
                    })
                    .len()
            };
            let before = relists(&sim);
            faults.pause_events();
            wl.run(&sim, 10).await?;
            faults.compact();
            fired += faults.end_watches() as u64;
            faults.resume_events();
            wl.run(&sim, 5).await?;
            // Every watcher relisted (paged or streaming) after its 410.
            observe(&sim, "relists after 410", before + streams, |r| {
                (r.verb == Verb::List && r.query_param("continue").is_none())
                    || r.query_param("sendInitialEvents").as_deref() == Some("true")
            })
            .await?;
        }
        ExpiredContinue => wl.run(&sim, 5).await?,
        RejectList => {
            // A forced relist (410) whose list requests are rejected.
            let code = rejection(seed).code;
            faults.pause_events();
            wl.run(&sim, 5).await?;
            faults.compact();
            faults.reject_next(Matcher::verb(Verb::List), 3, rejection(seed));
            faults.end_watches();
            faults.resume_events();
            wl.run(&sim, 5).await?;
            fired = observe(&sim, "rejected list", 1, |r| r.verb == Verb::List && r.status == code).await?;
        }
        RejectWatch => {
            let code = rejection(seed).code;
            faults.reject_next(Matcher::verb(Verb::Watch), 3, rejection(seed));
            faults.end_watches();
            wl.run(&sim, 10).await?;
            fired = observe(&sim, "rejected watch", 1, |r| r.verb == Verb::Watch && r.status == code).await?;
        }
        RejectGet => {
            let code = rejection(seed).code;
            let cached = set.watcher("secrets").and_then(|w| w.store().as_cached()).ok_or("no cached store")?;
            cached.clear_cache();
            // kube's client retries 429/503 itself (a few times, with backoff): three rejections
            // reach it as one slow read or as one error, depending on the code.
            faults.reject_next(Matcher::verb(Verb::Get).resource("secrets"), 3, rejection(seed));
            wl.run(&sim, 5).await?;
            // Reads during the fault may fail (a named error), never panic or hand out a
            // wrong object. Read until a read has met the fault (bounded).
            let rejected =
                |sim: &ApiServerSim| sim.requests().filter(|r| r.verb == Verb::Get && r.status == code).len();
            for _ in 0..50 {
                if rejected(&sim) > 0 {
                    break;
                }
                cached.clear_cache();
                for o in sim.list("secrets", None).unwrap_or_default() {
                    let ns = o.pointer("/metadata/namespace").and_then(|v| v.as_str()).unwrap_or_default();
                    let name = o.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or_default();
                    if let Ok(got) = Store::get(cached, &[ns, name]).await {
                        for g in got.iter() {
                            if g.pointer("/metadata/name").and_then(|n| n.as_str()) != Some(name) {
                                return Err(format!("read {ns}/{name} during the fault gave another object"));
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            fired = observe(&sim, "rejected get", 1, |r| r.verb == Verb::Get && r.status == code).await?;
            wl.run(&sim, 5).await?;
        }
        Latency => {
            faults.set_latency(Matcher::any(), Duration::from_millis(150));
            wl.run(&sim, 10).await?;
            fired += faults.end_watches() as u64;
            wl.run(&sim, 10).await?;
            observe(&sim, "re-watch under latency", 6, |r| r.verb == Verb::Watch).await?;
        }
        MalformedEvent => {
            for _ in 0..3 {
                faults.malformed_event();
                wl.run(&sim, 4).await?;
                fired += 1;
            }
        }
        PausedPastIdleTimeout => {
            let watches = sim.requests().count(Verb::Watch, "endpointslices.discovery.k8s.io");
            faults.pause_events();
            wl.run(&sim, 10).await?;
            // Held until the client gave up on the silent stream and watched again.
            observe(&sim, "re-watch after the idle timeout", watches + 1, |r| {
                r.verb == Verb::Watch && r.resource.as_deref() == Some("endpointslices.discovery.k8s.io")
            })
            .await?;
            fired += 1;
            faults.resume_events();
        }
        Restart => {
            wl.run(&sim, 3).await?;
            faults.restart();
            fired += 1;
            wl.run(&sim, 10).await?;
        }
        RelistBurst => {
            let lists = |sim: &ApiServerSim| sim.requests().count(Verb::List, "endpointslices.discovery.k8s.io");
            let before = lists(&sim);
            faults.pause_events();
            // A write the watchers have not seen, then compaction: their resume point is gone.
            wl.run(&sim, 3).await?;
            faults.compact();
            faults.set_latency(Matcher::verb(Verb::List), Duration::from_millis(100));
            faults.end_watches();
            faults.resume_events();
            // The first page of the relist has been served; the next pages are slow: burst now.
            observe(&sim, "relist started", before + 1, |r| {
                r.verb == Verb::List && r.resource.as_deref() == Some("endpointslices.discovery.k8s.io")
            })
            .await?;
            wl.burst(&sim, env_u64("KSTORE_BURST").unwrap_or(1000) as usize).await?;
            fired += 1;
            faults.clear_latency();
        }
        RecreatedWhileDisconnected => {
            faults.reject_for(
                Matcher::verbs(&[Verb::Watch, Verb::List]),
                Duration::from_secs(5),
                Rejection::status(503),
            );
            faults.end_watches();
            for _ in 0..3 {
                wl.recreate(&sim)?;
                wl.run(&sim, 3).await?;
            }
            if seed.is_multiple_of(2) {
                faults.compact();
            }
            fired = observe(&sim, "rejected reconnect", 1, |r| r.status == 503).await?;
        }
        Mixed => {
            // Three faults drawn by the seed, back to back, each landing wherever the
            // previous one left the watchers (backoff, relist, re-watch).
            let mut rng = Rng::new(seed ^ 0xF417);
            for _ in 0..3 {
                match rng.range(0, 6) {
                    0 => {
                        faults.end_watches();
                    }
                    1 => {
                        faults.abort_watches();
                    }
                    2 => {
                        faults.pause_events();
                        wl.run(&sim, 3).await?;
                        faults.compact();
                        faults.end_watches();
                        faults.resume_events();
                    }
                    3 => faults.malformed_event(),
                    4 => faults.restart(),
                    5 => {
                        faults.reject_next(Matcher::verb(Verb::Watch), 2, Rejection::status(500));
                        faults.end_watches();
                    }
                    _ => {
                        faults.set_latency(Matcher::any(), Duration::from_millis(100));
                        wl.run(&sim, 3).await?;
                        faults.clear_latency();
                    }
                }
                fired += 1;
                wl.run(&sim, 4).await?;
            }
        }
        DeepObject | UndecodableItem => {
            // Bad objects arrive as watch events between ordinary writes, then are listed
            // again by a relist after a 410 (in pages or a streaming list).
            let kinds: &[BadKind] = if sc == DeepObject {
                &[BadKind::Deep, BadKind::Deep]
            } else {
                &[BadKind::HugeService, BadKind::HugeSecret, BadKind::UnlabelledSlice]
            };
            for &kind in kinds {
                wl.run(&sim, 3).await?;
                wl.inject(&sim, kind)?;
                fired += 1;
            }
            wl.run(&sim, 3).await?;
            fired += expire_and_relist(&sim, streams).await?;
            wl.run(&sim, 5).await?;
        }
        PanickingCallback => {
            // Changes after the sync: every other notification panics.
            for _ in 0..4 {
                wl.run(&sim, 5).await?;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            if on_change_calls.load(Ordering::SeqCst) == 0 {
                return Err("on_change was never called".into());
            }
            fired = thrown.load(Ordering::SeqCst);
        }
        Gone410MidStream => {
            // A running watch ends with 410 Expired again and again, under writes.
            for _ in 0..4 {
                wl.run(&sim, 4).await?;
                fired += expire_and_relist(&sim, streams).await?;
            }
        }
        ConcurrentReaders => {
            // Readers run through churn, a 410 relist and a restart; each read checks what a
            // render relies on (see `reader`).
            let stop = Arc::new(AtomicBool::new(false));
            let progress = Arc::new(AtomicU64::new(0));
            let mut fresh_reads = 0;
            let slices = set.watcher("endpointslices").and_then(|w| w.store().as_memory()).ok_or("no slices")?;
            let cached = set.watcher("secrets").and_then(|w| w.store().as_cached()).ok_or("no cached store")?;
            let readers: Vec<_> = (0..4)
                .map(|r| {
                    tokio::spawn(reader(seed * 8 + r, slices.clone(), cached.clone(), stop.clone(), progress.clone()))
                })
                .collect();
            // Evictions race the readers' fetches (single flight vs. eviction and invalidation).
            let evictor = {
                let (cached, stop) = (cached.clone(), stop.clone());
                let mut rng = Rng::new(seed ^ 0xE71C);
                tokio::spawn(async move {
                    let mut evictions = 0u64;
                    for i in 0..100_000u64 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let refs = cached.references().list();
                        if let Some(r) = refs.get((rng.next_u64() % refs.len().max(1) as u64) as usize) {
                            cached.evict(r.namespace(), r.name());
                            evictions += 1;
                        }
                        if i % 50 == 49 {
                            cached.clear_cache();
                            cached.sweep_expired();
                        }
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    evictions
                })
            };
            wl.run(&sim, 10).await?;
            faults.pause_events();
            wl.run(&sim, 5).await?;
            faults.compact();
            fired += faults.end_watches() as u64;
            faults.resume_events();
            wl.run(&sim, 10).await?;
            faults.restart();
            fired += 1;
            wl.run(&sim, 10).await?;
            // Let the readers see the recovery too: until every reader has made a few fresh
            // cached reads since now (bounded; a loaded machine may starve them for a while).
            let mark = progress.load(Ordering::Relaxed);
            let deadline = tokio::time::Instant::now() + OBSERVE_WITHIN;
            while progress.load(Ordering::Relaxed) < mark + 4 * 5 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.store(true, Ordering::Relaxed);
            fired += evictor.await.map_err(|e| format!("evictor panicked: {e}"))?;
            for r in readers {
                let (checks, fresh) = r.await.map_err(|e| format!("reader panicked: {e}"))??;
                reader_checks += checks + fresh;
                fresh_reads += fresh;
            }
            if fresh_reads < 4 * 5 {
                return Err(format!("the readers barely ran ({reader_checks} checks, {fresh_reads} cached reads)"));
            }
        }
    }
    faults.reset();
    wl.run(&sim, 8).await?;
    let checked = converge(&sim, &set, &wl.bad, CONVERGE_WITHIN).await?;
    check_skipped(&set, &wl.bad)?;
    set.stop();
    // Every thrown panic was caught and counted, and nothing else was (a callback may still
    // be running on the debouncer's task when `stop` returns: bounded wait).
    let caught = || set.watchers().map(|(_, w)| w.callback_panics()).sum::<u64>();
    let deadline = tokio::time::Instant::now() + OBSERVE_WITHIN;
    while caught() != thrown.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if caught() != thrown.load(Ordering::SeqCst) {
        return Err(format!("{} callback panics counted, {} thrown", caught(), thrown.load(Ordering::SeqCst)));
    }
    if set.watchers().any(|(_, w)| !matches!(w.health(), kstore_watcher::Health::Stopped)) {
        return Err(format!("health after stop: {:?}", set.health()));
    }
    let bad = wl.bad.values().sum::<usize>() as u64;
    Ok(SeedReport { faults: fired, reader_checks, bad, ops: wl.ops, checked })
}

/// A render-like reader: on every MemoryStore snapshot, a random slice is in the bucket of its
/// own keys and that bucket holds only objects with those keys; every CachedStore read returns
/// an object at least as new as the reference seen before the read (never stale). Returns the
/// number of checks; errors of reads during faults are allowed (named errors), wrong answers
/// are not.
async fn reader(
    seed: u64,
    slices: memory_store::ReadHandle<compact_object::CompactObject>,
    cached: cached_store::CachedHandle,
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
) -> Result<(u64, u64), String> {
    let mut rng = Rng::new(seed);
    let mut checks = 0;
    let mut fresh = 0;
    let name_of = |o: &compact_object::CompactObject, p: &str| o.pointer(p).and_then(|n| n.as_str().map(str::to_owned));
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let snap = slices.snapshot();
        let all = snap.list();
        if !all.is_empty() {
            let o = &all[(rng.next_u64() % all.len() as u64) as usize];
            let ns = name_of(o, "/metadata/namespace").unwrap_or_default();
            let name = name_of(o, "/metadata/name").unwrap_or_default();
            let svc = name_of(o, &format!("/metadata/labels/{}", support::SERVICE_LABEL.replace('/', "~1")))
                .unwrap_or_default();
            let bucket = snap.get(&[&ns, &svc]).map_err(|e| e.to_string())?;
            if !bucket.iter().any(|b| name_of(b, "/metadata/name").as_deref() == Some(&*name)) {
                return Err(format!("{ns}/{name} missing from the bucket of its keys [{ns}, {svc}]"));
            }
            if let Some(b) = bucket.iter().find(|b| {
                name_of(b, &format!("/metadata/labels/{}", support::SERVICE_LABEL.replace('/', "~1"))).as_deref()
                    != Some(&*svc)
            }) {
                return Err(format!("bucket [{ns}, {svc}] holds {:?}", name_of(b, "/metadata/name")));
            }
        }
        let refs = cached.references().list();
        if !refs.is_empty() {
            let r = &refs[(rng.next_u64() % refs.len() as u64) as usize];
            let before: u64 = r.resource_version().and_then(|v| v.parse().ok()).unwrap_or_default();
            if let Ok(got) = Store::get(&cached, &[r.namespace(), r.name()]).await
                && let Some(o) = got.first()
            {
                let rv: u64 = name_of(o, "/metadata/resourceVersion").and_then(|v| v.parse().ok()).unwrap_or_default();
                if rv < before {
                    return Err(format!("stale read of {}/{}: rv {rv} < reference {before}", r.namespace(), r.name()));
                }
                fresh += 1;
                progress.fetch_add(1, Ordering::Relaxed);
            }
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((checks, fresh))
}

/// Runs every selected seed of a scenario concurrently; panics naming each failed seed.
async fn run_scenario(sc: Scenario, default_seeds: u64) -> Option<SeedReport> {
    if !selected(sc.name()) {
        eprintln!("{}: skipped (KSTORE_SCENARIO)", sc.name());
        return None;
    }
    let seeds = seeds(default_seeds);
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut total = SeedReport::default();
    let mut results = Vec::new();
    // At most CONCURRENT seeds (simulators) at once.
    for chunk in seeds.chunks(CONCURRENT) {
        let tasks: Vec<_> = chunk.iter().map(|&seed| (seed, tokio::spawn(run_seed(sc, seed)))).collect();
        for (seed, task) in tasks {
            results.push((seed, task.await));
        }
    }
    for (seed, result) in results {
        match result {
            Ok(Ok(r)) => {
                total.faults += r.faults;
                total.reader_checks += r.reader_checks;
                total.bad += r.bad;
                total.ops.add(&r.ops);
                total.checked.full += r.checked.full;
                total.checked.references += r.checked.references;
                total.checked.cached_reads += r.checked.cached_reads;
            }
            Ok(Err(e)) => failures.push(format!("scenario={} seed={seed}: {e}", sc.name())),
            Err(e) => failures.push(format!("scenario={} seed={seed}: panicked: {e}", sc.name())),
        }
    }
    println!(
        "reliability: scenario={} seeds={} faults={} ops={} (created {}, modified {}, relabelled {}, deleted {}, recreated {}) \
         objects_checked={} references_checked={} cached_reads={} reader_checks={} bad_objects={} elapsed={:.1}s",
        sc.name(),
        seeds.len(),
        total.faults,
        total.ops.total(),
        total.ops.created,
        total.ops.modified,
        total.ops.relabelled,
        total.ops.deleted,
        total.ops.recreated,
        total.checked.full,
        total.checked.references,
        total.checked.cached_reads,
        total.reader_checks,
        total.bad,
        start.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        let replay: Vec<String> = failures
            .iter()
            .filter_map(|f| f.split_whitespace().nth(1).and_then(|s| s.strip_prefix("seed=")))
            .map(|seed| {
                format!(
                    "  KSTORE_SEED={} KSTORE_SCENARIO={} cargo test -p kstore-watcher --test reliability",
                    seed.trim_end_matches(':'),
                    sc.name()
                )
            })
            .collect();
        panic!(
            "{} of {} seeds failed:\n{}\nreplay:\n{}",
            failures.len(),
            seeds.len(),
            failures.join("\n"),
            replay.join("\n")
        );
    }
    Some(total)
}

macro_rules! scenario_tests {
    ($($name:ident => $sc:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            assert_eq!($sc.name(), stringify!($name));
            run_scenario($sc, SEEDS).await;
        }
    )*};
}

scenario_tests! {
    watch_ended => WatchEnded,
    watch_aborted => WatchAborted,
    gone_410 => Gone410,
    expired_continue => ExpiredContinue,
    reject_list => RejectList,
    reject_watch => RejectWatch,
    reject_get => RejectGet,
    latency => Latency,
    malformed_event => MalformedEvent,
    paused_past_idle_timeout => PausedPastIdleTimeout,
    restart => Restart,
    relist_burst => RelistBurst,
    recreated_while_disconnected => RecreatedWhileDisconnected,
    mixed => Mixed,
    concurrent_readers => ConcurrentReaders,
    undecodable_item => UndecodableItem,
    panicking_callback => PanickingCallback,
    gone_410_mid_stream => Gone410MidStream,
}

/// Runs on large stacks: the simulator and the harness build, serialize and drop objects
/// nested deeper than compact-object's `MAX_DEPTH` with serde_json, which recurses.
#[test]
fn deep_object() {
    common::on_big_stacks(async {
        run_scenario(DeepObject, SEEDS).await;
    });
}

/// Every scenario, round after round with fresh seeds, for `KSTORE_SOAK_MINUTES` (default 1)
/// with `KSTORE_SEEDS` seeds per round (run by `cargo xtask soak`).
#[test]
#[ignore = "soak: run by cargo xtask soak"]
fn soak() {
    // Large stacks for `deep_object` (see there).
    common::on_big_stacks(soak_rounds());
}

async fn soak_rounds() {
    let minutes = env_u64("KSTORE_SOAK_MINUTES").unwrap_or(1);
    let per_round = env_u64("KSTORE_SEEDS").unwrap_or(SEEDS);
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    let mut round = 0u64;
    let mut seeds_run = 0u64;
    // At least one round, then until the time is up (bounded in rounds too).
    loop {
        for sc in ALL {
            if !selected(sc.name()) {
                continue;
            }
            let base = 1_000 + round * per_round; // beyond the CI seeds
            let seeds: Vec<u64> = (base..base + per_round).collect();
            for chunk in seeds.chunks(CONCURRENT) {
                let tasks: Vec<_> = chunk.iter().map(|&seed| (seed, tokio::spawn(run_seed(sc, seed)))).collect();
                for (seed, task) in tasks {
                    match task.await {
                        Ok(Ok(_)) => seeds_run += 1,
                        Ok(Err(e)) => panic!(
                            "scenario={} seed={seed}: {e}\nreplay: KSTORE_SEED={seed} KSTORE_SCENARIO={} cargo test -p kstore-watcher --test reliability",
                            sc.name(),
                            sc.name()
                        ),
                        Err(e) => panic!("scenario={} seed={seed}: panicked: {e}", sc.name()),
                    }
                }
            }
        }
        round += 1;
        if Instant::now() >= until || round >= 1_000_000 {
            break;
        }
    }
    println!("soak: {round} rounds, {seeds_run} scenario×seed runs in {minutes} min");
}
