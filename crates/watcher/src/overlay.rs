//! What-if overlays across a [`ResourceSet`](crate::ResourceSet) snapshot.
//!
//! An admission-style check asks "would the configuration still render (or validate) with
//! this Ingress added, that Service changed and this Secret deleted?". [`SetSnapshot::overlay`]
//! starts a [`SetOverlayBuilder`]; each proposed object is prepared exactly as the watcher
//! prepares watched objects — `ignoreFields` removed, numbers normalised, the configured
//! namespaces and the label and field selectors applied (an object they exclude would not be in
//! the store, so it is proposed as a deletion of its identity), index keys extracted with the resource's indexer — and
//! [`SetOverlayBuilder::build`] returns a [`SetOverlay`] with the lookups of a
//! [`SetSnapshot`] (`list`, `fetch`, `get_single`, `len`).
//!
//! The stores are untouched and keep accepting watch events; the overlay's base is the
//! snapshot's. Building costs O(changes · log n) (no copy of any store).
//!
//! On-demand (`store: on-demand`) resources: proposed objects are served from the overlay;
//! every other object is fetched (or served from the cache) as in the snapshot, and base
//! objects the overlay replaces or deletes are dropped from the answer (a lookup still fetches
//! them with the rest: the store's fetch works on whole key lookups).

use std::collections::BTreeMap;
use std::sync::Arc;

use cached_store::CachedHandle;
use compact_object::CompactObject;
use memory_store::{Changes, Overlay, OverlayDelta, OverlaySummary};
use store_types::{KubeObject, ObjectKey, Objects, Store};

use crate::config::ResourceConfig;
use crate::set::{LookupError, SetSnapshot, Single, View};

/// A proposed change that cannot be applied. Every variant names the resource, and the
/// object when it has a name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// No resource of that name is configured.
    #[error("no watched resource named {resource:?} (configured: {configured:?})")]
    UnknownResource {
        /// The name asked for.
        resource: String,
        /// The names configured.
        configured: Vec<String>,
    },
    /// The proposed JSON is not an object kstore can hold.
    #[error("resource {resource:?}: proposed object is not decodable: {source}")]
    Decode {
        /// The resource.
        resource: String,
        /// compact-object's error.
        #[source]
        source: compact_object::Error,
    },
    /// The proposed object has no `metadata.name`.
    #[error("resource {resource:?}: proposed object has no metadata.name")]
    MissingName {
        /// The resource.
        resource: String,
    },
    /// Removing the `ignoreFields` failed.
    #[error("resource {resource:?}: proposed object {object}: not preparable: {source}")]
    Prepare {
        /// The resource.
        resource: String,
        /// The object (`namespace/name`).
        object: ObjectKey,
        /// compact-object's error.
        #[source]
        source: compact_object::Error,
    },
    /// The object's index keys cannot be extracted (the watcher would not store it).
    #[error("resource {resource:?}: proposed object {object}: index keys not extractable: {source}")]
    Keys {
        /// The resource.
        resource: String,
        /// The object (`namespace/name`).
        object: ObjectKey,
        /// The indexer's error (names the expression).
        #[source]
        source: indexer::IndexError,
    },
    /// The store's overlay rejected the change (a key count that does not match the store).
    #[error("resource {resource:?}: {source}")]
    Store {
        /// The resource.
        resource: String,
        /// memory-store's error.
        #[source]
        source: memory_store::OverlayError,
    },
}

/// Collects proposed changes per resource; see [`SetSnapshot::overlay`].
pub struct SetOverlayBuilder {
    base: SetSnapshot,
    changes: BTreeMap<String, Changes<CompactObject>>,
    excluded: BTreeMap<String, Vec<ObjectKey>>,
}

impl SetSnapshot {
    /// Starts a what-if overlay over this view; see [`SetOverlay`].
    ///
    /// # Usage
    /// ```no_run
    /// # async fn demo(set: kstore_watcher::ResourceSet, ingress_json: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut proposal = set.snapshot().overlay();
    /// proposal.upsert_json("ingresses", ingress_json)?;   // addition or modification
    /// proposal.delete("services", "default", "old")?;      // deletion by identity
    /// let view = proposal.build();
    /// let hosts = view.list("ingresses").await?;           // with the proposal applied
    /// println!("{:?}", view.summary("ingresses"));         // created/modified/deleted/no-ops
    /// # Ok(()) }
    /// ```
    pub fn overlay(&self) -> SetOverlayBuilder {
        SetOverlayBuilder { base: self.clone(), changes: BTreeMap::new(), excluded: BTreeMap::new() }
    }
}

impl SetOverlayBuilder {
    fn config(&self, resource: &str) -> Result<&ResourceConfig, ProposalError> {
        self.base.configs.get(resource).ok_or_else(|| ProposalError::UnknownResource {
            resource: resource.to_owned(),
            configured: self.base.configs.keys().cloned().collect(),
        })
    }

    fn changes(&mut self, resource: &str, num_keys: usize) -> &mut Changes<CompactObject> {
        self.changes.entry(resource.to_owned()).or_insert_with(|| Changes::new(num_keys))
    }

    /// Proposes an object given as JSON (an admission request's object): decoded with the
    /// resource's `ignoreFields` skipped and numbers normalised, as on-demand fetches decode;
    /// then as [`upsert`](Self::upsert).
    pub fn upsert_json(&mut self, resource: &str, json: &str) -> Result<&mut Self, ProposalError> {
        let config = self.config(resource)?;
        let object = config
            .indexer
            .decode_compact(json)
            .map_err(|source| ProposalError::Decode { resource: resource.to_owned(), source })?;
        self.propose(resource, object, false)
    }

    /// Proposes `object` for `resource`: an addition, or the modification of the object with
    /// the same identity (moved if its keys changed). Prepared and keyed as the watcher would.
    pub fn upsert(&mut self, resource: &str, object: CompactObject) -> Result<&mut Self, ProposalError> {
        self.propose(resource, object, true)
    }

    fn propose(&mut self, resource: &str, object: CompactObject, normalize: bool) -> Result<&mut Self, ProposalError> {
        let config = self.config(resource)?;
        let Some(object_key) = object.identity().map(|id| id.key()) else {
            return Err(ProposalError::MissingName { resource: resource.to_owned() });
        };
        let object = match config.indexer.prepare_compact(&object, normalize) {
            Ok(pruned) => pruned.unwrap_or(object),
            Err(source) => {
                return Err(ProposalError::Prepare { resource: resource.to_owned(), object: object_key, source });
            }
        };
        let namespace = object_key.namespace();
        let in_scope = config.namespaces.is_empty() || config.namespaces.contains(&namespace);
        let selected = in_scope
            && config.label_selector.as_ref().is_none_or(|ls| ls.matches(&object))
            && config.field_selector.as_ref().is_none_or(|fs| fs.matches(&object));
        let num_keys = config.indexer.num_keys();
        if !selected {
            // The watcher would not hold it: as a proposal, it removes that identity.
            self.excluded.entry(resource.to_owned()).or_default().push(object_key.clone());
            self.changes(resource, num_keys).delete(&object_key.namespace(), &object_key.name());
            return Ok(self);
        }
        let keys = config.indexer.keys(&object).map_err(|source| ProposalError::Keys {
            resource: resource.to_owned(),
            object: object_key.clone(),
            source,
        })?;
        self.changes(resource, num_keys)
            .upsert(Arc::new(object), keys)
            .map_err(|source| ProposalError::Store { resource: resource.to_owned(), source })?;
        Ok(self)
    }

    /// Proposes deleting `namespace`/`name` (`""` for cluster-scoped objects). Deleting an
    /// absent identity is a no-op, reported in [`SetOverlay::summary`].
    pub fn delete(&mut self, resource: &str, namespace: &str, name: &str) -> Result<&mut Self, ProposalError> {
        let num_keys = self.config(resource)?.indexer.num_keys();
        self.changes(resource, num_keys).delete(namespace, name);
        Ok(self)
    }

    /// The read-only view with every proposed change applied. O(changes · log n).
    pub fn build(self) -> SetOverlay {
        let SetOverlayBuilder { base, mut changes, mut excluded } = self;
        let stores = base
            .stores
            .into_iter()
            .map(|(name, view)| {
                let excluded = excluded.remove(&name).unwrap_or_default();
                let view = match (view, changes.remove(&name)) {
                    (View::Memory(s), c) => {
                        let c = c.unwrap_or_else(|| Changes::new(s.num_keys()));
                        OverlayView::Memory(s.overlay(c), excluded)
                    }
                    (View::Cached(store), c) => {
                        let refs = store.references();
                        let c = c.unwrap_or_else(|| Changes::new(refs.num_keys()));
                        let delta = OverlayDelta::new(c, |ns, n| refs.get_by_identity(ns, n).is_some());
                        OverlayView::Cached(store, delta, excluded)
                    }
                };
                (name, view)
            })
            .collect();
        SetOverlay { stores }
    }
}

enum OverlayView {
    Memory(Overlay<CompactObject>, Vec<ObjectKey>),
    Cached(CachedHandle, OverlayDelta<CompactObject>, Vec<ObjectKey>),
}

/// What an overlay changes in one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceOverlaySummary {
    /// Created, modified and deleted identities, and deletions of absent identities.
    pub changes: OverlaySummary,
    /// Proposed objects the resource's namespaces, label selector or field selector exclude
    /// (proposed as deletions of their identity, as the watcher would not hold them).
    pub excluded: Vec<ObjectKey>,
}

/// A [`SetSnapshot`] with proposed changes applied; see [`SetSnapshot::overlay`]. Same lookups
/// as the snapshot, read-only.
///
/// Proposed objects are prepared as the watcher prepares watched ones (`ignoreFields`
/// removed, numbers normalised, label and field selectors applied — an object they exclude is
/// proposed as a deletion of its identity —, index keys extracted with the resource's
/// indexer). The stores are untouched and keep accepting watch events; building costs
/// O(changes · log n) and copies no store. On-demand resources serve proposed objects from
/// the overlay and fetch the rest as the snapshot does (base objects the overlay replaces or
/// deletes are dropped from the answer; they are still fetched with the lookup's others).
pub struct SetOverlay {
    stores: BTreeMap<String, OverlayView>,
}

impl std::fmt::Debug for SetOverlay {
    /// Summaries only, never object contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.stores.keys().map(|k| (k, self.summary(k).ok()))).finish()
    }
}

impl SetOverlay {
    fn view(&self, resource: &str) -> Result<&OverlayView, LookupError> {
        self.stores.get(resource).ok_or_else(|| LookupError::UnknownResource {
            resource: resource.to_owned(),
            configured: self.stores.keys().cloned().collect(),
        })
    }

    /// Every object of a resource, ordered by namespace, then name. On-demand resources fetch
    /// what is neither proposed nor cached.
    pub async fn list(&self, resource: &str) -> Result<Objects<CompactObject>, LookupError> {
        let store_err = |source| LookupError::Store { resource: resource.to_owned(), source };
        match self.view(resource)? {
            OverlayView::Memory(o, _) => Ok(o.list()),
            OverlayView::Cached(c, delta, _) => {
                let base = Store::list(c).await.map_err(store_err)?;
                Ok(delta.list(base.iter()).cloned().collect())
            }
        }
    }

    /// Objects under 1..=N keys (exact or prefix).
    pub async fn fetch(&self, resource: &str, keys: &[&str]) -> Result<Objects<CompactObject>, LookupError> {
        let store_err = |source| LookupError::Store { resource: resource.to_owned(), source };
        match self.view(resource)? {
            OverlayView::Memory(o, _) => o.get(keys).map_err(store_err),
            OverlayView::Cached(c, delta, _) => {
                let base = Store::get(c, keys).await.map_err(store_err)?;
                Ok(delta.get(keys, base))
            }
        }
    }

    /// The one object under `keys`; [`Single::NotFound`] or [`Single::Ambiguous`] otherwise.
    pub async fn get_single(&self, resource: &str, keys: &[&str]) -> Result<Single, LookupError> {
        Ok(Single::of(&self.fetch(resource, keys).await?))
    }

    /// Number of objects (or references) of a resource with the changes applied.
    pub fn len(&self, resource: &str) -> Result<usize, LookupError> {
        Ok(match self.view(resource)? {
            OverlayView::Memory(o, _) => o.len(),
            OverlayView::Cached(c, delta, _) => delta.len_over(c.references().len()),
        })
    }

    /// What the overlay changes in `resource`.
    pub fn summary(&self, resource: &str) -> Result<ResourceOverlaySummary, LookupError> {
        let (changes, excluded) = match self.view(resource)? {
            OverlayView::Memory(o, excluded) => (o.summary(), excluded),
            OverlayView::Cached(_, delta, excluded) => (delta.summary(), excluded),
        };
        Ok(ResourceOverlaySummary { changes: changes.clone(), excluded: excluded.clone() })
    }

    /// The resource names in this view.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }
}
