//! What a template reads: anything that answers list and key lookups by resource name.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use compact_object::CompactObject;
use memory_store::Snapshot;
use minijinja::Value;
use serde::Serialize;
use store_types::{KubeObject, Objects, StoreError};
use watcher::{SetOverlay, SetSnapshot};

use crate::value::compact_value;

/// Something that answers lookups by resource name: a [`SetSnapshot`], a set of typed
/// [`Snapshot`]s ([`TypedSnapshots`]), or a what-if overlay over either. Templates see it as
/// `resources`; the templates do not change with the implementation.
///
/// The lookups are `async` because on-demand stores fetch; the renderer runs the template on a
/// blocking thread and waits for each lookup there (see [`Renderer`](crate::Renderer)). The
/// futures need not be `Send`: they are polled on the thread that asked.
pub trait Lookup: Send + Sync + 'static {
    /// The stored object type.
    type Object: Send + Sync + 'static;
    /// Why a lookup failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The resource names, in the order templates iterate `resources`.
    fn resource_names(&self) -> Vec<String>;

    /// Whether `resource` is one of [`resource_names`](Self::resource_names).
    fn has_resource(&self, resource: &str) -> bool {
        self.resource_names().iter().any(|n| n == resource)
    }

    /// Every object of `resource`, ordered by namespace, then name.
    fn list(&self, resource: &str) -> impl Future<Output = Result<Objects<Self::Object>, Self::Error>>;

    /// The objects under 1..=N index keys of `resource` (exact or prefix).
    fn fetch(&self, resource: &str, keys: &[&str]) -> impl Future<Output = Result<Objects<Self::Object>, Self::Error>>;

    /// The template value of one object. [`CompactObject`]s are lazy views
    /// ([`compact_value`]); typed objects go through `Serialize` ([`serialize_value`]).
    fn to_value(object: &Arc<Self::Object>) -> Value;
}

/// A typed object as a template value, through its `Serialize` impl (converts this one object,
/// when the template reaches it).
pub fn serialize_value<T: Serialize>(object: &T) -> Value {
    Value::from_serialize(object)
}

/// `Lookup` for a watcher type with `SetSnapshot`'s lookup API (`resources`, `list`, `fetch`
/// over compact objects): one implementation for the snapshot and its what-if overlay.
macro_rules! set_lookup {
    ($(#[$doc:meta])* $set:ident) => {
        $(#[$doc])*
        impl Lookup for $set {
            type Object = CompactObject;
            type Error = watcher::LookupError;

            fn resource_names(&self) -> Vec<String> {
                self.resources().map(str::to_owned).collect()
            }

            fn has_resource(&self, resource: &str) -> bool {
                self.resources().any(|n| n == resource)
            }

            fn list(&self, resource: &str) -> impl Future<Output = Result<Objects<CompactObject>, Self::Error>> {
                $set::list(self, resource)
            }

            fn fetch(
                &self,
                resource: &str,
                keys: &[&str],
            ) -> impl Future<Output = Result<Objects<CompactObject>, Self::Error>> {
                $set::fetch(self, resource, keys)
            }

            fn to_value(object: &Arc<CompactObject>) -> Value {
                compact_value(object)
            }
        }
    };
}

set_lookup!(
    /// The seam to the watcher's consistent view: every configured resource of a `ResourceSet`.
    SetSnapshot
);
set_lookup!(
    /// A what-if overlay renders like the snapshot it was built on, with its changes applied:
    /// the same templates answer "would this configuration still render?".
    SetOverlay
);

/// A lookup in [`TypedSnapshots`] that could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedLookupError {
    /// No resource of that name was added.
    #[error("no resource named {resource:?}")]
    UnknownResource {
        /// The name asked for.
        resource: String,
    },
    /// The store rejected the lookup (for example a wrong number of keys).
    #[error("resource {resource:?}: {source}")]
    Store {
        /// The resource.
        resource: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

/// Named snapshots of typed [`MemoryStore`](memory_store::MemoryStore)s (for example of
/// `k8s_openapi` Ingresses) as a [`Lookup`]: objects reach templates through `Serialize`, one
/// object at a time as the template reads it.
pub struct TypedSnapshots<T> {
    stores: BTreeMap<String, Snapshot<T>>,
}

impl<T> Default for TypedSnapshots<T> {
    fn default() -> Self {
        TypedSnapshots { stores: BTreeMap::new() }
    }
}

impl<T> std::fmt::Debug for TypedSnapshots<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedSnapshots").field("resources", &self.stores.keys().collect::<Vec<_>>()).finish()
    }
}

impl<T: KubeObject> TypedSnapshots<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `resource`.
    pub fn with(mut self, resource: impl Into<String>, snapshot: Snapshot<T>) -> Self {
        self.stores.insert(resource.into(), snapshot);
        self
    }

    fn store(&self, resource: &str) -> Result<&Snapshot<T>, TypedLookupError> {
        self.stores.get(resource).ok_or_else(|| TypedLookupError::UnknownResource { resource: resource.to_owned() })
    }
}

impl<T: KubeObject + Serialize + Send + Sync + 'static> Lookup for TypedSnapshots<T> {
    type Object = T;
    type Error = TypedLookupError;

    fn resource_names(&self) -> Vec<String> {
        self.stores.keys().cloned().collect()
    }

    fn has_resource(&self, resource: &str) -> bool {
        self.stores.contains_key(resource)
    }

    async fn list(&self, resource: &str) -> Result<Objects<T>, TypedLookupError> {
        Ok(self.store(resource)?.list())
    }

    async fn fetch(&self, resource: &str, keys: &[&str]) -> Result<Objects<T>, TypedLookupError> {
        self.store(resource)?
            .get(keys)
            .map_err(|source| TypedLookupError::Store { resource: resource.to_owned(), source })
    }

    fn to_value(object: &Arc<T>) -> Value {
        serialize_value(&**object)
    }
}
