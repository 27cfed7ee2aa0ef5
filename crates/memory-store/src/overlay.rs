//! What-if overlays: a read-only view of a snapshot with proposed changes applied.
//!
//! An admission-style check asks "what would the stores look like with this object added,
//! that one changed and this one deleted?" without touching the store. [`Changes`] collects
//! the proposed changes (by identity; the latest change of an identity wins);
//! [`Snapshot::overlay`] resolves them against one state and returns an [`Overlay`] that
//! answers the snapshot's lookups (`get` by 1..=N keys, `list`, `get_by_identity`, `len`) as a
//! copy of the store with the changes applied would.
//!
//! # Costs
//! Building an overlay costs O(c · log n) for c changes (one identity lookup in the base per
//! change, to classify it): it never copies the store. A lookup costs what the snapshot's
//! costs plus O(matches · log c) to drop the base objects the overlay replaces or deletes, plus
//! the overlay's own matches; a lookup that no change touches returns the base's result
//! itself (shared, no copy). `list` is O(n) when there are changes.
//!
//! The base state is pinned (like a [`Snapshot`]); the store keeps accepting writes, which
//! the overlay never sees.
//!
//! [`OverlayDelta`] is the part that knows nothing of the base's type: the watcher uses it
//! over on-demand stores, whose base lookups fetch.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use store_types::{GetFuture, KeyArity, KeyTuple, KubeObject, ObjectKey, Objects, Operation, Store, StoreError};

use crate::index::{cmp_objects, id_of};
use crate::key::{self, encode, prefix_end};
use crate::store::Snapshot;

/// Why a proposed change was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverlayError {
    /// The object has no identity (no `metadata.name`).
    #[error("proposed object without metadata.name (keys {keys:?})")]
    MissingIdentity {
        /// The keys it was proposed under.
        keys: Vec<String>,
    },
    /// The key tuple does not have the store's number of keys.
    #[error("proposed object {object}: {got} index keys given, the store has {expected}")]
    KeyCount {
        /// The object (`namespace/name`).
        object: String,
        /// Keys given.
        got: usize,
        /// The store's number of keys.
        expected: usize,
    },
}

/// Proposed changes by identity: additions and modifications (an object under its keys) and
/// deletions. A later change of the same identity replaces an earlier one.
///
/// # Usage
/// ```
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kstore_memory_store::{Changes, KeyTuple, MemoryStore};
///
/// fn cm(ns: &str, name: &str) -> Arc<ConfigMap> {
///     let mut c = ConfigMap::default();
///     c.metadata.namespace = Some(ns.into());
///     c.metadata.name = Some(name.into());
///     Arc::new(c)
/// }
/// let store = MemoryStore::<ConfigMap>::new(2)?;
/// store.add(cm("default", "a"), KeyTuple::new(["default", "a"]))?;
///
/// let mut changes = Changes::new(2);
/// changes.upsert(cm("default", "b"), KeyTuple::new(["default", "b"]))?;
/// changes.delete("default", "a");
/// changes.delete("default", "nope"); // absent: a no-op, reported in the summary
/// let view = store.snapshot().overlay(changes);
///
/// assert_eq!(view.get(&["default"])?.len(), 1);  // only b
/// assert_eq!(view.summary().created, 1);
/// assert_eq!(view.summary().absent_deletions.len(), 1);
/// assert_eq!(store.len(), 1);                     // the store is untouched
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Changes<T> {
    num_keys: usize,
    /// `Some`: store this object under these keys; `None`: delete.
    by_identity: BTreeMap<ObjectKey, Option<(Arc<T>, KeyTuple)>>,
}

impl<T> Clone for Changes<T> {
    fn clone(&self) -> Self {
        Changes { num_keys: self.num_keys, by_identity: self.by_identity.clone() }
    }
}

impl<T> std::fmt::Debug for Changes<T> {
    /// Identities only, never object contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.by_identity.iter().map(|(k, v)| (k, if v.is_some() { "upsert" } else { "delete" })))
            .finish()
    }
}

impl<T: KubeObject> Changes<T> {
    /// No changes yet, for a store of `num_keys` keys.
    pub fn new(num_keys: usize) -> Self {
        Changes { num_keys, by_identity: BTreeMap::new() }
    }

    /// Proposes `object` under `keys` (exactly `N`): an addition, or the modification of the
    /// object with the same identity (moved if its keys differ).
    pub fn upsert(&mut self, object: Arc<T>, keys: KeyTuple) -> Result<(), OverlayError> {
        let Some(id) = object.identity() else {
            return Err(OverlayError::MissingIdentity { keys: keys.to_vec() });
        };
        if keys.len() != self.num_keys {
            return Err(OverlayError::KeyCount {
                object: id.key().to_string(),
                got: keys.len(),
                expected: self.num_keys,
            });
        }
        self.by_identity.insert(id.key(), Some((object, keys)));
        Ok(())
    }

    /// Proposes deleting the object `namespace`/`name` (`""` for cluster-scoped objects).
    pub fn delete(&mut self, namespace: &str, name: &str) {
        self.by_identity.insert(ObjectKey::new(namespace, name), None);
    }

    /// Number of identities changed.
    pub fn len(&self) -> usize {
        self.by_identity.len()
    }

    /// True when nothing is proposed.
    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }
}

/// What an overlay changes relative to its base.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverlaySummary {
    /// Identities added (absent from the base).
    pub created: usize,
    /// Identities replaced (present in the base).
    pub modified: usize,
    /// Identities deleted (present in the base).
    pub deleted: usize,
    /// Deletions of identities the base does not hold: no-ops, listed here.
    pub absent_deletions: Vec<ObjectKey>,
}

/// Resolved changes, independent of the base's type: which base objects are shadowed
/// (replaced or deleted) and the proposed objects indexed by key tuple. [`Overlay`] pairs it
/// with a [`Snapshot`]; other bases (an on-demand store) combine their own results with
/// [`get`](Self::get) and [`list`](Self::list).
pub struct OverlayDelta<T> {
    num_keys: usize,
    /// Every change that applies: `Some` an upsert, `None` a deletion of a base object.
    by_identity: BTreeMap<ObjectKey, Option<Arc<T>>>,
    /// Proposed objects by key tuple, each bucket sorted by (namespace, name).
    by_keys: BTreeMap<KeyTuple, Vec<Arc<T>>>,
    /// Sorted hashes of the changed identities: most base objects are not changed, and this
    /// answers that without encoding their identity.
    id_hashes: Vec<u64>,
    /// Sorted hashes of every key tuple of `by_keys` and of each of their prefixes: most
    /// lookups find no proposed object, and this answers that without a map search.
    key_hashes: Vec<u64>,
    summary: OverlaySummary,
}

/// The hasher of the overlay's pre-checks ([`key::hash_elements`], [`key::hash_tuple`]).
const PRECHECK: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6b73_746f_7265);

impl<T> Clone for OverlayDelta<T> {
    fn clone(&self) -> Self {
        OverlayDelta {
            num_keys: self.num_keys,
            by_identity: self.by_identity.clone(),
            by_keys: self.by_keys.clone(),
            id_hashes: self.id_hashes.clone(),
            key_hashes: self.key_hashes.clone(),
            summary: self.summary.clone(),
        }
    }
}

impl<T: KubeObject> OverlayDelta<T> {
    /// Resolves `changes` against a base: `exists(namespace, name)` says whether the base holds
    /// that identity (it classifies each change; deletions of absent identities are dropped and
    /// reported). O(c · cost of `exists`).
    pub fn new(changes: Changes<T>, exists: impl Fn(&str, &str) -> bool) -> Self {
        let mut summary = OverlaySummary::default();
        let mut by_identity = BTreeMap::new();
        let mut by_keys: BTreeMap<KeyTuple, Vec<Arc<T>>> = BTreeMap::new();
        for (okey, change) in changes.by_identity {
            let present = exists(&okey.namespace(), &okey.name());
            match change {
                Some((object, keys)) => {
                    if present {
                        summary.modified += 1;
                    } else {
                        summary.created += 1;
                    }
                    // Identities arrive in (namespace, name) order: buckets are built sorted.
                    by_keys.entry(keys).or_default().push(object.clone());
                    by_identity.insert(okey, Some(object));
                }
                None if present => {
                    summary.deleted += 1;
                    by_identity.insert(okey, None);
                }
                None => summary.absent_deletions.push(okey),
            }
        }
        let mut id_hashes: Vec<u64> = by_identity.keys().map(|k| key::hash_tuple(&PRECHECK, k.as_tuple())).collect();
        id_hashes.sort_unstable();
        let mut key_hashes = Vec::new();
        for keys in by_keys.keys() {
            let elements: Vec<String> = keys.elements().collect();
            key_hashes.extend((1..=elements.len()).map(|n| key::hash_elements(&PRECHECK, &elements[..n])));
        }
        key_hashes.sort_unstable();
        key_hashes.dedup();
        OverlayDelta { num_keys: changes.num_keys, by_identity, by_keys, id_hashes, key_hashes, summary }
    }

    /// What the changes do to the base.
    pub fn summary(&self) -> &OverlaySummary {
        &self.summary
    }

    /// True when no change applies (every lookup answers as the base).
    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }

    /// Whether the overlay replaces or deletes the base's object `namespace`/`name` (or adds one
    /// under that identity).
    pub fn shadows(&self, namespace: &str, name: &str) -> bool {
        self.id_hashes.binary_search(&key::hash_elements(&PRECHECK, &[namespace, name])).is_ok()
            && self.by_identity.contains_key::<[u8]>(&encode(&[namespace, name]))
    }

    /// `Some(Some(object))`: the overlay's object with this identity; `Some(None)`: deleted by
    /// the overlay; `None`: not changed (ask the base).
    pub fn get_by_identity(&self, namespace: &str, name: &str) -> Option<Option<&Arc<T>>> {
        if self.id_hashes.binary_search(&key::hash_elements(&PRECHECK, &[namespace, name])).is_err() {
            return None;
        }
        self.by_identity.get::<[u8]>(&encode(&[namespace, name])).map(Option::as_ref)
    }

    /// Number of objects of a base of `base_len` objects with the changes applied.
    pub fn len_over(&self, base_len: usize) -> usize {
        (base_len + self.summary.created).saturating_sub(self.summary.deleted)
    }

    /// Combines the base's answer to `get(keys)` with the changes: base objects the overlay
    /// shadows are dropped, the overlay's objects under `keys` (exact, or by prefix) are
    /// merged in, in (namespace, name) order. `keys` must have passed the base's arity check.
    pub fn get(&self, keys: &[&str], base: Objects<T>) -> Objects<T> {
        if self.by_identity.is_empty() {
            return base;
        }
        let mut added: Vec<&Arc<T>> = Vec::new();
        if self.key_hashes.binary_search(&key::hash_elements(&PRECHECK, keys)).is_err() {
            // No proposed object under these keys.
        } else if keys.len() == self.num_keys {
            if let Some(bucket) = self.by_keys.get::<[u8]>(&encode(keys)) {
                added.extend(bucket);
            }
        } else {
            let prefix = encode(keys);
            let end = prefix_end(&prefix);
            for (_, bucket) in self.by_keys.range::<[u8], _>((Bound::Included(&prefix[..]), Bound::Excluded(&end[..])))
            {
                added.extend(bucket);
            }
            added.sort_by(|a, b| cmp_objects(&***a, &***b));
        }
        let shadowed = |o: &Arc<T>| {
            let id = id_of(&**o);
            self.shadows(id.namespace, id.name)
        };
        if added.is_empty() && !base.iter().any(shadowed) {
            return base;
        }
        merge(base.iter().filter(|o| !shadowed(o)), added.into_iter()).cloned().collect()
    }

    /// Every object of a base whose objects are `base` (in (namespace, name) order) with the
    /// changes applied, in (namespace, name) order.
    pub fn list<'a>(&'a self, base: impl Iterator<Item = &'a Arc<T>> + 'a) -> impl Iterator<Item = &'a Arc<T>> + 'a {
        let added = self.by_identity.values().filter_map(Option::as_ref);
        merge(
            base.filter(move |o| {
                let id = id_of(&***o);
                !self.shadows(id.namespace, id.name)
            }),
            added,
        )
    }
}

/// Merges two sequences each in (namespace, name) order (no identity in both).
fn merge<'a, T: KubeObject + 'a>(
    a: impl Iterator<Item = &'a Arc<T>>,
    b: impl Iterator<Item = &'a Arc<T>>,
) -> impl Iterator<Item = &'a Arc<T>> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => {
            if cmp_objects(&***x, &***y).is_le() {
                a.next()
            } else {
                b.next()
            }
        }
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// A read-only view of a [`Snapshot`] with proposed [`Changes`] applied; see
/// [`Snapshot::overlay`].
///
/// Building costs O(c · log n) for c changes; a lookup costs the snapshot's plus O(matches ·
/// log c), and one that no change touches returns the snapshot's result itself; `list` is
/// O(n) when there are changes. The base state is pinned; the store keeps accepting writes,
/// which the overlay never sees.
pub struct Overlay<T> {
    base: Snapshot<T>,
    delta: OverlayDelta<T>,
}

impl<T> Clone for Overlay<T> {
    fn clone(&self) -> Self {
        Overlay { base: self.base.clone(), delta: self.delta.clone() }
    }
}

impl<T: KubeObject> Snapshot<T> {
    /// This state with `changes` applied, as a read-only view; the store is untouched. Costs
    /// O(changes · log n); see [`Overlay`].
    pub fn overlay(&self, changes: Changes<T>) -> Overlay<T> {
        let delta = OverlayDelta::new(changes, |ns, name| self.get_by_identity(ns, name).is_some());
        Overlay { base: self.clone(), delta }
    }
}

impl<T: KubeObject> Overlay<T> {
    /// Like [`Snapshot::get`]: objects under 1..=N keys (exact or prefix), in (namespace, name)
    /// order; `0` or more than `N` keys is [`StoreError::KeyCount`].
    pub fn get(&self, keys: &[&str]) -> Result<Objects<T>, StoreError> {
        StoreError::check_arity(Operation::Get, KeyArity::UpTo(self.base.num_keys()), keys)?;
        let base = self.base.get(keys)?;
        Ok(self.delta.get(keys, base))
    }

    /// The object with this identity, if the view holds one.
    pub fn get_by_identity(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        match self.delta.get_by_identity(namespace, name) {
            Some(change) => change.cloned(),
            None => self.base.get_by_identity(namespace, name),
        }
    }

    /// Every object, in (namespace, name) order.
    pub fn list(&self) -> Objects<T> {
        if self.delta.is_empty() {
            return self.base.list();
        }
        self.iter().cloned().collect()
    }

    /// Iterates over every object in (namespace, name) order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<T>> + '_ {
        self.delta.list(self.base.iter())
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.delta.len_over(self.base.len())
    }

    /// True when the view holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of index keys.
    pub fn num_keys(&self) -> usize {
        self.base.num_keys()
    }

    /// What the changes do to the base.
    pub fn summary(&self) -> &OverlaySummary {
        self.delta.summary()
    }

    /// The snapshot under the changes.
    pub fn base(&self) -> &Snapshot<T> {
        &self.base
    }

    /// The resolved changes.
    pub fn delta(&self) -> &OverlayDelta<T> {
        &self.delta
    }
}

/// The read-only lookup trait every store handle and snapshot implements, so code written
/// against [`Store`] (renderers, validators) reads an overlay unchanged. Every call is ready at
/// once.
#[async_trait::async_trait]
impl<T: KubeObject> Store<T> for Overlay<T> {
    fn num_keys(&self) -> usize {
        Overlay::num_keys(self)
    }

    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, T> {
        GetFuture::ready(Overlay::get(self, keys))
    }

    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, T> {
        GetFuture::ready(Ok(Overlay::get_by_identity(self, namespace, name).map_or_else(Objects::empty, Objects::one)))
    }

    async fn list(&self) -> Result<Objects<T>, StoreError> {
        Ok(Overlay::list(self))
    }

    fn len(&self) -> usize {
        Overlay::len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(ns: &str, name: &str, rv: &str) -> Arc<ConfigMap> {
        let mut c = ConfigMap::default();
        c.metadata.namespace = (!ns.is_empty()).then(|| ns.to_owned());
        c.metadata.name = Some(name.to_owned());
        c.metadata.resource_version = Some(rv.to_owned());
        Arc::new(c)
    }

    fn names(objs: &[Arc<ConfigMap>]) -> Vec<String> {
        objs.iter()
            .map(|o| {
                format!(
                    "{}/{}@{}",
                    o.metadata.namespace.as_deref().unwrap_or(""),
                    o.metadata.name.as_deref().unwrap_or(""),
                    o.metadata.resource_version.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    /// Keys `[namespace, app]`: objects share buckets and move between them.
    fn store() -> MemoryStore<ConfigMap> {
        let s = MemoryStore::new(2).unwrap();
        for (ns, name, app) in [("a", "x", "web"), ("a", "y", "web"), ("a", "z", "db"), ("b", "x", "web")] {
            s.add(cm(ns, name, "1"), KeyTuple::new([ns, app])).unwrap();
        }
        s
    }

    #[test]
    fn overlay_adds_modifies_moves_and_deletes_without_touching_the_store() {
        let s = store();
        let snap = s.snapshot();
        let mut c = Changes::new(2);
        c.upsert(cm("a", "w", "9"), KeyTuple::new(["a", "web"])).unwrap(); // created
        c.upsert(cm("a", "y", "2"), KeyTuple::new(["a", "db"])).unwrap(); // modified and moved
        c.delete("b", "x"); // deleted
        c.delete("c", "none"); // absent
        let o = snap.overlay(c);
        assert_eq!(names(&o.get(&["a", "web"]).unwrap()), ["a/w@9", "a/x@1"]);
        assert_eq!(names(&o.get(&["a", "db"]).unwrap()), ["a/y@2", "a/z@1"]);
        assert_eq!(names(&o.get(&["a"]).unwrap()), ["a/w@9", "a/x@1", "a/y@2", "a/z@1"]);
        assert!(o.get(&["b"]).unwrap().is_empty());
        assert_eq!(names(&o.list()), ["a/w@9", "a/x@1", "a/y@2", "a/z@1"]);
        assert_eq!(o.len(), 4);
        assert!(o.get_by_identity("b", "x").is_none());
        assert_eq!(o.get_by_identity("a", "y").unwrap().metadata.resource_version.as_deref(), Some("2"));
        assert_eq!(
            o.summary(),
            &OverlaySummary {
                created: 1,
                modified: 1,
                deleted: 1,
                absent_deletions: vec![ObjectKey::new("c", "none")]
            }
        );
        // The store and the snapshot are untouched, and the store keeps accepting writes.
        assert_eq!(s.len(), 4);
        s.add(cm("b", "q", "1"), KeyTuple::new(["b", "web"])).unwrap();
        assert_eq!(names(&snap.get(&["a", "web"]).unwrap()), ["a/x@1", "a/y@1"]);
        assert!(o.get(&["b", "web"]).unwrap().is_empty(), "the overlay's base is pinned");
        s.validate().unwrap();
    }

    #[test]
    fn the_store_trait_reads_the_overlay() {
        let s = store();
        let mut c = Changes::new(2);
        c.upsert(cm("a", "w", "9"), KeyTuple::new(["a", "web"])).unwrap();
        c.delete("a", "x");
        let o = s.snapshot().overlay(c);
        let read = |store: &dyn Store<ConfigMap>| {
            let now = |f: GetFuture<'_, ConfigMap>| futures_lite_now(f).unwrap();
            (now(store.get(&["a", "web"])).len(), now(store.get_by_identity("a", "x")).len(), store.len())
        };
        assert_eq!(read(&o), (2, 0, 4));
        assert_eq!(read(&s.snapshot()), (2, 1, 4));
    }

    /// The output of a future that is ready at once.
    fn futures_lite_now<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("an overlay future waited"),
        }
    }

    #[test]
    fn untouched_lookups_share_the_base_result() {
        let s = store();
        let snap = s.snapshot();
        let mut c = Changes::new(2);
        c.upsert(cm("b", "n", "1"), KeyTuple::new(["b", "db"])).unwrap();
        let o = snap.overlay(c);
        let base = snap.get(&["a", "web"]).unwrap();
        let view = o.get(&["a", "web"]).unwrap();
        assert!(std::ptr::eq(base.as_slice().as_ptr(), view.as_slice().as_ptr()), "no copy");
        let empty = s.snapshot().overlay(Changes::new(2));
        assert_eq!(names(&empty.list()), names(&snap.list()));
    }

    #[test]
    fn bad_changes_are_named_errors() {
        let mut c = Changes::new(2);
        let e = c.upsert(cm("a", "x", "1"), KeyTuple::new(["a"])).unwrap_err();
        assert_eq!(e, OverlayError::KeyCount { object: "a/x".into(), got: 1, expected: 2 });
        assert!(e.to_string().contains("a/x"), "{e}");
        let mut nameless = ConfigMap::default();
        nameless.metadata.namespace = Some("a".into());
        assert!(matches!(
            c.upsert(Arc::new(nameless), KeyTuple::new(["a", "b"])),
            Err(OverlayError::MissingIdentity { .. })
        ));
        assert!(c.is_empty());
        let o = store().snapshot().overlay(c);
        assert!(matches!(o.get(&[]), Err(StoreError::KeyCount { .. })));
        assert!(matches!(o.get(&["a", "b", "c"]), Err(StoreError::KeyCount { .. })));
    }

    #[test]
    fn the_last_change_of_an_identity_wins() {
        let s = store();
        let mut c = Changes::new(2);
        c.upsert(cm("a", "new", "1"), KeyTuple::new(["a", "web"])).unwrap();
        c.delete("a", "new");
        c.delete("a", "x");
        c.upsert(cm("a", "x", "5"), KeyTuple::new(["a", "web"])).unwrap();
        let o = s.snapshot().overlay(c);
        assert_eq!(names(&o.get(&["a", "web"]).unwrap()), ["a/x@5", "a/y@1"]);
        assert_eq!(o.summary().modified, 1);
        assert_eq!(o.summary().absent_deletions, vec![ObjectKey::new("a", "new")]);
    }
}
