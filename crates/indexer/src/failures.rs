//! Counting and de-duplicated logging of key-extraction failures.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use store_types::{Identity, IdentityRef};

use crate::IndexError;

/// Tracks objects that could not be indexed, so each is logged once and all are counted.
///
/// Under [`MissingFieldPolicy::Error`](crate::MissingFieldPolicy::Error) the watcher does not
/// store an object whose keys cannot be extracted. It calls [`ExtractionFailures::record`] for
/// every such event: the failure is always counted, and logged (a `tracing` warning) only the
/// first time for that object identity, so a frequently updated object does not flood the log.
/// When the object is deleted or later indexes fine, [`ExtractionFailures::forget`] lets a
/// future failure be logged again.
///
/// Memory is bounded: at most `capacity` identities are remembered; beyond that the oldest is
/// forgotten (and may be logged again).
///
/// # Usage
/// ```
/// use kstore_indexer::{ExtractionFailures, Indexer};
/// use serde_json::json;
/// let indexer = Indexer::new(["metadata.labels['app']"], [""; 0])?;
/// let failures = ExtractionFailures::new(1024);
/// let obj = json!({"metadata": {"namespace": "default", "name": "web"}});
/// for _ in 0..3 {
///     if let Err(e) = indexer.keys(&obj) {
///         failures.record(store_types::json_identity(&obj), &e);
///     }
/// }
/// assert_eq!((failures.count(), failures.distinct()), (3, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ExtractionFailures {
    count: AtomicU64,
    seen: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    set: HashSet<Identity>,
    order: VecDeque<Identity>,
    capacity: usize,
}

impl ExtractionFailures {
    /// A tracker remembering at most `capacity` identities (at least 1).
    pub fn new(capacity: usize) -> Self {
        ExtractionFailures {
            count: AtomicU64::new(0),
            seen: Mutex::new(Seen { set: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1) }),
        }
    }

    /// Counts a failure of the object `identity` (`None` for an object without a name) and logs
    /// it if this identity was not logged before. Returns true when it was logged.
    pub fn record(&self, identity: Option<IdentityRef<'_>>, error: &IndexError) -> bool {
        let id = identity.map_or_else(|| Identity::new("", ""), |i| i.to_owned());
        self.record_once(
            id,
            |id| tracing::warn!(object = %id, %error, "object not stored: index key extraction failed"),
        )
    }

    /// Counts an object that could not be decoded or prepared (nested too deep, not a JSON
    /// object, invalid; `None` when it has no readable name). Returns true when this identity
    /// was not recorded before: the caller logs it then, with its context. Same bookkeeping as
    /// [`record`](Self::record); use a separate tracker per kind of failure.
    pub fn record_rejected(&self, identity: Option<&Identity>) -> bool {
        let id = identity.cloned().unwrap_or_else(|| Identity::new("", ""));
        self.record_once(id, |_| {})
    }

    fn record_once(&self, id: Identity, log: impl FnOnce(&Identity)) -> bool {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.set.contains(&id) {
            return false;
        }
        if seen.order.len() >= seen.capacity
            && let Some(old) = seen.order.pop_front()
        {
            seen.set.remove(&old);
        }
        seen.order.push_back(id.clone());
        seen.set.insert(id.clone());
        drop(seen);
        log(&id);
        true
    }

    /// Forgets `identity` (deleted, or indexed successfully), so its next failure is logged.
    pub fn forget(&self, identity: IdentityRef<'_>) {
        let id = identity.to_owned();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.set.remove(&id) {
            seen.order.retain(|o| o != &id);
        }
    }

    /// Total failures recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Identities currently remembered as failing.
    pub fn distinct(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).set.len()
    }
}

impl Default for ExtractionFailures {
    /// Remembers up to 4096 identities.
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> IndexError {
        IndexError::MissingField { object: "x".into(), position: 0, path: "a".into() }
    }

    fn id<'a>(ns: &'a str, name: &'a str) -> IdentityRef<'a> {
        IdentityRef { namespace: ns, name, uid: None }
    }

    #[test]
    fn logs_once_per_identity_counts_all() {
        let f = ExtractionFailures::new(2);
        assert!(f.record(Some(id("a", "x")), &err()));
        assert!(!f.record(Some(id("a", "x")), &err()));
        assert!(f.record(Some(id("a", "y")), &err()));
        assert!(f.record(None, &err()));
        assert!(!f.record(None, &err()));
        // Capacity 2: ("a","x") was evicted by the nameless one.
        assert_eq!(f.distinct(), 2);
        assert!(f.record(Some(id("a", "x")), &err()));
        f.forget(id("a", "x"));
        assert!(f.record(Some(id("a", "x")), &err()));
        assert_eq!(f.count(), 7);
    }

    #[test]
    fn rejections_log_once_per_identity_count_all() {
        let f = ExtractionFailures::new(4);
        let deep = Identity::new("ns", "deep");
        assert!(f.record_rejected(Some(&deep)));
        assert!(!f.record_rejected(Some(&deep)));
        assert!(f.record_rejected(None));
        f.forget(id("ns", "deep"));
        assert!(f.record_rejected(Some(&deep)));
        assert_eq!((f.count(), f.distinct()), (4, 2));
    }
}
