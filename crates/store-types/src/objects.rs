//! Cheap result sets.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The objects a lookup returned, in deterministic order (namespace, then name).
///
/// A result set derefs to `[Arc<T>]`. Exact lookups in a `MemoryStore` share the store's own
/// immutable bucket, or hold the one object found (one reference-count increment, no
/// allocation either way); other results own one shared slice, allocated once.
/// Either way the objects are `Arc`-shared and immutable: a result never changes after it is
/// returned, whatever writers do next.
///
/// # Memory usage
/// Two words, and no drop code of its own beyond its two `Arc`s': a result moves in two
/// registers. (A three-word result with a hand-written `Drop` was copied through the stack in
/// pieces of different widths, which stalled store forwarding: several nanoseconds of an exact
/// get.)
pub struct Objects<T>(Repr<T>);

enum Repr<T> {
    /// No object, or one (no allocation).
    One(Option<Arc<T>>),
    /// A shared slice: a store's bucket, or an owned result.
    Shared(Arc<[Arc<T>]>),
}

impl<T> Objects<T> {
    /// No objects.
    #[inline]
    pub fn empty() -> Self {
        Objects(Repr::One(None))
    }

    /// A result set of exactly one object (no allocation).
    #[inline]
    pub fn one(item: Arc<T>) -> Self {
        Objects(Repr::One(Some(item)))
    }

    /// A result set sharing an immutable slice.
    #[inline]
    pub fn shared(items: Arc<[Arc<T>]>) -> Self {
        Objects(Repr::Shared(items))
    }

    /// The objects as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[Arc<T>] {
        match &self.0 {
            Repr::One(Some(o)) => std::slice::from_ref(o),
            Repr::One(None) => &[],
            Repr::Shared(s) => s,
        }
    }

    /// The objects as a `Vec` (clones the `Arc`s of a shared slice).
    pub fn into_vec(self) -> Vec<Arc<T>> {
        match self.0 {
            Repr::One(o) => o.into_iter().collect(),
            Repr::Shared(s) => s.to_vec(),
        }
    }
}

impl<T> From<Vec<Arc<T>>> for Objects<T> {
    /// Moves the objects into one shared slice (one allocation; none for zero or one object).
    fn from(mut v: Vec<Arc<T>>) -> Self {
        match v.len() {
            0 | 1 => Objects(Repr::One(v.pop())),
            _ => Objects::shared(Arc::from(v)),
        }
    }
}

impl<T> FromIterator<Arc<T>> for Objects<T> {
    /// Collects into one shared slice, allocated once when the iterator knows its length.
    fn from_iter<I: IntoIterator<Item = Arc<T>>>(iter: I) -> Self {
        let items: Arc<[Arc<T>]> = iter.into_iter().collect();
        if items.is_empty() { Objects::empty() } else { Objects::shared(items) }
    }
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T> Clone for Objects<T> {
    fn clone(&self) -> Self {
        match &self.0 {
            Repr::One(o) => Objects(Repr::One(o.clone())),
            Repr::Shared(s) => Objects::shared(Arc::clone(s)),
        }
    }
}

impl<T> Deref for Objects<T> {
    type Target = [Arc<T>];
    fn deref(&self) -> &[Arc<T>] {
        self.as_slice()
    }
}

impl<'a, T> IntoIterator for &'a Objects<T> {
    type Item = &'a Arc<T>;
    type IntoIter = std::slice::Iter<'a, Arc<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<T> IntoIterator for Objects<T> {
    type Item = Arc<T>;
    type IntoIter = std::vec::IntoIter<Arc<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for Objects<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: PartialEq> PartialEq for Objects<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shared_and_owned_agree() {
        let a = Arc::new(1);
        let one = Objects::one(a.clone());
        let shared = Objects::shared(Arc::from([a.clone()]));
        let owned = Objects::from(vec![a.clone()]);
        assert_eq!(one, shared);
        assert_eq!(one, owned);
        assert_eq!(one.len(), 1);
        assert!(Arc::ptr_eq(&one[0], &a));
        assert_eq!(one.clone().into_vec(), vec![a.clone()]);
        assert_eq!(one.into_iter().count(), 1);
        assert!(Objects::<i32>::empty().is_empty());
    }

    #[test]
    fn results_are_two_words() {
        assert_eq!(std::mem::size_of::<Objects<i32>>(), 2 * std::mem::size_of::<usize>());
        let collected: Objects<i32> = (0..3).map(Arc::new).collect();
        assert_eq!(collected.iter().map(|o| **o).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Objects::from(vec![Arc::new(7)]).len(), 1);
        assert!(Objects::<i32>::from(Vec::new()).is_empty());
        assert!(std::iter::empty::<Arc<i32>>().collect::<Objects<i32>>().is_empty());
    }

    #[test]
    fn every_result_releases_its_objects() {
        let a = Arc::new(1);
        let bucket: Arc<[Arc<i32>]> = Arc::from([a.clone(), a.clone()]);
        for objects in [
            Objects::one(a.clone()),
            Objects::shared(bucket.clone()),
            Objects::from(vec![a.clone(), a.clone()]),
            Objects::empty(),
        ] {
            let copy = objects.clone();
            drop(objects);
            assert!(copy.into_vec().len() <= 2);
        }
        drop(Objects::shared(bucket.clone()).into_vec());
        assert_eq!(Arc::strong_count(&bucket), 1, "shared slices are released");
        drop(bucket);
        assert_eq!(Arc::strong_count(&a), 1, "objects are released");
    }
}
