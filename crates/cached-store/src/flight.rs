//! Single flight, negative cache and backoff: what the store remembers about fetches per
//! reference version.
//!
//! One map, keyed by reference version id, holds a [`Record`] per version that is being
//! fetched (the shared fetch), was answered 404 recently (the negative cache, until
//! `not_found_ttl` passes), or failed recently (backoff: no new fetch until the backoff passes,
//! doubling per consecutive failure up to `max_backoff`, forgotten on success). A lookup that
//! misses the cache consults the map under its lock: it joins the fetch in flight, gets the
//! remembered 404 or a [`FetchError::BackingOff`], or starts the fetch. A new resourceVersion is
//! a new version id, so a watch event always allows a fresh fetch at once.
//!
//! Each fetch runs as its own Tokio task: it completes (fills the cache, settles its record)
//! even if every caller waiting for it is cancelled. Its whole run — waiting for one of the
//! store's `max_concurrent_fetches` permits (a semaphore shared by every lookup), the GET, and
//! the one retry of a stale answer — is bounded by `fetch_timeout`, and every fetch a lookup
//! waits for starts when the lookup does (or earlier, when it joins one), so no lookup waits
//! longer than one `fetch_timeout`.
//!
//! # Why not quick_cache's placeholders
//!
//! quick_cache offers single flight for its own values (`get_value_or_guard_async`,
//! `get_or_insert_async`: the first caller gets a `PlaceholderGuard`, the others wait for the
//! value it inserts). It does not fit this store, for four reasons:
//! * **Failures are not shared.** A guard dropped without a value hands the guard to the next
//!   waiter, which fetches again: twenty callers of an object whose GET fails send twenty GETs,
//!   one after the other. Here a failure (or a 404) is the shared result of the one fetch, and
//!   is then remembered for the backoff or the negative TTL.
//! * **Cancellation abandons the work.** The guard lives in the caller's future; a cancelled
//!   caller drops it mid-request and a waiter starts over. Here the fetch is its own task.
//! * **The fill must be serialised with watch events.** A fetched object may only be cached if
//!   no watch event replaced its reference version meanwhile, checked under the store's feed
//!   lock; a guard's `insert` happens under quick_cache's shard lock, outside that protocol.
//!   And quick_cache's values here are accounting records (the objects live in the references'
//!   slots, so hits never touch quick_cache), not the objects a waiter needs.
//! * **It is not model-checked.** The loom models (`tests/loom.rs`) check this module's
//!   protocol through the stand-ins of `sync.rs`; quick_cache's placeholder internals are
//!   invisible to loom.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

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
/// A fetch in flight, shared by every lookup waiting for it.
pub(crate) type InFlight = Flight<Outcome>;

/// What the store remembers about fetching one reference version.
pub(crate) enum Record {
    /// A fetch is in flight.
    Fetching {
        /// Its shared result.
        future: InFlight,
        /// Unique per fetch: a finished fetch settles its own record, never a later one's.
        serial: u64,
    },
    /// Answered 404 at most `not_found_ttl` ago: lookups return nothing without fetching.
    NotFound {
        /// Store clock (ms) until which the answer stands.
        until_ms: u64,
    },
    /// The last `failures` fetches failed: no new fetch until the backoff passes.
    Failing {
        /// Store clock (ms) when a new fetch may start.
        until_ms: u64,
        /// Consecutive failures.
        failures: u32,
        /// The last failure.
        error: Arc<FetchError>,
    },
}

impl Record {
    /// Whether a sweep at `now` may forget the record: a 404 after its TTL, a failure streak
    /// once `max_backoff` passed after its retry time (the streak is over: the next failure
    /// starts from the initial backoff again). Fetches in flight stay.
    fn expired(&self, now: u64, max_backoff_ms: u64) -> bool {
        match self {
            Record::Fetching { .. } => false,
            Record::NotFound { until_ms } => *until_ms <= now,
            Record::Failing { until_ms, .. } => until_ms.saturating_add(max_backoff_ms) <= now,
        }
    }
}

/// The backoff after `failures` consecutive failures: `initial` doubled per failure after the
/// first, at most `max`.
pub(crate) fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    initial.saturating_mul(1u32 << doublings.min(31)).min(max)
}

impl Inner {
    /// The object of `r`: joins the fetch in flight for this reference version, answers a
    /// remembered 404 or backoff, or starts a fetch.
    pub(crate) fn load(self: &Arc<Self>, r: Arc<Reference>, now: u64) -> InFlight {
        let mut records = self.records.lock();
        let mut failures = 0;
        match records.get(&r.id) {
            Some(Record::Fetching { future, .. }) => return future.clone(),
            Some(Record::NotFound { until_ms }) if *until_ms > now => {
                self.counters.negative_hits.fetch_add(1, Relaxed);
                return sync::ready_flight(Ok(None));
            }
            Some(Record::Failing { until_ms, failures, error }) if *until_ms > now => {
                self.counters.backed_off.fetch_add(1, Relaxed);
                return sync::ready_flight(Err(Arc::new(FetchError::BackingOff {
                    resource: self.fetcher.resource_name.clone(),
                    identity: r.identity(),
                    failures: *failures,
                    retry_in: Duration::from_millis(until_ms - now),
                    last: error.clone(),
                })));
            }
            Some(Record::Failing { failures: n, .. }) => failures = *n,
            Some(Record::NotFound { .. }) | None => {}
        }
        // A fetch may have filled the cache and left the map since this lookup missed.
        if let Some(object) = self.cached(&r, now) {
            return sync::ready_flight(Ok(Some(object)));
        }
        let id = r.id;
        let identity = r.identity();
        let resource = self.fetcher.resource_name.clone();
        let serial = self.flights.fetch_add(1, Relaxed);
        let weak = Arc::downgrade(self);
        let future = sync::spawn_flight(Arc::clone(self).fetch_and_fill(r, serial, failures), move |reason| {
            // Panicked, or cancelled with its runtime: the task could not settle its record.
            let error = Arc::new(FetchError::Interrupted { resource, identity, reason });
            tracing::warn!(error = %error, "fetch failed");
            let outcome = Err(error);
            if let Some(inner) = weak.upgrade() {
                inner.counters.fetch_errors.fetch_add(1, Relaxed);
                inner.settle(id, serial, failures, &outcome);
            }
            outcome
        });
        records.insert(id, Record::Fetching { future: future.clone(), serial });
        future
    }

    /// Replaces the record of fetch `serial` of reference version `id` (if still there) by what
    /// its outcome teaches: nothing after a success, the 404 until `not_found_ttl` passes, the
    /// failure until the backoff passes.
    pub(crate) fn settle(&self, id: u64, serial: u64, failures: u32, outcome: &Outcome) {
        let now = self.clock.precise();
        let mut records = self.records.lock();
        if !records.get(&id).is_some_and(|r| matches!(r, Record::Fetching { serial: s, .. } if *s == serial)) {
            return;
        }
        match outcome {
            Ok(Some(_)) => {
                records.remove(&id);
            }
            Ok(None) => {
                records.insert(id, Record::NotFound { until_ms: now.saturating_add(millis(self.not_found_ttl)) });
            }
            Err(error) => {
                let failures = failures.saturating_add(1);
                let wait = backoff(self.backoff.0, self.backoff.1, failures);
                records.insert(
                    id,
                    Record::Failing { until_ms: now.saturating_add(millis(wait)), failures, error: error.clone() },
                );
            }
        }
    }

    /// Forgets the records a sweep at `now` may forget (see [`Record::expired`]).
    pub(crate) fn sweep_records(&self, now: u64) {
        let max = millis(self.backoff.1);
        self.records.lock().retain(|_, r| !r.expired(now, max));
    }

    /// The fetch task of reference version `r`: one permit of the store-wide limit, the GET
    /// (and one retry of a stale answer), all within `fetch_timeout`; then the fill and the
    /// record.
    async fn fetch_and_fill(self: Arc<Self>, r: Arc<Reference>, serial: u64, failures: u32) -> Outcome {
        let work = async {
            let _permit = self.permits.acquire().await;
            self.fetch_fresh(&r).await
        };
        let result = match self.fetcher.timeout {
            Some(after) => sync::timeout(after, work).await.unwrap_or_else(|| {
                Err(FetchError::Timeout { resource: self.fetcher.resource_name.clone(), identity: r.identity(), after })
            }),
            None => work.await,
        };
        let outcome = match result {
            Ok(Some((object, cacheable))) => {
                let object = Arc::new(object);
                if cacheable {
                    self.fill(&r, &object);
                }
                Ok(Some(object))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                if !matches!(e, FetchError::Stale { .. }) {
                    self.counters.fetch_errors.fetch_add(1, Relaxed);
                }
                tracing::warn!(error = %e, "fetch failed");
                Err(Arc::new(e))
            }
        };
        self.settle(r.id, serial, failures, &outcome);
        outcome
    }

    /// Fetches `r`; an answer older than the reference's (current) resourceVersion is retried
    /// once. `Ok(Some((object, cacheable)))`.
    async fn fetch_fresh(&self, r: &Reference) -> std::result::Result<Option<(CompactObject, bool)>, FetchError> {
        let f = &self.fetcher;
        let mut stale = None;
        for _attempt in 0..2 {
            self.counters.fetches.fetch_add(1, Relaxed);
            tracing::debug!(resource = %f.resource_name, namespace = r.namespace(), name = r.name(), "fetching");
            let object = match f.fetch(r.namespace(), r.name(), r.uid()).await? {
                Some(o) => o,
                None => {
                    self.counters.not_found.fetch_add(1, Relaxed);
                    tracing::debug!(resource = %f.resource_name, namespace = r.namespace(), name = r.name(), "referenced object not found");
                    return Ok(None);
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
        Err(FetchError::Stale { resource: f.resource_name.clone(), identity: r.identity(), fetched, known })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_up_to_the_bound() {
        let (i, m) = (Duration::from_millis(500), Duration::from_secs(30));
        let waits: Vec<_> = (1..=9).map(|n| backoff(i, m, n).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(backoff(i, m, u32::MAX), m);
        assert_eq!(backoff(i, m, 0), i);
    }
}
