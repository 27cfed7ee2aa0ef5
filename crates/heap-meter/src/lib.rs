//! `heap-meter` is a counting global allocator: it forwards every call to the system allocator
//! and keeps the live and peak number of requested heap bytes, so benchmarks and the demo can
//! say what a data structure really costs (`cargo bench` memory tables, `cargo xtask demo`).
//!
//! It is not a profiler: it counts requested sizes (not allocator overhead) for the whole
//! process, so measure one thing at a time. Start with [`CountingAllocator`]:
//!
//! ```
//! use kstore_heap_meter::CountingAllocator;
//! // In a binary or bench: #[global_allocator] static A: CountingAllocator = CountingAllocator;
//! let before = kstore_heap_meter::live();
//! let v = vec![0u8; 1024];
//! // Without the global allocator installed (as in this doc test) nothing is counted.
//! assert!(kstore_heap_meter::live() >= before);
//! drop(v);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The counting allocator; install it with `#[global_allocator]`.
///
/// Cost: two relaxed atomic operations per allocation (one `fetch_add`, one `fetch_max`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAllocator;

fn grow(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// do not influence the allocation itself. Tested by `tests::counts_through_the_allocator`.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grow(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Live heap bytes requested through the counting allocator (0 when it is not installed).
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed).max(0) as usize
}

/// Highest live value since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed).max(0) as usize
}

/// Starts a new peak measurement at the current live value.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Whether the counting allocator is installed (some allocation has been counted).
pub fn installed() -> bool {
    PEAK.load(Ordering::Relaxed) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: CountingAllocator = CountingAllocator;

    #[test]
    fn counts_through_the_allocator() {
        assert!(installed());
        // Other test threads may allocate concurrently: measure a large allocation.
        let before = live();
        reset_peak();
        let v: Vec<u8> = vec![1; 10 << 20];
        assert!(live() >= before + (10 << 20) - (1 << 20));
        assert!(peak() >= live());
        let mut v = v;
        v.reserve_exact(30 << 20);
        assert!(peak() >= before + (40 << 20) - (1 << 20));
        assert_eq!(v[0], 1);
        drop(v);
        assert!(live() < before + (1 << 20));
    }
}
