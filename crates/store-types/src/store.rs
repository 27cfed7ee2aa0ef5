//! The `Store` trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;

use std::sync::Arc;

use crate::objects::{Repr, Slice};
use crate::{Objects, Result, StoreError};

/// The future returned by [`Store::get`]: either already complete (a store that answered from
/// memory: no allocation, no waiting) or a boxed future (a store that has to fetch).
///
/// `get` is the hot path of every controller, so unlike the other `Store` methods it does not
/// box its future unconditionally. `.await` it like any future.
#[must_use = "futures do nothing unless awaited"]
pub struct GetFuture<'a, T>(GetRepr<'a, T>);

type BoxedGet<'a, T> = Pin<Box<dyn Future<Output = Result<Objects<T>>> + Send + 'a>>;

// Small on purpose, and flat: every state is one pointer-sized field at most, so the future
// is a (tag, pointer) pair that is returned in two registers. A ready result is moved a few
// times between the store and the caller; moving a whole `Result` (about 90 bytes, most of it
// the error), or a future returned through memory (the caller's wide load of the callee's two
// narrow stores stalls store forwarding), measurably slowed exact gets through the trait. So
// `Objects`' two states are spelled out here, and the rare states are boxed.
enum GetRepr<'a, T> {
    /// Ready: no object, or one.
    One(Option<Arc<T>>),
    /// Ready: a shared slice.
    Shared(Slice<T>),
    Failed(Box<StoreError>),
    Boxed(Box<BoxedGet<'a, T>>),
    Done,
}

impl<T> GetRepr<'_, T> {
    #[inline(always)]
    fn ready(objects: Objects<T>) -> Self {
        match objects.0 {
            Repr::One(o) => GetRepr::One(o),
            Repr::Shared(s) => GetRepr::Shared(s),
        }
    }
}

const _: () = assert!(std::mem::size_of::<GetFuture<'static, u8>>() == 2 * std::mem::size_of::<usize>());

impl<'a, T> GetFuture<'a, T> {
    /// A future that is already complete.
    #[inline]
    pub fn ready(result: Result<Objects<T>>) -> Self {
        GetFuture(match result {
            Ok(objects) => GetRepr::ready(objects),
            Err(e) => GetRepr::Failed(Box::new(e)),
        })
    }

    /// A future that runs `future` (boxed).
    pub fn boxed(future: impl Future<Output = Result<Objects<T>>> + Send + 'a) -> Self {
        GetFuture(GetRepr::Boxed(Box::new(Box::pin(future))))
    }
}

impl<T> From<Objects<T>> for GetFuture<'_, T> {
    /// A future that is already complete with `objects`: the cheapest way for a store that
    /// answered from memory to return them (no `Result` built and taken apart on the way).
    ///
    /// ```
    /// use kstore_types::{GetFuture, Objects};
    /// let done: GetFuture<'_, String> = Objects::empty().into();
    /// assert!(format!("{done:?}").contains("Ready"));
    /// ```
    #[inline]
    fn from(objects: Objects<T>) -> Self {
        GetFuture(GetRepr::ready(objects))
    }
}

impl<T> Future for GetFuture<'_, T> {
    type Output = Result<Objects<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let repr = &mut self.get_mut().0;
        if let GetRepr::Boxed(future) = repr {
            return (**future).as_mut().poll(cx);
        }
        Poll::Ready(match std::mem::replace(repr, GetRepr::Done) {
            GetRepr::One(o) => Ok(Objects(Repr::One(o))),
            GetRepr::Shared(s) => Ok(Objects(Repr::Shared(s))),
            GetRepr::Failed(e) => Err(*e),
            GetRepr::Boxed(_) | GetRepr::Done => panic!("`GetFuture` polled after completion"),
        })
    }
}

impl<T> fmt::Debug for GetFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            GetRepr::One(_) | GetRepr::Shared(_) | GetRepr::Failed(_) => "GetFuture::Ready",
            GetRepr::Boxed(_) => "GetFuture::Boxed",
            GetRepr::Done => "GetFuture::Done",
        })
    }
}

/// Read access to an indexed store of Kubernetes objects of one resource type.
///
/// Every kstore store handle and snapshot implements it (`MemoryStore` and its read handles and
/// snapshots: everything in memory; `CachedStore` and its handles: references in memory,
/// objects fetched on demand), so a controller can switch between them per resource without
/// changing its lookups. `get` and `get_by_identity`, the hot paths, return a [`GetFuture`]
/// rather than a boxed future, so an answer from memory costs no allocation; `list` is async
/// because a `CachedStore` may fetch from the API server.
///
/// # Readers and writers
/// The trait is read-only on purpose: whoever holds a `Store` (a template, a reconciler, any
/// clone of a handle) can look objects up but cannot add, remove or clear them. Writes are
/// inherent methods of the one writer of each store — `MemoryStore` itself (`add`, `update`,
/// `delete`, `replace_all`, `batch`, `clear`), which is not `Clone`, and `CachedStore`'s feed
/// (`apply_*`, `delete_reference`, `replace_references`) — because the two stores take
/// different inputs (objects vs references) and a common write trait would hide that. A
/// watcher keeps the writer and hands out read handles only, like kube's
/// `reflector::store::Writer` and `Store`.
///
/// # Key semantics (every implementation)
/// * A store has a fixed number `N >= 1` of index keys; [`KeyTuple`](crate::KeyTuple)s are tuples, never joined
///   strings.
/// * Writes take exactly `N` keys; `get` takes `1..=N` keys, and fewer than `N` select by
///   prefix of the key tuple. A miss is an empty result, not an error.
/// * Keys need not be unique: many objects may share one key tuple. Each object is held once,
///   by identity (`namespace`, `name`), and [`Store::get_by_identity`] finds it by that.
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

    /// The one object with this identity (`namespace` is `""` for cluster-scoped objects),
    /// whatever its keys: an empty result or exactly one object.
    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, T>;

    /// Every object, ordered by namespace, then name.
    async fn list(&self) -> Result<Objects<T>>;

    /// Number of objects (or references) held.
    fn len(&self) -> usize;

    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
