//! Restoring `kind` and `apiVersion` on objects that arrive without them.
//!
//! A real API server writes the items of a built-in kind's list without `apiVersion` and
//! `kind` (custom resources' list items keep them), while watch events and GET responses
//! carry both, `kind` first. [`CompactObject::with_type_meta`] puts them back, in the API
//! server's order, so an object stored from a list page is byte-identical to the same object
//! stored from a watch event or a fetch.

use crate::encode::{Builder, OBJECT, get_varint};
use crate::error::Result;
use crate::node::NodeKind;
use crate::object::CompactObject;

impl CompactObject {
    /// This object with `kind` and `apiVersion` added at the front of its root where they are
    /// absent (`kind` first, then `apiVersion`, as the API server writes objects); `None` when
    /// both are present or the root is not an object, so nothing is copied in the common case.
    /// Members already present are never changed, whatever their value.
    ///
    /// ```
    /// use kstore_compact_object::CompactObject;
    ///
    /// let item = CompactObject::from_slice(br#"{"metadata":{"name":"a"},"data":{"k":"v"}}"#)?;
    /// let restored = item.with_type_meta("v1", "ConfigMap")?.expect("kind and apiVersion were missing");
    /// assert_eq!(
    ///     restored.to_string(),
    ///     r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"},"data":{"k":"v"}}"#
    /// );
    /// assert!(restored.with_type_meta("v1", "ConfigMap")?.is_none());
    /// # Ok::<(), kstore_compact_object::Error>(())
    /// ```
    pub fn with_type_meta(&self, api_version: &str, kind: &str) -> Result<Option<CompactObject>> {
        let root = self.root();
        if root.kind() != NodeKind::Object {
            return Ok(None);
        }
        let add_kind = root.get("kind").is_none();
        let add_api_version = root.get("apiVersion").is_none();
        if !add_kind && !add_api_version {
            return Ok(None);
        }
        let buf = self.as_bytes();
        debug_assert_eq!(buf.first(), Some(&OBJECT));
        // The root's header: tag, member count, content size; the members follow.
        let mut p = 1;
        let count = get_varint(buf, &mut p) as usize;
        get_varint(buf, &mut p);
        let mut out = Builder::with_capacity(buf.len() + kind.len() + api_version.len() + 16);
        let open = out.begin()?;
        if add_kind {
            out.key("kind");
            out.str(kind);
        }
        if add_api_version {
            out.key("apiVersion");
            out.str(api_version);
        }
        out.buf.extend_from_slice(&buf[p..]);
        let added = usize::from(add_kind) + usize::from(add_api_version);
        out.end_unique_object(open, count + added)?;
        CompactObject::from_encoded(out.buf).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store_types::KubeObject;

    fn restore(json: &str) -> Option<String> {
        CompactObject::from_slice(json.as_bytes()).unwrap().with_type_meta("apps/v1", "Deployment").unwrap().map(|o| {
            // The restored encoding is exactly what decoding the full JSON gives.
            let text = o.to_string();
            assert_eq!(o.as_bytes(), CompactObject::from_slice(text.as_bytes()).unwrap().as_bytes());
            text
        })
    }

    #[test]
    fn adds_what_is_missing_in_the_api_servers_order() {
        assert_eq!(
            restore(r#"{"metadata":{"name":"a","namespace":"n","resourceVersion":"7"},"spec":{"replicas":2}}"#)
                .as_deref(),
            Some(
                r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"a","namespace":"n","resourceVersion":"7"},"spec":{"replicas":2}}"#
            )
        );
        assert_eq!(
            restore(r#"{"metadata":{"name":"a"},"kind":"Deployment"}"#).as_deref(),
            Some(r#"{"apiVersion":"apps/v1","metadata":{"name":"a"},"kind":"Deployment"}"#)
        );
        assert_eq!(
            restore(r#"{"apiVersion":"apps/v1"}"#).as_deref(),
            Some(r#"{"kind":"Deployment","apiVersion":"apps/v1"}"#)
        );
        assert_eq!(restore("{}").as_deref(), Some(r#"{"kind":"Deployment","apiVersion":"apps/v1"}"#));
    }

    #[test]
    fn present_members_and_non_objects_are_left_alone() {
        assert_eq!(restore(r#"{"kind":"Other","apiVersion":"x/v9","metadata":{}}"#), None);
        assert_eq!(restore("[1,2]"), None);
        assert_eq!(restore(r#""text""#), None);
    }

    #[test]
    fn identity_and_resource_version_survive() {
        let o =
            CompactObject::from_slice(br#"{"metadata":{"name":"a","namespace":"n","uid":"u","resourceVersion":"9"}}"#)
                .unwrap();
        let r = o.with_type_meta("v1", "ConfigMap").unwrap().unwrap();
        let id = r.identity().unwrap();
        assert_eq!((id.namespace, id.name, id.uid), ("n", "a", Some("u")));
        assert_eq!(r.resource_version(), Some("9"));
    }
}
