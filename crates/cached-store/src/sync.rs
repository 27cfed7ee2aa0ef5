//! The concurrency primitives the CachedStore's own logic uses, switchable to loom-aware
//! stand-ins for model checking (`RUSTFLAGS="--cfg kstore_loom"`, run by `cargo xtask loom`;
//! memory-store switches its publication the same way).
//!
//! | Normal build | Under `kstore_loom` |
//! |---|---|
//! | `parking_lot::Mutex` (feed lock, fetch records) | a loom `Mutex` |
//! | `AtomicU64` (`next_id`, `next_sweep_ms`) | a loom `AtomicU64` |
//! | `ArcSwapOption` (a reference's cache slot) | a loom `Mutex<Option<Arc<_>>>` with the same operations |
//! | quick_cache's `sync::Cache` | [`Cache`]: one loom-locked shard, same interface, same lifecycle calls |
//! | `tokio::spawn` + `Shared` (one fetch task per reference version) | one loom thread per fetch; its result handed to every waiter |
//! | `tokio::sync::Semaphore` (the store-wide fetch limit) | nothing (the models stay under the limit) |
//! | `tokio::time::timeout` (the fetch timeout) | nothing (the models set no timeout) |
//! | `kube::Client` | [`Client`]: kube's, or a function standing in for the API server |
//!
//! The loom models therefore check *kstore's* protocol — single flight through the fetch
//! records, fills serialised with watch events by the feed lock, the version-id and
//! resourceVersion checks, slots and cache entries set and cleared together, eviction through
//! the lifecycle hook — not the internals of quick_cache, arc-swap, futures or tokio, which
//! loom cannot see. The stand-in cache keeps quick_cache's observable contract as the store
//! relies on it: `insert` of an existing key replaces it and calls `Lifecycle::on_evict` for
//! the replaced entry (quick_cache 0.7 does; the store removes an entry before inserting its
//! key again, so it never relies on this); an insert that does not fit
//! evicts the oldest entries first (quick_cache: cold entries, by CLOCK) and calls
//! `Lifecycle::on_evict` for each, under the cache's lock; an entry heavier than the whole
//! capacity is not admitted, and `on_evict` is called for it (and for the entry it replaced);
//! `remove`, `remove_if` and `retain` call no lifecycle hook (the store never calls `clear`). Statistics counters stay
//! `std` atomics, the byte gauge among them (nothing reads them to decide anything), and so does the store clock's
//! sweeper count (the models run no sweeper, so it stays zero). Time is not modelled: entries
//! expire by the wall clock, so the models use a TTL far longer than they run.

#[cfg(not(kstore_loom))]
mod imp {
    use std::future::Future;

    use futures::future::{BoxFuture, FutureExt, Shared};

    pub(crate) use parking_lot::Mutex;
    pub(crate) use quick_cache::sync::Cache;
    pub(crate) use std::sync::atomic::AtomicU64;

    /// A reference's cache slot.
    pub(crate) type Slot<T> = arc_swap::ArcSwapOption<T>;

    /// What fetches objects: kube's client.
    pub(crate) type Client = kube::Client;

    pub(crate) fn client(client: kube::Client) -> Client {
        client
    }

    /// One fetch in flight, shared by every lookup waiting for it.
    pub(crate) type Flight<T> = Shared<BoxFuture<'static, T>>;

    /// The store-wide fetch limit.
    pub(crate) type Semaphore = tokio::sync::Semaphore;

    /// `future`'s output, or `None` when `after` passed first.
    pub(crate) async fn timeout<T>(after: std::time::Duration, future: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout(after, future).await.ok()
    }

    /// Runs `task` as its own Tokio task (so it completes even if every waiter is cancelled)
    /// and returns the handle all waiters share; `interrupted` turns a panic or a runtime
    /// shutdown into the result.
    pub(crate) fn spawn_flight<T, F, I>(task: F, interrupted: I) -> Flight<T>
    where
        T: Clone + Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
        I: FnOnce(String) -> T + Send + 'static,
    {
        let task = tokio::spawn(task);
        async move { task.await.unwrap_or_else(|e| interrupted(e.to_string())) }.boxed().shared()
    }

    /// A flight that is already over.
    pub(crate) fn ready_flight<T: Clone + Send + Sync + 'static>(value: T) -> Flight<T> {
        futures::future::ready(value).boxed().shared()
    }
}

#[cfg(kstore_loom)]
mod imp {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::hash::Hash;
    use std::ops::Deref;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use quick_cache::{Lifecycle, Weighter};

    pub(crate) use loom::sync::atomic::AtomicU64;

    /// A loom mutex with parking_lot's signature (no poisoning in the models: a panic fails
    /// the model anyway).
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Loom stand-in for `ArcSwapOption`: the operations the store uses, each one step.
    pub(crate) struct Slot<T>(loom::sync::Mutex<Option<Arc<T>>>);

    /// What [`Slot::load`] returns (arc-swap returns a guard that derefs the same way).
    pub(crate) struct Loaded<T>(Option<Arc<T>>);

    impl<T> Deref for Loaded<T> {
        type Target = Option<Arc<T>>;
        fn deref(&self) -> &Option<Arc<T>> {
            &self.0
        }
    }

    impl<T> Slot<T> {
        pub(crate) fn empty() -> Self {
            Slot(loom::sync::Mutex::new(None))
        }

        fn lock(&self) -> loom::sync::MutexGuard<'_, Option<Arc<T>>> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn load(&self) -> Loaded<T> {
            Loaded(self.lock().clone())
        }

        pub(crate) fn load_full(&self) -> Option<Arc<T>> {
            self.lock().clone()
        }

        pub(crate) fn store(&self, value: Option<Arc<T>>) {
            *self.lock() = value;
        }

        pub(crate) fn swap(&self, value: Option<Arc<T>>) -> Option<Arc<T>> {
            std::mem::replace(&mut *self.lock(), value)
        }

        /// Stores `new` if the slot still holds `current` (same allocation, or both empty).
        pub(crate) fn compare_and_swap(&self, current: &Option<Arc<T>>, new: Option<Arc<T>>) {
            let mut slot = self.lock();
            let same = match (&*slot, current) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same {
                *slot = new;
            }
        }
    }

    /// Loom stand-in for quick_cache's `sync::Cache` (see the module docs for the contract it
    /// keeps): one shard under a loom lock, entries in insertion order, the oldest evicted
    /// first.
    pub(crate) struct Cache<K, V, W, H, L> {
        entries: loom::sync::Mutex<VecDeque<(K, V, u64)>>,
        capacity: u64,
        weighter: W,
        lifecycle: L,
        _hasher: std::marker::PhantomData<H>,
    }

    impl<K, V, W, H, L> Cache<K, V, W, H, L>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        W: Weighter<K, V>,
        L: Lifecycle<K, V>,
    {
        pub(crate) fn with_capacity(capacity: u64, weighter: W, lifecycle: L) -> Self {
            Cache {
                entries: loom::sync::Mutex::new(VecDeque::new()),
                capacity,
                weighter,
                lifecycle,
                _hasher: std::marker::PhantomData,
            }
        }

        fn lock(&self) -> loom::sync::MutexGuard<'_, VecDeque<(K, V, u64)>> {
            self.entries.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn evict(&self, key: K, value: V) {
            let mut state = L::RequestState::default();
            self.lifecycle.on_evict(&mut state, key, value);
        }

        pub(crate) fn insert(&self, key: K, value: V) {
            let weight = self.weighter.weight(&key, &value);
            let mut entries = self.lock();
            let existing = entries.iter().position(|(k, _, _)| *k == key);
            if weight > self.capacity {
                if let Some(i) = existing {
                    let (k, v, _) = entries.remove(i).expect("position is in range");
                    self.evict(k, v);
                }
                self.evict(key, value);
                return;
            }
            if let Some(i) = existing {
                let (k, v, _) = std::mem::replace(&mut entries[i], (key, value, weight));
                self.evict(k, v);
                return;
            }
            let mut total: u64 = entries.iter().map(|e| e.2).sum();
            while total + weight > self.capacity {
                let Some((k, v, w)) = entries.pop_front() else { break };
                total -= w;
                self.evict(k, v);
            }
            entries.push_back((key, value, weight));
        }

        pub(crate) fn remove(&self, key: &K) -> Option<(K, V)> {
            self.remove_if(key, |_| true)
        }

        pub(crate) fn remove_if(&self, key: &K, f: impl FnOnce(&V) -> bool) -> Option<(K, V)> {
            let mut entries = self.lock();
            let i = entries.iter().position(|(k, _, _)| k == key)?;
            if !f(&entries[i].1) {
                return None;
            }
            entries.remove(i).map(|(k, v, _)| (k, v))
        }

        pub(crate) fn retain(&self, f: impl Fn(&K, &V) -> bool) {
            self.lock().retain(|(k, v, _)| f(k, v));
        }

        pub(crate) fn peek(&self, key: &K) -> Option<V> {
            self.lock().iter().find(|(k, _, _)| k == key).map(|(_, v, _)| v.clone())
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = (K, V)> + use<K, V, W, H, L> {
            let items: Vec<(K, V)> = self.lock().iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
            items.into_iter()
        }

        pub(crate) fn len(&self) -> usize {
            self.lock().len()
        }
    }

    /// The API server a fetch talks to: a GET of the request path answers the response text
    /// (or kube's error, e.g. a 404 status).
    pub(crate) type ModelServer = Arc<dyn Fn(&str) -> Result<String, kube::Error> + Send + Sync>;

    /// kube's client, or a function standing in for the API server in a loom model. The
    /// request is built exactly as in production; only sending it is replaced.
    pub(crate) enum Client {
        Kube(kube::Client),
        Model(ModelServer),
    }

    pub(crate) fn client(client: kube::Client) -> Client {
        Client::Kube(client)
    }

    impl Client {
        pub(crate) async fn request_text(&self, request: http::Request<Vec<u8>>) -> Result<String, kube::Error> {
            match self {
                Client::Kube(client) => client.request_text(request).await,
                Client::Model(server) => {
                    let uri = request.uri();
                    server(uri.path_and_query().map_or(uri.path(), |p| p.as_str()))
                }
            }
        }
    }

    struct FlightState<T> {
        result: loom::sync::Mutex<Option<T>>,
        done: loom::sync::Condvar,
    }

    /// Loom stand-in for a spawned task behind `Shared`: the fetch runs on its own loom
    /// thread; every clone waits for and returns its result. Waiting blocks the loom thread
    /// (in the models each lookup runs on its own thread, under `loom::future::block_on`).
    pub(crate) struct Flight<T>(Arc<FlightState<T>>);

    impl<T> Clone for Flight<T> {
        fn clone(&self) -> Self {
            Flight(self.0.clone())
        }
    }

    impl<T: Clone> Future for Flight<T> {
        type Output = T;

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
            let mut result = self.0.result.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(value) = &*result {
                    return Poll::Ready(value.clone());
                }
                result = self.0.done.wait(result).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    fn flight<T>(value: Option<T>) -> Flight<T> {
        Flight(Arc::new(FlightState { result: loom::sync::Mutex::new(value), done: loom::sync::Condvar::new() }))
    }

    /// Not modelled: the models use no fetch timeout (time is not modelled).
    pub(crate) async fn timeout<T>(_after: std::time::Duration, future: impl Future<Output = T>) -> Option<T> {
        Some(future.await)
    }

    /// Not modelled: the models run fewer fetches at once than the limit, so a permit is
    /// always there.
    pub(crate) struct Semaphore;

    impl Semaphore {
        pub(crate) fn new(_permits: usize) -> Semaphore {
            Semaphore
        }

        pub(crate) async fn acquire(&self) {}
    }

    /// Runs `task` on its own loom thread (as production runs it as its own Tokio task). A
    /// panic in it fails the model, so `interrupted` is not needed.
    pub(crate) fn spawn_flight<T, F, I>(task: F, _interrupted: I) -> Flight<T>
    where
        T: Clone + Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
        I: FnOnce(String) -> T + Send + 'static,
    {
        let f = flight(None);
        let handle = f.clone();
        loom::thread::spawn(move || {
            let value = loom::future::block_on(task);
            *handle.0.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
            handle.0.done.notify_all();
        });
        f
    }

    /// A flight that is already over.
    pub(crate) fn ready_flight<T: Clone + Send + Sync + 'static>(value: T) -> Flight<T> {
        flight(Some(value))
    }
}

pub(crate) use imp::*;
