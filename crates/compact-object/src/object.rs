//! The owned, shareable object.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeSeed;
use store_types::{IdentityRef, KubeObject};

use crate::de::DeError;
use crate::encode::{Builder, PruneSeed, ValueSeed};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::prune::Pruner;
use crate::ser::{Encoder, SerError};

/// An immutable Kubernetes object (or any JSON value) in kstore's compact encoding.
///
/// The whole value lives in one shared heap allocation (`Arc<str>`): a pre-order binary
/// encoding where object keys are ids into a process-wide key table, scalars are stored
/// inline, and every array and object records its byte size so lookups skip what they do not
/// need. Round-trips are exact: integers keep serde_json's `u64`/`i64` distinction, floats
/// keep their bits, strings their UTF-8, objects their member order.
///
/// # Usage
///
/// ```
/// use kstore_compact_object::CompactObject;
/// use store_types::KubeObject;
///
/// let json = br#"{"apiVersion":"v1","kind":"ConfigMap",
///     "metadata":{"name":"cfg","namespace":"default","resourceVersion":"42"},
///     "data":{"a.b/c":"1"}}"#;
/// let obj = CompactObject::from_slice(json)?;
/// let id = obj.identity().unwrap();
/// assert_eq!((id.namespace, id.name), ("default", "cfg"));
/// assert_eq!(obj.resource_version(), Some("42"));
/// assert_eq!(obj.pointer("/data/a.b~1c").and_then(|n| n.as_str()), Some("1"));
/// assert_eq!(obj.to_value(), serde_json::from_slice::<serde_json::Value>(json).unwrap());
/// # Ok::<(), kstore_compact_object::Error>(())
/// ```
///
/// # Concurrency
///
/// `CompactObject` is `Send + Sync` and immutable. `Clone` is an atomic reference-count
/// increment; clones share the buffer. Reads take no locks (the key table is read with plain
/// atomic loads).
///
/// # Memory usage
///
/// [`heap_size`](Self::heap_size) is the buffer plus the `Arc` counts: 0.4–0.65× the object's
/// compact JSON size for typical objects, up to ≈ 0.96× for objects that are mostly one long
/// string value (see `docs/compact-object.md`); `size_of::<CompactObject>()` is
/// 32 bytes. Keys are shared by all objects through the key table, which is append-only and
/// capped at [`MAX_KEYS`](crate::MAX_KEYS) keys of ≤ [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes
/// (≈ 1.5 MB at worst, typically under 100 KB); keys beyond the cap are stored inline.
#[derive(Clone)]
pub struct CompactObject {
    /// The encoding; valid UTF-8 by construction (see `encode`).
    buf: Arc<str>,
    meta: MetaOffsets,
}

/// Offsets of the identity fields' string values in `buf`, `0` when absent (offset 0 is the root
/// value, never a metadata member). Found once at construction so that the stores and the
/// watcher read identity and resourceVersion in O(1).
#[derive(Clone, Copy, Default, Debug)]
struct MetaOffsets {
    name: u32,
    namespace: u32,
    uid: u32,
    resource_version: u32,
}

impl CompactObject {
    /// Encodes JSON bytes directly (one pass, no intermediate `serde_json::Value`).
    ///
    /// Accepts exactly what `serde_json::from_slice::<Value>` accepts (any JSON value, not only
    /// objects); anything else — syntax errors, truncation, invalid UTF-8, trailing characters,
    /// — is an [`Error::Json`], never a panic; nesting deeper than [`MAX_DEPTH`](crate::MAX_DEPTH)
    /// (10,000, the Kubernetes API server's limit) is an [`Error::TooDeep`]. Deep values do not
    /// overflow the stack: they are decoded in chunks, each by a fresh serde_json deserializer,
    /// on stack segments grown on demand.
    pub fn from_slice(json: &[u8]) -> Result<CompactObject> {
        Self::decode(serde_json::Deserializer::from_slice(json), json.len(), false)
    }

    /// [`from_slice`](Self::from_slice) with numbers normalised while decoding: floats without
    /// fractional part become integers (see [`integral`](crate::integral)), as kstore stores
    /// them. The result is byte for byte what decoding the same JSON as a
    /// [`CompactResource`](crate::CompactResource) (what full watches use) holds, so objects
    /// fetched one by one and objects received by a watch are interchangeable. Same errors as
    /// `from_slice`; any JSON value is accepted.
    ///
    /// ```
    /// use kstore_compact_object::CompactObject;
    ///
    /// let obj = CompactObject::from_slice_normalized(br#"{"port":80.0,"weight":0.5}"#)?;
    /// assert_eq!(obj.to_string(), r#"{"port":80,"weight":0.5}"#);
    /// # Ok::<(), kstore_compact_object::Error>(())
    /// ```
    pub fn from_slice_normalized(json: &[u8]) -> Result<CompactObject> {
        Self::decode(serde_json::Deserializer::from_slice(json), json.len(), true)
    }

    /// [`from_slice_normalized`](Self::from_slice_normalized) for JSON that is already a
    /// `str` (an HTTP client's response text, for instance): the same result, faster, because
    /// string contents need no second UTF-8 check.
    pub fn from_str_normalized(json: &str) -> Result<CompactObject> {
        Self::decode(serde_json::Deserializer::from_str(json), json.len(), true)
    }

    /// [`from_str_normalized`](Self::from_str_normalized) followed by
    /// [`prune`](Self::prune)`(pruner, root, false)`, in one pass: the pruner is asked about
    /// each member and element while the JSON is parsed, and removed subtrees are skipped by
    /// the parser (never unescaped, encoded or interned) instead of being encoded and then
    /// left out of a second copy. The result is byte for byte the two-step result (the
    /// unpruned object when nothing is removed).
    ///
    /// Errors are those of `from_str_normalized`, with one difference: a removed subtree is
    /// only checked for JSON syntax, so input that fails inside a removed subtree for another
    /// reason (nesting deeper than `MAX_DEPTH`, a number out of range, a lone surrogate escape) is
    /// accepted here.
    ///
    /// ```
    /// use kstore_compact_object::{CompactObject, Pruner, Step};
    ///
    /// /// Removes `metadata.managedFields`.
    /// struct NoManagedFields;
    /// impl Pruner for NoManagedFields {
    ///     type State = u8; // depth
    ///     fn member(&self, depth: &u8, key: &str) -> Step<u8> {
    ///         match (depth, key) {
    ///             (0, "metadata") => Step::Enter(1),
    ///             (1, "managedFields") => Step::Remove,
    ///             _ => Step::Keep,
    ///         }
    ///     }
    ///     fn element(&self, _: &u8, _: usize) -> Step<u8> {
    ///         Step::Keep
    ///     }
    /// }
    ///
    /// let json = r#"{"metadata":{"name":"a","managedFields":[{"f:x":{}}]},"n":2.0}"#;
    /// let pruned = CompactObject::from_str_pruned(json, &NoManagedFields, &0)?;
    /// assert_eq!(pruned.to_string(), r#"{"metadata":{"name":"a"},"n":2}"#);
    /// let two_steps = CompactObject::from_str_normalized(json)?.prune(&NoManagedFields, &0, false)?.unwrap();
    /// assert_eq!(pruned.as_bytes(), two_steps.as_bytes());
    /// # Ok::<(), kstore_compact_object::Error>(())
    /// ```
    pub fn from_str_pruned<P: Pruner>(json: &str, pruner: &P, root: &P::State) -> Result<CompactObject> {
        let mut de = serde_json::Deserializer::from_str(json);
        de.disable_recursion_limit();
        let mut b = Builder::with_capacity(json.len());
        b.normalize_numbers = true;
        let decoded = PruneSeed { b: &mut b, pruner, state: root }.deserialize(&mut de).and_then(|()| de.end());
        Self::decoded(b, decoded)
    }

    fn decode<'de, R: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<R>,
        len: usize,
        normalize_numbers: bool,
    ) -> Result<CompactObject> {
        de.disable_recursion_limit();
        let mut b = Builder::with_capacity(len);
        b.normalize_numbers = normalize_numbers;
        let decoded = ValueSeed(&mut b).deserialize(&mut de).and_then(|()| de.end());
        Self::decoded(b, decoded)
    }

    /// The object a decoding left in `b`, or the decoding's error (the builder's own, when it
    /// raised one).
    fn decoded(mut b: Builder, decoded: serde_json::Result<()>) -> Result<CompactObject> {
        match decoded {
            Ok(()) => Self::from_encoded(b.buf),
            Err(source) => Err(b.error.take().unwrap_or(Error::Json { source })),
        }
    }

    /// Encodes a `serde_json::Value`.
    pub fn from_value(v: &serde_json::Value) -> Result<CompactObject> {
        let mut b = Builder::with_capacity(256);
        b.value(v)?;
        Self::from_encoded(b.buf)
    }

    /// Encodes any serializable value, e.g. a typed k8s-openapi object, in one pass (no JSON
    /// text, no `serde_json::Value` in between). The result equals
    /// `from_value(&serde_json::to_value(t)?)`: same number types, non-finite floats become
    /// `null`, map keys must serialize as strings (integers and booleans become their text).
    pub fn from_serialize<T: serde::Serialize + ?Sized>(t: &T) -> Result<CompactObject> {
        let mut b = Builder::with_capacity(512);
        match t.serialize(Encoder(&mut b)) {
            Ok(()) => Self::from_encoded(b.buf),
            Err(SerError::Limit(e)) => Err(e),
            Err(SerError::Custom(message)) => Err(Error::Serialize {
                type_name: std::any::type_name::<T>(),
                source: <serde_json::Error as serde::ser::Error>::custom(message),
            }),
        }
    }

    /// Encodes a `kube_core::DynamicObject`; [`to_dynamic`](Self::to_dynamic) decodes it again.
    ///
    /// ```
    /// use kstore_compact_object::CompactObject;
    /// use kube_core::{ApiResource, DynamicObject, GroupVersionKind};
    /// let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
    /// let cm = DynamicObject::new("web", &ar).within("shop").data(serde_json::json!({"data": {"k": "v"}}));
    /// let compact = CompactObject::from_dynamic(&cm)?;
    /// assert_eq!(compact.pointer("/data/k").and_then(|n| n.as_str()), Some("v"));
    /// assert_eq!(compact.to_dynamic()?, cm);
    /// # Ok::<(), kstore_compact_object::Error>(())
    /// ```
    pub fn from_dynamic(o: &kube_core::DynamicObject) -> Result<CompactObject> {
        Self::from_serialize(o)
    }

    /// Decodes into a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        self.root().to_value()
    }

    /// Decodes into a `kube_core::DynamicObject`; fails when `metadata` does not have the
    /// shape of an `ObjectMeta`. Example: [`from_dynamic`](Self::from_dynamic).
    ///
    /// ```
    /// # use kstore_compact_object::CompactObject;
    /// let o = CompactObject::from_slice(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"}}"#)?;
    /// assert_eq!(o.to_dynamic()?.metadata.name.as_deref(), Some("web"));
    /// # Ok::<(), kstore_compact_object::Error>(())
    /// ```
    pub fn to_dynamic(&self) -> Result<kube_core::DynamicObject> {
        self.deserialize_into()
    }

    /// Decodes into any `Deserialize` type, e.g. a typed k8s-openapi object, straight from the
    /// encoding (no intermediate `Value`).
    pub fn deserialize_into<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(self.root())
            .map_err(|DeError(message)| Error::Deserialize { type_name: std::any::type_name::<T>(), message })
    }

    /// The root value.
    #[inline]
    pub fn root(&self) -> Node<'_> {
        Node::new(&self.buf)
    }

    /// Resolves an RFC 6901 JSON pointer, exactly like `serde_json::Value::pointer`.
    #[inline]
    pub fn pointer(&self, json_pointer: &str) -> Option<Node<'_>> {
        self.root().pointer(json_pointer)
    }

    /// An owned handle on `node`, a node of this object: it keeps the object's buffer alive
    /// (one reference count) and reads as the same node, so views can outlive the borrow
    /// (template engines hold values by `Arc`). `None` when `node` belongs to another object.
    pub fn owned_node(&self, node: Node<'_>) -> Option<OwnedNode> {
        OwnedNode::new(&self.buf, node)
    }

    /// Heap bytes owned by this object: the encoded buffer and its `Arc` counts. Shared by
    /// clones; excludes `size_of::<CompactObject>()` and the shared key table (see
    /// [`interner_stats`](crate::interner_stats)).
    #[inline]
    pub fn heap_size(&self) -> usize {
        // The `Arc<str>` allocation: strong and weak counts, then the bytes, padded to the
        // counts' alignment.
        (2 * size_of::<usize>() + self.buf.len()).next_multiple_of(align_of::<usize>())
    }

    /// The encoded bytes. The encoding is process-local (key ids refer to this process's key
    /// table): use it for size accounting and hashing, not for persistence.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_bytes()
    }

    pub(crate) fn from_encoded(buf: Vec<u8>) -> Result<CompactObject> {
        let size = buf.len();
        if size > u32::MAX as usize {
            return Err(Error::TooLarge { size });
        }
        // Checked once here; every later string read is a plain `str` slice.
        let buf = String::from_utf8(buf)
            .map_err(|e| Error::Unsupported { message: format!("internal encoding error: {e}") })?;
        let buf: Arc<str> = Arc::from(buf);
        let meta = find_meta(&buf);
        Ok(CompactObject { buf, meta })
    }

    /// The encoding as the `str` it is (see `encode`).
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        &self.buf
    }

    #[inline]
    fn str_at(&self, offset: u32) -> Option<&str> {
        if offset == 0 {
            return None;
        }
        Node::new(self.buf.get(offset as usize..)?).as_str()
    }
}

fn find_meta(buf: &str) -> MetaOffsets {
    let mut meta = MetaOffsets::default();
    let Some(m) = Node::new(buf).get("metadata") else {
        return meta;
    };
    for (key, value) in m.entries() {
        let slot = match key {
            "name" => &mut meta.name,
            "namespace" => &mut meta.namespace,
            "uid" => &mut meta.uid,
            "resourceVersion" => &mut meta.resource_version,
            _ => continue,
        };
        if value.as_str().is_some() {
            // Fits: the buffer is at most u32::MAX bytes (checked by the caller).
            *slot = u32::try_from(buf.len() - value.suffix_len()).unwrap_or(0);
        }
    }
    meta
}

impl KubeObject for CompactObject {
    /// Read from offsets recorded at construction: O(1), no allocation.
    #[inline]
    fn identity(&self) -> Option<IdentityRef<'_>> {
        Some(IdentityRef {
            namespace: self.str_at(self.meta.namespace).unwrap_or(""),
            name: self.str_at(self.meta.name)?,
            uid: self.str_at(self.meta.uid),
        })
    }

    #[inline]
    fn resource_version(&self) -> Option<&str> {
        self.str_at(self.meta.resource_version)
    }

    fn heap_size(&self) -> usize {
        CompactObject::heap_size(self)
    }
}

impl serde::Serialize for CompactObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.root().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for CompactObject {
    /// Encodes whatever the deserializer yields, without an intermediate `Value` (so a
    /// `WatchEvent<CompactObject>` or `ObjectList<CompactObject>` decodes straight into the
    /// compact form).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut b = Builder::with_capacity(512);
        ValueSeed(&mut b).deserialize(d)?;
        Self::from_encoded(b.buf).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for CompactObject {
    /// A summary that never shows values — objects may be Secrets, and `Debug` output ends up
    /// in logs and panic messages: kind, identity, resourceVersion and encoded size. Use
    /// `Display` (or [`CompactObject::to_value`]) to see the content on purpose.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |p: &str| self.pointer(p).and_then(|n| n.as_str());
        let mut d = f.debug_struct("CompactObject");
        match self.identity() {
            Some(id) => {
                d.field("kind", &text("/kind").unwrap_or("?"));
                if !id.namespace.is_empty() {
                    d.field("namespace", &id.namespace);
                }
                d.field("name", &id.name).field("resource_version", &self.resource_version().unwrap_or(""));
            }
            None => {
                d.field("value", &self.root().kind());
            }
        }
        d.field("bytes", &self.as_bytes().len()).finish()
    }
}

impl fmt::Display for CompactObject {
    /// The object as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.root(), f)
    }
}

impl PartialEq for CompactObject {
    /// JSON equality (`serde_json::Value` semantics: member order does not matter).
    fn eq(&self, other: &Self) -> bool {
        self.buf == other.buf || self.root() == other.root()
    }
}

impl std::str::FromStr for CompactObject {
    type Err = Error;

    /// [`CompactObject::from_slice`] for a `str` (faster: string contents need no second
    /// UTF-8 check).
    fn from_str(s: &str) -> Result<Self> {
        Self::decode(serde_json::Deserializer::from_str(s), s.len(), false)
    }
}

impl TryFrom<&serde_json::Value> for CompactObject {
    type Error = Error;

    fn try_from(v: &serde_json::Value) -> Result<Self> {
        Self::from_value(v)
    }
}

impl From<&CompactObject> for serde_json::Value {
    fn from(o: &CompactObject) -> Self {
        o.to_value()
    }
}

/// A [`Node`] that owns a reference to its object's buffer: two words plus an offset, made by
/// [`CompactObject::owned_node`] or [`OwnedNode::child`] and read through [`OwnedNode::node`].
///
/// The offset is private and only ever taken from a node of the same buffer, so an `OwnedNode`
/// always reads as the node it was made from.
#[derive(Clone)]
pub struct OwnedNode {
    buf: Arc<str>,
    offset: u32,
}

impl OwnedNode {
    fn new(buf: &Arc<str>, node: Node<'_>) -> Option<OwnedNode> {
        let offset = offset_in(buf, node)?;
        Some(OwnedNode { buf: buf.clone(), offset })
    }

    /// The node this handle stands for.
    #[inline]
    pub fn node(&self) -> Node<'_> {
        Node::new(self.buf.get(self.offset as usize..).unwrap_or_default())
    }

    /// An owned handle on `node`, a node of the same object (for example a member or element
    /// of [`node`](Self::node)); `None` when it belongs to another object.
    #[inline]
    pub fn child(&self, node: Node<'_>) -> Option<OwnedNode> {
        let offset = offset_in(&self.buf, node)?;
        Some(OwnedNode { buf: self.buf.clone(), offset })
    }
}

impl fmt::Debug for OwnedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Like `Node`'s, this prints the kind and size only: object bodies stay out of logs.
        fmt::Debug::fmt(&self.node(), f)
    }
}

/// Where `node` starts in `buf`, when it is a node of `buf`: a node's text is the suffix of
/// its object's buffer from the node's tag on.
#[inline]
fn offset_in(buf: &str, node: Node<'_>) -> Option<u32> {
    let start = buf.as_ptr() as usize;
    let at = node.suffix_ptr() as usize;
    let offset = at.checked_sub(start)?;
    (offset.checked_add(node.suffix_len()) == Some(buf.len())).then_some(())?;
    u32::try_from(offset).ok()
}
