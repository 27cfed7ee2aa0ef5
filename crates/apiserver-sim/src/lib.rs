//! `apiserver-sim` is an in-process, Kubernetes-API-compatible HTTP server on loopback for
//! tests, benchmarks and demos: kube's `Api`, `kube::runtime::watcher` (list-watch, streaming
//! lists, metadata-only) and `kubectl get` talk to it unchanged. It keeps objects in memory with
//! one global resourceVersion counter, serves legacy and aggregated discovery, paged lists over
//! consistent snapshots, watches with bookmarks, streaming lists and 410 handling, writes
//! (create, update, JSON/merge/strategic merge patch, delete with finalizers, dry runs),
//! label/field selectors, metadata-only and `Table` responses, the OpenAPI v3 paths kubectl
//! reads, and lets tests inject faults and inspect every request served.
//!
//! It is not a real apiserver: there is no authentication, admission, validation beyond names,
//! defaulting, garbage collection, server-side apply field management or persistence; see
//! `docs/apiserver-sim.md` for every known divergence.
//!
//! Start with [`ApiServerSim::start`] (or [`ApiServerSim::builder`] to register extra resources
//! and seed objects), then use [`ApiServerSim::client`]. Change state directly with
//! [`ApiServerSim::create`] and friends, break things with [`ApiServerSim::faults`], observe
//! traffic with [`ApiServerSim::requests`], and generate realistic clusters with
//! [`generate::Cluster`].
//!
//! # Usage
//!
//! ```no_run
//! use kstore_apiserver_sim::{ApiServerSim, generate::Cluster};
//! use kube::api::{Api, DynamicObject, ListParams};
//! use kube::discovery::ApiResource;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = ApiServerSim::builder()
//!     .objects(Cluster::new(7).namespaces(2).apps_per_namespace(3).build())
//!     .start()
//!     .await?;
//! let ar = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
//! let secrets: Api<DynamicObject> = Api::all_with(sim.client(), &ar);
//! assert_eq!(secrets.list(&ListParams::default()).await?.items.len(), 6);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod faults;
pub mod generate;
mod requests;
mod resources;
mod selector;
mod server;
mod state;
mod status;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Faults, Matcher, Rejection};
pub use requests::{RequestLog, RequestRecord, Verb};
pub use resources::{ResourceDef, Scope, builtin_resources};
pub use status::{ApiError, rfc3339};

use faults::FaultState;
use resources::Registry;
use server::Shared;
use state::{ClusterState, StoreConfig};

/// Errors of the simulator's handle API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address that was tried.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operation failed as the HTTP API would have failed it.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A resource name given to the handle API is not served.
    #[error("resource {resource:?} is not served by this simulator")]
    UnknownResource {
        /// The name that did not resolve.
        resource: String,
    },
}

/// Configures and starts an [`ApiServerSim`].
#[derive(Debug, Clone)]
pub struct Builder {
    resources: Vec<ResourceDef>,
    objects: Vec<Value>,
    port: u16,
    bookmark_interval: Duration,
    event_log_capacity: usize,
    watch_buffer: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            resources: builtin_resources(),
            objects: Vec::new(),
            port: 0,
            bookmark_interval: Duration::from_secs(60),
            event_log_capacity: 100_000,
            watch_buffer: 65_536,
        }
    }
}

impl Builder {
    /// Serve an extra resource (CRD-like), namespaced or cluster-scoped.
    pub fn resource(mut self, def: ResourceDef) -> Self {
        self.resources.push(def);
        self
    }

    /// Seed one object (resolved by its apiVersion and kind).
    pub fn object(mut self, obj: Value) -> Self {
        self.objects.push(obj);
        self
    }

    /// Seed many objects, e.g. from [`generate::Cluster::build`].
    pub fn objects(mut self, objs: impl IntoIterator<Item = Value>) -> Self {
        self.objects.extend(objs);
        self
    }

    /// Listen on this loopback port instead of an ephemeral one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// How often watches that allow bookmarks get a BOOKMARK (default 60 s, about what a real
    /// API server sends).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many events are kept for watch replay before older ones are compacted (default 100 000).
    pub fn event_log_capacity(mut self, events: usize) -> Self {
        self.event_log_capacity = events;
        self
    }

    /// How many events a watch may fall behind before its stream is closed (default 65 536).
    pub fn watch_buffer(mut self, events: usize) -> Self {
        self.watch_buffer = events;
        self
    }

    /// Bind `127.0.0.1:port`, load the seed objects and start serving.
    pub async fn start(self) -> Result<ApiServerSim, Error> {
        let registry = Arc::new(Registry::new(self.resources));
        let state = Arc::new(ClusterState::new(
            registry.clone(),
            StoreConfig {
                event_log_capacity: self.event_log_capacity,
                broadcast_capacity: self.watch_buffer,
                snapshot_cache: 32,
            },
        ));
        let mut seeded = Vec::with_capacity(self.objects.len());
        for obj in self.objects {
            seeded.push((state::resource_of(&registry, &obj)?, obj));
        }
        state.load(seeded)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            faults: Arc::new(FaultState::new(state.clone())),
            state,
            requests: RequestLog::new(),
            bookmark_interval: self.bookmark_interval,
            active_watches: watch::Sender::new(0),
            addr,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, shared.clone(), shutdown_rx));
        Ok(ApiServerSim { addr, shared, shutdown, task: Some(task) })
    }
}

/// A running simulator. Stops serving when dropped or [shut down](Self::shutdown).
pub struct ApiServerSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServerSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerSim").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ApiServerSim {
    /// Start an empty simulator with the built-in resources on an ephemeral loopback port.
    pub async fn start() -> Result<Self, Error> {
        Builder::default().start().await
    }

    /// Configure a simulator (extra resources, seed objects, port, tunables).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client configuration pointing at this simulator (namespace `default`).
    pub fn config(&self) -> kube::Config {
        let uri: http::Uri = self.url().parse().unwrap_or_default();
        kube::Config::new(uri)
    }

    /// A kube client for this simulator.
    ///
    /// # Panics
    /// Only if kube cannot build a client for a plain-HTTP config, which it always can.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("kube client for a plain-HTTP loopback config")
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        Faults { state: self.shared.faults.clone() }
    }

    /// The request log.
    pub fn requests(&self) -> RequestLog {
        self.shared.requests.clone()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state.current_rv()
    }

    /// The compaction point: watches from an older resourceVersion get 410 Expired.
    pub fn compacted_resource_version(&self) -> u64 {
        self.shared.state.compacted_rv()
    }

    /// Watches currently streaming.
    pub fn active_watches(&self) -> usize {
        *self.shared.active_watches.borrow()
    }

    /// Wait until at least `n` watches are streaming. Wrap in a timeout in tests.
    pub async fn wait_for_watches(&self, n: usize) {
        let mut rx = self.shared.active_watches.subscribe();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    /// Wait until the number of streaming watches satisfies `pred` (e.g. `|n| n == 0` after
    /// clients went away). Wrap in a timeout in tests.
    pub async fn wait_for_watch_count(&self, pred: impl Fn(usize) -> bool) {
        let mut rx = self.shared.active_watches.subscribe();
        let _ = rx.wait_for(|c| pred(*c)).await;
    }

    fn resolve(&self, resource: &str) -> Result<usize, Error> {
        self.shared
            .state
            .registry()
            .resolve(resource)
            .ok_or_else(|| Error::UnknownResource { resource: resource.to_owned() })
    }

    fn resolve_obj(&self, obj: &Value) -> Result<usize, Error> {
        Ok(state::resource_of(self.shared.state.registry(), obj)?)
    }

    /// Create an object (resource from its apiVersion/kind); returns it as stored.
    pub fn create(&self, obj: Value) -> Result<Value, Error> {
        let res = self.resolve_obj(&obj)?;
        Ok(self.shared.state.create(res, None, obj, false)?.value())
    }

    /// Create, or replace without a resourceVersion check.
    pub fn apply(&self, obj: Value) -> Result<Value, Error> {
        let res = self.resolve_obj(&obj)?;
        Ok(self.shared.state.apply(res, None, obj)?.value())
    }

    /// Replace an object; a non-empty `metadata.resourceVersion` that is stale is a conflict.
    pub fn update(&self, obj: Value) -> Result<Value, Error> {
        let res = self.resolve_obj(&obj)?;
        Ok(self.shared.state.update(res, None, None, obj, true, false)?.value())
    }

    /// JSON-merge-patch an object. `resource` is a plural, `plural.group`, kind or short name.
    pub fn patch(&self, resource: &str, namespace: Option<&str>, name: &str, patch: &Value) -> Result<Value, Error> {
        let res = self.resolve(resource)?;
        Ok(self.shared.state.patch(res, namespace, name, state::PatchKind::Merge, patch, false)?.value())
    }

    /// Delete an object; returns it with the deletion resourceVersion. An object with
    /// finalizers only gets a `deletionTimestamp`; it goes once an update removes them.
    pub fn delete(&self, resource: &str, namespace: Option<&str>, name: &str) -> Result<Value, Error> {
        let res = self.resolve(resource)?;
        Ok(self.shared.state.delete(res, namespace, name, None, false)?.value())
    }

    /// Get an object, `None` if it does not exist.
    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Result<Option<Value>, Error> {
        let res = self.resolve(resource)?;
        match self.shared.state.get(res, namespace, name) {
            Ok(o) => Ok(Some(o.value())),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// All objects of a resource, optionally in one namespace, in key order.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Result<Vec<Value>, Error> {
        let res = self.resolve(resource)?;
        Ok(self.shared.state.list_values(res, namespace))
    }

    /// Number of objects of a resource.
    pub fn count(&self, resource: &str) -> Result<usize, Error> {
        let res = self.resolve(resource)?;
        Ok(self.shared.state.count(res))
    }

    /// Create each object in order as if by [`create`](Self::create) (logged, watchable);
    /// returns how many were created.
    pub fn create_all(&self, objs: impl IntoIterator<Item = Value>) -> Result<usize, Error> {
        let mut n = 0;
        for obj in objs {
            let res = self.resolve_obj(&obj)?;
            self.shared.state.create(res, None, obj, false)?;
            n += 1;
        }
        Ok(n)
    }

    /// Stop serving and wait for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ApiServerSim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
