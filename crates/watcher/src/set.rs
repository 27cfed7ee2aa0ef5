//! A named set of watchers with one consistent view for rendering.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cached_store::CachedHandle;
use compact_object::CompactObject;
use kube::Client;
use memory_store::Snapshot;
use store_types::{ChangeStats, Objects, Store, StoreError};

use crate::config::{ConfigError, ResourceConfig, WatchConfig};
use crate::metrics::WatchMetrics;
use crate::resource::{Health, ResourceWatcher, StoreHandle, WatchError, WatchOptions};

/// Called with the resource's name and its debounced changes.
pub type SetChangeCallback = Arc<dyn Fn(&str, ChangeStats) + Send + Sync>;

/// Called once per resource when its initial sync is complete, with the resource's name and
/// the number of objects stored.
pub type SetSyncCallback = Arc<dyn Fn(&str, usize) + Send + Sync>;

/// Options shared by every watcher of a [`ResourceSet`].
#[derive(Clone, Default)]
pub struct SetOptions {
    /// Refractory interval of change notifications (default 5 s).
    pub debounce: Option<Duration>,
    /// Also notify the initial sync.
    pub notify_initial_sync: bool,
    /// Debounced change notifications, per resource.
    pub on_change: Option<SetChangeCallback>,
    /// Use streaming lists.
    pub streaming_lists: bool,
    /// Page size of paged lists.
    pub page_size: Option<u32>,
    /// Called once per resource when its initial sync is complete, with the resource's name
    /// and the number of objects stored (isolated like every callback: a panic is caught and
    /// counted).
    pub on_sync_complete: Option<SetSyncCallback>,
    /// Periodic relist of every resource (default: never); see
    /// [`WatchOptions::resync_interval`](crate::WatchOptions::resync_interval).
    pub resync_interval: Option<Duration>,
}

/// Why a resource set could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A watcher could not start.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// A lookup in a [`SetSnapshot`] that could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No resource of that name is configured.
    #[error("no watched resource named {resource:?} (configured: {configured:?})")]
    UnknownResource {
        /// The name asked for.
        resource: String,
        /// The names configured.
        configured: Vec<String>,
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

/// The outcome of a get-single lookup, with the reason when there is no single object.
#[derive(Clone, Debug)]
pub enum Single {
    /// Exactly one object matched.
    Found(Arc<CompactObject>),
    /// Nothing matched.
    NotFound,
    /// More than one object matched (how many); templates get none.
    Ambiguous(usize),
}

impl Single {
    /// What a lookup's result means for a single-object read.
    pub(crate) fn of(found: &Objects<CompactObject>) -> Single {
        match found.len() {
            0 => Single::NotFound,
            1 => Single::Found(found[0].clone()),
            n => Single::Ambiguous(n),
        }
    }

    /// The object, when exactly one matched.
    pub fn object(&self) -> Option<&Arc<CompactObject>> {
        match self {
            Single::Found(o) => Some(o),
            _ => None,
        }
    }
}

/// Every configured resource, started together.
///
/// # Usage
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use kstore_watcher::{ResourceSet, SetOptions, WatchConfig};
/// let config = WatchConfig::from_yaml(r#"
/// watchedResources:
///   ingresses: {apiVersion: networking.k8s.io/v1, resources: ingresses, indexBy: [metadata.namespace, metadata.name]}
///   services:  {apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name]}
/// "#)?;
/// let set = ResourceSet::start(client, &config, SetOptions::default()).await?;
/// set.wait_for_sync().await;
/// let view = set.snapshot();          // one consistent view for a whole render
/// for ing in view.list("ingresses").await?.iter() { /* … */ }
/// let svc = view.get_single("services", &["default", "web"]).await?;
/// # Ok(()) }
/// ```
pub struct ResourceSet {
    watchers: BTreeMap<String, ResourceWatcher>,
    metrics: WatchMetrics,
    /// Each resource's compiled configuration, shared with snapshots (overlays prepare and
    /// key proposed objects with it).
    configs: Arc<BTreeMap<String, ResourceConfig>>,
}

impl std::fmt::Debug for ResourceSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceSet").field("watchers", &self.watchers).finish()
    }
}

impl ResourceSet {
    /// Validates the whole configuration first (nothing starts if any resource is invalid),
    /// then starts one watcher per resource.
    pub async fn start(client: Client, config: &WatchConfig, options: SetOptions) -> Result<Self, SetError> {
        let compiled = config.compile()?;
        let metrics = WatchMetrics::default();
        let mut watchers = BTreeMap::new();
        let mut configs = BTreeMap::new();
        for rc in compiled {
            let name = rc.name.clone();
            configs.insert(name.clone(), rc.clone());
            let on_change = options.on_change.clone().map(|cb| {
                let name = name.clone();
                Arc::new(move |s: ChangeStats| cb(&name, s)) as crate::ChangeCallback
            });
            let on_sync_complete = options.on_sync_complete.clone().map(|cb| {
                let name = name.clone();
                Arc::new(move |n: usize| cb(&name, n)) as crate::SyncCallback
            });
            let opts = WatchOptions {
                debounce: options.debounce.unwrap_or(crate::DEFAULT_DEBOUNCE),
                notify_initial_sync: options.notify_initial_sync,
                on_change,
                metrics: metrics.clone(),
                streaming_lists: options.streaming_lists,
                page_size: options.page_size,
                on_sync_complete,
                resync_interval: options.resync_interval,
                ..Default::default()
            };
            watchers.insert(name, ResourceWatcher::start(client.clone(), rc, opts).await?);
        }
        Ok(ResourceSet { watchers, metrics, configs: Arc::new(configs) })
    }

    /// The watcher of one resource.
    pub fn watcher(&self, name: &str) -> Option<&ResourceWatcher> {
        self.watchers.get(name)
    }

    /// Every watcher, by name.
    pub fn watchers(&self) -> impl Iterator<Item = (&str, &ResourceWatcher)> {
        self.watchers.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The metrics of every watcher (register them with a prometheus-client registry).
    pub fn metrics(&self) -> &WatchMetrics {
        &self.metrics
    }

    /// True when every resource has completed its initial sync.
    pub fn is_synced(&self) -> bool {
        self.watchers.values().all(ResourceWatcher::is_synced)
    }

    /// Every resource's [`Health`] (a dead watch task, a retried watch error), by name.
    pub fn health(&self) -> BTreeMap<String, Health> {
        self.watchers.iter().map(|(name, w)| (name.clone(), w.health())).collect()
    }

    /// Resolves when every resource has completed its initial sync.
    pub async fn wait_for_sync(&self) {
        for w in self.watchers.values() {
            w.wait_for_sync().await;
        }
    }

    /// A consistent view across all resources: each as of its last applied event, none
    /// changing while the view is held.
    pub fn snapshot(&self) -> SetSnapshot {
        let stores = self
            .watchers
            .iter()
            .map(|(name, w)| {
                let view = match w.store() {
                    StoreHandle::Memory(s) => View::Memory(s.snapshot()),
                    StoreHandle::Cached(c) => View::Cached(c.clone()),
                };
                (name.clone(), view)
            })
            .collect();
        SetSnapshot { stores, configs: self.configs.clone() }
    }

    /// Delivers every resource's pending change notifications now, keeping the watches
    /// running; see [`ResourceWatcher::flush_changes`].
    pub fn flush_changes(&self) {
        for w in self.watchers.values() {
            w.flush_changes();
        }
    }

    /// Stops every watcher (flushing pending notifications). Idempotent.
    pub fn stop(&self) {
        for w in self.watchers.values() {
            w.stop();
        }
    }
}

#[derive(Clone)]
pub(crate) enum View {
    Memory(Snapshot<CompactObject>),
    /// On-demand stores are read live: their references change with the watch, and objects
    /// are fetched (or served from the cache) at the current version.
    Cached(CachedHandle),
}

/// One render's view of a [`ResourceSet`]; see [`ResourceSet::snapshot`]. Cheap to clone.
#[derive(Clone)]
pub struct SetSnapshot {
    pub(crate) stores: BTreeMap<String, View>,
    pub(crate) configs: Arc<BTreeMap<String, ResourceConfig>>,
}

impl SetSnapshot {
    fn view(&self, resource: &str) -> Result<&View, LookupError> {
        self.stores.get(resource).ok_or_else(|| LookupError::UnknownResource {
            resource: resource.to_owned(),
            configured: self.stores.keys().cloned().collect(),
        })
    }

    /// Every object of a resource, ordered by namespace, then name. On-demand resources fetch
    /// what is not cached.
    pub async fn list(&self, resource: &str) -> Result<Objects<CompactObject>, LookupError> {
        match self.view(resource)? {
            View::Memory(s) => Ok(s.list()),
            View::Cached(c) => {
                Store::list(c).await.map_err(|source| LookupError::Store { resource: resource.to_owned(), source })
            }
        }
    }

    /// Objects under 1..=N keys (exact or prefix).
    pub async fn fetch(&self, resource: &str, keys: &[&str]) -> Result<Objects<CompactObject>, LookupError> {
        let result = match self.view(resource)? {
            View::Memory(s) => s.get(keys),
            View::Cached(c) => Store::get(c, keys).await,
        };
        result.map_err(|source| LookupError::Store { resource: resource.to_owned(), source })
    }

    /// The one object under `keys`; [`Single::NotFound`] or [`Single::Ambiguous`] otherwise.
    pub async fn get_single(&self, resource: &str, keys: &[&str]) -> Result<Single, LookupError> {
        Ok(Single::of(&self.fetch(resource, keys).await?))
    }

    /// Number of objects (or references) of a resource in this view.
    pub fn len(&self, resource: &str) -> Result<usize, LookupError> {
        match self.view(resource)? {
            View::Memory(s) => Ok(s.len()),
            View::Cached(c) => Ok(c.references().len()),
        }
    }

    /// The resource names in this view.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }
}
