//! Index key tuples.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::sync::Arc;

/// Escape for a `0x00` byte inside an element.
const ESCAPED_NUL: [u8; 2] = [0x00, 0xFF];

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
/// This type is the one owner of the encoding: [`TERMINATOR`](Self::TERMINATOR),
/// [`encode_with`](Self::encode_with), [`prefix_end`](Self::prefix_end),
/// [`element_bytes`](Self::element_bytes) and [`as_bytes`](Self::as_bytes) are what other
/// crates build on (memory-store's hash tables hash and compare keys with them, in its `key`
/// module), so no crate writes an encoding byte of its own.
///
/// # Memory usage
/// One `Arc<[u8]>`: 16 bytes inline, 16 bytes of reference counts plus the key bytes and two
/// bytes per element on the heap. Clones share the allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyTuple(Arc<[u8]>);

impl KeyTuple {
    /// The terminator written after every element (see [Encoding](KeyTuple#encoding)).
    ///
    /// ```
    /// use kstore_types::KeyTuple;
    /// assert_eq!(KeyTuple::new(["a"]).as_bytes(), [b'a', KeyTuple::TERMINATOR[0], KeyTuple::TERMINATOR[1]]);
    /// ```
    pub const TERMINATOR: [u8; 2] = [0x00, 0x01];

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
    /// fill a stack buffer: `|c| buf.extend_from_slice(c)`). The bytes are those of
    /// [`as_bytes`](Self::as_bytes) of the tuple of these elements, so maps keyed by `KeyTuple`
    /// can be queried without building one.
    ///
    /// ```
    /// use kstore_types::KeyTuple;
    /// let mut buf = Vec::new();
    /// KeyTuple::encode_with(&["default", "a\0b"], |chunk| buf.extend_from_slice(chunk));
    /// assert_eq!(buf, KeyTuple::new(["default", "a\0b"]).as_bytes());
    /// assert_eq!(buf, b"default\x00\x01a\x00\xFFb\x00\x01");
    /// ```
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
            sink(&Self::TERMINATOR);
        }
    }

    /// Turns the encoding of a tuple `P` (as from [`encode_with`](Self::encode_with)) into the
    /// exclusive upper bound of the encodings of the tuples that start with `P`, in place: the
    /// terminator's last byte `01` becomes `02`. Every extension of `P` sorts in
    /// `[P, prefix_end(P))`, every other tuple outside it (after a `00`, the encoding has only
    /// `01` or `FF`), so a prefix lookup in an ordered map of `KeyTuple`s is one range scan.
    /// The empty tuple is left empty.
    ///
    /// ```
    /// use kstore_types::KeyTuple;
    /// let prefix = KeyTuple::new(["default"]);
    /// let mut end = prefix.as_bytes().to_vec();
    /// KeyTuple::prefix_end(&mut end);
    /// let under = |k: &KeyTuple| prefix.as_bytes() <= k.as_bytes() && k.as_bytes() < &end[..];
    /// assert!(under(&KeyTuple::new(["default", "web"])));
    /// assert!(!under(&KeyTuple::new(["default-2", "web"])));
    /// assert!(!under(&KeyTuple::new(["default\0", "web"])));
    /// ```
    #[inline]
    pub fn prefix_end(encoded: &mut [u8]) {
        if let Some(last) = encoded.last_mut() {
            *last = Self::TERMINATOR[1] + 1;
        }
    }

    /// The encoded bytes of each element, without terminators.
    fn raw_elements(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || next_element(&mut rest))
    }

    /// Each element's UTF-8 bytes as given to [`KeyTuple::new`] (escapes undone; borrowed
    /// unless the element contains `\0`): the elements without a `String` each.
    ///
    /// ```
    /// use kstore_types::KeyTuple;
    /// let k = KeyTuple::new(["default", "a\0b"]);
    /// let bytes: Vec<Vec<u8>> = k.element_bytes().map(|e| e.into_owned()).collect();
    /// assert_eq!(bytes, [b"default".to_vec(), b"a\0b".to_vec()]);
    /// ```
    #[inline]
    pub fn element_bytes(&self) -> impl Iterator<Item = Cow<'_, [u8]>> + '_ {
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

/// Splits the first element off an encoded tuple: its encoded bytes without the terminator.
fn next_element<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.is_empty() {
        return None;
    }
    let mut i = 0;
    // A 0x00 is followed by 0xFF (escape) or 0x01 (terminator).
    while i + 1 < rest.len() && !(rest[i] == 0 && rest[i + 1] == KeyTuple::TERMINATOR[1]) {
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
        fn prefix_end_bounds_exactly_the_extensions(a in tuple(), b in prop::collection::vec(elem(), 1..4)) {
            let (ka, kb) = (KeyTuple::new(&a), KeyTuple::new(&b));
            let mut end = kb.as_bytes().to_vec();
            KeyTuple::prefix_end(&mut end);
            let inside = kb.as_bytes() <= ka.as_bytes() && ka.as_bytes() < &end[..];
            prop_assert_eq!(inside, a.starts_with(&b));
        }

        #[test]
        fn encode_with_and_element_bytes_agree_with_new(a in tuple()) {
            let k = KeyTuple::new(&a);
            let mut buf = Vec::new();
            KeyTuple::encode_with(&a, |chunk| buf.extend_from_slice(chunk));
            prop_assert_eq!(&buf[..], k.as_bytes());
            let bytes: Vec<Vec<u8>> = k.element_bytes().map(Cow::into_owned).collect();
            let expected: Vec<Vec<u8>> = a.iter().map(|e| e.as_bytes().to_vec()).collect();
            prop_assert_eq!(bytes, expected);
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
