//! Cheap result sets.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

/// The objects a lookup returned, in deterministic order (namespace, then name).
///
/// A result set derefs to `[Arc<T>]`. Exact lookups in a `MemoryStore` share the store's own
/// immutable bucket, or hold the one object found (one reference-count increment, no
/// allocation either way); other results own a `Vec`.
/// Either way the objects are `Arc`-shared and immutable: a result never changes after it is
/// returned, whatever writers do next.
pub struct Objects<T>(Repr<T>);

/// Every variant is `ManuallyDrop`: `Objects`' own `Drop` drops the content, so the drop of a
/// result is small enough to be inlined into every lookup's caller (an owned `Vec`'s objects
/// are dropped out of line).
enum Repr<T> {
    One(ManuallyDrop<Arc<T>>),
    Shared(ManuallyDrop<Arc<[Arc<T>]>>),
    Owned(ManuallyDrop<Vec<Arc<T>>>),
}

impl<T> Repr<T> {
    /// An empty result, which owns no memory.
    fn none() -> Self {
        Repr::Owned(ManuallyDrop::new(Vec::new()))
    }
}

impl<T> Drop for Objects<T> {
    #[inline(always)]
    fn drop(&mut self) {
        match std::mem::replace(&mut self.0, Repr::none()) {
            Repr::One(o) => drop(ManuallyDrop::into_inner(o)),
            Repr::Shared(s) => drop(ManuallyDrop::into_inner(s)),
            Repr::Owned(v) => drop_vec(ManuallyDrop::into_inner(v)),
        }
    }
}

#[inline(never)]
fn drop_vec<T>(v: Vec<Arc<T>>) {
    drop(v);
}

impl<T> Objects<T> {
    /// No objects.
    pub fn empty() -> Self {
        Objects(Repr::none())
    }

    /// A result set of exactly one object (no allocation).
    pub fn one(item: Arc<T>) -> Self {
        Objects(Repr::One(ManuallyDrop::new(item)))
    }

    /// A result set sharing an immutable slice.
    pub fn shared(items: Arc<[Arc<T>]>) -> Self {
        Objects(Repr::Shared(ManuallyDrop::new(items)))
    }

    /// The objects as a slice.
    pub fn as_slice(&self) -> &[Arc<T>] {
        match &self.0 {
            Repr::One(o) => std::slice::from_ref(&**o),
            Repr::Shared(s) => s,
            Repr::Owned(v) => v,
        }
    }

    /// The objects as a `Vec` (clones the `Arc`s when shared).
    pub fn into_vec(mut self) -> Vec<Arc<T>> {
        match std::mem::replace(&mut self.0, Repr::none()) {
            Repr::One(o) => vec![ManuallyDrop::into_inner(o)],
            Repr::Shared(s) => ManuallyDrop::into_inner(s).to_vec(),
            Repr::Owned(v) => ManuallyDrop::into_inner(v),
        }
    }
}

impl<T> From<Vec<Arc<T>>> for Objects<T> {
    fn from(v: Vec<Arc<T>>) -> Self {
        Objects(Repr::Owned(ManuallyDrop::new(v)))
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
            Repr::One(o) => Objects::one(Arc::clone(o)),
            Repr::Shared(s) => Objects::shared(Arc::clone(s)),
            Repr::Owned(v) => Objects::from(Vec::clone(v)),
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
