//! Index key tuples.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// Escape for a `0x00` byte inside an element.
const ESCAPED_NUL: [u8; 2] = [0x00, 0xFF];
/// Terminator after every element.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// The terminator read as a little-endian `u16`.
const TERMINATOR_U16: u16 = u16::from_le_bytes(TERMINATOR);

/// An index key tuple such as `["default", "my-ingress"]`, stored as one shared allocation.
///
/// Keys are **tuples, never joined strings**: `["a/b", "c"]` and `["a", "b/c"]` are different
/// keys, and every element may be any UTF-8 string, including `""`, `/` and `\0`.
///
/// # Encoding
/// Internally every element is written as its UTF-8 bytes with `0x00` escaped as `0x00 0xFF`,
/// followed by the terminator `0x00 0x01`. The encoding has two properties the stores rely on:
///
/// * byte order equals tuple order (element-wise, a shorter tuple before its extensions), so an
///   ordered map of `KeyTuple`s is ordered like the tuples;
/// * the encoding of a tuple `P` is a byte prefix of the encoding of `K` exactly when `P` is an
///   element-wise prefix of `K`, which makes partial-key (prefix) lookups a range scan.
///
/// # Memory usage
/// One `Arc<[u8]>`: 16 bytes inline, 16 bytes of reference counts plus the key bytes and two
/// bytes per element on the heap. Clones share the allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyTuple(Arc<[u8]>);

impl KeyTuple {
    /// Builds a key tuple from its elements.
    ///
    /// ```
    /// use kstore_types::KeyTuple;
    /// let k = KeyTuple::new(["default", "web"]);
    /// assert_eq!(k.len(), 2);
    /// assert_ne!(KeyTuple::new(["a/b", "c"]), KeyTuple::new(["a", "b/c"]));
    /// assert!(k.starts_with(&KeyTuple::new(["default"])));
    /// ```
    pub fn new<I, S>(elements: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // Encoded on the stack when it fits, so the key costs one allocation (the `Arc`).
        let mut buf = EncodeBuf { stack: [0; 128], len: 0, heap: Vec::new() };
        for e in elements {
            KeyTuple::encode_with(&[e.as_ref()], |chunk| buf.push(chunk));
        }
        KeyTuple(Arc::from(buf.bytes()))
    }

    /// Encodes `elements`, handing the encoded bytes to `sink` in chunks (the fastest way to
    /// fill a stack buffer: `|c| buf.extend_from_slice(c)`).
    #[inline]
    pub fn encode_with<S: AsRef<str>>(elements: &[S], mut sink: impl FnMut(&[u8])) {
        for e in elements {
            let bytes = e.as_ref().as_bytes();
            let mut rest = bytes;
            while let Some(i) = rest.iter().position(|&b| b == 0) {
                sink(&rest[..i]);
                sink(&ESCAPED_NUL);
                rest = &rest[i + 1..];
            }
            sink(rest);
            sink(&TERMINATOR);
        }
    }

    /// Hashes this tuple with `build`, element by element. Equal to
    /// [`KeyTuple::hash_elements`] of the same elements, so maps can be probed with `&[&str]`
    /// without building a `KeyTuple`.
    pub fn hash_with(&self, build: &impl BuildHasher) -> u64 {
        hash_each(build, self.raw_elements())
    }

    /// Hashes this tuple's elements as they are, without escaping: the hash of
    /// [`PlainKeys::unchecked`] and [`InlineKey::hash_with`] of the same elements. Equal to
    /// [`KeyTuple::hash_with`] when no element contains `\0`. For hash tables that hash every
    /// key this way, so that lookups need no scan of their elements for `\0`.
    pub fn hash_raw(&self, build: &impl BuildHasher) -> u64 {
        hash_each(build, self.unescaped_elements())
    }

    /// Hashes a tuple given as elements; see [`KeyTuple::hash_with`].
    #[inline]
    pub fn hash_elements<S: AsRef<str>>(build: &impl BuildHasher, elements: &[S]) -> u64 {
        hash_each(build, elements.iter().map(|e| encoded_element(e.as_ref())))
    }

    /// True when this tuple has exactly these elements (without building a `KeyTuple`).
    #[inline]
    pub fn eq_elements<S: AsRef<str>>(&self, elements: &[S]) -> bool {
        let mut rest: &[u8] = &self.0;
        for e in elements {
            let bytes = e.as_ref().as_bytes();
            // Elements without `\0` are stored as they are; the others are escaped first.
            let raw = if has_nul(bytes) { encoded_element(e.as_ref()) } else { Cow::Borrowed(bytes) };
            let n = raw.len();
            let Some(element) = rest.get(..n + 2) else {
                return false;
            };
            let (stored, end) = element.split_at(n);
            if !bytes_eq(stored, &raw) || u16::from_le_bytes([end[0], end[1]]) != TERMINATOR_U16 {
                return false;
            }
            rest = &rest[n + 2..];
        }
        rest.is_empty()
    }

    /// True when this tuple has exactly the elements of `plain`, checked or not
    /// ([`PlainKeys::unchecked`]): the same answer as [`KeyTuple::eq_elements`].
    #[inline]
    pub fn eq_plain(&self, plain: &PlainKeys<'_, impl AsRef<str>>) -> bool {
        self.eq_elements(plain.0)
    }

    /// The encoded bytes of each element, without terminators.
    fn raw_elements(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || next_element(&mut rest))
    }

    /// Each element's bytes as given to [`KeyTuple::new`] (escapes undone; borrowed unless the
    /// element contains `\0`).
    fn unescaped_elements(&self) -> impl Iterator<Item = Cow<'_, [u8]>> + '_ {
        self.raw_elements().map(unescape)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elements().count()
    }

    /// True for the empty tuple (no elements).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements, decoded.
    pub fn elements(&self) -> KeyElements<'_> {
        KeyElements { rest: &self.0 }
    }

    /// The elements as owned strings (for error messages and debugging).
    pub fn to_vec(&self) -> Vec<String> {
        self.elements().collect()
    }

    /// True when `prefix` is an element-wise prefix of `self` (every tuple starts with itself
    /// and with the empty tuple).
    pub fn starts_with(&self, prefix: &KeyTuple) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The encoded bytes (see the type docs). Maps keyed by `KeyTuple` can be queried with
    /// these bytes through [`Borrow<[u8]>`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Heap bytes owned by this key (shared between clones).
    pub fn heap_size(&self) -> usize {
        self.0.len() + 2 * std::mem::size_of::<usize>()
    }
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

/// One element's encoded bytes (borrowed unless it contains `\0`).
#[inline]
fn encoded_element(e: &str) -> Cow<'_, [u8]> {
    let bytes = e.as_bytes();
    if !bytes.contains(&0) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 2);
    for &b in bytes {
        if b == 0 {
            out.extend_from_slice(&ESCAPED_NUL);
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// An encoding buffer on the stack that moves to the heap once a key outgrows it.
struct EncodeBuf {
    stack: [u8; 128],
    len: usize,
    heap: Vec<u8>,
}

impl EncodeBuf {
    fn push(&mut self, chunk: &[u8]) {
        if self.heap.is_empty() {
            if let Some(dst) = self.stack.get_mut(self.len..self.len + chunk.len()) {
                dst.copy_from_slice(chunk);
                self.len += chunk.len();
                return;
            }
            self.heap.extend_from_slice(&self.stack[..self.len]);
        }
        self.heap.extend_from_slice(chunk);
    }

    fn bytes(&self) -> &[u8] {
        if self.heap.is_empty() { &self.stack[..self.len] } else { &self.heap }
    }
}

impl Borrow<[u8]> for KeyTuple {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl<S: AsRef<str>> From<&[S]> for KeyTuple {
    fn from(v: &[S]) -> Self {
        KeyTuple::new(v)
    }
}

impl<S: AsRef<str>, const N: usize> From<[S; N]> for KeyTuple {
    fn from(v: [S; N]) -> Self {
        KeyTuple::new(v)
    }
}

impl From<Vec<String>> for KeyTuple {
    fn from(v: Vec<String>) -> Self {
        KeyTuple::new(v)
    }
}

impl fmt::Debug for KeyTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.elements()).finish()
    }
}

impl fmt::Display for KeyTuple {
    /// Displays as a JSON-like list: `["default", "web"]`, so `/` inside elements stays visible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Lookup elements checked once to contain no `\0`, so hashing and comparing them needs no
/// escaping (the fast path of allocation-free lookups). Build with [`PlainKeys::new`].
#[derive(Clone, Copy, Debug)]
pub struct PlainKeys<'a, S>(&'a [S]);

impl<'a, S: AsRef<str>> PlainKeys<'a, S> {
    /// `None` when some element contains `\0` (use [`KeyTuple::new`] for those).
    #[inline]
    pub fn new(elements: &'a [S]) -> Option<Self> {
        elements.iter().all(|e| !has_nul(e.as_ref().as_bytes())).then_some(PlainKeys(elements))
    }

    /// The elements, not checked for `\0`. Their [`hash_with`](Self::hash_with) is then the
    /// raw hash of [`KeyTuple::hash_raw`], which needs no check; compare them with
    /// [`InlineKey::eq_elements`], [`KeyTuple::eq_elements`] or [`KeyTuple::eq_plain`], which
    /// are exact for every string.
    #[inline(always)]
    pub fn unchecked(elements: &'a [S]) -> Self {
        PlainKeys(elements)
    }

    /// Same value as [`KeyTuple::hash_with`] of the same elements (checked), and as
    /// [`KeyTuple::hash_raw`] of the same elements (either way).
    #[inline(always)]
    pub fn hash_with(&self, build: &impl BuildHasher) -> u64 {
        hash_each(build, self.0.iter().map(|e| e.as_ref().as_bytes()))
    }
}

/// Splits the first element off an encoded tuple: its encoded bytes without the terminator.
fn next_element<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.is_empty() {
        return None;
    }
    let mut i = 0;
    // A 0x00 is followed by 0xFF (escape) or 0x01 (terminator).
    while i + 1 < rest.len() && !(rest[i] == 0 && rest[i + 1] == TERMINATOR[1]) {
        i += if rest[i] == 0 { 2 } else { 1 };
    }
    let raw = &rest[..i.min(rest.len())];
    *rest = &rest[(i + 2).min(rest.len())..];
    Some(raw)
}

/// One element's encoded bytes with the escapes undone (`00 FF` back to `00`); borrowed unless
/// the element contains `\0`.
fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&0) {
        return Cow::Borrowed(raw);
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        decoded.push(raw[i]);
        // A 0x00 inside an element is always the escape 0x00 0xFF.
        i += if raw[i] == 0 { 2 } else { 1 };
    }
    Cow::Owned(decoded)
}

/// The raw hash of a tuple's elements given as bytes: each element's length, then its bytes.
/// The one hashing rule of every key form (`KeyTuple`, `PlainKeys`, `InlineKey`), so that they
/// agree.
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

/// A short key tuple held inline, for hash tables that compare lookups with their entries
/// without following a pointer (the separate allocation of a [`KeyTuple`] cost a cache miss
/// per exact get).
///
/// Every element is stored as a one-byte length and its bytes as they are (no escaping), up to
/// [`InlineKey::CAPACITY`] bytes in all, so comparing with elements is exact for every string,
/// `\0` included, and needs no scan. Tuples that do not fit have no inline form: keep their
/// `KeyTuple`. Order is not preserved (use `KeyTuple` for ordered maps).
///
/// ```
/// use kstore_types::{InlineKey, KeyTuple, PlainKeys};
/// let hasher = std::hash::RandomState::new();
/// let key = InlineKey::new(&["default", "web"]).unwrap();
/// assert!(key.eq_elements(&["default", "web"]));
/// assert!(!key.eq_elements(&["default/web"]));
/// assert_eq!(Some(key), InlineKey::from_tuple(&KeyTuple::new(["default", "web"])));
/// assert_eq!(key.hash_with(&hasher), PlainKeys::unchecked(&["default", "web"]).hash_with(&hasher));
/// assert!(InlineKey::new(&["a-namespace", "an-object-name-longer-than-thirty-two-bytes"]).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineKey {
    len: u8,
    bytes: [u8; InlineKey::CAPACITY],
}

impl InlineKey {
    /// Bytes available for the elements and their one-byte lengths: room for most
    /// `[namespace, name]` tuples. An `InlineKey` is 47 bytes; with a 16-byte `KeyTuple` beside
    /// it in an enum, 48, and with a bucket pointer, a 64-byte hash-table entry.
    pub const CAPACITY: usize = 46;

    /// The inline form of these elements, or `None` when they take more than
    /// [`CAPACITY`](Self::CAPACITY) bytes.
    pub fn new<S: AsRef<str>>(elements: &[S]) -> Option<Self> {
        let mut key = InlineKey { len: 0, bytes: [0; Self::CAPACITY] };
        for e in elements {
            key.push(e.as_ref().as_bytes())?;
        }
        Some(key)
    }

    /// The inline form of a key tuple, or `None` when it does not fit.
    pub fn from_tuple(tuple: &KeyTuple) -> Option<Self> {
        let mut key = InlineKey { len: 0, bytes: [0; Self::CAPACITY] };
        for element in tuple.unescaped_elements() {
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
    pub fn eq_elements<S: AsRef<str>>(&self, elements: &[S]) -> bool {
        let stored = &self.bytes[..usize::from(self.len)];
        let mut at = 0;
        for e in elements {
            let raw = e.as_ref().as_bytes();
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

    /// The raw hash of the elements: [`KeyTuple::hash_raw`] of the same tuple.
    pub fn hash_with(&self, build: &impl BuildHasher) -> u64 {
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

/// Iterator over the decoded elements of a [`KeyTuple`].
#[derive(Clone, Debug)]
pub struct KeyElements<'a> {
    rest: &'a [u8],
}

impl Iterator for KeyElements<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let element = unescape(next_element(&mut self.rest)?).into_owned();
        // Elements were encoded from `&str`, so the bytes are valid UTF-8.
        Some(String::from_utf8(element).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tuples_are_not_joined_strings() {
        assert_ne!(KeyTuple::new(["a/b", "c"]), KeyTuple::new(["a", "b/c"]));
        assert_ne!(KeyTuple::new(["ab", ""]), KeyTuple::new(["a", "b"]));
        assert_ne!(KeyTuple::new([""]), KeyTuple::new(["", ""]));
        assert_ne!(KeyTuple::new(["a\0b"]), KeyTuple::new(["a", "b"]));
    }

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
    fn round_trip_special_elements() {
        let v = vec!["", "a/b", "\0", "x\0\u{1}y", "ünï", "\u{10FFFF}"];
        let k = KeyTuple::new(&v);
        assert_eq!(k.to_vec(), v);
        assert_eq!(k.len(), 6);
        assert!(KeyTuple::new::<_, &str>([]).is_empty());
        assert_eq!(format!("{k:?}"), r#"["", "a/b", "\0", "x\0\u{1}y", "ünï", "\u{10ffff}"]"#);
    }

    fn elem() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "a", "b", "a/b", "\0", "a\0", "\u{1}", "ä", "ab"]).prop_map(String::from)
    }

    fn tuple() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(elem(), 0..4)
    }

    proptest! {
        #[test]
        fn order_matches_tuple_order(a in tuple(), b in tuple()) {
            prop_assert_eq!(KeyTuple::new(&a).cmp(&KeyTuple::new(&b)), a.cmp(&b));
            prop_assert_eq!(KeyTuple::new(&a) == KeyTuple::new(&b), a == b);
        }

        #[test]
        fn prefix_matches_tuple_prefix(a in tuple(), b in tuple()) {
            prop_assert_eq!(KeyTuple::new(&a).starts_with(&KeyTuple::new(&b)), a.starts_with(&b));
        }

        #[test]
        fn element_hashing_and_equality_agree_with_the_encoding(a in tuple(), b in tuple()) {
            let state = std::collections::hash_map::RandomState::new();
            let (ka, kb) = (KeyTuple::new(&a), KeyTuple::new(&b));
            prop_assert_eq!(ka.hash_with(&state), KeyTuple::hash_elements(&state, &a));
            prop_assert_eq!(ka.eq_elements(&b), a == b);
            if let Some(plain) = PlainKeys::new(&b) {
                prop_assert_eq!(plain.hash_with(&state), KeyTuple::hash_elements(&state, &b));
                prop_assert_eq!(ka.eq_plain(&plain), a == b);
            } else {
                prop_assert!(b.iter().any(|e| e.contains('\0')));
            }
            if a == b {
                prop_assert_eq!(ka.hash_with(&state), kb.hash_with(&state));
            }
        }

        #[test]
        fn inline_keys_compare_and_hash_like_tuples(a in tuple(), b in tuple()) {
            let state = std::collections::hash_map::RandomState::new();
            let fits = a.iter().map(|e| e.len() + 1).sum::<usize>() <= InlineKey::CAPACITY;
            let inline = InlineKey::new(&a);
            prop_assert_eq!(inline.is_some(), fits);
            prop_assert_eq!(InlineKey::from_tuple(&KeyTuple::new(&a)), inline);
            let ka = KeyTuple::new(&a);
            // The raw hash: of the elements as they are, whatever they contain.
            prop_assert_eq!(ka.hash_raw(&state), PlainKeys::unchecked(&a).hash_with(&state));
            if !a.iter().any(|e| e.contains('\0')) {
                prop_assert_eq!(ka.hash_raw(&state), ka.hash_with(&state));
            }
            // `eq_plain` is exact for unchecked elements too (compared raw against the escaped
            // encoding, `["a\0\u{1}"]` would match `["a", ""]`).
            prop_assert_eq!(ka.eq_plain(&PlainKeys::unchecked(&b)), a == b);
            if let Some(inline) = inline {
                prop_assert_eq!(inline.hash_with(&state), ka.hash_raw(&state));
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
        fn long_plain_keys_compare_like_tuples(
            a in prop::collection::vec("[a-z0-9\\-]{0,30}", 1..3),
            b in prop::collection::vec("[a-z0-9\\-]{0,30}", 1..3),
        ) {
            let plain = PlainKeys::new(&b).unwrap();
            prop_assert_eq!(KeyTuple::new(&a).eq_plain(&plain), a == b);
            prop_assert!(KeyTuple::new(&b).eq_plain(&plain));
        }

        #[test]
        fn decode_round_trips(a in prop::collection::vec(any::<String>(), 0..4)) {
            prop_assert_eq!(KeyTuple::new(&a).to_vec(), a);
        }

        /// Keys shorter and longer than `new`'s 128-byte stack buffer (and crossing it inside
        /// an escaped `\0`) encode exactly as `encode_with` into a `Vec`.
        #[test]
        fn stack_and_heap_encodings_agree(a in prop::collection::vec("[a-z\\x00]{0,90}", 0..4)) {
            let mut want = Vec::new();
            KeyTuple::encode_with(&a, |c| want.extend_from_slice(c));
            let got = KeyTuple::new(&a);
            prop_assert_eq!(got.as_bytes(), &want[..]);
        }
    }
}
