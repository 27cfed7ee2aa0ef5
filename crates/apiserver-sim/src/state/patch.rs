//! Patch formats a PATCH request may carry, applied to an object's JSON.
//!
//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386) are the `json-patch` crate's;
//! strategic merge patch is [`super::strategic`] (built-in kinds only; custom resources refuse
//! it with 415, as a real server does); server-side apply is treated as a merge patch (no
//! field management).

use serde_json::Value;

use crate::resources::ResourceDef;
use crate::status::ApiError;

/// The patch format, from the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (JSON or YAML): a merge patch that may create.
    Apply,
}

impl PatchKind {
    /// The patch kind of a media type, `None` when it is not a patch type.
    pub(crate) fn from_media_type(media: &str) -> Option<Self> {
        match media {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }

    /// The media types accepted for PATCH, as a 415 lists them.
    pub(crate) const ACCEPTED: &'static str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";

    /// Whether the patch body must be a JSON object (every kind except JSON patch).
    fn wants_object(self) -> bool {
        self != Self::Json
    }
}

/// Apply `patch` of `kind` to `target`, an object of resource `def`, in place.
pub(crate) fn apply(def: &ResourceDef, kind: PatchKind, target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    if kind == PatchKind::Strategic && !def.builtin {
        return Err(ApiError::UnsupportedMediaType {
            accepted: "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        });
    }
    if kind.wants_object() && !patch.is_object() {
        return Err(ApiError::BadRequest { message: "a merge patch must be a JSON object".into() });
    }
    match kind {
        PatchKind::Strategic => super::strategic::apply(&def.kind, target, patch),
        PatchKind::Merge | PatchKind::Apply => {
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest { message: format!("invalid JSON patch: {e}") })?;
            json_patch::patch(target, &ops).map_err(|e| ApiError::Invalid {
                kind: String::new(),
                name: String::new(),
                message: e.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> ResourceDef {
        crate::resources::builtin_resources().into_iter().find(|d| d.kind == "ConfigMap").unwrap()
    }

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        apply(&cm(), PatchKind::Merge, &mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]})).unwrap();
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
        assert_eq!(apply(&cm(), PatchKind::Merge, &mut t, &json!([1])).unwrap_err().code(), 400);
    }

    #[test]
    fn json_patch_rfc6902() {
        let mut d = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 2]});
        apply(
            &cm(),
            PatchKind::Json,
            &mut d,
            &json!([
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                {"op": "replace", "path": "/metadata/labels/a", "value": "3"},
                {"op": "add", "path": "/l/-", "value": 3},
                {"op": "remove", "path": "/l/0"},
                {"op": "test", "path": "/l", "value": [2, 3]},
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"metadata": {"labels": {"a": "3", "b/c": "2"}}, "l": [2, 3]}));
        let before = d.clone();
        // A failing operation leaves the document as it was.
        let err = apply(
            &cm(),
            PatchKind::Json,
            &mut d,
            &json!([{"op": "add", "path": "/x", "value": 1}, {"op": "remove", "path": "/nope"}]),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(d, before);
        assert_eq!(apply(&cm(), PatchKind::Json, &mut d, &json!({"op": "add"})).unwrap_err().code(), 400);
    }

    #[test]
    fn strategic_merge_patch_is_refused_for_custom_resources() {
        let widget = ResourceDef::new("example.com", "v1", "Widget", "widgets", crate::Scope::Namespaced);
        let err = apply(&widget, PatchKind::Strategic, &mut json!({}), &json!({"a": 1})).unwrap_err();
        assert_eq!(err.code(), 415);
        apply(&cm(), PatchKind::Strategic, &mut json!({}), &json!({"a": 1})).unwrap();
    }
}
