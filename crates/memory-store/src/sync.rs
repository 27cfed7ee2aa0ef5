//! The synchronisation primitives of the store, switchable to loom's for model checking
//! (`RUSTFLAGS="--cfg kstore_loom"`, run by `cargo xtask loom`).
//!
//! Normal builds publish states through `arc_swap::ArcSwap` (lock-free reads). Under
//! `kstore_loom` a loom `RwLock<Arc<_>>` stands in for it: loom cannot see inside arc-swap, so
//! the model checks kstore's own protocol around publication — writers serialise on the writer
//! mutex, clone the current state, modify the copy and publish it whole — which is what keeps
//! readers from seeing half-applied batches and concurrent writers from losing updates.

#[cfg(not(kstore_loom))]
mod imp {
    use std::sync::Arc;

    pub(crate) use std::sync::{Mutex, MutexGuard};

    /// Where the current state is published.
    pub(crate) type Published<T> = arc_swap::ArcSwap<T>;

    pub(crate) fn published<T>(value: T) -> Arc<Published<T>> {
        Arc::new(arc_swap::ArcSwap::from_pointee(value))
    }
}

#[cfg(kstore_loom)]
mod imp {
    use std::sync::Arc;

    pub(crate) use loom::sync::{Mutex, MutexGuard};

    /// Loom stand-in for `ArcSwap`: same operations, modelled with a loom lock.
    pub(crate) struct Published<T>(loom::sync::RwLock<Arc<T>>);

    impl<T> Published<T> {
        pub(crate) fn load(&self) -> Arc<T> {
            self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
        }

        pub(crate) fn load_full(&self) -> Arc<T> {
            self.load()
        }

        pub(crate) fn store(&self, value: Arc<T>) {
            *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
        }
    }

    pub(crate) fn published<T>(value: T) -> Arc<Published<T>> {
        Arc::new(Published(loom::sync::RwLock::new(Arc::new(value))))
    }
}

pub(crate) use imp::{Mutex, MutexGuard, Published, published};
