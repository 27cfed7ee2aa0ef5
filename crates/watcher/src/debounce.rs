//! Debounced change notifications.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store_types::ChangeStats;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A change callback: receives the summed stats of the changes since the last call.
pub type ChangeCallback = Arc<dyn Fn(ChangeStats) + Send + Sync>;

/// Sums change stats and calls a callback at most once per interval.
///
/// * **Leading edge**: the first change after a quiet interval fires at once.
/// * **Refractory interval**: changes within `interval` of the last fire are summed and fired
///   together when the interval ends.
/// * Empty stats never fire; pending stats are delivered at once by [`Debouncer::flush`]
///   (which keeps the debouncer running) and by [`Debouncer::stop`].
/// * One task per debouncer (never one per event); the callback is called from that task (or
///   from `flush` or `stop`) and never while any lock is held.
/// * `stop` is idempotent; after it, recorded changes are dropped.
pub struct Debouncer {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    interval: Duration,
    state: Mutex<State>,
    wake: Notify,
    callback: ChangeCallback,
    /// Calls of `callback` that panicked.
    panics: AtomicU64,
}

impl Shared {
    /// Calls the callback isolated: a panic is caught, counted and logged.
    fn call(&self, stats: ChangeStats) {
        if !isolated("on_change", || (self.callback)(stats)) {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs a user callback so that a panic in it cannot end the task that called it: the panic is
/// caught and logged (its message, when it is a string). Returns false when it panicked.
///
/// The callback is user code observing the store, not part of the store's state: no lock is
/// held while it runs and no state of the watcher is left half-updated by an unwind, so going
/// on after a caught panic is sound (hence `AssertUnwindSafe`).
pub(crate) fn isolated(callback: &'static str, f: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            let message = panic_message(&*payload);
            // Not dropped: a payload whose own drop panics would unwind out of here.
            std::mem::forget(payload);
            tracing::error!(callback, panic = %message, "user callback panicked; the watcher goes on");
            false
        }
    }
}

/// A panic's message (`panic!` payloads are `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}

#[derive(Default)]
struct State {
    pending: ChangeStats,
    last_fire: Option<Instant>,
    stopped: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the pending stats if they may fire now; otherwise says when they may.
    fn due(&self) -> Result<Option<ChangeStats>, Instant> {
        let mut st = self.lock();
        if st.pending.is_empty() || st.stopped {
            return Ok(None);
        }
        let now = Instant::now();
        if let Some(last) = st.last_fire
            && now < last + self.interval
        {
            return Err(last + self.interval);
        }
        st.last_fire = Some(now);
        Ok(Some(std::mem::take(&mut st.pending)))
    }
}

impl Debouncer {
    /// Starts a debouncer task on the current tokio runtime.
    pub fn new(interval: Duration, callback: ChangeCallback) -> Self {
        let shared = Arc::new(Shared {
            interval,
            state: Mutex::default(),
            wake: Notify::new(),
            callback,
            panics: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(shared.clone()));
        Debouncer { shared, task: Mutex::new(Some(task)) }
    }

    /// Calls of the callback that panicked (caught, logged; notifications go on).
    pub fn panics(&self) -> u64 {
        self.shared.panics.load(Ordering::Relaxed)
    }

    /// Records changes; empty stats are ignored.
    pub fn record(&self, stats: ChangeStats) {
        if stats.is_empty() {
            return;
        }
        {
            let mut st = self.shared.lock();
            if st.stopped {
                return;
            }
            st.pending += stats;
        }
        self.shared.wake.notify_one();
    }

    /// Stats recorded but not yet delivered.
    pub fn pending(&self) -> ChangeStats {
        self.shared.lock().pending
    }

    /// Delivers pending stats now, if any, without waiting for the refractory interval and
    /// without stopping (the Go original's `ForceSync`): the callback runs on the caller's
    /// thread, no lock held, and the interval restarts from now. Returns what was delivered
    /// (empty: nothing was pending, or the debouncer is stopped).
    pub fn flush(&self) -> ChangeStats {
        let flushed = {
            let mut st = self.shared.lock();
            if st.stopped || st.pending.is_empty() {
                return ChangeStats::default();
            }
            st.last_fire = Some(Instant::now());
            std::mem::take(&mut st.pending)
        };
        (self.shared.callback)(flushed);
        flushed
    }

    /// Stops the task and delivers pending stats, if any. Idempotent.
    pub fn stop(&self) {
        let flushed = {
            let mut st = self.shared.lock();
            if st.stopped {
                return;
            }
            st.stopped = true;
            std::mem::take(&mut st.pending)
        };
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        if !flushed.is_empty() {
            self.shared.call(flushed);
        }
    }
}

impl Drop for Debouncer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn run(shared: Arc<Shared>) {
    loop {
        match shared.due() {
            Ok(Some(stats)) => shared.call(stats),
            Ok(None) => shared.wake.notified().await,
            Err(at) => tokio::time::sleep_until(at).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(n: u64) -> ChangeStats {
        ChangeStats { created: n, ..Default::default() }
    }

    /// Calls seen: (seconds since start, stats).
    type Calls = Arc<Mutex<Vec<(u64, ChangeStats)>>>;

    fn recorder() -> (ChangeCallback, Calls) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let c = calls.clone();
        let cb: ChangeCallback = Arc::new(move |s| c.lock().unwrap().push((start.elapsed().as_secs(), s)));
        (cb, calls)
    }

    async fn settle() {
        // Let the debouncer task run without advancing time.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn leading_edge_then_refractory_sum() {
        let (cb, calls) = recorder();
        let d = Debouncer::new(Duration::from_secs(5), cb);
        d.record(created(1));
        settle().await;
        assert_eq!(calls.lock().unwrap().as_slice(), &[(0, created(1))], "leading edge fires at once");
        d.record(created(2));
        d.record(ChangeStats { deleted: 1, ..Default::default() });
        settle().await;
        assert_eq!(calls.lock().unwrap().len(), 1, "suppressed within the interval");
        tokio::time::advance(Duration::from_secs(5)).await;
        settle().await;
        let c = calls.lock().unwrap().clone();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1], (5, ChangeStats { created: 2, deleted: 1, ..Default::default() }));
    }

    #[tokio::test(start_paused = true)]
    async fn empty_stats_never_fire_and_quiet_periods_reset() {
        let (cb, calls) = recorder();
        let d = Debouncer::new(Duration::from_secs(5), cb);
        d.record(ChangeStats::default());
        tokio::time::advance(Duration::from_secs(10)).await;
        settle().await;
        assert!(calls.lock().unwrap().is_empty());
        d.record(created(1));
        settle().await;
        tokio::time::advance(Duration::from_secs(30)).await;
        d.record(created(1));
        settle().await;
        let c = calls.lock().unwrap().clone();
        assert_eq!(c.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [10, 40], "both on the leading edge");
    }

    /// The Go original's `ForceSync`: pending changes are delivered at once, the debouncer
    /// keeps running, and later changes are debounced from the flush.
    #[tokio::test(start_paused = true)]
    async fn flush_delivers_pending_without_stopping() {
        let (cb, calls) = recorder();
        let d = Debouncer::new(Duration::from_secs(5), cb);
        assert!(d.flush().is_empty(), "nothing pending: nothing delivered");
        d.record(created(1));
        settle().await;
        d.record(created(2));
        settle().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(d.flush(), created(2), "delivered before the interval ends");
        assert!(d.pending().is_empty());
        settle().await;
        assert_eq!(calls.lock().unwrap().iter().map(|(t, s)| (*t, s.created)).collect::<Vec<_>>(), [(0, 1), (1, 2)]);
        // Still running, and the interval restarted at the flush: a change one second later
        // waits until five seconds after the flush.
        tokio::time::advance(Duration::from_secs(1)).await;
        d.record(created(3));
        settle().await;
        assert_eq!(calls.lock().unwrap().len(), 2, "within the interval restarted by the flush");
        tokio::time::advance(Duration::from_secs(4)).await;
        settle().await;
        assert_eq!(calls.lock().unwrap().last().map(|(t, s)| (*t, s.created)), Some((6, 3)));
        d.stop();
        d.record(created(4));
        assert!(d.flush().is_empty(), "a stopped debouncer delivers nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn stop_flushes_pending_once() {
        let (cb, calls) = recorder();
        let d = Debouncer::new(Duration::from_secs(5), cb);
        d.record(created(1));
        settle().await;
        d.record(created(7));
        settle().await;
        d.stop();
        d.stop();
        d.record(created(100));
        let c = calls.lock().unwrap().clone();
        assert_eq!(c.iter().map(|(_, s)| s.created).collect::<Vec<_>>(), [1, 7]);
        drop(d);
        assert_eq!(calls.lock().unwrap().len(), 2);
    }
}
