//! The persistent index: objects by identity, buckets by key tuple.
//!
//! An [`Index`] is an immutable value once published; writers clone it (O(1): the maps are
//! persistent, sharing structure) and modify their private copy.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use std::sync::OnceLock;

use imbl::OrdMap;
use smallvec::SmallVec;
use store_types::{Identity, IdentityRef, KeyTuple, KubeObject, ObjectKey, Objects};

use crate::exact::ExactIndex;

/// Objects sharing one key tuple, sorted by (namespace, name). Exact lookups hand out a clone of
/// this `Arc` (no allocation, no copy).
pub(crate) type Bucket<T> = Arc<[Arc<T>]>;

/// Stack buffer for encoding lookup keys without allocating.
pub(crate) type KeyBuf = SmallVec<[u8; 128]>;

/// Encodes a (prefix) key tuple into a stack buffer.
pub(crate) fn encode(keys: &[&str]) -> KeyBuf {
    let mut buf = KeyBuf::new();
    KeyTuple::encode_with(keys, |chunk| buf.extend_from_slice(chunk));
    buf
}

/// The exclusive upper bound of the encoded tuples that start with the encoded `prefix` (whole
/// elements, so it ends with the terminator `00 01`): the same bytes ending in `02` instead.
/// Every extension of `prefix` sorts below it, and every other tuple above `prefix` above it
/// (after a `00`, the encoding has only `01` or `FF`).
pub(crate) fn prefix_end(prefix: &[u8]) -> KeyBuf {
    let mut end = KeyBuf::from_slice(prefix);
    if let Some(last) = end.last_mut() {
        *last = 0x02;
    }
    end
}

/// One stored object and the key tuple it is indexed under.
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

pub(crate) fn id_of<T: KubeObject>(o: &T) -> IdentityRef<'_> {
    // Stored objects always have an identity: it is checked before anything is inserted.
    o.identity().unwrap_or(IdentityRef { namespace: "", name: "", uid: None })
}

pub(crate) fn cmp_objects<T: KubeObject>(a: &T, b: &T) -> Ordering {
    let (a, b) = (id_of(a), id_of(b));
    (a.namespace, a.name).cmp(&(b.namespace, b.name))
}

/// The whole state of a store at one moment.
pub(crate) struct Index<T> {
    pub(crate) num_keys: usize,
    /// Identity → object and keys; ordered, so `list` is in (namespace, name) order.
    pub(crate) objects: OrdMap<ObjectKey, Slot<T>>,
    /// Full key tuple → bucket; O(1) exact lookups.
    pub(crate) exact: ExactIndex<T>,
    /// Full key tuple → bucket in tuple order, for prefix lookups. Absent when `num_keys == 1`
    /// (a one-key store has no partial keys).
    pub(crate) ordered: Option<OrdMap<KeyTuple, Bucket<T>>>,
    /// Sum of `heap_size()` of the objects plus their key bytes.
    pub(crate) bytes: usize,
    /// Objects whose key tuple is exactly their (namespace, name): when that is every object,
    /// key order is identity order and prefix results need no sorting check.
    pub(crate) identity_keyed: usize,
    /// Every object in (namespace, name) order, built on the first `list` of this state and
    /// shared by every later one (states are immutable once published).
    pub(crate) list_cache: OnceLock<Arc<[Arc<T>]>>,
}

impl<T> Clone for Index<T> {
    fn clone(&self) -> Self {
        Index {
            num_keys: self.num_keys,
            objects: self.objects.clone(),
            exact: self.exact.clone(),
            ordered: self.ordered.clone(),
            bytes: self.bytes,
            identity_keyed: self.identity_keyed,
            // A clone is about to be modified: its list is built afresh when asked for.
            list_cache: OnceLock::new(),
        }
    }
}

impl<T: KubeObject> Index<T> {
    pub(crate) fn new(num_keys: usize) -> Self {
        Index {
            num_keys,
            objects: OrdMap::new(),
            exact: ExactIndex::new(),
            ordered: (num_keys > 1).then(OrdMap::new),
            bytes: 0,
            identity_keyed: 0,
            list_cache: OnceLock::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }

    /// A whole index from checked objects in one pass (a relist): sorted by identity once,
    /// each bucket built once, instead of one upsert per object. The same identity twice: the
    /// later one wins, as with repeated upserts.
    pub(crate) fn build(num_keys: usize, mut items: Vec<(ObjectKey, Arc<T>, KeyTuple)>) -> Self {
        // Stable: equal identities keep their input order, so the last of each run is the latest.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(ObjectKey, Arc<T>, KeyTuple)> = Vec::with_capacity(items.len());
        for item in items {
            match unique.last_mut() {
                Some(last) if last.0 == item.0 => *last = item,
                _ => unique.push(item),
            }
        }
        let mut index = Index::new(num_keys);
        // Objects arrive in identity order, so every bucket is built already sorted.
        let mut buckets: std::collections::HashMap<KeyTuple, Vec<Arc<T>>, foldhash::fast::RandomState> =
            Default::default();
        for (okey, object, keys) in unique {
            // `[namespace, name]` keys share the identity's allocation, as in `upsert`.
            let keys = if keys == *okey.as_tuple() { okey.as_tuple().clone() } else { keys };
            index.bytes += Self::object_bytes(&object, &keys, &okey);
            index.identity_keyed += Self::keyed_by_identity(&keys, &okey);
            buckets.entry(keys.clone()).or_default().push(object.clone());
            index.objects.insert(okey, Slot { object, keys });
        }
        for (keys, objects) in buckets {
            let bucket: Bucket<T> = Arc::from(objects);
            if let Some(ordered) = &mut index.ordered {
                ordered.insert(keys.clone(), bucket.clone());
            }
            index.exact.insert(keys, bucket);
        }
        index
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        let objects = self.objects.len();
        let key_tuples = self.exact.len();
        let map_entries = objects + key_tuples * if self.ordered.is_some() { 2 } else { 1 };
        let buckets = key_tuples * 16 + objects * std::mem::size_of::<Arc<T>>();
        let boxes = objects * (std::mem::size_of::<T>() + 16);
        MemoryStats {
            objects,
            key_tuples,
            estimated_bytes: self.bytes + map_entries * MAP_ENTRY_OVERHEAD + buckets + boxes,
        }
    }

    fn keyed_by_identity(keys: &KeyTuple, okey: &ObjectKey) -> usize {
        usize::from(keys == okey.as_tuple())
    }

    fn object_bytes(object: &T, keys: &KeyTuple, okey: &ObjectKey) -> usize {
        // A key tuple equal to the identity shares the identity's allocation (see `upsert`).
        let key_bytes = if keys == okey.as_tuple() { 0 } else { keys.heap_size() };
        object.heap_size() + key_bytes + okey.as_tuple().heap_size()
    }

    /// Exact lookup by a full key tuple's elements.
    #[inline(always)]
    pub(crate) fn get_exact(&self, keys: &[&str]) -> Objects<T> {
        match self.exact.get_elements(keys) {
            Some(bucket) => Objects::shared(bucket.clone()),
            None => Objects::empty(),
        }
    }

    /// Buckets whose key tuple starts with the encoded prefix, in tuple order.
    pub(crate) fn prefix_buckets<'a>(
        &'a self,
        prefix: &'a [u8],
        end: &'a [u8],
    ) -> impl Iterator<Item = (&'a KeyTuple, &'a Bucket<T>)> + 'a {
        self.ordered.iter().flat_map(move |m| m.range::<_, [u8]>((Bound::Included(prefix), Bound::Excluded(end))))
    }

    /// Objects under a key prefix (fewer than `num_keys` keys), ordered by (namespace, name).
    /// Cost: O(log n + matches): one pass over the matching map entries without touching
    /// their keys, one exactly sized result; sorting is skipped when the matches are already
    /// in order (for example when the key tuple starts with namespace and name).
    pub(crate) fn get_prefix(&self, prefix: &[u8]) -> Objects<T> {
        let end = prefix_end(prefix);
        // References first (on the stack for up to 128 matches), so that the result is
        // allocated once at its exact size.
        let mut found: SmallVec<[&Arc<T>; 128]> = SmallVec::new();
        if self.identity_keyed == self.objects.len() {
            // Every key tuple is its object's `[namespace, name]`: the objects map has the same
            // order and holds each object inline, so walk it instead of one bucket per object.
            let range = self.objects.range::<_, [u8]>((Bound::Included(prefix), Bound::Excluded(&end[..])));
            found.extend(range.map(|(_, slot)| &slot.object));
            return Objects::from(found.iter().map(|o| Arc::clone(o)).collect::<Vec<_>>());
        }
        for (_, bucket) in self.prefix_buckets(prefix, &end) {
            found.extend(bucket.iter());
        }
        let mut out: Vec<Arc<T>> = found.iter().map(|o| Arc::clone(o)).collect();
        if !out.is_sorted_by(|a, b| cmp_objects(&**a, &**b) != Ordering::Greater) {
            out.sort_by(|a, b| cmp_objects(&**a, &**b));
        }
        Objects::from(out)
    }

    /// Every object in (namespace, name) order; O(n) on the first call for a state, then a
    /// shared, O(1) result.
    pub(crate) fn list(&self) -> Objects<T> {
        let all = self.list_cache.get_or_init(|| self.objects.values().map(|s| s.object.clone()).collect());
        Objects::shared(all.clone())
    }

    pub(crate) fn get_object(&self, key: &ObjectKey) -> Option<&Slot<T>> {
        self.objects.get(key)
    }

    /// Inserts or replaces `object` (whose identity has been checked) under `keys`.
    pub(crate) fn upsert(&mut self, okey: ObjectKey, object: Arc<T>, keys: KeyTuple) -> Change {
        // `[namespace, name]` keys are the identity's own encoding: keep one allocation (the
        // stored slot's, which shares the map's key, or the new identity's).
        let keys = match self.objects.get(&okey) {
            Some(old) if old.keys == keys => old.keys.clone(),
            _ if keys == *okey.as_tuple() => okey.as_tuple().clone(),
            _ => keys,
        };
        let change = match self.objects.get(&okey) {
            Some(old) => {
                let moved = old.keys != keys;
                let new = Slot { object: object.clone(), keys: keys.clone() };
                if crate::store::same_version(old, &new) {
                    return Change::Unchanged;
                }
                let old = old.clone();
                self.bytes -= Self::object_bytes(&old.object, &old.keys, &okey);
                self.identity_keyed -= Self::keyed_by_identity(&old.keys, &okey);
                if moved {
                    self.bucket_remove(&old.keys, &old.object);
                    self.bucket_insert(&keys, &object);
                } else {
                    self.bucket_insert(&keys, &object);
                }
                Change::Modified { moved }
            }
            None => {
                self.bucket_insert(&keys, &object);
                Change::Created
            }
        };
        self.bytes += Self::object_bytes(&object, &keys, &okey);
        self.identity_keyed += Self::keyed_by_identity(&keys, &okey);
        self.objects.insert(okey, Slot { object, keys });
        change
    }

    /// Removes the object with this identity (unless its uid says it is another incarnation).
    pub(crate) fn remove(&mut self, identity: &Identity) -> Option<Arc<T>> {
        let slot = self.objects.get(&identity.key)?;
        if let (Some(want), Some(have)) = (identity.uid.as_deref(), slot.object.identity().and_then(|i| i.uid))
            && want != have
        {
            return None;
        }
        let slot = self.objects.remove(&identity.key)?;
        self.bytes -= Self::object_bytes(&slot.object, &slot.keys, &identity.key);
        self.identity_keyed -= Self::keyed_by_identity(&slot.keys, &identity.key);
        self.bucket_remove(&slot.keys, &slot.object);
        Some(slot.object)
    }

    /// Identities of the objects under a full key tuple or a prefix.
    pub(crate) fn identities_under(&self, keys: &[&str]) -> Vec<Identity> {
        let to_id = |o: &Arc<T>| Identity { key: id_of(&**o).key(), uid: None };
        if keys.len() == self.num_keys {
            self.exact.get_elements(keys).map(|b| b.iter().map(to_id).collect()).unwrap_or_default()
        } else {
            let prefix = encode(keys);
            let end = prefix_end(&prefix);
            self.prefix_buckets(&prefix, &end).flat_map(|(_, b)| b.iter().map(to_id)).collect()
        }
    }

    fn set_bucket(&mut self, keys: &KeyTuple, bucket: Option<Bucket<T>>) {
        match bucket {
            Some(b) => {
                if let Some(ordered) = &mut self.ordered {
                    ordered.insert(keys.clone(), b.clone());
                }
                self.exact.insert(keys.clone(), b);
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
            None => Arc::from([object.clone()]),
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
                Arc::from(v)
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
            Some(Arc::from(v))
        };
        self.set_bucket(keys, new);
    }

    /// Checks every invariant by rebuilding the index from the objects and comparing.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let mut rebuilt: std::collections::BTreeMap<KeyTuple, Vec<Arc<T>>> = Default::default();
        let mut bytes = 0;
        let mut identity_keyed = 0;
        for (okey, slot) in &self.objects {
            let Some(id) = slot.object.identity() else {
                return Err(format!("object at {okey} has no identity"));
            };
            if &id.key() != okey {
                return Err(format!("object at {okey} claims identity {}", id.key()));
            }
            if slot.keys.len() != self.num_keys {
                return Err(format!("object {okey} has {} keys, store has {}", slot.keys.len(), self.num_keys));
            }
            bytes += Self::object_bytes(&slot.object, &slot.keys, okey);
            identity_keyed += Self::keyed_by_identity(&slot.keys, okey);
            rebuilt.entry(slot.keys.clone()).or_default().push(slot.object.clone());
        }
        if identity_keyed != self.identity_keyed {
            return Err(format!("identity-keyed count {} != recomputed {identity_keyed}", self.identity_keyed));
        }
        if bytes != self.bytes {
            return Err(format!("byte count {} != recomputed {bytes}", self.bytes));
        }
        if rebuilt.len() != self.exact.len() {
            return Err(format!("{} key tuples indexed, {} expected", self.exact.len(), rebuilt.len()));
        }
        for (keys, mut expected) in rebuilt {
            expected.sort_by(|a, b| cmp_objects(&**a, &**b));
            let Some(bucket) = self.exact.get(&keys) else {
                return Err(format!("key tuple {keys} missing from the exact index"));
            };
            if bucket.len() != expected.len() || bucket.iter().zip(&expected).any(|(a, b)| !Arc::ptr_eq(a, b)) {
                return Err(format!("bucket {keys} differs from its objects"));
            }
            if let Some(ordered) = &self.ordered {
                match ordered.get(&keys) {
                    Some(b) if Arc::ptr_eq(b, bucket) => {}
                    _ => return Err(format!("ordered index out of step at {keys}")),
                }
            }
        }
        if let Some((keys, _)) = self.exact.iter().find(|(_, b)| b.is_empty()) {
            return Err(format!("empty bucket left at {keys}"));
        }
        if let Some(ordered) = &self.ordered
            && ordered.len() != self.exact.len()
        {
            return Err(format!("ordered index has {} tuples, exact {}", ordered.len(), self.exact.len()));
        }
        Ok(())
    }
}
