//! [`Sorted`]: objects in identity order, as a persistent sequence of small sorted chunks.
//!
//! The ordered half of the identity-keyed layout (see `index.rs`): one pointer per object, no
//! key copies. Chunks are immutable `Arc<[Arc<T>]>` slices of at most [`CHUNK`] objects held in
//! an `imbl::Vector`, so a clone is O(1) and a write copies one chunk and one path of the
//! vector. Separators are never stored: a chunk's range is read from its own first and last
//! objects, so nothing outlives its removal.

use std::cmp::Ordering;
use std::sync::Arc;

use imbl::Vector;
use store_types::KubeObject;

use crate::index::{InvariantError, count, id_of};

/// Most objects in one chunk; a chunk that would grow past it is split in two halves.
const CHUNK: usize = 64;
/// A chunk shrunk below this is merged with a neighbour when both fit in [`MERGED`].
const SMALL: usize = CHUNK / 4;
const MERGED: usize = CHUNK * 3 / 4;

type Chunk<T> = Arc<[Arc<T>]>;

/// Objects ordered by (namespace, name), each identity at most once.
pub(crate) struct Sorted<T> {
    chunks: Vector<Chunk<T>>,
    len: usize,
}

impl<T> Clone for Sorted<T> {
    fn clone(&self) -> Self {
        Sorted { chunks: self.chunks.clone(), len: self.len }
    }
}

fn cmp_id<T: KubeObject>(object: &T, namespace: &str, name: &str) -> Ordering {
    let id = id_of(object);
    (id.namespace, id.name).cmp(&(namespace, name))
}

impl<T> Sorted<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<T: KubeObject> Sorted<T> {
    pub(crate) fn new() -> Self {
        Sorted { chunks: Vector::new(), len: 0 }
    }

    /// From objects already in identity order without repeats (full chunks).
    pub(crate) fn from_sorted(objects: &[Arc<T>]) -> Self {
        Sorted { chunks: objects.chunks(CHUNK).map(Chunk::from).collect(), len: objects.len() }
    }

    /// `Ok((chunk, index))` of this identity, or `Err((chunk, index))` where it would go.
    fn locate(&self, namespace: &str, name: &str) -> Result<(usize, usize), (usize, usize)> {
        // The first chunk whose last object is not before the identity.
        let c = match self.chunks.binary_search_by(|chunk| cmp_id(&*chunk[chunk.len() - 1], namespace, name)) {
            Ok(c) => return Ok((c, self.chunks[c].len() - 1)),
            Err(c) if c < self.chunks.len() => c,
            // After every object: the end of the last chunk.
            Err(_) => return Err(self.chunks.back().map_or((0, 0), |last| (self.chunks.len() - 1, last.len()))),
        };
        self.chunks[c].binary_search_by(|o| cmp_id(&**o, namespace, name)).map(|i| (c, i)).map_err(|i| (c, i))
    }

    /// The object with this identity.
    #[cfg(test)]
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&Arc<T>> {
        let (c, i) = self.locate(namespace, name).ok()?;
        Some(&self.chunks[c][i])
    }

    /// Inserts `object`, replacing (and returning) the object with the same identity.
    pub(crate) fn upsert(&mut self, object: Arc<T>) -> Option<Arc<T>> {
        let id = id_of(&*object);
        match self.locate(id.namespace, id.name) {
            Ok((c, i)) => {
                let chunk = self.chunks.get_mut(c).expect("located chunk exists");
                Some(std::mem::replace(&mut Arc::make_mut(chunk)[i], object))
            }
            Err((c, i)) => {
                self.len += 1;
                if self.chunks.is_empty() {
                    self.chunks.push_back(Chunk::from([object]));
                    return None;
                }
                let chunk = &self.chunks[c];
                let mut v: Vec<Arc<T>> = Vec::with_capacity(chunk.len() + 1);
                v.extend_from_slice(&chunk[..i]);
                v.push(object);
                v.extend_from_slice(&chunk[i..]);
                if v.len() > CHUNK {
                    let right = v.split_off(v.len() / 2);
                    self.chunks.set(c, Chunk::from(v));
                    self.chunks.insert(c + 1, Chunk::from(right));
                } else {
                    self.chunks.set(c, Chunk::from(v));
                }
                None
            }
        }
    }

    /// Removes the object with this identity.
    pub(crate) fn remove(&mut self, namespace: &str, name: &str) -> Option<Arc<T>> {
        let (c, i) = self.locate(namespace, name).ok()?;
        self.len -= 1;
        let chunk = &self.chunks[c];
        let removed = chunk[i].clone();
        if chunk.len() == 1 {
            self.chunks.remove(c);
            return Some(removed);
        }
        let mut v: Vec<Arc<T>> = Vec::with_capacity(chunk.len() - 1);
        v.extend_from_slice(&chunk[..i]);
        v.extend_from_slice(&chunk[i + 1..]);
        if v.len() < SMALL {
            // Merge with a neighbour, so deletes cannot leave many tiny chunks behind.
            if let Some(next) = self.chunks.get(c + 1)
                && v.len() + next.len() <= MERGED
            {
                v.extend_from_slice(next);
                self.chunks.set(c, Chunk::from(v));
                self.chunks.remove(c + 1);
                return Some(removed);
            }
            if c > 0 && self.chunks[c - 1].len() + v.len() <= MERGED {
                let mut merged = self.chunks[c - 1].to_vec();
                merged.extend(v);
                self.chunks.set(c - 1, Chunk::from(merged));
                self.chunks.remove(c);
                return Some(removed);
            }
        }
        self.chunks.set(c, Chunk::from(v));
        Some(removed)
    }

    /// Every object in identity order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<T>> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The position `(chunk, index)` of the first object for which `before` is false (`before`
    /// must hold for a prefix of the order); `(chunks, 0)` when it holds for all.
    fn partition(&self, before: impl Fn(&T) -> bool) -> (usize, usize) {
        // The first chunk whose last object is not before.
        let c = self
            .chunks
            .binary_search_by(|chunk| if before(&chunk[chunk.len() - 1]) { Ordering::Less } else { Ordering::Greater })
            .unwrap_or_else(|c| c);
        match self.chunks.get(c) {
            Some(chunk) => (c, chunk.partition_point(|o| before(o))),
            None => (self.chunks.len(), 0),
        }
    }

    /// The objects of one namespace, in identity order: two binary searches, then the run
    /// between them (no per-object comparison).
    pub(crate) fn namespace<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Arc<T>> + 'a {
        let (c0, i0) = self.partition(|o| id_of(o).namespace < namespace);
        let (c1, i1) = self.partition(|o| id_of(o).namespace <= namespace);
        let last = (c1 + 1).min(self.chunks.len());
        self.chunks.focus().narrow(c0.min(last)..last).into_iter().enumerate().flat_map(move |(k, chunk)| {
            let from = if k == 0 { i0 } else { 0 };
            let to = if c0 + k == c1 { i1 } else { chunk.len() };
            chunk[from..to.max(from)].iter()
        })
    }

    /// Checks order, chunk sizes and the count.
    pub(crate) fn validate(&self) -> Result<(), InvariantError> {
        let mut held = 0;
        for chunk in self.chunks.iter() {
            if chunk.is_empty() || chunk.len() > CHUNK {
                return Err(InvariantError::Chunk { len: chunk.len() });
            }
            held += chunk.len();
        }
        count("objects in identity order vs their count", held, self.len)?;
        let mut prev: Option<&Arc<T>> = None;
        for o in self.iter() {
            if let Some(p) = prev {
                let (a, b) = (id_of(&**p), id_of(&**o));
                if (a.namespace, a.name) >= (b.namespace, b.name) {
                    return Err(InvariantError::OutOfOrder { identity: format!("{}/{}", b.namespace, b.name) });
                }
            }
            prev = Some(o);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store_types::IdentityRef;

    #[derive(Debug, PartialEq)]
    struct Obj(String, String, u32);

    impl KubeObject for Obj {
        fn identity(&self) -> Option<IdentityRef<'_>> {
            Some(IdentityRef { namespace: &self.0, name: &self.1, uid: None })
        }
        fn resource_version(&self) -> Option<&str> {
            None
        }
    }

    fn obj(ns: u32, name: u32, v: u32) -> Arc<Obj> {
        Arc::new(Obj(format!("ns-{ns:02}"), format!("o-{name:04}"), v))
    }

    /// Random upserts and removes against a `BTreeMap`, checking order, contents, ranges and
    /// chunk invariants, with snapshots that must not change.
    #[test]
    fn matches_a_btreemap() {
        use std::collections::BTreeMap;
        let mut model: BTreeMap<(String, String), u32> = BTreeMap::new();
        let mut s = Sorted::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut snapshots = Vec::new();
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (ns, name) = ((x % 7) as u32, ((x >> 8) % 600) as u32);
            let o = obj(ns, name, step);
            let key = (o.0.clone(), o.1.clone());
            // Grow for the first half, shrink in the second.
            if (x >> 20) % 10 < if step < 10_000 { 7 } else { 3 } {
                let old = s.upsert(o);
                assert_eq!(old.map(|o| o.2), model.insert(key, step));
            } else {
                assert_eq!(s.remove(&key.0, &key.1).map(|o| o.2), model.remove(&key));
            }
            if step % 997 == 0 {
                s.validate().unwrap();
                snapshots.push((s.clone(), model.clone()));
                let ns = format!("ns-{:02}", step % 7);
                let got: Vec<u32> = s.namespace(&ns).map(|o| o.2).collect();
                let want: Vec<u32> = model.iter().filter(|(k, _)| k.0 == ns).map(|(_, v)| *v).collect();
                assert_eq!(got, want);
            }
        }
        s.validate().unwrap();
        assert_eq!(s.len(), model.len());
        assert_eq!(s.iter().map(|o| o.2).collect::<Vec<_>>(), model.values().copied().collect::<Vec<_>>());
        for (snap, m) in snapshots {
            snap.validate().unwrap();
            assert_eq!(snap.iter().map(|o| o.2).collect::<Vec<_>>(), m.values().copied().collect::<Vec<_>>());
        }
        for (k, v) in &model {
            assert_eq!(s.get(&k.0, &k.1).map(|o| o.2), Some(*v));
        }
        assert!(s.get("zz", "none").is_none());
        assert!(s.namespace("zz").next().is_none());
        assert!(s.namespace("").next().is_none());
        assert_eq!(s.namespace("ns-03").count(), model.keys().filter(|k| k.0 == "ns-03").count());
    }

    #[test]
    fn from_sorted_then_edit() {
        let objects: Vec<Arc<Obj>> = (0..200).map(|i| obj(0, i, i)).collect();
        let mut s = Sorted::from_sorted(&objects);
        s.validate().unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.upsert(obj(0, 1000, 1)).is_none());
        assert_eq!(s.upsert(obj(0, 5, 7)).map(|o| o.2), Some(5));
        for i in 0..200 {
            s.remove("ns-00", &format!("o-{i:04}"));
        }
        s.validate().unwrap();
        assert_eq!(s.iter().map(|o| o.2).collect::<Vec<_>>(), [1]);
        assert!(s.remove("ns-00", "o-1000").is_some());
        assert_eq!(s.len(), 0);
        assert!(s.iter().next().is_none());
        s.validate().unwrap();
    }
}
