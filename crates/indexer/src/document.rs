//! One read-only view over every object representation the indexer works on.
//!
//! [`Indexable`] is the trait users see: it is implemented for `serde_json::Value`,
//! `kube_core::DynamicObject`, typed objects through [`Typed`], and kstore's compact object.
//! Each produces a [`Document`], whose [`NodeRef`] nodes the compiled paths walk directly.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_core::DynamicObject;
use serde_json::Value;

use crate::path::Segment;

/// The JSON type of a node: compact-object's, shared by every document representation.
pub use compact_object::NodeKind;

/// A cheap (`Copy`) reference to one node of a [`Document`].
///
/// Implementations must not allocate in [`NodeRef::get`], [`NodeRef::index`] or the scalar
/// accessors: key extraction walks paths through these on every stored object.
pub trait NodeRef<'a>: Copy + 'a {
    /// The JSON type.
    fn kind(self) -> NodeKind;
    /// The value under `key` of a map node; `None` for other kinds or a missing key.
    fn get(self, key: &str) -> Option<Self>;
    /// The element `i` of an array node; `None` for other kinds or out of range.
    fn index(self, i: usize) -> Option<Self>;
    /// Array elements or map values, in order; empty for scalars.
    fn children(self) -> impl Iterator<Item = Self> + 'a;
    /// The string, for string nodes.
    fn as_str(self) -> Option<&'a str>;
    /// The boolean, for bool nodes.
    fn as_bool(self) -> Option<bool>;
    /// The number as `i64`, when it is an integer in range.
    fn as_i64(self) -> Option<i64>;
    /// The number as `u64`, when it is a non-negative integer in range.
    fn as_u64(self) -> Option<u64>;
    /// The number as `f64`, for any number node.
    fn as_f64(self) -> Option<f64>;
    /// Appends the node as compact JSON.
    fn write_json(self, out: &mut String);
}

/// An object representation the compiled paths can walk.
pub trait Document {
    /// A position in the document: the node type the compiled paths walk.
    type Cursor<'a>: NodeRef<'a>
    where
        Self: 'a;
    /// The root node.
    fn root(&self) -> Self::Cursor<'_>;
}

/// An object the indexer can extract keys from and match selectors against.
///
/// Implemented for `serde_json::Value`, `kube_core::DynamicObject`, [`Typed`] (any typed
/// `kube_core::Resource`, such as a k8s-openapi `Ingress`) and `compact_object::CompactObject`.
/// All of them share one path walker; only the node access differs.
///
/// # Cost per representation
/// * `Value`, `CompactObject`: direct borrowed walk, no allocation.
/// * `DynamicObject`, [`Typed`]: `metadata.name`, `namespace`, `generateName`, `uid`,
///   `resourceVersion`, `generation`, `labels`, `annotations` and `finalizers` are read from
///   the typed `ObjectMeta` without allocation; a `DynamicObject`'s other fields come from its
///   `data` value, also without allocation. Any other path (other metadata fields, a typed
///   object's `spec`, or the whole object) serializes the metadata or the object to a `Value`
///   once per call and walks that.
///
/// # Usage
/// ```
/// use compact_object::CompactObject;
/// use kstore_indexer::{Indexable, Indexer};
/// use kube_core::DynamicObject;
/// use serde_json::json;
///
/// fn keys_of<O: Indexable + ?Sized>(ix: &Indexer, obj: &O) -> Vec<String> {
///     ix.keys(obj).map(|k| k.to_vec()).unwrap_or_default()
/// }
///
/// let ix = Indexer::new(["metadata.namespace", "metadata.labels['app']"], [""; 0])?;
/// let value = json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "a"}}});
/// let dynamic: DynamicObject = serde_json::from_value(value.clone())?;
/// let compact = CompactObject::from_value(&value)?;
/// assert_eq!(keys_of(&ix, &value), ["shop", "a"]);
/// assert_eq!(keys_of(&ix, &dynamic), ["shop", "a"]);
/// assert_eq!(keys_of(&ix, &compact), ["shop", "a"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Indexable {
    /// The view paths are resolved on.
    type Doc<'a>: Document
    where
        Self: 'a;
    /// A view of this object (cheap: it borrows).
    fn document(&self) -> Self::Doc<'_>;
}

/// Resolves `path` on `node`, returning the first match (wildcards try children in order).
pub(crate) fn resolve<'a, N: NodeRef<'a>>(node: N, path: &[Segment]) -> Option<N> {
    let Some((first, rest)) = path.split_first() else {
        return Some(node);
    };
    match first {
        Segment::Field(k) => resolve(node.get(k)?, rest),
        Segment::Index(i) => resolve(node.index(*i)?, rest),
        Segment::Wildcard => node.children().find_map(|c| resolve(c, rest)),
    }
}

/// Renders a node as an index key string: strings as-is, integers in decimal, floats in the
/// shortest form that round-trips (integral floats without fraction, no exponent), booleans
/// `true`/`false`, null as `""`, maps and arrays as compact JSON.
pub(crate) fn render<'a, N: NodeRef<'a>>(node: N) -> Cow<'a, str> {
    match node.kind() {
        NodeKind::Null => Cow::Borrowed(""),
        NodeKind::Bool => Cow::Borrowed(if node.as_bool() == Some(true) { "true" } else { "false" }),
        NodeKind::String => Cow::Borrowed(node.as_str().unwrap_or("")),
        NodeKind::Number => Cow::Owned(render_number(node)),
        NodeKind::Array | NodeKind::Object => {
            let mut out = String::new();
            node.write_json(&mut out);
            Cow::Owned(out)
        }
    }
}

fn render_number<'a, N: NodeRef<'a>>(node: N) -> String {
    if let Some(i) = node.as_i64() {
        i.to_string()
    } else if let Some(u) = node.as_u64() {
        u.to_string()
    } else {
        // Rust's `Display` for f64 prints the shortest digits that round-trip, never an
        // exponent, and no fraction for integral values (80.0 → "80").
        node.as_f64().map(|f| f.to_string()).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// serde_json::Value

impl<'a> NodeRef<'a> for &'a Value {
    fn kind(self) -> NodeKind {
        match self {
            Value::Null => NodeKind::Null,
            Value::Bool(_) => NodeKind::Bool,
            Value::Number(_) => NodeKind::Number,
            Value::String(_) => NodeKind::String,
            Value::Array(_) => NodeKind::Array,
            Value::Object(_) => NodeKind::Object,
        }
    }
    fn get(self, key: &str) -> Option<Self> {
        self.as_object()?.get(key)
    }
    fn index(self, i: usize) -> Option<Self> {
        self.as_array()?.get(i)
    }
    fn children(self) -> impl Iterator<Item = Self> + 'a {
        let (arr, obj) = match self {
            Value::Array(a) => (Some(a.iter()), None),
            Value::Object(o) => (None, Some(o.values())),
            _ => (None, None),
        };
        arr.into_iter().flatten().chain(obj.into_iter().flatten())
    }
    fn as_str(self) -> Option<&'a str> {
        Value::as_str(self)
    }
    fn as_bool(self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn as_i64(self) -> Option<i64> {
        Value::as_i64(self)
    }
    fn as_u64(self) -> Option<u64> {
        Value::as_u64(self)
    }
    fn as_f64(self) -> Option<f64> {
        Value::as_f64(self)
    }
    fn write_json(self, out: &mut String) {
        out.push_str(&self.to_string());
    }
}

impl Document for Value {
    type Cursor<'a> = &'a Value;
    fn root(&self) -> &Value {
        self
    }
}

impl<D: Document + ?Sized> Document for &D {
    type Cursor<'a>
        = D::Cursor<'a>
    where
        Self: 'a;
    fn root(&self) -> D::Cursor<'_> {
        (**self).root()
    }
}

impl Indexable for Value {
    type Doc<'a> = &'a Value;
    fn document(&self) -> &Value {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Typed ObjectMeta + rest (DynamicObject, typed resources)

/// What a [`MetaNode`] needs from the object behind it.
trait ObjectAccess {
    fn meta(&self) -> &ObjectMeta;
    /// `metadata` as JSON (computed at most once per view).
    fn meta_json(&self) -> &Value;
    /// The whole object as JSON (computed at most once per view).
    fn full_json(&self) -> &Value;
    /// A top-level field other than `metadata`.
    fn top_field(&self, key: &str) -> Option<MetaNode<'_>>;
}

/// A node of a [`ResourceDoc`]: typed metadata where possible, JSON elsewhere.
#[derive(Clone, Copy)]
pub struct MetaNode<'a>(MetaRepr<'a>);

#[derive(Clone, Copy)]
enum MetaRepr<'a> {
    Root(&'a dyn ObjectAccess),
    Meta(&'a dyn ObjectAccess),
    Str(&'a str),
    Int(i64),
    StrMap(&'a BTreeMap<String, String>),
    StrList(&'a [String]),
    Json(&'a Value),
}

impl<'a> MetaNode<'a> {
    fn json(v: &'a Value) -> Self {
        MetaNode(MetaRepr::Json(v))
    }

    /// Composite typed nodes fall back to JSON for everything but `get`.
    fn as_json(self) -> Option<&'a Value> {
        match self.0 {
            MetaRepr::Root(o) => Some(o.full_json()),
            MetaRepr::Meta(o) => Some(o.meta_json()),
            MetaRepr::Json(v) => Some(v),
            _ => None,
        }
    }
}

impl<'a> NodeRef<'a> for MetaNode<'a> {
    fn kind(self) -> NodeKind {
        match self.0 {
            MetaRepr::Root(_) | MetaRepr::Meta(_) | MetaRepr::StrMap(_) => NodeKind::Object,
            MetaRepr::Str(_) => NodeKind::String,
            MetaRepr::Int(_) => NodeKind::Number,
            MetaRepr::StrList(_) => NodeKind::Array,
            MetaRepr::Json(v) => v.kind(),
        }
    }

    fn get(self, key: &str) -> Option<Self> {
        match self.0 {
            MetaRepr::Root(o) if key == "metadata" => Some(MetaNode(MetaRepr::Meta(o))),
            MetaRepr::Root(o) => o.top_field(key),
            MetaRepr::Meta(o) => {
                let m = o.meta();
                let repr = match key {
                    "name" => MetaRepr::Str(m.name.as_deref()?),
                    "namespace" => MetaRepr::Str(m.namespace.as_deref()?),
                    "generateName" => MetaRepr::Str(m.generate_name.as_deref()?),
                    "uid" => MetaRepr::Str(m.uid.as_deref()?),
                    "resourceVersion" => MetaRepr::Str(m.resource_version.as_deref()?),
                    "generation" => MetaRepr::Int(m.generation?),
                    "labels" => MetaRepr::StrMap(m.labels.as_ref()?),
                    "annotations" => MetaRepr::StrMap(m.annotations.as_ref()?),
                    "finalizers" => MetaRepr::StrList(m.finalizers.as_deref()?),
                    _ => MetaRepr::Json(o.meta_json().get(key)?),
                };
                Some(MetaNode(repr))
            }
            MetaRepr::StrMap(m) => Some(MetaNode(MetaRepr::Str(m.get(key)?))),
            MetaRepr::Json(v) => v.get(key).map(MetaNode::json),
            MetaRepr::Str(_) | MetaRepr::Int(_) | MetaRepr::StrList(_) => None,
        }
    }

    fn index(self, i: usize) -> Option<Self> {
        match self.0 {
            MetaRepr::StrList(l) => Some(MetaNode(MetaRepr::Str(l.get(i)?))),
            MetaRepr::Json(v) => v.index(i).map(MetaNode::json),
            _ => None,
        }
    }

    fn children(self) -> impl Iterator<Item = Self> + 'a {
        let (map, list, json) = match self.0 {
            MetaRepr::StrMap(m) => (Some(m.values()), None, None),
            MetaRepr::StrList(l) => (None, Some(l.iter()), None),
            _ => (None, None, self.as_json()),
        };
        let strs = map.into_iter().flatten().chain(list.into_iter().flatten()).map(|s| MetaNode(MetaRepr::Str(s)));
        strs.chain(json.into_iter().flat_map(|v| v.children().map(MetaNode::json)))
    }

    fn as_str(self) -> Option<&'a str> {
        match self.0 {
            MetaRepr::Str(s) => Some(s),
            MetaRepr::Json(v) => v.as_str(),
            _ => None,
        }
    }

    fn as_bool(self) -> Option<bool> {
        self.as_json()?.as_bool()
    }

    fn as_i64(self) -> Option<i64> {
        match self.0 {
            MetaRepr::Int(i) => Some(i),
            _ => self.as_json()?.as_i64(),
        }
    }

    fn as_u64(self) -> Option<u64> {
        match self.0 {
            MetaRepr::Int(i) => u64::try_from(i).ok(),
            _ => self.as_json()?.as_u64(),
        }
    }

    fn as_f64(self) -> Option<f64> {
        match self.0 {
            MetaRepr::Int(i) => Some(i as f64),
            _ => self.as_json()?.as_f64(),
        }
    }

    fn write_json(self, out: &mut String) {
        let s = match self.0 {
            MetaRepr::Str(s) => serde_json::to_string(s),
            MetaRepr::Int(i) => Ok(i.to_string()),
            MetaRepr::StrMap(m) => serde_json::to_string(m),
            MetaRepr::StrList(l) => serde_json::to_string(l),
            MetaRepr::Root(_) | MetaRepr::Meta(_) | MetaRepr::Json(_) => {
                Ok(self.as_json().map(Value::to_string).unwrap_or_default())
            }
        };
        // Serializing strings and string maps cannot fail.
        out.push_str(&s.unwrap_or_default());
    }
}

/// The [`Document`] of a `DynamicObject` or a [`Typed`] resource: typed metadata, JSON for the
/// rest (see [`Indexable`] for the cost).
pub struct ResourceDoc<'a> {
    meta: &'a ObjectMeta,
    source: Source<'a>,
    meta_json: OnceCell<Value>,
    full_json: OnceCell<Value>,
}

enum Source<'a> {
    Dynamic(&'a DynamicObject),
    Typed(&'a dyn ToJson),
}

impl ObjectAccess for ResourceDoc<'_> {
    fn meta(&self) -> &ObjectMeta {
        self.meta
    }

    fn meta_json(&self) -> &Value {
        self.meta_json.get_or_init(|| serde_json::to_value(self.meta).unwrap_or(Value::Null))
    }

    fn full_json(&self) -> &Value {
        self.full_json.get_or_init(|| match &self.source {
            Source::Dynamic(d) => serde_json::to_value(d).unwrap_or(Value::Null),
            Source::Typed(t) => t.to_json(),
        })
    }

    fn top_field(&self, key: &str) -> Option<MetaNode<'_>> {
        match &self.source {
            Source::Dynamic(d) => {
                let types = d.types.as_ref();
                match key {
                    "apiVersion" => Some(MetaNode(MetaRepr::Str(&types?.api_version))),
                    "kind" => Some(MetaNode(MetaRepr::Str(&types?.kind))),
                    _ => d.data.get(key).map(MetaNode::json),
                }
            }
            Source::Typed(_) => self.full_json().get(key).map(MetaNode::json),
        }
    }
}

impl Document for ResourceDoc<'_> {
    type Cursor<'b>
        = MetaNode<'b>
    where
        Self: 'b;
    fn root(&self) -> MetaNode<'_> {
        MetaNode(MetaRepr::Root(self))
    }
}

impl Indexable for DynamicObject {
    type Doc<'a> = ResourceDoc<'a>;
    fn document(&self) -> ResourceDoc<'_> {
        ResourceDoc {
            meta: &self.metadata,
            source: Source::Dynamic(self),
            meta_json: OnceCell::new(),
            full_json: OnceCell::new(),
        }
    }
}

/// A typed resource (any `kube_core::Resource` that serializes, such as a k8s-openapi
/// `Ingress` or a `#[derive(CustomResource)]` type) viewed for indexing.
///
/// Metadata paths read the typed `ObjectMeta` directly; other paths serialize the object to a
/// `Value` once per call (see [`Indexable`]).
///
/// # Usage
/// ```
/// use kstore_indexer::{Indexer, Typed};
/// use k8s_openapi::api::core::v1::ConfigMap;
/// let mut cm = ConfigMap::default();
/// cm.metadata.name = Some("cfg".into());
/// let indexer = Indexer::new(["metadata.namespace", "metadata.name"], [""; 0])?;
/// let keys = indexer.keys(&Typed(&cm))?;
/// assert_eq!(keys.to_vec(), ["", "cfg"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Typed<'a, K>(pub &'a K);

impl<K> Indexable for Typed<'_, K>
where
    K: kube_core::Resource + serde::Serialize,
{
    type Doc<'b>
        = ResourceDoc<'b>
    where
        Self: 'b;
    fn document(&self) -> ResourceDoc<'_> {
        ResourceDoc {
            meta: self.0.meta(),
            source: Source::Typed(self.0),
            meta_json: OnceCell::new(),
            full_json: OnceCell::new(),
        }
    }
}

/// Object-safe "serialize to a `Value`", for typed sources behind a `dyn`.
trait ToJson {
    fn to_json(&self) -> Value;
}

impl<T: serde::Serialize> ToJson for T {
    fn to_json(&self) -> Value {
        // k8s-openapi and derived CRD types always serialize; a failure reads as null.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
