//! The store clock and the sweeper task.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{CachedStore, Inner};
use crate::weigher::clear_slot_if;

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
pub(crate) struct Clock {
    base: Instant,
    tick_ms: AtomicU64,
    /// Sweeper tasks alive.
    tickers: AtomicUsize,
    /// How often a sweeper ticks: a hundredth of the TTL, between 1 ms and 100 ms.
    every: Duration,
}

impl Clock {
    pub(crate) fn new(ttl: Duration) -> Clock {
        Clock {
            base: Instant::now(),
            tick_ms: AtomicU64::new(0),
            tickers: AtomicUsize::new(0),
            every: (ttl / 100).clamp(Duration::from_millis(1), Duration::from_millis(100)),
        }
    }

    /// Tokio's clock, now.
    pub(crate) fn precise(&self) -> u64 {
        millis(Instant::now().saturating_duration_since(self.base))
    }

    /// The sweeper's tick while one runs, else the clock.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        if self.ticking() { self.tick_ms.load(Acquire) } else { self.precise() }
    }

    #[inline]
    pub(crate) fn ticking(&self) -> bool {
        self.tickers.load(Acquire) > 0
    }

    /// Advances the tick to the clock; returns it.
    pub(crate) fn tick(&self) -> u64 {
        let now = self.precise();
        self.tick_ms.fetch_max(now, Release);
        now
    }
}

/// Counts a sweeper task as alive from its spawn until its future is dropped (however it ends).
pub(crate) struct Ticker(Weak<Inner>);

impl Ticker {
    pub(crate) fn start(inner: &Arc<Inner>) -> Ticker {
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

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl CachedStore {
    /// Removes expired cache entries now; returns how many were removed.
    pub fn sweep_expired(&self) -> u64 {
        self.inner.sweep(self.inner.clock.precise())
    }

    /// Spawns a task that sweeps expired entries every `sweep_interval` (default: the TTL), so
    /// they do not pin memory while nobody reads, and so the sweep's O(entries) pass runs off
    /// the read path. The task ticks every hundredth of the TTL (between 1 ms and 100 ms). On a
    /// multi-thread runtime it also keeps the store's clock: lookups compare expiry times
    /// against its latest tick instead of reading the system clock (an entry may then be served
    /// up to one tick, plus scheduling delay, after its TTL; never before). On a current-thread
    /// runtime (the only kind whose time can be paused) lookups keep reading the clock, since
    /// the task runs only when the lookups' own task yields. Sweeps also forget remembered 404s
    /// and failure streaks that are over. The task ends
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
                inner.maybe_sweep(now);
            }
        })
    }
}

impl Inner {
    pub(crate) fn maybe_sweep(&self, now: u64) {
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
    pub(crate) fn sweep(&self, now: u64) -> u64 {
        let expired = AtomicU64::new(0);
        let orphaned = AtomicU64::new(0);
        self.cache.retain(|_, e| {
            let keep = match e.reference.upgrade() {
                None => {
                    orphaned.fetch_add(1, Relaxed);
                    false
                }
                Some(r) if e.expires_ms <= now => {
                    clear_slot_if(&r, e.fill);
                    expired.fetch_add(1, Relaxed);
                    false
                }
                Some(r) => {
                    let live = self.refs.get_by_identity(r.namespace(), r.name()).is_some_and(|c| Arc::ptr_eq(&c, &r));
                    if !live {
                        clear_slot_if(&r, e.fill);
                        orphaned.fetch_add(1, Relaxed);
                    }
                    live
                }
            };
            if !keep {
                self.occupancy.removed(e.bytes);
            }
            keep
        });
        self.sweep_records(now);
        let (expired, orphaned) = (expired.into_inner(), orphaned.into_inner());
        self.counters.expirations.fetch_add(expired, Relaxed);
        self.counters.invalidations.fetch_add(orphaned, Relaxed);
        if expired + orphaned > 0 {
            tracing::debug!(resource = %self.fetcher.resource_name, expired, orphaned, "swept cache");
        }
        expired + orphaned
    }
}
