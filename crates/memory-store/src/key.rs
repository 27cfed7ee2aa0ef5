//! Key tuples in the forms the indexes use: encoded lookup keys on the stack, raw hashing,
//! element equality and [`InlineKey`], the short tuple held inside a hash-table entry.
//!
//! store-types' [`KeyTuple`] owns the *encoding* (element bytes with `0x00` escaped as
//! `0x00 0xFF`, then the terminator `0x00 0x01`; byte order is tuple order, byte prefix is tuple
//! prefix): the `Store` trait and every crate that builds keys use it, and it is what the
//! ordered maps here are keyed by. This module owns what only memory-store's hash tables need,
//! built on `KeyTuple`'s public surface alone ([`KeyTuple::encode_with`],
//! [`KeyTuple::prefix_end`], [`KeyTuple::element_bytes`], [`KeyTuple::as_bytes`] and
//! [`KeyTuple::TERMINATOR`]), so no byte of the encoding is written down twice.
//!
//! # Raw hashing
//! Every hash-table key is hashed *raw*: each element's length, then its bytes as given (no
//! escaping), whichever form holds it ([`hash_elements`] for a lookup's `&[&str]`,
//! [`hash_tuple`] for a `KeyTuple`, [`InlineKey::hash_with`]). A lookup therefore hashes its
//! elements without scanning them for `\0` first; [`eq_elements`] and
//! [`InlineKey::eq_elements`] are exact for every string, `\0` included.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use smallvec::SmallVec;
use store_types::KeyTuple;

/// Stack buffer for encoding lookup keys without allocating.
pub(crate) type KeyBuf = SmallVec<[u8; 128]>;

/// Encodes a (prefix) key tuple into a stack buffer: the bytes of its [`KeyTuple::as_bytes`].
pub(crate) fn encode(keys: &[&str]) -> KeyBuf {
    let mut buf = KeyBuf::new();
    KeyTuple::encode_with(keys, |chunk| buf.extend_from_slice(chunk));
    buf
}

/// The exclusive upper bound of the encoded tuples that start with the encoded `prefix`
/// ([`KeyTuple::prefix_end`]): an ordered map's range `prefix..prefix_end(prefix)` holds exactly
/// the tuples under `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> KeyBuf {
    let mut end = KeyBuf::from_slice(prefix);
    KeyTuple::prefix_end(&mut end);
    end
}

/// The raw hash of a tuple's elements given as bytes: each element's length, then its bytes.
/// The one hashing rule of every key form, so that they agree.
#[inline(always)]
fn hash_each<B: AsRef<[u8]>>(build: &impl BuildHasher, elements: impl IntoIterator<Item = B>) -> u64 {
    let mut h = build.build_hasher();
    for e in elements {
        let e = e.as_ref();
        h.write_usize(e.len());
        h.write(e);
    }
    h.finish()
}

/// The raw hash of a tuple given as its elements (a lookup's keys).
#[inline(always)]
pub(crate) fn hash_elements<S: AsRef<str>>(build: &impl BuildHasher, elements: &[S]) -> u64 {
    // Two elements (`[namespace, name]`, most stores) unrolled.
    if let [a, b] = elements {
        return hash_each(build, [a.as_ref().as_bytes(), b.as_ref().as_bytes()]);
    }
    hash_each(build, elements.iter().map(|e| e.as_ref().as_bytes()))
}

/// The raw hash of a key tuple: [`hash_elements`] of its elements.
#[inline]
pub(crate) fn hash_tuple(build: &impl BuildHasher, tuple: &KeyTuple) -> u64 {
    hash_each(build, tuple.element_bytes())
}

/// True when `tuple` has exactly these elements (without building a `KeyTuple`).
///
/// Walks the encoding in place: an element without `\0` is stored as it is, so it matches when
/// its bytes are followed by the terminator. An element with `\0` (rare) sends the comparison
/// to the decoded elements: compared raw against the escaped encoding, `["a\0\u{1}"]` would
/// match `["a", ""]`.
#[inline]
pub(crate) fn eq_elements<S: AsRef<str>>(tuple: &KeyTuple, elements: &[S]) -> bool {
    const TERMINATOR: u16 = u16::from_le_bytes(KeyTuple::TERMINATOR);
    let mut rest = tuple.as_bytes();
    for e in elements {
        let raw = e.as_ref().as_bytes();
        if has_nul(raw) {
            return eq_decoded(tuple, elements);
        }
        let n = raw.len();
        let Some(element) = rest.get(..n + 2) else {
            return false;
        };
        let (stored, end) = element.split_at(n);
        if !bytes_eq(stored, raw) || u16::from_le_bytes([end[0], end[1]]) != TERMINATOR {
            return false;
        }
        rest = &rest[n + 2..];
    }
    rest.is_empty()
}

/// [`eq_elements`] by decoding the tuple's elements.
#[cold]
fn eq_decoded<S: AsRef<str>>(tuple: &KeyTuple, elements: &[S]) -> bool {
    let mut stored = tuple.element_bytes();
    elements.iter().all(|e| stored.next().is_some_and(|s| *s == *e.as_ref().as_bytes())) && stored.next().is_none()
}

/// Eight bytes at `i` as a word (callers guarantee `i + 8 <= s.len()`).
#[inline(always)]
fn word(s: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Four bytes at `i` (callers guarantee `i + 4 <= s.len()`).
#[inline(always)]
fn half_word(s: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[i..i + 4]);
    u32::from_le_bytes(w)
}

/// `a == b`, word by word and inlined: lookup keys are short, and a call to `memcmp` per key
/// element cost more than the comparison itself (measured: ~15% of an exact get).
#[inline(always)]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // No loop up to 32 bytes (most names): overlapping words cover every length without a
    // tail loop. A loop here is vectorised, and its set-up measured as several nanoseconds of
    // an exact get.
    if n > 32 {
        a == b
    } else if n > 16 {
        ((word(a, 0) ^ word(b, 0))
            | (word(a, 8) ^ word(b, 8))
            | (word(a, n - 16) ^ word(b, n - 16))
            | (word(a, n - 8) ^ word(b, n - 8)))
            == 0
    } else if n >= 8 {
        (word(a, 0) ^ word(b, 0)) | (word(a, n - 8) ^ word(b, n - 8)) == 0
    } else if n >= 4 {
        (half_word(a, 0) ^ half_word(b, 0)) | (half_word(a, n - 4) ^ half_word(b, n - 4)) == 0
    } else {
        // Three bytes at most: the first, middle and last are all of them.
        n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1])
    }
}

/// True when `s` contains a `0x00` byte; word at a time (the classic "has zero byte" test:
/// `(v - 0x01…) & !v & 0x80…` is non-zero exactly when a byte of `v` is zero).
#[inline(always)]
fn has_nul(s: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI != 0;
    let n = s.len();
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if zero(word(s, i)) {
                return true;
            }
            i += 8;
        }
        i < n && zero(word(s, n - 8))
    } else if n >= 4 {
        let zero32 = |v: u32| v.wrapping_sub(LO as u32) & !v & HI as u32 != 0;
        zero32(half_word(s, 0)) || zero32(half_word(s, n - 4))
    } else {
        s.contains(&0)
    }
}

/// A short key tuple held inline, for hash tables that compare lookups with their entries
/// without following a pointer (the separate allocation of a [`KeyTuple`] cost a cache miss
/// per exact get).
///
/// Every element is stored as a one-byte length and its bytes as they are (no escaping), up to
/// [`InlineKey::CAPACITY`] bytes in all, so comparing with elements is exact for every string,
/// `\0` included, and needs no scan. Tuples that do not fit have no inline form: keep their
/// `KeyTuple`. Order is not preserved (the ordered maps use `KeyTuple`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineKey {
    len: u8,
    bytes: [u8; InlineKey::CAPACITY],
}

impl InlineKey {
    /// Bytes available for the elements and their one-byte lengths: room for most
    /// `[namespace, name]` tuples. An `InlineKey` is 47 bytes; with a 16-byte `KeyTuple` beside
    /// it in an enum, 48, and with a bucket pointer, a 64-byte hash-table entry
    /// (`exact::EntryKey`).
    pub(crate) const CAPACITY: usize = 46;

    /// The inline form of these elements, or `None` when they take more than
    /// [`CAPACITY`](Self::CAPACITY) bytes.
    pub(crate) fn new<S: AsRef<str>>(elements: &[S]) -> Option<Self> {
        let mut key = InlineKey { len: 0, bytes: [0; Self::CAPACITY] };
        for e in elements {
            key.push(e.as_ref().as_bytes())?;
        }
        Some(key)
    }

    /// The inline form of a key tuple, or `None` when it does not fit.
    pub(crate) fn from_tuple(tuple: &KeyTuple) -> Option<Self> {
        let mut key = InlineKey { len: 0, bytes: [0; Self::CAPACITY] };
        for element in tuple.element_bytes() {
            key.push(&element)?;
        }
        Some(key)
    }

    fn push(&mut self, element: &[u8]) -> Option<()> {
        let at = usize::from(self.len);
        let n = u8::try_from(element.len()).ok()?;
        let end = at + 1 + element.len();
        self.bytes.get_mut(at..end)?.split_first_mut().map(|(len, rest)| {
            *len = n;
            rest.copy_from_slice(element);
        })?;
        self.len = u8::try_from(end).ok()?;
        Some(())
    }

    /// True when this is the tuple of exactly these elements.
    #[inline(always)]
    pub(crate) fn eq_elements<S: AsRef<str>>(&self, elements: &[S]) -> bool {
        // Two elements (`[namespace, name]`, most stores) unrolled.
        if let [a, b] = elements {
            return self.eq_each([a.as_ref(), b.as_ref()]);
        }
        self.eq_each(elements.iter().map(AsRef::as_ref))
    }

    #[inline(always)]
    fn eq_each<'e>(&self, elements: impl IntoIterator<Item = &'e str>) -> bool {
        let stored = &self.bytes[..usize::from(self.len)];
        let mut at = 0;
        for e in elements {
            let raw = e.as_bytes();
            let n = raw.len();
            let Some((&len, rest)) = stored.get(at..).and_then(<[u8]>::split_first) else {
                return false;
            };
            if usize::from(len) != n || rest.len() < n || !bytes_eq(&rest[..n], raw) {
                return false;
            }
            at += 1 + n;
        }
        at == stored.len()
    }

    /// The raw hash of the elements: [`hash_tuple`] of the same tuple.
    pub(crate) fn hash_with(&self, build: &impl BuildHasher) -> u64 {
        hash_each(build, self.elements())
    }

    /// The elements' bytes, in order.
    fn elements(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest = &self.bytes[..usize::from(self.len)];
        std::iter::from_fn(move || {
            let (&n, tail) = rest.split_first()?;
            let (element, next) = tail.split_at(usize::from(n).min(tail.len()));
            rest = next;
            Some(element)
        })
    }
}

impl fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.elements().map(String::from_utf8_lossy)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inline_key_capacity_and_long_elements() {
        let exactly = "x".repeat(InlineKey::CAPACITY - 1);
        assert!(InlineKey::new(&[exactly.as_str()]).is_some());
        assert!(InlineKey::new(&[exactly.as_str(), ""]).is_none());
        assert!(InlineKey::new(&["x".repeat(300)]).is_none());
        assert!(InlineKey::new::<&str>(&[]).is_some_and(|k| k.eq_elements::<&str>(&[])));
        // Length prefixes keep tuples apart that joined strings would not.
        let k = InlineKey::new(&["a", "b"]).unwrap();
        assert!(!k.eq_elements(&["ab"]) && !k.eq_elements(&["a", "b", ""]) && !k.eq_elements(&["a"]));
        let nul = InlineKey::new(&["a\0\u{1}"]).unwrap();
        assert!(nul.eq_elements(&["a\0\u{1}"]) && !nul.eq_elements(&["a", ""]));
    }

    #[test]
    fn lookup_buffers_are_the_encoding() {
        let prefix = encode(&["default"]);
        assert_eq!(&prefix[..], KeyTuple::new(["default"]).as_bytes());
        let end = prefix_end(&prefix);
        let inside = |k: &KeyTuple| &prefix[..] <= k.as_bytes() && k.as_bytes() < &end[..];
        assert!(inside(&KeyTuple::new(["default", "web"])));
        assert!(!inside(&KeyTuple::new(["default-2", "web"])));
    }

    /// Key tuples around the inline capacity (some fit, some do not), with the elements that
    /// raw hashing and escaping could confuse (`\0`, `\0\u{1}`: an escape and a terminator).
    fn tuple() -> impl Strategy<Value = Vec<String>> {
        let long = "n".repeat(InlineKey::CAPACITY / 2);
        let element = prop::sample::select(vec![
            String::new(),
            "a".into(),
            "ab".into(),
            "\0".into(),
            "a\0\u{1}".into(),
            "\u{1}".into(),
            "ä".into(),
            long.clone(),
            format!("{long}\0"),
        ]);
        prop::collection::vec(element, 0..4)
    }

    proptest! {
        #[test]
        fn inline_keys_compare_and_hash_like_tuples(a in tuple(), b in tuple()) {
            let state = std::collections::hash_map::RandomState::new();
            let fits = a.iter().map(|e| e.len() + 1).sum::<usize>() <= InlineKey::CAPACITY;
            let inline = InlineKey::new(&a);
            prop_assert_eq!(inline.is_some(), fits);
            let ka = KeyTuple::new(&a);
            prop_assert_eq!(InlineKey::from_tuple(&ka), inline);
            // The raw hash: of the elements as they are, whatever they contain.
            prop_assert_eq!(hash_tuple(&state, &ka), hash_elements(&state, &a));
            if a == b {
                prop_assert_eq!(hash_tuple(&state, &ka), hash_tuple(&state, &KeyTuple::new(&b)));
            }
            // Exact for elements with `\0` too (compared raw against the escaped encoding,
            // `["a\0\u{1}"]` would match `["a", ""]`).
            prop_assert_eq!(eq_elements(&ka, &b), a == b);
            if let Some(inline) = inline {
                prop_assert_eq!(inline.hash_with(&state), hash_tuple(&state, &ka));
                prop_assert_eq!(inline.eq_elements(&b), a == b);
                prop_assert!(inline.eq_elements(&a));
                prop_assert_eq!(Some(inline) == InlineKey::new(&b), a == b);
                prop_assert_eq!(format!("{inline:?}"), format!("{a:?}"));
            }
        }

        #[test]
        fn inline_keys_of_random_strings(
            a in prop::collection::vec(".{0,12}", 0..4),
            b in prop::collection::vec(".{0,12}", 0..4),
        ) {
            prop_assert_eq!(eq_elements(&KeyTuple::new(&a), &b), a == b);
            if let Some(inline) = InlineKey::new(&a) {
                prop_assert_eq!(inline.eq_elements(&b), a == b);
                prop_assert_eq!(InlineKey::from_tuple(&KeyTuple::new(&a)), Some(inline));
            } else {
                prop_assert!(a.iter().map(|e| e.len() + 1).sum::<usize>() > InlineKey::CAPACITY);
            }
        }

        #[test]
        fn word_helpers_agree_with_the_naive_ones(
            a in prop::collection::vec(any::<u8>(), 0..40),
            flip in any::<prop::sample::Index>(),
            nul in any::<prop::sample::Index>(),
        ) {
            prop_assert!(bytes_eq(&a, &a));
            prop_assert_eq!(has_nul(&a), a.contains(&0));
            if !a.is_empty() {
                // One byte differs, anywhere (the word paths cover lengths 4..8, 8..16, 16..).
                let mut b = a.clone();
                let i = flip.index(b.len());
                b[i] ^= 0x40;
                prop_assert!(!bytes_eq(&a, &b));
                prop_assert!(!bytes_eq(&a, &a[..a.len() - 1]));
                let mut c = a.iter().map(|&x| x | 1).collect::<Vec<_>>();
                prop_assert!(!has_nul(&c));
                let j = nul.index(c.len());
                c[j] = 0;
                prop_assert!(has_nul(&c));
            }
        }

        #[test]
        fn long_keys_compare_like_tuples(
            a in prop::collection::vec("[a-z0-9\\-]{0,30}", 1..3),
            b in prop::collection::vec("[a-z0-9\\-]{0,30}", 1..3),
        ) {
            prop_assert_eq!(eq_elements(&KeyTuple::new(&a), &b), a == b);
            prop_assert!(eq_elements(&KeyTuple::new(&b), &b));
        }
    }
}
