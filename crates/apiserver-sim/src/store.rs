//! In-memory object storage with one global resourceVersion counter, an event log for watch
//! replay, consistent list snapshots and a compaction point.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::resources::{Registry, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, rfc3339};

/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub(crate) type Key = (String, String);
/// A persistent (cheaply clonable) ordered map of one resource's objects.
pub(crate) type ObjMap = imbl::OrdMap<Key, Arc<StoredObject>>;

/// One stored object version: immutable, pre-serialised.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) rv: u64,
    pub(crate) labels: BTreeMap<String, String>,
    /// The full object as JSON, including apiVersion, kind and metadata.resourceVersion.
    pub(crate) json: Bytes,
    meta: OnceLock<Bytes>,
}

impl StoredObject {
    fn from_value(value: &Value, rv: u64) -> Self {
        let meta = &value["metadata"];
        let s = |k: &str| meta[k].as_str().unwrap_or_default().to_owned();
        let labels = meta["labels"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect())
            .unwrap_or_default();
        Self {
            namespace: s("namespace"),
            name: s("name"),
            rv,
            labels,
            json: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            meta: OnceLock::new(),
        }
    }

    /// The object as a JSON value.
    pub(crate) fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The object as a `PartialObjectMetadata` (computed once, then cached).
    pub(crate) fn metadata_json(&self) -> &Bytes {
        self.meta.get_or_init(|| {
            #[derive(serde::Deserialize)]
            struct OnlyMeta {
                #[serde(default)]
                metadata: Value,
            }
            let m: OnlyMeta = serde_json::from_slice(&self.json).unwrap_or(OnlyMeta { metadata: json!({}) });
            let v = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": m.metadata,
            });
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        })
    }

    fn key(&self) -> Key {
        (self.namespace.clone(), self.name.clone())
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as kept in the event log and fanned out to watches.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) resource: usize,
    pub(crate) kind: EventType,
    /// The new state (for DELETED: the object as deleted, carrying the deletion RV).
    pub(crate) object: Arc<StoredObject>,
    /// The state before this change, if any.
    pub(crate) prev: Option<Arc<StoredObject>>,
}

/// Tunables of the store.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub(crate) event_log_capacity: usize,
    pub(crate) broadcast_capacity: usize,
    pub(crate) snapshot_cache: usize,
}

struct State {
    rv: u64,
    compacted_rv: u64,
    objects: Vec<ObjMap>,
    log: VecDeque<Arc<Event>>,
    snapshots: VecDeque<((usize, u64), ObjMap)>,
    uid_counter: u64,
    name_counter: u64,
}

/// The object store shared by the HTTP server and the handle API.
pub(crate) struct Store {
    registry: Arc<Registry>,
    cfg: StoreConfig,
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Event>>,
    uid_seed: u64,
}

/// What the list request asks for.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListRequest {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) rv_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub(crate) rv: u64,
    pub(crate) items: Vec<Arc<StoredObject>>,
    pub(crate) continue_token: Option<String>,
    pub(crate) remaining: Option<u64>,
}

/// How a watch begins.
pub(crate) struct WatchStart {
    /// Current state to send as synthetic ADDED events, if requested.
    pub(crate) initial: Option<ObjMap>,
    /// Logged events after the requested RV, to replay.
    pub(crate) replay: Vec<Arc<Event>>,
    /// Live events; events with rv <= `start_rv` must be skipped.
    pub(crate) rx: broadcast::Receiver<Arc<Event>>,
    /// The RV the watch is positioned at once `initial`/`replay` are sent.
    pub(crate) start_rv: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
    #[serde(default)]
    served: u64,
    #[serde(default)]
    total: Option<u64>,
}

/// Parse a resourceVersion string.
pub(crate) fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| ApiError::BadRequest {
        message: format!("invalid resource version {s:?}: must be a non-negative integer"),
    })
}

fn now_unix() -> i64 {
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        if let Value::Object(t) = target {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
    } else {
        *target = patch.clone();
    }
}

impl Store {
    pub(crate) fn new(registry: Arc<Registry>, cfg: StoreConfig) -> Self {
        let (tx, _) = broadcast::channel(cfg.broadcast_capacity.max(16));
        let n = registry.len();
        let uid_seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Self {
            registry,
            cfg,
            state: Mutex::new(State {
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
        st: &mut State,
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

    /// Normalise an incoming object for `def`, checking apiVersion/kind and namespace.
    fn check_body(def: &ResourceDef, namespace: Option<&str>, body: &mut Value) -> Result<(), ApiError> {
        let Some(obj) = body.as_object_mut() else {
            return Err(ApiError::BadRequest { message: "the request body must be a JSON object".into() });
        };
        let api_version = def.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                obj.insert("apiVersion".into(), Value::String(api_version));
            }
            Some(av) if av == api_version => {}
            Some(av) => {
                return Err(ApiError::BadRequest {
                    message: format!(
                        "the API version in the data ({av}) does not match the expected API version ({api_version})"
                    ),
                });
            }
        }
        match obj.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                obj.insert("kind".into(), Value::String(def.kind.clone()));
            }
            Some(k) if k == def.kind => {}
            Some(k) => {
                return Err(ApiError::BadRequest {
                    message: format!("the kind in the data ({k}) does not match the expected kind ({})", def.kind),
                });
            }
        }
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        let Some(meta) = meta.as_object_mut() else {
            return Err(ApiError::BadRequest { message: "metadata must be an object".into() });
        };
        if def.namespaced() {
            let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or_default();
            let ns = match (namespace, body_ns) {
                (Some(p), "") => p.to_owned(),
                (Some(p), b) if p == b => p.to_owned(),
                (Some(_), _) => {
                    return Err(ApiError::BadRequest {
                        message:
                            "the namespace of the provided object does not match the namespace sent on the request"
                                .into(),
                    });
                }
                (None, "") => {
                    return Err(ApiError::BadRequest {
                        message: "a namespace must be provided for a namespaced resource".into(),
                    });
                }
                (None, b) => b.to_owned(),
            };
            meta.insert("namespace".into(), Value::String(ns));
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn set_meta(value: &mut Value, key: &str, v: Value) {
        if let Some(m) = value["metadata"].as_object_mut() {
            m.insert(key.to_owned(), v);
        }
    }

    /// Create an object. `namespace` comes from the request path, if any.
    pub(crate) fn create(
        &self,
        resource: usize,
        namespace: Option<&str>,
        mut body: Value,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        Self::check_body(def, namespace, &mut body)?;
        let mut st = self.state.lock();
        let meta = &body["metadata"];
        let mut name = meta["name"].as_str().unwrap_or_default().to_owned();
        if name.is_empty() {
            let prefix = meta["generateName"].as_str().unwrap_or_default();
            if prefix.is_empty() {
                return Err(ApiError::Invalid {
                    kind: def.kind.clone(),
                    name: String::new(),
                    message: "metadata.name: Required value: name or generateName is required".into(),
                });
            }
            st.name_counter += 1;
            let suffix = splitmix(self.uid_seed ^ st.name_counter);
            let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String =
                (0..5).map(|i| alphabet[((suffix >> (i * 8)) % alphabet.len() as u64) as usize] as char).collect();
            name = format!("{prefix}{suffix}");
            Self::set_meta(&mut body, "name", Value::String(name.clone()));
        }
        if !valid_name(&name) {
            return Err(ApiError::Invalid {
                kind: def.kind.clone(),
                name: name.clone(),
                message: format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
                ),
            });
        }
        let key = Self::key_for(def, body["metadata"]["namespace"].as_str(), &name);
        if st.objects[resource].contains_key(&key) {
            return Err(ApiError::AlreadyExists {
                plural: def.plural.clone(),
                group: def.group.clone(),
                kind: def.kind.clone(),
                name,
            });
        }
        let rv = st.rv + 1;
        Self::stamp_new(&mut st, self.uid_seed, &mut body, rv);
        let obj = Arc::new(StoredObject::from_value(&body, rv));
        self.commit(&mut st, resource, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    fn stamp_new(st: &mut State, uid_seed: u64, body: &mut Value, rv: u64) {
        let meta = &body["metadata"];
        if meta["uid"].as_str().is_none_or(str::is_empty) {
            st.uid_counter += 1;
            let uid = make_uid(uid_seed, st.uid_counter);
            Self::set_meta(body, "uid", Value::String(uid));
        }
        if body["metadata"]["creationTimestamp"].as_str().is_none_or(str::is_empty) {
            Self::set_meta(body, "creationTimestamp", Value::String(rfc3339(now_unix())));
        }
        if body.get("spec").is_some() && body["metadata"]["generation"].as_i64().is_none() {
            Self::set_meta(body, "generation", json!(1));
        }
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("deletionTimestamp");
        }
        Self::set_meta(body, "resourceVersion", Value::String(rv.to_string()));
    }

    /// Replace an object (PUT). With `check_rv`, a non-empty metadata.resourceVersion that
    /// differs from the stored one is a conflict.
    pub(crate) fn update(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: Option<&str>,
        mut body: Value,
        check_rv: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        Self::check_body(def, namespace, &mut body)?;
        let body_name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let name = match name {
            Some(n) if body_name.is_empty() || body_name == n => n.to_owned(),
            Some(_) => {
                return Err(ApiError::BadRequest {
                    message: "the name of the object does not match the name on the URL".into(),
                });
            }
            None => body_name,
        };
        Self::set_meta(&mut body, "name", Value::String(name.clone()));
        let key = Self::key_for(def, body["metadata"]["namespace"].as_str(), &name);
        let mut st = self.state.lock();
        let Some(old) = st.objects[resource].get(&key).cloned() else {
            return Err(Self::not_found(def, &name));
        };
        self.replace_locked(&mut st, resource, def, old, body, check_rv)
    }

    fn replace_locked(
        &self,
        st: &mut State,
        resource: usize,
        def: &ResourceDef,
        old: Arc<StoredObject>,
        mut body: Value,
        check_rv: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let sent_rv = body["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
        if check_rv && !sent_rv.is_empty() && sent_rv != old.rv.to_string() {
            return Err(ApiError::Conflict {
                plural: def.plural.clone(),
                group: def.group.clone(),
                kind: def.kind.clone(),
                name: old.name.clone(),
                message: "the object has been modified; please apply your changes to the latest version and try again"
                    .into(),
            });
        }
        let old_value = old.value();
        // Server-owned fields are preserved.
        for k in ["uid", "creationTimestamp"] {
            match old_value["metadata"].get(k) {
                Some(v) => Self::set_meta(&mut body, k, v.clone()),
                None => {
                    if let Some(m) = body["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        let old_gen = old_value["metadata"]["generation"].as_i64();
        let generation = match old_gen {
            Some(g) if body.get("spec") != old_value.get("spec") => Some(g + 1),
            Some(g) => Some(g),
            None if body.get("spec").is_some() => Some(1),
            None => None,
        };
        match generation {
            Some(g) => Self::set_meta(&mut body, "generation", json!(g)),
            None => {
                if let Some(m) = body["metadata"].as_object_mut() {
                    m.remove("generation");
                }
            }
        }
        // A no-op update does not bump the resourceVersion.
        Self::set_meta(&mut body, "resourceVersion", Value::String(old.rv.to_string()));
        if body == old_value {
            return Ok(old);
        }
        let rv = st.rv + 1;
        Self::set_meta(&mut body, "resourceVersion", Value::String(rv.to_string()));
        let obj = Arc::new(StoredObject::from_value(&body, rv));
        self.commit(st, resource, EventType::Modified, obj.clone(), Some(old));
        Ok(obj)
    }

    /// Create or replace without a resourceVersion check (used by the handle's `apply` and by
    /// server-side-apply patches).
    pub(crate) fn apply(
        &self,
        resource: usize,
        namespace: Option<&str>,
        body: Value,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        let mut probe = body.clone();
        Self::check_body(def, namespace, &mut probe)?;
        let name = probe["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let key = Self::key_for(def, probe["metadata"]["namespace"].as_str(), &name);
        let exists = self.state.lock().objects[resource].contains_key(&key);
        if exists {
            match self.update(resource, namespace, Some(&name), body, false) {
                Err(ApiError::NotFound { .. }) => self.apply(resource, namespace, probe),
                other => other,
            }
        } else {
            match self.create(resource, namespace, body) {
                Err(ApiError::AlreadyExists { .. }) => self.apply(resource, namespace, probe),
                other => other,
            }
        }
    }

    /// JSON merge patch. With `create_missing` (server-side apply), a missing object is created
    /// from the patch.
    pub(crate) fn patch(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        create_missing: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        if !patch.is_object() {
            return Err(ApiError::BadRequest { message: "a merge patch must be a JSON object".into() });
        }
        let key = Self::key_for(def, namespace, name);
        let mut st = self.state.lock();
        let Some(old) = st.objects[resource].get(&key).cloned() else {
            drop(st);
            if create_missing {
                let mut body = patch.clone();
                if body.get("metadata").is_none() {
                    body["metadata"] = json!({});
                }
                Self::set_meta(&mut body, "name", Value::String(name.to_owned()));
                return self.create(resource, namespace, body);
            }
            return Err(Self::not_found(def, name));
        };
        let mut body = old.value();
        merge_patch(&mut body, patch);
        Self::check_body(def, namespace, &mut body)?;
        if body["metadata"]["name"].as_str() != Some(name) {
            return Err(ApiError::BadRequest { message: "a patch may not change the name".into() });
        }
        self.replace_locked(&mut st, resource, def, old, body, true)
    }

    /// Delete an object; the returned object carries the deletion resourceVersion.
    pub(crate) fn delete(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        precondition_rv: Option<&str>,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        let key = Self::key_for(def, namespace, name);
        let mut st = self.state.lock();
        let Some(old) = st.objects[resource].get(&key).cloned() else {
            return Err(Self::not_found(def, name));
        };
        if let Some(want) = precondition_rv.filter(|s| !s.is_empty())
            && want != old.rv.to_string()
        {
            return Err(ApiError::Conflict {
                plural: def.plural.clone(),
                group: def.group.clone(),
                kind: def.kind.clone(),
                name: name.to_owned(),
                message: format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    old.rv
                ),
            });
        }
        let rv = st.rv + 1;
        let mut value = old.value();
        Self::set_meta(&mut value, "resourceVersion", Value::String(rv.to_string()));
        let obj = Arc::new(StoredObject::from_value(&value, rv));
        self.commit(&mut st, resource, EventType::Deleted, obj.clone(), Some(old));
        Ok(obj)
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

    /// Bulk-load objects without logging events (seeding); the event log starts after them.
    pub(crate) fn load(&self, objects: Vec<(usize, Value)>) -> Result<(), ApiError> {
        let mut st = self.state.lock();
        for (resource, mut body) in objects {
            let def = self.registry.def(resource);
            Self::check_body(def, None, &mut body)?;
            let name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if !valid_name(&name) {
                return Err(ApiError::Invalid {
                    kind: def.kind.clone(),
                    name,
                    message: "metadata.name: invalid or missing".into(),
                });
            }
            let rv = st.rv + 1;
            Self::stamp_new(&mut st, self.uid_seed, &mut body, rv);
            let obj = Arc::new(StoredObject::from_value(&body, rv));
            let key = obj.key();
            st.objects[resource].insert(key, obj);
            st.rv = rv;
        }
        st.compacted_rv = st.rv;
        st.log.clear();
        st.snapshots.clear();
        Ok(())
    }

    /// Reconstruct one resource's objects as of `rv` from the current state and the log.
    fn snapshot_at(&self, st: &State, resource: usize, rv: u64) -> Result<ObjMap, ApiError> {
        if rv == st.rv {
            return Ok(st.objects[resource].clone());
        }
        if let Some((_, snap)) = st.snapshots.iter().find(|(k, _)| *k == (resource, rv)) {
            return Ok(snap.clone());
        }
        if rv < st.compacted_rv {
            return Err(ApiError::Expired {
                message: format!(
                    "The resourceVersion for the provided list is too old: {rv} (compacted at {})",
                    st.compacted_rv
                ),
            });
        }
        let mut map = st.objects[resource].clone();
        for ev in st.log.iter().rev().take_while(|e| e.rv > rv) {
            if ev.resource != resource {
                continue;
            }
            let key = ev.object.key();
            match &ev.prev {
                Some(p) => {
                    map.insert(key, p.clone());
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(map)
    }

    /// Serve one list page.
    pub(crate) fn list(&self, resource: usize, req: &ListRequest) -> Result<ListPage, ApiError> {
        let def = self.registry.def(resource);
        let ns = if def.namespaced() { req.namespace.as_deref() } else { None };
        let (snap, snap_rv, start, served, total) = {
            let st = self.state.lock();
            if let Some(token) = &req.continue_token {
                if req.resource_version.as_deref().is_some_and(|s| !s.is_empty()) {
                    return Err(ApiError::BadRequest {
                        message: "specifying resource version is not allowed when using continue".into(),
                    });
                }
                let tok: ContinueToken = base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| ApiError::BadRequest {
                        message: "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
                    })?;
                if tok.rv < st.compacted_rv {
                    return Err(ApiError::Expired {
                        message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
                    });
                }
                let start = tok.start.split_once('/').map(|(a, b)| (a.to_owned(), b.to_owned()));
                let snap = self.snapshot_at(&st, resource, tok.rv)?;
                (snap, tok.rv, start, tok.served, tok.total)
            } else {
                let rv_req = req.resource_version.as_deref().filter(|s| !s.is_empty());
                let rv_match = req.rv_match.as_deref().filter(|s| !s.is_empty());
                let snap_rv = match (rv_req, rv_match) {
                    (None, Some(_)) => {
                        return Err(ApiError::BadRequest {
                            message: "resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                        });
                    }
                    (None, None) => st.rv,
                    (Some(rv), m) => {
                        let n = parse_rv(rv)?;
                        match m {
                            Some("Exact") => {
                                if n == 0 {
                                    return Err(ApiError::BadRequest {
                                        message:
                                            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\""
                                                .into(),
                                    });
                                }
                                if n > st.rv {
                                    return Err(ApiError::TooLargeResourceVersion { requested: n, current: st.rv });
                                }
                                n
                            }
                            None | Some("NotOlderThan") => {
                                if n > st.rv {
                                    return Err(ApiError::TooLargeResourceVersion { requested: n, current: st.rv });
                                }
                                st.rv
                            }
                            Some(other) => {
                                return Err(ApiError::BadRequest {
                                    message: format!(
                                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                                    ),
                                });
                            }
                        }
                    }
                };
                let snap = self.snapshot_at(&st, resource, snap_rv)?;
                (snap, snap_rv, None, 0, None)
            }
        };
        let unfiltered = req.labels.is_empty() && req.fields.is_empty();
        let lower: Bound<Key> = match (&start, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let limit = req.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut more = false;
        for (key, obj) in snap.range((lower, Bound::Unbounded)) {
            if let Some(ns) = ns
                && key.0 != ns
            {
                break;
            }
            let keep = unfiltered || (req.labels.matches(&obj.labels) && req.fields.matches(&key.0, &key.1));
            if !keep {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            items.push(obj.clone());
        }
        let (continue_token, remaining) = if more {
            let total = match (total, unfiltered) {
                (Some(t), _) => Some(t),
                (None, true) => Some(match ns {
                    None => snap.len() as u64,
                    Some(ns) => {
                        snap.range((ns.to_owned(), String::new())..).take_while(|(k, _)| k.0 == ns).count() as u64
                    }
                }),
                (None, false) => None,
            };
            let served = served + items.len() as u64;
            let last = items.last().map(|o| format!("{}/{}", o.namespace, o.name));
            let tok = ContinueToken {
                v: "meta.k8s.io/v1".into(),
                rv: snap_rv,
                start: last.unwrap_or_default(),
                served,
                total,
            };
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&tok).unwrap_or_default());
            let mut st = self.state.lock();
            if !st.snapshots.iter().any(|(k, _)| *k == (resource, snap_rv)) {
                if st.snapshots.len() >= self.cfg.snapshot_cache.max(1) {
                    st.snapshots.pop_front();
                }
                st.snapshots.push_back(((resource, snap_rv), snap));
            }
            (Some(encoded), total.map(|t| t.saturating_sub(served)))
        } else {
            (None, None)
        };
        Ok(ListPage { rv: snap_rv, items, continue_token, remaining })
    }

    /// Position a new watch. `rv`: None/"" or "0" means "send current state first".
    pub(crate) fn watch(
        &self,
        resource: usize,
        rv: Option<&str>,
        send_initial_events: Option<bool>,
    ) -> Result<WatchStart, ApiError> {
        let st = self.state.lock();
        let rx = self.tx.subscribe();
        let rv = rv.filter(|s| !s.is_empty());
        let from = match rv {
            None | Some("0") => None,
            Some(s) => Some(parse_rv(s)?),
        };
        let want_initial = send_initial_events.unwrap_or(from.is_none());
        if want_initial {
            return Ok(WatchStart {
                initial: Some(st.objects[resource].clone()),
                replay: Vec::new(),
                rx,
                start_rv: st.rv,
            });
        }
        let from = from.unwrap_or(st.rv);
        if from < st.compacted_rv {
            return Err(ApiError::Expired {
                message: format!("too old resource version: {from} ({})", st.compacted_rv),
            });
        }
        let replay = st.log.iter().filter(|e| e.rv > from && e.resource == resource).cloned().collect();
        Ok(WatchStart { initial: None, replay, rx, start_rv: st.rv.max(from) })
    }

    /// All objects of a resource (optionally one namespace) as values, for the handle API.
    pub(crate) fn list_values(&self, resource: usize, namespace: Option<&str>) -> Vec<Value> {
        let req = ListRequest { namespace: namespace.map(str::to_owned), ..Default::default() };
        self.list(resource, &req).map(|p| p.items.iter().map(|o| o.value()).collect()).unwrap_or_default()
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
mod tests {
    use super::*;
    use crate::resources::builtin_resources;

    fn store(log: usize) -> (Store, usize) {
        let reg = Arc::new(Registry::new(builtin_resources()));
        let cm = reg.by_path("", "v1", "configmaps").unwrap();
        let cfg = StoreConfig { event_log_capacity: log, broadcast_capacity: 64, snapshot_cache: 4 };
        (Store::new(reg, cfg), cm)
    }

    fn cm(ns: &str, name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}})
    }

    #[test]
    fn crud_and_global_rv() {
        let (s, r) = store(100);
        let a = s.create(r, Some("a"), cm("a", "x")).unwrap();
        assert_eq!(a.rv, 1);
        assert!(matches!(s.create(r, Some("a"), cm("a", "x")), Err(ApiError::AlreadyExists { .. })));
        let mut v = a.value();
        v["data"]["k"] = json!("w");
        let b = s.update(r, Some("a"), Some("x"), v.clone(), true).unwrap();
        assert_eq!(b.rv, 2);
        // stale RV conflicts
        assert!(matches!(s.update(r, Some("a"), Some("x"), v, true), Err(ApiError::Conflict { .. })));
        let d = s.delete(r, Some("a"), "x", None).unwrap();
        assert_eq!(d.rv, 3);
        assert_eq!(d.value()["metadata"]["resourceVersion"], "3");
        assert!(matches!(s.get(r, Some("a"), "x"), Err(ApiError::NotFound { .. })));
    }

    #[test]
    fn paging_is_a_consistent_snapshot() {
        let (s, r) = store(100);
        for i in 0..5 {
            s.create(r, Some("ns"), cm("ns", &format!("o{i}"))).unwrap();
        }
        let req = ListRequest { limit: Some(2), ..Default::default() };
        let p1 = s.list(r, &req).unwrap();
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.remaining, Some(3));
        s.delete(r, Some("ns"), "o3", None).unwrap();
        s.create(r, Some("ns"), cm("ns", "o9")).unwrap();
        let mut names: Vec<String> = p1.items.iter().map(|o| o.name.clone()).collect();
        let mut tok = p1.continue_token;
        while let Some(t) = tok {
            let p = s.list(r, &ListRequest { limit: Some(2), continue_token: Some(t), ..Default::default() }).unwrap();
            assert_eq!(p.rv, 5);
            names.extend(p.items.iter().map(|o| o.name.clone()));
            tok = p.continue_token;
        }
        assert_eq!(names, ["o0", "o1", "o2", "o3", "o4"]);
        // after compaction, the snapshot's token expires
        let p = s.list(r, &req).unwrap();
        s.create(r, Some("ns"), cm("ns", "o10")).unwrap();
        s.compact();
        let err = s.list(r, &ListRequest { continue_token: p.continue_token, ..Default::default() }).err().unwrap();
        assert_eq!(err.code(), 410);
    }

    #[test]
    fn exact_rv_reconstructs_and_log_bounds_compaction() {
        let (s, r) = store(3);
        for i in 0..3 {
            s.create(r, Some("ns"), cm("ns", &format!("o{i}"))).unwrap();
        }
        let exact = |rv: u64| {
            s.list(
                r,
                &ListRequest {
                    resource_version: Some(rv.to_string()),
                    rv_match: Some("Exact".into()),
                    ..Default::default()
                },
            )
        };
        assert_eq!(exact(2).unwrap().items.len(), 2);
        s.create(r, Some("ns"), cm("ns", "o3")).unwrap();
        assert_eq!(s.compacted_rv(), 1);
        assert_eq!(exact(1).unwrap().items.len(), 1);
        s.create(r, Some("ns"), cm("ns", "o4")).unwrap();
        assert_eq!(exact(1).unwrap_err().code(), 410);
        assert_eq!(exact(99).unwrap_err().code(), 504);
        assert!(s.watch(r, Some("1"), None).is_err());
        let w = s.watch(r, Some("3"), None).unwrap();
        assert_eq!(w.replay.iter().map(|e| e.rv).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }
}
