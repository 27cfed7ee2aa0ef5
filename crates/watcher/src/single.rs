//! A watcher of one named object.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use compact_object::{CompactObject, CompactResource};
use futures::{FutureExt, StreamExt};
use kube::Client;
use kube::api::{Api, ApiResource};
use kube::discovery::Scope;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::Health;

/// Called with the object's state (`None`: it does not exist or was deleted).
pub type ObjectCallback = Arc<dyn Fn(Option<Arc<CompactObject>>) + Send + Sync>;

/// Why an [`ObjectWatcher`] could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectWatchError {
    /// The object's name is empty (a watch of every object is not an object watch).
    #[error("{plural}: object watch needs a name, got an empty one")]
    EmptyName {
        /// The resource's plural name.
        plural: String,
    },
    /// The resource is namespaced and no namespace was given: objects of the same name in
    /// different namespaces would be one object.
    #[error("{plural}/{name}: {plural} is namespaced, a namespace is required")]
    MissingNamespace {
        /// The resource's plural name.
        plural: String,
        /// The object's name.
        name: String,
    },
    /// A namespace was given for a cluster-scoped resource.
    #[error("{plural}/{name}: {plural} is cluster-scoped, but namespace {namespace:?} was given")]
    ClusterScoped {
        /// The resource's plural name.
        plural: String,
        /// The object's name.
        name: String,
        /// The namespace given.
        namespace: String,
    },
}

/// Callbacks of an [`ObjectWatcher`].
#[derive(Clone, Default)]
pub struct ObjectWatchOptions {
    /// Called once, with the object's initial state (`None`: absent), when it is first known.
    /// The initial state is not also reported to `on_change`.
    pub on_sync_complete: Option<ObjectCallback>,
    /// Called with every real change after the initial state.
    pub on_change: Option<ObjectCallback>,
}

impl std::fmt::Debug for ObjectWatchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWatchOptions")
            .field("on_sync_complete", &self.on_sync_complete.is_some())
            .field("on_change", &self.on_change.is_some())
            .finish()
    }
}

/// The last watch error of an [`ObjectWatcher`]: kube's message and when it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWatchError {
    /// The error's message.
    pub message: String,
    /// When it was received.
    pub at: SystemTime,
}

#[derive(Default)]
struct Status {
    last_event: Option<SystemTime>,
    last_error: Option<LastWatchError>,
    /// Callback calls that panicked (caught; the watch goes on).
    callback_panics: u64,
    /// States that could not be represented (nested too deep, not a JSON object).
    rejected: u64,
    /// Set when `stop()` was called.
    stopped: bool,
    /// Why the watch task ended without `stop()`.
    death: Option<String>,
}

/// Watches one named object (for example a credentials Secret) and reports every real change.
///
/// A change is a new resourceVersion, a creation or a deletion; relists and reconnects that
/// deliver the same version again are not reported. Unlike the Go original, which filtered by
/// `metadata.generation`, Secrets and ConfigMaps (which have no generation) are reported too.
/// As in the original, the initial state goes to `on_sync_complete` (once), later changes to
/// `on_change`; [`health`](Self::health), [`is_synced`](Self::is_synced),
/// [`last_event_time`](Self::last_event_time) and [`last_error`](Self::last_error) tell a
/// health check how the watch is doing. Callbacks run on the watcher's task, never under a
/// lock; a callback that panics is caught, logged and counted
/// ([`callback_panics`](Self::callback_panics)) and the watch goes on. A state that cannot be
/// represented (nested deeper than compact-object's `MAX_DEPTH`) is logged, counted
/// ([`rejected_objects`](Self::rejected_objects)) and reported as absent, never as a
/// half-decoded object. Dropping the watcher stops it.
///
/// # Usage
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use kube::discovery::Scope;
/// use kstore_watcher::{ObjectWatchOptions, ObjectWatcher};
/// let secrets = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
/// let options = ObjectWatchOptions {
///     on_sync_complete: Some(Arc::new(|o| println!("initial: present = {}", o.is_some()))),
///     on_change: Some(Arc::new(|o| println!("changed: present = {}", o.is_some()))),
/// };
/// let w = ObjectWatcher::start(client, &secrets, Scope::Namespaced, Some("ops"), "creds", options)?;
/// w.wait_for_sync().await;
/// assert!(w.is_synced());
/// # Ok(()) }
/// ```
pub struct ObjectWatcher {
    current: watch::Receiver<Option<Option<Arc<CompactObject>>>>,
    status: Arc<Mutex<Status>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ObjectWatcher {
    /// Never prints the object (it may be a Secret).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWatcher").field("synced", &self.is_synced()).finish()
    }
}

fn rv(o: &Option<Arc<CompactObject>>) -> Option<String> {
    o.as_ref().and_then(|o| store_types::KubeObject::resource_version(&**o).map(str::to_owned))
}

fn lock(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(|e| e.into_inner())
}

/// The watch loop: every state of the object, deduplicated by resourceVersion, to the
/// channel and the callbacks.
async fn follow(
    api: Api<CompactResource>,
    name: String,
    api_version: String,
    kind: String,
    tx: watch::Sender<Option<Option<Arc<CompactObject>>>>,
    status: Arc<Mutex<Status>>,
    options: ObjectWatchOptions,
) {
    let mut events = watcher::watch_object(api, &name).default_backoff().boxed();
    let call = |cb: &Option<ObjectCallback>, which: &'static str, obj: Option<Arc<CompactObject>>| {
        if let Some(cb) = cb
            && !crate::debounce::isolated(which, || cb(obj))
        {
            lock(&status).callback_panics += 1;
        }
    };
    while let Some(ev) = events.next().await {
        let now = SystemTime::now();
        let obj = match ev {
            Ok(obj) => obj,
            Err(e) => {
                warn!(object = %name, error = %e, "watch error; retrying with backoff");
                lock(&status).last_error = Some(LastWatchError { message: e.to_string(), at: now });
                continue;
            }
        };
        {
            let mut st = lock(&status);
            st.last_event = Some(now);
            st.last_error = None;
        }
        let obj = match obj.map(CompactResource::into_checked).transpose() {
            Ok(obj) => obj,
            Err(compact_object::Rejected { error, .. }) => {
                warn!(object = %name, %error, "object cannot be represented; reported as absent");
                lock(&status).rejected += 1;
                None
            }
        };
        // A listed object of a built-in kind comes without kind/apiVersion: restore them so it
        // equals the watched and fetched forms.
        let obj = obj.map(|o| match o.with_type_meta(&api_version, &kind) {
            Ok(typed) => Arc::new(typed.unwrap_or(o)),
            Err(e) => {
                warn!(object = %name, error = %e, "cannot restore kind/apiVersion; kept as listed");
                Arc::new(o)
            }
        });
        let previous: Option<Option<Arc<CompactObject>>> = tx.borrow().clone();
        match &previous {
            None => {
                // Before `wait_for_sync` resolves, so a caller that waited has seen it.
                call(&options.on_sync_complete, "on_sync_complete", obj.clone());
                tx.send_replace(Some(obj));
            }
            Some(prev) if prev.is_some() != obj.is_some() || rv(prev) != rv(&obj) => {
                tx.send_replace(Some(obj.clone()));
                call(&options.on_change, "on_change", obj);
            }
            Some(_) => {}
        }
    }
}

impl ObjectWatcher {
    /// Starts watching `name` of `resource` (of the given scope: `namespace` is required for a
    /// namespaced resource and refused for a cluster-scoped one). Must be called inside a tokio
    /// runtime.
    pub fn start(
        client: Client,
        resource: &ApiResource,
        scope: Scope,
        namespace: Option<&str>,
        name: &str,
        options: ObjectWatchOptions,
    ) -> Result<Self, ObjectWatchError> {
        let plural = || resource.plural.clone();
        if name.is_empty() {
            return Err(ObjectWatchError::EmptyName { plural: plural() });
        }
        let namespace = namespace.filter(|ns| !ns.is_empty());
        // Decoded straight into the compact form, numbers normalised (as the stores keep objects).
        let api: Api<CompactResource> = match (scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client, ns, resource),
            (Scope::Namespaced, None) => {
                return Err(ObjectWatchError::MissingNamespace { plural: plural(), name: name.to_owned() });
            }
            (Scope::Cluster, None) => Api::all_with(client, resource),
            (Scope::Cluster, Some(ns)) => {
                return Err(ObjectWatchError::ClusterScoped {
                    plural: plural(),
                    name: name.to_owned(),
                    namespace: ns.to_owned(),
                });
            }
        };
        let (tx, rx) = watch::channel::<Option<Option<Arc<CompactObject>>>>(None);
        let status = Arc::new(Mutex::new(Status::default()));
        let task_status = status.clone();
        let name = name.to_owned();
        let (api_version, kind) = (resource.api_version.clone(), resource.kind.clone());
        let task = tokio::spawn(async move {
            /// Records why the task ended, also when it is dropped unfinished or panics.
            struct Death(Arc<Mutex<Status>>, String);
            impl Drop for Death {
                fn drop(&mut self) {
                    let mut st = lock(&self.0);
                    if !st.stopped {
                        tracing::error!(reason = %self.1, "object watch task ended");
                        st.death = Some(std::mem::take(&mut self.1));
                    }
                }
            }
            let mut death =
                Death(task_status.clone(), "the watch task was dropped unfinished (its runtime shut down)".into());
            let run = follow(api, name, api_version, kind, tx, task_status, options);
            death.1 = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(()) => "the watch stream ended".to_owned(),
                Err(payload) => {
                    let reason = format!("the watch task panicked: {}", crate::debounce::panic_message(&*payload));
                    // Not dropped: a payload whose own drop panics would unwind again here.
                    std::mem::forget(payload);
                    reason
                }
            };
        });
        Ok(ObjectWatcher { current: rx, status, task: Mutex::new(Some(task)) })
    }

    /// The object as last seen (`None` before the first answer or when it does not exist).
    pub fn current(&self) -> Option<Arc<CompactObject>> {
        self.current.borrow().clone().flatten()
    }

    /// True once the object's existence is known (its initial state was delivered), and false
    /// again if the watch task has ended without [`stop`](Self::stop): a state nothing updates
    /// any more is not reported as synced.
    pub fn is_synced(&self) -> bool {
        self.current.borrow().is_some() && lock(&self.status).death.is_none()
    }

    /// How the watch is doing, for a health check (the same states as
    /// [`ResourceWatcher::health`](crate::ResourceWatcher::health)): `Syncing` until the
    /// initial state is known, `Ready`, `Degraded` while the latest thing that happened is a
    /// watch error (retried with backoff), `Stopped` after `stop()`, `Dead` when the task
    /// ended otherwise.
    pub fn health(&self) -> Health {
        let synced = self.current.borrow().is_some();
        let st = lock(&self.status);
        if st.stopped {
            return Health::Stopped;
        }
        if let Some(reason) = &st.death {
            return Health::Dead { reason: reason.clone() };
        }
        let last_error = st.last_error.as_ref().map(|e| e.message.clone());
        match (synced, last_error) {
            (false, last_error) => Health::Syncing { last_error },
            (true, Some(last_error)) => Health::Degraded { last_error },
            (true, None) => Health::Ready,
        }
    }

    /// Calls of `on_sync_complete` and `on_change` that panicked: each panic is caught and
    /// logged, and the watch goes on.
    pub fn callback_panics(&self) -> u64 {
        lock(&self.status).callback_panics
    }

    /// States of the object that could not be represented (reported as absent).
    pub fn rejected_objects(&self) -> u64 {
        lock(&self.status).rejected
    }

    /// When the last event (the object's state, from a list or a watch) was received; `None`
    /// before the first.
    pub fn last_event_time(&self) -> Option<SystemTime> {
        lock(&self.status).last_event
    }

    /// The last watch error, while it is the latest thing that happened: cleared by the next
    /// event received (the watch recovered). Errors are retried with kube's default backoff.
    pub fn last_error(&self) -> Option<LastWatchError> {
        lock(&self.status).last_error.clone()
    }

    /// Resolves once the object's existence is known.
    pub async fn wait_for_sync(&self) {
        let mut rx = self.current.clone();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Stops watching. Idempotent.
    pub fn stop(&self) {
        lock(&self.status).stopped = true;
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

impl Drop for ObjectWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}
