//! Writes: create, update (with optimistic concurrency), apply, patch, delete and seeding.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{ClusterState, EventType, Inner, PatchKind, StoredObject, make_uid, now_unix, splitmix};
use crate::resources::ResourceDef;
use crate::status::{ApiError, rfc3339};

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A Secret's write-only `stringData` folded into `data` (base64), overriding keys present
/// in both, as the API server does on every write.
fn fold_string_data(def: &ResourceDef, body: &mut Value) -> Result<(), ApiError> {
    if !(def.builtin && def.group.is_empty() && def.kind == "Secret") {
        return Ok(());
    }
    let Some(obj) = body.as_object_mut() else { return Ok(()) };
    let Some(string_data) = obj.remove("stringData") else { return Ok(()) };
    let entries = match string_data {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        _ => return Err(ApiError::BadRequest { message: "stringData must be a map of strings".into() }),
    };
    let data = obj.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    let Some(data) = data.as_object_mut() else {
        return Err(ApiError::BadRequest { message: "data must be a map of base64 strings".into() });
    };
    for (k, v) in entries {
        let Value::String(v) = v else {
            return Err(ApiError::BadRequest { message: format!("stringData[{k:?}] must be a string") });
        };
        data.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(v)));
    }
    Ok(())
}

/// What a real API server does to an object a client creates, before storing it: its create
/// handler erases `uid`, `creationTimestamp`, `deletionTimestamp`,
/// `deletionGracePeriodSeconds` and `selfLink` (`uid` and `creationTimestamp` are then set
/// anew); its create strategy starts `generation` at 1 — here for custom resources and objects
/// with a `spec` (the built-in kinds whose strategies track it); other built-in objects keep a
/// `generation` the client sent, as their strategies do — and resets the `status` of the kinds
/// [`ResourceDef::status_on_create`] names. Applied to HTTP creates, not to the handle API, whose callers
/// (seeds, generated clusters) set uids and statuses on purpose.
pub(crate) fn prepare_for_create(def: &ResourceDef, body: &mut Value) {
    let Some(obj) = body.as_object_mut() else { return };
    let tracks_generation = !def.builtin || obj.contains_key("spec");
    if let Some(status) = def.status_on_create() {
        obj.insert("status".into(), status);
    }
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        meta.remove(field);
    }
    if tracks_generation {
        meta.insert("generation".into(), json!(1));
    }
}

impl ClusterState {
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

    /// Create an object. `namespace` comes from the request path, if any. A dry run returns
    /// what would be stored and changes nothing.
    pub(crate) fn create(
        &self,
        resource: usize,
        namespace: Option<&str>,
        mut body: Value,
        dry_run: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        Self::check_body(def, namespace, &mut body)?;
        fold_string_data(def, &mut body)?;
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
        if !dry_run {
            self.commit(&mut st, resource, EventType::Added, obj.clone(), None);
        }
        Ok(obj)
    }

    fn stamp_new(st: &mut Inner, uid_seed: u64, body: &mut Value, rv: u64) {
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
        dry_run: bool,
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
        self.replace_locked(&mut st, resource, def, old, body, check_rv, dry_run)
    }

    /// Replace `old` by `body`. On an object being deleted (`deletionTimestamp` set), no
    /// finalizer may be added, and the update that leaves no finalizer deletes it.
    #[allow(clippy::too_many_arguments)]
    fn replace_locked(
        &self,
        st: &mut Inner,
        resource: usize,
        def: &ResourceDef,
        old: Arc<StoredObject>,
        mut body: Value,
        check_rv: bool,
        dry_run: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        fold_string_data(def, &mut body)?;
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
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
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
        let terminating = old_value["metadata"].get("deletionTimestamp").is_some();
        let finalizers =
            |v: &Value| -> Vec<Value> { v["metadata"]["finalizers"].as_array().cloned().unwrap_or_default() };
        let (before, after) = (finalizers(&old_value), finalizers(&body));
        if terminating && after.iter().any(|f| !before.contains(f)) {
            return Err(ApiError::Invalid {
                kind: def.kind.clone(),
                name: old.name.clone(),
                message:
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"
                        .into(),
            });
        }
        let rv = st.rv + 1;
        Self::set_meta(&mut body, "resourceVersion", Value::String(rv.to_string()));
        let obj = Arc::new(StoredObject::from_value(&body, rv));
        let event = if terminating && after.is_empty() { EventType::Deleted } else { EventType::Modified };
        if !dry_run {
            self.commit(st, resource, event, obj.clone(), Some(old));
        }
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
            match self.update(resource, namespace, Some(&name), body, false, false) {
                Err(ApiError::NotFound { .. }) => self.apply(resource, namespace, probe),
                other => other,
            }
        } else {
            match self.create(resource, namespace, body, false) {
                Err(ApiError::AlreadyExists { .. }) => self.apply(resource, namespace, probe),
                other => other,
            }
        }
    }

    /// Patch an object under the lock (so the patch applies to the version it is checked
    /// against). A server-side apply ([`PatchKind::Apply`]) of a missing object creates it.
    pub(crate) fn patch(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        dry_run: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let def = self.registry.def(resource);
        let create_missing = kind == PatchKind::Apply;
        if create_missing && !patch.is_object() {
            return Err(ApiError::BadRequest { message: "an apply patch must be a JSON object".into() });
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
                return self.create(resource, namespace, body, dry_run);
            }
            return Err(Self::not_found(def, name));
        };
        let mut body = old.value();
        super::patch::apply(def, kind, &mut body, patch)?;
        Self::check_body(def, namespace, &mut body)?;
        if body["metadata"]["name"].as_str() != Some(name) {
            return Err(ApiError::BadRequest { message: "a patch may not change the name".into() });
        }
        self.replace_locked(&mut st, resource, def, old, body, true, dry_run)
    }

    /// Delete an object; the returned object carries the deletion resourceVersion. An object
    /// with finalizers is not removed: it gets a `deletionTimestamp` (a MODIFIED event) and
    /// stays until an update removes its last finalizer.
    pub(crate) fn delete(
        &self,
        resource: usize,
        namespace: Option<&str>,
        name: &str,
        precondition_rv: Option<&str>,
        dry_run: bool,
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
        let mut value = old.value();
        let has_finalizers = value["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if has_finalizers && value["metadata"].get("deletionTimestamp").is_some() {
            return Ok(old);
        }
        let rv = st.rv + 1;
        Self::set_meta(&mut value, "resourceVersion", Value::String(rv.to_string()));
        let event = if has_finalizers {
            Self::set_meta(&mut value, "deletionTimestamp", Value::String(rfc3339(now_unix())));
            Self::set_meta(&mut value, "deletionGracePeriodSeconds", json!(0));
            EventType::Modified
        } else {
            EventType::Deleted
        };
        let obj = Arc::new(StoredObject::from_value(&value, rv));
        if !dry_run {
            self.commit(&mut st, resource, event, obj.clone(), Some(old));
        }
        Ok(obj)
    }

    /// Bulk-load objects without logging events (seeding); the event log starts after them.
    pub(crate) fn load(&self, objects: Vec<(usize, Value)>) -> Result<(), ApiError> {
        let mut st = self.state.lock();
        for (resource, mut body) in objects {
            let def = self.registry.def(resource);
            Self::check_body(def, None, &mut body)?;
            fold_string_data(def, &mut body)?;
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
}
