//! `memory-store` is kstore's [`MemoryStore`]: every object of one resource type in memory,
//! indexed by [`KeyTuple`]s, with O(1) exact lookups, partial-key (prefix) lookups whose cost
//! grows with the number of matches, deterministic ordering, and lock-free reads of consistent
//! snapshots.
//!
//! It is *not* a watcher and knows nothing of HTTP, watches or the Kubernetes API: callers (the
//! `watcher` crate, or a controller directly) hand it objects and their keys. It is also the one
//! index implementation of kstore: `CachedStore` keeps its references in a `MemoryStore` too.
//!
//! Start with [`MemoryStore`]; take a [`Snapshot`] when many lookups must see one state, and use
//! [`MemoryStore::batch`] or [`MemoryStore::replace_all`] to publish many changes at once.

mod exact;
mod index;
mod key;
mod overlay;
mod sorted;
mod store;
mod sync;

pub use index::{Change, InvariantError, MemoryStats};
pub use overlay::{Changes, Overlay, OverlayDelta, OverlayError, OverlaySummary};
pub use store::{Batch, MemoryStore, Prepared, ReadHandle, Reader, Snapshot};
pub use store_types::{KeyTuple, KubeObject, Objects, StoreError};

#[cfg(test)]
mod tests;
