//! Request targets: the path grammar of the Kubernetes API, query parameters, and the verb a
//! request counts as.

use http::Method;

use super::Shared;
use crate::requests::Verb;
use crate::status::ApiError;

/// A parsed request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Root,
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList {
        group: String,
        version: String,
    },
    /// `/openapi/v3`: the index of group-version documents.
    OpenApiV3,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
    OpenApiV3Doc {
        group: String,
        version: String,
    },
    Resource {
        res: usize,
        namespace: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
    NotFound,
}

pub(crate) fn parse_route(shared: &Shared, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        [] => return Route::Root,
        ["version"] => return Route::Version,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
        ["openapi", "v3"] => return Route::OpenApiV3,
        ["openapi", "v3", "api", v] => return Route::OpenApiV3Doc { group: String::new(), version: (*v).into() },
        ["openapi", "v3", "apis", g, v] => {
            return Route::OpenApiV3Doc { group: (*g).into(), version: (*v).into() };
        }
        ["api"] => return Route::CoreVersions,
        ["api", v] => {
            return Route::ResourceList { group: String::new(), version: (*v).into() };
        }
        ["apis"] => return Route::Groups,
        ["apis", g] => return Route::Group((*g).into()),
        ["apis", g, v] => {
            return Route::ResourceList { group: (*g).into(), version: (*v).into() };
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::NotFound,
    };
    let reg = shared.state.registry();
    let namespaced_target = match rest {
        ["namespaces", ns, plural, tail @ ..] => reg
            .by_path(group, version, plural)
            .filter(|i| reg.def(*i).namespaced())
            .map(|i| (i, Some((*ns).to_owned()), tail)),
        _ => None,
    };
    let (res, namespace, tail) = match namespaced_target {
        Some(t) => t,
        None => match rest {
            [plural, tail @ ..] => match reg.by_path(group, version, plural) {
                Some(i) => (i, None, tail),
                None => return Route::NotFound,
            },
            [] => return Route::NotFound,
        },
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] => (Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Route::NotFound,
    };
    // A namespaced resource's single object needs a namespace.
    if reg.def(res).namespaced() && namespace.is_none() && name.is_some() {
        return Route::NotFound;
    }
    Route::Resource { res, namespace, name, sub }
}

pub(crate) struct Query(pub(crate) Vec<(String, String)>);

impl Query {
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    pub(crate) fn flag(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ApiError::BadRequest {
                message: format!("invalid boolean value {other:?} for query parameter {k}"),
            }),
        }
    }

    pub(crate) fn number(&self, k: &str) -> Result<Option<u64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::BadRequest {
                message: format!("invalid value {v:?} for query parameter {k}: must be a non-negative integer"),
            }),
        }
    }
}

pub(crate) fn classify(method: &Method, route: &Route, query: &Query) -> Verb {
    match route {
        Route::Resource { name, .. } => match (method.as_str(), name.is_some()) {
            ("GET", true) => Verb::Get,
            ("GET", false) => {
                if matches!(query.get("watch"), Some("true" | "1")) {
                    Verb::Watch
                } else {
                    Verb::List
                }
            }
            ("POST", false) => Verb::Create,
            ("PUT", true) => Verb::Update,
            ("PATCH", true) => Verb::Patch,
            ("DELETE", true) => Verb::Delete,
            ("DELETE", false) => Verb::DeleteCollection,
            _ => Verb::Other,
        },
        Route::NotFound => Verb::Other,
        _ => Verb::Discovery,
    }
}
