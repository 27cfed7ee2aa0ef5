//! One stored object version (immutable, pre-serialised) and the watch events that carry it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::Key;

/// An object's members except `kind` and `apiVersion`, serialised as a JSON object.
struct WithoutTypeMeta<'a>(&'a Map<String, Value>);

impl Serialize for WithoutTypeMeta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(k, _)| *k != "kind" && *k != "apiVersion") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Serialise an object with `kind` and `apiVersion` first (as the API server writes them);
/// returns the bytes and the offset where the members after them start.
fn serialize_type_meta_first(value: &Value) -> (Bytes, usize) {
    let Some(map) = value.as_object() else {
        let json = serde_json::to_vec(value).unwrap_or_default();
        let len = json.len();
        return (Bytes::from(json), len);
    };
    let rest = serde_json::to_vec(&WithoutTypeMeta(map)).unwrap_or_default();
    let mut buf = BytesMut::with_capacity(rest.len() + 64);
    buf.put_u8(b'{');
    for key in ["kind", "apiVersion"] {
        if let Some(v) = map.get(key) {
            if buf.len() > 1 {
                buf.put_u8(b',');
            }
            buf.put_slice(&serde_json::to_vec(key).unwrap_or_default());
            buf.put_u8(b':');
            buf.put_slice(&serde_json::to_vec(v).unwrap_or_default());
        }
    }
    let tail = rest.get(1..).unwrap_or_default();
    if buf.len() > 1 && tail != b"}" {
        buf.put_u8(b',');
    }
    let rest_at = buf.len();
    buf.put_slice(tail);
    (buf.freeze(), rest_at)
}

/// One stored object version: immutable, pre-serialised.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) rv: u64,
    pub(crate) labels: BTreeMap<String, String>,
    /// The full object as JSON, `kind` and `apiVersion` first, then every other member
    /// (metadata carries the resourceVersion).
    pub(crate) json: Bytes,
    /// Where the members after `kind` and `apiVersion` start in `json`.
    rest_at: usize,
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
        let (json, rest_at) = serialize_type_meta_first(value);
        Self { namespace: s("namespace"), name: s("name"), rv, labels, json, rest_at, meta: OnceLock::new() }
    }

    /// Append the object as an item of a list to `buf`: whole, or (`type_meta: false`, the
    /// items of built-in kinds' lists) without `kind` and `apiVersion`.
    pub(crate) fn put_list_item(&self, buf: &mut BytesMut, type_meta: bool) {
        match self.json.get(self.rest_at..) {
            Some(rest) if !type_meta && self.json.first() == Some(&b'{') => {
                buf.put_u8(b'{');
                buf.put_slice(rest);
            }
            _ => buf.put_slice(&self.json),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: &Value, type_meta: bool) -> Value {
        let mut buf = BytesMut::new();
        StoredObject::from_value(v, 1).put_list_item(&mut buf, type_meta);
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn type_meta_first_and_list_items_without_it() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let o = StoredObject::from_value(&v, 1);
        assert!(o.json.starts_with(br#"{"kind":"ConfigMap","apiVersion":"v1","#), "{:?}", o.json);
        assert_eq!(o.value(), v);
        assert_eq!(item(&v, true), v);
        assert_eq!(item(&v, false), json!({"metadata": {"name": "a"}, "data": {"k": "v"}}));
        // Degenerate shapes stay valid JSON.
        assert_eq!(item(&json!({"kind": "X"}), false), json!({}));
        assert_eq!(item(&json!({"metadata": {}}), false), json!({"metadata": {}}));
        assert_eq!(item(&json!({}), false), json!({}));
    }
}
