//! Cheap result sets.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The objects a lookup returned, in deterministic order (namespace, then name).
///
/// A result set derefs to `[Arc<T>]`. Exact lookups in a `MemoryStore` share the store's own
/// immutable bucket (one reference-count increment, no allocation); other results own a `Vec`.
/// Either way the objects are `Arc`-shared and immutable: a result never changes after it is
/// returned, whatever writers do next.
pub struct Objects<T>(Repr<T>);

enum Repr<T> {
    Shared(Arc<[Arc<T>]>),
    Owned(Vec<Arc<T>>),
}

impl<T> Objects<T> {
    /// No objects.
    pub fn empty() -> Self {
        Objects(Repr::Owned(Vec::new()))
    }

    /// A result set sharing an immutable slice.
    pub fn shared(items: Arc<[Arc<T>]>) -> Self {
        Objects(Repr::Shared(items))
    }

    /// The objects as a slice.
    pub fn as_slice(&self) -> &[Arc<T>] {
        match &self.0 {
            Repr::Shared(s) => s,
            Repr::Owned(v) => v,
        }
    }

    /// The objects as a `Vec` (clones the `Arc`s when shared).
    pub fn into_vec(self) -> Vec<Arc<T>> {
        match self.0 {
            Repr::Shared(s) => s.to_vec(),
            Repr::Owned(v) => v,
        }
    }
}

impl<T> From<Vec<Arc<T>>> for Objects<T> {
    fn from(v: Vec<Arc<T>>) -> Self {
        Objects(Repr::Owned(v))
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
            Repr::Shared(s) => Objects(Repr::Shared(s.clone())),
            Repr::Owned(v) => Objects(Repr::Owned(v.clone())),
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
