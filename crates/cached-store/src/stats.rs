//! [`CacheStats`] and the counters behind it.
//!
//! Every figure is maintained as it changes (no walk over the cache or the index when stats
//! are read): hits on a striped counter (hits run on many cores at once), the rest on plain
//! atomics; the cached bytes on a gauge every insertion adds to and every removal (eviction,
//! expiry, invalidation, sweep, clear) subtracts from, each by the entry's own figure.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters and sizes of a [`CachedStore`](crate::CachedStore); see
/// [`CachedStore::cache_stats`](crate::CachedStore::cache_stats). Reading them is O(1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups of one object answered from the cache.
    pub hits: u64,
    /// Lookups of one object not answered from the cache: they fetched, joined a fetch in
    /// flight, or were answered by a remembered 404 or a backoff.
    pub misses: u64,
    /// GET requests sent (a stale answer is retried once, so one miss may cost two).
    pub fetches: u64,
    /// Fetches that failed (timeout, API error, encoding, stale twice).
    pub fetch_errors: u64,
    /// Fetches answered 404: the object was deleted before the watch said so.
    pub not_found: u64,
    /// Lookups answered "not found" from a remembered 404, without fetching.
    pub negative_hits: u64,
    /// Lookups answered [`FetchError::BackingOff`](crate::FetchError::BackingOff) without
    /// fetching.
    pub backed_off: u64,
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
    /// than the clock; see [`CachedStore::spawn_sweeper`](crate::CachedStore::spawn_sweeper).
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
pub(crate) struct Striped([Padded; STRIPES]);

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
    pub(crate) fn add(&self, n: u64) {
        let i = STRIPE.with(|i| *i);
        self.0[i].0.fetch_add(n, Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Relaxed)).sum()
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: Striped,
    pub(crate) misses: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_errors: AtomicU64,
    pub(crate) not_found: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) backed_off: AtomicU64,
    pub(crate) stale_fetches: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) refreshes: AtomicU64,
}

/// What the cache holds, kept by its writers and its eviction hook: evictions so far and the
/// estimated bytes of the entries held now.
#[derive(Default)]
pub(crate) struct Occupancy {
    pub(crate) evictions: AtomicU64,
    bytes: AtomicU64,
}

impl Occupancy {
    /// An entry of `bytes` entered the cache.
    pub(crate) fn added(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// An entry of `bytes` left the cache.
    pub(crate) fn removed(&self, bytes: u64) {
        self.bytes.fetch_sub(bytes, Relaxed);
    }

    /// Estimated bytes held now.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }
}
