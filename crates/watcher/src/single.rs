//! A watcher of one named object.

use std::sync::{Arc, Mutex};

use compact_object::{CompactObject, CompactResource};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// Called with the object's new state (`None`: it does not exist or was deleted).
pub type ObjectCallback = Arc<dyn Fn(Option<Arc<CompactObject>>) + Send + Sync>;

/// Watches one named object (for example a credentials Secret) and reports every real change.
///
/// A change is a new resourceVersion, a creation or a deletion; relists and reconnects that
/// deliver the same version again are not reported. Unlike the Go original, which filtered by
/// `metadata.generation`, Secrets and ConfigMaps (which have no generation) are reported too.
/// The callback runs on the watcher's task, never under a lock. Dropping the watcher stops it.
pub struct ObjectWatcher {
    current: watch::Receiver<Option<Option<Arc<CompactObject>>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ObjectWatcher {
    /// Never prints the object (it may be a Secret).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWatcher").field("synced", &self.current.borrow().is_some()).finish()
    }
}

fn rv(o: &Option<Arc<CompactObject>>) -> Option<String> {
    o.as_ref().and_then(|o| store_types::KubeObject::resource_version(&**o).map(str::to_owned))
}

impl ObjectWatcher {
    /// Starts watching `name` (in `namespace`, or cluster-scoped when `None`).
    pub fn start(
        client: Client,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        on_change: Option<ObjectCallback>,
    ) -> Self {
        // Decoded straight into the compact form, numbers normalised (as the stores keep objects).
        let api: Api<CompactResource> = match namespace {
            Some(ns) => Api::namespaced_with(client, ns, resource),
            None => Api::all_with(client, resource),
        };
        let (tx, rx) = watch::channel::<Option<Option<Arc<CompactObject>>>>(None);
        let name = name.to_owned();
        let (api_version, kind) = (resource.api_version.clone(), resource.kind.clone());
        let task = tokio::spawn(async move {
            let mut events = watcher::watch_object(api, &name).default_backoff().boxed();
            while let Some(ev) = events.next().await {
                let obj = match ev {
                    Ok(obj) => obj,
                    Err(e) => {
                        warn!(object = %name, error = %e, "watch error; retrying with backoff");
                        continue;
                    }
                };
                // A listed object of a built-in kind comes without kind/apiVersion: restore them
                // so it equals the watched and fetched forms.
                let obj = obj.map(|o| {
                    let o = o.into_object();
                    match o.with_type_meta(&api_version, &kind) {
                        Ok(typed) => Arc::new(typed.unwrap_or(o)),
                        Err(e) => {
                            warn!(object = %name, error = %e, "cannot restore kind/apiVersion; kept as listed");
                            Arc::new(o)
                        }
                    }
                });
                let previous: Option<Option<Arc<CompactObject>>> = tx.borrow().clone();
                let changed = match &previous {
                    None => true,
                    Some(prev) => prev.is_some() != obj.is_some() || rv(prev) != rv(&obj),
                };
                if changed {
                    tx.send_replace(Some(obj.clone()));
                    if let Some(cb) = &on_change {
                        cb(obj);
                    }
                }
            }
        });
        ObjectWatcher { current: rx, task: Mutex::new(Some(task)) }
    }

    /// The object as last seen (`None` before the first answer or when it does not exist).
    pub fn current(&self) -> Option<Arc<CompactObject>> {
        self.current.borrow().clone().flatten()
    }

    /// Resolves once the object's existence is known.
    pub async fn wait_for_sync(&self) {
        let mut rx = self.current.clone();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Stops watching. Idempotent.
    pub fn stop(&self) {
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
