//! Publication of whole, immutable states: one current state, read without locks, without
//! atomic read-modify-writes and without reference counts, replaced whole by writers.
//!
//! # Protocol (hazard records with asymmetric fences)
//! * `current` holds one strong count of the published state (`Arc::into_raw`).
//! * Every thread owns one *hazard record* in a process-wide list (taken on its first read,
//!   given back when it exits; a nested read on the same thread takes a spare record).
//! * A **reader** stores the pointer it read into its record (a plain store), issues the light
//!   fence (`sync::light_fence`: a compiler fence on Linux) and re-reads `current`: when
//!   unchanged, the state is protected — no writer frees it while the record holds its address
//!   — and the reader borrows it. When done it clears the record (a release store). No atomic
//!   read-modify-write (an `arc_swap` load costs two) and no claiming of a shared slot (a
//!   prototype that claimed one of a store's slots by compare-exchange measured as slow as
//!   `arc_swap`); with `SeqCst` fences instead of the asymmetric pair a get costs 2–4 ns more.
//! * A **writer** swaps in the new state and puts the old one on the retired list. To free
//!   retired states it issues the heavy fence (`sync::heavy_fence`: `membarrier` on Linux),
//!   scans every record and drops each retired state that no record holds.
//!
//! # When replaced states are freed
//! The heavy fence costs about a microsecond, so with `membarrier` single-object writes
//! reclaim only every [`LAZY_RECLAIM`]th time; batches, relists, clears and bulk deletes
//! reclaim at once. In fence mode every write reclaims. A state that a reader still holds when
//! its writer reclaims is freed by the next reclamation after that reader finishes. So at most
//! `LAZY_RECLAIM - 1` states replaced by single-object writes, plus the states being read at
//! the last reclamation, outlive their replacement; all are freed with the store. No
//! per-thread cache keeps anything alive: an idle thread's record is empty.
//!
//! # Why a protected state is never freed
//! Reader: store(record, p); F_r; load(current) = p. Writer: swap(current); F_w; load(record).
//! The fence pair orders like two SeqCst fences. If F_r precedes F_w, the writer's load sees the
//! reader's store (or a later one, made only after the reader cleared its record). Otherwise
//! the reader's load of `current` comes after F_w, so it sees the swap, finds `current` changed
//! and protects the new state instead. A record pushed onto the list after the writer read the
//! list head falls in the second case too. The record is cleared with release and scanned with
//! acquire, so the reader's reads happen before the state's destruction; so is the announcing
//! store, because a writer may read the reader's next announcement instead of its clear (a
//! later relaxed store would not carry the clear's release). The loom models
//! (`tests/loom.rs`) check this over every interleaving, with a causality-checked cell touched
//! by every protected read and by the destruction of each state (`sync::Access`).
//!
//! Address reuse (ABA) is harmless: a record holding the address of a state that was freed and
//! reallocated only delays a reclamation, and a reader whose re-read finds a new state at the
//! old address has protected that new state, which is then the current one.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr;

use crate::sync::{
    Access, Arc, AtomicBool, AtomicPtr, Mutex, Ordering, asymmetric, domain, heavy_fence, init, light_fence,
    local_record,
};

/// With `membarrier`, single-object writes free replaced states every this many writes.
pub(crate) const LAZY_RECLAIM: usize = 8;

/// A published state: the value and (under loom) a cell recording protected reads for the
/// causality checker. Shared by [`Arc`] with snapshots; derefs to the value.
pub(crate) struct Node<T> {
    value: T,
    access: Access,
}

impl<T> Deref for Node<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for Node<T> {
    fn drop(&mut self) {
        self.access.free();
    }
}

/// A strong reference to a published state (snapshots and reader handles hold one).
pub(crate) type Shared<T> = Arc<Node<T>>;

/// One thread's hazard record. Records are never freed (a process has as many as it had
/// threads reading at once, plus nested reads) and sit on their own cache lines (128 bytes:
/// adjacent-line prefetchers pair lines).
#[repr(align(128))]
pub(crate) struct Record {
    /// The state this record's owner is reading, or null.
    hazard: AtomicPtr<()>,
    /// Owned by a thread (or a nested read).
    taken: AtomicBool,
    /// The record pushed before this one; set before this one is published, never changed.
    next: AtomicPtr<Record>,
}

/// The process-wide list of hazard records (in `sync.rs`: a static, or a loom lazy static).
pub(crate) struct Domain {
    pub(crate) head: AtomicPtr<Record>,
}

impl Domain {
    /// A free record, or a new one pushed onto the list (once per thread, and for nested reads).
    #[cold]
    #[inline(never)]
    pub(crate) fn acquire(&self) -> &'static Record {
        let mut p = self.head.load(Ordering::Acquire);
        // SAFETY (both derefs below): records are leaked, never freed.
        while let Some(r) = unsafe { p.as_ref() } {
            if !r.taken.load(Ordering::Relaxed)
                && r.taken.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return r;
            }
            p = r.next.load(Ordering::Relaxed);
        }
        let r: &'static Record = Box::leak(Box::new(Record {
            hazard: AtomicPtr::new(ptr::null_mut()),
            taken: AtomicBool::new(true),
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        // Acquire and release: whoever reaches this record through the list (from the head or
        // from a later record's `next`) also sees the records behind it.
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            r.next.store(head, Ordering::Relaxed);
            match self.head.compare_exchange(head, ptr::from_ref(r).cast_mut(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return r,
                Err(now) => head = now,
            }
        }
    }

    /// Gives a record back (its hazard is clear).
    pub(crate) fn release(&self, r: &Record) {
        r.taken.store(false, Ordering::Release);
    }

    /// True when some record holds `p`. Call after the heavy fence.
    fn protects(&self, p: *const ()) -> bool {
        let mut q = self.head.load(Ordering::Acquire);
        // SAFETY: records are never freed.
        while let Some(r) = unsafe { q.as_ref() } {
            if ptr::eq(r.hazard.load(Ordering::Acquire), p) {
                return true;
            }
            q = r.next.load(Ordering::Relaxed);
        }
        false
    }
}

/// The current state of a store; see the module documentation.
pub(crate) struct Published<T> {
    current: AtomicPtr<Node<T>>,
    retired: Mutex<Vec<Shared<T>>>,
    _owns: PhantomData<Shared<T>>,
}

/// A protected borrow of the current state; clears its hazard record when dropped.
pub(crate) struct Guard<'a, T> {
    record: &'static Record,
    /// The record is this thread's own (else a spare, given back on drop).
    own: bool,
    node: *const Node<T>,
    _cell: PhantomData<&'a Published<T>>,
}

impl<T> Guard<'_, T> {
    #[inline]
    fn node(&self) -> &Node<T> {
        // SAFETY: the node is protected by `record` until this guard is dropped (see `read`).
        unsafe { &*self.node }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.node().value
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.node().access.read();
        self.record.hazard.store(ptr::null_mut(), Ordering::Release);
        if !self.own {
            domain().release(self.record);
        }
    }
}

/// How soon a write frees the state it replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaim {
    /// Now (batches, relists, clears, bulk deletes: the replaced state may be large).
    Now,
    /// With the next reclamation (single-object writes; see [`LAZY_RECLAIM`]).
    Lazily,
}

impl<T> Published<T> {
    pub(crate) fn new(value: T) -> Self {
        init();
        let node = Arc::new(Node { value, access: Access::new() });
        Published {
            current: AtomicPtr::new(Arc::into_raw(node).cast_mut()),
            retired: Mutex::new(Vec::new()),
            _owns: PhantomData,
        }
    }

    /// Borrows the current state, without a reference count and without an atomic
    /// read-modify-write. A state replaced meanwhile stays alive until the guard is dropped:
    /// hold a guard only for a bounded piece of work, and use [`load`](Self::load) otherwise.
    #[inline]
    pub(crate) fn read(&self) -> Guard<'_, T> {
        let (record, own) = match local_record() {
            Some(r) if r.hazard.load(Ordering::Relaxed).is_null() => (r, true),
            // A nested read on this thread, or thread-locals already torn down.
            _ => (domain().acquire(), false),
        };
        let mut p = self.current.load(Ordering::Relaxed);
        loop {
            // Release, not relaxed: a writer scanning the record may read this store instead of
            // the clear that ended this thread's previous read, and must still see that read
            // as finished (found by the loom model; a plain store on x86 either way).
            record.hazard.store(p.cast(), Ordering::Release);
            light_fence();
            let now = self.current.load(Ordering::Acquire);
            if now == p {
                break;
            }
            p = now; // replaced meanwhile: protect the new state instead
        }
        // `p` came from `Arc::into_raw` of a published node, the record holds `p`, and
        // `current` still held `p` after the fence: every writer that retires `p` later sees
        // the record and keeps the node alive until the guard clears it (module docs).
        let guard = Guard { record, own, node: p, _cell: PhantomData };
        guard.node().access.read();
        guard
    }

    /// A strong reference to the current state (a snapshot): [`read`](Self::read) plus one
    /// reference-count increment.
    pub(crate) fn load(&self) -> Shared<T> {
        let guard = self.read();
        let p = guard.node;
        // SAFETY: `p` is a live `Arc<Node<T>>` allocation (protected by `guard`); the count
        // taken here is owned by the returned `Arc`.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// True when `state` is the current state (a pointer comparison; `state` being held keeps
    /// its address from being reused).
    #[inline]
    pub(crate) fn is_current(&self, state: &Shared<T>) -> bool {
        ptr::eq(self.current.load(Ordering::Acquire), Arc::as_ptr(state))
    }

    /// Publishes `value`; the replaced state is freed as `reclaim` says, once no reader holds
    /// it.
    pub(crate) fn store(&self, value: T, reclaim: Reclaim) {
        let node = Arc::new(Node { value, access: Access::new() });
        let old = self.current.swap(Arc::into_raw(node).cast_mut(), Ordering::AcqRel);
        // SAFETY: `current` owned one strong count of `old` (from `Arc::into_raw`), which moves
        // to the retired list.
        let old = unsafe { Arc::from_raw(old) };
        let freed = {
            let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
            retired.push(old);
            if reclaim == Reclaim::Now || !asymmetric() || retired.len() >= LAZY_RECLAIM {
                Self::collect(&mut retired)
            } else {
                Vec::new()
            }
        };
        drop(freed); // outside the lock: freeing a large state takes a while
    }

    /// Removes and returns the retired states no record holds.
    fn collect(retired: &mut Vec<Shared<T>>) -> Vec<Shared<T>> {
        if !heavy_fence() {
            return Vec::new(); // no barrier, no proof: keep everything for the next attempt
        }
        let domain = domain();
        let mut freed = Vec::new();
        let mut i = 0;
        while i < retired.len() {
            if domain.protects(Arc::as_ptr(&retired[i]).cast()) {
                i += 1;
            } else {
                freed.push(retired.swap_remove(i));
            }
        }
        freed
    }

    /// Replaced states not freed yet (for tests).
    #[cfg(test)]
    pub(crate) fn retired_len(&self) -> usize {
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<T> Drop for Published<T> {
    fn drop(&mut self) {
        // No reader is left (`&mut self`); the retired list drops with the mutex.
        let current = self.current.load(Ordering::Relaxed);
        // SAFETY: `current` owns one strong count (from `Arc::into_raw`).
        drop(unsafe { Arc::from_raw(current) });
    }
}

#[cfg(all(test, not(kstore_loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::SeqCst;

    use super::*;

    /// A state that counts its destruction and carries a checksum readers verify.
    struct State {
        version: u64,
        words: Box<[u64; 16]>,
        drops: Arc<AtomicUsize>,
    }

    impl State {
        fn new(version: u64, drops: &Arc<AtomicUsize>) -> Self {
            State { version, words: Box::new([version.wrapping_mul(0x9E37_79B9_7F4A_7C15); 16]), drops: drops.clone() }
        }
        fn check(&self) {
            let want = self.version.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(self.words.iter().all(|w| *w == want), "state {} read after it was freed", self.version);
        }
    }

    impl Drop for State {
        fn drop(&mut self) {
            self.words.fill(0);
            self.drops.fetch_add(1, SeqCst);
        }
    }

    fn records() -> usize {
        let mut n = 0;
        let mut q = domain().head.load(Ordering::Acquire);
        // SAFETY: records are never freed.
        while let Some(r) = unsafe { q.as_ref() } {
            n += 1;
            q = r.next.load(Ordering::Relaxed);
        }
        n
    }

    #[test]
    fn a_borrowed_state_outlives_its_replacement_until_the_borrow_ends() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Published::new(State::new(0, &drops));
        let guard = cell.read();
        cell.store(State::new(1, &drops), Reclaim::Now);
        assert_eq!(drops.load(SeqCst), 0, "state 0 is borrowed");
        assert_eq!(cell.retired_len(), 1);
        guard.check();
        assert_eq!(guard.version, 0);
        drop(guard);
        cell.store(State::new(2, &drops), Reclaim::Now);
        assert_eq!(drops.load(SeqCst), 2, "states 0 and 1 are freed by the next reclamation");
        assert_eq!(cell.retired_len(), 0);
        drop(cell);
        assert_eq!(drops.load(SeqCst), 3);
    }

    #[test]
    fn nested_reads_take_a_spare_record_and_give_it_back() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Published::new(State::new(0, &drops));
        let before = {
            let outer = cell.read();
            let inner = cell.read();
            assert!(outer.own && !inner.own);
            cell.store(State::new(1, &drops), Reclaim::Now);
            let innermost = cell.read();
            assert_eq!((outer.version, inner.version, innermost.version), (0, 0, 1));
            records()
        };
        // The spare records are free again: more nested reads reuse them.
        for _ in 0..10 {
            let _a = cell.read();
            let _b = cell.read();
            let _c = cell.read();
        }
        assert_eq!(records(), before);
        cell.store(State::new(2, &drops), Reclaim::Now);
        assert_eq!(drops.load(SeqCst), 2);
    }

    #[test]
    fn lazy_reclamation_keeps_few_states() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Published::new(State::new(0, &drops));
        for v in 1..=100 {
            cell.store(State::new(v, &drops), Reclaim::Lazily);
            assert!(cell.retired_len() < LAZY_RECLAIM, "{} states retired", cell.retired_len());
        }
        cell.store(State::new(101, &drops), Reclaim::Now);
        assert_eq!(drops.load(SeqCst), 101);
        assert!(cell.load().version == 101);
    }

    #[test]
    fn exited_threads_give_their_records_back() {
        let cell = Arc::new(Published::new(7u64));
        let run = || {
            let cell = cell.clone();
            std::thread::spawn(move || assert_eq!(*cell.read(), 7)).join().unwrap();
        };
        run();
        let after_one = records();
        for _ in 0..20 {
            run();
        }
        // Other tests run in parallel and may add a few records of their own.
        assert!(records() <= after_one + 8, "{} records after 21 sequential threads", records());
    }

    /// Readers borrow and check states while writers publish and reclaim as fast as they can; a
    /// state freed under a reader fails its checksum (it is zeroed on drop), and every state
    /// is freed exactly once by the end.
    #[test]
    fn readers_never_see_a_freed_state() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(Published::new(State::new(0, &drops)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (cell, stop) = (cell.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut reads = 0u64;
                    while !stop.load(SeqCst) || reads < 1000 {
                        let s = cell.read();
                        s.check();
                        assert!(s.version >= last, "went back from {last} to {}", s.version);
                        last = s.version;
                        let snapshot = cell.load();
                        snapshot.check();
                        reads += 1;
                    }
                })
            })
            .collect();
        let mut version = 0;
        for round in 0..2000 {
            version += 1;
            let reclaim = if round % 3 == 0 { Reclaim::Now } else { Reclaim::Lazily };
            cell.store(State::new(version, &drops), reclaim);
        }
        stop.store(true, SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        cell.store(State::new(version + 1, &drops), Reclaim::Now);
        assert_eq!(cell.retired_len(), 0);
        assert_eq!(drops.load(SeqCst), version as usize + 1);
    }
}
