//! One watched resource: kube watcher → indexer → store.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cached_store::{CachedHandle, CachedStore, CachedStoreConfig, Reference};
use compact_object::{CompactObject, CompactResource, DecodePruning};
use futures::{FutureExt, Stream, StreamExt, stream};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::{self, ApiCapabilities, Scope};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use memory_store::{Change, MemoryStore, ReadHandle};
use store_types::{ChangeStats, Identity, KeyTuple, KubeObject, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::ResourceConfig;
use crate::debounce::{ChangeCallback, Debouncer};
use crate::metrics::{ResourceMetrics, WatchMetrics};
use crate::reflect::{EventLoop, Sink};

/// Default refractory interval of change notifications.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(5);

/// Called once, when the initial sync is complete, with the number of objects stored.
pub type SyncCallback = Arc<dyn Fn(usize) + Send + Sync>;

/// How a watcher runs and whom it tells.
#[derive(Clone)]
pub struct WatchOptions {
    /// Refractory interval of `on_change` (default 5 s).
    pub debounce: Duration,
    /// Also notify the changes of the initial sync (default: suppressed).
    pub notify_initial_sync: bool,
    /// Debounced change notifications.
    pub on_change: Option<ChangeCallback>,
    /// Fired once when the initial sync is complete.
    pub on_sync_complete: Option<SyncCallback>,
    /// Metrics to report into (shared by a resource set).
    pub metrics: WatchMetrics,
    /// Use streaming lists (`sendInitialEvents`) instead of paged lists for (re)lists.
    pub streaming_lists: bool,
    /// Page size of paged lists (kube's default: 500).
    pub page_size: Option<u32>,
    /// Skip discovery and use this resource description.
    pub api_resource: Option<(ApiResource, Scope)>,
    /// Relist this often (default: never; a resource's own `resyncInterval` takes precedence),
    /// counted from the end of the previous complete list:
    /// the store is replaced at once by the new list, so a change whose watch event was lost
    /// is repaired. Each resync is a full list of the resource (paged or streaming, as
    /// configured): choose minutes, not seconds, for large resources.
    pub resync_interval: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: DEFAULT_DEBOUNCE,
            notify_initial_sync: false,
            on_change: None,
            on_sync_complete: None,
            metrics: WatchMetrics::default(),
            streaming_lists: false,
            page_size: None,
            api_resource: None,
            resync_interval: None,
        }
    }
}

impl std::fmt::Debug for WatchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchOptions")
            .field("debounce", &self.debounce)
            .field("notify_initial_sync", &self.notify_initial_sync)
            .field("streaming_lists", &self.streaming_lists)
            .field("page_size", &self.page_size)
            .field("resync_interval", &self.resync_interval)
            .finish_non_exhaustive()
    }
}

/// Why a watcher could not start. Transient API errors after start never end a watcher; they
/// are retried with kube's default backoff, logged and counted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// Discovery failed or the API server does not serve the resource.
    #[error("resource {resource:?}: {group_version} {plural} is not served by the API server: {source}")]
    Discovery {
        /// The resource's name in the configuration.
        resource: String,
        /// `group/version`.
        group_version: String,
        /// Plural name.
        plural: String,
        /// Kube's error.
        #[source]
        source: kube::Error,
    },
    /// The resource is not in the discovery document of its group version.
    #[error("resource {resource:?}: {group_version} has no resource {plural:?}")]
    UnknownResource {
        /// The resource's name in the configuration.
        resource: String,
        /// `group/version`.
        group_version: String,
        /// Plural name.
        plural: String,
    },
    /// Namespaces were configured for a cluster-scoped resource.
    #[error("resource {resource:?}: namespaces {namespaces:?} given, but {plural} is cluster-scoped")]
    ClusterScoped {
        /// The resource's name in the configuration.
        resource: String,
        /// Plural name.
        plural: String,
        /// The namespaces configured.
        namespaces: Vec<String>,
    },
    /// The store could not be built.
    #[error("resource {resource:?}: {source}")]
    Store {
        /// The resource's name in the configuration.
        resource: String,
        /// The store's error.
        #[source]
        source: store_types::StoreError,
    },
    /// The configuration asks for something this watcher does not do.
    #[error("resource {resource:?}: {message}")]
    Unsupported {
        /// The resource's name in the configuration.
        resource: String,
        /// What is unsupported.
        message: String,
    },
}

/// Why an object was not stored although it decoded: its encoding (after `ignoreFields`) is
/// larger than the resource's `maxObjectBytes`. Counted in `kstore_rejected_objects_total`
/// and logged once per object identity; the rest of its list page is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("object of {bytes} bytes (encoded) exceeds maxObjectBytes {limit}")]
pub struct ObjectTooLarge {
    /// The object's encoded size.
    pub bytes: u64,
    /// The configured bound.
    pub limit: u64,
}

/// How a watcher is doing, for health and readiness checks ([`ResourceWatcher::health`],
/// [`ResourceSet::health`](crate::ResourceSet::health)).
///
/// ```
/// use kstore_watcher::Health;
/// // A readiness probe: serve while the store is complete, even if a watch error is being
/// // retried; fail while syncing and once the watch is stopped or dead.
/// fn ready(h: &Health) -> bool {
///     matches!(h, Health::Ready | Health::Degraded { .. })
/// }
/// assert!(!ready(&Health::Dead { reason: "the watch task panicked: boom".into() }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// The initial list is not complete yet; `last_error` is the latest watch error (retried
    /// with backoff), when the latest thing that happened was an error.
    Syncing {
        /// The latest watch error, until the next event clears it.
        last_error: Option<String>,
    },
    /// Synced and following the watch.
    Ready,
    /// Synced, but the latest thing the watch delivered was an error (being retried with
    /// backoff): the store holds the last state it saw and may lag until the watch recovers.
    /// The next event (or relist) clears it.
    Degraded {
        /// The watch error.
        last_error: String,
    },
    /// [`stop`](ResourceWatcher::stop) was called: the store keeps its last state.
    Stopped,
    /// The watch task ended without `stop()` (a panic escaped it, or its streams ended):
    /// nothing updates the store any more. `is_synced()` and `is_ready()` are false.
    Dead {
        /// What ended it.
        reason: String,
    },
}

/// A read-only handle to the store a watcher feeds: lookups, counts and statistics, never
/// writes. Cheap to clone. The watcher keeps the store's one writer to itself, so nobody
/// holding a handle (a template, a reconciler) can change what the watcher reports as synced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StoreHandle {
    /// `store: full`.
    Memory(ReadHandle<CompactObject>),
    /// `store: on-demand`: references, objects fetched when read.
    Cached(CachedHandle),
}

impl StoreHandle {
    /// Number of objects or references.
    pub fn len(&self) -> usize {
        match self {
            StoreHandle::Memory(s) => s.len(),
            StoreHandle::Cached(s) => Store::len(s),
        }
    }

    /// Objects (or references), key tuples and estimated bytes; for an on-demand store the
    /// estimate covers its references and the cached objects.
    pub fn stats(&self) -> memory_store::MemoryStats {
        match self {
            StoreHandle::Memory(s) => s.stats(),
            StoreHandle::Cached(c) => {
                let refs = c.references().stats();
                memory_store::MemoryStats {
                    estimated_bytes: refs.estimated_bytes + c.cache_stats().cached_bytes as usize,
                    ..refs
                }
            }
        }
    }

    /// The on-demand store's read handle, for `store: on-demand` resources.
    pub fn as_cached(&self) -> Option<&CachedHandle> {
        match self {
            StoreHandle::Cached(s) => Some(s),
            StoreHandle::Memory(_) => None,
        }
    }

    /// The store behind the read-only `Store` trait (for code that works with either).
    pub fn as_dyn(&self) -> &dyn Store<CompactObject> {
        match self {
            StoreHandle::Memory(s) => s,
            StoreHandle::Cached(s) => s,
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The MemoryStore's read handle, for `store: full` resources.
    pub fn as_memory(&self) -> Option<&ReadHandle<CompactObject>> {
        match self {
            StoreHandle::Memory(s) => Some(s),
            StoreHandle::Cached(_) => None,
        }
    }
}

/// The store a watcher feeds, through its one writer (never handed out).
enum StoreWriter {
    /// `store: full`.
    Memory(MemoryStore<CompactObject>),
    /// `store: on-demand`.
    Cached(CachedStore),
}

impl StoreWriter {
    fn handle(&self) -> StoreHandle {
        match self {
            StoreWriter::Memory(s) => StoreHandle::Memory(s.handle()),
            StoreWriter::Cached(c) => StoreHandle::Cached(c.handle()),
        }
    }
}

/// What preparing one object produced.
enum Prepared {
    /// Store this object under these keys.
    Store(Arc<CompactObject>, KeyTuple),
    /// The object must not be in the store (field selector excluded it, or its keys could not
    /// be extracted): remove any earlier copy.
    Exclude(Identity),
    /// The object cannot be identified at all (no name); nothing to do.
    Ignore,
}

struct Shared {
    config: ResourceConfig,
    /// The one writer of the store.
    writer: StoreWriter,
    /// Read-only handle given to users.
    store: StoreHandle,
    metrics: ResourceMetrics,
    failures: indexer::ExtractionFailures,
    /// Objects that cannot be decoded or prepared.
    rejected: indexer::ExtractionFailures,
    /// Calls of `on_sync_complete` that panicked.
    sync_callback_panics: AtomicU64,
    debouncer: Option<Debouncer>,
    notify_initial: bool,
    on_sync: Option<SyncCallback>,
    synced: watch::Sender<bool>,
    /// Streams (one per namespace) that have not completed their first list yet.
    unsynced_streams: Mutex<usize>,
    stopped: AtomicBool,
    /// The watch streams ended (the store is no longer updated).
    ended: AtomicBool,
    /// Why the watch task ended (set with `ended`).
    death: Mutex<Option<String>>,
    /// The latest watch error, until the next event or relist clears it.
    last_error: Mutex<Option<String>>,
    /// `last_error` is set: events take no lock unless it is.
    erred: AtomicBool,
    /// Object events received (listed or watched), for progress reporting.
    received: AtomicU64,
    /// The store is fed from a metadata-only watch.
    metadata_feed: bool,
}

/// A running watch of one resource into its store.
///
/// # Usage
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use kstore_watcher::{ResourceWatcher, WatchOptions, WatchedResource};
/// let cfg: WatchedResource = serde_yaml_ng::from_str(
///     "{apiVersion: networking.k8s.io/v1, resources: ingresses, indexBy: [metadata.namespace, metadata.name]}",
/// )?;
/// let w = ResourceWatcher::start(client, cfg.compile("ingresses", &[])?, WatchOptions::default()).await?;
/// w.wait_for_sync().await;
/// let store = w.store().as_memory().unwrap();
/// let hits = store.get(&["default", "web"])?;
/// # Ok(()) }
/// ```
///
/// # Guarantees
/// * Built on `kube::runtime::watcher` with kube's default backoff: list-watch, resume from
///   resourceVersion, relist on 410, bookmarks. Transient errors are logged, counted and
///   retried; the watcher never ends on its own.
/// * Every (re)list is published to the store at once: readers see the previous complete
///   state until the new list is complete, and objects absent from it disappear.
/// * Deletes remove exactly the deleted object (by identity and uid).
/// * Objects whose keys cannot be extracted are not stored (an earlier copy is removed),
///   counted in `kstore_extraction_failures_total` and logged once per identity.
/// * One bad object never stops the store: an item that cannot be decoded or prepared (nested
///   deeper than 10,000 levels, not a JSON object) is not stored (an earlier copy is removed),
///   counted in `kstore_rejected_objects_total` ([`rejected_objects`](Self::rejected_objects))
///   and logged once per identity; the rest of its list page is stored.
/// * Client-side field selector: an object that stops matching is deleted, one that starts
///   matching is added.
/// * [`wait_for_sync`](Self::wait_for_sync) resolves after every initial event is in the store.
/// * Callbacks run isolated: a panic in `on_sync_complete` or `on_change` is caught, counted
///   ([`callback_panics`](Self::callback_panics)) and logged, and the watcher goes on.
/// * Callbacks are never called while a lock is held. [`stop`](Self::stop) is idempotent and
///   flushes pending change notifications; dropping the watcher stops it.
pub struct ResourceWatcher {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ResourceWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceWatcher")
            .field("resource", &self.shared.config.name)
            .field("store", &self.shared.store)
            .field("synced", &self.is_synced())
            .finish()
    }
}

/// Resolves group/version/plural through discovery.
pub async fn resolve(client: &Client, config: &ResourceConfig) -> Result<(ApiResource, Scope), WatchError> {
    let gv_str =
        if config.group.is_empty() { config.version.clone() } else { format!("{}/{}", config.group, config.version) };
    let gv = kube::core::GroupVersion::gv(&config.group, &config.version);
    let group = discovery::pinned_group(client, &gv).await.map_err(|source| WatchError::Discovery {
        resource: config.name.clone(),
        group_version: gv_str.clone(),
        plural: config.plural.clone(),
        source,
    })?;
    group
        .versioned_resources(&config.version)
        .into_iter()
        .find(|(ar, _)| ar.plural == config.plural)
        .map(|(ar, caps): (ApiResource, ApiCapabilities)| (ar, caps.scope))
        .ok_or_else(|| WatchError::UnknownResource {
            resource: config.name.clone(),
            group_version: gv_str,
            plural: config.plural.clone(),
        })
}

impl ResourceWatcher {
    /// Resolves the resource (discovery, unless `options.api_resource` is set), builds its
    /// store and starts watching. Must be called inside a tokio runtime.
    pub async fn start(client: Client, config: ResourceConfig, options: WatchOptions) -> Result<Self, WatchError> {
        let (ar, scope) = match options.api_resource.clone() {
            Some(x) => x,
            None => resolve(&client, &config).await?,
        };
        if matches!(scope, Scope::Cluster) && !config.namespaces.is_empty() {
            return Err(WatchError::ClusterScoped {
                resource: config.name.clone(),
                plural: config.plural.clone(),
                namespaces: config.namespaces.clone(),
            });
        }
        // One copy of the compiled expressions for the fetch path and the metadata feed.
        let indexer = Arc::new(config.indexer.clone());
        let mut sweeper = None;
        let store = match config.store {
            store_types::StoreType::Memory => StoreWriter::Memory(
                MemoryStore::new(config.indexer.num_keys())
                    .map_err(|source| WatchError::Store { resource: config.name.clone(), source })?,
            ),
            store_types::StoreType::Cached => {
                let mut cfg =
                    CachedStoreConfig::new(ar.clone(), matches!(scope, Scope::Namespaced), config.indexer.num_keys())
                        .ttl(config.cache_ttl)
                        // The indexer as the step: fetches decode with numbers normalised, as the
                        // full watch does, skipping the `ignoreFields` while decoding, so they
                        // are byte for byte the objects a watch would store.
                        .prepare(indexer.clone())
                        // Fetched objects are bounded like watched ones.
                        .max_object_bytes(config.max_object_bytes);
                if let [only] = config.namespaces.as_slice() {
                    cfg = cfg.namespace(only.clone());
                }
                let cached = CachedStore::new(client.clone(), cfg)
                    .map_err(|e| WatchError::Unsupported { resource: config.name.clone(), message: e.to_string() })?;
                sweeper = Some(cached.spawn_sweeper());
                StoreWriter::Cached(cached)
            }
        };
        // An on-demand store whose keys and selectors read only metadata is fed by a
        // metadata-only watch: object bodies are never listed or watched.
        let metadata_feed = matches!(store, StoreWriter::Cached(_)) && config.metadata_only;
        if matches!(store, StoreWriter::Cached(_)) && !metadata_feed {
            info!(resource = %config.name, "on-demand store needs fields outside metadata: full watch, bodies indexed then dropped");
        }

        let mut wc = watcher::Config::default();
        if let Some(ls) = &config.label_selector {
            wc = wc.labels(&ls.to_string());
        }
        if let Some(fs) = &config.server_field_selector {
            wc = wc.fields(fs);
        }
        if options.streaming_lists {
            wc = wc.streaming_lists();
        }
        if let Some(p) = options.page_size {
            wc = wc.page_size(p);
        }
        // One stream per namespace (or one for all namespaces).
        let scopes: Vec<Option<&str>> = if config.namespaces.is_empty() {
            vec![None]
        } else {
            config.namespaces.iter().map(|ns| Some(ns.as_str())).collect()
        };
        let streams = scopes.into_iter().enumerate().map(|(i, ns)| {
            let resync = config.resync_interval.or(options.resync_interval);
            if metadata_feed {
                // `Api<PartialObjectMeta<_>>` makes kube send metadata-only list and watch requests.
                let api: Api<PartialObjectMeta<DynamicObject>> = match ns {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                    None => Api::all_with(client.clone(), &ar),
                };
                let indexer = indexer.clone();
                let wc = wc.clone();
                resyncing(move || watcher::watcher(api.clone(), wc.clone()).default_backoff(), resync)
                    .map(move |ev| (i, ev.map(|ev| meta_event(&indexer, ev))))
                    .boxed()
            } else {
                // Pages and watch events decode straight into compact objects.
                let api: Api<CompactResource> = match ns {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                    None => Api::all_with(client.clone(), &ar),
                };
                let ar = ar.clone();
                let wc = wc.clone();
                let events = resyncing(move || watcher::watcher(api.clone(), wc.clone()).default_backoff(), resync);
                // kube decodes inside this poll: the `ignoreFields` are skipped by the parser, so
                // no removed key is ever encoded or interned in the process-wide key table.
                decode_pruned(events, indexer.decode_pruning())
                    .map(move |ev| (i, ev.map(|ev| compact_event(&ar, ev))))
                    .boxed()
            }
        });
        let merged = stream::select_all(streams);

        let metrics = ResourceMetrics::new(&options.metrics, &config.name);
        let debouncer = options.on_change.clone().map(|cb| Debouncer::new(options.debounce, cb));
        let (synced, _) = watch::channel(false);
        let scoped = !config.namespaces.is_empty();
        let shared = Arc::new(Shared {
            unsynced_streams: Mutex::new(config.namespaces.len().max(1)),
            config,
            store: store.handle(),
            writer: store,
            metrics,
            failures: indexer::ExtractionFailures::default(),
            rejected: indexer::ExtractionFailures::default(),
            sync_callback_panics: AtomicU64::new(0),
            debouncer,
            notify_initial: options.notify_initial_sync,
            on_sync: options.on_sync_complete.clone(),
            synced,
            stopped: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            death: Mutex::new(None),
            last_error: Mutex::new(None),
            erred: AtomicBool::new(false),
            received: AtomicU64::new(0),
            metadata_feed,
        });
        info!(resource = %shared.config.name, plural = %shared.config.plural, store = %shared.config.store, "starting watch");
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                // Records the death however the task ends: its loop returned or panicked, or the
                // task was dropped unfinished (its runtime shut down). `stop()` aborts it on
                // purpose and is not a death.
                struct Death(Arc<Shared>, String);
                impl Drop for Death {
                    fn drop(&mut self) {
                        self.0.died(std::mem::take(&mut self.1));
                    }
                }
                let mut death =
                    Death(shared.clone(), "the watch task was dropped unfinished (its runtime shut down)".into());
                death.1 = match std::panic::AssertUnwindSafe(run(shared, merged, scoped)).catch_unwind().await {
                    Ok(()) => "the watch streams ended".to_owned(),
                    Err(payload) => {
                        let reason = format!("the watch task panicked: {}", crate::debounce::panic_message(&*payload));
                        // Not dropped: a payload whose own drop panics would unwind again here.
                        std::mem::forget(payload);
                        reason
                    }
                };
            }
        });
        Ok(ResourceWatcher { shared, task: Mutex::new(Some(task)), sweeper: Mutex::new(sweeper) })
    }

    /// The resource's name in the configuration.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The compiled configuration.
    pub fn config(&self) -> &ResourceConfig {
        &self.shared.config
    }

    /// The store this watcher feeds.
    pub fn store(&self) -> &StoreHandle {
        &self.shared.store
    }

    /// True while the store is complete and kept current: synced, not stopped, and its watch
    /// streams have not ended. A stopped watcher's store keeps its last state but is not
    /// ready (never silently stale).
    pub fn is_ready(&self) -> bool {
        self.is_synced() && !self.shared.stopped.load(Ordering::SeqCst) && !self.shared.ended.load(Ordering::SeqCst)
    }

    /// True once the initial list is in the store, and false again if the watch task has
    /// ended without `stop()` (its streams finished or it died): a store nothing updates any
    /// more is not reported as synced. See also [`is_ready`](Self::is_ready).
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow() && !self.shared.ended.load(Ordering::SeqCst)
    }

    /// Resolves when the initial list is in the store (at once if it already is). A resource
    /// the API server keeps failing to list never syncs: bound the wait with a timeout.
    pub async fn wait_for_sync(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives as long as `self`, so this only ends when synced.
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Object events received so far (listed during (re)lists, and watched); a progress figure
    /// while the initial list streams in (the store itself changes only when a list is
    /// complete).
    pub fn events_received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Objects dropped because their keys could not be extracted (total events).
    pub fn extraction_failures(&self) -> u64 {
        self.shared.failures.count()
    }

    /// Objects not stored because they cannot be decoded or prepared (nested deeper than
    /// compact-object's `MAX_DEPTH`, not a JSON object, …; total events).
    pub fn rejected_objects(&self) -> u64 {
        self.shared.rejected.count()
    }

    /// Distinct objects currently not in the store because they cannot be decoded, prepared
    /// (too deep, over `maxObjectBytes`, …) or indexed: identities whose latest event was
    /// skipped. An object leaves this count when it is deleted or a later version is stored.
    ///
    /// ```
    /// # use kstore_watcher::ResourceWatcher;
    /// /// Objects the cluster has but the store cannot hold, for an operator's status page.
    /// fn missing(w: &ResourceWatcher) -> String {
    ///     format!("{}: {} objects not stored ({} events)", w.name(), w.skipped_identities(), w.rejected_objects())
    /// }
    /// ```
    pub fn skipped_identities(&self) -> usize {
        self.shared.rejected.distinct() + self.shared.failures.distinct()
    }

    /// How the watch is doing: syncing, ready, degraded (a watch error is being retried),
    /// stopped, or dead (the watch task ended without `stop()`). See [`Health`].
    pub fn health(&self) -> Health {
        let last_error = || self.shared.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if self.shared.stopped.load(Ordering::SeqCst) {
            return Health::Stopped;
        }
        if let Some(reason) = self.shared.death.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Health::Dead { reason };
        }
        if !*self.shared.synced.borrow() {
            return Health::Syncing { last_error: last_error() };
        }
        match last_error() {
            Some(last_error) => Health::Degraded { last_error },
            None => Health::Ready,
        }
    }

    /// Calls of `on_sync_complete` and `on_change` that panicked: each panic is caught and
    /// logged, and the watcher goes on.
    pub fn callback_panics(&self) -> u64 {
        self.shared.sync_callback_panics.load(Ordering::Relaxed)
            + self.shared.debouncer.as_ref().map_or(0, Debouncer::panics)
    }

    /// Delivers pending change notifications now, without waiting for the debounce interval
    /// and without stopping the watch (the Go original's `ForceSync`); the callback runs on the
    /// caller's thread. Returns what was delivered (empty when nothing was pending).
    pub fn flush_changes(&self) -> ChangeStats {
        self.shared.debouncer.as_ref().map(Debouncer::flush).unwrap_or_default()
    }

    /// Stops watching and flushes pending change notifications. Idempotent.
    pub fn stop(&self) {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        for slot in [&self.task, &self.sweeper] {
            if let Some(task) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                task.abort();
            }
        }
        if let Some(d) = &self.shared.debouncer {
            d.stop();
        }
        info!(resource = %self.shared.config.name, "stopped watch");
    }
}

impl Drop for ResourceWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A prepared object and its keys.
type Item = (Arc<CompactObject>, KeyTuple);

/// An object as both feeds deliver it: compact, or (metadata feed only) not representable.
type Incoming = Result<CompactObject, Unrepresentable>;

type Tagged = (usize, Result<Event<Incoming>, watcher::Error>);

/// Metadata that could not be encoded as a compact object (for example nested deeper than
/// compact-object's limit).
struct Unrepresentable {
    identity: Option<Identity>,
    error: Arc<compact_object::Error>,
}

fn map_event<T, U>(ev: Event<T>, f: impl Fn(T) -> U) -> Event<U> {
    match ev {
        Event::Apply(o) => Event::Apply(f(o)),
        Event::Delete(o) => Event::Delete(f(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(f(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// A full-feed event as a compact object. An item decoded as rejected (nested deeper than
/// compact-object's limit, not a JSON object) is unrepresentable, so the rest of its page is
/// stored without it. List items of built-in kinds (which a real API server sends without
/// `kind` and `apiVersion`) get them back from the watched resource, so listed, watched and
/// fetched objects are stored byte-identical.
fn compact_event(ar: &ApiResource, ev: Event<CompactResource>) -> Event<Incoming> {
    map_event(ev, |r| {
        let object = r
            .into_checked()
            .map_err(|compact_object::Rejected { identity, error }| Unrepresentable { identity, error })?;
        match object.with_type_meta(&ar.api_version, &ar.kind) {
            Ok(Some(typed)) => Ok(typed),
            Ok(None) => Ok(object),
            Err(error) => {
                Err(Unrepresentable { identity: object.identity().map(|id| id.to_owned()), error: error.into() })
            }
        }
    })
}

/// A metadata-only event as a compact object with no body, so one pipeline serves both
/// feeds. Whole-field `ignoreFields` patterns on metadata (managedFields, …) are applied to
/// the typed metadata first, so they are never encoded; so is cached-store's redaction (the
/// last-applied annotation, where a `kubectl apply`-created Secret carries its data).
fn meta_event(indexer: &indexer::Indexer, ev: Event<PartialObjectMeta<DynamicObject>>) -> Event<Incoming> {
    map_event(ev, |mut p| {
        indexer.prepare_meta(&mut p.metadata);
        cached_store::redact_metadata(&mut p.metadata);
        CompactObject::from_serialize(&p)
            .map_err(|error| Unrepresentable { identity: Shared::identity_of(&p.metadata), error: Arc::new(error) })
    })
}

/// The watcher's side of the [`EventLoop`]: its store, metrics, sync signal and debouncer.
struct WatcherSink {
    shared: Arc<Shared>,
    /// Streams are per namespace (relists are scoped to theirs).
    scoped: bool,
}

impl Sink<Incoming> for WatcherSink {
    type Item = Item;

    fn received(&self) {
        self.shared.received.fetch_add(1, Ordering::Relaxed);
        self.shared.clear_error();
    }

    fn prepare(&self, object: &Incoming) -> Option<Item> {
        match self.shared.prepare(object) {
            Prepared::Store(o, k) => Some((o, k)),
            Prepared::Exclude(_) | Prepared::Ignore => None,
        }
    }

    fn relist(&self, stream: usize, items: Vec<Item>, initial: bool) {
        self.shared.clear_error();
        let namespace = self.scoped.then(|| self.shared.config.namespaces[stream].as_str());
        let stats = self.shared.relist(namespace, items);
        self.shared.finish_relist(stats, initial);
    }

    fn apply(&self, object: &Incoming) {
        let stats = self.shared.apply(object);
        self.shared.changed(stats);
    }

    fn delete(&self, object: &Incoming) {
        let stats = self.shared.delete(object);
        self.shared.changed(stats);
    }

    fn error(&self, e: &watcher::Error) {
        self.shared.metrics.watch_error();
        *self.shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        self.shared.erred.store(true, Ordering::Relaxed);
        warn!(resource = %self.shared.config.name, error = %e, "watch error; retrying with backoff");
    }
}

/// Drives the watcher's streams through the one [`EventLoop`] (the same loop as
/// [`reflector`](crate::reflect::reflector)).
async fn run(shared: Arc<Shared>, events: impl Stream<Item = Tagged> + Send + Unpin, scoped: bool) {
    let mut events = events;
    let streams = shared.config.namespaces.len().max(1);
    let mut event_loop = EventLoop::new(WatcherSink { shared: shared.clone(), scoped }, streams);
    while let Some((i, ev)) = events.next().await {
        event_loop.handle(i, &ev);
    }
}

/// `make()`'s stream, replaced by a fresh one (which lists again) `every` after each complete
/// list when `every` is set: a periodic resync. The old stream (its watch connection) is
/// dropped when the new one starts; a relist that is in progress is never cut.
fn resyncing<T, S>(make: impl Fn() -> S + Send + 'static, every: Option<Duration>) -> WatchStream<T>
where
    S: Stream<Item = Result<Event<T>, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    let Some(every) = every else { return make().boxed() };
    stream::repeat_with(move || until_due(make(), every)).flatten().boxed()
}

type WatchStream<T> = stream::BoxStream<'static, Result<Event<T>, watcher::Error>>;

/// `s`, polled inside `pruning`'s [`scope`](DecodePruning::scope) (see there why).
fn decode_pruned<S>(mut s: S, pruning: Option<DecodePruning>) -> impl Stream<Item = S::Item> + Send
where
    S: Stream + Unpin + Send,
{
    stream::poll_fn(move |cx| match &pruning {
        Some(p) => p.scope(|| s.poll_next_unpin(cx)),
        None => s.poll_next_unpin(cx),
    })
}

/// `s` until `every` has passed since its latest complete list (`InitDone`).
fn until_due<T, S>(s: S, every: Duration) -> impl Stream<Item = S::Item> + Send
where
    S: Stream<Item = Result<Event<T>, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    let due: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    stream::unfold((s.boxed(), due), move |(mut s, mut due)| async move {
        let item = match due.as_mut() {
            Some(d) => tokio::select! {
                biased;
                () = d.as_mut() => return None,
                item = s.next() => item,
            },
            None => s.next().await,
        }?;
        if matches!(item, Ok(Event::InitDone)) {
            due = Some(Box::pin(tokio::time::sleep(every)));
        }
        Some((item, (s, due)))
    })
}

impl Shared {
    /// The watch task ended without `stop()`: nothing updates the store any more.
    fn died(&self, reason: String) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        tracing::error!(resource = %self.config.name, %reason, "watch task ended; the store is no longer updated");
        *self.death.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.ended.store(true, Ordering::SeqCst);
    }

    /// The watch delivered something other than an error: it is working again.
    fn clear_error(&self) {
        // Set and cleared only by the watch task; `health()` reads under the lock.
        if self.erred.swap(false, Ordering::Relaxed) {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    fn identity_of(meta: &kube::api::ObjectMeta) -> Option<Identity> {
        let name = meta.name.as_deref()?;
        let id = Identity::new(meta.namespace.as_deref().unwrap_or(""), name);
        Some(match meta.uid.as_deref() {
            Some(uid) => id.with_uid(uid),
            None => id,
        })
    }

    /// Field removal → field selector → key extraction, on the compact object itself: no
    /// JSON tree, no typed metadata (the full feed decodes pages and events straight into
    /// compact objects with numbers normalised).
    fn prepare(&self, incoming: &Incoming) -> Prepared {
        let obj = match incoming {
            // One reference count: the event itself is passed on unchanged.
            Ok(obj) => obj.clone(),
            Err(Unrepresentable { identity, error }) => {
                self.reject(identity.as_ref(), &**error);
                return identity.clone().map_or(Prepared::Ignore, Prepared::Exclude);
            }
        };
        let Some(identity) = obj.identity().map(|id| id.to_owned()) else {
            warn!(resource = %self.config.name, "object without metadata.name ignored");
            return Prepared::Ignore;
        };
        // Metadata-feed objects were built from typed metadata, not decoded normalised.
        let obj = match self.config.indexer.prepare_compact(&obj, self.metadata_feed) {
            Ok(pruned) => pruned.unwrap_or(obj),
            Err(e) => {
                self.reject(Some(&identity), &e);
                return Prepared::Exclude(identity);
            }
        };
        let bytes = obj.as_bytes().len() as u64;
        if bytes > self.config.max_object_bytes {
            self.reject(Some(&identity), &ObjectTooLarge { bytes, limit: self.config.max_object_bytes });
            return Prepared::Exclude(identity);
        }
        if let Some(fs) = &self.config.field_selector
            && !fs.matches(&obj)
        {
            return Prepared::Exclude(identity);
        }
        let Some(id_ref) = obj.identity() else {
            return Prepared::Ignore;
        };
        let keys = match self.config.indexer.keys(&obj) {
            Ok(k) => k,
            Err(e) => {
                self.metrics.extraction_failure();
                if self.failures.record(Some(id_ref), &e) {
                    warn!(resource = %self.config.name, object = %identity, error = %e, "index keys not extractable; object not stored");
                }
                return Prepared::Exclude(identity);
            }
        };
        self.failures.forget(id_ref);
        self.rejected.forget(id_ref);
        Prepared::Store(Arc::new(obj), keys)
    }

    /// An object that cannot be decoded or prepared: counted, logged once per identity, not
    /// stored (the caller removes an earlier copy).
    fn reject(&self, identity: Option<&Identity>, error: &dyn std::fmt::Display) {
        self.metrics.rejected_object();
        if self.rejected.record_rejected(identity) {
            let object = identity.map_or_else(|| "(no metadata.name)".to_owned(), ToString::to_string);
            warn!(resource = %self.config.name, %object, %error, "object cannot be decoded or prepared; not stored");
        }
    }

    fn apply(&self, obj: &Incoming) -> ChangeStats {
        let mut stats = ChangeStats::default();
        match self.prepare(obj) {
            Prepared::Store(o, k) => {
                let result = match &self.writer {
                    StoreWriter::Memory(store) => store.update(o, k).map_err(|e| e.to_string()),
                    StoreWriter::Cached(c) if self.metadata_feed => c.apply_object(&*o, k).map_err(|e| e.to_string()),
                    StoreWriter::Cached(c) => c.apply_full_object(o, k).map_err(|e| e.to_string()),
                };
                match result {
                    Ok(Change::Created) => stats.created = 1,
                    Ok(Change::Modified { .. }) => stats.modified = 1,
                    Ok(Change::Unchanged) => self.metrics.events("unchanged", 1),
                    Err(e) => warn!(resource = %self.config.name, error = %e, "store rejected object"),
                }
            }
            Prepared::Exclude(id) => {
                if self.remove(&Identity { key: id.key, uid: None }) {
                    stats.deleted = 1;
                }
                self.metrics.events("skipped", 1);
            }
            Prepared::Ignore => self.metrics.events("skipped", 1),
        }
        stats
    }

    /// Removes one object (or reference) by identity.
    fn remove(&self, id: &Identity) -> bool {
        match &self.writer {
            StoreWriter::Memory(s) => s.delete(id).is_some(),
            StoreWriter::Cached(c) => c.delete_reference(id).is_some(),
        }
    }

    fn delete(&self, obj: &Incoming) -> ChangeStats {
        let mut stats = ChangeStats::default();
        let id = match obj {
            Ok(o) => o.identity().map(|id| {
                self.failures.forget(store_types::IdentityRef { uid: None, ..id });
                self.rejected.forget(id);
                id.to_owned()
            }),
            Err(u) => u.identity.clone().inspect(|id| {
                let (namespace, name) = (id.key.namespace(), id.key.name());
                self.failures.forget(store_types::IdentityRef { namespace: &namespace, name: &name, uid: None });
                self.rejected.forget(store_types::IdentityRef {
                    namespace: &namespace,
                    name: &name,
                    uid: id.uid.as_deref(),
                });
            }),
        };
        if let Some(id) = id
            && self.remove(&id)
        {
            stats.deleted = 1;
        }
        stats
    }

    /// Publishes a complete list at once: for one namespace, or for everything.
    fn relist(&self, namespace: Option<&str>, items: Vec<Item>) -> ChangeStats {
        self.metrics.relist();
        let store = match &self.writer {
            StoreWriter::Memory(store) => store,
            StoreWriter::Cached(cached) => return self.relist_references(cached, namespace, items),
        };
        let result = match namespace {
            None => store.replace_all(items),
            Some(ns) => {
                let old = store.snapshot();
                let mut batch = store.batch();
                let mut keep = std::collections::HashSet::new();
                let mut result = Ok(());
                for (o, k) in items {
                    if let Some(id) = store_types::KubeObject::identity(&*o) {
                        keep.insert(id.key());
                    }
                    if let Err(e) = batch.upsert(o, k) {
                        result = Err(e);
                        break;
                    }
                }
                match result {
                    Ok(()) => {
                        for o in old.iter() {
                            if let Some(id) = store_types::KubeObject::identity(&**o)
                                && id.namespace == ns
                                && !keep.contains(&id.key())
                            {
                                batch.delete(&Identity { key: id.key(), uid: None });
                            }
                        }
                        Ok(batch.commit())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(stats) => {
                debug!(resource = %self.config.name, ?namespace, objects = store.len(), "list applied");
                stats
            }
            Err(e) => {
                warn!(resource = %self.config.name, error = %e, "relist rejected by the store");
                ChangeStats::default()
            }
        }
    }

    /// A relist of an on-demand store: references only, published at once. For one namespace
    /// of several, the other namespaces' references are carried over unchanged.
    fn relist_references(&self, cached: &CachedStore, namespace: Option<&str>, items: Vec<Item>) -> ChangeStats {
        let mut refs: Vec<(Reference, KeyTuple)> = Vec::with_capacity(items.len());
        if let Some(ns) = namespace {
            let current = cached.references();
            refs.extend(
                current.entries().filter(|(r, _)| r.namespace() != ns).map(|(r, k)| (Reference::clone(r), k.clone())),
            );
        }
        for (o, k) in items {
            match Reference::from_object(&*o) {
                Ok(r) => refs.push((r, k)),
                Err(e) => warn!(resource = %self.config.name, error = %e, "object without identity in list"),
            }
        }
        match cached.replace_references(refs) {
            Ok(stats) => stats,
            Err(e) => {
                warn!(resource = %self.config.name, error = %e, "relist rejected by the cached store");
                ChangeStats::default()
            }
        }
    }

    fn finish_relist(&self, mut stats: ChangeStats, initial_for_stream: bool) {
        let became_synced = initial_for_stream && {
            let mut left = self.unsynced_streams.lock().unwrap_or_else(|e| e.into_inner());
            *left = left.saturating_sub(1);
            *left == 0
        };
        let still_initial = !*self.synced.borrow();
        stats.is_initial_sync = still_initial;
        self.update_gauges();
        self.metrics.events("added", stats.created);
        self.metrics.events("modified", stats.modified);
        self.metrics.events("deleted", stats.deleted);
        if (!still_initial || self.notify_initial)
            && let Some(d) = &self.debouncer
        {
            d.record(stats);
        }
        if became_synced {
            let count = self.store.len();
            info!(resource = %self.config.name, objects = count, "initial sync complete");
            // The callback runs before `wait_for_sync` resolves, so a caller that waited has
            // seen it.
            if let Some(cb) = &self.on_sync
                && !crate::debounce::isolated("on_sync_complete", || cb(count))
            {
                self.sync_callback_panics.fetch_add(1, Ordering::Relaxed);
            }
            self.synced.send_replace(true);
        }
    }

    fn changed(&self, stats: ChangeStats) {
        self.update_gauges();
        self.metrics.events("added", stats.created);
        self.metrics.events("modified", stats.modified);
        self.metrics.events("deleted", stats.deleted);
        if let Some(d) = &self.debouncer {
            d.record(stats);
        }
    }

    fn update_gauges(&self) {
        let st = self.store.stats();
        self.metrics.store_changed(st.objects, st.key_tuples, st.estimated_bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    type Ev = Result<Event<u32>, watcher::Error>;

    /// A watcher stream that lists `n` objects after `list_takes`, then watches silently.
    fn fake(started: Arc<AtomicUsize>, list_takes: Duration) -> impl Fn() -> stream::BoxStream<'static, Ev> {
        move || {
            let n = started.fetch_add(1, Ordering::SeqCst) as u32;
            let listed = stream::once(async move {
                tokio::time::sleep(list_takes).await;
                stream::iter([Ok(Event::Init), Ok(Event::InitApply(n)), Ok(Event::InitDone)])
            })
            .flatten();
            listed.chain(stream::pending()).boxed()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn resync_relists_every_interval_after_each_complete_list() {
        let started = Arc::new(AtomicUsize::new(0));
        let every = Duration::from_secs(60);
        let list_takes = Duration::from_secs(90);
        let mut s = resyncing(fake(started.clone(), list_takes), Some(every));
        let t0 = tokio::time::Instant::now();
        let mut done_at = Vec::new();
        while done_at.len() < 3 {
            if let Some(Ok(Event::InitDone)) = s.next().await {
                done_at.push(t0.elapsed());
            }
        }
        // A list longer than the interval is never cut; the next starts `every` after the end
        // of the previous one, on a fresh stream.
        let want: Vec<Duration> = (1..=3u32).map(|k| list_takes * k + every * (k - 1)).collect();
        assert_eq!(done_at, want);
        assert_eq!(started.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_interval_the_stream_is_never_replaced() {
        let started = Arc::new(AtomicUsize::new(0));
        let mut s = resyncing(fake(started.clone(), Duration::from_secs(1)), None);
        for _ in 0..3 {
            assert!(s.next().await.is_some());
        }
        assert!(tokio::time::timeout(Duration::from_secs(3600), s.next()).await.is_err(), "silent, not relisted");
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }
}
