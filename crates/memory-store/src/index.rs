//! The persistent index: objects by identity, buckets by key tuple.
//!
//! An [`Index`] is an immutable value once published; writers clone it (O(1): the maps are
//! persistent, sharing structure) and modify their private copy.
//!
//! Two layouts hold the same content:
//! * **identity-keyed** (the store has two keys, its objects' identities are cheap to read —
//!   [`KubeObject::CHEAP_IDENTITY`], as for cached-store references — and
//!   every object's key tuple is its own `[namespace, name]`, as for an index by
//!   `[metadata.namespace, metadata.name]`): a hash table of objects by identity and the objects
//!   in identity order ([`Sorted`]). One pointer per object in each (plus, for types that
//!   declare [`KubeObject::INLINE_IDENTITY`], an inline copy of the identity in the table), no
//!   key tuple, bucket or ordered key map.
//! * **keyed** (any other key tuples): objects by identity with their key tuples, key tuple →
//!   bucket for exact lookups, and the key tuples in order for prefix lookups.
//!
//! Such a store starts identity-keyed and switches to keyed, once, when an
//! object arrives under other keys (an O(n) rebuild); `clear` and relists choose again.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::OnceLock;

use imbl::OrdMap;
use smallvec::SmallVec;
use store_types::{ChangeStats, Identity, IdentityRef, KeyTuple, KubeObject, ObjectKey, Objects};

use crate::exact::{ExactIndex, IdentityIndex};
use crate::key::{self, encode, prefix_end};
use crate::sorted::Sorted;
use crate::store::Prepared;

/// Objects sharing one key tuple, sorted by (namespace, name), never empty: the one object
/// itself, or a shared slice of several. Exact lookups hand out a clone (one reference-count
/// increment, no allocation, no copy).
pub(crate) type Bucket<T> = Objects<T>;

/// One stored object and the key tuple it is indexed under (keyed layout).
pub(crate) struct Slot<T> {
    pub(crate) object: Arc<T>,
    pub(crate) keys: KeyTuple,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot { object: self.object.clone(), keys: self.keys.clone() }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new identity was stored.
    Created,
    /// An object with the same identity was replaced (`moved`: under other keys).
    Modified {
        /// The key tuple changed.
        moved: bool,
    },
    /// An identical object (same resourceVersion, same keys) was already stored; nothing changed.
    Unchanged,
}

/// Size figures of a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Objects held.
    pub objects: usize,
    /// Distinct key tuples.
    pub key_tuples: usize,
    /// Estimated heap bytes: objects as reported by [`KubeObject::heap_size`] plus the index
    /// (keys, buckets and map entries). An estimate, not an allocator measurement.
    pub estimated_bytes: usize,
}

/// Approximate per-entry overhead of the persistent maps (node slots, pointers, counts),
/// measured against a counting allocator in `benches/store.rs`.
const MAP_ENTRY_OVERHEAD: usize = 48;

/// Approximate index bytes per object in the identity-keyed layout (a hash table slot at its
/// usual load, control bytes, the chunk slot), measured against a counting allocator.
const IDENTITY_ENTRY_OVERHEAD: usize = 24;

/// The same with an inline copy of each identity ([`KubeObject::INLINE_IDENTITY`]): 56-byte
/// table entries instead of 8, at the table's usual load.
const INLINE_IDENTITY_ENTRY_OVERHEAD: usize = 96;

pub(crate) fn id_of<T: KubeObject>(o: &T) -> IdentityRef<'_> {
    // Stored objects always have an identity: it is checked before anything is inserted.
    o.identity().unwrap_or(IdentityRef { namespace: "", name: "", uid: None })
}

pub(crate) fn cmp_objects<T: KubeObject>(a: &T, b: &T) -> Ordering {
    let (a, b) = (id_of(a), id_of(b));
    (a.namespace, a.name).cmp(&(b.namespace, b.name))
}

/// Same uid and (known) resourceVersion.
fn same_object_version<T: KubeObject>(a: &T, b: &T) -> bool {
    a.resource_version().is_some()
        && a.resource_version() == b.resource_version()
        && a.identity().and_then(|i| i.uid) == b.identity().and_then(|i| i.uid)
}

/// Equal key tuples, where `None` stands for the identity of `object` (identity-keyed layout).
fn same_keys<T: KubeObject>(a: Option<&KeyTuple>, b: Option<&KeyTuple>, object: &T) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b,
        (Some(k), None) | (None, Some(k)) => {
            let id = id_of(object);
            key::eq_elements(k, &[id.namespace, id.name])
        }
    }
}

/// The keyed layout.
struct Keyed<T> {
    /// Identity → object and keys; ordered, so `list` is in (namespace, name) order.
    objects: OrdMap<ObjectKey, Slot<T>>,
    /// Full key tuple → bucket; O(1) exact lookups.
    exact: ExactIndex<T>,
    /// Full key tuple → bucket in tuple order, for prefix lookups. Absent when `num_keys == 1`
    /// (a one-key store has no partial keys).
    ordered: Option<OrdMap<KeyTuple, Bucket<T>>>,
}

impl<T> Clone for Keyed<T> {
    fn clone(&self) -> Self {
        Keyed { objects: self.objects.clone(), exact: self.exact.clone(), ordered: self.ordered.clone() }
    }
}

enum Layout<T> {
    /// Every object is indexed under its identity `[namespace, name]`.
    Identity {
        by_id: IdentityIndex<T>,
        sorted: Sorted<T>,
    },
    Keyed(Keyed<T>),
}

impl<T> Clone for Layout<T> {
    fn clone(&self) -> Self {
        match self {
            Layout::Identity { by_id, sorted } => Layout::Identity { by_id: by_id.clone(), sorted: sorted.clone() },
            Layout::Keyed(k) => Layout::Keyed(k.clone()),
        }
    }
}

/// One of two iterators (the two layouts).
enum Either<A, B> {
    A(A),
    B(B),
}

impl<I, A: Iterator<Item = I>, B: Iterator<Item = I>> Iterator for Either<A, B> {
    type Item = I;

    #[inline]
    fn next(&mut self) -> Option<I> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

/// The whole state of a store at one moment.
pub(crate) struct Index<T> {
    pub(crate) num_keys: usize,
    layout: Layout<T>,
    /// Sum of `heap_size()` of the objects plus their key bytes.
    bytes: usize,
    /// Objects whose key tuple is exactly their (namespace, name): when that is every object,
    /// key order is identity order and prefix results need no sorting check.
    identity_keyed: usize,
    /// Every object in (namespace, name) order, built on the first `list` of this state and
    /// shared by every later one (states are immutable once published).
    list_cache: OnceLock<Objects<T>>,
    /// Object changes (creations, modifications, deletions) applied to this store's states
    /// since the store was created; carried from state to state.
    pub(crate) mod_count: u64,
}

impl<T> Clone for Index<T> {
    fn clone(&self) -> Self {
        Index {
            num_keys: self.num_keys,
            layout: self.layout.clone(),
            bytes: self.bytes,
            identity_keyed: self.identity_keyed,
            // A clone is about to be modified: its list is built afresh when asked for.
            list_cache: OnceLock::new(),
            mod_count: self.mod_count,
        }
    }
}

impl<T> Index<T> {
    pub(crate) fn len(&self) -> usize {
        match &self.layout {
            Layout::Identity { sorted, .. } => sorted.len(),
            Layout::Keyed(k) => k.objects.len(),
        }
    }

    /// Number of distinct key tuples.
    pub(crate) fn key_tuples(&self) -> usize {
        match &self.layout {
            Layout::Identity { sorted, .. } => sorted.len(),
            Layout::Keyed(k) => k.exact.len(),
        }
    }
}

impl<T: KubeObject> Index<T> {
    /// Whether an index of `num_keys` keys starts identity-keyed: two keys, and objects whose
    /// identity is cheap to read (see [`KubeObject::CHEAP_IDENTITY`]). Other objects keep a
    /// copy of each identity in the index, so lookups never chase their metadata strings.
    fn identity_layout(num_keys: usize) -> bool {
        num_keys == 2 && T::CHEAP_IDENTITY
    }

    pub(crate) fn new(num_keys: usize) -> Self {
        let layout = if Self::identity_layout(num_keys) {
            Layout::Identity { by_id: IdentityIndex::new(), sorted: Sorted::new() }
        } else {
            Layout::Keyed(Keyed {
                objects: OrdMap::new(),
                exact: ExactIndex::new(),
                ordered: (num_keys > 1).then(OrdMap::new),
            })
        };
        Index { num_keys, layout, bytes: 0, identity_keyed: 0, list_cache: OnceLock::new(), mod_count: 0 }
    }

    /// A whole index from checked objects in one pass (a relist): sorted by identity once,
    /// each bucket built once, instead of one upsert per object. The same identity twice: the
    /// later one wins, as with repeated upserts.
    pub(crate) fn build(num_keys: usize, mut items: Vec<Prepared<T>>) -> Self {
        // Stable: equal identities keep their input order, so the last of each run is the latest.
        // A list arrives in identity order (the API server's storage order): then the sort is
        // one comparison per object.
        items.sort_by(|a, b| a.key.cmp(&b.key));
        let mut unique: Vec<(ObjectKey, Arc<T>, KeyTuple)> = Vec::with_capacity(items.len());
        for Prepared { key, object, keys, .. } in items {
            match unique.last_mut() {
                Some(last) if last.0 == key => *last = (key, object, keys),
                _ => unique.push((key, object, keys)),
            }
        }
        if Self::identity_layout(num_keys) && unique.iter().all(|(okey, _, keys)| keys == okey.as_tuple()) {
            let mut objects: Vec<Arc<T>> = Vec::with_capacity(unique.len());
            let mut identities = Vec::with_capacity(unique.len());
            for (okey, object, _) in unique {
                objects.push(object.clone());
                identities.push((okey.as_tuple().clone(), object));
            }
            let by_id = IdentityIndex::from_identities(identities);
            return Index {
                num_keys,
                bytes: objects.iter().map(|o| o.heap_size()).sum(),
                identity_keyed: objects.len(),
                layout: Layout::Identity { by_id, sorted: Sorted::from_sorted(&objects) },
                list_cache: OnceLock::new(),
                mod_count: 0,
            };
        }
        Self::build_keyed(num_keys, unique)
    }

    /// The keyed layout from unique objects in identity order.
    fn build_keyed(num_keys: usize, unique: Vec<(ObjectKey, Arc<T>, KeyTuple)>) -> Self {
        let mut k =
            Keyed { objects: OrdMap::new(), exact: ExactIndex::new(), ordered: (num_keys > 1).then(OrdMap::new) };
        let (mut bytes, mut identity_keyed) = (0, 0);
        // Objects arrive in identity order, so every bucket is built already sorted.
        let mut buckets: std::collections::HashMap<KeyTuple, Vec<Arc<T>>, foldhash::fast::RandomState> =
            Default::default();
        for (okey, object, keys) in unique {
            // `[namespace, name]` keys share the identity's allocation, as in `upsert`.
            let keys = if keys == *okey.as_tuple() { okey.as_tuple().clone() } else { keys };
            bytes += keyed_bytes(&*object, &keys, &okey);
            identity_keyed += keyed_by_identity(&keys, &okey);
            buckets.entry(keys.clone()).or_default().push(object.clone());
            k.objects.insert(okey, Slot { object, keys });
        }
        for (keys, objects) in buckets {
            let bucket: Bucket<T> = Objects::from(objects);
            if let Some(ordered) = &mut k.ordered {
                ordered.insert(keys.clone(), bucket.clone());
            }
            k.exact.insert(&keys, bucket);
        }
        Index { num_keys, layout: Layout::Keyed(k), bytes, identity_keyed, list_cache: OnceLock::new(), mod_count: 0 }
    }

    /// Switches an identity-keyed index to the keyed layout (O(n), once).
    fn make_keyed(&mut self) {
        let Layout::Identity { sorted, .. } = &self.layout else { return };
        let unique = sorted
            .iter()
            .map(|o| {
                let okey = id_of(&**o).key();
                let keys = okey.as_tuple().clone();
                (okey, o.clone(), keys)
            })
            .collect();
        let mod_count = self.mod_count;
        *self = Self::build_keyed(self.num_keys, unique);
        self.mod_count = mod_count;
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        let objects = self.len();
        let key_tuples = self.key_tuples();
        let boxes = objects * (std::mem::size_of::<T>() + 16);
        let index = match &self.layout {
            Layout::Identity { .. } if T::INLINE_IDENTITY => objects * INLINE_IDENTITY_ENTRY_OVERHEAD,
            Layout::Identity { .. } => objects * IDENTITY_ENTRY_OVERHEAD,
            Layout::Keyed(k) => {
                let map_entries = objects + key_tuples * if k.ordered.is_some() { 2 } else { 1 };
                // Per key tuple, 32 bytes for the exact index's inline copy of short tuples (its
                // entries are 64 bytes, not 32). A bucket of one object is the object's own
                // pointer; a bucket of k > 1 is a slice of 16 + 8k bytes, counted as 24 bytes per
                // object beyond the first (exact for pairs, an overestimate for large buckets).
                let shared = objects.saturating_sub(key_tuples);
                map_entries * MAP_ENTRY_OVERHEAD + key_tuples * 32 + shared * 24
            }
        };
        MemoryStats { objects, key_tuples, estimated_bytes: self.bytes + index + boxes }
    }

    /// Exact lookup by a full key tuple's elements.
    #[inline(always)]
    pub(crate) fn get_exact(&self, keys: &[&str]) -> Objects<T> {
        // `CHEAP_IDENTITY` is a constant: stores of other objects compile to the keyed lookup
        // alone (they are never identity-keyed).
        if T::CHEAP_IDENTITY
            && let Layout::Identity { by_id, .. } = &self.layout
        {
            return match by_id.get_elements(keys) {
                Some(object) => Objects::one(object.clone()),
                None => Objects::empty(),
            };
        }
        match &self.layout {
            Layout::Keyed(k) => match k.exact.get_elements(keys) {
                Some(bucket) => bucket.clone(),
                None => Objects::empty(),
            },
            Layout::Identity { .. } => Objects::empty(),
        }
    }

    /// The objects under a full key tuple, borrowed.
    #[inline]
    pub(crate) fn exact_slice(&self, keys: &[&str]) -> &[Arc<T>] {
        if T::CHEAP_IDENTITY
            && let Layout::Identity { by_id, .. } = &self.layout
        {
            return by_id.get_elements(keys).map(std::slice::from_ref).unwrap_or_default();
        }
        match &self.layout {
            Layout::Keyed(k) => k.exact.get_elements(keys).map(|b| &b[..]).unwrap_or_default(),
            Layout::Identity { .. } => &[],
        }
    }

    /// Buckets whose key tuple starts with the encoded prefix (`end`: its [`prefix_end`]), in
    /// tuple order (keyed layout).
    fn prefix_buckets<'a>(
        k: &'a Keyed<T>,
        prefix: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = &'a Bucket<T>> + use<'a, T> {
        k.ordered
            .as_ref()
            .map(|m| m.range::<_, [u8]>((Bound::Included(prefix), Bound::Excluded(end))))
            .into_iter()
            .flatten()
            .map(|(_, b)| b)
    }

    /// Calls `f` with every object under a key prefix (fewer than `num_keys` keys), borrowed
    /// from this state, in (namespace, name) order. Cost: O(log n + matches), no reference
    /// count taken; matches are walked in place when their order is the key order (the
    /// identity-keyed layout, or every key tuple being its object's `[namespace, name]`), else
    /// gathered as references on the stack (up to 128) and sorted when out of order.
    pub(crate) fn for_each_prefix<'a>(&'a self, keys: &[&str], mut f: impl FnMut(&'a Arc<T>)) {
        let k = match &self.layout {
            Layout::Identity { sorted, .. } => {
                // Two keys, so the prefix is the namespace.
                if let [namespace] = keys {
                    sorted.namespace(namespace).for_each(f);
                }
                return;
            }
            Layout::Keyed(k) => k,
        };
        let prefix = encode(keys);
        let end = prefix_end(&prefix);
        if self.identity_keyed == k.objects.len() {
            // Every key tuple is its object's `[namespace, name]`: the objects map has the same
            // order and holds each object inline, so walk it instead of one bucket per object.
            let range = k.objects.range::<_, [u8]>((Bound::Included(&prefix[..]), Bound::Excluded(&end[..])));
            range.for_each(|(_, slot)| f(&slot.object));
            return;
        }
        let mut found: SmallVec<[&Arc<T>; 128]> = SmallVec::new();
        for bucket in Self::prefix_buckets(k, &prefix, &end) {
            found.extend(bucket.iter());
        }
        if !found.is_sorted_by(|a, b| cmp_objects(&***a, &***b) != Ordering::Greater) {
            found.sort_by(|a, b| cmp_objects(&***a, &***b));
        }
        found.into_iter().for_each(f);
    }

    /// Objects under a key prefix (fewer than `num_keys` keys), ordered by (namespace, name):
    /// [`for_each_prefix`](Self::for_each_prefix)'s matches, gathered as references first (on
    /// the stack for up to 128) so that the result is allocated once at its exact size.
    pub(crate) fn get_prefix(&self, keys: &[&str]) -> Objects<T> {
        let mut found: SmallVec<[&Arc<T>; 128]> = SmallVec::new();
        self.for_each_prefix(keys, |o| found.push(o));
        found.iter().map(|o| Arc::clone(o)).collect()
    }

    /// Calls `f` with every object under `keys` (1..=`num_keys` keys, exact or prefix), borrowed,
    /// in (namespace, name) order.
    pub(crate) fn for_each_under<'a>(&'a self, keys: &[&str], f: impl FnMut(&'a Arc<T>)) {
        if keys.len() == self.num_keys {
            self.exact_slice(keys).iter().for_each(f);
        } else {
            self.for_each_prefix(keys, f);
        }
    }

    /// Every object in (namespace, name) order; O(n) on the first call for a state, then a
    /// shared, O(1) result.
    pub(crate) fn list(&self) -> Objects<T> {
        self.list_cache.get_or_init(|| self.objects().cloned().collect()).clone()
    }

    /// Every object in (namespace, name) order, without allocating.
    pub(crate) fn objects(&self) -> impl Iterator<Item = &Arc<T>> + '_ {
        match &self.layout {
            Layout::Identity { sorted, .. } => Either::A(sorted.iter()),
            Layout::Keyed(k) => Either::B(k.objects.values().map(|s| &s.object)),
        }
    }

    /// Every object with its key tuple, in (namespace, name) order. Identity-keyed objects get
    /// their `[namespace, name]` tuple built on the fly.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Arc<T>, KeyTuple)> + '_ {
        match &self.layout {
            Layout::Identity { sorted, .. } => Either::A(sorted.iter().map(|o| {
                let id = id_of(&**o);
                (o, KeyTuple::new([id.namespace, id.name]))
            })),
            Layout::Keyed(k) => Either::B(k.objects.values().map(|s| (&s.object, s.keys.clone()))),
        }
    }

    /// Every object with its key tuple (`None`: its identity), in (namespace, name) order.
    fn slots(&self) -> impl Iterator<Item = (&Arc<T>, Option<&KeyTuple>)> + '_ {
        match &self.layout {
            Layout::Identity { sorted, .. } => Either::A(sorted.iter().map(|o| (o, None))),
            Layout::Keyed(k) => Either::B(k.objects.values().map(|s| (&s.object, Some(&s.keys)))),
        }
    }

    /// The object with this identity and its key tuple (`None`: its identity).
    fn slot(&self, namespace: &str, name: &str) -> Option<(&Arc<T>, Option<&KeyTuple>)> {
        match &self.layout {
            Layout::Identity { by_id, .. } => by_id.get(namespace, name).map(|o| (o, None)),
            Layout::Keyed(k) => {
                let key = encode(&[namespace, name]);
                k.objects.get::<[u8]>(&key).map(|s| (&s.object, Some(&s.keys)))
            }
        }
    }

    /// The object with this identity.
    pub(crate) fn get_object(&self, key: &ObjectKey) -> Option<&Arc<T>> {
        match &self.layout {
            Layout::Identity { by_id, .. } => by_id.get_key(key),
            Layout::Keyed(k) => k.objects.get(key).map(|s| &s.object),
        }
    }

    /// The object `namespace`/`name` (no allocation).
    pub(crate) fn get_by_identity(&self, namespace: &str, name: &str) -> Option<&Arc<T>> {
        self.slot(namespace, name).map(|(o, _)| o)
    }

    /// Inserts or replaces `object` (whose identity has been checked) under `keys`.
    pub(crate) fn upsert(&mut self, okey: ObjectKey, object: Arc<T>, keys: KeyTuple) -> Change {
        let change = self.upsert_inner(okey, object, keys);
        if change != Change::Unchanged {
            self.mod_count += 1;
        }
        change
    }

    fn upsert_inner(&mut self, okey: ObjectKey, object: Arc<T>, keys: KeyTuple) -> Change {
        if matches!(self.layout, Layout::Identity { .. }) && keys != *okey.as_tuple() {
            self.make_keyed();
        }
        match &mut self.layout {
            Layout::Identity { by_id, sorted } => {
                let old = by_id.get_key(&okey);
                let change = match old {
                    Some(old) if same_object_version(&**old, &*object) => return Change::Unchanged,
                    Some(old) => {
                        self.bytes -= old.heap_size();
                        Change::Modified { moved: false }
                    }
                    None => {
                        self.identity_keyed += 1;
                        Change::Created
                    }
                };
                self.bytes += object.heap_size();
                by_id.insert(object.clone());
                sorted.upsert(object);
                change
            }
            Layout::Keyed(k) => {
                let (change, bytes, identity_keyed) = k.upsert(okey, object, keys);
                self.bytes = self.bytes + bytes.0 - bytes.1;
                self.identity_keyed = self.identity_keyed + identity_keyed.0 - identity_keyed.1;
                change
            }
        }
    }

    /// Removes the object with this identity (unless its uid says it is another incarnation).
    pub(crate) fn remove(&mut self, identity: &Identity) -> Option<Arc<T>> {
        let removed = self.remove_inner(identity);
        if removed.is_some() {
            self.mod_count += 1;
        }
        removed
    }

    fn remove_inner(&mut self, identity: &Identity) -> Option<Arc<T>> {
        let object = self.get_object(&identity.key)?;
        if let (Some(want), Some(have)) = (identity.uid.as_deref(), object.identity().and_then(|i| i.uid))
            && want != have
        {
            return None;
        }
        match &mut self.layout {
            Layout::Identity { by_id, sorted } => {
                let object = by_id.get_key(&identity.key)?.clone();
                let id = id_of(&*object);
                by_id.remove(id.namespace, id.name);
                sorted.remove(id.namespace, id.name);
                self.bytes -= object.heap_size();
                self.identity_keyed -= 1;
                Some(object)
            }
            Layout::Keyed(k) => {
                let slot = k.objects.remove(&identity.key)?;
                self.bytes -= keyed_bytes(&*slot.object, &slot.keys, &identity.key);
                self.identity_keyed -= keyed_by_identity(&slot.keys, &identity.key);
                k.bucket_remove(&slot.keys, &slot.object);
                Some(slot.object)
            }
        }
    }

    /// Identities of the objects under a full key tuple or a prefix.
    pub(crate) fn identities_under(&self, keys: &[&str]) -> Vec<Identity> {
        let to_id = |o: &Arc<T>| Identity { key: id_of(&**o).key(), uid: None };
        match &self.layout {
            Layout::Identity { by_id, sorted } => match keys {
                [_, _] => by_id.get_elements(keys).map(to_id).into_iter().collect(),
                [namespace] => sorted.namespace(namespace).map(to_id).collect(),
                _ => Vec::new(),
            },
            Layout::Keyed(k) => {
                if keys.len() == self.num_keys {
                    k.exact.get_elements(keys).map(|b| b.iter().map(to_id).collect()).unwrap_or_default()
                } else {
                    let prefix = encode(keys);
                    let end = prefix_end(&prefix);
                    Self::prefix_buckets(k, &prefix, &end).flat_map(|b| b.iter().map(to_id)).collect()
                }
            }
        }
    }

    /// What replacing `old` by `self` changed: identities created, modified (resourceVersion,
    /// uid or keys differ) and deleted.
    pub(crate) fn changes_since(&self, old: &Index<T>) -> ChangeStats {
        let mut stats = ChangeStats::default();
        if old.len() == 0 {
            // The first list: everything is new (and nothing needs reading).
            stats.created = self.len() as u64;
            return stats;
        }
        for (object, keys) in self.slots() {
            let id = id_of(&**object);
            match old.slot(id.namespace, id.name) {
                None => stats.created += 1,
                Some((prev, prev_keys))
                    if !(same_keys(prev_keys, keys, &**object) && same_object_version(&**prev, &**object)) =>
                {
                    stats.modified += 1
                }
                Some(_) => {}
            }
        }
        stats.deleted = old
            .objects()
            .filter(|o| {
                let id = id_of(&***o);
                self.get_by_identity(id.namespace, id.name).is_none()
            })
            .count() as u64;
        stats
    }

    /// Checks every invariant by rebuilding the index from the objects and comparing.
    pub(crate) fn validate(&self) -> Result<(), InvariantError> {
        match &self.layout {
            Layout::Identity { by_id, sorted } => self.validate_identity(by_id, sorted),
            Layout::Keyed(k) => self.validate_keyed(k),
        }
    }

    fn validate_identity(&self, by_id: &IdentityIndex<T>, sorted: &Sorted<T>) -> Result<(), InvariantError> {
        if self.num_keys != 2 {
            return Err(InvariantError::IdentityLayout { num_keys: self.num_keys });
        }
        sorted.validate()?;
        count("objects by identity vs in order", by_id.len(), sorted.len())?;
        let mut bytes = 0;
        for o in sorted.iter() {
            let Some(id) = o.identity() else {
                return Err(InvariantError::NoIdentity { at: "the ordered objects".to_owned() });
            };
            match by_id.get(id.namespace, id.name) {
                Some(found) if Arc::ptr_eq(found, o) => {}
                _ => return Err(InvariantError::NotInIdentityTable { identity: id.key().to_string() }),
            }
            bytes += o.heap_size();
        }
        count("identity table entries vs its count", by_id.iter().count(), by_id.len())?;
        if let Some(identity) = by_id.wrong_inline_identity() {
            return Err(InvariantError::InlineIdentity { identity });
        }
        count("identity-keyed objects", self.identity_keyed, sorted.len())?;
        count("object bytes", self.bytes, bytes)
    }

    fn validate_keyed(&self, k: &Keyed<T>) -> Result<(), InvariantError> {
        let mut rebuilt: std::collections::BTreeMap<KeyTuple, Vec<Arc<T>>> = Default::default();
        let mut bytes = 0;
        let mut identity_keyed = 0;
        for (okey, slot) in &k.objects {
            let Some(id) = slot.object.identity() else {
                return Err(InvariantError::NoIdentity { at: okey.to_string() });
            };
            if &id.key() != okey {
                return Err(InvariantError::WrongIdentity { at: okey.to_string(), claims: id.key().to_string() });
            }
            if slot.keys.len() != self.num_keys {
                return Err(InvariantError::KeyCount {
                    identity: okey.to_string(),
                    keys: slot.keys.len(),
                    num_keys: self.num_keys,
                });
            }
            bytes += keyed_bytes(&*slot.object, &slot.keys, okey);
            identity_keyed += keyed_by_identity(&slot.keys, okey);
            rebuilt.entry(slot.keys.clone()).or_default().push(slot.object.clone());
        }
        count("identity-keyed objects", self.identity_keyed, identity_keyed)?;
        count("object bytes", self.bytes, bytes)?;
        count("key tuples in the exact index", k.exact.len(), rebuilt.len())?;
        for (keys, mut expected) in rebuilt {
            expected.sort_by(|a, b| cmp_objects(&**a, &**b));
            let Some(bucket) = k.exact.get(&keys) else {
                return Err(InvariantError::NotInExactIndex { keys: keys.to_string() });
            };
            if bucket.len() != expected.len() || bucket.iter().zip(&expected).any(|(a, b)| !Arc::ptr_eq(a, b)) {
                return Err(InvariantError::Bucket { keys: keys.to_string() });
            }
            if let Some(ordered) = &k.ordered {
                match ordered.get(&keys) {
                    Some(b) if Objects::ptr_eq(b, bucket) => {}
                    _ => return Err(InvariantError::OrderedIndex { keys: keys.to_string() }),
                }
            }
        }
        if k.exact.buckets().any(|b| b.is_empty()) {
            return Err(InvariantError::EmptyBucket);
        }
        match &k.ordered {
            Some(ordered) => count("key tuples in the ordered index", ordered.len(), k.exact.len()),
            None => Ok(()),
        }
    }
}

/// A broken invariant of a store's state, found by [`MemoryStore::validate`](crate::MemoryStore::validate)
/// (the index rebuilt from the objects differs from the index held). Never returned by a
/// correct store: it names the first difference found, for tests and bug reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantError {
    /// Two structures (or a count and what it counts) disagree on a number.
    #[error("{what}: {held} held, {expected} expected")]
    Count {
        /// What was counted.
        what: &'static str,
        /// The number the state holds or records.
        held: usize,
        /// The number recomputed from the objects.
        expected: usize,
    },
    /// The identity-keyed layout is used by a store whose key tuples do not have two keys.
    #[error("identity-keyed layout in a store of {num_keys} keys")]
    IdentityLayout {
        /// The store's number of keys.
        num_keys: usize,
    },
    /// An object held has no identity (name).
    #[error("object at {at} has no identity")]
    NoIdentity {
        /// Where it is held.
        at: String,
    },
    /// An object is held under another identity than its own.
    #[error("object at {at} claims identity {claims}")]
    WrongIdentity {
        /// The identity it is held under.
        at: String,
        /// Its own identity.
        claims: String,
    },
    /// An object's key tuple does not have the store's number of keys.
    #[error("object {identity} has {keys} keys, the store {num_keys}")]
    KeyCount {
        /// The object's identity.
        identity: String,
        /// Its number of keys.
        keys: usize,
        /// The store's number of keys.
        num_keys: usize,
    },
    /// An object in identity order is missing from the identity table.
    #[error("{identity} missing from the identity table")]
    NotInIdentityTable {
        /// The object's identity.
        identity: String,
    },
    /// An identity-table entry's inline identity is not its object's (or is missing, or is
    /// present where the object type does not ask for one).
    #[error("identity-table entry of {identity} holds a wrong inline identity")]
    InlineIdentity {
        /// The object's identity.
        identity: String,
    },
    /// A key tuple some object holds is missing from the exact index.
    #[error("key tuple {keys} missing from the exact index")]
    NotInExactIndex {
        /// The key tuple.
        keys: String,
    },
    /// A bucket does not hold exactly the objects under its key tuple, in identity order.
    #[error("bucket {keys} differs from its objects")]
    Bucket {
        /// The bucket's key tuple.
        keys: String,
    },
    /// The ordered index does not share the exact index's bucket for a key tuple.
    #[error("ordered index out of step at {keys}")]
    OrderedIndex {
        /// The key tuple.
        keys: String,
    },
    /// An empty bucket remains in the exact index.
    #[error("empty bucket left in the exact index")]
    EmptyBucket,
    /// A chunk of the objects in identity order is empty or over-full.
    #[error("chunk of {len} objects in the identity order")]
    Chunk {
        /// Its number of objects.
        len: usize,
    },
    /// Two neighbours in identity order are out of order (or equal).
    #[error("objects out of identity order at {identity}")]
    OutOfOrder {
        /// The second object's identity.
        identity: String,
    },
}

/// Lets callers that report invariant failures as strings use `?` on [`InvariantError`].
impl From<InvariantError> for String {
    fn from(e: InvariantError) -> String {
        e.to_string()
    }
}

/// `Ok` when `held == expected`, else [`InvariantError::Count`].
pub(crate) fn count(what: &'static str, held: usize, expected: usize) -> Result<(), InvariantError> {
    if held == expected { Ok(()) } else { Err(InvariantError::Count { what, held, expected }) }
}

fn keyed_by_identity(keys: &KeyTuple, okey: &ObjectKey) -> usize {
    usize::from(keys == okey.as_tuple())
}

/// Bytes of one object of the keyed layout: the object, its identity key and (unless shared
/// with the identity's) its key tuple.
fn keyed_bytes<T: KubeObject>(object: &T, keys: &KeyTuple, okey: &ObjectKey) -> usize {
    // A key tuple equal to the identity shares the identity's allocation (see `upsert`).
    let key_bytes = if keys == okey.as_tuple() { 0 } else { keys.heap_size() };
    object.heap_size() + key_bytes + okey.as_tuple().heap_size()
}

impl<T: KubeObject> Keyed<T> {
    /// Inserts or replaces; returns the change, (bytes added, removed) and (identity-keyed
    /// objects added, removed).
    fn upsert(&mut self, okey: ObjectKey, object: Arc<T>, keys: KeyTuple) -> (Change, (usize, usize), (usize, usize)) {
        // `[namespace, name]` keys are the identity's own encoding: keep one allocation (the
        // stored slot's, which shares the map's key, or the new identity's).
        let keys = match self.objects.get(&okey) {
            Some(old) if old.keys == keys => old.keys.clone(),
            _ if keys == *okey.as_tuple() => okey.as_tuple().clone(),
            _ => keys,
        };
        let mut removed = (0, 0);
        let change = match self.objects.get(&okey) {
            Some(old) => {
                let moved = old.keys != keys;
                if !moved && same_object_version(&*old.object, &*object) {
                    return (Change::Unchanged, (0, 0), (0, 0));
                }
                let old = old.clone();
                removed = (keyed_bytes(&*old.object, &old.keys, &okey), keyed_by_identity(&old.keys, &okey));
                if moved {
                    self.bucket_remove(&old.keys, &old.object);
                }
                self.bucket_insert(&keys, &object);
                Change::Modified { moved }
            }
            None => {
                self.bucket_insert(&keys, &object);
                Change::Created
            }
        };
        let added = (keyed_bytes(&*object, &keys, &okey), keyed_by_identity(&keys, &okey));
        self.objects.insert(okey, Slot { object, keys });
        (change, (added.0, removed.0), (added.1, removed.1))
    }

    fn set_bucket(&mut self, keys: &KeyTuple, bucket: Option<Bucket<T>>) {
        match bucket {
            Some(b) => {
                if let Some(ordered) = &mut self.ordered {
                    ordered.insert(keys.clone(), b.clone());
                }
                self.exact.insert(keys, b);
            }
            None => {
                if let Some(ordered) = &mut self.ordered {
                    ordered.remove(keys);
                }
                self.exact.remove(keys);
            }
        }
    }

    /// Inserts `object` into its bucket, replacing an object of the same identity.
    fn bucket_insert(&mut self, keys: &KeyTuple, object: &Arc<T>) {
        let new: Bucket<T> = match self.exact.get(keys) {
            None => Objects::one(object.clone()),
            Some(bucket) => {
                let mut v: Vec<Arc<T>> = Vec::with_capacity(bucket.len() + 1);
                match bucket.binary_search_by(|o| cmp_objects(&**o, &**object)) {
                    Ok(i) => {
                        v.extend_from_slice(&bucket[..i]);
                        v.push(object.clone());
                        v.extend_from_slice(&bucket[i + 1..]);
                    }
                    Err(i) => {
                        v.extend_from_slice(&bucket[..i]);
                        v.push(object.clone());
                        v.extend_from_slice(&bucket[i..]);
                    }
                }
                Objects::from(v)
            }
        };
        self.set_bucket(keys, Some(new));
    }

    fn bucket_remove(&mut self, keys: &KeyTuple, object: &Arc<T>) {
        let Some(bucket) = self.exact.get(keys) else {
            return;
        };
        let Ok(i) = bucket.binary_search_by(|o| cmp_objects(&**o, &**object)) else {
            return;
        };
        let new = if bucket.len() == 1 {
            None
        } else {
            let mut v: Vec<Arc<T>> = Vec::with_capacity(bucket.len() - 1);
            v.extend_from_slice(&bucket[..i]);
            v.extend_from_slice(&bucket[i + 1..]);
            Some(Objects::from(v))
        };
        self.set_bucket(keys, new);
    }
}

#[cfg(test)]
mod tests {
    use store_types::IdentityRef;

    use super::*;

    #[derive(Debug)]
    struct Obj(&'static str);

    impl KubeObject for Obj {
        fn identity(&self) -> Option<IdentityRef<'_>> {
            Some(IdentityRef { namespace: "ns", name: self.0, uid: None })
        }
        fn resource_version(&self) -> Option<&str> {
            Some("1")
        }
        const CHEAP_IDENTITY: bool = true;
    }

    fn add(index: &mut Index<Obj>, name: &'static str, keys: KeyTuple) {
        let object = Arc::new(Obj(name));
        let okey = object.identity().unwrap().key();
        index.upsert(okey, object, keys);
    }

    /// `validate` names the first broken invariant it finds, in either layout.
    #[test]
    fn validate_names_what_is_broken() {
        let mut keyed = Index::new(1);
        add(&mut keyed, "a", KeyTuple::new(["k"]));
        assert_eq!(keyed.validate(), Ok(()));
        keyed.bytes += 1;
        let e = keyed.validate().unwrap_err();
        assert!(matches!(e, InvariantError::Count { what: "object bytes", .. }), "{e}");
        assert_eq!(String::from(e.clone()), e.to_string());

        let mut by_identity = Index::new(2);
        add(&mut by_identity, "a", KeyTuple::new(["ns", "a"]));
        assert!(matches!(by_identity.layout, Layout::Identity { .. }));
        assert_eq!(by_identity.validate(), Ok(()));
        by_identity.identity_keyed = 0;
        let e = by_identity.validate().unwrap_err();
        assert_eq!(e, InvariantError::Count { what: "identity-keyed objects", held: 0, expected: 1 });
        assert_eq!(e.to_string(), "identity-keyed objects: 0 held, 1 expected");
    }
}
