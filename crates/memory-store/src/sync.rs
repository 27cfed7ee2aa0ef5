//! The synchronisation primitives of the store, switchable to loom-aware stand-ins for model
//! checking (`RUSTFLAGS="--cfg kstore_loom"`, run by `cargo xtask loom`).
//!
//! | Normal build | Under `kstore_loom` |
//! |---|---|
//! | `std::sync::Mutex` (the writer lock) | a loom `Mutex` |
//! | [`arc_swap::ArcSwap`] (the published state) | [`ArcSwap`]: a loom `Mutex<Arc<_>>` plus a loom generation counter, same operations |
//! | [`arc_swap::Cache`] (a `Reader`'s cached state) | [`Cache`]: a cached `Arc` revalidated by a `Relaxed` load of the generation, as arc-swap revalidates by a `Relaxed` load of its pointer |
//!
//! The loom models (`tests/loom.rs`) therefore check *the store's* protocol: writers serialised
//! by the writer lock, each cloning the current state under it and publishing the modified copy
//! whole; readers (one-shot loads, snapshots, cached readers) seeing complete states in
//! publication order. They do not check arc-swap's own memory reclamation, which loom cannot
//! see (arc-swap is tested by its authors, and `publish.rs`'s unit tests hammer it here). The
//! stand-in keeps the contract the store relies on: `load`/`load_full` return a state that was
//! published at some instant during the call; `swap` publishes and returns the replaced state;
//! a `Cache` returns its cached state while no newer one is published, and a load that happens
//! after a publication sees it (or a later one).

#[cfg(not(kstore_loom))]
mod imp {
    pub(crate) use arc_swap::{ArcSwap, Cache};
    pub(crate) use std::sync::{Mutex, MutexGuard};
}

#[cfg(kstore_loom)]
mod imp {
    use std::ops::Deref;
    use std::sync::Arc;

    use loom::sync::atomic::{AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};

    /// The loom stand-in for [`arc_swap::ArcSwap`]: the current state under a loom mutex, and a
    /// generation number bumped by every publication (what a [`Cache`] revalidates against).
    pub(crate) struct ArcSwap<T> {
        current: Mutex<(Arc<T>, usize)>,
        generation: AtomicUsize,
    }

    impl<T> ArcSwap<T> {
        pub(crate) fn from_pointee(value: T) -> Self {
            ArcSwap { current: Mutex::new((Arc::new(value), 0)), generation: AtomicUsize::new(0) }
        }

        fn locked(&self) -> loom::sync::MutexGuard<'_, (Arc<T>, usize)> {
            self.current.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The current state (arc-swap returns a guard that derefs to the `Arc`).
        pub(crate) fn load(&self) -> Arc<T> {
            self.locked().0.clone()
        }

        pub(crate) fn load_full(&self) -> Arc<T> {
            self.load()
        }

        /// Publishes `new` and returns the state it replaces.
        pub(crate) fn swap(&self, new: Arc<T>) -> Arc<T> {
            let mut current = self.locked();
            let generation = current.1 + 1;
            let old = std::mem::replace(&mut *current, (new, generation)).0;
            self.generation.store(generation, Ordering::Release);
            old
        }
    }

    /// The loom stand-in for [`arc_swap::Cache`].
    #[derive(Clone)]
    pub(crate) struct Cache<A, T> {
        swap: A,
        cached: T,
        generation: usize,
    }

    impl<A: Deref<Target = ArcSwap<T>>, T> Cache<A, Arc<T>> {
        pub(crate) fn new(swap: A) -> Self {
            let (cached, generation) = swap.locked().clone();
            Cache { swap, cached, generation }
        }

        /// The cached state, reloaded when a newer one was published (arc-swap compares
        /// pointers with a `Relaxed` load; the generation stands in for the pointer).
        pub(crate) fn load(&mut self) -> &Arc<T> {
            if self.swap.generation.load(Ordering::Relaxed) != self.generation {
                (self.cached, self.generation) = self.swap.locked().clone();
            }
            &self.cached
        }
    }
}

pub(crate) use imp::*;
