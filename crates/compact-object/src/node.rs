//! Borrowed, zero-copy views into an encoded object.

use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};

use crate::encode::{
    ARRAY, FALSE, FLOAT, NEGINT, NULL, OBJECT, SHORT_STR, SMALL_UINT, STR, TRUE, UINT, get_varint,
    value_len,
};
use crate::intern::{interner, key_str};

/// The JSON type of a [`Node`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// An integer (`i64`/`u64`) or a float (`f64`).
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object (map with string keys).
    Object,
}

/// One value inside a [`CompactObject`](crate::CompactObject): a position in its buffer.
///
/// A `Node` is two words, `Copy`, and borrows the object; reading it never allocates and never
/// decodes more than the value asked for. Lookups skip sibling values in O(1) each.
///
/// ```
/// let obj = compact_object::CompactObject::from_slice(
///     br#"{"spec":{"rules":[{"host":"a.example"}]},"metadata":{"labels":{"app":"web"}}}"#,
/// )?;
/// let host = obj.root().get("spec").and_then(|s| s.get("rules")).and_then(|r| r.index(0));
/// assert_eq!(host.and_then(|r| r.get("host")).and_then(|h| h.as_str()), Some("a.example"));
/// let labels: Vec<_> = obj.pointer("/metadata/labels").unwrap().entries()
///     .map(|(k, v)| (k, v.as_str().unwrap())).collect();
/// assert_eq!(labels, [("app", "web")]);
/// # Ok::<(), compact_object::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// The object's buffer from this value's tag to the end of the buffer.
    buf: &'a [u8],
}

/// A container's header: element/member count and where its content starts.
struct Header {
    count: usize,
    content: usize,
}

impl<'a> Node<'a> {
    /// A node at the start of `buf` (which must hold a value this crate encoded).
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Node { buf }
    }

    /// Bytes from this node to the end of the object's buffer.
    #[inline]
    pub(crate) fn suffix_len(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    fn tag(&self) -> u8 {
        self.buf[0]
    }

    #[inline]
    fn header(&self, tag: u8) -> Option<Header> {
        if self.tag() != tag {
            return None;
        }
        let mut p = 1;
        let count = get_varint(self.buf, &mut p) as usize;
        get_varint(self.buf, &mut p);
        Some(Header { count, content: p })
    }

    /// The JSON type of this value.
    #[inline]
    pub fn kind(&self) -> NodeKind {
        match self.tag() {
            NULL => NodeKind::Null,
            FALSE | TRUE => NodeKind::Bool,
            UINT | NEGINT | FLOAT | SMALL_UINT..=0x3F => NodeKind::Number,
            STR | SHORT_STR..=0x7F => NodeKind::String,
            ARRAY => NodeKind::Array,
            _ => NodeKind::Object,
        }
    }

    /// The member `key` of an object; `None` for a missing key or a non-object.
    ///
    /// Small objects are scanned comparing key strings; objects with more than 16 members first
    /// look the key up in the shared key table (one hash) and then compare ids.
    #[inline]
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        let h = self.header(OBJECT)?;
        let id = if h.count > 16 {
            Some(interner().lookup(key).map(|id| u64::from(id) << 1))
        } else {
            None
        };
        let mut p = h.content;
        for _ in 0..h.count {
            let k = get_varint(self.buf, &mut p);
            let hit = if k & 1 == 0 {
                match id {
                    Some(id) => Some(k) == id,
                    None => key_str((k >> 1) as usize) == Some(key),
                }
            } else {
                let len = (k >> 1) as usize;
                let bytes = &self.buf[p..p + len];
                p += len;
                bytes == key.as_bytes()
            };
            if hit {
                return Some(Node::new(&self.buf[p..]));
            }
            p += value_len(self.buf, p);
        }
        None
    }

    /// Element `i` of an array; `None` when out of range or not an array. O(i): each preceding
    /// element is skipped in O(1).
    #[inline]
    pub fn index(&self, i: usize) -> Option<Node<'a>> {
        let h = self.header(ARRAY)?;
        if i >= h.count {
            return None;
        }
        let mut p = h.content;
        for _ in 0..i {
            p += value_len(self.buf, p);
        }
        Some(Node::new(&self.buf[p..]))
    }

    /// Number of members of an object or elements of an array; `0` for scalars.
    #[inline]
    pub fn len(&self) -> usize {
        self.header(OBJECT)
            .or_else(|| self.header(ARRAY))
            .map_or(0, |h| h.count)
    }

    /// `true` for an empty object or array, and for every scalar.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this value is `null`.
    #[inline]
    pub fn is_null(&self) -> bool {
        self.tag() == NULL
    }

    /// The boolean, if this is `true` or `false`.
    #[inline]
    pub fn as_bool(&self) -> Option<bool> {
        match self.tag() {
            TRUE => Some(true),
            FALSE => Some(false),
            _ => None,
        }
    }

    /// The integer as `i64`, if it is an integer that fits (like `Value::as_i64`).
    #[inline]
    pub fn as_i64(&self) -> Option<i64> {
        match self.number()? {
            Number::U64(u) => i64::try_from(u).ok(),
            Number::I64(i) => Some(i),
            Number::F64(_) => None,
        }
    }

    /// The integer as `u64`, if it is a non-negative integer (like `Value::as_u64`).
    #[inline]
    pub fn as_u64(&self) -> Option<u64> {
        match self.number()? {
            Number::U64(u) => Some(u),
            _ => None,
        }
    }

    /// Any number as `f64` (like `Value::as_f64`).
    #[inline]
    pub fn as_f64(&self) -> Option<f64> {
        Some(match self.number()? {
            Number::U64(u) => u as f64,
            Number::I64(i) => i as f64,
            Number::F64(f) => f,
        })
    }

    #[inline]
    fn number(&self) -> Option<Number> {
        let tag = self.tag();
        let mut p = 1;
        match tag {
            SMALL_UINT..=0x3F => Some(Number::U64(u64::from(tag - SMALL_UINT))),
            UINT => Some(Number::U64(get_varint(self.buf, &mut p))),
            NEGINT => Some(Number::I64(!get_varint(self.buf, &mut p) as i64)),
            FLOAT => {
                let bytes: [u8; 8] = self.buf.get(1..9)?.try_into().ok()?;
                Some(Number::F64(f64::from_le_bytes(bytes)))
            }
            _ => None,
        }
    }

    /// The string, borrowed from the object.
    #[inline]
    pub fn as_str(&self) -> Option<&'a str> {
        let tag = self.tag();
        let (start, len) = match tag {
            SHORT_STR..=0x7F => (1, usize::from(tag - SHORT_STR)),
            STR => {
                let mut p = 1;
                let len = get_varint(self.buf, &mut p) as usize;
                (p, len)
            }
            _ => return None,
        };
        utf8(&self.buf[start..start + len])
    }

    /// Object members in their original order; empty for non-objects.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Node<'a>)> + 'a {
        let (pos, remaining) = self.header(OBJECT).map_or((0, 0), |h| (h.content, h.count));
        Entries {
            buf: self.buf,
            pos,
            remaining,
        }
    }

    /// Array elements in order; empty for non-arrays.
    pub fn elements(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        let (pos, remaining) = self.header(ARRAY).map_or((0, 0), |h| (h.content, h.count));
        Elements {
            buf: self.buf,
            pos,
            remaining,
        }
    }

    /// Resolves an RFC 6901 JSON pointer relative to this node, exactly like
    /// `serde_json::Value::pointer` (`""` is this node; `~1` is `/`, `~0` is `~`; array indices
    /// without leading zeros or `+`).
    pub fn pointer(&self, pointer: &str) -> Option<Node<'a>> {
        if pointer.is_empty() {
            return Some(*self);
        }
        let rest = pointer.strip_prefix('/')?;
        let mut node = *self;
        for token in rest.split('/') {
            let unescaped;
            let token = if token.contains('~') {
                unescaped = token.replace("~1", "/").replace("~0", "~");
                unescaped.as_str()
            } else {
                token
            };
            node = match node.tag() {
                OBJECT => node.get(token)?,
                ARRAY => node.index(parse_index(token)?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Decodes this value into a `serde_json::Value` (allocates the whole subtree).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self.kind() {
            NodeKind::Null => Value::Null,
            NodeKind::Bool => Value::Bool(self.tag() == TRUE),
            NodeKind::Number => match self.number() {
                Some(Number::U64(u)) => Value::from(u),
                Some(Number::I64(i)) => Value::from(i),
                Some(Number::F64(f)) => {
                    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
                None => Value::Null,
            },
            NodeKind::String => Value::String(self.as_str().unwrap_or_default().to_owned()),
            NodeKind::Array => Value::Array(self.elements().map(|e| e.to_value()).collect()),
            NodeKind::Object => Value::Object(
                self.entries()
                    .map(|(k, v)| (k.to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// The number of bytes this value occupies in the encoding.
    pub fn encoded_len(&self) -> usize {
        value_len(self.buf, 0)
    }
}

/// serde_json's array-index rule for pointers.
fn parse_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// Stored strings were valid UTF-8 when encoded; this re-check only guards the invariant.
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// Iterator over an object's members.
struct Entries<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, Node<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let k = get_varint(self.buf, &mut self.pos);
        let key = if k & 1 == 0 {
            key_str((k >> 1) as usize).unwrap_or_default()
        } else {
            let len = (k >> 1) as usize;
            let key = utf8(&self.buf[self.pos..self.pos + len]).unwrap_or_default();
            self.pos += len;
            key
        };
        let node = Node::new(&self.buf[self.pos..]);
        self.pos += value_len(self.buf, self.pos);
        Some((key, node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Iterator over an array's elements.
struct Elements<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Node<'a>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let node = Node::new(&self.buf[self.pos..]);
        self.pos += value_len(self.buf, self.pos);
        Some(node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl serde::Serialize for Node<'_> {
    /// Emits exactly the calls `serde_json::Value` emits for the same JSON (objects as maps in
    /// member order, integers as `u64`/`i64`, floats as `f64`, `null` as unit).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let tag = self.tag();
        match tag {
            NULL => s.serialize_unit(),
            FALSE => s.serialize_bool(false),
            TRUE => s.serialize_bool(true),
            SHORT_STR..=0x7F | STR => s.serialize_str(self.as_str().unwrap_or_default()),
            OBJECT => {
                let entries = self.entries();
                let mut map = s.serialize_map(Some(entries.size_hint().0))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &v)?;
                }
                map.end()
            }
            ARRAY => {
                let elements = self.elements();
                let mut seq = s.serialize_seq(Some(elements.size_hint().0))?;
                for e in elements {
                    seq.serialize_element(&e)?;
                }
                seq.end()
            }
            _ => match self.number() {
                Some(Number::U64(u)) => s.serialize_u64(u),
                Some(Number::I64(i)) => s.serialize_i64(i),
                Some(Number::F64(f)) => s.serialize_f64(f),
                None => s.serialize_unit(),
            },
        }
    }
}

impl fmt::Debug for Node<'_> {
    /// The value as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Node<'_> {
    /// The value as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

impl PartialEq for Node<'_> {
    /// JSON equality with `serde_json::Value` semantics: objects compare as maps (member order
    /// does not matter), numbers compare by their serde_json representation.
    fn eq(&self, other: &Self) -> bool {
        match (self.kind(), other.kind()) {
            (NodeKind::Object, NodeKind::Object) => {
                self.len() == other.len()
                    && self
                        .entries()
                        .all(|(k, v)| other.get(k).is_some_and(|o| o == v))
            }
            (NodeKind::Array, NodeKind::Array) => {
                self.len() == other.len()
                    && self.elements().zip(other.elements()).all(|(a, b)| a == b)
            }
            (NodeKind::Number, NodeKind::Number) => match (self.number(), other.number()) {
                (Some(Number::U64(a)), Some(Number::U64(b))) => a == b,
                (Some(Number::I64(a)), Some(Number::I64(b))) => a == b,
                (Some(Number::F64(a)), Some(Number::F64(b))) => a == b,
                _ => false,
            },
            (a, b) if a != b => false,
            _ => self.as_str() == other.as_str() && self.as_bool() == other.as_bool(),
        }
    }
}
