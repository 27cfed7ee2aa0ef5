//! The synchronisation primitives of the store, switchable to loom's for model checking
//! (`RUSTFLAGS="--cfg kstore_loom"`, run by `cargo xtask loom`).
//!
//! Everything the publication protocol (`publish.rs`) and the writer lock use comes from here,
//! so the loom models in `tests/loom.rs` run the same protocol code as normal builds, over
//! loom's atomics, mutex, thread-locals and statics.
//!
//! # Fences
//! Readers announce the state they read in their hazard record and then re-read the published
//! pointer: the store→load order between the two needs a full fence on one side and a matching
//! one on the writer's side, which scans the records after publishing. Readers are many and
//! writers few, so on Linux the fences are *asymmetric*: readers issue only a compiler fence
//! ([`light_fence`]) and writers call `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
//! ([`heavy_fence`]), which makes every running thread of the process execute a full memory
//! barrier before it returns (sleeping threads get one when scheduled). That pair orders
//! memory like two `SeqCst` fences (the Linux `membarrier(2)` contract). Elsewhere, when the
//! kernel refuses the registration, or with `KSTORE_MEMBARRIER=0` in the environment, both
//! sides use `fence(SeqCst)` ("fence mode"); loom always runs fence mode, which is exactly the
//! memory-model meaning of the asymmetric pair.

#[cfg(not(kstore_loom))]
mod imp {
    use std::cell::Cell;
    use std::sync::Once;

    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering, fence};
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

    use crate::publish::{Domain, Record};

    static DOMAIN: Domain = Domain { head: AtomicPtr::new(std::ptr::null_mut()) };
    static ASYMMETRIC: AtomicBool = AtomicBool::new(false);
    static INIT: Once = Once::new();

    /// The process-wide list of hazard records.
    #[inline]
    pub(crate) fn domain() -> &'static Domain {
        &DOMAIN
    }

    /// Chooses the fence mode, once per process; called before any state is published.
    pub(crate) fn init() {
        INIT.call_once(|| {
            let wanted = std::env::var_os("KSTORE_MEMBARRIER").is_none_or(|v| v != "0");
            ASYMMETRIC.store(wanted && membarrier::register(), Ordering::Relaxed);
        });
    }

    /// True when readers use compiler fences and writers `membarrier` (see the module docs).
    /// Fixed before any store exists: every reader and writer of a store sees the value
    /// `init` set, through the happens-before edge from the store's construction.
    #[inline]
    pub(crate) fn asymmetric() -> bool {
        ASYMMETRIC.load(Ordering::Relaxed)
    }

    /// The reader's side of the fence pair.
    #[inline]
    pub(crate) fn light_fence() {
        if asymmetric() {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The writer's side of the fence pair; `false` if the barrier could not be issued (then
    /// nothing may be freed).
    pub(crate) fn heavy_fence() -> bool {
        if asymmetric() {
            membarrier::barrier()
        } else {
            fence(Ordering::SeqCst);
            true
        }
    }

    pub(crate) struct Local(pub(crate) Cell<Option<&'static Record>>);

    impl Drop for Local {
        fn drop(&mut self) {
            if let Some(r) = self.0.get() {
                DOMAIN.release(r);
            }
        }
    }

    thread_local! {
        pub(crate) static LOCAL: Local = const { Local(Cell::new(None)) };
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    mod membarrier {
        // From <linux/membarrier.h>.
        const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

        /// Registers the process for private expedited barriers (Linux ≥ 4.14); `false` if the
        /// kernel (or a seccomp filter) refuses.
        pub(super) fn register() -> bool {
            // SAFETY: `membarrier` takes two integers and a CPU id and touches no user memory.
            unsafe { libc::syscall(libc::SYS_membarrier, CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
        }

        /// A full memory barrier on every running thread of this process. Registers again and
        /// retries once if the kernel says the process is not registered (a forked child).
        pub(super) fn barrier() -> bool {
            // SAFETY: as above.
            let call = || unsafe { libc::syscall(libc::SYS_membarrier, CMD_PRIVATE_EXPEDITED, 0, 0) == 0 };
            call() || (register() && call())
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod membarrier {
        pub(super) fn register() -> bool {
            false
        }
        pub(super) fn barrier() -> bool {
            false
        }
    }

    /// Records a reader's access to a published state, for loom's causality checker; nothing
    /// in normal builds.
    pub(crate) struct Access;

    impl Access {
        #[inline(always)]
        pub(crate) fn new() -> Self {
            Access
        }
        #[inline(always)]
        pub(crate) fn read(&self) {}
        #[inline(always)]
        pub(crate) fn free(&mut self) {}
    }
}

#[cfg(kstore_loom)]
mod imp {
    use std::cell::Cell;

    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, Ordering, fence};
    /// Published states are reference-counted with loom's `Arc` (std's counts are invisible to
    /// loom, which would then miss the order a last reference's drop gives).
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

    use crate::publish::{Domain, Record};

    loom::lazy_static! {
        static ref DOMAIN: Domain = Domain { head: AtomicPtr::new(std::ptr::null_mut()) };
    }

    pub(crate) fn domain() -> &'static Domain {
        &DOMAIN
    }

    pub(crate) fn init() {}

    /// Loom runs fence mode (see the module docs).
    pub(crate) fn asymmetric() -> bool {
        false
    }

    pub(crate) fn light_fence() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn heavy_fence() -> bool {
        fence(Ordering::SeqCst);
        true
    }

    /// Under loom a thread's record is not given back when the thread ends: loom tears the
    /// main thread's locals down after the model's statics, and an execution has few threads.
    pub(crate) struct Local(pub(crate) Cell<Option<&'static Record>>);

    loom::thread_local! {
        pub(crate) static LOCAL: Local = Local(Cell::new(None));
    }

    /// A loom cell touched by every protected read of a state and by the state's destruction:
    /// loom reports a causality violation (a use after free in normal builds) if a state could
    /// be freed while a reader that protected it is still reading it.
    pub(crate) struct Access(loom::cell::UnsafeCell<()>);

    // SAFETY: the cell holds `()` and is only used to record accesses for loom's checker.
    #[allow(unsafe_code)]
    unsafe impl Sync for Access {}

    impl Access {
        pub(crate) fn new() -> Self {
            Access(loom::cell::UnsafeCell::new(()))
        }
        #[track_caller]
        pub(crate) fn read(&self) {
            self.0.with(|_| ());
        }
        #[track_caller]
        pub(crate) fn free(&mut self) {
            self.0.with_mut(|_| ());
        }
    }
}

pub(crate) use imp::*;

/// This thread's hazard record, taken from the domain on first use and (outside loom) given
/// back when the thread exits. `None` while thread-locals are being torn down.
#[inline]
pub(crate) fn local_record() -> Option<&'static crate::publish::Record> {
    imp::LOCAL
        .try_with(|l| match l.0.get() {
            Some(r) => r,
            None => {
                let r = domain().acquire();
                l.0.set(Some(r));
                r
            }
        })
        .ok()
}
