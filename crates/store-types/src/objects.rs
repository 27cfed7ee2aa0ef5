//! Cheap result sets.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use smallvec::SmallVec;
use triomphe::ThinArc;

/// A shared slice behind one thin pointer (its length lives in the allocation).
pub(crate) type Slice<T> = ThinArc<(), Arc<T>>;

/// The objects a lookup returned, in deterministic order (namespace, then name).
///
/// A result set derefs to `[Arc<T>]`. Exact lookups in a `MemoryStore` share the store's own
/// immutable bucket, or hold the one object found (one reference-count increment, no
/// allocation either way); other results own one shared slice, allocated once.
/// Either way the objects are `Arc`-shared and immutable: a result never changes after it is
/// returned, whatever writers do next.
///
/// # Memory usage
/// Two words — a tag and one pointer, the shared slice's length being stored in its
/// allocation (a `triomphe::ThinArc`) — and no drop code of its own beyond its `Arc`s': a
/// result moves in two registers, and so does a [`GetFuture`](crate::GetFuture), which uses
/// the tag's spare values. (A three-word result was copied through the stack in pieces of
/// different widths, which stalled store forwarding: several nanoseconds of an exact get.)
///
/// A result is also what a `MemoryStore` keeps per key tuple: one object costs no allocation
/// of its own, several share one slice.
pub struct Objects<T>(pub(crate) Repr<T>);

pub(crate) enum Repr<T> {
    /// No object, or one (no allocation).
    One(Option<Arc<T>>),
    /// Two or more objects in one shared slice: a store's bucket, or an owned result.
    Shared(Slice<T>),
}

// The layout the hot paths rely on (see "Memory usage").
const _: () = assert!(std::mem::size_of::<Objects<u8>>() == 2 * std::mem::size_of::<usize>());

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

    /// The objects of an iterator that knows its length: no allocation for zero or one
    /// object, else one shared slice allocated at its exact size.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kstore_types::Objects;
    /// let names = ["a", "b"].map(|n| Arc::new(n.to_owned()));
    /// let objects = Objects::from_exact(names.iter().cloned());
    /// assert_eq!(objects.len(), 2);
    /// ```
    pub fn from_exact(mut items: impl ExactSizeIterator<Item = Arc<T>>) -> Self {
        match items.len() {
            0 => Objects::empty(),
            1 => Objects(Repr::One(items.next())),
            _ => Objects(Repr::Shared(ThinArc::from_header_and_iter((), items))),
        }
    }

    /// The objects as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[Arc<T>] {
        match &self.0 {
            Repr::One(Some(o)) => std::slice::from_ref(o),
            Repr::One(None) => &[],
            Repr::Shared(s) => &s.slice,
        }
    }

    /// The objects as a `Vec` (clones the `Arc`s of a shared slice).
    pub fn into_vec(self) -> Vec<Arc<T>> {
        match self.0 {
            Repr::One(o) => o.into_iter().collect(),
            Repr::Shared(s) => s.slice.to_vec(),
        }
    }

    /// True when both hold the same objects by sharing: the same one object, the same shared
    /// slice, or nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kstore_types::Objects;
    /// let a = Objects::from(vec![Arc::new(1), Arc::new(2)]);
    /// assert!(Objects::ptr_eq(&a, &a.clone()));
    /// assert!(!Objects::ptr_eq(&a, &Objects::from(a.to_vec())));
    /// ```
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        match (&a.0, &b.0) {
            (Repr::One(None), Repr::One(None)) => true,
            (Repr::One(Some(a)), Repr::One(Some(b))) => Arc::ptr_eq(a, b),
            (Repr::Shared(a), Repr::Shared(b)) => std::ptr::eq(a.slice.as_ptr(), b.slice.as_ptr()),
            _ => false,
        }
    }
}

impl<T> From<Vec<Arc<T>>> for Objects<T> {
    /// Moves the objects into one shared slice (one allocation; none for zero or one object).
    fn from(v: Vec<Arc<T>>) -> Self {
        Objects::from_exact(v.into_iter())
    }
}

impl<T> FromIterator<Arc<T>> for Objects<T> {
    /// Collects into one shared slice (gathered on the stack first for up to 16 objects).
    fn from_iter<I: IntoIterator<Item = Arc<T>>>(iter: I) -> Self {
        let items: SmallVec<[Arc<T>; 16]> = iter.into_iter().collect();
        Objects::from_exact(items.into_iter())
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
            Repr::Shared(s) => Objects(Repr::Shared(s.clone())),
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
        let owned = Objects::from(vec![a.clone()]);
        let exact = Objects::from_exact([a.clone()].into_iter());
        assert_eq!(one, owned);
        assert_eq!(one, exact);
        assert!(Objects::ptr_eq(&one, &owned), "one object is held as itself");
        assert_eq!(one.len(), 1);
        assert!(Arc::ptr_eq(&one[0], &a));
        assert_eq!(one.clone().into_vec(), vec![a.clone()]);
        assert_eq!(one.into_iter().count(), 1);
        assert!(Objects::<i32>::empty().is_empty());
        let two = Objects::from(vec![a.clone(), Arc::new(2)]);
        assert!(Objects::ptr_eq(&two, &two.clone()));
        assert!(!Objects::ptr_eq(&two, &Objects::from(two.to_vec())));
        assert!(!Objects::ptr_eq(&two, &Objects::empty()));
        assert!(Objects::ptr_eq(&Objects::<i32>::empty(), &Objects::empty()));
    }

    #[test]
    fn results_are_two_words() {
        assert_eq!(std::mem::size_of::<Objects<i32>>(), 2 * std::mem::size_of::<usize>());
        let collected: Objects<i32> = (0..3).map(Arc::new).collect();
        assert_eq!(collected.iter().map(|o| **o).collect::<Vec<_>>(), [0, 1, 2]);
        let many: Objects<i32> = (0..40).map(Arc::new).collect();
        assert_eq!(many.iter().map(|o| **o).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
        assert_eq!(Objects::from(vec![Arc::new(7)]).len(), 1);
        assert!(Objects::<i32>::from(Vec::new()).is_empty());
        assert!(std::iter::empty::<Arc<i32>>().collect::<Objects<i32>>().is_empty());
    }

    #[test]
    fn every_result_releases_its_objects() {
        let a = Arc::new(1);
        let shared = Objects::from(vec![a.clone(), a.clone()]);
        for objects in
            [Objects::one(a.clone()), shared.clone(), Objects::from(vec![a.clone(), a.clone()]), Objects::empty()]
        {
            let copy = objects.clone();
            drop(objects);
            assert!(copy.into_vec().len() <= 2);
        }
        drop(shared.clone().into_vec());
        drop(shared);
        assert_eq!(Arc::strong_count(&a), 1, "shared slices and objects are released");
    }
}
