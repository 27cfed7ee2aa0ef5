//! The `Store` trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;

use crate::{Identity, KeyTuple, Objects, Result, StoreError};

/// The future returned by [`Store::get`]: either already complete (a store that answered from
/// memory: no allocation, no waiting) or a boxed future (a store that has to fetch).
///
/// `get` is the hot path of every controller, so unlike the other `Store` methods it does not
/// box its future unconditionally. `.await` it like any future.
#[must_use = "futures do nothing unless awaited"]
pub struct GetFuture<'a, T>(GetRepr<'a, T>);

type BoxedGet<'a, T> = Pin<Box<dyn Future<Output = Result<Objects<T>>> + Send + 'a>>;

// Small on purpose (the size of `Objects`): a ready result is moved a few times between the
// store and the caller, and moving a whole `Result` (about 90 bytes, most of it the error)
// measurably slowed exact gets.
enum GetRepr<'a, T> {
    Ready(Objects<T>),
    Failed(Box<StoreError>),
    Boxed(BoxedGet<'a, T>),
    Done,
}

impl<'a, T> GetFuture<'a, T> {
    /// A future that is already complete.
    #[inline]
    pub fn ready(result: Result<Objects<T>>) -> Self {
        GetFuture(match result {
            Ok(objects) => GetRepr::Ready(objects),
            Err(e) => GetRepr::Failed(Box::new(e)),
        })
    }

    /// A future that runs `future` (boxed).
    pub fn boxed(future: impl Future<Output = Result<Objects<T>>> + Send + 'a) -> Self {
        GetFuture(GetRepr::Boxed(Box::pin(future)))
    }
}

impl<T> Future for GetFuture<'_, T> {
    type Output = Result<Objects<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let repr = &mut self.get_mut().0;
        if let GetRepr::Boxed(future) = repr {
            return future.as_mut().poll(cx);
        }
        Poll::Ready(match std::mem::replace(repr, GetRepr::Done) {
            GetRepr::Ready(objects) => Ok(objects),
            GetRepr::Failed(e) => Err(*e),
            GetRepr::Boxed(_) | GetRepr::Done => panic!("`GetFuture` polled after completion"),
        })
    }
}

impl<T> fmt::Debug for GetFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            GetRepr::Ready(_) | GetRepr::Failed(_) => "GetFuture::Ready",
            GetRepr::Boxed(_) => "GetFuture::Boxed",
            GetRepr::Done => "GetFuture::Done",
        })
    }
}

/// An indexed store of Kubernetes objects of one resource type.
///
/// Both kstore stores implement it (`MemoryStore`: everything in memory; `CachedStore`:
/// references in memory, objects fetched on demand), so a controller can switch between them
/// per resource without changing its lookups. Methods are async because a `CachedStore` lookup
/// may fetch from the API server; a `MemoryStore` never awaits. `get`, the hot path, returns a
/// [`GetFuture`] rather than a boxed future, so an answer from memory costs no allocation.
///
/// # Key semantics (every implementation)
/// * A store has a fixed number `N >= 1` of index keys; [`KeyTuple`]s are tuples, never joined
///   strings.
/// * `add`/`update` take exactly `N` keys; `get` takes `1..=N` keys, and fewer than `N` select by
///   prefix of the key tuple. A miss is an empty result, not an error.
/// * Keys need not be unique: many objects may share one key tuple. Each object is held once,
///   by identity (`namespace`, `name`).
/// * `update` moves an object whose keys changed and adds an absent one; `delete` removes one
///   object by identity; [`Store::delete_all_under`] is the explicit bulk removal.
/// * Results are ordered by namespace, then name.
#[async_trait]
pub trait Store<T: Send + Sync + 'static>: Send + Sync {
    /// The number of index keys, `N`.
    fn num_keys(&self) -> usize;

    /// Objects whose key tuple equals `keys` (`keys.len() == N`) or starts with it (fewer).
    ///
    /// Returns a [`GetFuture`]: `store.get(keys).await` as with the other methods, but a store
    /// that answers from memory completes it at once without allocating.
    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, T>;

    /// Every object, ordered by namespace, then name.
    async fn list(&self) -> Result<Objects<T>>;

    /// Adds `object` under `keys`; an object with the same identity is replaced (and moved).
    async fn add(&self, object: Arc<T>, keys: KeyTuple) -> Result<()>;

    /// Replaces the object with the same identity (moving it if its keys changed), or adds it.
    async fn update(&self, object: Arc<T>, keys: KeyTuple) -> Result<()>;

    /// Removes the one object with this identity, returning it. When both `identity.uid` and the
    /// stored object's uid are known and differ, nothing is removed (a late delete of an earlier
    /// incarnation).
    async fn delete(&self, identity: &Identity) -> Result<Option<Arc<T>>>;

    /// Removes every object under `keys` (exact or prefix, like `get`); returns how many.
    async fn delete_all_under(&self, keys: &[&str]) -> Result<usize>;

    /// Removes everything.
    async fn clear(&self) -> Result<()>;

    /// Number of objects (or references) held.
    fn len(&self) -> usize;

    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
