//! `MemoryStore`, its snapshots and batches.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use store_types::{
    ChangeStats, GetFuture, Identity, KeyArity, KeyTuple, KubeObject, ObjectKey, Objects, Operation, Result, Store,
    StoreError,
};

use crate::index::{Change, Index, InvariantError, MemoryStats};
use crate::sync::{ArcSwap, Cache, Mutex, MutexGuard};

/// Every object of one resource type in memory, indexed by a fixed number `N` of keys.
///
/// # Usage
/// ```
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kstore_memory_store::{KeyTuple, MemoryStore};
///
/// let store = MemoryStore::<ConfigMap>::new(2)?;
/// let mut cm = ConfigMap::default();
/// cm.metadata.namespace = Some("default".into());
/// cm.metadata.name = Some("web".into());
/// store.add(Arc::new(cm), KeyTuple::new(["default", "web"]))?;
///
/// assert_eq!(store.get(&["default", "web"])?.len(), 1); // exact
/// assert_eq!(store.get(&["default"])?.len(), 1);        // partial: by prefix
/// assert!(store.get(&["other"])?.is_empty());           // a miss is empty, not an error
///
/// let reader = store.handle();                          // read-only, `Clone`, sees later writes
/// assert_eq!(reader.get(&["default", "web"])?.len(), 1);
/// store.delete(&store_types::Identity::new("default", "web"));
/// assert!(reader.get(&["default", "web"])?.is_empty());
/// # Ok::<(), store_types::StoreError>(())
/// ```
///
/// # Key semantics
/// Keys are tuples ([`KeyTuple`]), never joined strings. Keys need not be unique: a key tuple
/// holds a bucket of objects. Every object is held once, by identity (namespace, name):
/// [`update`](Self::update) of an object whose keys changed moves it, and
/// [`delete`](Self::delete) removes exactly that one object.
/// [`delete_all_under`](Self::delete_all_under) is the explicit bulk removal. Every result is
/// ordered by namespace, then name.
///
/// # Writer and read handles
/// A `MemoryStore` is its store's one writer and is not `Clone`: whoever owns it (a watcher,
/// the stream adapter, a test) decides what the store holds. Everyone else gets a
/// [`ReadHandle`] ([`handle`](Self::handle); `Clone`, read-only, always the latest state), a
/// [`Snapshot`] (one pinned state) or a [`Reader`] (a caching handle for hot loops). All of
/// them, and the writer itself, implement the read-only [`Store`] trait; none of the readers
/// can add, remove or clear. Share the writer itself only by reference (or in an `Arc` among
/// code that is allowed to write).
///
/// # Consistency and concurrency
/// `MemoryStore` and its handles are `Send + Sync`. The whole
/// state is an immutable, persistent value; writers publish a new one whole, readers borrow the
/// current one through [`arc_swap`] (the `sync.rs` seam):
/// * reads never take a lock and never wait for writers. A one-shot get borrows the state
///   through an arc-swap guard (a slot in the thread's debt list; no reference count on the
///   state in the common case); a [`Reader`] caches the state ([`arc_swap::Cache`]) and checks
///   it with one pointer comparison per call;
/// * a read sees one complete state: the one published before it started, or a later one;
///   never a half-applied write or batch;
/// * a [`Snapshot`] pins one state for any number of lookups; it never changes;
/// * returned objects are `Arc`-shared and immutable; a result held by a reader never changes;
/// * writers are serialised by a mutex, and each write (or [`Batch`]) is published atomically.
///   A reader can observe writes in the order they were published, but not their intermediate
///   steps.
///
/// # Costs
/// Exact get: one hash lookup, no allocation (the result shares the store's bucket). Partial
/// get: O(log n + matches), one exactly sized `Vec` for the result (for `[namespace, name]`
/// keys, a namespace query walks the objects map directly);
/// [`for_each_under`](Self::for_each_under) visits the same matches without the `Vec` and
/// without a reference count per match. Writes: O(log n) path copying in
/// three persistent maps plus a copy of the object's bucket (O(objects sharing its key
/// tuple)).
///
/// # Memory usage
/// Objects are held once as `Arc<T>`; the index adds roughly 300–350 bytes per object (key
/// tuple and identity encodings, bucket, map entries, and a 64-byte exact-index entry that
/// holds key tuples of up to 46 bytes inline, so that exact gets compare keys without another
/// cache miss; measured: 327 B per Secret for 10k Secrets keyed by `[namespace, name]`); see
/// [`MemoryStats`] and `docs/benchmarks.md`. A two-key store whose key tuples are the objects' own
/// `[namespace, name]` and whose objects declare [`KubeObject::CHEAP_IDENTITY`] (cached-store
/// references) keeps no key copies at all: about 26 bytes per object (an identity table slot
/// and a slot in the ordered chunks); it switches to the general layout, once, when an object
/// arrives under other keys. A [`Snapshot`], [`Reader`] or result keeps what it references alive
/// until dropped (a snapshot or reader: the objects of its state). Published states share
/// structure, so holding an old snapshot costs only the parts that changed since.
///
/// A replaced state is freed as soon as nothing holds it: by the write that replaced it (after
/// the writer lock is released), or else by the last [`Snapshot`], [`Reader`] or running lookup
/// that still held it. No thread keeps a state alive by having read it: an idle thread holds
/// nothing (arc-swap's per-thread debt slots are empty between reads).
pub struct MemoryStore<T> {
    /// The store's state, shared with every [`ReadHandle`]; the writer methods live here only.
    handle: ReadHandle<T>,
}

struct Inner<T> {
    num_keys: usize,
    /// The published state (see "Consistency and concurrency").
    state: ArcSwap<Index<T>>,
    writer: Mutex<()>,
}

/// A store's published state as [`Cache`] wants it: something that derefs to the `ArcSwap`.
struct StateCell<T>(Arc<Inner<T>>);

impl<T> Clone for StateCell<T> {
    fn clone(&self) -> Self {
        StateCell(self.0.clone())
    }
}

impl<T> std::ops::Deref for StateCell<T> {
    type Target = ArcSwap<Index<T>>;
    #[inline]
    fn deref(&self) -> &ArcSwap<Index<T>> {
        &self.0.state
    }
}

/// A read-only handle to a [`MemoryStore`]: cheap to clone (one reference count), `Send +
/// Sync`, and every call sees the latest published state, like the store's own read methods.
///
/// It has no method that writes: hand it to renderers, reconcilers and other tasks while the
/// [`MemoryStore`] (the one writer, which is not `Clone`) stays with whoever feeds the store.
/// It implements the read-only [`Store`] trait. A handle keeps the store's state alive (not
/// the writer: after the writer is dropped, the last published state stays readable).
pub struct ReadHandle<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for ReadHandle<T> {
    fn clone(&self) -> Self {
        ReadHandle { inner: self.inner.clone() }
    }
}

fn debug_state<T>(inner: &Inner<T>, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let state = inner.state.load();
    f.debug_struct(name)
        .field("num_keys", &inner.num_keys)
        .field("objects", &state.len())
        .field("key_tuples", &state.key_tuples())
        .finish()
}

impl<T> fmt::Debug for MemoryStore<T> {
    /// Prints only the shape of the store, never object contents (objects may be Secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_state(&self.handle.inner, "MemoryStore", f)
    }
}

impl<T> fmt::Debug for ReadHandle<T> {
    /// Prints only the shape of the store, never object contents (objects may be Secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_state(&self.inner, "ReadHandle", f)
    }
}

/// The object's identity as a store key, or [`StoreError::MissingIdentity`]. When the keys are
/// the identity (most stores), the key shares their allocation instead of copying the identity
/// out of the object.
fn check_identity<T: KubeObject>(op: Operation, object: &T, keys: &KeyTuple) -> Result<ObjectKey> {
    let id = object.identity().ok_or_else(|| StoreError::MissingIdentity { op, keys: keys.to_vec() })?;
    if crate::key::eq_elements(keys, &[id.namespace, id.name])
        && let Some(okey) = ObjectKey::from_tuple(keys.clone())
    {
        return Ok(okey);
    }
    Ok(id.key())
}

/// An object checked for a relist by [`MemoryStore::prepare`]: its identity, its keys, and the
/// number of keys of the store that checked it.
pub struct Prepared<T> {
    pub(crate) key: ObjectKey,
    pub(crate) object: Arc<T>,
    pub(crate) keys: KeyTuple,
    num_keys: usize,
}

impl<T> fmt::Debug for Prepared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("key", &self.key).field("keys", &self.keys).finish_non_exhaustive()
    }
}

fn check_full_keys(op: Operation, num_keys: usize, keys: &KeyTuple) -> Result<()> {
    if keys.len() == num_keys {
        Ok(())
    } else {
        let keys = keys.to_vec();
        StoreError::check_arity(op, KeyArity::Exactly(num_keys), &keys)
    }
}

#[inline(always)]
fn lookup<T: KubeObject>(state: &Index<T>, keys: &[&str]) -> Result<Objects<T>> {
    StoreError::check_arity(Operation::Get, KeyArity::UpTo(state.num_keys), keys)?;
    Ok(if keys.len() == state.num_keys { state.get_exact(keys) } else { state.get_prefix(keys) })
}

fn list_all<T: KubeObject>(state: &Index<T>) -> Objects<T> {
    state.list()
}

fn for_each_under<T: KubeObject>(state: &Index<T>, keys: &[&str], mut f: impl FnMut(&Arc<T>)) -> Result<usize> {
    StoreError::check_arity(Operation::Get, KeyArity::UpTo(state.num_keys), keys)?;
    let mut n = 0;
    state.for_each_under(keys, |o| {
        n += 1;
        f(o);
    });
    Ok(n)
}

impl<T: KubeObject> MemoryStore<T> {
    /// An empty store with `num_keys` index keys. `0` is an error ([`StoreError::NoIndexKeys`]).
    ///
    /// The returned value is the store's one writer; take read-only handles with
    /// [`handle`](Self::handle).
    pub fn new(num_keys: usize) -> Result<Self> {
        if num_keys == 0 {
            return Err(StoreError::NoIndexKeys);
        }
        let inner =
            Arc::new(Inner { num_keys, state: ArcSwap::from_pointee(Index::new(num_keys)), writer: Mutex::new(()) });
        Ok(MemoryStore { handle: ReadHandle { inner } })
    }

    /// A read-only handle to this store (cheap to clone; sees every later write).
    pub fn handle(&self) -> ReadHandle<T> {
        self.handle.clone()
    }

    /// The number of index keys, `N`.
    pub fn num_keys(&self) -> usize {
        self.handle.num_keys()
    }

    /// Objects under `keys`; see [`ReadHandle::get`].
    #[inline(always)]
    pub fn get(&self, keys: &[&str]) -> Result<Objects<T>> {
        self.handle.get(keys)
    }

    /// Calls `f` with the objects under `keys`; see [`ReadHandle::get_with`].
    #[inline(always)]
    pub fn get_with<R>(&self, keys: &[&str], f: impl FnOnce(&[Arc<T>]) -> R) -> Result<R> {
        self.handle.get_with(keys, f)
    }

    /// Visits the objects under `keys` borrowed from the current state; see
    /// [`ReadHandle::for_each_under`].
    pub fn for_each_under(&self, keys: &[&str], f: impl FnMut(&Arc<T>)) -> Result<usize> {
        self.handle.for_each_under(keys, f)
    }

    /// The object with this identity, if held.
    pub fn get_by_identity(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.handle.get_by_identity(namespace, name)
    }

    /// Every object, ordered by namespace, then name.
    pub fn list(&self) -> Objects<T> {
        self.handle.list()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.handle.len()
    }

    /// True when the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Object count, distinct key tuples and a memory estimate.
    pub fn stats(&self) -> MemoryStats {
        self.handle.stats()
    }

    /// An immutable view of the current state; see [`ReadHandle::snapshot`].
    pub fn snapshot(&self) -> Snapshot<T> {
        self.handle.snapshot()
    }

    /// The store's modification count; see [`ReadHandle::mod_count`].
    pub fn mod_count(&self) -> u64 {
        self.handle.mod_count()
    }

    /// A caching reader; see [`ReadHandle::reader`].
    pub fn reader(&self) -> Reader<T> {
        self.handle.reader()
    }

    /// Checks the store's internal invariants; see [`ReadHandle::validate`].
    pub fn validate(&self) -> std::result::Result<(), InvariantError> {
        self.handle.validate()
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the writer lock cannot leave a half-written state behind
        // (writes go to a private copy), so a poisoned lock is safe to take over.
        self.handle.inner.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A private copy of the current state (O(1)); call with the writer lock held.
    fn copy_current(&self) -> Index<T> {
        Index::clone(&self.handle.inner.state.load())
    }

    /// Publishes `next` and returns the state it replaced. Callers drop that after releasing
    /// the writer lock: when no reader holds it any more, dropping it frees every object and
    /// index node only it referenced, which takes a while for a large state.
    fn publish(&self, next: Index<T>) -> Arc<Index<T>> {
        self.handle.inner.state.swap(Arc::new(next))
    }

    fn write<R>(&self, f: impl FnOnce(&mut Index<T>) -> Result<R>) -> Result<R> {
        let guard = self.lock();
        let mut next = self.copy_current();
        let r = f(&mut next)?;
        let replaced = self.publish(next);
        drop(guard);
        drop(replaced);
        Ok(r)
    }

    /// Adds `object` under `keys` (exactly `N`). An object with the same identity is replaced
    /// and, if its keys differ, moved.
    pub fn add(&self, object: Arc<T>, keys: KeyTuple) -> Result<Change> {
        self.upsert(Operation::Add, object, keys)
    }

    /// Replaces the object with the same identity, moving it if its keys changed, or adds it.
    /// Returns [`Change::Unchanged`] (and publishes nothing) when the stored object has the same
    /// uid, resourceVersion and keys.
    pub fn update(&self, object: Arc<T>, keys: KeyTuple) -> Result<Change> {
        self.upsert(Operation::Update, object, keys)
    }

    fn upsert(&self, op: Operation, object: Arc<T>, keys: KeyTuple) -> Result<Change> {
        check_full_keys(op, self.handle.inner.num_keys, &keys)?;
        let okey = check_identity(op, &*object, &keys)?;
        self.write(|s| Ok(s.upsert(okey, object, keys)))
    }

    /// Removes the one object with this identity and returns it. If `identity.uid` is set and
    /// differs from the stored object's uid, nothing is removed (a late delete of an earlier
    /// incarnation of the name).
    pub fn delete(&self, identity: &Identity) -> Option<Arc<T>> {
        let guard = self.lock();
        let mut next = {
            let current = self.handle.inner.state.load();
            current.get_object(&identity.key)?;
            Index::clone(&current)
        };
        let removed = next.remove(identity)?;
        let replaced = self.publish(next);
        drop(guard);
        drop(replaced);
        Some(removed)
    }

    /// Removes every object under `keys` (1..=N keys, exact or prefix like [`get`](Self::get));
    /// returns how many were removed.
    pub fn delete_all_under(&self, keys: &[&str]) -> Result<usize> {
        StoreError::check_arity(Operation::DeleteAllUnder, KeyArity::UpTo(self.handle.inner.num_keys), keys)?;
        self.write(|s| {
            let ids = s.identities_under(keys);
            Ok(ids.iter().filter(|id| s.remove(id).is_some()).count())
        })
    }

    /// Removes everything.
    pub fn clear(&self) {
        let guard = self.lock();
        let mut next = Index::new(self.handle.inner.num_keys);
        {
            let current = self.handle.inner.state.load();
            next.mod_count = current.mod_count + current.len() as u64;
        }
        let replaced = self.publish(next);
        drop(guard);
        drop(replaced);
    }

    /// Starts a batch: changes are applied to a private copy and published together by
    /// [`Batch::commit`]; readers see the previous state until then. Other writers wait until
    /// the batch is committed or dropped (dropping discards it).
    pub fn batch(&self) -> Batch<'_, T> {
        let guard = self.lock();
        let next = self.copy_current();
        Batch { store: self, _guard: guard, next, stats: ChangeStats::default() }
    }

    /// Replaces the whole content with `objects` (a relist) and publishes once: objects absent
    /// from `objects` disappear. Returns what changed relative to the previous state (an
    /// object counts as modified when its resourceVersion, uid or keys differ). On error nothing
    /// is published.
    ///
    /// The same as [`prepare`](Self::prepare) of every object, then
    /// [`replace_all_prepared`](Self::replace_all_prepared).
    pub fn replace_all<I>(&self, objects: I) -> Result<ChangeStats>
    where
        I: IntoIterator<Item = (Arc<T>, KeyTuple)>,
    {
        let objects = objects.into_iter();
        let mut items = Vec::with_capacity(objects.size_hint().0);
        for (object, keys) in objects {
            items.push(self.prepare(object, keys)?);
        }
        self.replace_all_prepared(items)
    }

    /// Checks an object and its keys for a later [`replace_all_prepared`](Self::replace_all_prepared)
    /// (the checks [`replace_all`](Self::replace_all) makes): exactly `N` keys and an
    /// identity. Takes no lock and publishes nothing.
    ///
    /// A feed that receives a relist object by object (a watch's `InitApply` events) prepares
    /// each one as it arrives, while the object is still in the CPU cache, instead of all of
    /// them at the end of the list.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use kstore_memory_store::{KeyTuple, MemoryStore};
    /// # use k8s_openapi::api::core::v1::ConfigMap;
    /// let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    /// let mut cm = ConfigMap::default();
    /// cm.metadata.namespace = Some("default".into());
    /// cm.metadata.name = Some("web".into());
    /// let prepared = store.prepare(Arc::new(cm), KeyTuple::new(["default", "web"])).unwrap();
    /// store.replace_all_prepared(vec![prepared]).unwrap();
    /// assert_eq!(store.len(), 1);
    /// assert!(store.prepare(Arc::new(ConfigMap::default()), KeyTuple::new(["default", "x"])).is_err());
    /// ```
    pub fn prepare(&self, object: Arc<T>, keys: KeyTuple) -> Result<Prepared<T>> {
        let num_keys = self.handle.inner.num_keys;
        check_full_keys(Operation::Batch, num_keys, &keys)?;
        let key = check_identity(Operation::Batch, &*object, &keys)?;
        Ok(Prepared { key, object, keys, num_keys })
    }

    /// [`replace_all`](Self::replace_all) of objects already [prepared](Self::prepare). An item
    /// prepared by a store with another number of keys is [`StoreError::KeyCount`].
    pub fn replace_all_prepared(&self, items: Vec<Prepared<T>>) -> Result<ChangeStats> {
        let num_keys = self.handle.inner.num_keys;
        if let Some(p) = items.iter().find(|p| p.num_keys != num_keys) {
            check_full_keys(Operation::Batch, num_keys, &p.keys)?;
        }
        let guard = self.lock();
        let old = self.handle.inner.state.load_full();
        let mut next = Index::build(num_keys, items);
        let stats = next.changes_since(&old);
        next.mod_count = old.mod_count + stats.created + stats.modified + stats.deleted;
        drop(old);
        let replaced = self.publish(next);
        drop(guard);
        drop(replaced);
        Ok(stats)
    }
}

impl<T: KubeObject> ReadHandle<T> {
    /// The number of index keys, `N`.
    pub fn num_keys(&self) -> usize {
        self.inner.num_keys
    }

    /// Objects under `keys`: an exact match when `keys.len() == N`, a prefix match when fewer.
    /// `0` or more than `N` keys is [`StoreError::KeyCount`]; a miss is an empty result.
    ///
    /// An exact get borrows the published state for the lookup (an arc-swap guard: a slot in the thread's
    /// debt list, no reference count on the state); a prefix get holds a reference to it.
    #[inline(always)]
    pub fn get(&self, keys: &[&str]) -> Result<Objects<T>> {
        if keys.len() == self.inner.num_keys {
            Ok(self.inner.state.load().get_exact(keys))
        } else {
            self.get_partial(keys)
        }
    }

    /// A prefix get (or a key-count error), out of line so that exact gets stay small.
    #[inline(never)]
    fn get_partial(&self, keys: &[&str]) -> Result<Objects<T>> {
        StoreError::check_arity(Operation::Get, KeyArity::UpTo(self.inner.num_keys), keys)?;
        // May return many objects: not a bounded read, so no borrow of the state.
        Ok(self.inner.state.load_full().get_prefix(keys))
    }

    /// Calls `f` with the objects under `keys` (as [`get`](Self::get) would return them)
    /// borrowed from the current state: an exact lookup then clones nothing, not even one
    /// reference count. For lookups that only inspect their result; `f` runs while the state
    /// is borrowed (like an exact get), so keep it short.
    #[inline(always)]
    pub fn get_with<R>(&self, keys: &[&str], f: impl FnOnce(&[Arc<T>]) -> R) -> Result<R> {
        if keys.len() == self.inner.num_keys {
            Ok(f(self.inner.state.load().exact_slice(keys)))
        } else {
            self.get_partial(keys).map(|objects| f(&objects))
        }
    }

    /// Calls `f` with each object under `keys` (1..=N keys: exact or prefix, as
    /// [`get`](Self::get) selects them), in (namespace, name) order, borrowed from the current
    /// state: no result is allocated and no object's reference count is touched. Returns the
    /// number of objects visited. `0` or more than `N` keys is [`StoreError::KeyCount`].
    ///
    /// `f` runs while the state is borrowed (a state replaced meanwhile stays alive until the
    /// call returns), so keep it to inspecting objects; clone an `Arc` to keep one.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use k8s_openapi::api::core::v1::ConfigMap;
    /// # use kstore_memory_store::{KeyTuple, MemoryStore};
    /// let store = MemoryStore::<ConfigMap>::new(2)?;
    /// for name in ["a", "b"] {
    ///     let mut cm = ConfigMap::default();
    ///     cm.metadata.namespace = Some("default".into());
    ///     cm.metadata.name = Some(name.into());
    ///     store.add(Arc::new(cm), KeyTuple::new(["default", name]))?;
    /// }
    /// let mut names = Vec::new();
    /// let n = store.for_each_under(&["default"], |cm| names.push(cm.metadata.name.clone()))?;
    /// assert_eq!((n, names), (2, vec![Some("a".to_owned()), Some("b".to_owned())]));
    /// # Ok::<(), store_types::StoreError>(())
    /// ```
    pub fn for_each_under(&self, keys: &[&str], f: impl FnMut(&Arc<T>)) -> Result<usize> {
        for_each_under(&self.inner.state.load(), keys, f)
    }

    /// The object with this identity, if held.
    pub fn get_by_identity(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.inner.state.load().get_by_identity(namespace, name).cloned()
    }

    /// Every object, ordered by namespace, then name.
    pub fn list(&self) -> Objects<T> {
        list_all(&self.inner.state.load_full())
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.inner.state.load().len()
    }

    /// True when the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Object count, distinct key tuples and a memory estimate.
    pub fn stats(&self) -> MemoryStats {
        self.inner.state.load().stats()
    }

    /// The store's modification count: object changes (creations, modifications, deletions)
    /// published since the store was created. It grows with every published change (a batch or
    /// relist adds its number of changes) and never otherwise: writes that change nothing
    /// leave it as it is, so equal counts mean the same content. For external caches keyed by
    /// store state (the Go original's `ModCount`).
    pub fn mod_count(&self) -> u64 {
        self.inner.state.load().mod_count
    }

    /// An immutable view of the current state, for many lookups that must agree.
    pub fn snapshot(&self) -> Snapshot<T> {
        Snapshot { state: self.inner.state.load_full() }
    }

    /// A reader handle that always sees the latest published state, checking for a new one
    /// with a single pointer comparison per call (an [`arc_swap::Cache`]: no atomic read-modify-write while the state
    /// is unchanged). Use one per thread or task for hot lookup loops.
    ///
    /// A `Reader` keeps the last state it saw alive until its next call or until dropped.
    pub fn reader(&self) -> Reader<T> {
        Reader { cache: Cache::new(StateCell(self.inner.clone())) }
    }

    /// Checks the store's internal invariants (index rebuilt from the objects equals the index
    /// held; buckets sorted; counts agree). For tests; O(n).
    pub fn validate(&self) -> std::result::Result<(), InvariantError> {
        self.inner.state.load().validate()
    }
}

/// A cached reader of a [`MemoryStore`]; see [`MemoryStore::reader`].
///
/// Every call sees the latest published state (never a half-applied write), like the store's
/// own methods; calls take `&mut self` because the handle refreshes its cached state.
///
/// # Memory
/// The handle holds a reference to the last state it used: a state replaced since stays alive
/// until the handle's next call or until it is dropped. Drop idle handles.
pub struct Reader<T> {
    cache: Cache<StateCell<T>, Arc<Index<T>>>,
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader { cache: self.cache.clone() }
    }
}

impl<T: KubeObject> Reader<T> {
    /// The latest state: the cached one while it is still published.
    #[inline]
    fn current(&mut self) -> &Arc<Index<T>> {
        self.cache.load()
    }

    /// Like [`MemoryStore::get`].
    pub fn get(&mut self, keys: &[&str]) -> Result<Objects<T>> {
        lookup(self.current(), keys)
    }

    /// Like [`MemoryStore::list`].
    pub fn list(&mut self) -> Objects<T> {
        list_all(self.current())
    }

    /// Like [`MemoryStore::get_by_identity`].
    pub fn get_by_identity(&mut self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.current().get_by_identity(namespace, name).cloned()
    }

    /// Number of objects now.
    pub fn len(&mut self) -> usize {
        self.current().len()
    }

    /// True when the store is empty now.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// The latest state's modification count; see [`ReadHandle::mod_count`].
    pub fn mod_count(&mut self) -> u64 {
        self.current().mod_count
    }

    /// A snapshot of the latest state.
    pub fn snapshot(&mut self) -> Snapshot<T> {
        Snapshot { state: self.current().clone() }
    }
}

/// An immutable view of one published state of a [`MemoryStore`].
///
/// Cheap to take (one reference-count increment) and to clone. Lookups on it never see later
/// writes. Holding it keeps that state's objects alive.
pub struct Snapshot<T> {
    state: Arc<Index<T>>,
}

impl<T> Clone for Snapshot<T> {
    fn clone(&self) -> Self {
        Snapshot { state: self.state.clone() }
    }
}

impl<T: KubeObject> Snapshot<T> {
    /// Like [`MemoryStore::get`], on this state.
    pub fn get(&self, keys: &[&str]) -> Result<Objects<T>> {
        lookup(&self.state, keys)
    }

    /// Like [`MemoryStore::list`], on this state.
    pub fn list(&self) -> Objects<T> {
        list_all(&self.state)
    }

    /// Like [`ReadHandle::for_each_under`], on this state.
    pub fn for_each_under(&self, keys: &[&str], f: impl FnMut(&Arc<T>)) -> Result<usize> {
        for_each_under(&self.state, keys, f)
    }

    /// Like [`MemoryStore::get_by_identity`], on this state.
    pub fn get_by_identity(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.state.get_by_identity(namespace, name).cloned()
    }

    /// Iterates over every object with its key tuple, in (namespace, name) order.
    ///
    /// The key tuple is shared with the index, or (identity-keyed stores, which keep none)
    /// built from the object's `[namespace, name]`.
    pub fn entries(&self) -> impl Iterator<Item = (&Arc<T>, KeyTuple)> + '_ {
        self.state.entries()
    }

    /// Iterates over every object in (namespace, name) order without allocating.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<T>> + '_ {
        self.state.objects()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of index keys.
    pub fn num_keys(&self) -> usize {
        self.state.num_keys
    }

    /// Object count, key tuples, memory estimate of this state.
    pub fn stats(&self) -> MemoryStats {
        self.state.stats()
    }

    /// The modification count of this state; see [`ReadHandle::mod_count`].
    pub fn mod_count(&self) -> u64 {
        self.state.mod_count
    }

    /// Checks this state's invariants; see [`MemoryStore::validate`].
    pub fn validate(&self) -> std::result::Result<(), InvariantError> {
        self.state.validate()
    }
}

/// Many changes applied privately and published at once; see [`MemoryStore::batch`].
///
/// Holds the store's writer lock until committed or dropped.
pub struct Batch<'a, T: KubeObject> {
    store: &'a MemoryStore<T>,
    _guard: MutexGuard<'a, ()>,
    next: Index<T>,
    stats: ChangeStats,
}

impl<T: KubeObject> Batch<'_, T> {
    /// Adds or replaces (and moves) an object; see [`MemoryStore::update`].
    pub fn upsert(&mut self, object: Arc<T>, keys: KeyTuple) -> Result<Change> {
        check_full_keys(Operation::Batch, self.next.num_keys, &keys)?;
        let okey = check_identity(Operation::Batch, &*object, &keys)?;
        let change = self.next.upsert(okey, object, keys);
        match change {
            Change::Created => self.stats.created += 1,
            Change::Modified { .. } => self.stats.modified += 1,
            Change::Unchanged => {}
        }
        Ok(change)
    }

    /// Removes one object by identity; see [`MemoryStore::delete`].
    pub fn delete(&mut self, identity: &Identity) -> Option<Arc<T>> {
        let removed = self.next.remove(identity);
        if removed.is_some() {
            self.stats.deleted += 1;
        }
        removed
    }

    /// Removes everything (in this batch).
    pub fn clear(&mut self) {
        self.stats.deleted += self.next.len() as u64;
        let mod_count = self.next.mod_count + self.next.len() as u64;
        self.next = Index::new(self.next.num_keys);
        self.next.mod_count = mod_count;
    }

    /// Lookups see the batch's own uncommitted changes.
    pub fn get(&self, keys: &[&str]) -> Result<Objects<T>> {
        lookup(&self.next, keys)
    }

    /// Number of objects in the batch's state.
    pub fn len(&self) -> usize {
        self.next.len()
    }

    /// The modification count the batch publishes (the store's plus the batch's changes).
    pub fn mod_count(&self) -> u64 {
        self.next.mod_count
    }

    /// True when the batch's state is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes every change at once and returns their counts.
    pub fn commit(self) -> ChangeStats {
        let Batch { store, _guard: guard, next, stats } = self;
        let replaced = store.publish(next);
        drop(guard);
        drop(replaced);
        stats
    }
}

#[async_trait]
impl<T: KubeObject> Store<T> for ReadHandle<T> {
    fn num_keys(&self) -> usize {
        self.inner.num_keys
    }

    /// Complete at once (no allocation): see [`GetFuture`].
    #[inline(always)]
    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, T> {
        // An exact get's objects go straight into the future: through a `Result` (returned in
        // memory and read back) they cost a store-forwarding stall per call.
        if keys.len() == self.inner.num_keys {
            self.inner.state.load().get_exact(keys).into()
        } else {
            GetFuture::ready(self.get_partial(keys))
        }
    }

    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, T> {
        GetFuture::ready(Ok(
            ReadHandle::get_by_identity(self, namespace, name).map_or_else(Objects::empty, Objects::one)
        ))
    }

    async fn list(&self) -> Result<Objects<T>> {
        Ok(ReadHandle::list(self))
    }

    fn len(&self) -> usize {
        ReadHandle::len(self)
    }
}

/// The writer reads like its handles do.
#[async_trait]
impl<T: KubeObject> Store<T> for MemoryStore<T> {
    fn num_keys(&self) -> usize {
        self.handle.num_keys()
    }

    /// Complete at once (no allocation): see [`GetFuture`].
    #[inline(always)]
    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, T> {
        Store::get(&self.handle, keys)
    }

    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, T> {
        Store::get_by_identity(&self.handle, namespace, name)
    }

    async fn list(&self) -> Result<Objects<T>> {
        Ok(self.handle.list())
    }

    fn len(&self) -> usize {
        self.handle.len()
    }
}

/// Lookups on one pinned state.
#[async_trait]
impl<T: KubeObject> Store<T> for Snapshot<T> {
    fn num_keys(&self) -> usize {
        self.state.num_keys
    }

    /// Complete at once (no allocation): see [`GetFuture`].
    #[inline(always)]
    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, T> {
        // As for `ReadHandle`: an exact get's objects go straight into the future.
        if keys.len() == self.state.num_keys {
            self.state.get_exact(keys).into()
        } else {
            GetFuture::ready(Snapshot::get(self, keys))
        }
    }

    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, T> {
        GetFuture::ready(Ok(Snapshot::get_by_identity(self, namespace, name).map_or_else(Objects::empty, Objects::one)))
    }

    async fn list(&self) -> Result<Objects<T>> {
        Ok(Snapshot::list(self))
    }

    fn len(&self) -> usize {
        Snapshot::len(self)
    }
}
