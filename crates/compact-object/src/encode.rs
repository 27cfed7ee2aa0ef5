//! The binary encoding and its builder.
//!
//! An object is one buffer holding a pre-order encoding of the JSON tree. Every structural byte
//! (tags, lengths, counts, key ids, numbers) is below `0x80`, so the buffer is plain ASCII
//! except inside string contents, which are copied verbatim from `&str`s: **the whole buffer is
//! valid UTF-8**. It is checked once when an object is built and then held as an `Arc<str>`, so
//! reading a string is a bounds-checked `str` slice — no per-read UTF-8 validation and no
//! `unsafe`.
//!
//! Every value starts with a tag byte:
//!
//! | tag | value | followed by |
//! |---|---|---|
//! | `0x00`/`0x01`/`0x02` | `null`/`false`/`true` | — |
//! | `0x03` | integer ≥ 32 (serde_json `u64`) | varint |
//! | `0x04` | integer < 0 (serde_json `i64`) | varint of `!n` |
//! | `0x05` | float | its 64 bits in ten 7-bit bytes, least significant first |
//! | `0x06` | string ≥ 64 bytes | varint length, UTF-8 bytes |
//! | `0x07` | array | varint count, varint byte size of the elements, elements |
//! | `0x08` | object | varint count, varint byte size of the members, members |
//! | `0x20..=0x3F` | integer 0..=31 | — |
//! | `0x40..=0x7F` | string of 0..=63 bytes | UTF-8 bytes |
//!
//! Varints carry 6 bits per byte, least significant first; `0x40` marks "more bytes follow"
//! (so 0..=63 take one byte, up to 4095 two). An object member is a key then a value. A key is a
//! varint `k`: `k < MAX_KEYS` is interned key number `k` (see [`crate::intern`]; the most common
//! Kubernetes keys take one byte), otherwise an inline key of `k - MAX_KEYS` bytes follows.
//! Containers record their byte size so that any value is skipped in O(1), which is what makes
//! path lookups cheap without an offset table.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::intern::{MAX_KEYS, interner};
use crate::prune::{Pruner, Step};

pub(crate) const NULL: u8 = 0x00;
pub(crate) const FALSE: u8 = 0x01;
pub(crate) const TRUE: u8 = 0x02;
pub(crate) const UINT: u8 = 0x03;
pub(crate) const NEGINT: u8 = 0x04;
pub(crate) const FLOAT: u8 = 0x05;
pub(crate) const STR: u8 = 0x06;
pub(crate) const ARRAY: u8 = 0x07;
pub(crate) const OBJECT: u8 = 0x08;
pub(crate) const SMALL_UINT: u8 = 0x20;
pub(crate) const SMALL_UINT_MAX: u64 = 0x1F;
pub(crate) const SHORT_STR: u8 = 0x40;
pub(crate) const SHORT_STR_MAX: usize = 0x3F;

/// Arrays and objects nested deeper than this are rejected with [`Error::TooDeep`]: the limit
/// of the Kubernetes API server, which decodes JSON with `sigs.k8s.io/json` (a fork of Go's
/// `encoding/json`, whose scanner rejects nesting beyond `maxNestingDepth = 10000`), so every
/// object a real server stores can be held. The root container is level 1.
///
/// serde_json's parser stops at 128 levels unless told not to: the crate's own constructors
/// lift that limit on their deserializer; a value decoded by someone else's (kube's, for a
/// list page) reads what lies below `CHUNK_DEPTH` levels as raw text and decodes it with a
/// deserializer of its own (see `Builder::chunked`). Every recursive walk over a value grows
/// its stack on demand (`crate::stack`), so no depth up to this limit overflows a stack.
pub const MAX_DEPTH: usize = 10_000;

/// Levels decoded by a deserializer that is not the crate's own before the next level's values
/// are read as raw text (leaving room for the levels of the document around the object — a
/// list page's `items` — within serde_json's limit of 128).
pub(crate) const CHUNK_DEPTH: usize = 64;

/// Bytes reserved for a container header while its contents are written: tag + two varints of
/// at most 6 bytes (counts and sizes are below 2^32 < 2^36).
const HEADER_RESERVE: usize = 13;
/// Encoded size of a float after its tag.
const FLOAT_BYTES: usize = 10;

#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x40 {
        buf.push(0x40 | (v as u8 & 0x3F));
        v >>= 6;
    }
    buf.push(v as u8);
}

/// Reads a varint at `*pos`, advancing it. Only ever called on buffers this crate encoded.
#[inline]
pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x3F).wrapping_shl(shift);
        if b < 0x40 {
            return v;
        }
        shift += 6;
    }
}

/// Writes a float's bits as ten 7-bit bytes.
#[inline]
fn put_f64(buf: &mut Vec<u8>, f: f64) {
    let bits = f.to_bits();
    for i in 0..FLOAT_BYTES {
        buf.push((bits >> (7 * i)) as u8 & 0x7F);
    }
}

/// Reads a float written by `put_f64` from `bytes` (which start right after the tag).
#[inline]
pub(crate) fn get_f64(bytes: &[u8]) -> Option<f64> {
    let bytes = bytes.get(..FLOAT_BYTES)?;
    let bits = bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| acc | (u64::from(b) << (7 * i)));
    Some(f64::from_bits(bits))
}

/// Byte length of the value starting at `buf[pos]` (tag included).
#[inline]
pub(crate) fn value_len(buf: &[u8], pos: usize) -> usize {
    let tag = buf[pos];
    let mut p = pos + 1;
    match tag {
        NULL | FALSE | TRUE => 1,
        SMALL_UINT..=0x3F => 1,
        SHORT_STR..=0x7F => 1 + usize::from(tag - SHORT_STR),
        UINT | NEGINT => {
            get_varint(buf, &mut p);
            p - pos
        }
        FLOAT => 1 + FLOAT_BYTES,
        STR => {
            let len = get_varint(buf, &mut p) as usize;
            p - pos + len
        }
        _ => {
            // ARRAY | OBJECT
            get_varint(buf, &mut p);
            let size = get_varint(buf, &mut p) as usize;
            p - pos + size
        }
    }
}

/// An open container: where its header starts and where its keys start on the key stack.
#[derive(Clone, Copy)]
pub(crate) struct Open {
    start: usize,
    keys_mark: usize,
}

/// Writes the encoding of one JSON value into a growing buffer.
pub(crate) struct Builder {
    pub(crate) buf: Vec<u8>,
    depth: usize,
    /// Offsets of the keys of the currently open objects, innermost last (for duplicate-key
    /// detection).
    keys: Vec<usize>,
    /// The real error behind a serde `custom` error raised while a `Deserializer` drove us.
    pub(crate) error: Option<Error>,
    /// Store floats without fractional part as integers (see [`crate::integral`]).
    pub(crate) normalize_numbers: bool,
    /// The `Deserializer` driving the seeds is serde_json's, with its recursion limit: values
    /// [`CHUNK_DEPTH`] levels down are read as `RawValue`s (scanned without recursion) and
    /// decoded by a deserializer without the limit, so the depth is bounded by [`MAX_DEPTH`]
    /// instead. (With another `Deserializer`, objects deeper than `CHUNK_DEPTH` fail:
    /// `RawValue` is serde_json's.)
    pub(crate) chunked: bool,
    /// Too-deep containers are replaced by `null` and recorded in `rejection` instead of
    /// failing the decoding, so that the caller can skip this one value and the surrounding
    /// document (a list page) still decodes.
    pub(crate) tolerant: bool,
    /// The first container replaced by `null` in `tolerant` mode.
    pub(crate) rejection: Option<Error>,
}

impl Builder {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Builder {
            buf: Vec::with_capacity(cap),
            depth: 0,
            keys: Vec::new(),
            error: None,
            normalize_numbers: false,
            chunked: false,
            tolerant: false,
            rejection: None,
        }
    }

    #[inline]
    pub(crate) fn null(&mut self) {
        self.buf.push(NULL);
    }

    #[inline]
    pub(crate) fn bool(&mut self, b: bool) {
        self.buf.push(if b { TRUE } else { FALSE });
    }

    #[inline]
    pub(crate) fn u64(&mut self, n: u64) {
        if n <= SMALL_UINT_MAX {
            self.buf.push(SMALL_UINT | n as u8);
        } else {
            self.buf.push(UINT);
            put_varint(&mut self.buf, n);
        }
    }

    /// Non-negative values are stored as `u64`, exactly as serde_json does.
    #[inline]
    pub(crate) fn i64(&mut self, n: i64) {
        if n >= 0 {
            self.u64(n as u64);
        } else {
            self.buf.push(NEGINT);
            put_varint(&mut self.buf, !(n as u64));
        }
    }

    /// Non-finite floats become `null`, as in `serde_json::Value`.
    #[inline]
    pub(crate) fn f64(&mut self, f: f64) {
        if self.normalize_numbers {
            match crate::prune::integral(f) {
                Some(crate::Integral::I64(i)) => return self.i64(i),
                Some(crate::Integral::U64(u)) => return self.u64(u),
                None => {}
            }
        }
        if f.is_finite() {
            self.buf.push(FLOAT);
            put_f64(&mut self.buf, f);
        } else {
            self.null();
        }
    }

    #[inline]
    pub(crate) fn str(&mut self, s: &str) {
        if s.len() <= SHORT_STR_MAX {
            self.buf.push(SHORT_STR | s.len() as u8);
        } else {
            self.buf.push(STR);
            put_varint(&mut self.buf, s.len() as u64);
        }
        self.buf.extend_from_slice(s.as_bytes());
    }

    #[inline]
    pub(crate) fn key(&mut self, k: &str) {
        self.keys.push(self.buf.len());
        match interner().intern(k) {
            Some(id) => put_varint(&mut self.buf, u64::from(id)),
            None => {
                put_varint(&mut self.buf, (MAX_KEYS + k.len()) as u64);
                self.buf.extend_from_slice(k.as_bytes());
            }
        }
    }

    #[inline]
    pub(crate) fn begin(&mut self) -> Result<Open> {
        if self.depth >= MAX_DEPTH {
            return Err(Error::TooDeep { limit: MAX_DEPTH });
        }
        self.depth += 1;
        let open = Open { start: self.buf.len(), keys_mark: self.keys.len() };
        self.buf.extend_from_slice(&[0; HEADER_RESERVE]);
        Ok(open)
    }

    pub(crate) fn end_array(&mut self, open: Open, count: usize) -> Result<()> {
        self.finish(open, ARRAY, count)
    }

    /// Closes an object whose keys are known to be distinct (copied from an encoded object).
    pub(crate) fn end_unique_object(&mut self, open: Open, count: usize) -> Result<()> {
        self.keys.truncate(open.keys_mark);
        self.finish(open, OBJECT, count)
    }

    pub(crate) fn end_object(&mut self, open: Open, count: usize) -> Result<()> {
        let count = if count > 1 { self.dedup_keys(open, count) } else { count };
        self.keys.truncate(open.keys_mark);
        self.finish(open, OBJECT, count)
    }

    /// Writes the real header over the reserved bytes and closes the gap.
    fn finish(&mut self, open: Open, tag: u8, count: usize) -> Result<()> {
        self.depth -= 1;
        let content = open.start + HEADER_RESERVE;
        let size = self.buf.len() - content;
        if size > u32::MAX as usize || count > u32::MAX as usize {
            return Err(Error::TooLarge { size });
        }
        let mut tmp = [0u8; HEADER_RESERVE];
        let mut w = ArrayWriter { buf: &mut tmp, len: 0 };
        w.push(tag);
        w.varint(count as u64);
        w.varint(size as u64);
        let n = w.len;
        self.buf[open.start..open.start + n].copy_from_slice(&tmp[..n]);
        if n < HEADER_RESERVE {
            self.buf.copy_within(content.., open.start + n);
            self.buf.truncate(self.buf.len() - (HEADER_RESERVE - n));
        }
        Ok(())
    }

    /// The encoded bytes of the key at `off`.
    fn key_bytes(&self, off: usize) -> &[u8] {
        let mut p = off;
        let k = get_varint(&self.buf, &mut p) as usize;
        if k >= MAX_KEYS {
            p += k - MAX_KEYS;
        }
        &self.buf[off..p]
    }

    /// Resolves duplicate keys the way `serde_json::Value` does: one member per key, at the
    /// position of its first occurrence, holding the value of its last. Returns the new count.
    fn dedup_keys(&mut self, open: Open, count: usize) -> usize {
        let keys = &self.keys[open.keys_mark..];
        // Cheap filter: a 128-bit signature of the encoded keys; only a collision in it pays for
        // an exact check.
        let mut seen = 0u128;
        let mut maybe_dup = false;
        for &off in keys {
            let bytes = self.key_bytes(off);
            let h = bytes.iter().fold(bytes.len() as u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let bit = 1u128 << (h.wrapping_mul(0x9E37_79B9) >> 25);
            maybe_dup |= seen & bit != 0;
            seen |= bit;
        }
        if !maybe_dup {
            return count;
        }
        let mut distinct: std::collections::HashMap<&[u8], usize, foldhash::fast::RandomState> =
            std::collections::HashMap::with_capacity_and_hasher(keys.len(), Default::default());
        // For each member: (key offset, value range); members[i] for a key's first occurrence
        // gets the value range of its last occurrence.
        let mut members: Vec<(usize, usize, usize)> = Vec::with_capacity(keys.len());
        for (i, &off) in keys.iter().enumerate() {
            let value_start = off + self.key_bytes(off).len();
            let value_end = keys.get(i + 1).copied().unwrap_or(self.buf.len());
            match distinct.entry(self.key_bytes(off)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let m = &mut members[*e.get()];
                    m.1 = value_start;
                    m.2 = value_end;
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(members.len());
                    members.push((off, value_start, value_end));
                }
            }
        }
        if members.len() == count {
            return count;
        }
        let mut rebuilt = Vec::with_capacity(self.buf.len() - open.start);
        for &(key, vs, ve) in &members {
            rebuilt.extend_from_slice(self.key_bytes(key));
            rebuilt.extend_from_slice(&self.buf[vs..ve]);
        }
        let content = open.start + HEADER_RESERVE;
        self.buf.truncate(content);
        self.buf.extend_from_slice(&rebuilt);
        members.len()
    }

    /// Encodes a `serde_json::Value`.
    pub(crate) fn value(&mut self, v: &serde_json::Value) -> Result<()> {
        use serde_json::Value;
        match v {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.u64(u);
                } else if let Some(i) = n.as_i64() {
                    self.i64(i);
                } else if let Some(f) = n.as_f64() {
                    self.f64(f);
                } else {
                    return Err(Error::Unsupported { message: format!("number {n} is neither u64, i64 nor f64") });
                }
            }
            Value::String(s) => self.str(s),
            Value::Array(a) => crate::stack::guard(|| {
                let open = self.begin()?;
                for e in a {
                    self.value(e)?;
                }
                self.end_array(open, a.len())
            })?,
            Value::Object(m) => crate::stack::guard(|| {
                let open = self.begin()?;
                for (k, e) in m {
                    self.key(k);
                    self.value(e)?;
                }
                self.end_object(open, m.len())
            })?,
        }
        Ok(())
    }

    /// Whether the children of the container just opened are read as raw text (see `chunked`).
    #[inline]
    fn next_chunk(&self) -> bool {
        self.chunked && self.depth >= CHUNK_DEPTH
    }

    /// Decodes the JSON text of one value with a serde_json deserializer without recursion
    /// limit, continuing at the current depth; `run` decodes it (with a `ValueSeed` or
    /// `ChildSeed` over `self`).
    fn decode_chunk<T>(
        &mut self,
        text: &str,
        run: impl FnOnce(&mut Builder, &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>) -> serde_json::Result<T>,
    ) -> Result<T> {
        let mut de = serde_json::Deserializer::from_str(text);
        de.disable_recursion_limit();
        self.chunked = false;
        let decoded = run(self, &mut de).and_then(|v| de.end().map(|()| v));
        self.chunked = true;
        decoded.map_err(|source| self.error.take().unwrap_or(Error::Json { source }))
    }

    /// A container that cannot be opened: an error, or in `tolerant` mode `null` in its place
    /// (the rest of the container is skipped without recursion) and a recorded rejection.
    fn refuse<E: de::Error>(&mut self, e: Error, skip: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        if !self.tolerant || !matches!(e, Error::TooDeep { .. }) {
            return Err(self.fail(e));
        }
        skip()?;
        self.null();
        self.rejection.get_or_insert(e);
        Ok(())
    }

    /// Records `e` as the real failure and returns a serde error carrying its message.
    fn fail<E: de::Error>(&mut self, e: Error) -> E {
        let err = E::custom(&e);
        self.error = Some(e);
        err
    }
}

/// Fixed-capacity writer for a container header.
struct ArrayWriter<'a> {
    buf: &'a mut [u8; HEADER_RESERVE],
    len: usize,
}

impl ArrayWriter<'_> {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x40 {
            self.push(0x40 | (v as u8 & 0x3F));
            v >>= 6;
        }
        self.push(v as u8);
    }
}

/// Drives a [`Builder`] from any serde `Deserializer` (serde_json's in particular), so JSON
/// bytes are encoded in one pass without an intermediate `Value`.
pub(crate) struct ValueSeed<'b>(pub(crate) &'b mut Builder);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.bool(v);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.i64(v);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.u64(v);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.f64(v);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.str(v);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.null();
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.null();
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        Err(self.0.fail(Error::Unsupported { message: format!("{} raw bytes (JSON has no byte strings)", v.len()) }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let b = self.0;
        crate::stack::guard(move || {
            let open = match b.begin() {
                Ok(open) => open,
                Err(e) => return b.refuse(e, || skip_seq(seq)),
            };
            let mut count = 0usize;
            if b.next_chunk() {
                while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                    b.decode_chunk(raw.get(), |b, de| ValueSeed(b).deserialize(de))
                        .map_err(|e| b.fail::<A::Error>(e))?;
                    count += 1;
                }
            } else {
                while seq.next_element_seed(ValueSeed(&mut *b))?.is_some() {
                    count += 1;
                }
            }
            b.end_array(open, count).map_err(|e| b.fail(e))
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let b = self.0;
        crate::stack::guard(move || {
            let open = match b.begin() {
                Ok(open) => open,
                Err(e) => return b.refuse(e, || skip_map(map)),
            };
            let mut count = 0usize;
            let chunk = b.next_chunk();
            while map.next_key_seed(KeySeed(&mut *b))?.is_some() {
                if chunk {
                    let raw = map.next_value::<Box<RawValue>>()?;
                    b.decode_chunk(raw.get(), |b, de| ValueSeed(b).deserialize(de))
                        .map_err(|e| b.fail::<A::Error>(e))?;
                } else {
                    map.next_value_seed(ValueSeed(&mut *b))?;
                }
                count += 1;
            }
            b.end_object(open, count).map_err(|e| b.fail(e))
        })
    }
}

/// Consumes the rest of a sequence without recursion (serde_json skips `IgnoredAny` with an
/// explicit stack).
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<de::IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Consumes the rest of a map without recursion.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
    Ok(())
}

/// [`ValueSeed`] that asks a [`Pruner`] about the members and elements of the containers it
/// enters, so removed subtrees are skipped by the parser (`IgnoredAny`: no strings unescaped,
/// nothing encoded, no keys interned). Kept members are encoded exactly as `ValueSeed` would,
/// so the result is byte for byte what [`CompactObject::prune`](crate::CompactObject::prune)
/// makes of the unpruned encoding.
pub(crate) struct PruneSeed<'b, 'p, P: Pruner> {
    pub(crate) b: &'b mut Builder,
    pub(crate) pruner: &'p P,
    pub(crate) state: &'p P::State,
}

impl<'de, P: Pruner> DeserializeSeed<'de> for PruneSeed<'_, '_, P> {
    type Value = ();

    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, P: Pruner> Visitor<'de> for PruneSeed<'_, '_, P> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    // Scalars: exactly `ValueSeed` (a pruner is only consulted about container contents).

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        ValueSeed(self.b).visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        ValueSeed(self.b).visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        ValueSeed(self.b).visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        ValueSeed(self.b).visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        ValueSeed(self.b).visit_str(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        ValueSeed(self.b).visit_unit()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        ValueSeed(self.b).visit_none()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        ValueSeed(self.b).visit_bytes(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let PruneSeed { b, pruner, state } = self;
        crate::stack::guard(move || {
            let open = match b.begin() {
                Ok(open) => open,
                Err(e) => return b.refuse(e, || skip_seq(seq)),
            };
            let (mut index, mut kept) = (0usize, 0usize);
            let chunk = b.next_chunk();
            // Element indexes are the input's (removed elements count), as `prune` numbers them.
            loop {
                let step = pruner.element(state, index);
                let was_kept = if chunk {
                    match seq.next_element::<Box<RawValue>>()? {
                        Some(raw) => Some(
                            b.decode_chunk(raw.get(), |b, de| ChildSeed { b, pruner, step }.deserialize(de))
                                .map_err(|e| b.fail::<A::Error>(e))?,
                        ),
                        None => None,
                    }
                } else {
                    seq.next_element_seed(ChildSeed { b: &mut *b, pruner, step })?
                };
                let Some(was_kept) = was_kept else { break };
                index += 1;
                kept += usize::from(was_kept);
            }
            b.end_array(open, kept).map_err(|e| b.fail(e))
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let PruneSeed { b, pruner, state } = self;
        crate::stack::guard(move || {
            let open = match b.begin() {
                Ok(open) => open,
                Err(e) => return b.refuse(e, || skip_map(map)),
            };
            let mut kept = 0usize;
            let chunk = b.next_chunk();
            while let Some(step) = map.next_key_seed(PrunedKeySeed { b: &mut *b, pruner, state })? {
                let was_kept = if chunk && !matches!(step, Step::Remove) {
                    let raw = map.next_value::<Box<RawValue>>()?;
                    b.decode_chunk(raw.get(), |b, de| ChildSeed { b, pruner, step }.deserialize(de))
                        .map_err(|e| b.fail::<A::Error>(e))?
                } else {
                    map.next_value_seed(ChildSeed { b: &mut *b, pruner, step })?
                };
                kept += usize::from(was_kept);
            }
            // Duplicate keys get the same step each time, so resolving them after pruning
            // (here) equals pruning the resolved object.
            b.end_object(open, kept).map_err(|e| b.fail(e))
        })
    }
}

/// One member's value or one element under a pruner's decision; yields whether it was kept.
struct ChildSeed<'b, 'p, P: Pruner> {
    b: &'b mut Builder,
    pruner: &'p P,
    step: Step<P::State>,
}

impl<'de, P: Pruner> DeserializeSeed<'de> for ChildSeed<'_, '_, P> {
    type Value = bool;

    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        match self.step {
            Step::Keep => ValueSeed(self.b).deserialize(d).map(|()| true),
            Step::Remove => de::IgnoredAny::deserialize(d).map(|_| false),
            Step::Enter(state) => {
                PruneSeed { b: self.b, pruner: self.pruner, state: &state }.deserialize(d).map(|()| true)
            }
        }
    }
}

/// Reads one object key, asks the pruner about it and writes it unless the member is removed.
struct PrunedKeySeed<'b, 'p, P: Pruner> {
    b: &'b mut Builder,
    pruner: &'p P,
    state: &'p P::State,
}

impl<'de, P: Pruner> DeserializeSeed<'de> for PrunedKeySeed<'_, '_, P> {
    type Value = Step<P::State>;

    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, P: Pruner> Visitor<'de> for PrunedKeySeed<'_, '_, P> {
    type Value = Step<P::State>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string object key")
    }

    #[inline]
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let step = self.pruner.member(self.state, v);
        if !matches!(step, Step::Remove) {
            self.b.key(v);
        }
        Ok(step)
    }
}

/// Reads one object key (a string) into the builder.
struct KeySeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();

    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string object key")
    }

    #[inline]
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.key(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_stay_ascii() {
        for v in [0, 1, 31, 63, 64, 4095, 4096, 1 << 32, u64::from(u32::MAX), i64::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert!(buf.iter().all(|&b| b < 0x80), "{v}: {buf:?}");
            let mut pos = 0;
            assert_eq!(get_varint(&buf, &mut pos), v);
            assert_eq!(pos, buf.len());
            let mut tmp = [0u8; HEADER_RESERVE];
            let mut w = ArrayWriter { buf: &mut tmp, len: 0 };
            if v <= u64::from(u32::MAX) {
                w.varint(v);
                assert_eq!(&tmp[..buf.len()], &buf[..]);
            }
        }
        let mut buf = Vec::new();
        put_varint(&mut buf, 63);
        put_varint(&mut buf, 64);
        put_varint(&mut buf, 4096);
        assert_eq!(buf.len(), 1 + 2 + 3);
    }

    #[test]
    fn floats_round_trip_bit_exactly_and_stay_ascii() {
        for f in [
            0.0,
            -0.0,
            1.5,
            -1e-300,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 4.0,
            f64::MAX,
            f64::MIN,
            std::f64::consts::PI,
        ] {
            let mut buf = Vec::new();
            put_f64(&mut buf, f);
            assert_eq!(buf.len(), FLOAT_BYTES);
            assert!(buf.iter().all(|&b| b < 0x80));
            assert_eq!(get_f64(&buf).map(f64::to_bits), Some(f.to_bits()));
        }
        assert_eq!(get_f64(&[0; FLOAT_BYTES - 1]), None);
    }

    #[test]
    fn non_finite_floats_become_null_like_serde_json() {
        let mut b = Builder::with_capacity(0);
        b.f64(f64::NAN);
        b.f64(f64::INFINITY);
        assert_eq!(b.buf, [NULL, NULL]);
    }
}
