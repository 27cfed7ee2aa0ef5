//! Discovery: `/`, `/version`, health, legacy discovery (`/api`, `/apis`, group and
//! group-version documents) and aggregated discovery (`apidiscovery.k8s.io/v2`).

use http::Response;
use serde_json::{Value, json};

use super::routing::Route;
use super::{Body, Shared, json_response, value_response};
use crate::resources::ResourceDef;
use crate::status::ApiError;

const AGGREGATED_V2: &str = "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2_MIME: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Serve a discovery route (every route except objects and not-found).
pub(crate) fn serve(shared: &Shared, route: &Route, accept: &str) -> Result<Response<Body>, ApiError> {
    match route {
        Route::Root => Ok(value_response(&json!({"paths": root_paths(shared)}))),
        Route::Version => Ok(value_response(&json!({
            "major": "1", "minor": "34", "gitVersion": "v1.34.0-apiserver-sim",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
            "platform": "linux/amd64"
        }))),
        Route::Health => Ok(json_response(200, "ok", "text/plain")),
        Route::CoreVersions | Route::Groups if accept.contains(AGGREGATED_V2) => {
            let core = matches!(route, Route::CoreVersions);
            let body = serde_json::to_vec(&aggregated_discovery(shared, core)).unwrap_or_default();
            Ok(json_response(200, body, AGGREGATED_V2_MIME))
        }
        Route::CoreVersions => Ok(value_response(&json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}
            ],
        }))),
        Route::Groups => Ok(value_response(&api_group_list(shared))),
        Route::Group(g) => {
            let groups = api_group_list(shared);
            let found = groups["groups"].as_array().and_then(|gs| gs.iter().find(|x| x["name"] == g.as_str()).cloned());
            match found {
                Some(mut grp) => {
                    grp["kind"] = json!("APIGroup");
                    grp["apiVersion"] = json!("v1");
                    Ok(value_response(&grp))
                }
                None => Err(ApiError::ResourceNotFound { resource: format!("/apis/{g}") }),
            }
        }
        Route::ResourceList { group, version } => resource_list(shared, group, version).map(|v| value_response(&v)),
        Route::OpenApiV3 => Ok(value_response(&super::openapi::index(shared.state.registry()))),
        Route::OpenApiV3Doc { group, version } => {
            super::openapi::document(shared.state.registry(), group, version).map(|v| value_response(&v))
        }
        Route::Resource { .. } | Route::NotFound => Err(ApiError::ResourceNotFound { resource: "discovery".into() }),
    }
}

fn verbs() -> Value {
    json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
}

fn resource_list(shared: &Shared, group: &str, version: &str) -> Result<Value, ApiError> {
    let reg = shared.state.registry();
    let defs: Vec<&ResourceDef> = reg.defs().iter().filter(|d| d.group == group && d.version == version).collect();
    if defs.is_empty() {
        let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
        return Err(ApiError::ResourceNotFound { resource: gv });
    }
    let resources: Vec<Value> = defs
        .iter()
        .map(|d| {
            let mut r = json!({
                "name": d.plural,
                "singularName": d.singular,
                "namespaced": d.namespaced(),
                "kind": d.kind,
                "verbs": verbs(),
            });
            if !d.short_names.is_empty() {
                r["shortNames"] = json!(d.short_names);
            }
            r
        })
        .collect();
    Ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": defs[0].api_version(),
        "resources": resources,
    }))
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`): the core group for `/api`, every other
/// group for `/apis`.
fn aggregated_discovery(shared: &Shared, core: bool) -> Value {
    let reg = shared.state.registry();
    let mut groups: Vec<(String, Vec<String>)> = reg.groups();
    if core {
        groups = vec![(String::new(), vec!["v1".to_owned()])];
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = reg
                        .defs()
                        .iter()
                        .filter(|d| d.group == *g && d.version == *v)
                        .map(|d| {
                            let mut r = json!({
                                "resource": d.plural,
                                "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
                                "scope": if d.namespaced() { "Namespaced" } else { "Cluster" },
                                "singularResource": d.singular,
                                "verbs": verbs(),
                            });
                            if !d.short_names.is_empty() {
                                r["shortNames"] = json!(d.short_names);
                            }
                            r
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let meta = if g.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": g, "creationTimestamp": null})
            };
            json!({"metadata": meta, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn api_group_list(shared: &Shared) -> Value {
    let groups: Vec<Value> = shared
        .state
        .registry()
        .groups()
        .into_iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> =
                versions.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn root_paths(shared: &Shared) -> Vec<String> {
    let mut paths = vec!["/api".to_owned(), "/api/v1".to_owned(), "/apis".to_owned()];
    for (g, versions) in shared.state.registry().groups() {
        paths.push(format!("/apis/{g}"));
        paths.extend(versions.iter().map(|v| format!("/apis/{g}/{v}")));
    }
    paths.extend(["/healthz", "/livez", "/readyz", "/version"].map(str::to_owned));
    paths
}
