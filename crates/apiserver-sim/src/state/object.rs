//! One stored object version (immutable, pre-serialised) and the watch events that carry it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Value, json};

use super::Key;
use std::sync::Arc;

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
    pub(super) fn from_value(value: &Value, rv: u64) -> Self {
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

    pub(crate) fn key(&self) -> Key {
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
