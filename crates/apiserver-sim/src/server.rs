//! The HTTP side: routing, discovery, list/get/watch/write handlers over hyper.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

use crate::faults::{FaultState, WatchControl};
use crate::requests::{RequestLog, RequestRecord, Verb};
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{EventType, ListRequest, Store, StoredObject, object_matches};
use crate::table::{self, Include};

pub(crate) type Body = BoxBody<Bytes, io::Error>;

const AGGREGATED_V2: &str = "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2_MIME: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const TABLE_MIME: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const MAX_BODY: usize = 32 << 20;
const META_MIME: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const META_LIST_MIME: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// The representation a client asked for with its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Plain JSON objects and lists.
    Full,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
    /// `meta.k8s.io/v1` `Table` (server-side printing for kubectl).
    Table(Include),
}

/// Everything a request handler needs.
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Arc<FaultState>,
    pub(crate) requests: RequestLog,
    pub(crate) bookmark_interval: Duration,
    pub(crate) active_watches: watch::Sender<usize>,
    pub(crate) addr: SocketAddr,
}

/// Accept connections until `shutdown` flips (or its sender is dropped).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut shutdown = shutdown.clone();
                let mut restart = shared.faults.restart.subscribe();
                tokio::spawn(async move {
                    let svc_shared = shared.clone();
                    let svc = service_fn(move |req| handle(svc_shared.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = restart.changed() => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

fn json_response(code: u16, body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn value_response(v: &Value) -> Response<Body> {
    json_response(200, serde_json::to_vec(v).unwrap_or_default(), "application/json")
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code(), serde_json::to_vec(&e.to_status()).unwrap_or_default(), "application/json");
    if let Some(secs) = e.retry_after() {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A parsed request target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Root,
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList { group: String, version: String },
    Resource { res: usize, namespace: Option<String>, name: Option<String>, sub: Option<String> },
    NotFound,
}

fn parse_route(shared: &Shared, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        [] => return Route::Root,
        ["version"] => return Route::Version,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
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
    let reg = shared.store.registry();
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

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ApiError::BadRequest {
                message: format!("invalid boolean value {other:?} for query parameter {k}"),
            }),
        }
    }

    fn number(&self, k: &str) -> Result<Option<u64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::BadRequest {
                message: format!("invalid value {v:?} for query parameter {k}: must be a non-negative integer"),
            }),
        }
    }
}

fn classify(method: &Method, route: &Route, query: &Query) -> Verb {
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

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().unwrap_or_default().to_owned();
    let query = Query(form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect());
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let format = if accept.contains("as=PartialObjectMetadata") {
        Format::Metadata
    } else if accept.contains("as=Table") {
        Format::Table(Include::parse(query.get("includeObject")))
    } else {
        Format::Full
    };
    let metadata_only = format == Format::Metadata;
    let route = parse_route(&shared, &path);
    let verb = classify(&method, &route, &query);
    let (resource, namespace, name) = match &route {
        Route::Resource { res, namespace, name, .. } => {
            (Some(shared.store.registry().def(*res).to_string()), namespace.clone(), name.clone())
        }
        _ => (None, None, None),
    };
    if let Some(delay) = shared.faults.latency(verb, resource.as_deref()) {
        tokio::time::sleep(delay).await;
    }
    let resp = match shared.faults.check(verb, resource.as_deref()) {
        Some(err) => error_response(&err),
        None => match shared.faults.answer(verb, resource.as_deref()) {
            Some(body) => json_response(200, body, "application/json"),
            None => dispatch(&shared, req, &route, verb, &query, &accept, format)
                .await
                .unwrap_or_else(|e| error_response(&e)),
        },
    };
    shared.requests.push(RequestRecord {
        method: method.to_string(),
        path,
        query: raw_query,
        status: resp.status().as_u16(),
        verb,
        resource,
        namespace,
        name,
        metadata_only,
    });
    Ok(resp)
}

async fn read_json(req: Request<Incoming>) -> Result<(Value, String), ApiError> {
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_owned();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !(media.is_empty() || media.ends_with("json") || media == "application/apply-patch+yaml") {
        return Err(ApiError::UnsupportedMediaType {
            accepted: "application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml",
        });
    }
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::BadRequest { message: format!("reading request body: {e}") })?
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest { message: format!("couldn't decode request body as JSON: {e}") })?;
    Ok((value, content_type))
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    route: &Route,
    verb: Verb,
    query: &Query,
    accept: &str,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
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
        Route::NotFound => Err(ApiError::ResourceNotFound { resource: req.uri().path().to_owned() }),
        Route::Resource { res, namespace, name, sub } => {
            let res = *res;
            let def = store.registry().def(res).clone();
            if let Some(s) = sub
                && s != "status"
            {
                return Err(ApiError::ResourceNotFound { resource: format!("{def}/{s}") });
            }
            let ns = namespace.as_deref();
            match verb {
                Verb::Get => {
                    let obj = store.get(res, ns, name.as_deref().unwrap_or_default())?;
                    Ok(object_response(&def, &obj, format))
                }
                Verb::List => list(shared, res, &def, ns, query, format),
                Verb::Watch => watch(shared, res, &def, ns, query, format),
                Verb::Create => {
                    let (body, _) = read_json(req).await?;
                    let obj = store.create(res, ns, body)?;
                    let mut resp = object_response(&def, &obj, format);
                    *resp.status_mut() = StatusCode::CREATED;
                    Ok(resp)
                }
                Verb::Update => {
                    let (body, _) = read_json(req).await?;
                    let obj = store.update(res, ns, name.as_deref(), body, true)?;
                    Ok(object_response(&def, &obj, format))
                }
                Verb::Patch => {
                    let name = name.clone().unwrap_or_default();
                    let (body, content_type) = read_json(req).await?;
                    let ct = content_type.split(';').next().unwrap_or_default().trim();
                    let obj = match ct {
                        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                            store.patch(res, ns, &name, &body, false)?
                        }
                        "application/apply-patch+yaml" | "application/apply-patch+json" => {
                            store.patch(res, ns, &name, &body, true)?
                        }
                        "application/json-patch+json" => {
                            let current = store.get(res, ns, &name)?;
                            let mut value = current.value();
                            crate::jsonpatch::apply(&mut value, &body)?;
                            // A JSON patch is applied to the version read just now.
                            let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
                                return Err(ApiError::BadRequest {
                                    message: "the patched object must keep an object metadata".into(),
                                });
                            };
                            meta.insert("resourceVersion".into(), json!(current.rv.to_string()));
                            store.update(res, ns, Some(&name), value, true)?
                        }
                        other => {
                            let _ = other;
                            return Err(ApiError::UnsupportedMediaType {
                                accepted: "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml",
                            });
                        }
                    };
                    Ok(object_response(&def, &obj, format))
                }
                Verb::Delete => {
                    let precondition = delete_precondition(req).await?;
                    let obj = store.delete(res, ns, name.as_deref().unwrap_or_default(), precondition.as_deref())?;
                    Ok(object_response(&def, &obj, format))
                }
                Verb::DeleteCollection => {
                    let lr = list_request(ns, query)?;
                    let page = store.list(res, &ListRequest { limit: None, continue_token: None, ..lr })?;
                    let mut deleted = Vec::new();
                    for obj in &page.items {
                        let ons = (!obj.namespace.is_empty()).then_some(obj.namespace.as_str());
                        match store.delete(res, ons, &obj.name, None) {
                            Ok(d) => deleted.push(d),
                            Err(ApiError::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    let rv = store.current_rv();
                    Ok(list_response(&def, rv, None, None, &deleted, format))
                }
                Verb::Discovery | Verb::Other => Err(ApiError::MethodNotAllowed),
            }
        }
    }
}

async fn delete_precondition(req: Request<Incoming>) -> Result<Option<String>, ApiError> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::BadRequest { message: format!("reading request body: {e}") })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest { message: format!("couldn't decode DeleteOptions: {e}") })?;
    Ok(v["preconditions"]["resourceVersion"].as_str().map(str::to_owned))
}

fn object_response(def: &ResourceDef, obj: &StoredObject, format: Format) -> Response<Body> {
    match format {
        Format::Metadata => json_response(200, obj.metadata_json().clone(), META_MIME),
        Format::Full => json_response(200, obj.json.clone(), "application/json"),
        Format::Table(include) => {
            let meta = json!({"resourceVersion": obj.rv.to_string()});
            let t = table::table(def, &[obj], include, meta);
            json_response(200, serde_json::to_vec(&t).unwrap_or_default(), TABLE_MIME)
        }
    }
}

fn list_request(ns: Option<&str>, query: &Query) -> Result<ListRequest, ApiError> {
    let bad = |e: crate::selector::SelectorError| ApiError::BadRequest { message: e.to_string() };
    Ok(ListRequest {
        namespace: ns.map(str::to_owned),
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or_default()).map_err(bad)?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or_default()).map_err(bad)?,
        limit: query.number("limit")?.map(|l| l as usize),
        continue_token: query.get("continue").filter(|s| !s.is_empty()).map(str::to_owned),
        resource_version: query.get("resourceVersion").map(str::to_owned),
        rv_match: query.get("resourceVersionMatch").map(str::to_owned),
    })
}

fn list(
    shared: &Shared,
    res: usize,
    def: &ResourceDef,
    ns: Option<&str>,
    query: &Query,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let lr = list_request(ns, query)?;
    let page = shared.store.list(res, &lr)?;
    Ok(list_response(def, page.rv, page.continue_token.as_deref(), page.remaining, &page.items, format))
}

fn list_response(
    def: &ResourceDef,
    rv: u64,
    continue_token: Option<&str>,
    remaining: Option<u64>,
    items: &[Arc<StoredObject>],
    format: Format,
) -> Response<Body> {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    if let Format::Table(include) = format {
        let objs: Vec<&StoredObject> = items.iter().map(|o| o.as_ref()).collect();
        let t = table::table(def, &objs, include, meta);
        return json_response(200, serde_json::to_vec(&t).unwrap_or_default(), TABLE_MIME);
    }
    let metadata_only = format == Format::Metadata;
    let (kind, api_version) = if metadata_only {
        ("PartialObjectMetadataList".to_owned(), "meta.k8s.io/v1".to_owned())
    } else {
        (format!("{}List", def.kind), def.api_version())
    };
    let head = json!({"kind": kind, "apiVersion": api_version, "metadata": meta});
    let head = serde_json::to_vec(&head).unwrap_or_default();
    let size: usize = items.iter().map(|o| o.json.len() + 1).sum();
    let mut buf = BytesMut::with_capacity(head.len() + size + 16);
    // Splice the pre-serialised items into the list envelope.
    buf.put_slice(&head[..head.len() - 1]);
    buf.put_slice(b",\"items\":[");
    for (i, obj) in items.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        if metadata_only {
            buf.put_slice(obj.metadata_json());
        } else {
            buf.put_slice(&obj.json);
        }
    }
    buf.put_slice(b"]}");
    let ct = if metadata_only { META_LIST_MIME } else { "application/json" };
    json_response(200, buf.freeze(), ct)
}

fn verbs() -> Value {
    json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
}

fn resource_list(shared: &Shared, group: &str, version: &str) -> Result<Value, ApiError> {
    let reg = shared.store.registry();
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
    let reg = shared.store.registry();
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
        .store
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
    for (g, versions) in shared.store.registry().groups() {
        paths.push(format!("/apis/{g}"));
        paths.extend(versions.iter().map(|v| format!("/apis/{g}/{v}")));
    }
    paths.extend(["/healthz", "/livez", "/readyz", "/version"].map(str::to_owned));
    paths
}

/// Everything a watch stream needs once the response head is sent.
struct WatchPlan {
    res: usize,
    kind: String,
    api_version: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    format: Format,
    def: ResourceDef,
    bookmarks: bool,
    initial_end_bookmark: bool,
    timeout: Option<Duration>,
}

/// One `(key, object)` entry of a snapshot.
type Entry<'a> = (&'a crate::store::Key, &'a Arc<StoredObject>);

type Tx = mpsc::Sender<Result<Frame<Bytes>, io::Error>>;

fn watch(
    shared: &Arc<Shared>,
    res: usize,
    def: &ResourceDef,
    ns: Option<&str>,
    query: &Query,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let lr = list_request(ns, query)?;
    let bookmarks = query.flag("allowWatchBookmarks")?.unwrap_or(false);
    let send_initial = query.flag("sendInitialEvents")?;
    let rv_match = lr.rv_match.as_deref().filter(|s| !s.is_empty());
    match (send_initial, rv_match) {
        (Some(_), Some("NotOlderThan")) | (None, None) => {}
        (Some(_), _) => {
            return Err(ApiError::Invalid {
                kind: "ListOptions".into(),
                name: String::new(),
                message: "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ApiError::Invalid {
                kind: "ListOptions".into(),
                name: String::new(),
                message: "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".into(),
            });
        }
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::Invalid {
            kind: "ListOptions".into(),
            name: String::new(),
            message: "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks=true"
                .into(),
        });
    }
    // 0 means "no timeout" (the real apiserver then picks its own, much longer one).
    let timeout = query.number("timeoutSeconds")?.filter(|s| *s > 0).map(Duration::from_secs);
    let (kind, api_version) = if format == Format::Metadata {
        ("PartialObjectMetadata".to_owned(), "meta.k8s.io/v1".to_owned())
    } else {
        (def.kind.clone(), def.api_version())
    };
    let plan = WatchPlan {
        res,
        kind,
        api_version,
        namespace: lr.namespace.clone().filter(|_| def.namespaced()),
        labels: lr.labels,
        fields: lr.fields,
        format,
        def: def.clone(),
        bookmarks,
        initial_end_bookmark: send_initial == Some(true),
        timeout,
    };
    let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(64);
    let start = match shared.store.watch(res, lr.resource_version.as_deref(), send_initial) {
        Err(e) if !matches!(e, ApiError::Expired { .. }) => return Err(e),
        other => other,
    };
    let control = shared.faults.control.subscribe();
    let shared2 = shared.clone();
    tokio::spawn(async move {
        match start {
            Ok(start) => run_watch(&shared2, plan, start, control, tx).await,
            Err(e) => {
                // Too old RV: HTTP 200 with one ERROR event, then end of stream.
                let line = error_line(&e);
                let _ = tx.send(Ok(Frame::data(line))).await;
            }
        }
    });
    let body = StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = Response::new(BodyExt::boxed(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn error_line(e: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

struct WatchGuard<'a>(&'a watch::Sender<usize>);

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

enum Flow {
    Continue,
    Stop,
}

struct Writer<'a> {
    shared: &'a Shared,
    plan: &'a WatchPlan,
    tx: Tx,
    control: broadcast::Receiver<WatchControl>,
    paused: watch::Receiver<bool>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Writer<'_> {
    fn event_line(&self, ty: &str, obj: &StoredObject) -> Bytes {
        let table_json;
        let payload: &[u8] = match self.plan.format {
            Format::Metadata => obj.metadata_json(),
            Format::Full => &obj.json,
            Format::Table(include) => {
                let meta = json!({"resourceVersion": obj.rv.to_string()});
                table_json =
                    serde_json::to_vec(&table::table(&self.plan.def, &[obj], include, meta)).unwrap_or_default();
                &table_json
            }
        };
        let mut buf = BytesMut::with_capacity(payload.len() + 32);
        buf.put_slice(b"{\"type\":\"");
        buf.put_slice(ty.as_bytes());
        buf.put_slice(b"\",\"object\":");
        buf.put_slice(payload);
        buf.put_slice(b"}\n");
        buf.freeze()
    }

    fn bookmark_line(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let v = json!({"type": "BOOKMARK", "object": {
            "kind": self.plan.kind, "apiVersion": self.plan.api_version, "metadata": meta,
        }});
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    /// React to a control message; `Stop` ends the stream.
    async fn on_control(
        &mut self,
        ctl: Result<WatchControl, broadcast::error::RecvError>,
        next: Option<&Bytes>,
    ) -> Flow {
        match ctl {
            Ok(WatchControl::End) => Flow::Stop,
            Ok(WatchControl::Abort) => {
                let partial = match next {
                    Some(line) if line.len() > 2 => line.slice(..line.len() / 2),
                    _ => Bytes::from_static(b"{\"type\":\"MODIFIED\",\"object\":{\"kind\""),
                };
                let _ = self.tx.send(Ok(Frame::data(partial))).await;
                let _ = self.tx.send(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "injected abort"))).await;
                Flow::Stop
            }
            Err(broadcast::error::RecvError::Lagged(_)) => Flow::Continue,
            Err(broadcast::error::RecvError::Closed) => Flow::Stop,
        }
    }

    /// Send one line, honouring pause, end/abort and the deadline.
    async fn emit(&mut self, line: Bytes, is_event: bool) -> Flow {
        loop {
            let paused = *self.paused.borrow_and_update();
            if !paused {
                break;
            }
            tokio::select! {
                ctl = self.control.recv() => {
                    if let Flow::Stop = self.on_control(ctl, Some(&line)).await {
                        return Flow::Stop;
                    }
                }
                changed = self.paused.changed() => if changed.is_err() { return Flow::Stop },
                _ = &mut self.deadline => return Flow::Stop,
                _ = self.tx.closed() => return Flow::Stop,
            }
        }
        if let Ok(ctl) = self.control.try_recv()
            && let Flow::Stop = self.on_control(Ok(ctl), Some(&line)).await
        {
            return Flow::Stop;
        }
        if is_event && self.shared.faults.take_malformed() {
            let bad = Bytes::from_static(b"{\"type\":\"MODIFIED\",\"object\":}not-json\n");
            if self.tx.send(Ok(Frame::data(bad))).await.is_err() {
                return Flow::Stop;
            }
        }
        if self.tx.send(Ok(Frame::data(line))).await.is_err() {
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn matches(&self, obj: &StoredObject) -> bool {
        object_matches(obj, self.plan.namespace.as_deref(), &self.plan.labels, &self.plan.fields)
    }

    /// The event a watch with selectors sees for a change, if any.
    fn translate(&self, ty: EventType, obj: &StoredObject, prev: Option<&StoredObject>) -> Option<&'static str> {
        let now = self.matches(obj);
        match ty {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = prev.is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

async fn run_watch(
    shared: &Shared,
    plan: WatchPlan,
    start: crate::store::WatchStart,
    control: broadcast::Receiver<WatchControl>,
    tx: Tx,
) {
    shared.active_watches.send_modify(|n| *n += 1);
    let _guard = WatchGuard(&shared.active_watches);
    let deadline = match plan.timeout {
        Some(t) => tokio::time::sleep(t),
        None => tokio::time::sleep(Duration::from_secs(60 * 60 * 24 * 365)),
    };
    let mut w = Writer {
        shared,
        plan: &plan,
        tx,
        control,
        paused: shared.faults.paused.subscribe(),
        deadline: Box::pin(deadline),
    };
    let crate::store::WatchStart { initial, replay, mut rx, start_rv } = start;
    if let Some(snap) = initial {
        let iter: Box<dyn Iterator<Item = Entry<'_>> + Send> = match plan.namespace.as_deref() {
            Some(ns) => Box::new(snap.range((ns.to_owned(), String::new())..).take_while(move |(k, _)| k.0 == ns)),
            None => Box::new(snap.iter()),
        };
        for (_, obj) in iter {
            if !w.matches(obj) {
                continue;
            }
            let line = w.event_line("ADDED", obj);
            if let Flow::Stop = w.emit(line, true).await {
                return;
            }
        }
    }
    if plan.initial_end_bookmark {
        let line = w.bookmark_line(start_rv, true);
        if let Flow::Stop = w.emit(line, false).await {
            return;
        }
    }
    let mut last_rv = start_rv;
    for ev in replay {
        last_rv = last_rv.max(ev.rv);
        if let Some(ty) = w.translate(ev.kind, &ev.object, ev.prev.as_deref()) {
            let line = w.event_line(ty, &ev.object);
            if let Flow::Stop = w.emit(line, true).await {
                return;
            }
        }
    }
    let mut ticker = tokio::time::interval(shared.bookmark_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let paused = *w.paused.borrow_and_update();
        tokio::select! {
            biased;
            ctl = w.control.recv() => {
                if let Flow::Stop = w.on_control(ctl, None).await { return; }
            }
            _ = &mut w.deadline => return,
            // The client went away (or the connection was dropped): stop at once.
            _ = w.tx.closed() => return,
            changed = w.paused.changed() => if changed.is_err() { return },
            ev = rx.recv(), if !paused => match ev {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if ev.resource != plan.res {
                        continue;
                    }
                    if let Some(ty) = w.translate(ev.kind, &ev.object, ev.prev.as_deref()) {
                        let line = w.event_line(ty, &ev.object);
                        if let Flow::Stop = w.emit(line, true).await { return; }
                    }
                }
                // Too slow a reader: close the stream, the client re-watches from its last RV.
                Err(_) => return,
            },
            _ = ticker.tick(), if plan.bookmarks && !paused => {
                let line = w.bookmark_line(last_rv, false);
                if let Flow::Stop = w.emit(line, false).await { return; }
            }
        }
    }
}
