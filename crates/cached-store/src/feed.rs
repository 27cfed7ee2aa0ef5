//! The feeding API the watcher calls: references (and full objects) in, cache entries moved,
//! refreshed or dropped as watch events change their objects.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use compact_object::CompactObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use memory_store::Change;
use store_types::{ChangeStats, Identity, KeyTuple, KubeObject, StoreError};

use crate::clock::millis;
use crate::reference::{Cached, Reference, ReferenceError};
use crate::store::{CachedStore, Inner};
use crate::weigher::Entry;

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

impl CachedStore {
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
}

/// Whether `object` is the incarnation (uid) `reference` names (unknown uids match).
pub(crate) fn same_incarnation(object: &CompactObject, reference: &Reference) -> bool {
    match (object.identity().and_then(|i| i.uid), reference.uid()) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

impl Inner {
    /// Caches `cached` for reference version `r`: sets the slot, then lets quick_cache account
    /// for it (which may evict others, or reject this one if it is larger than a shard; either
    /// way the lifecycle clears the evicted slots). The feed lock is held.
    pub(crate) fn install(&self, r: &Arc<Reference>, cached: Arc<Cached>) {
        let (weight, bytes) = self.weighing.weigh(cached.object());
        let entry =
            Entry { reference: Arc::downgrade(r), expires_ms: cached.expires_ms, fill: cached.fill, weight, bytes };
        r.slot.store(Some(cached));
        // Never replace an entry in place: its bytes leave the gauge here, exactly once.
        if let Some((_, old)) = self.cache.remove(&r.id) {
            self.occupancy.removed(old.bytes);
        }
        self.occupancy.added(bytes);
        self.cache.insert(r.id, entry);
    }

    /// A new cache entry for `object`, expiring one TTL from now.
    pub(crate) fn new_cached(&self, object: Arc<CompactObject>) -> Arc<Cached> {
        let expires_ms = self.clock.precise().saturating_add(millis(self.ttl));
        Arc::new(Cached { object, expires_ms, fill: self.fills.fetch_add(1, Relaxed) })
    }

    /// Drops `r`'s cached object, if any, and returns it. The feed lock is held.
    pub(crate) fn uncache(&self, r: &Reference) -> Option<Arc<Cached>> {
        let cached = r.slot.swap(None);
        if let Some((_, e)) = self.cache.remove(&r.id) {
            self.occupancy.removed(e.bytes);
        }
        cached
    }

    /// Empties every slot of the current references and the cache. The feed lock is held.
    pub(crate) fn clear_cache_locked(&self) {
        for r in self.refs.snapshot().iter() {
            r.slot.store(None);
        }
        // Entry by entry, so the byte gauge loses exactly what leaves.
        self.cache.retain(|_, e| {
            self.occupancy.removed(e.bytes);
            false
        });
    }

    pub(crate) fn check_scope(&self, r: &Reference) -> std::result::Result<(), FeedError> {
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
    pub(crate) fn apply_locked(
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
    pub(crate) fn retire(&self, old: &Reference, new: Option<&Arc<Reference>>, full: Option<&Arc<CompactObject>>) {
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
}
