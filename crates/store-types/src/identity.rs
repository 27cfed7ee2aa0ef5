//! Object identity: who an object is, independent of its index keys.

use std::borrow::Borrow;
use std::fmt;

use crate::KeyTuple;

/// A borrowed view of an object's identity, read from its metadata without copying.
///
/// `namespace` is `""` for cluster-scoped objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityRef<'a> {
    /// `metadata.namespace`, `""` when cluster-scoped.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.uid`, when the object has one (objects built locally often do not).
    pub uid: Option<&'a str>,
}

impl IdentityRef<'_> {
    /// The store slot of this identity: `(namespace, name)`.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.namespace, self.name)
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Identity {
        Identity { key: self.key(), uid: self.uid.map(Box::from) }
    }
}

/// The slot an object occupies in a store: `(namespace, name)`.
///
/// Kubernetes guarantees that at any moment at most one object of a resource has a given
/// namespace and name, so a store holds each `ObjectKey` at most once. Ordering is by namespace,
/// then name; it is the deterministic order of every store result.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(KeyTuple);

impl ObjectKey {
    /// The key of `namespace`/`name` (`""` namespace for cluster-scoped objects).
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectKey(KeyTuple::new([namespace, name]))
    }

    /// The key of a `(namespace, name)` tuple already encoded (shares its allocation), or
    /// `None` when the tuple does not have exactly two elements.
    ///
    /// ```
    /// use kstore_types::{KeyTuple, ObjectKey};
    /// let key = ObjectKey::from_tuple(KeyTuple::new(["default", "web"])).unwrap();
    /// assert_eq!(key, ObjectKey::new("default", "web"));
    /// assert!(ObjectKey::from_tuple(KeyTuple::new(["default"])).is_none());
    /// ```
    pub fn from_tuple(tuple: KeyTuple) -> Option<Self> {
        (tuple.len() == 2).then_some(ObjectKey(tuple))
    }

    /// Namespace (`""` when cluster-scoped).
    pub fn namespace(&self) -> String {
        self.0.elements().next().unwrap_or_default()
    }

    /// Name.
    pub fn name(&self) -> String {
        self.0.elements().nth(1).unwrap_or_default()
    }

    /// The encoded `(namespace, name)` tuple.
    pub fn as_tuple(&self) -> &KeyTuple {
        &self.0
    }
}

/// The encoded `(namespace, name)` tuple's bytes ([`KeyTuple::as_bytes`]): ordered maps keyed by
/// `ObjectKey` can be range-queried by encoded key prefixes (all objects of a namespace).
impl Borrow<[u8]> for ObjectKey {
    fn borrow(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ObjectKey {
    /// `namespace/name`, or `name` for cluster-scoped objects (for messages only: identity
    /// comparisons never use this string).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.namespace();
        if ns.is_empty() { write!(f, "{}", self.name()) } else { write!(f, "{ns}/{}", self.name()) }
    }
}

/// An owned object identity: its store slot and, where known, its uid.
///
/// The uid distinguishes incarnations: an object deleted and recreated under the same name has a
/// new uid. Stores use it to ignore a late delete of an earlier incarnation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    /// `(namespace, name)`.
    pub key: ObjectKey,
    /// `metadata.uid`, when known.
    pub uid: Option<Box<str>>,
}

impl Identity {
    /// An identity without uid.
    pub fn new(namespace: &str, name: &str) -> Self {
        Identity { key: ObjectKey::new(namespace, name), uid: None }
    }

    /// Sets the uid.
    pub fn with_uid(mut self, uid: impl Into<Box<str>>) -> Self {
        self.uid = Some(uid.into());
        self
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.uid {
            Some(uid) => write!(f, "{} (uid {uid})", self.key),
            None => write!(f, "{}", self.key),
        }
    }
}

/// What a store needs to know about an object it holds: who it is and which version it is.
///
/// Implemented for every `kube::Resource` (all typed k8s-openapi objects, `DynamicObject`,
/// `PartialObjectMeta<K>`), and by kstore's compact object type. For plain
/// `serde_json::Value` objects use [`json_identity`] and [`json_resource_version`].
pub trait KubeObject: Send + Sync + 'static {
    /// Namespace, name and uid; `None` when the object has no name (for example one that only
    /// has `metadata.generateName`), which stores reject with a named error.
    fn identity(&self) -> Option<IdentityRef<'_>>;

    /// `metadata.resourceVersion`, when present.
    fn resource_version(&self) -> Option<&str>;

    /// Estimated heap bytes owned by this object, excluding `size_of::<Self>()`. Used for store
    /// memory statistics only; the default is `0` (unknown).
    fn heap_size(&self) -> usize {
        0
    }

    /// `true` when [`identity`](Self::identity) is a plain read of namespace and name strings
    /// (cached-store references: slices of one allocation next to the object; typed objects
    /// and `DynamicObject`: their `ObjectMeta` strings, the same reads kube-rs's store makes
    /// when it compares the `ObjectRef` strings of its keys), so an index may compare
    /// identities by reading the objects instead of keeping its own copy of every identity.
    /// Stores use it to choose a leaner layout (no key tuple, bucket or ordered key map per
    /// object). The default, `false`, suits objects that must decode their identity, such as
    /// compact objects.
    const CHEAP_IDENTITY: bool = false;

    /// `true` when an identity-keyed index should keep an inline copy of each object's
    /// namespace and name beside its pointer, so exact lookups compare inside the index
    /// instead of reading the object (48 more index bytes per object). Only read when
    /// [`CHEAP_IDENTITY`](Self::CHEAP_IDENTITY) is `true`.
    const INLINE_IDENTITY: bool = false;
}

impl<K> KubeObject for K
where
    K: kube_core::Resource + Send + Sync + 'static,
{
    fn identity(&self) -> Option<IdentityRef<'_>> {
        let meta = self.meta();
        Some(IdentityRef {
            namespace: meta.namespace.as_deref().unwrap_or(""),
            name: meta.name.as_deref()?,
            uid: meta.uid.as_deref(),
        })
    }

    fn resource_version(&self) -> Option<&str> {
        self.meta().resource_version.as_deref()
    }

    /// Metadata strings are read in place, as kube-rs's store reads its keys' strings.
    const CHEAP_IDENTITY: bool = true;

    /// Typed objects are large; 48 bytes per object buy exact gets that never leave the index.
    const INLINE_IDENTITY: bool = true;
}

/// Identity of an object held as a `serde_json::Value` (`metadata.namespace`, `metadata.name`,
/// `metadata.uid`); `None` when it has no string `metadata.name`.
///
/// ```
/// let v = serde_json::json!({"metadata": {"name": "web", "namespace": "default"}});
/// let id = kstore_types::json_identity(&v).unwrap();
/// assert_eq!((id.namespace, id.name, id.uid), ("default", "web", None));
/// ```
pub fn json_identity(v: &serde_json::Value) -> Option<IdentityRef<'_>> {
    let meta = v.get("metadata")?;
    Some(IdentityRef {
        namespace: meta.get("namespace").and_then(|n| n.as_str()).unwrap_or(""),
        name: meta.get("name")?.as_str()?,
        uid: meta.get("uid").and_then(|u| u.as_str()),
    })
}

/// `metadata.resourceVersion` of an object held as a `serde_json::Value`.
pub fn json_resource_version(v: &serde_json::Value) -> Option<&str> {
    v.get("metadata")?.get("resourceVersion")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube_core::{DynamicObject, PartialObjectMeta};

    fn meta(ns: Option<&str>, name: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            uid: Some("u1".into()),
            resource_version: Some("42".into()),
            ..Default::default()
        }
    }

    #[test]
    fn typed_dynamic_partial_and_json_agree() {
        let cm = ConfigMap { metadata: meta(Some("default"), Some("cfg")), ..Default::default() };
        let id = cm.identity().unwrap();
        assert_eq!((id.namespace, id.name, id.uid), ("default", "cfg", Some("u1")));
        assert_eq!(KubeObject::resource_version(&cm), Some("42"));

        let dynamic: DynamicObject = serde_json::from_value(serde_json::to_value(&cm).unwrap()).unwrap();
        assert_eq!(dynamic.identity(), Some(id));
        assert_eq!(KubeObject::resource_version(&dynamic), Some("42"));

        let partial: PartialObjectMeta<ConfigMap> =
            PartialObjectMeta { types: None, metadata: cm.metadata.clone(), _phantom: Default::default() };
        assert_eq!(partial.identity(), Some(id));

        let v = serde_json::to_value(&cm).unwrap();
        assert_eq!(json_identity(&v), Some(id));
        assert_eq!(json_resource_version(&v), Some("42"));
    }

    #[test]
    fn cluster_scoped_and_nameless() {
        let ns = Namespace { metadata: meta(None, Some("kube-system")), ..Default::default() };
        assert_eq!(ns.identity().unwrap().namespace, "");
        let nameless = Namespace { metadata: meta(None, None), ..Default::default() };
        assert!(nameless.identity().is_none());
        assert!(json_identity(&serde_json::json!({"metadata": {"name": 3}})).is_none());
    }

    #[test]
    fn object_keys_order_by_namespace_then_name() {
        let mut keys = [ObjectKey::new("b", "a"), ObjectKey::new("a", "z"), ObjectKey::new("", "x")];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["x", "a/z", "b/a"]);
        assert_eq!(ObjectKey::new("a/b", "c").namespace(), "a/b");
        assert_ne!(ObjectKey::new("a/b", "c"), ObjectKey::new("a", "b/c"));
        let id = Identity::new("ns", "n").with_uid("u");
        assert_eq!(id.to_string(), "ns/n (uid u)");
    }
}
