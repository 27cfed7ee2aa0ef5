//! Stack growth for the recursive walks over values, which nest up to
//! [`MAX_DEPTH`](crate::MAX_DEPTH) levels: every container level calls [`guard`], which runs
//! the rest of the walk on a fresh heap-allocated stack segment when less than [`RED_ZONE`]
//! bytes are left (stacker's `maybe_grow`; a thread-local read and a comparison otherwise).

/// Stack that must be left before one more level (and, while decoding, one chunk of
/// serde_json's recursion — see `encode::CHUNK_DEPTH`) runs on the current segment.
const RED_ZONE: usize = 256 * 1024;

/// Size of each new segment.
const SEGMENT: usize = 4 * 1024 * 1024;

/// Runs `f`, on a new stack segment when the current one is nearly used up.
#[inline]
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
