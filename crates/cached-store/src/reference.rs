//! [`Reference`]: what the cached store keeps in memory for each object.

use std::fmt;
use std::sync::Arc;

use compact_object::CompactObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use store_types::{Identity, IdentityRef, KubeObject};

use crate::sync::Slot;

/// A reference could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The object has no `metadata.name`.
    #[error("object in namespace {namespace:?} has no metadata.name")]
    MissingName {
        /// Its namespace (`""` when cluster-scoped or unknown).
        namespace: String,
    },
    /// A field is longer than a reference can hold (65 535 bytes; Kubernetes allows 253).
    #[error("{field} of {namespace}/{name} is {len} bytes, more than 65535")]
    TooLong {
        /// Which field: `namespace`, `name`, `uid` or `resourceVersion`.
        field: &'static str,
        /// The namespace (possibly truncated in the message only by the caller).
        namespace: String,
        /// The name.
        name: String,
        /// Its length.
        len: usize,
    },
}

const HAS_UID: u8 = 1;
const HAS_RV: u8 = 2;

/// What a [`CachedStore`](crate::CachedStore) keeps in memory per object: namespace, name, uid
/// and last known resourceVersion — never the object's body.
///
/// # Memory usage
/// One boxed string holding the four fields back to back, lengths and flags, the
/// store-assigned version id and the (usually empty) cache slot: `size_of::<Reference>()` is
/// 40 bytes, the heap part is the sum of the field lengths. A typical Secret reference
/// (namespace 8, name 17, uid 36, resourceVersion 7 bytes) holds 124 bytes including its `Arc`;
/// the index entry around it is measured in `benches/memory.rs` and documented in
/// `docs/cached-store.md`.
pub struct Reference {
    text: Box<str>,
    /// Store-assigned id of this version of the reference (0 until stored). Cache entries are
    /// keyed by it, so a new resourceVersion can never hit an entry of an older one.
    pub(crate) id: u64,
    /// The cached object of this reference version, when cached. Set and cleared only by the
    /// store, together with the quick_cache entry that accounts for it.
    pub(crate) slot: Slot<Cached>,
    ns_len: u16,
    name_len: u16,
    uid_len: u16,
    flags: u8,
}

fn len16(field: &'static str, value: &str, namespace: &str, name: &str) -> Result<u16, ReferenceError> {
    u16::try_from(value.len()).map_err(|_| ReferenceError::TooLong {
        field,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        len: value.len(),
    })
}

impl Reference {
    /// A reference to `namespace`/`name` (`""` namespace when cluster-scoped).
    pub fn new(
        namespace: &str,
        name: &str,
        uid: Option<&str>,
        resource_version: Option<&str>,
    ) -> Result<Reference, ReferenceError> {
        if name.is_empty() {
            return Err(ReferenceError::MissingName { namespace: namespace.to_owned() });
        }
        let ns_len = len16("namespace", namespace, namespace, name)?;
        let name_len = len16("name", name, namespace, name)?;
        let uid_len = len16("uid", uid.unwrap_or(""), namespace, name)?;
        len16("resourceVersion", resource_version.unwrap_or(""), namespace, name)?;
        let mut text = String::with_capacity(
            namespace.len() + name.len() + uid.map_or(0, str::len) + resource_version.map_or(0, str::len),
        );
        text.push_str(namespace);
        text.push_str(name);
        text.push_str(uid.unwrap_or(""));
        text.push_str(resource_version.unwrap_or(""));
        let flags = if uid.is_some() { HAS_UID } else { 0 } | if resource_version.is_some() { HAS_RV } else { 0 };
        Ok(Reference { text: text.into_boxed_str(), id: 0, slot: Slot::empty(), ns_len, name_len, uid_len, flags })
    }

    /// The reference of any object that knows its identity: a `PartialObjectMeta<K>` from a
    /// metadata-only watch, a typed object, a `DynamicObject` or a `CompactObject`.
    pub fn from_object<O: KubeObject + ?Sized>(object: &O) -> Result<Reference, ReferenceError> {
        let id = object.identity().ok_or_else(|| ReferenceError::MissingName { namespace: String::new() })?;
        Reference::new(id.namespace, id.name, id.uid, object.resource_version())
    }

    /// The reference described by an `ObjectMeta`.
    pub fn from_meta(meta: &ObjectMeta) -> Result<Reference, ReferenceError> {
        Reference::new(
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or(""),
            meta.uid.as_deref(),
            meta.resource_version.as_deref(),
        )
    }

    /// `metadata.namespace` (`""` when cluster-scoped).
    #[inline]
    pub fn namespace(&self) -> &str {
        &self.text[..self.ns_len as usize]
    }

    /// `metadata.name`.
    #[inline]
    pub fn name(&self) -> &str {
        let start = self.ns_len as usize;
        &self.text[start..start + self.name_len as usize]
    }

    /// `metadata.uid`, when known.
    #[inline]
    pub fn uid(&self) -> Option<&str> {
        let start = self.ns_len as usize + self.name_len as usize;
        (self.flags & HAS_UID != 0).then(|| &self.text[start..start + self.uid_len as usize])
    }

    /// The last known `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        let start = self.ns_len as usize + self.name_len as usize + self.uid_len as usize;
        (self.flags & HAS_RV != 0).then(|| &self.text[start..])
    }

    /// The owned identity (with uid when known).
    pub fn identity(&self) -> Identity {
        let id = Identity::new(self.namespace(), self.name());
        match self.uid() {
            Some(uid) => id.with_uid(uid),
            None => id,
        }
    }

    /// Same uid and resourceVersion (the store may keep its cache entry).
    pub(crate) fn same_version(&self, other: &Reference) -> bool {
        self.resource_version().is_some()
            && self.resource_version() == other.resource_version()
            && self.uid() == other.uid()
    }
}

/// A cached object, as held in a reference's slot.
pub(crate) struct Cached {
    pub(crate) object: Arc<CompactObject>,
    /// When the entry expires, in milliseconds of the store's clock (fixed at fetch time).
    pub(crate) expires_ms: u64,
    /// Which fill this is (unique in its store): tells this entry from a later one of the same
    /// reference.
    pub(crate) fill: u64,
}

impl Cached {
    pub(crate) fn object(&self) -> &Arc<CompactObject> {
        &self.object
    }
}

impl Clone for Reference {
    /// A copy of the reference; the cache slot is not copied.
    fn clone(&self) -> Self {
        Reference {
            text: self.text.clone(),
            id: self.id,
            slot: Slot::empty(),
            ns_len: self.ns_len,
            name_len: self.name_len,
            uid_len: self.uid_len,
            flags: self.flags,
        }
    }
}

impl PartialEq for Reference {
    /// Same fields and version id (the cache slot is not compared).
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.text == other.text
            && (self.ns_len, self.name_len, self.uid_len, self.flags)
                == (other.ns_len, other.name_len, other.uid_len, other.flags)
    }
}

impl Eq for Reference {}

impl KubeObject for Reference {
    #[inline]
    fn identity(&self) -> Option<IdentityRef<'_>> {
        Some(IdentityRef { namespace: self.namespace(), name: self.name(), uid: self.uid() })
    }

    fn resource_version(&self) -> Option<&str> {
        Reference::resource_version(self)
    }

    fn heap_size(&self) -> usize {
        self.text.len()
    }

    /// Namespace and name are slices of one string.
    const CHEAP_IDENTITY: bool = true;
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reference")
            .field("namespace", &self.namespace())
            .field("name", &self.name())
            .field("uid", &self.uid())
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

/// The annotation in which kubectl's client-side apply stores the whole applied manifest — for
/// a Secret, its `data` and `stringData` included.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes from `meta` what a reference never needs and what may carry an object's data,
/// before a metadata-only feed builds anything from it: the
/// [`kubectl.kubernetes.io/last-applied-configuration`](LAST_APPLIED_ANNOTATION) annotation
/// (a Secret created with `kubectl apply` carries its data there, so a metadata-only watch
/// delivers it) and `managedFields` (field paths and values of every writer).
///
/// A [`Reference`] holds namespace, name, uid and resourceVersion only, so it never keeps these
/// fields; this function is for the metadata the feed holds on the way to the reference — the
/// object its index keys are read from, and every object of a (re)list, buffered until the list
/// is complete. The watcher calls it on every metadata-only event. Index expressions of a
/// metadata-only feed therefore cannot read these two fields (they are missing, which the
/// indexer's missing-field policy handles).
///
/// ```
/// use std::collections::BTreeMap;
/// use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
/// use kstore_cached_store::{LAST_APPLIED_ANNOTATION, redact_metadata};
///
/// let mut meta = ObjectMeta {
///     name: Some("tls".into()),
///     annotations: Some(BTreeMap::from([
///         (LAST_APPLIED_ANNOTATION.to_owned(), r#"{"data":{"tls.key":"UFJJVkFURQ=="}}"#.to_owned()),
///         ("team".to_owned(), "a".to_owned()),
///     ])),
///     ..Default::default()
/// };
/// redact_metadata(&mut meta);
/// assert_eq!(meta.annotations, Some(BTreeMap::from([("team".to_owned(), "a".to_owned())])));
/// ```
pub fn redact_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Orders two resourceVersions when both are decimal integers (as every apiserver backed by
/// etcd produces). `None` when they cannot be compared: resourceVersions are formally opaque.
pub(crate) fn compare_versions(a: Option<&str>, b: Option<&str>) -> Option<std::cmp::Ordering> {
    let a: u64 = a?.parse().ok()?;
    let b: u64 = b?.parse().ok()?;
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let r = Reference::new("default", "tls", Some("u-1"), Some("42")).unwrap();
        assert_eq!(
            (r.namespace(), r.name(), r.uid(), r.resource_version()),
            ("default", "tls", Some("u-1"), Some("42"))
        );
        assert_eq!(r.identity().to_string(), "default/tls (uid u-1)");
        let c = Reference::new("", "node-1", None, None).unwrap();
        assert_eq!((c.namespace(), c.uid(), c.resource_version()), ("", None, None));
        let e = Reference::new("", "x", Some(""), Some("")).unwrap();
        assert_eq!((e.uid(), e.resource_version()), (Some(""), Some("")));
        assert_eq!(
            Reference::new("ns", "", None, None).unwrap_err(),
            ReferenceError::MissingName { namespace: "ns".into() }
        );
        let long = "x".repeat(70_000);
        assert!(matches!(Reference::new("ns", &long, None, None), Err(ReferenceError::TooLong { field: "name", .. })));
        assert_eq!(std::mem::size_of::<Reference>(), 40);
    }

    #[test]
    fn from_metadata() {
        let meta = ObjectMeta {
            namespace: Some("a".into()),
            name: Some("b".into()),
            uid: Some("c".into()),
            resource_version: Some("7".into()),
            ..Default::default()
        };
        let r = Reference::from_meta(&meta).unwrap();
        let pom = kube::core::PartialObjectMeta::<k8s_openapi::api::core::v1::Secret> {
            metadata: meta,
            ..Default::default()
        };
        assert_eq!(Reference::from_object(&pom).unwrap(), r);
        assert!(r.same_version(&Reference::new("a", "b", Some("c"), Some("7")).unwrap()));
        assert!(!r.same_version(&Reference::new("a", "b", Some("d"), Some("7")).unwrap()));
        assert!(!r.same_version(&Reference::new("a", "b", Some("c"), Some("8")).unwrap()));
    }

    #[test]
    fn versions_compare_numerically_when_possible() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions(Some("9"), Some("10")), Some(Less));
        assert_eq!(compare_versions(Some("10"), Some("10")), Some(Equal));
        assert_eq!(compare_versions(Some("a"), Some("10")), None);
        assert_eq!(compare_versions(None, Some("10")), None);
    }
}
