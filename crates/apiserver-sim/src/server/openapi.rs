//! OpenAPI v3 documents, as much as kubectl reads: the `/openapi/v3` index of group-version
//! documents, and per group version the paths of each resource with their operations, the
//! `x-kubernetes-group-version-kind` of each, and the query parameters they accept
//! (`fieldValidation`, `dryRun`, `fieldManager`, …). kubectl finds in them that the server
//! validates fields itself (so it needs no schema to validate client-side) and patches with
//! what the PATCH operation accepts. No schemas are served: the PATCH operations of built-in
//! kinds list strategic merge patch, but without schemas kubectl computes its apply patches
//! from its compiled-in types (the result is the same for the kinds served).

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceDef};
use crate::status::ApiError;

/// The path of a group version's document under `/openapi/v3/`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// A stable hash of the served resources of a group version, so clients caching documents by
/// URL see a new URL when registrations differ.
fn gv_hash(defs: &[&ResourceDef]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for d in defs {
        for b in d.plural.bytes().chain(d.kind.bytes()).chain([u8::from(d.namespaced()), u8::from(d.builtin)]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

fn defs_of<'a>(registry: &'a Registry, group: &str, version: &str) -> Vec<&'a ResourceDef> {
    registry.defs().iter().filter(|d| d.group == group && d.version == version).collect()
}

/// `GET /openapi/v3`.
pub(crate) fn index(registry: &Registry) -> Value {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in registry.defs() {
        let gv = (d.group.clone(), d.version.clone());
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    let paths: serde_json::Map<String, Value> = gvs
        .iter()
        .map(|(g, v)| {
            let path = gv_path(g, v);
            let url = format!("/openapi/v3/{path}?hash={}", gv_hash(&defs_of(registry, g, v)));
            (path, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// One operation of `def`.
fn operation(def: &ResourceDef, action: &str, params: &[&str], body_types: &[&str]) -> Value {
    let mut op = json!({
        "operationId": format!("{action}{}", def.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": def.group, "version": def.version, "kind": def.kind},
        "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK"}},
    });
    if !body_types.is_empty() {
        let content: serde_json::Map<String, Value> =
            body_types.iter().map(|t| ((*t).to_owned(), json!({"schema": {"type": "object"}}))).collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub(crate) fn document(registry: &Registry, group: &str, version: &str) -> Result<Value, ApiError> {
    let defs = defs_of(registry, group, version);
    if defs.is_empty() {
        return Err(ApiError::ResourceNotFound { resource: format!("/openapi/v3/{}", gv_path(group, version)) });
    }
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    let mut paths = serde_json::Map::new();
    for d in defs {
        let prefix = d.group_version_path();
        let scope = if d.namespaced() { format!("{prefix}/namespaces/{{namespace}}") } else { prefix.clone() };
        let scope_params: Vec<Value> = if d.namespaced() { vec![path_param("namespace")] } else { Vec::new() };
        let mut patch_types = vec!["application/json-patch+json", "application/merge-patch+json"];
        if d.builtin {
            patch_types.push("application/strategic-merge-patch+json");
        }
        patch_types.push("application/apply-patch+yaml");
        let list_params = ["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"];
        paths.insert(
            format!("{scope}/{}", d.plural),
            json!({
                "get": operation(d, "list", &list_params, &[]),
                "post": operation(d, "post", &write, &["application/json", "application/yaml"]),
                "delete": operation(d, "deletecollection", &["dryRun", "labelSelector", "fieldSelector"], &[]),
                "parameters": scope_params,
            }),
        );
        let mut item_params = scope_params.clone();
        item_params.insert(0, path_param("name"));
        paths.insert(
            format!("{scope}/{}/{{name}}", d.plural),
            json!({
                "get": operation(d, "get", &["pretty"], &[]),
                "put": operation(d, "put", &write, &["application/json", "application/yaml"]),
                "patch": operation(d, "patch", &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"], &patch_types),
                "delete": operation(d, "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"], &[]),
                "parameters": item_params,
            }),
        );
        if d.namespaced() {
            paths.insert(format!("{prefix}/{}", d.plural), json!({"get": operation(d, "list", &list_params, &[])}));
        }
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.34.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
