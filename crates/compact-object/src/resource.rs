//! A `kube::Resource` whose body is a [`CompactObject`], so `kube::Api` and
//! `kube::runtime::watcher` decode list pages and watch events straight into the compact form.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use kube_core::{ApiResource, DynamicResourceScope, ObjectMeta, Resource};
use serde::de::DeserializeSeed;
use store_types::{Identity, KubeObject};

use crate::encode::{Builder, PruneSeed, ValueSeed};
use crate::error::Error;
use crate::object::CompactObject;
use crate::scope::DecodePruning;

/// A Kubernetes object of any kind, decoded from the API's JSON in one pass into a
/// [`CompactObject`] (no `serde_json::Value`, no typed `ObjectMeta` of every field), for
/// `kube::Api<CompactResource>` and `kube::runtime::watcher`.
///
/// * Numbers are normalised while decoding: floats without fractional part become integers
///   (see [`integral`](crate::integral)), as kstore stores them.
/// * [`Resource::meta`] holds only what kube's machinery reads — name, namespace, uid and
///   resourceVersion; everything else (labels, annotations, managedFields, …) is in
///   [`object`](Self::object), and only there.
/// * Like `DynamicObject`, the resource type comes from an [`ApiResource`]:
///   `Api::<CompactResource>::all_with(client, &api_resource)`.
/// * **One bad item never fails its page.** An item that is well-formed JSON but cannot be
///   held — nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH), or not a JSON object — still
///   decodes, as a *rejected* resource ([`rejection`](Self::rejection),
///   [`into_checked`](Self::into_checked)) whose identity is readable, so that a list page or
///   watch event around it decodes and the caller skips, counts and logs this one object.
///   Objects of any depth up to `MAX_DEPTH` decode, although serde_json (which kube uses)
///   stops at 128 levels: deep subtrees are read as raw text and decoded in chunks (this needs
///   serde_json as the `Deserializer`; another one fails on objects deeper than 64 levels).
/// * Inside a [`DecodePruning::scope`], the members its pruner removes (`ignoreFields`) are
///   skipped by the parser: never encoded, never interned in the process-wide key table.
///
/// # Memory usage
/// The compact object (0.4–0.65× the JSON size for typical objects) plus four short strings;
/// keep [`into_object`](Self::into_object) and drop the rest.
///
/// ```
/// use kstore_compact_object::CompactResource;
/// use kube_core::ResourceExt;
///
/// let r: CompactResource = serde_json::from_str(
///     r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop",
///         "resourceVersion":"7","managedFields":[{"manager":"kubectl"}]},"spec":{"ports":[{"port":80.0}]}}"#,
/// )?;
/// assert_eq!(r.resource_version().as_deref(), Some("7"));
/// assert_eq!(r.object().pointer("/spec/ports/0/port").and_then(|p| p.as_u64()), Some(80));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct CompactResource {
    metadata: ObjectMeta,
    object: CompactObject,
    /// Why the object cannot be used (see the type's docs); `object` then holds what could be
    /// decoded, with refused containers replaced by `null`.
    rejection: Option<Arc<Error>>,
}

/// A [`CompactResource`] that decoded but cannot be stored: who it is (when readable) and why.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// `metadata.namespace`/`name`/`uid`, when the item has a readable `metadata.name`.
    pub identity: Option<Identity>,
    /// Why: [`Error::TooDeep`] or [`Error::Unsupported`] (not a JSON object).
    pub error: Arc<Error>,
}

impl CompactResource {
    /// Wraps an object (its identity and resourceVersion are copied into [`Resource::meta`]).
    pub fn new(object: CompactObject) -> Self {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let id = object.identity();
        let metadata = ObjectMeta {
            name: owned(id.map(|i| i.name)),
            namespace: owned(id.map(|i| i.namespace).filter(|ns| !ns.is_empty())),
            uid: owned(id.and_then(|i| i.uid)),
            resource_version: owned(object.resource_version()),
            ..ObjectMeta::default()
        };
        CompactResource { metadata, object, rejection: None }
    }

    /// Why this resource cannot be used, when it was decoded as rejected (see the type's docs).
    pub fn rejection(&self) -> Option<&Error> {
        self.rejection.as_deref()
    }

    /// The object, or who it is and why it cannot be used.
    pub fn into_checked(self) -> Result<CompactObject, Rejected> {
        match self.rejection {
            None => Ok(self.object),
            Some(error) => Err(Rejected { identity: self.object.identity().map(|id| id.to_owned()), error }),
        }
    }

    /// The whole object.
    pub fn object(&self) -> &CompactObject {
        &self.object
    }

    /// The whole object, dropping the wrapper. For a rejected resource (see
    /// [`rejection`](Self::rejection)) this is what could be decoded, with refused containers
    /// replaced by `null`; use [`into_checked`](Self::into_checked) to tell.
    pub fn into_object(self) -> CompactObject {
        self.object
    }
}

impl From<CompactObject> for CompactResource {
    fn from(object: CompactObject) -> Self {
        CompactResource::new(object)
    }
}

impl<'de> serde::Deserialize<'de> for CompactResource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut b = Builder::with_capacity(1024);
        b.normalize_numbers = true;
        b.chunked = true;
        b.tolerant = true;
        match DecodePruning::current() {
            None => ValueSeed(&mut b).deserialize(d)?,
            Some(pruning) => {
                let (pruner, root) = pruning.pruner();
                PruneSeed { b: &mut b, pruner: &pruner, state: &root }.deserialize(d)?
            }
        }
        let mut rejection = b.rejection.take();
        let object = CompactObject::from_encoded(b.buf).map_err(serde::de::Error::custom)?;
        if object.root().kind() != crate::NodeKind::Object {
            rejection = Some(Error::Unsupported { message: "a Kubernetes object must be a JSON object".into() });
        }
        Ok(CompactResource { rejection: rejection.map(Arc::new), ..CompactResource::new(object) })
    }
}

impl serde::Serialize for CompactResource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.object.serialize(s)
    }
}

impl fmt::Debug for CompactResource {
    /// The object's summary (never its values; see `CompactObject`'s `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.object.fmt(f)
    }
}

impl Resource for CompactResource {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// The wrapper's copy of the metadata: changing it does not change [`Self::object`].
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
