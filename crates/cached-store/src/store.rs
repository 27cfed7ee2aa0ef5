//! [`CachedStore`]: references indexed in a `MemoryStore`, objects in a bounded TTL cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use compact_object::CompactObject;
use futures::stream::{self, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use memory_store::{Change, MemoryStore, Snapshot};
#[cfg(not(kstore_loom))]
use quick_cache::OptionsBuilder;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use store_types::{
    ChangeStats, GetFuture, Identity, KeyTuple, KubeObject, Objects, Operation, Result, Store, StoreError,
};
use tokio::time::Instant;

use crate::config::{CachedStoreConfig, ConfigError};
use crate::fetch::{FetchError, Fetcher};
use crate::reference::{Cached, Reference, ReferenceError, compare_versions};
use crate::sync::{self, Cache, Flight, Mutex};

/// Estimated bytes a cache entry costs besides its object's heap: the `Cached` slot value, the
/// `CompactObject` handle and quick_cache's entry (an upper bound since the one-element result
/// slice each entry also held is gone).
const ENTRY_OVERHEAD: u64 = 160;

/// A feeding call (from the watcher) was rejected; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The object cannot be referenced (no name, oversized field).
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The index rejected the reference (wrong number of keys).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store is restricted to one namespace and the reference is in another.
    #[error("{resource} {identity} is outside the store's namespace {namespace:?}")]
    OutsideNamespace {
        /// The resource.
        resource: String,
        /// The reference.
        identity: Identity,
        /// The namespace the store is restricted to.
        namespace: String,
    },
    /// A namespaced resource got a reference without namespace, or a cluster-scoped one a
    /// reference with one.
    #[error("{resource} is {scope} but {identity} is not")]
    Scope {
        /// The resource.
        resource: String,
        /// The reference.
        identity: Identity,
        /// `namespaced` or `cluster-scoped`.
        scope: &'static str,
    },
}

/// Counters and sizes of a [`CachedStore`]; see [`CachedStore::cache_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups of one object answered from the cache.
    pub hits: u64,
    /// Lookups of one object that had to fetch (or join a fetch in flight).
    pub misses: u64,
    /// GET requests sent (a stale answer is retried once, so one miss may cost two).
    pub fetches: u64,
    /// Fetches that failed (timeout, API error, encoding, stale twice).
    pub fetch_errors: u64,
    /// Fetches answered 404: the object was deleted before the watch said so.
    pub not_found: u64,
    /// Fetched objects older than the reference's resourceVersion, not cached.
    pub stale_fetches: u64,
    /// Entries dropped because their TTL passed (on access or by a sweep).
    pub expirations: u64,
    /// Entries evicted to respect the weight / entry bound.
    pub evictions: u64,
    /// Entries dropped because a watch event changed or deleted their object.
    pub invalidations: u64,
    /// Entries carried over to a new reference version (full watch update, or the cached
    /// object already was the new version).
    pub refreshes: u64,
    /// Objects cached now.
    pub entries: usize,
    /// Estimated heap bytes of the cached objects now.
    pub cached_bytes: u64,
    /// References (objects known to exist) now.
    pub references: usize,
    /// Lookups read the sweeper's clock tick (a sweeper runs on a multi-thread runtime) rather
    /// than the clock; see [`CachedStore::spawn_sweeper`].
    pub sweeper_clock: bool,
}

/// Number of cache lines a [`Striped`] counter spreads over.
const STRIPES: usize = 16;

/// One counter on its own cache line.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A counter spread over cache lines by thread, so hits on many cores at once do not contend
/// for one line (2 KiB per store).
struct Striped([Padded; STRIPES]);

impl Default for Striped {
    fn default() -> Self {
        Striped(std::array::from_fn(|_| Padded::default()))
    }
}

thread_local! {
    /// This thread's stripe, assigned round-robin on first use.
    static STRIPE: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % STRIPES
    };
}

impl Striped {
    #[inline]
    fn add(&self, n: u64) {
        let i = STRIPE.with(|i| *i);
        self.0[i].0.fetch_add(n, Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Relaxed)).sum()
    }
}

#[derive(Default)]
struct Counters {
    hits: Striped,
    misses: AtomicU64,
    fetches: AtomicU64,
    fetch_errors: AtomicU64,
    not_found: AtomicU64,
    stale_fetches: AtomicU64,
    expirations: AtomicU64,
    invalidations: AtomicU64,
    refreshes: AtomicU64,
}

/// quick_cache's record of one cached object: it accounts for the object's weight and decides
/// its eviction; the object itself lives in the reference's slot, so a hit never touches the
/// cache. Cheap to clone.
#[derive(Clone)]
struct Entry {
    reference: Weak<Reference>,
    expires_ms: u64,
    /// The fill this entry accounts for (see [`Cached::fill`]).
    fill: u64,
    weight: u64,
    bytes: u64,
}

#[derive(Clone)]
struct EntryWeighter;

impl Weighter<u64, Entry> for EntryWeighter {
    fn weight(&self, _key: &u64, entry: &Entry) -> u64 {
        entry.weight
    }
}

/// Clears the slot of the entry being evicted (if the slot still holds that entry's object)
/// and counts the eviction. Runs under the cache shard's lock; touches only the slot.
#[derive(Clone)]
struct EvictionCounter(Arc<AtomicU64>);

impl Lifecycle<u64, Entry> for EvictionCounter {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: u64, entry: Entry) {
        self.0.fetch_add(1, Relaxed);
        if let Some(r) = entry.reference.upgrade() {
            clear_slot_if(&r, entry.fill);
        }
    }
}

/// Empties `r`'s slot if it holds the object of fill `fill`.
fn clear_slot_if(r: &Reference, fill: u64) {
    let current = r.slot.load();
    if current.as_ref().is_some_and(|c| c.fill == fill) {
        r.slot.compare_and_swap(&*current, None);
    }
}

/// The store's time: milliseconds since the store was created, on Tokio's clock (so tests that
/// pause Tokio's time drive it).
///
/// Reading Tokio's clock costs a `clock_gettime` (~25 ns, a fifth of a cache hit). While a
/// sweeper task runs on a multi-thread runtime ([`CachedStore::spawn_sweeper`]), it stores the
/// time in `tick_ms` every tick and lookups read that instead: a plain atomic load. The tick is
/// never ahead of the clock, so an entry is never dropped early; it may be served up to one tick
/// (plus the runtime's scheduling delay) after its TTL. On a current-thread runtime — the only
/// kind whose time can be paused — a sweeper runs only when the task doing lookups yields, so
/// its tick could lag behind any amount of (paused or real) time: there lookups always read the
/// clock. When the sweeper ends (its store dropped, its task aborted, its runtime shut down)
/// lookups read the clock again.
struct Clock {
    base: Instant,
    tick_ms: AtomicU64,
    /// Sweeper tasks alive.
    tickers: AtomicUsize,
    /// How often a sweeper ticks: a hundredth of the TTL, between 1 ms and 100 ms.
    every: Duration,
}

impl Clock {
    fn new(ttl: Duration) -> Clock {
        Clock {
            base: Instant::now(),
            tick_ms: AtomicU64::new(0),
            tickers: AtomicUsize::new(0),
            every: (ttl / 100).clamp(Duration::from_millis(1), Duration::from_millis(100)),
        }
    }

    /// Tokio's clock, now.
    fn precise(&self) -> u64 {
        millis(Instant::now().saturating_duration_since(self.base))
    }

    /// The sweeper's tick while one runs, else the clock.
    #[inline]
    fn now(&self) -> u64 {
        if self.ticking() { self.tick_ms.load(Acquire) } else { self.precise() }
    }

    #[inline]
    fn ticking(&self) -> bool {
        self.tickers.load(Acquire) > 0
    }

    /// Advances the tick to the clock; returns it.
    fn tick(&self) -> u64 {
        let now = self.precise();
        self.tick_ms.fetch_max(now, Release);
        now
    }
}

/// Counts a sweeper task as alive from its spawn until its future is dropped (however it ends).
struct Ticker(Weak<Inner>);

impl Ticker {
    fn start(inner: &Arc<Inner>) -> Ticker {
        inner.clock.tick();
        inner.clock.tickers.fetch_add(1, Release);
        Ticker(Arc::downgrade(inner))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.clock.tickers.fetch_sub(1, Release);
        }
    }
}

type ObjectCache = Cache<u64, Entry, EntryWeighter, DefaultHashBuilder, EvictionCounter>;

/// What one fetch ends in: the object, nothing (404), or the failure.
type Outcome = std::result::Result<Option<Arc<CompactObject>>, Arc<FetchError>>;
type InFlight = Flight<Outcome>;

/// A fetch in flight: its shared result and what the sweeper needs to time it out.
struct Fetching {
    future: InFlight,
    /// Unique per fetch: a finished fetch removes its own entry, never a later one's.
    serial: u64,
    /// Clock deadline when the sweeper enforces the fetch timeout (`u64::MAX` when not).
    deadline_ms: u64,
    abort: sync::Abort,
    timed_out: Arc<AtomicBool>,
}

/// How cache weights are computed so that quick_cache's one weight bound enforces both a byte
/// and an entry bound: every entry weighs at least `max_bytes / max_entries`.
#[derive(Clone, Copy)]
enum Weighing {
    Bytes { min: u64 },
    Entries,
}

struct Inner {
    refs: MemoryStore<Reference>,
    cache: ObjectCache,
    evictions: Arc<AtomicU64>,
    weighing: Weighing,
    inflight: Mutex<HashMap<u64, Fetching, foldhash::fast::RandomState>>,
    flights: sync::AtomicU64,
    fills: sync::AtomicU64,
    /// Serialises feeding and cache fills, so a fill can never land after the watch event that
    /// invalidated it.
    feed: Mutex<()>,
    fetcher: Fetcher,
    counters: Counters,
    next_id: sync::AtomicU64,
    ttl: Duration,
    max_concurrent_fetches: usize,
    clock: Clock,
    sweep_every: Duration,
    next_sweep_ms: sync::AtomicU64,
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
///   nothing for that object and counts in [`CacheStats::not_found`].
/// * Expiry is **fixed**, not sliding: an entry expires `ttl` after it was fetched, however
///   often it is read, which bounds how stale a cached object can be if a watch event is lost.
///
/// # Consistency and concurrency
/// `CachedStore` is `Send + Sync + Clone`; clones share one store. Reads never block on
/// writers: a hit costs a `MemoryStore` lookup (one hash lookup, borrowing the reference), a
/// read of the store clock (an atomic load while a sweeper keeps it, else `clock_gettime`), one
/// atomic load of the reference's slot and one `Arc` clone — no lock, and for a one-object
/// result no allocation. Hits do not touch quick_cache, so its eviction order is insertion order, not
/// recency (entries live at most one TTL anyway). Concurrent lookups of one
/// missing object share one fetch (single flight): exactly one GET is sent, every caller gets
/// its result. A failed fetch is not cached; the next lookup retries. Feeding calls are
/// serialised with each other and with cache fills.
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
    inner: Arc<Inner>,
}

/// A read-only handle to a [`CachedStore`]: cheap to clone (one reference count), `Send +
/// Sync`, sharing the store's references and cache.
///
/// It looks objects up (fetching on a miss, like the store) through the read-only
/// [`Store`] trait, [`get_detailed`](Self::get_detailed) and
/// [`list_detailed`](Self::list_detailed), and reads the references and counters; it cannot
/// feed references, remove them or drop cache entries — that is the [`CachedStore`]'s, the
/// one writer, which is not `Clone` and stays with whoever feeds it (the watcher).
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

impl Inner {
    fn debug_shape(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("resource", &self.fetcher.resource_name)
            .field("num_keys", &self.refs.num_keys())
            .field("references", &self.refs.len())
            .field("cached", &self.cache.len())
            .finish()
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
        self.inner.inflight.lock().len()
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
        let evictions = Arc::new(AtomicU64::new(0));
        #[cfg(not(kstore_loom))]
        let cache = {
            let options = OptionsBuilder::new()
                .estimated_items_capacity(estimated_items)
                .weight_capacity(capacity)
                .build()
                .map_err(|_| ConfigError::Zero { setting: "max_bytes", resource: config.resource_name() })?;
            Cache::with_options(
                options,
                EntryWeighter,
                DefaultHashBuilder::default(),
                EvictionCounter(evictions.clone()),
            )
        };
        #[cfg(kstore_loom)]
        let cache = {
            let _ = estimated_items;
            Cache::with_capacity(capacity, EntryWeighter, EvictionCounter(evictions.clone()))
        };
        let sweep_every = config.sweep_interval.unwrap_or(config.ttl);
        let resource_name = config.resource_name();
        Ok(CachedStore {
            inner: Arc::new(Inner {
                refs,
                cache,
                evictions,
                weighing,
                inflight: Mutex::new(HashMap::default()),
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
                },
                counters: Counters::default(),
                next_id: sync::AtomicU64::new(1),
                ttl: config.ttl,
                max_concurrent_fetches: config.max_concurrent_fetches,
                clock: Clock::new(config.ttl),
                sweep_every,
                next_sweep_ms: sync::AtomicU64::new(millis(sweep_every)),
            }),
        })
    }

    // ---- feeding (called by the watcher) -------------------------------------------------

    /// Adds or updates the reference (a watch ADDED/MODIFIED event, or one object of the
    /// initial list). A new resourceVersion or uid drops the cache entry of the previous one.
    pub fn apply_reference(&self, reference: Reference, keys: KeyTuple) -> std::result::Result<Change, FeedError> {
        let _feed = self.inner.feed.lock();
        self.inner.apply_locked(reference, keys, None)
    }

    /// [`apply_reference`](Self::apply_reference) for any object that knows its identity —
    /// typically a `PartialObjectMeta<K>` from a metadata-only watch. Only the reference is
    /// kept.
    pub fn apply_object<O: KubeObject + ?Sized>(
        &self,
        object: &O,
        keys: KeyTuple,
    ) -> std::result::Result<Change, FeedError> {
        self.apply_reference(Reference::from_object(object)?, keys)
    }

    /// [`apply_reference`](Self::apply_reference) from an `ObjectMeta`.
    pub fn apply_meta(&self, meta: &ObjectMeta, keys: KeyTuple) -> std::result::Result<Change, FeedError> {
        self.apply_reference(Reference::from_meta(meta)?, keys)
    }

    /// Feeding from a full watch: keeps the reference and, when the previous version of this
    /// object was cached, replaces the cache entry with `object` (already prepared by the
    /// watcher). Objects that were not cached are not cached now: the store holds references.
    pub fn apply_full_object(
        &self,
        object: Arc<CompactObject>,
        keys: KeyTuple,
    ) -> std::result::Result<Change, FeedError> {
        let reference = Reference::from_object(&*object)?;
        let _feed = self.inner.feed.lock();
        self.inner.apply_locked(reference, keys, Some(&object))
    }

    /// Removes the reference (a watch DELETED event) and its cache entry. When `identity.uid`
    /// is set and differs from the reference's, nothing is removed (a late delete of an
    /// earlier incarnation). Returns the removed reference.
    pub fn delete_reference(&self, identity: &Identity) -> Option<Arc<Reference>> {
        let _feed = self.inner.feed.lock();
        let removed = self.inner.refs.delete(identity)?;
        if self.inner.uncache(&removed).is_some() {
            self.inner.counters.invalidations.fetch_add(1, Relaxed);
        }
        Some(removed)
    }

    /// Replaces every reference (a relist) and publishes the new index at once. References
    /// whose uid and resourceVersion did not change keep their cache entries; the others lose
    /// them. On error nothing changes.
    pub fn replace_references<I>(&self, references: I) -> std::result::Result<ChangeStats, FeedError>
    where
        I: IntoIterator<Item = (Reference, KeyTuple)>,
    {
        let inner = &*self.inner;
        let _feed = inner.feed.lock();
        let mut items = Vec::new();
        for (mut reference, keys) in references {
            inner.check_scope(&reference)?;
            reference.id = match inner.refs.get_by_identity(reference.namespace(), reference.name()) {
                Some(prev) if prev.same_version(&reference) => prev.id,
                _ => inner.next_id.fetch_add(1, Relaxed),
            };
            items.push((Arc::new(reference), keys));
        }
        let old = inner.refs.snapshot();
        let stats = inner.refs.replace_all(items)?;
        for prev in old.iter() {
            let now = inner.refs.get_by_identity(prev.namespace(), prev.name());
            if !now.as_ref().is_some_and(|n| Arc::ptr_eq(n, prev)) {
                inner.retire(prev, now.as_ref(), None);
            }
        }
        Ok(stats)
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

    /// Counters and sizes. Costs O(cached entries) for the byte count.
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
    /// reference version, and the other way round. For tests, while no lookup runs; O(n).
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.inner.validate()
    }

    /// Removes expired cache entries now; returns how many were removed.
    pub fn sweep_expired(&self) -> u64 {
        self.inner.sweep(self.inner.clock.precise())
    }

    /// Spawns a task that sweeps expired entries every `sweep_interval` (default: the TTL), so
    /// they do not pin memory while nobody reads, and so the sweep's O(entries) pass runs off
    /// the read path. The task ticks every hundredth of the TTL (between 1 ms and 100 ms). On a
    /// multi-thread runtime it also keeps the store's clock: lookups compare expiry times
    /// against its latest tick instead of reading the system clock (an entry may then be served
    /// up to one tick, plus scheduling delay, after its TTL; never before), and it times out
    /// fetches in flight (instead of one timer per fetch). On a current-thread runtime (the
    /// only kind whose time can be paused) lookups keep reading the clock and every fetch keeps
    /// its own timer, since the task runs only when the lookups' own task yields. The task ends
    /// when the last handle to the store is dropped; abort the returned handle to stop it
    /// earlier.
    ///
    /// # Panics
    /// Outside a Tokio runtime, like `tokio::spawn`.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let multi_thread =
            tokio::runtime::Handle::current().runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread;
        let ticker = multi_thread.then(|| Ticker::start(&self.inner));
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.clock.every;
        // The first tick is due one period after the spawn, even if the task first runs later.
        let start = Instant::now() + every;
        tokio::spawn(async move {
            let _ticker = ticker;
            let mut tick = tokio::time::interval_at(start, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let now = inner.clock.tick();
                inner.time_out_fetches(now);
                inner.maybe_sweep(now);
            }
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn entry_bytes(object: &CompactObject) -> u64 {
    (object.heap_size() + size_of::<CompactObject>()) as u64 + ENTRY_OVERHEAD
}

fn same_incarnation(object: &CompactObject, reference: &Reference) -> bool {
    match (object.identity().and_then(|i| i.uid), reference.uid()) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

impl Inner {
    fn weigh(&self, object: &CompactObject) -> (u64, u64) {
        let bytes = entry_bytes(object);
        let weight = match self.weighing {
            Weighing::Bytes { min } => bytes.max(min),
            Weighing::Entries => 1,
        };
        (weight, bytes)
    }

    /// Caches `cached` for reference version `r`: sets the slot, then lets quick_cache account
    /// for it (which may evict others, or reject this one if it is larger than a shard; either
    /// way the lifecycle clears the evicted slots). The feed lock is held.
    fn install(&self, r: &Arc<Reference>, cached: Arc<Cached>) {
        let (weight, bytes) = self.weigh(cached.object());
        let entry =
            Entry { reference: Arc::downgrade(r), expires_ms: cached.expires_ms, fill: cached.fill, weight, bytes };
        r.slot.store(Some(cached));
        self.cache.insert(r.id, entry);
    }

    /// A new cache entry for `object`, expiring one TTL from now.
    fn new_cached(&self, object: Arc<CompactObject>) -> Arc<Cached> {
        let expires_ms = self.clock.precise().saturating_add(millis(self.ttl));
        Arc::new(Cached { object, expires_ms, fill: self.fills.fetch_add(1, Relaxed) })
    }

    /// Drops `r`'s cached object, if any, and returns it. The feed lock is held.
    fn uncache(&self, r: &Reference) -> Option<Arc<Cached>> {
        let cached = r.slot.swap(None);
        self.cache.remove(&r.id);
        cached
    }

    /// Empties every slot of the current references and the cache. The feed lock is held.
    fn clear_cache_locked(&self) {
        for r in self.refs.snapshot().iter() {
            r.slot.store(None);
        }
        self.cache.clear();
    }

    fn check_scope(&self, r: &Reference) -> std::result::Result<(), FeedError> {
        let f = &self.fetcher;
        if f.namespaced == r.namespace().is_empty() {
            return Err(FeedError::Scope {
                resource: f.resource_name.clone(),
                identity: r.identity(),
                scope: if f.namespaced { "namespaced" } else { "cluster-scoped" },
            });
        }
        if let Some(ns) = &f.namespace
            && ns != r.namespace()
        {
            return Err(FeedError::OutsideNamespace {
                resource: f.resource_name.clone(),
                identity: r.identity(),
                namespace: ns.clone(),
            });
        }
        Ok(())
    }

    /// Applies one reference; the feed lock is held.
    fn apply_locked(
        &self,
        mut reference: Reference,
        keys: KeyTuple,
        full: Option<&Arc<CompactObject>>,
    ) -> std::result::Result<Change, FeedError> {
        self.check_scope(&reference)?;
        let prev = self.refs.get_by_identity(reference.namespace(), reference.name());
        reference.id = match &prev {
            Some(p) if p.same_version(&reference) => p.id,
            _ => self.next_id.fetch_add(1, Relaxed),
        };
        let change = self.refs.update(Arc::new(reference), keys)?;
        if let Some(p) = prev {
            let now = self.refs.get_by_identity(p.namespace(), p.name());
            if !now.as_ref().is_some_and(|n| Arc::ptr_eq(n, &p)) {
                self.retire(&p, now.as_ref(), full);
            }
        }
        Ok(change)
    }

    /// The stored reference `old` was replaced by `new` (or deleted): move, refresh or drop its
    /// cached object. The feed lock is held.
    fn retire(&self, old: &Reference, new: Option<&Arc<Reference>>, full: Option<&Arc<CompactObject>>) {
        let cached = self.uncache(old);
        let Some(new) = new else {
            if cached.is_some() {
                self.counters.invalidations.fetch_add(1, Relaxed);
            }
            return;
        };
        let Some(cached) = cached else { return };
        if new.id == old.id {
            // Same version, new index entry (its keys moved): the object is still current.
            self.install(new, cached);
        } else if let Some(object) = full {
            self.install(new, self.new_cached(object.clone()));
            self.counters.refreshes.fetch_add(1, Relaxed);
        } else if new.resource_version().is_some()
            && cached.object().resource_version() == new.resource_version()
            && same_incarnation(cached.object(), new)
        {
            self.install(new, cached);
            self.counters.refreshes.fetch_add(1, Relaxed);
        } else {
            self.counters.invalidations.fetch_add(1, Relaxed);
        }
    }

    /// The cached object of reference version `r`, unless expired at `now` (an expired one is
    /// dropped). One atomic load, one `Arc` clone.
    #[inline]
    fn cached(&self, r: &Reference, now: u64) -> Option<Arc<CompactObject>> {
        let slot = r.slot.load();
        let cached = slot.as_ref()?;
        if cached.expires_ms > now {
            return Some(cached.object.clone());
        }
        let fill = cached.fill;
        drop(slot);
        clear_slot_if(r, fill);
        if self.cache.remove_if(&r.id, |e| e.fill == fill).is_some() {
            self.counters.expirations.fetch_add(1, Relaxed);
        }
        None
    }

    fn maybe_sweep(&self, now: u64) {
        let at = self.next_sweep_ms.load(Relaxed);
        if now >= at
            && self
                .next_sweep_ms
                .compare_exchange(at, now.saturating_add(millis(self.sweep_every)), Relaxed, Relaxed)
                .is_ok()
        {
            self.sweep(now);
        }
    }

    /// Removes expired entries, and entries whose reference is no longer in the index.
    fn sweep(&self, now: u64) -> u64 {
        let expired = AtomicU64::new(0);
        let orphaned = AtomicU64::new(0);
        self.cache.retain(|_, e| {
            let Some(r) = e.reference.upgrade() else {
                orphaned.fetch_add(1, Relaxed);
                return false;
            };
            if e.expires_ms <= now {
                clear_slot_if(&r, e.fill);
                expired.fetch_add(1, Relaxed);
                return false;
            }
            let live = self.refs.get_by_identity(r.namespace(), r.name()).is_some_and(|c| Arc::ptr_eq(&c, &r));
            if !live {
                clear_slot_if(&r, e.fill);
                orphaned.fetch_add(1, Relaxed);
            }
            live
        });
        let (expired, orphaned) = (expired.into_inner(), orphaned.into_inner());
        self.counters.expirations.fetch_add(expired, Relaxed);
        self.counters.invalidations.fetch_add(orphaned, Relaxed);
        if expired + orphaned > 0 {
            tracing::debug!(resource = %self.fetcher.resource_name, expired, orphaned, "swept cache");
        }
        expired + orphaned
    }

    /// The objects of `refs`, in order: cached ones directly, the others fetched.
    async fn resolve(self: &Arc<Self>, refs: &[Arc<Reference>]) -> Fetched {
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
    fn single_hit(&self, refs: &[Arc<Reference>], now: u64) -> Option<Arc<CompactObject>> {
        let [r] = refs else { return None };
        let one = self.cached(r, now)?;
        self.counters.hits.add(1);
        Some(one)
    }

    /// `resolve` after the clock was read.
    async fn resolve_at(self: &Arc<Self>, refs: &[Arc<Reference>], now: u64) -> Fetched {
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
    async fn resolve_slow(
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
            stream::iter(missing)
                .map(|i| {
                    let load = self.load(refs[i].clone(), now);
                    async move { (i, load.await) }
                })
                .buffer_unordered(self.max_concurrent_fetches)
                .collect()
                .await
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

    /// The object of `r`: joins the fetch in flight for this reference version, or starts one.
    fn load(self: &Arc<Self>, r: Arc<Reference>, now: u64) -> InFlight {
        let mut inflight = self.inflight.lock();
        if let Some(f) = inflight.get(&r.id) {
            return f.future.clone();
        }
        // A fetch may have filled the cache and left the map since this lookup missed.
        if let Some(object) = self.cached(&r, now) {
            return sync::ready_flight(Ok(Some(object)));
        }
        let id = r.id;
        let identity = r.identity();
        let resource = self.fetcher.resource_name.clone();
        let serial = self.flights.fetch_add(1, Relaxed);
        // With a sweeper keeping the clock, it times fetches out (one timer for all of them);
        // otherwise every fetch runs under a timer of its own.
        let watched = self.fetcher.timeout.filter(|_| self.clock.ticking());
        let timed_out = Arc::new(AtomicBool::new(false));
        let flag = timed_out.clone();
        let weak = Arc::downgrade(self);
        // The fetch runs as its own task: it completes (and leaves the in-flight map) even if
        // every caller waiting for it is cancelled, so no half-run fetch is left behind.
        let (future, abort) =
            sync::spawn_flight(Arc::clone(self).fetch_and_fill(r, serial, watched.is_none()), move |reason| {
                let inner = weak.upgrade();
                let error = match watched {
                    // Aborted by the sweeper at its deadline.
                    Some(after) if flag.load(Acquire) => {
                        if let Some(inner) = &inner {
                            inner.counters.fetch_errors.fetch_add(1, Relaxed);
                        }
                        FetchError::Timeout { resource, identity, after }
                    }
                    _ => {
                        // Panicked, or cancelled with its runtime: the task cannot leave the map.
                        if let Some(inner) = &inner {
                            inner.forget_flight(id, serial);
                        }
                        FetchError::Interrupted { resource, identity, reason }
                    }
                };
                tracing::warn!(error = %error, "fetch failed");
                Err(Arc::new(error))
            });
        let deadline_ms = watched.map_or(u64::MAX, |after| self.clock.precise().saturating_add(millis(after)));
        inflight.insert(id, Fetching { future: future.clone(), serial, deadline_ms, abort, timed_out });
        future
    }

    /// Removes the in-flight entry of fetch `serial` of reference version `id`, if still there.
    fn forget_flight(&self, id: u64, serial: u64) {
        let mut inflight = self.inflight.lock();
        if inflight.get(&id).is_some_and(|f| f.serial == serial) {
            inflight.remove(&id);
        }
    }

    /// Times out the fetches in flight whose deadline passed (sweeper only): they leave the map,
    /// so the next lookup fetches anew, and their tasks are aborted; their callers get
    /// [`FetchError::Timeout`].
    fn time_out_fetches(&self, now: u64) {
        let mut inflight = self.inflight.lock();
        inflight.retain(|_, f| {
            if f.deadline_ms > now {
                return true;
            }
            f.timed_out.store(true, Release);
            f.abort.abort();
            false
        });
    }

    async fn fetch_and_fill(self: Arc<Self>, r: Arc<Reference>, serial: u64, timer: bool) -> Outcome {
        let outcome = match self.fetch_fresh(&r, timer).await {
            Ok(Some((object, cacheable))) => {
                let object = Arc::new(object);
                if cacheable {
                    self.fill(&r, &object);
                }
                Ok(Some(object))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Arc::new(e)),
        };
        self.forget_flight(r.id, serial);
        outcome
    }

    /// Fetches `r`; an answer older than the reference's (current) resourceVersion is retried
    /// once. `Ok(Some((object, cacheable)))`.
    async fn fetch_fresh(
        &self,
        r: &Reference,
        timer: bool,
    ) -> std::result::Result<Option<(CompactObject, bool)>, FetchError> {
        let f = &self.fetcher;
        let mut stale = None;
        for _attempt in 0..2 {
            self.counters.fetches.fetch_add(1, Relaxed);
            tracing::debug!(resource = %f.resource_name, namespace = r.namespace(), name = r.name(), "fetching");
            let object = match f.fetch(r.namespace(), r.name(), r.uid(), timer).await {
                Ok(Some(o)) => o,
                Ok(None) => {
                    self.counters.not_found.fetch_add(1, Relaxed);
                    tracing::debug!(resource = %f.resource_name, namespace = r.namespace(), name = r.name(), "referenced object not found");
                    return Ok(None);
                }
                Err(e) => {
                    self.counters.fetch_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "fetch failed");
                    return Err(e);
                }
            };
            let current = self.refs.get_by_identity(r.namespace(), r.name());
            let known = current.as_deref().unwrap_or(r);
            if compare_versions(object.resource_version(), known.resource_version()) == Some(std::cmp::Ordering::Less) {
                self.counters.stale_fetches.fetch_add(1, Relaxed);
                stale = Some((
                    object.resource_version().unwrap_or_default().to_owned(),
                    known.resource_version().unwrap_or_default().to_owned(),
                ));
                continue;
            }
            let cacheable = current.is_some_and(|c| c.id == r.id) && same_incarnation(&object, r);
            return Ok(Some((object, cacheable)));
        }
        self.counters.fetch_errors.fetch_add(1, Relaxed);
        let (fetched, known) = stale.unwrap_or_default();
        let e = FetchError::Stale { resource: f.resource_name.clone(), identity: r.identity(), fetched, known };
        tracing::warn!(error = %e, "fetch failed");
        Err(e)
    }

    /// Caches `object` for reference version `r`, unless a watch event replaced it meanwhile.
    fn fill(&self, r: &Reference, object: &Arc<CompactObject>) {
        let _feed = self.feed.lock();
        let Some(current) = self.refs.get_by_identity(r.namespace(), r.name()) else { return };
        if current.id != r.id {
            return;
        }
        self.install(&current, self.new_cached(object.clone()));
    }
}

impl CachedHandle {
    /// Like [`Store::get`], but reports objects not found and failed fetches separately
    /// instead of failing the whole lookup.
    pub async fn get_detailed(&self, keys: &[&str]) -> Result<Fetched> {
        self.inner.get_detailed(keys).await
    }

    /// Every object, fetching the ones not cached (at most `max_concurrent_fetches` at once).
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

    /// Counters and sizes. Costs O(cached entries) for the byte count.
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
        let cached_bytes = self.cache.iter().map(|(_, e)| e.bytes).sum();
        CacheStats {
            hits: c.hits.sum(),
            misses: c.misses.load(Relaxed),
            fetches: c.fetches.load(Relaxed),
            fetch_errors: c.fetch_errors.load(Relaxed),
            not_found: c.not_found.load(Relaxed),
            stale_fetches: c.stale_fetches.load(Relaxed),
            expirations: c.expirations.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            invalidations: c.invalidations.load(Relaxed),
            refreshes: c.refreshes.load(Relaxed),
            entries: self.cache.len(),
            cached_bytes,
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
