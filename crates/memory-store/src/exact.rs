//! The exact-match indexes: full key tuple → bucket ([`ExactIndex`]) and, for stores whose key
//! tuple is every object's own identity, identity → object ([`IdentityIndex`]). Both are a
//! [`Sharded`] table: 256 copy-on-write shards.
//!
//! A persistent hash map tuned for one thing: lookups as cheap as a plain hash map (one hash,
//! one shard pointer, one SwissTable probe, keys compared in the entry itself), with O(1)
//! clones for snapshot publication. A
//! write copies only the touched shard (and, on the first write after a clone, the shard
//! pointer array): O(256 + n/256) pointer copies, independent of which keys are read.

use std::sync::Arc;

use hashbrown::HashTable;
use store_types::{KeyTuple, KubeObject, ObjectKey};

use crate::index::{Bucket, id_of};
use crate::key::{self, InlineKey};

const SHARD_BITS: u32 = 8;
const SHARDS: usize = 1 << SHARD_BITS;

/// A persistent hash table of `E` in 256 copy-on-write shards. Callers hash and compare.
pub(crate) struct Sharded<E> {
    hasher: foldhash::fast::RandomState,
    shards: Arc<[Option<Arc<HashTable<E>>>]>,
    len: usize,
}

impl<E> Clone for Sharded<E> {
    fn clone(&self) -> Self {
        Sharded { hasher: self.hasher.clone(), shards: self.shards.clone(), len: self.len }
    }
}

impl<E: Clone> Sharded<E> {
    fn new() -> Self {
        Sharded {
            hasher: foldhash::fast::RandomState::default(),
            shards: std::iter::repeat_n(None, SHARDS).collect(),
            len: 0,
        }
    }

    /// Shards take bits 32..40 of the hash: hashbrown uses the low bits (bucket position) and
    /// the top 7 bits (control byte) within a shard, so those must still vary inside a shard.
    #[inline]
    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) & (SHARDS - 1)
    }

    #[inline]
    fn find(&self, h: u64, eq: impl FnMut(&E) -> bool) -> Option<&E> {
        let shard = self.shards[Self::shard_of(h)].as_deref()?;
        shard.find(h, eq)
    }

    fn shard_mut(&mut self, h: u64) -> &mut HashTable<E> {
        if Arc::get_mut(&mut self.shards).is_none() {
            // First write since the last clone: copy the shard pointers (not the shards).
            self.shards = self.shards.iter().cloned().collect();
        }
        let shards = Arc::get_mut(&mut self.shards).expect("just made unique");
        let slot = &mut shards[Self::shard_of(h)];
        Arc::make_mut(slot.get_or_insert_with(|| Arc::new(HashTable::new())))
    }

    /// Inserts `entry`, replacing (and returning) the entry `eq` matches.
    fn insert(&mut self, h: u64, entry: E, eq: impl FnMut(&E) -> bool, rehash: impl Fn(&E) -> u64) -> Option<E> {
        let shard = self.shard_mut(h);
        match shard.find_mut(h, eq) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => {
                shard.insert_unique(h, entry, rehash);
                self.len += 1;
                None
            }
        }
    }

    /// Removes the entry `eq` matches. A shard is copied only when it holds the entry.
    fn remove(&mut self, h: u64, mut eq: impl FnMut(&E) -> bool) -> Option<E> {
        self.find(h, &mut eq)?;
        let shard = self.shard_mut(h);
        let (removed, _) = shard.find_entry(h, eq).ok()?.remove();
        self.len -= 1;
        Some(removed)
    }

    fn iter(&self) -> impl Iterator<Item = &E> + '_ {
        self.shards.iter().flatten().flat_map(|s| s.iter())
    }

    /// A table of entries with distinct keys, given with their hashes: each shard is sized
    /// once (no rehash while growing) and filled without a comparison.
    fn from_unique(hasher: foldhash::fast::RandomState, entries: Vec<(u64, E)>, rehash: impl Fn(&E) -> u64) -> Self {
        let mut counts = vec![0usize; SHARDS];
        for (h, _) in &entries {
            counts[Self::shard_of(*h)] += 1;
        }
        let mut tables: Vec<Option<HashTable<E>>> =
            counts.iter().map(|&n| (n > 0).then(|| HashTable::with_capacity(n))).collect();
        let len = entries.len();
        for (h, entry) in entries {
            if let Some(table) = &mut tables[Self::shard_of(h)] {
                table.insert_unique(h, entry, &rehash);
            }
        }
        Sharded { hasher, shards: tables.into_iter().map(|t| t.map(Arc::new)).collect(), len }
    }
}

/// The key of an exact-index entry: inline when it fits ([`InlineKey`], up to 46 bytes of
/// elements), so that a lookup compares it without another memory access; else the shared
/// [`KeyTuple`]. Which one is a function of the key tuple alone.
///
/// Measured (`examples/ratios.rs`, ConfigMaps, 1k objects): with the key behind the
/// `KeyTuple`'s pointer, compared by a loop, and lookup keys scanned for `\0` before hashing,
/// a snapshot get took 22 ns; with this entry, a loop-free comparison and raw hashing, 17.5 ns.
/// The price is 32 bytes per key tuple (64-byte entries instead of 32).
#[derive(Clone)]
enum EntryKey {
    Inline(InlineKey),
    Shared(KeyTuple),
}

impl EntryKey {
    /// True when this is the tuple of exactly `elements` (exact for every string, `\0` too).
    #[inline(always)]
    fn eq_elements(&self, elements: &[&str]) -> bool {
        match self {
            EntryKey::Inline(key) => key.eq_elements(elements),
            EntryKey::Shared(tuple) => key::eq_elements(tuple, elements),
        }
    }

    /// True when this is `key`, whose inline form is `inline`.
    fn eq_tuple(&self, key: &KeyTuple, inline: Option<&InlineKey>) -> bool {
        match (self, inline) {
            (EntryKey::Inline(a), Some(b)) => a == b,
            (EntryKey::Shared(a), None) => a == key,
            _ => false,
        }
    }

    fn hash_with(&self, build: &impl std::hash::BuildHasher) -> u64 {
        match self {
            EntryKey::Inline(key) => key.hash_with(build),
            EntryKey::Shared(tuple) => key::hash_tuple(build, tuple),
        }
    }
}

/// Full key tuple → bucket. Keys are hashed raw ([`key::hash_tuple`]), so a lookup hashes
/// its elements as they are, without scanning them for `\0` first.
pub(crate) struct ExactIndex<T> {
    table: Sharded<(EntryKey, Bucket<T>)>,
}

impl<T> Clone for ExactIndex<T> {
    fn clone(&self) -> Self {
        ExactIndex { table: self.table.clone() }
    }
}

impl<T> ExactIndex<T> {
    pub(crate) fn new() -> Self {
        ExactIndex { table: Sharded::new() }
    }

    /// Number of key tuples.
    pub(crate) fn len(&self) -> usize {
        self.table.len
    }

    /// The bucket of a full key tuple given as its elements (no allocation).
    // Out of line on purpose: one compiled lookup for every caller. Inlined, the compiler
    // devirtualises hashbrown's probe predicate (`find` takes `&mut dyn FnMut`) in some callers
    // and not in others (measured: the same snapshot get at 18 or 32 ns in two binaries).
    #[inline(never)]
    pub(crate) fn get_elements(&self, elements: &[&str]) -> Option<&Bucket<T>> {
        let h = key::hash_elements(&self.table.hasher, elements);
        self.table.find(h, |(k, _)| k.eq_elements(elements)).map(|(_, b)| b)
    }

    /// A key tuple's inline form (if it fits) and its raw hash, for probing with
    /// [`EntryKey::eq_tuple`]; the tuple's elements are walked once for both.
    fn probe(&self, tuple: &KeyTuple) -> (Option<InlineKey>, u64) {
        let inline = InlineKey::from_tuple(tuple);
        let h = match &inline {
            Some(inline) => inline.hash_with(&self.table.hasher),
            None => key::hash_tuple(&self.table.hasher, tuple),
        };
        (inline, h)
    }

    /// The bucket of a key tuple.
    pub(crate) fn get(&self, key: &KeyTuple) -> Option<&Bucket<T>> {
        let (inline, h) = self.probe(key);
        self.table.find(h, |(k, _)| k.eq_tuple(key, inline.as_ref())).map(|(_, b)| b)
    }

    /// Sets the bucket of a key tuple.
    pub(crate) fn insert(&mut self, key: &KeyTuple, bucket: Bucket<T>) {
        let (inline, h) = self.probe(key);
        let entry = inline.map_or_else(|| EntryKey::Shared(key.clone()), EntryKey::Inline);
        let hasher = self.table.hasher.clone();
        self.table.insert(h, (entry, bucket), |(k, _)| k.eq_tuple(key, inline.as_ref()), |(k, _)| k.hash_with(&hasher));
    }

    /// Removes a key tuple.
    pub(crate) fn remove(&mut self, key: &KeyTuple) {
        let (inline, h) = self.probe(key);
        self.table.remove(h, |(k, _)| k.eq_tuple(key, inline.as_ref()));
    }

    /// Every bucket, in no particular order.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = &Bucket<T>> + '_ {
        self.table.iter().map(|(_, b)| b)
    }
}

/// An identity-index entry: the object, and whatever the entry keeps to compare identities.
trait IdEntry<T>: Clone {
    fn new(object: Arc<T>) -> Self;
    fn object(&self) -> &Arc<T>;
    /// True when this entry's identity is `[namespace, name]`.
    fn is(&self, namespace: &str, name: &str) -> bool;
    /// False when the entry's own copy of the identity is not its object's (for `validate`).
    fn consistent(&self) -> bool;
    /// The entry of an object whose identity is this `(namespace, name)` tuple (checked by
    /// the caller), built without reading the object.
    fn with_identity(object: Arc<T>, tuple: &KeyTuple) -> Self;
    /// The raw hash of the entry's identity ([`key::hash_elements`] of it), for rehashing.
    fn hash_with(&self, build: &foldhash::fast::RandomState) -> u64;
}

/// A bare entry (8 bytes): identities are compared by reading the object.
impl<T: KubeObject> IdEntry<T> for Arc<T> {
    fn new(object: Arc<T>) -> Self {
        object
    }

    #[inline(always)]
    fn object(&self) -> &Arc<T> {
        self
    }

    #[inline(always)]
    fn is(&self, namespace: &str, name: &str) -> bool {
        let id = id_of(&**self);
        id.name == name && id.namespace == namespace
    }

    fn consistent(&self) -> bool {
        true
    }

    fn with_identity(object: Arc<T>, _tuple: &KeyTuple) -> Self {
        object
    }

    fn hash_with(&self, build: &foldhash::fast::RandomState) -> u64 {
        let id = id_of(&**self);
        key::hash_elements(build, &[id.namespace, id.name])
    }
}

/// An entry with an inline copy of the identity (56 bytes), for types that declare
/// [`KubeObject::INLINE_IDENTITY`]: a lookup compares inside the table instead of chasing the
/// object's metadata strings. `None` when the identity does not fit an [`InlineKey`].
struct Inline<T> {
    key: Option<InlineKey>,
    object: Arc<T>,
}

impl<T> Clone for Inline<T> {
    fn clone(&self) -> Self {
        Inline { key: self.key, object: self.object.clone() }
    }
}

impl<T: KubeObject> IdEntry<T> for Inline<T> {
    fn new(object: Arc<T>) -> Self {
        let id = id_of(&*object);
        let key = InlineKey::new(&[id.namespace, id.name]);
        Inline { key, object }
    }

    #[inline(always)]
    fn object(&self) -> &Arc<T> {
        &self.object
    }

    #[inline(always)]
    fn is(&self, namespace: &str, name: &str) -> bool {
        match &self.key {
            Some(key) => key.eq_elements(&[namespace, name]),
            None => self.object.is(namespace, name),
        }
    }

    fn consistent(&self) -> bool {
        let id = id_of(&*self.object);
        self.key == InlineKey::new(&[id.namespace, id.name])
    }

    fn with_identity(object: Arc<T>, tuple: &KeyTuple) -> Self {
        Inline { key: InlineKey::from_tuple(tuple), object }
    }

    fn hash_with(&self, build: &foldhash::fast::RandomState) -> u64 {
        match &self.key {
            Some(key) => key.hash_with(build),
            None => self.object.hash_with(build),
        }
    }
}

/// The table of an [`IdentityIndex`], one entry form per object type (a constant of `T`).
enum Table<T> {
    Bare(Sharded<Arc<T>>),
    Inline(Sharded<Inline<T>>),
}

/// Runs `$body` with `$t` bound to the table, whichever entry form it holds.
macro_rules! with_table {
    ($table:expr, $t:ident => $body:expr) => {
        match $table {
            Table::Bare($t) => $body,
            Table::Inline($t) => $body,
        }
    };
}

/// Identity `(namespace, name)` → object, for stores whose key tuple is every object's
/// identity: one entry per object (a pointer, plus an inline identity for types that declare
/// [`KubeObject::INLINE_IDENTITY`]), no key tuple or bucket.
pub(crate) struct IdentityIndex<T> {
    table: Table<T>,
}

impl<T> Clone for IdentityIndex<T> {
    fn clone(&self) -> Self {
        let table = match &self.table {
            Table::Bare(t) => Table::Bare(t.clone()),
            Table::Inline(t) => Table::Inline(t.clone()),
        };
        IdentityIndex { table }
    }
}

impl<T> IdentityIndex<T> {
    /// Number of objects.
    pub(crate) fn len(&self) -> usize {
        with_table!(&self.table, t => t.len)
    }
}

/// The entry of `[namespace, name]` in `table`: the raw hash of the key tuple
/// ([`key::hash_elements`]; no scan for `\0`), then the entry's own comparison.
#[inline(always)]
fn find<'a, T: KubeObject, E: IdEntry<T>>(table: &'a Sharded<E>, namespace: &str, name: &str) -> Option<&'a Arc<T>> {
    let h = key::hash_elements(&table.hasher, &[namespace, name]);
    table.find(h, |e| e.is(namespace, name)).map(IdEntry::object)
}

fn insert<T: KubeObject, E: IdEntry<T>>(table: &mut Sharded<E>, object: Arc<T>) -> Option<Arc<T>> {
    // A second handle to the object, so the probe can borrow its identity while the entry
    // moves into the table.
    let probe = object.clone();
    let id = id_of(&*probe);
    let hasher = table.hasher.clone();
    let h = key::hash_elements(&hasher, &[id.namespace, id.name]);
    table
        .insert(h, E::new(object), |e| e.is(id.namespace, id.name), |e| e.hash_with(&hasher))
        .map(|e| e.object().clone())
}

/// A table of objects with distinct identities, each given with its `(namespace, name)` tuple.
fn from_identities<T: KubeObject, E: IdEntry<T>>(objects: Vec<(KeyTuple, Arc<T>)>) -> Sharded<E> {
    let hasher = foldhash::fast::RandomState::default();
    let entries = objects
        .into_iter()
        .map(|(tuple, object)| (key::hash_tuple(&hasher, &tuple), E::with_identity(object, &tuple)))
        .collect();
    let build = hasher.clone();
    Sharded::from_unique(hasher, entries, move |e: &E| e.hash_with(&build))
}

fn remove<T: KubeObject, E: IdEntry<T>>(table: &mut Sharded<E>, namespace: &str, name: &str) -> Option<Arc<T>> {
    let h = key::hash_elements(&table.hasher, &[namespace, name]);
    table.remove(h, |e| e.is(namespace, name)).map(|e| e.object().clone())
}

impl<T: KubeObject> IdentityIndex<T> {
    pub(crate) fn new() -> Self {
        let table = if T::INLINE_IDENTITY { Table::Inline(Sharded::new()) } else { Table::Bare(Sharded::new()) };
        IdentityIndex { table }
    }

    /// The index of objects with distinct identities, each given with its `(namespace, name)`
    /// tuple (which must be the object's identity): one pass, every shard sized once, and the
    /// objects themselves not read (a relist's objects are no longer in the CPU cache).
    pub(crate) fn from_identities(objects: Vec<(KeyTuple, Arc<T>)>) -> Self {
        let table = if T::INLINE_IDENTITY {
            Table::Inline(from_identities(objects))
        } else {
            Table::Bare(from_identities(objects))
        };
        IdentityIndex { table }
    }

    /// The object under the key tuple `[namespace, name]` given as its elements (no
    /// allocation). Any other number of elements finds nothing. Out of line, like
    /// [`ExactIndex::get_elements`] (one compiled lookup for every caller).
    #[inline(never)]
    pub(crate) fn get_elements(&self, elements: &[&str]) -> Option<&Arc<T>> {
        let [namespace, name] = elements else { return None };
        // `INLINE_IDENTITY` is a constant: each type compiles to its own arm alone.
        if T::INLINE_IDENTITY {
            if let Table::Inline(t) = &self.table {
                return find(t, namespace, name);
            }
        } else if let Table::Bare(t) = &self.table {
            return find(t, namespace, name);
        }
        None
    }

    /// The object with this identity.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&Arc<T>> {
        self.get_elements(&[namespace, name])
    }

    /// The object with this identity, given as its key.
    pub(crate) fn get_key(&self, key: &ObjectKey) -> Option<&Arc<T>> {
        let tuple = key.as_tuple();
        with_table!(&self.table, t => {
            let h = key::hash_tuple(&t.hasher, tuple);
            t.find(h, |e| {
                let id = id_of(&**e.object());
                key::eq_elements(tuple, &[id.namespace, id.name])
            })
            .map(IdEntry::object)
        })
    }

    /// Inserts `object`, replacing (and returning) the object with the same identity.
    pub(crate) fn insert(&mut self, object: Arc<T>) -> Option<Arc<T>> {
        with_table!(&mut self.table, t => insert(t, object))
    }

    /// Removes the object with this identity.
    pub(crate) fn remove(&mut self, namespace: &str, name: &str) -> Option<Arc<T>> {
        with_table!(&mut self.table, t => remove(t, namespace, name))
    }

    /// Every object, in no particular order.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = &Arc<T>> + '_> {
        with_table!(&self.table, t => Box::new(t.iter().map(IdEntry::object)))
    }

    /// The identity of an entry whose form or inline identity is not what
    /// [`insert`](Self::insert) would store for its object (for `validate`).
    pub(crate) fn wrong_inline_identity(&self) -> Option<String> {
        let wrong_form = matches!(self.table, Table::Inline(_)) != T::INLINE_IDENTITY;
        with_table!(&self.table, t => t.iter().find(|e| wrong_form || !e.consistent()).map(|e| id_of(&**e.object()).key().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects in namespace `ns` that ask for inline identities.
    #[derive(Debug)]
    struct Inlined(String);
    impl KubeObject for Inlined {
        fn identity(&self) -> Option<store_types::IdentityRef<'_>> {
            Some(store_types::IdentityRef { namespace: "ns", name: &self.0, uid: None })
        }
        fn resource_version(&self) -> Option<&str> {
            None
        }
        const CHEAP_IDENTITY: bool = true;
        const INLINE_IDENTITY: bool = true;
    }

    /// Objects that do not ask for inline identities (cached-store references) keep 8-byte
    /// entries: the inline form would add 48 bytes to every reference's index.
    #[test]
    fn entries_take_the_form_their_type_asks_for() {
        #[derive(Debug)]
        struct Bare(String);
        impl KubeObject for Bare {
            fn identity(&self) -> Option<store_types::IdentityRef<'_>> {
                Some(store_types::IdentityRef { namespace: "ns", name: &self.0, uid: None })
            }
            fn resource_version(&self) -> Option<&str> {
                None
            }
            const CHEAP_IDENTITY: bool = true;
        }
        assert_eq!(std::mem::size_of::<Arc<Bare>>(), 8);
        assert_eq!(std::mem::size_of::<Inline<Inlined>>(), 56);

        let mut bare = IdentityIndex::<Bare>::new();
        assert!(matches!(bare.table, Table::Bare(_)));
        bare.insert(Arc::new(Bare("a".into())));
        assert_eq!(bare.get("ns", "a").map(|o| o.0.as_str()), Some("a"));
        assert_eq!(bare.wrong_inline_identity(), None);

        let mut inlined = IdentityIndex::<Inlined>::new();
        assert!(matches!(inlined.table, Table::Inline(_)));
        let long = "n".repeat(80); // too long to be held inline: compared through the object
        for name in ["a", long.as_str()] {
            inlined.insert(Arc::new(Inlined(name.into())));
            assert_eq!(inlined.get("ns", name).map(|o| o.0.as_str()), Some(name));
        }
        assert!(inlined.get("ns", "b").is_none());
        assert_eq!(inlined.wrong_inline_identity(), None);
        assert_eq!(inlined.remove("ns", "a").map(|o| o.0.clone()), Some("a".to_owned()));
        assert_eq!(inlined.len(), 1);
    }

    /// A table built at once (a relist) holds the entries one insert each would, in the form
    /// its type asks for, and later inserts (which may grow a shard and rehash it from the
    /// entries' own identities) still find every object.
    #[test]
    fn built_at_once_equals_inserted_one_by_one() {
        let long = "n".repeat(80);
        let names: Vec<String> = (0..3000).map(|i| format!("o-{i}")).chain([long]).collect();
        let built = IdentityIndex::<Inlined>::from_identities(
            names.iter().map(|n| (KeyTuple::new(["ns", n.as_str()]), Arc::new(Inlined(n.clone())))).collect(),
        );
        assert!(matches!(built.table, Table::Inline(_)));
        assert_eq!(built.len(), names.len());
        assert_eq!(built.wrong_inline_identity(), None);
        for n in &names {
            assert_eq!(built.get("ns", n).map(|o| o.0.as_str()), Some(n.as_str()));
            assert!(built.get_key(&ObjectKey::new("ns", n)).is_some());
        }
        assert!(built.get("ns", "missing").is_none());
        let mut grown = built.clone();
        for i in 0..5000 {
            grown.insert(Arc::new(Inlined(format!("p-{i}"))));
        }
        assert_eq!(grown.len(), names.len() + 5000);
        for n in names.iter().cloned().chain((0..5000).map(|i| format!("p-{i}"))) {
            assert_eq!(grown.get("ns", &n).map(|o| o.0.clone()), Some(n));
        }
        assert_eq!(grown.wrong_inline_identity(), None);
        // The clone the inserts copied from is unchanged.
        assert_eq!(built.len(), names.len());
        assert!(built.get("ns", "p-0").is_none());
    }
}
