//! The weigher: how quick_cache accounts for cached objects, and the eviction hook.
//!
//! quick_cache holds one [`Entry`] per cached object — not the object, which lives in its
//! reference's slot — keyed by the reference's version id. Its one weight bound enforces the
//! byte and the entry bound at once ([`Weighing`]); its eviction hook empties the evicted
//! entry's slot.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use compact_object::CompactObject;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use crate::reference::Reference;
use crate::stats::Occupancy;
use crate::sync::Cache;

/// Estimated bytes a cache entry costs besides its object's heap: the `Cached` slot value, the
/// `CompactObject` handle and quick_cache's entry (an upper bound).
const ENTRY_OVERHEAD: u64 = 160;

/// quick_cache's record of one cached object: it accounts for the object's weight and decides
/// its eviction; the object itself lives in the reference's slot, so a hit never touches the
/// cache. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) reference: Weak<Reference>,
    pub(crate) expires_ms: u64,
    /// The fill this entry accounts for (see `Cached::fill`).
    pub(crate) fill: u64,
    pub(crate) weight: u64,
    pub(crate) bytes: u64,
}

/// Weighs an [`Entry`] by the weight computed when it was made.
#[derive(Clone)]
pub(crate) struct EntryWeighter;

impl Weighter<u64, Entry> for EntryWeighter {
    fn weight(&self, _key: &u64, entry: &Entry) -> u64 {
        entry.weight
    }
}

/// Clears the slot of the entry being evicted (if the slot still holds that entry's object)
/// and counts the eviction and its bytes. Runs under the cache shard's lock; touches only the slot.
#[derive(Clone)]
pub(crate) struct EvictionHook(pub(crate) Arc<Occupancy>);

impl Lifecycle<u64, Entry> for EvictionHook {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: u64, entry: Entry) {
        self.0.evictions.fetch_add(1, Relaxed);
        self.0.removed(entry.bytes);
        if let Some(r) = entry.reference.upgrade() {
            clear_slot_if(&r, entry.fill);
        }
    }
}

/// Empties `r`'s slot if it holds the object of fill `fill`.
pub(crate) fn clear_slot_if(r: &Reference, fill: u64) {
    let current = r.slot.load();
    if current.as_ref().is_some_and(|c| c.fill == fill) {
        r.slot.compare_and_swap(&*current, None);
    }
}

/// The cache of entries, keyed by reference version id.
pub(crate) type ObjectCache = Cache<u64, Entry, EntryWeighter, DefaultHashBuilder, EvictionHook>;

/// How cache weights are computed so that quick_cache's one weight bound enforces both a byte
/// and an entry bound: every entry weighs at least `max_bytes / max_entries`.
#[derive(Clone, Copy)]
pub(crate) enum Weighing {
    /// Weight = estimated bytes, at least `min`.
    Bytes { min: u64 },
    /// Weight = 1 per entry.
    Entries,
}

impl Weighing {
    /// `(weight, estimated bytes)` of an entry holding `object`.
    pub(crate) fn weigh(self, object: &CompactObject) -> (u64, u64) {
        let bytes = entry_bytes(object);
        let weight = match self {
            Weighing::Bytes { min } => bytes.max(min),
            Weighing::Entries => 1,
        };
        (weight, bytes)
    }
}

/// Estimated bytes an entry holding `object` costs.
fn entry_bytes(object: &CompactObject) -> u64 {
    (object.heap_size() + size_of::<CompactObject>()) as u64 + ENTRY_OVERHEAD
}
