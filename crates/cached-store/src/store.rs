//! [`CachedStore`]: references indexed in a `MemoryStore`, objects in a bounded TTL cache —
//! the type, its construction, its reads and the `Store` impl. The feeding API is in
//! `feed.rs`, single-flight fetches in `flight.rs`, the clock and sweeper in `clock.rs`,
//! statistics in `stats.rs`, cache accounting in `weigher.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_trait::async_trait;
use compact_object::CompactObject;
use futures::future;
use memory_store::{MemoryStore, Snapshot};
#[cfg(not(kstore_loom))]
use quick_cache::DefaultHashBuilder;
#[cfg(not(kstore_loom))]
use quick_cache::OptionsBuilder;
use store_types::{GetFuture, Identity, Objects, Operation, Result, Store, StoreError};

use crate::clock::{Clock, millis};
use crate::config::{CachedStoreConfig, ConfigError};
use crate::fetch::{FetchError, Fetcher};
use crate::flight::{Outcome, Record};
use crate::reference::Reference;
use crate::stats::{CacheStats, Counters, Occupancy};
use crate::sync::{self, Cache, Mutex};
use crate::weigher::{EntryWeighter, EvictionHook, ObjectCache, Weighing, clear_slot_if};

/// The shared state of a [`CachedStore`] and its clones.
pub(crate) struct Inner {
    pub(crate) refs: MemoryStore<Reference>,
    pub(crate) cache: ObjectCache,
    /// Evictions and cached bytes, shared with the eviction hook.
    pub(crate) occupancy: Arc<Occupancy>,
    pub(crate) weighing: Weighing,
    /// Fetches in flight, remembered 404s and failures, by reference version id.
    pub(crate) records: Mutex<HashMap<u64, Record, foldhash::fast::RandomState>>,
    /// The store-wide fetch limit (`max_concurrent_fetches` permits).
    pub(crate) permits: sync::Semaphore,
    pub(crate) not_found_ttl: Duration,
    /// Initial and maximal backoff after failed fetches.
    pub(crate) backoff: (Duration, Duration),
    pub(crate) flights: sync::AtomicU64,
    pub(crate) fills: sync::AtomicU64,
    /// Serialises feeding and cache fills, so a fill can never land after the watch event that
    /// invalidated it.
    pub(crate) feed: Mutex<()>,
    pub(crate) fetcher: Fetcher,
    pub(crate) counters: Counters,
    pub(crate) next_id: sync::AtomicU64,
    pub(crate) ttl: Duration,
    pub(crate) clock: Clock,
    pub(crate) sweep_every: Duration,
    pub(crate) next_sweep_ms: sync::AtomicU64,
}

/// References in memory, objects on demand: an indexed store of one resource type whose
/// lookups fetch objects from the API server when they are not cached.
///
/// The index is a [`MemoryStore`] of [`Reference`]s (namespace, name, uid, last known
/// resourceVersion), so key semantics are exactly MemoryStore's: `N` keys, tuple keys,
/// non-unique keys, identity-aware update and delete, prefix gets, deterministic order. A cached
/// object sits in a slot of its reference version, with a fixed time to live; a bounded
/// [quick_cache](quick_cache), keyed by the reference's version id, accounts for every cached
/// object's weight and decides evictions.
///
/// # Usage
/// ```no_run
/// use std::sync::Arc;
/// use kstore_cached_store::{CachedStore, CachedStoreConfig, Reference};
/// use kube::core::ApiResource;
/// use k8s_openapi::api::core::v1::Secret;
/// use store_types::{KeyTuple, Store};
/// # async fn run(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2);
/// let store = CachedStore::new(client, config)?;
/// // The watcher feeds references (from a metadata-only watch)…
/// store.apply_reference(
///     Reference::new("default", "tls", Some("uid-1"), Some("42"))?,
///     KeyTuple::new(["default", "tls"]),
/// )?;
/// // …and lookups fetch on the first miss, then hit the cache until the TTL passes.
/// let secrets = store.get(&["default", "tls"]).await?;
/// # Ok(()) }
/// ```
///
/// # Freshness
/// * A watch update with a new resourceVersion gives the reference a new version id: the old
///   cache entry is dropped (or carried over when it already is the new version, or replaced by
///   the object a full watch delivered). A lookup after the event never sees the old object.
/// * A fetched object older than the reference's resourceVersion is never cached; it is
///   refetched once, then reported as [`FetchError::Stale`]. resourceVersions are compared as
///   integers when both parse, otherwise not ordered.
/// * A watch delete removes the reference and its cache entry. A fetch answered 404 returns
///   nothing for that object and counts in [`CacheStats::not_found`]; the answer is remembered
///   for `not_found_ttl` (default 5 s), so lookups of that version return nothing without
///   fetching ([`CacheStats::negative_hits`]) until it passes or a watch event brings a new
///   version.
/// * A failed fetch is not cached. The object version backs off: no fetch for 1 s (default),
///   doubling per consecutive failure up to 30 s; lookups meanwhile fail with
///   [`FetchError::BackingOff`] at once. A success or a new version resets it.
/// * Expiry is **fixed**, not sliding: an entry expires `ttl` after it was fetched, however
///   often it is read, which bounds how stale a cached object can be if a watch event is lost.
///
/// # Consistency and concurrency
/// `CachedStore` is `Send + Sync + Clone`; clones share one store. Reads never block on
/// writers: a hit costs a `MemoryStore` lookup (one hash lookup, borrowing the reference), a
/// read of the store clock (an atomic load while a sweeper keeps it, else `clock_gettime`), one
/// atomic load of the reference's slot and one `Arc` clone — no lock, and for a one-object
/// result no allocation. Concurrent lookups of one missing object share one fetch (single
/// flight): exactly one GET is sent, every caller gets its result (object, 404 or error). At
/// most `max_concurrent_fetches` fetches run at once in the whole store; every fetch — waiting
/// for its turn, the GET, one retry of a stale answer — is bounded by `fetch_timeout`, and a
/// lookup waits for no fetch that started after it, so no lookup waits longer than one
/// `fetch_timeout`. Feeding calls are serialised with each other and with cache fills.
///
/// # Eviction
/// When a bound is reached, quick_cache decides what goes, and its policy is **neither LRU nor
/// insertion order**. The bound is split evenly across quick_cache's shards (one shard below
/// 64 entries; the shard is chosen by the hash of the reference version id), and each shard
/// evicts on its own with a CLOCK-Pro variant close to S3-FIFO. While a shard fills, entries
/// are admitted to its hot segment (97 % of its share); once that is full, new entries enter
/// the cold segment, and room is made by evicting the oldest cold entry, unless it was
/// accessed since (then it moves to hot); with no cold entry left, hot entries go in CLOCK
/// order. A key evicted recently (a "ghost") is readmitted to hot. Hits are served from the
/// reference's slot and never reach quick_cache, so no read marks an entry. In effect, a full
/// shard keeps the entries it admitted first (until their TTL ends them) and churns the ones
/// fetched since — usually evicting the *most recently fetched* entry that is not hot — and
/// across shards the entry that goes belongs to the shard the new entry falls into. Reads never
/// protect an entry; the fixed TTL bounds every entry's life. An object heavier than a shard's
/// hot segment is not cached at all (each lookup fetches it).
///
/// # Memory usage
/// Per object: one [`Reference`] (124 bytes for a typical Secret) plus the index entry
/// around it: 26 bytes with an index by `[namespace, name]` (the `MemoryStore`'s
/// identity-keyed layout), more with other keys (see `docs/cached-store.md` for measured
/// figures). Cached objects are held as
/// [`CompactObject`]s, bounded by `max_bytes` and/or `max_entries`; a result held by a caller
/// keeps its objects alive after eviction. Expired entries are removed on access, by an
/// on-access sweep every `sweep_interval`, and by [`spawn_sweeper`](Self::spawn_sweeper).
/// Object bodies never appear in `Debug` output or logs.
///
/// # Runtime
/// Lookups that miss spawn their fetch as a Tokio task (so a cancelled caller neither stalls
/// nor abandons it), so they must run inside a Tokio runtime — as every `kube::Client` call
/// must. Construction and feeding are synchronous and need no runtime. Without
/// [`spawn_sweeper`](Self::spawn_sweeper), the sweep of expired entries runs on the first
/// lookup after each `sweep_interval`, costing that lookup one O(entries) pass.
pub struct CachedStore {
    pub(crate) inner: Arc<Inner>,
}

/// A read-only handle to a [`CachedStore`]: cheap to clone (one reference count), `Send +
/// Sync`, sharing the store's references and cache.
///
/// It looks objects up (fetching on a miss, like the store) through the read-only
/// [`Store`] trait, [`get_detailed`](Self::get_detailed) and
/// [`list_detailed`](Self::list_detailed), and reads the references and counters; it cannot
/// feed references, remove them or drop them — that is the [`CachedStore`]'s, the one writer,
/// which is not `Clone` and stays with whoever feeds it (the watcher).
#[derive(Clone)]
pub struct CachedHandle {
    inner: Arc<Inner>,
}

impl fmt::Debug for CachedHandle {
    /// The store's shape only; never objects (they may be Secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug_shape("CachedHandle", f)
    }
}

/// The result of [`CachedStore::get_detailed`]: the objects found, and what could not be.
pub struct Fetched {
    /// Objects found, ordered by namespace, then name.
    pub objects: Objects<CompactObject>,
    /// Referenced objects the API no longer has (404).
    pub not_found: Vec<Identity>,
    /// Fetches that failed, each naming its object.
    pub failed: Vec<Arc<FetchError>>,
}

impl fmt::Debug for Fetched {
    /// Identities and errors only, never object contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("objects", &self.objects.len())
            .field("not_found", &self.not_found)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Fetched {
    /// The objects, or [`StoreError::Fetch`] naming every failed identity (the successful
    /// objects are cached, so a retry returns them without fetching).
    pub fn into_result(self, op: Operation, keys: &[&str]) -> Result<Objects<CompactObject>> {
        let Some(first) = self.failed.first() else {
            return Ok(self.objects);
        };
        Err(StoreError::Fetch {
            op,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            failed: self.failed.iter().map(|e| e.identity().clone()).collect(),
            partial: self.objects.len(),
            source: Box::new(first.clone()),
        })
    }
}

impl fmt::Debug for CachedStore {
    /// The store's shape only; never objects (they may be Secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug_shape("CachedStore", f)
    }
}

impl CachedStore {
    /// A store fetching through `client` as `config` says. Fails on an unusable configuration.
    pub fn new(client: kube::Client, config: CachedStoreConfig) -> std::result::Result<Self, ConfigError> {
        Self::build(sync::client(client), config)
    }

    /// A store whose GETs are answered by `server` (the request's path and query in, the
    /// response text or kube's error out) instead of an API server: for the loom models
    /// (`--cfg kstore_loom`), where the request is built exactly as in production and only
    /// sending it is replaced.
    #[cfg(kstore_loom)]
    pub fn with_model_server(
        config: CachedStoreConfig,
        server: impl Fn(&str) -> std::result::Result<String, kube::Error> + Send + Sync + 'static,
    ) -> std::result::Result<Self, ConfigError> {
        Self::build(sync::Client::Model(Arc::new(server)), config)
    }

    /// Fetches in flight now (loom models only: a finished model must have none left).
    #[cfg(kstore_loom)]
    pub fn fetches_in_flight(&self) -> usize {
        self.inner.records.lock().values().filter(|r| matches!(r, Record::Fetching { .. })).count()
    }

    fn build(client: sync::Client, config: CachedStoreConfig) -> std::result::Result<Self, ConfigError> {
        config.validate()?;
        let refs = MemoryStore::new(config.num_keys).map_err(|_| ConfigError::NoIndexKeys)?;
        let (weighing, capacity) = match (config.max_bytes, config.max_entries) {
            (Some(b), Some(e)) => (Weighing::Bytes { min: b.div_ceil(e as u64) }, b),
            (Some(b), None) => (Weighing::Bytes { min: 1 }, b),
            (None, Some(e)) => (Weighing::Entries, e as u64),
            (None, None) => return Err(ConfigError::Unbounded { resource: config.resource_name() }),
        };
        let estimated_items = match config.max_entries {
            Some(e) => e,
            None => (capacity / 4096).clamp(64, 1 << 20) as usize,
        };
        let occupancy = Arc::new(Occupancy::default());
        #[cfg(not(kstore_loom))]
        let cache = {
            let options = OptionsBuilder::new()
                .estimated_items_capacity(estimated_items)
                .weight_capacity(capacity)
                .build()
                .map_err(|_| ConfigError::Zero { setting: "max_bytes", resource: config.resource_name() })?;
            Cache::with_options(options, EntryWeighter, DefaultHashBuilder::default(), EvictionHook(occupancy.clone()))
        };
        #[cfg(kstore_loom)]
        let cache = {
            let _ = estimated_items;
            Cache::with_capacity(capacity, EntryWeighter, EvictionHook(occupancy.clone()))
        };
        let sweep_every = config.sweep_interval.unwrap_or(config.ttl);
        let resource_name = config.resource_name();
        Ok(CachedStore {
            inner: Arc::new(Inner {
                refs,
                cache,
                occupancy,
                weighing,
                records: Mutex::new(HashMap::default()),
                permits: sync::Semaphore::new(config.max_concurrent_fetches),
                not_found_ttl: config.not_found_ttl,
                backoff: (config.fetch_backoff, config.max_fetch_backoff),
                flights: sync::AtomicU64::new(0),
                fills: sync::AtomicU64::new(0),
                feed: Mutex::new(()),
                fetcher: Fetcher {
                    client,
                    resource: config.resource,
                    resource_name,
                    namespaced: config.namespaced,
                    namespace: config.namespace,
                    timeout: config.fetch_timeout,
                    prepare: config.prepare,
                    max_object_bytes: config.max_object_bytes,
                },
                counters: Counters::default(),
                next_id: sync::AtomicU64::new(1),
                ttl: config.ttl,
                clock: Clock::new(config.ttl),
                sweep_every,
                next_sweep_ms: sync::AtomicU64::new(millis(sweep_every)),
            }),
        })
    }

    // ---- reads (also on every [`CachedHandle`]) -------------------------------------------

    /// A read-only handle to this store (cheap to clone; shares references and cache).
    pub fn handle(&self) -> CachedHandle {
        CachedHandle { inner: self.inner.clone() }
    }

    /// See [`CachedHandle::get_detailed`].
    pub async fn get_detailed(&self, keys: &[&str]) -> Result<Fetched> {
        self.inner.get_detailed(keys).await
    }

    /// See [`CachedHandle::list_detailed`].
    pub async fn list_detailed(&self) -> Fetched {
        self.inner.list_detailed().await
    }

    /// The references under `keys` (no fetch): which objects exist, at which version.
    pub fn get_references(&self, keys: &[&str]) -> Result<Objects<Reference>> {
        self.inner.refs.get(keys)
    }

    /// An immutable snapshot of the reference index.
    pub fn references(&self) -> Snapshot<Reference> {
        self.inner.refs.snapshot()
    }

    /// Counters and sizes, O(1): every figure is maintained as it changes.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache_stats()
    }

    // ---- writes beyond the feed -----------------------------------------------------------

    /// Removes every reference under `keys` (exact or prefix, like a get) and their cache
    /// entries; returns how many references were removed.
    pub fn delete_all_under(&self, keys: &[&str]) -> Result<usize> {
        let _feed = self.inner.feed.lock();
        let victims = self.inner.refs.get(keys)?;
        let n = self.inner.refs.delete_all_under(keys)?;
        for v in &victims {
            if self.inner.uncache(v).is_some() {
                self.inner.counters.invalidations.fetch_add(1, Relaxed);
            }
        }
        Ok(n)
    }

    /// Removes every reference and every cached object.
    pub fn clear(&self) {
        let _feed = self.inner.feed.lock();
        self.inner.clear_cache_locked();
        self.inner.refs.clear();
    }

    /// Drops every cached object (references stay; the next lookups fetch again).
    pub fn clear_cache(&self) {
        self.inner.clear_cache();
    }

    /// Drops the cached object of this identity, if cached (its reference stays; the next
    /// lookup fetches it again). Returns whether an entry was dropped.
    pub fn evict(&self, namespace: &str, name: &str) -> bool {
        self.inner.evict(namespace, name)
    }

    /// Checks the store's invariants: the reference index validates, and every cached object
    /// (held in its reference's slot) is accounted for by exactly one cache entry of that
    /// reference version, and the other way round; the byte gauge equals the entries' bytes.
    /// For tests, while no lookup runs; O(n).
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.inner.validate()
    }
}

impl CachedHandle {
    /// Like [`Store::get`], but reports objects not found and failed fetches separately
    /// instead of failing the whole lookup.
    pub async fn get_detailed(&self, keys: &[&str]) -> Result<Fetched> {
        self.inner.get_detailed(keys).await
    }

    /// Every object, fetching the ones not cached (at most `max_concurrent_fetches` at once,
    /// store-wide).
    pub async fn list_detailed(&self) -> Fetched {
        self.inner.list_detailed().await
    }

    /// The references under `keys` (no fetch): which objects exist, at which version.
    pub fn get_references(&self, keys: &[&str]) -> Result<Objects<Reference>> {
        self.inner.refs.get(keys)
    }

    /// An immutable snapshot of the reference index.
    pub fn references(&self) -> Snapshot<Reference> {
        self.inner.refs.snapshot()
    }

    /// Counters and sizes, O(1).
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache_stats()
    }

    /// Removes expired cache entries now; returns how many were removed (cache maintenance,
    /// like [`clear_cache`](Self::clear_cache)).
    pub fn sweep_expired(&self) -> u64 {
        self.inner.sweep(self.inner.clock.precise())
    }

    /// Checks the store's invariants; see [`CachedStore::validate`].
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.inner.validate()
    }

    /// Drops every cached object. Cache maintenance, not a write: references stay, and every
    /// lookup returns what it returned before (fetching again), so a handle may do it.
    pub fn clear_cache(&self) {
        self.inner.clear_cache();
    }

    /// Drops the cached object of this identity, if cached (its reference stays; the next
    /// lookup fetches it again). Returns whether an entry was dropped.
    pub fn evict(&self, namespace: &str, name: &str) -> bool {
        self.inner.evict(namespace, name)
    }
}

impl Inner {
    fn debug_shape(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("resource", &self.fetcher.resource_name)
            .field("num_keys", &self.refs.num_keys())
            .field("references", &self.refs.len())
            .field("cached", &self.cache.len())
            .finish()
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let inner = self;
        let _feed = inner.feed.lock();
        inner.refs.validate()?;
        for r in inner.refs.snapshot().iter() {
            if let Some(c) = r.slot.load_full() {
                match inner.cache.peek(&r.id) {
                    Some(e) if e.fill == c.fill && e.reference.upgrade().is_some_and(|x| Arc::ptr_eq(&x, r)) => {}
                    _ => return Err(format!("{} is cached but has no cache entry", r.identity())),
                }
            }
        }
        for (id, e) in inner.cache.iter() {
            let Some(r) = e.reference.upgrade() else {
                return Err(format!("cache entry {id} outlived its reference"));
            };
            if r.id != id || r.slot.load().as_ref().is_none_or(|c| c.fill != e.fill || c.expires_ms != e.expires_ms) {
                return Err(format!("cache entry {id} does not match the slot of {}", r.identity()));
            }
            let current = inner.refs.get_by_identity(r.namespace(), r.name());
            if !current.is_some_and(|c| Arc::ptr_eq(&c, &r)) {
                return Err(format!("cache entry {id} belongs to a replaced reference of {}", r.identity()));
            }
        }
        let bytes: u64 = inner.cache.iter().map(|(_, e)| e.bytes).sum();
        if bytes != inner.occupancy.bytes() {
            return Err(format!("the byte gauge says {} but the entries hold {bytes}", inner.occupancy.bytes()));
        }
        Ok(())
    }

    fn clear_cache(&self) {
        let _feed = self.feed.lock();
        self.clear_cache_locked();
    }

    fn evict(&self, namespace: &str, name: &str) -> bool {
        let _feed = self.feed.lock();
        let Some(r) = self.refs.get_by_identity(namespace, name) else {
            return false;
        };
        self.uncache(&r).is_some()
    }

    async fn get_detailed(self: &Arc<Self>, keys: &[&str]) -> Result<Fetched> {
        let refs = self.refs.get(keys)?;
        Ok(self.resolve(&refs).await)
    }

    async fn list_detailed(self: &Arc<Self>) -> Fetched {
        let refs = self.refs.list();
        self.resolve(&refs).await
    }

    fn cache_stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.sum(),
            misses: c.misses.load(Relaxed),
            fetches: c.fetches.load(Relaxed),
            fetch_errors: c.fetch_errors.load(Relaxed),
            not_found: c.not_found.load(Relaxed),
            negative_hits: c.negative_hits.load(Relaxed),
            backed_off: c.backed_off.load(Relaxed),
            stale_fetches: c.stale_fetches.load(Relaxed),
            expirations: c.expirations.load(Relaxed),
            evictions: self.occupancy.evictions.load(Relaxed),
            invalidations: c.invalidations.load(Relaxed),
            refreshes: c.refreshes.load(Relaxed),
            entries: self.cache.len(),
            cached_bytes: self.occupancy.bytes(),
            references: self.refs.len(),
            sweeper_clock: self.clock.ticking(),
        }
    }

    /// The read-only trait's `get`, shared by the store and its handles.
    fn store_get<'a>(self: &'a Arc<Self>, keys: &'a [&'a str]) -> GetFuture<'a, CompactObject> {
        let inner = self;
        let now = inner.clock.now();
        inner.maybe_sweep(now);
        // The common cases without cloning the reference: one cached object, or none at all.
        let quick = inner.refs.get_with(keys, |refs| match refs {
            [] => Some(Objects::empty()),
            _ => inner.single_hit(refs, now).map(Objects::one),
        });
        match quick {
            Ok(Some(objects)) => return GetFuture::ready(Ok(objects)),
            Ok(None) => {}
            Err(e) => return GetFuture::ready(Err(e)),
        }
        let refs = match inner.refs.get(keys) {
            Ok(refs) => refs,
            Err(e) => return GetFuture::ready(Err(e)),
        };
        GetFuture::boxed(async move { inner.resolve_at(&refs, now).await.into_result(Operation::Get, keys) })
    }

    /// The read-only trait's `get_by_identity`: the referenced object, fetched when not cached.
    fn store_get_by_identity<'a>(
        self: &'a Arc<Self>,
        namespace: &'a str,
        name: &'a str,
    ) -> GetFuture<'a, CompactObject> {
        let now = self.clock.now();
        self.maybe_sweep(now);
        let Some(reference) = self.refs.get_by_identity(namespace, name) else {
            return GetFuture::ready(Ok(Objects::empty()));
        };
        let refs = Objects::one(reference);
        if let Some(hit) = self.single_hit(&refs, now) {
            return GetFuture::ready(Ok(Objects::one(hit)));
        }
        GetFuture::boxed(
            async move { self.resolve_at(&refs, now).await.into_result(Operation::Get, &[namespace, name]) },
        )
    }
}

impl Inner {
    /// The cached object of reference version `r`, unless expired at `now` (an expired one is
    /// dropped). One atomic load, one `Arc` clone.
    #[inline]
    pub(crate) fn cached(&self, r: &Reference, now: u64) -> Option<Arc<CompactObject>> {
        let slot = r.slot.load();
        let cached = slot.as_ref()?;
        if cached.expires_ms > now {
            return Some(cached.object.clone());
        }
        let fill = cached.fill;
        drop(slot);
        clear_slot_if(r, fill);
        if let Some((_, e)) = self.cache.remove_if(&r.id, |e| e.fill == fill) {
            self.occupancy.removed(e.bytes);
            self.counters.expirations.fetch_add(1, Relaxed);
        }
        None
    }

    /// The objects of `refs`, in order: cached ones directly, the others fetched.
    pub(crate) async fn resolve(self: &Arc<Self>, refs: &[Arc<Reference>]) -> Fetched {
        let now = self.clock.now();
        self.maybe_sweep(now);
        if let Some(one) = self.single_hit(refs, now) {
            return Fetched { objects: Objects::one(one), not_found: Vec::new(), failed: Vec::new() };
        }
        self.resolve_at(refs, now).await
    }

    /// The object of a one-reference result, when cached: the common exact lookup, answered
    /// without allocating.
    #[inline]
    pub(crate) fn single_hit(&self, refs: &[Arc<Reference>], now: u64) -> Option<Arc<CompactObject>> {
        let [r] = refs else { return None };
        let one = self.cached(r, now)?;
        self.counters.hits.add(1);
        Some(one)
    }

    /// `resolve` after the clock was read.
    pub(crate) async fn resolve_at(self: &Arc<Self>, refs: &[Arc<Reference>], now: u64) -> Fetched {
        let mut out: Vec<Arc<CompactObject>> = Vec::with_capacity(refs.len());
        for (i, r) in refs.iter().enumerate() {
            match self.cached(r, now) {
                Some(object) => out.push(object),
                // Boxed: keeps the (large) fetching state machine out of every hit's future.
                None => return Box::pin(self.resolve_slow(refs, out, i, now)).await,
            }
        }
        self.counters.hits.add(refs.len() as u64);
        Fetched { objects: Objects::from(out), not_found: Vec::new(), failed: Vec::new() }
    }

    /// `resolve` after the first miss at `first_miss`.
    pub(crate) async fn resolve_slow(
        self: &Arc<Self>,
        refs: &[Arc<Reference>],
        hits: Vec<Arc<CompactObject>>,
        first_miss: usize,
        now: u64,
    ) -> Fetched {
        let mut slots: Vec<Option<Arc<CompactObject>>> = hits.into_iter().map(Some).collect();
        let mut missing = vec![first_miss];
        slots.push(None);
        for (i, r) in refs.iter().enumerate().skip(first_miss + 1) {
            let object = self.cached(r, now);
            if object.is_none() {
                missing.push(i);
            }
            slots.push(object);
        }
        let c = &self.counters;
        c.hits.add((refs.len() - missing.len()) as u64);
        c.misses.fetch_add(missing.len() as u64, Relaxed);
        let outcomes: Vec<(usize, Outcome)> = if let [i] = missing[..] {
            vec![(i, self.load(refs[i].clone(), now).await)]
        } else {
            // Every fetch starts now (each is its own task, queued on the store-wide permits),
            // so the lookup waits at most one fetch timeout for all of them.
            let flights: Vec<_> = missing.into_iter().map(|i| (i, self.load(refs[i].clone(), now))).collect();
            future::join_all(flights.into_iter().map(|(i, flight)| async move { (i, flight.await) })).await
        };
        let mut not_found = Vec::new();
        let mut failed = Vec::new();
        for (i, outcome) in outcomes {
            match outcome {
                Ok(Some(object)) => slots[i] = Some(object),
                Ok(None) => not_found.push(refs[i].identity()),
                Err(e) => failed.push(e),
            }
        }
        failed.sort_by(|a, b| a.identity().cmp(b.identity()));
        not_found.sort();
        Fetched { objects: Objects::from(slots.into_iter().flatten().collect::<Vec<_>>()), not_found, failed }
    }
}

#[async_trait]
impl Store<CompactObject> for CachedStore {
    fn num_keys(&self) -> usize {
        self.inner.refs.num_keys()
    }

    /// Objects under `keys`, fetched when not cached; fails with [`StoreError::Fetch`] naming
    /// every object whose fetch failed. Objects that no longer exist (404) are left out.
    ///
    /// A miss in the reference index and a single cached object complete at once, without
    /// allocating a future; anything else is a boxed future that fetches.
    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, CompactObject> {
        self.inner.store_get(keys)
    }

    /// The referenced object with this identity, fetched when not cached.
    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, CompactObject> {
        self.inner.store_get_by_identity(namespace, name)
    }

    /// Every object (fetching all that are not cached).
    async fn list(&self) -> Result<Objects<CompactObject>> {
        self.inner.list_detailed().await.into_result(Operation::List, &[])
    }

    fn len(&self) -> usize {
        self.inner.refs.len()
    }
}

/// Reads exactly like the [`CachedStore`] it came from.
#[async_trait]
impl Store<CompactObject> for CachedHandle {
    fn num_keys(&self) -> usize {
        self.inner.refs.num_keys()
    }

    /// See [`CachedStore`]'s `get`.
    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, CompactObject> {
        self.inner.store_get(keys)
    }

    /// The referenced object with this identity, fetched when not cached.
    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, CompactObject> {
        self.inner.store_get_by_identity(namespace, name)
    }

    /// Every object (fetching all that are not cached).
    async fn list(&self) -> Result<Objects<CompactObject>> {
        self.inner.list_detailed().await.into_result(Operation::List, &[])
    }

    fn len(&self) -> usize {
        self.inner.refs.len()
    }
}
