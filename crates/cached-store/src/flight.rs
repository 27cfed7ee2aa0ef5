//! Single flight: one fetch per reference version, shared by every lookup waiting for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use compact_object::CompactObject;
use store_types::KubeObject;

use crate::clock::millis;
use crate::feed::same_incarnation;
use crate::fetch::FetchError;
use crate::reference::{Reference, compare_versions};
use crate::store::Inner;
use crate::sync::{self, Flight};

/// What one fetch ends in: the object, nothing (404), or the failure.
pub(crate) type Outcome = std::result::Result<Option<Arc<CompactObject>>, Arc<FetchError>>;
pub(crate) type InFlight = Flight<Outcome>;

/// A fetch in flight: its shared result and what the sweeper needs to time it out.
pub(crate) struct Fetching {
    future: InFlight,
    /// Unique per fetch: a finished fetch removes its own entry, never a later one's.
    serial: u64,
    /// Clock deadline when the sweeper enforces the fetch timeout (`u64::MAX` when not).
    deadline_ms: u64,
    abort: sync::Abort,
    timed_out: Arc<AtomicBool>,
}

impl Inner {
    /// The object of `r`: joins the fetch in flight for this reference version, or starts one.
    pub(crate) fn load(self: &Arc<Self>, r: Arc<Reference>, now: u64) -> InFlight {
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
    pub(crate) fn forget_flight(&self, id: u64, serial: u64) {
        let mut inflight = self.inflight.lock();
        if inflight.get(&id).is_some_and(|f| f.serial == serial) {
            inflight.remove(&id);
        }
    }

    /// Times out the fetches in flight whose deadline passed (sweeper only): they leave the map,
    /// so the next lookup fetches anew, and their tasks are aborted; their callers get
    /// [`FetchError::Timeout`].
    pub(crate) fn time_out_fetches(&self, now: u64) {
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

    pub(crate) async fn fetch_and_fill(self: Arc<Self>, r: Arc<Reference>, serial: u64, timer: bool) -> Outcome {
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
    pub(crate) async fn fetch_fresh(
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
    pub(crate) fn fill(&self, r: &Reference, object: &Arc<CompactObject>) {
        let _feed = self.feed.lock();
        let Some(current) = self.refs.get_by_identity(r.namespace(), r.name()) else { return };
        if current.id != r.id {
            return;
        }
        self.install(&current, self.new_cached(object.clone()));
    }
}
