//! Index key tuples.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Escape for a `0x00` byte inside an element.
const ESCAPED_NUL: [u8; 2] = [0x00, 0xFF];
/// Terminator after every element.
const TERMINATOR: [u8; 2] = [0x00, 0x01];

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
    /// use store_types::KeyTuple;
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
        let mut buf = Vec::new();
        for e in elements {
            encode_element(&mut buf, e.as_ref());
        }
        KeyTuple(Arc::from(buf))
    }

    /// Encodes `elements` into `buf` (cleared first) without allocating a `KeyTuple`; used for
    /// allocation-free lookups with [`KeyTuple::as_bytes`]-keyed maps.
    pub fn encode_into<S: AsRef<str>>(buf: &mut impl Extend<u8>, elements: &[S]) {
        for e in elements {
            let e = e.as_ref();
            let bytes = e.as_bytes();
            if !bytes.contains(&0) {
                buf.extend(bytes.iter().copied());
            } else {
                for &b in bytes {
                    if b == 0 {
                        buf.extend(ESCAPED_NUL);
                    } else {
                        buf.extend([b]);
                    }
                }
            }
            buf.extend(TERMINATOR);
        }
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

fn encode_element(buf: &mut Vec<u8>, e: &str) {
    KeyTuple::encode_into(buf, &[e]);
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

/// Iterator over the decoded elements of a [`KeyTuple`].
#[derive(Clone, Debug)]
pub struct KeyElements<'a> {
    rest: &'a [u8],
}

impl Iterator for KeyElements<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.rest.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.rest.len() {
            let b = self.rest[i];
            if b == 0 {
                // Encoding invariant: a 0x00 is always followed by 0xFF (escape) or 0x01 (end).
                let next = self.rest.get(i + 1).copied();
                i += 2;
                if next == Some(TERMINATOR[1]) {
                    break;
                }
                out.push(0);
            } else {
                out.push(b);
                i += 1;
            }
        }
        self.rest = &self.rest[i.min(self.rest.len())..];
        // Elements were encoded from `&str`, so the bytes are valid UTF-8.
        Some(
            String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
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
        assert_eq!(
            format!("{k:?}"),
            r#"["", "a/b", "\0", "x\0\u{1}y", "ünï", "\u{10ffff}"]"#
        );
    }

    fn elem() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "a", "b", "a/b", "\0", "a\0", "\u{1}", "ä", "ab"])
            .prop_map(String::from)
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
        fn decode_round_trips(a in prop::collection::vec(any::<String>(), 0..4)) {
            prop_assert_eq!(KeyTuple::new(&a).to_vec(), a);
        }
    }
}
