//! The simulator's cluster state: objects of every served resource under one global
//! resourceVersion counter, the event log that feeds watches, and the compaction point.
//!
//! `ClusterState` is shared by the HTTP side and the handle API. Its concerns live in
//! submodules: [`object`] (one stored object version, watch events), [`writes`] (create,
//! update, patch, delete, seeding), [`patch`] (patch formats), [`list`] (snapshots at a
//! resourceVersion, pagination, continue tokens) and [`watch`] (where a watch starts, replay).

mod list;
mod object;
mod patch;
mod strategic;
mod watch;
mod writes;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::{Registry, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

pub(crate) use list::ListRequest;
pub(crate) use object::{Event, EventType, StoredObject};
pub(crate) use patch::PatchKind;
pub(crate) use watch::WatchStart;
pub(crate) use writes::prepare_for_create;

/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub(crate) type Key = (String, String);
/// A persistent (cheaply clonable) ordered map of one resource's objects.
pub(crate) type ObjMap = imbl::OrdMap<Key, Arc<StoredObject>>;

/// Tunables of the cluster state.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub(crate) event_log_capacity: usize,
    pub(crate) broadcast_capacity: usize,
    pub(crate) snapshot_cache: usize,
}

/// Everything behind the state's one lock.
struct Inner {
    rv: u64,
    compacted_rv: u64,
    objects: Vec<ObjMap>,
    log: VecDeque<Arc<Event>>,
    snapshots: VecDeque<((usize, u64), ObjMap)>,
    uid_counter: u64,
    name_counter: u64,
}

/// The object state shared by the HTTP server and the handle API.
pub(crate) struct ClusterState {
    registry: Arc<Registry>,
    cfg: StoreConfig,
    state: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    uid_seed: u64,
}

/// Parse a resourceVersion string.
pub(crate) fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| ApiError::BadRequest {
        message: format!("invalid resource version {s:?}: must be a non-negative integer"),
    })
}

/// Seconds since the Unix epoch (creation and deletion timestamps, Table ages).
pub(crate) fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A UUID-shaped uid derived from a seed and a counter.
pub(crate) fn make_uid(seed: u64, n: u64) -> String {
    let a = splitmix(seed ^ n);
    let b = splitmix(a ^ n.rotate_left(17));
    crate::generate::uuid_from(a, b)
}

impl ClusterState {
    pub(crate) fn new(registry: Arc<Registry>, cfg: StoreConfig) -> Self {
        let (tx, _) = broadcast::channel(cfg.broadcast_capacity.max(16));
        let n = registry.len();
        let uid_seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Self {
            registry,
            cfg,
            state: Mutex::new(Inner {
                rv: 0,
                compacted_rv: 0,
                objects: vec![ObjMap::new(); n],
                log: VecDeque::new(),
                snapshots: VecDeque::new(),
                uid_counter: 0,
                name_counter: 0,
            }),
            tx,
            uid_seed,
        }
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The current global resourceVersion.
    pub(crate) fn current_rv(&self) -> u64 {
        self.state.lock().rv
    }

    /// The compaction point: watches from an older RV get 410.
    pub(crate) fn compacted_rv(&self) -> u64 {
        self.state.lock().compacted_rv
    }

    /// Drop the event log and retained snapshots; watches and continue tokens from before now expire.
    pub(crate) fn compact(&self) {
        let mut st = self.state.lock();
        st.compacted_rv = st.rv;
        st.log.clear();
        st.snapshots.clear();
    }

    fn not_found(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::NotFound {
            plural: def.plural.clone(),
            group: def.group.clone(),
            kind: def.kind.clone(),
            name: name.to_owned(),
        }
    }

    fn key_for(def: &ResourceDef, namespace: Option<&str>, name: &str) -> Key {
        let ns = if def.namespaced() { namespace.unwrap_or_default() } else { "" };
        (ns.to_owned(), name.to_owned())
    }

    fn commit(
        &self,
        st: &mut Inner,
        resource: usize,
        kind: EventType,
        object: Arc<StoredObject>,
        prev: Option<Arc<StoredObject>>,
    ) {
        let key = object.key();
        match kind {
            EventType::Deleted => {
                st.objects[resource].remove(&key);
            }
            _ => {
                st.objects[resource].insert(key, object.clone());
            }
        }
        st.rv = object.rv;
        let ev = Arc::new(Event { rv: object.rv, resource, kind, object, prev });
        if self.cfg.event_log_capacity > 0 {
            while st.log.len() >= self.cfg.event_log_capacity {
                if let Some(old) = st.log.pop_front() {
                    st.compacted_rv = old.rv;
                }
            }
            st.log.push_back(ev.clone());
        } else {
            st.compacted_rv = ev.rv;
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Get one object.
    pub(crate) fn get(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        let key = Self::key_for(def, namespace, name);
        self.state.lock().objects[resource].get(&key).cloned().ok_or_else(|| Self::not_found(def, name))
    }

    /// Number of stored objects of one resource.
    pub(crate) fn count(&self, resource: usize) -> usize {
        self.state.lock().objects[resource].len()
    }
}

/// Resolve the resource of an object from its apiVersion/kind.
pub(crate) fn resource_of(registry: &Registry, obj: &Value) -> Result<usize, ApiError> {
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    registry
        .by_api_version_kind(av, kind)
        .ok_or_else(|| ApiError::ResourceNotFound { resource: format!("{kind}.{av}") })
}

/// Whether an event's object passes the scope/selectors of a watch.
pub(crate) fn object_matches(
    obj: &StoredObject,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> bool {
    namespace.is_none_or(|ns| ns == obj.namespace)
        && labels.matches(&obj.labels)
        && fields.matches(&obj.namespace, &obj.name)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resources::builtin_resources;
    use serde_json::json;

    pub(crate) fn state(log: usize) -> (ClusterState, usize) {
        let reg = Arc::new(Registry::new(builtin_resources()));
        let cm = reg.by_path("", "v1", "configmaps").unwrap();
        let cfg = StoreConfig { event_log_capacity: log, broadcast_capacity: 64, snapshot_cache: 4 };
        (ClusterState::new(reg, cfg), cm)
    }

    pub(crate) fn cm(ns: &str, name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}})
    }

    #[test]
    fn crud_and_global_rv() {
        let (s, r) = state(100);
        let a = s.create(r, Some("a"), cm("a", "x"), false).unwrap();
        assert_eq!(a.rv, 1);
        assert!(matches!(s.create(r, Some("a"), cm("a", "x"), false), Err(ApiError::AlreadyExists { .. })));
        let mut v = a.value();
        v["data"]["k"] = json!("w");
        let b = s.update(r, Some("a"), Some("x"), v.clone(), true, false).unwrap();
        assert_eq!(b.rv, 2);
        // stale RV conflicts
        assert!(matches!(s.update(r, Some("a"), Some("x"), v, true, false), Err(ApiError::Conflict { .. })));
        let d = s.delete(r, Some("a"), "x", None, false).unwrap();
        assert_eq!(d.rv, 3);
        assert_eq!(d.value()["metadata"]["resourceVersion"], "3");
        assert!(matches!(s.get(r, Some("a"), "x"), Err(ApiError::NotFound { .. })));
    }
}
