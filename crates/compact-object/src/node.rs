//! Borrowed, zero-copy views into an encoded object.

use std::cell::Cell;
use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};

use crate::encode::{
    ARRAY, FALSE, FLOAT, NEGINT, NULL, OBJECT, SHORT_STR, SMALL_UINT, STR, TRUE, UINT, get_f64, get_varint, value_len,
};
use crate::intern::{MAX_KEYS, interner, key_str};

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
/// # Concurrency
///
/// `Node` is `Send + Sync`: it is a shared borrow of immutable bytes. Strings and keys it
/// returns are borrowed from the object (or, for interned keys, `'static`).
///
/// # Usage
///
/// ```
/// let obj = kstore_compact_object::CompactObject::from_slice(
///     br#"{"spec":{"rules":[{"host":"a.example"}]},"metadata":{"labels":{"app":"web"}}}"#,
/// )?;
/// let host = obj.root().get("spec").and_then(|s| s.get("rules")).and_then(|r| r.index(0));
/// assert_eq!(host.and_then(|r| r.get("host")).and_then(|h| h.as_str()), Some("a.example"));
/// let labels: Vec<_> = obj.pointer("/metadata/labels").unwrap().entries()
///     .map(|(k, v)| (k, v.as_str().unwrap())).collect();
/// assert_eq!(labels, [("app", "web")]);
/// # Ok::<(), kstore_compact_object::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// The object's buffer from this value's tag to the end of the buffer. Valid UTF-8 by
    /// construction (see `encode`), so strings are sliced out of it without re-validation.
    text: &'a str,
}

/// A container's header: element/member count and where its content starts.
struct Header {
    count: usize,
    content: usize,
}

impl<'a> Node<'a> {
    /// A node at the start of `buf` (which must hold a value this crate encoded).
    #[inline]
    pub(crate) fn new(text: &'a str) -> Self {
        Node { text }
    }

    /// The encoding from this value on.
    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The node at byte `pos` of this node's suffix. `pos` is always a tag position, which is
    /// an ASCII byte and so a char boundary; a corrupt position would read as `null` rather
    /// than panic.
    #[inline]
    fn at(&self, pos: usize) -> Node<'a> {
        Node::new(self.text.get(pos..).unwrap_or(EMPTY))
    }

    /// Address of this node's tag in its object's buffer (for [`crate::OwnedNode`]).
    #[inline]
    pub(crate) fn suffix_ptr(&self) -> *const u8 {
        self.text.as_ptr()
    }

    /// Bytes from this node to the end of the object's buffer.
    #[inline]
    pub(crate) fn suffix_len(&self) -> usize {
        self.text.len()
    }

    #[inline]
    fn tag(&self) -> u8 {
        // An empty suffix only arises from a corrupt position; read it as `null`.
        self.bytes().first().copied().unwrap_or(NULL)
    }

    #[inline]
    fn header(&self, tag: u8) -> Option<Header> {
        if self.tag() != tag {
            return None;
        }
        let mut p = 1;
        let count = get_varint(self.bytes(), &mut p) as usize;
        get_varint(self.bytes(), &mut p);
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
        let id = if h.count > 16 { Some(interner().lookup(key).map(u64::from)) } else { None };
        let mut p = h.content;
        for _ in 0..h.count {
            let k = get_varint(self.bytes(), &mut p);
            let hit = if k < MAX_KEYS as u64 {
                match id {
                    Some(id) => Some(k) == id,
                    None => key_str(k as usize) == Some(key),
                }
            } else {
                let len = k as usize - MAX_KEYS;
                let bytes = self.bytes().get(p..p + len)?;
                p += len;
                bytes == key.as_bytes()
            };
            if hit {
                return Some(self.at(p));
            }
            p += value_len(self.bytes(), p);
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
            p += value_len(self.bytes(), p);
        }
        Some(self.at(p))
    }

    /// Number of members of an object or elements of an array; `0` for scalars.
    #[inline]
    pub fn len(&self) -> usize {
        self.header(OBJECT).or_else(|| self.header(ARRAY)).map_or(0, |h| h.count)
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
            UINT => Some(Number::U64(get_varint(self.bytes(), &mut p))),
            NEGINT => Some(Number::I64(!get_varint(self.bytes(), &mut p) as i64)),
            FLOAT => Some(Number::F64(get_f64(self.bytes().get(1..)?)?)),
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
                let len = get_varint(self.bytes(), &mut p) as usize;
                (p, len)
            }
            _ => return None,
        };
        self.text.get(start..start + len)
    }

    /// Object members in their original order; empty for non-objects.
    ///
    /// The iterator borrows the object, not this `Node` (`use<'a>`), so it may outlive a
    /// temporary node.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Node<'a>)> + use<'a> {
        let (pos, remaining) = self.header(OBJECT).map_or((0, 0), |h| (h.content, h.count));
        Entries { node: *self, pos, remaining }
    }

    /// Array elements in order; empty for non-arrays.
    ///
    /// The iterator borrows the object, not this `Node` (`use<'a>`).
    pub fn elements(&self) -> impl Iterator<Item = Node<'a>> + use<'a> {
        let (pos, remaining) = self.header(ARRAY).map_or((0, 0), |h| (h.content, h.count));
        Elements { node: *self, pos, remaining }
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
                Some(Number::F64(f)) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
                None => Value::Null,
            },
            NodeKind::String => Value::String(self.as_str().unwrap_or_default().to_owned()),
            NodeKind::Array => crate::stack::guard(|| Value::Array(self.elements().map(|e| e.to_value()).collect())),
            NodeKind::Object => crate::stack::guard(|| {
                Value::Object(self.entries().map(|(k, v)| (k.to_owned(), v.to_value())).collect())
            }),
        }
    }

    /// The number of bytes this value occupies in the encoding.
    ///
    /// ```
    /// use kstore_compact_object::CompactObject;
    /// let o = CompactObject::from_slice(br#"{"metadata":{"name":"web"},"data":{"k":"v"}}"#)?;
    /// let data = o.pointer("/data").unwrap();
    /// assert!(0 < data.encoded_len() && data.encoded_len() < o.root().encoded_len());
    /// # Ok::<(), kstore_compact_object::Error>(())
    /// ```
    pub fn encoded_len(&self) -> usize {
        value_len(self.bytes(), 0)
    }
}

/// serde_json's array-index rule for pointers.
fn parse_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// The suffix of an empty buffer; only reached through a corrupt position.
const EMPTY: &str = "";

enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// Iterator over an object's members.
struct Entries<'a> {
    node: Node<'a>,
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
        let buf = self.node.bytes();
        let k = get_varint(buf, &mut self.pos);
        let key = if k < MAX_KEYS as u64 {
            key_str(k as usize).unwrap_or_default()
        } else {
            let len = k as usize - MAX_KEYS;
            let key = self.node.text.get(self.pos..self.pos + len).unwrap_or_default();
            self.pos += len;
            key
        };
        let node = self.node.at(self.pos);
        self.pos += value_len(buf, self.pos);
        Some((key, node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Iterator over an array's elements.
struct Elements<'a> {
    node: Node<'a>,
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
        let node = self.node.at(self.pos);
        self.pos += value_len(self.node.bytes(), self.pos);
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
        self.serialize_measured(s).map(|(ok, _)| ok)
    }
}

/// A leaf decoded in place by the serializer's walk.
enum Scalar<'a> {
    Str(&'a str),
    Small(u64),
}

/// A child value being serialized; reports back where it ended so the parent's walk decodes
/// each byte once.
struct Child<'a, 'c> {
    node: Node<'a>,
    len: &'c Cell<usize>,
}

impl serde::Serialize for Child<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (ok, len) = crate::stack::guard(|| self.node.serialize_measured(s))?;
        self.len.set(len);
        Ok(ok)
    }
}

impl<'a> Node<'a> {
    /// Serializes this value and returns its encoded length.
    fn serialize_measured<S: serde::Serializer>(&self, s: S) -> Result<(S::Ok, usize), S::Error> {
        let b = self.bytes();
        let tag = self.tag();
        let mut p = 1;
        let ok = match tag {
            NULL => s.serialize_unit()?,
            FALSE => s.serialize_bool(false)?,
            TRUE => s.serialize_bool(true)?,
            SMALL_UINT..=0x3F => s.serialize_u64(u64::from(tag - SMALL_UINT))?,
            SHORT_STR..=0x7F => {
                p += usize::from(tag - SHORT_STR);
                s.serialize_str(self.text.get(1..p).unwrap_or_default())?
            }
            STR | UINT | NEGINT | FLOAT => return self.serialize_rare(s),
            ARRAY => {
                let count = get_varint(b, &mut p) as usize;
                let size = get_varint(b, &mut p) as usize;
                let end = p + size;
                let mut seq = s.serialize_seq(Some(count))?;
                let len = Cell::new(0);
                for _ in 0..count {
                    // Short strings and small integers directly; anything else recursively.
                    match self.short_scalar(p) {
                        Some((Scalar::Str(v), n)) => {
                            seq.serialize_element(v)?;
                            p += n;
                        }
                        Some((Scalar::Small(v), n)) => {
                            seq.serialize_element(&v)?;
                            p += n;
                        }
                        None => {
                            len.set(usize::MAX);
                            seq.serialize_element(&Child { node: self.at(p), len: &len })?;
                            p += self.child_len(&len, p);
                        }
                    }
                }
                p = end;
                seq.end()?
            }
            _ => {
                // OBJECT
                let count = get_varint(b, &mut p) as usize;
                let size = get_varint(b, &mut p) as usize;
                let end = p + size;
                let mut map = s.serialize_map(Some(count))?;
                let len = Cell::new(0);
                for _ in 0..count {
                    let k = get_varint(b, &mut p);
                    let key = if k < MAX_KEYS as u64 {
                        key_str(k as usize).unwrap_or_default()
                    } else {
                        let start = p;
                        p += k as usize - MAX_KEYS;
                        self.text.get(start..p).unwrap_or_default()
                    };
                    map.serialize_key(key)?;
                    match self.short_scalar(p) {
                        Some((Scalar::Str(v), n)) => {
                            map.serialize_value(v)?;
                            p += n;
                        }
                        Some((Scalar::Small(v), n)) => {
                            map.serialize_value(&v)?;
                            p += n;
                        }
                        None => {
                            len.set(usize::MAX);
                            map.serialize_value(&Child { node: self.at(p), len: &len })?;
                            p += self.child_len(&len, p);
                        }
                    }
                }
                p = end;
                map.end()?
            }
        };
        Ok((ok, p))
    }

    /// Long strings, large and negative integers, floats: kept out of the hot walk so that it
    /// stays small enough for the serializer's writes to be inlined into it.
    #[inline(never)]
    fn serialize_rare<S: serde::Serializer>(&self, s: S) -> Result<(S::Ok, usize), S::Error> {
        let b = self.bytes();
        let mut p = 1;
        let ok = match self.tag() {
            STR => {
                let len = get_varint(b, &mut p) as usize;
                let start = p;
                p += len;
                s.serialize_str(self.text.get(start..p).unwrap_or_default())?
            }
            UINT => s.serialize_u64(get_varint(b, &mut p))?,
            NEGINT => s.serialize_i64(!get_varint(b, &mut p) as i64)?,
            _ => {
                p = value_len(b, 0);
                match self.number() {
                    Some(Number::F64(f)) => s.serialize_f64(f)?,
                    _ => s.serialize_unit()?,
                }
            }
        };
        Ok((ok, p))
    }

    /// The short string or small integer at `pos` and its encoded length, if that is what is
    /// there (the common leaves, serialized without recursion).
    #[inline]
    fn short_scalar(&self, pos: usize) -> Option<(Scalar<'a>, usize)> {
        let tag = *self.bytes().get(pos)?;
        match tag {
            SHORT_STR..=0x7F => {
                let len = usize::from(tag - SHORT_STR);
                Some((Scalar::Str(self.text.get(pos + 1..pos + 1 + len)?), 1 + len))
            }
            SMALL_UINT..=0x3F => Some((Scalar::Small(u64::from(tag - SMALL_UINT)), 1)),
            _ => None,
        }
    }

    /// The length a `Child` reported, or (if the serializer never serialized it) its length
    /// decoded afresh.
    #[inline]
    fn child_len(&self, reported: &Cell<usize>, pos: usize) -> usize {
        match reported.get() {
            usize::MAX => value_len(self.bytes(), pos),
            len => len,
        }
    }
}

impl fmt::Debug for Node<'_> {
    /// The value's shape only (kind and size), never its content — it may be part of a
    /// Secret. Use `Display` to see the JSON on purpose.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            NodeKind::Object | NodeKind::Array => write!(f, "Node({:?}, {} entries)", self.kind(), self.len()),
            k => write!(f, "Node({k:?})"),
        }
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
            (NodeKind::Object, NodeKind::Object) => crate::stack::guard(|| {
                self.len() == other.len() && self.entries().all(|(k, v)| other.get(k).is_some_and(|o| o == v))
            }),
            (NodeKind::Array, NodeKind::Array) => crate::stack::guard(|| {
                self.len() == other.len() && self.elements().zip(other.elements()).all(|(a, b)| a == b)
            }),
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
