//! The HTTP side over hyper: the accept loop, one request's life (faults, dispatch, request
//! log), response helpers and request bodies. Routing, discovery, object handlers and watch
//! streams live in submodules.

mod discovery;
mod objects;
mod openapi;
mod protobuf;
mod routing;
mod watch;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch as watch_channel;

use crate::faults::FaultState;
use crate::requests::{RequestLog, RequestRecord, Verb};
use crate::state::{self, ClusterState};
use crate::status::ApiError;
use crate::table::Include;
use routing::{Query, Route, classify, parse_route};

pub(crate) type Body = BoxBody<Bytes, io::Error>;

pub(crate) const TABLE_MIME: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
pub(crate) const MAX_BODY: usize = 32 << 20;
pub(crate) const META_MIME: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
pub(crate) const META_LIST_MIME: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

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
    pub(crate) state: Arc<ClusterState>,
    pub(crate) faults: Arc<FaultState>,
    pub(crate) requests: RequestLog,
    pub(crate) bookmark_interval: Duration,
    pub(crate) active_watches: watch_channel::Sender<usize>,
    pub(crate) addr: SocketAddr,
}

/// Accept connections until `shutdown` flips (or its sender is dropped).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch_channel::Receiver<bool>) {
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

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

pub(crate) fn json_response(code: u16, body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub(crate) fn value_response(v: &Value) -> Response<Body> {
    json_response(200, serde_json::to_vec(v).unwrap_or_default(), "application/json")
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code(), serde_json::to_vec(&e.to_status()).unwrap_or_default(), "application/json");
    if let Some(secs) = e.retry_after() {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
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
            (Some(shared.state.registry().def(*res).to_string()), namespace.clone(), name.clone())
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

/// Read a request body: a patch (`patch`: one of the patch media types) or an object
/// (`application/json`, `application/yaml`, or protobuf for the built-in kinds
/// [`protobuf`] carries schemas of; apply patches may be YAML too). Any other media type
/// (CBOR, protobuf of other kinds) is refused with 415 and a `Status` naming what is accepted —
/// the API server's answer to a media type it does not serve for a resource (for a custom
/// resource: "application/json, application/yaml").
pub(crate) async fn read_json(req: Request<Incoming>, patch: bool) -> Result<(Value, String), ApiError> {
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_owned();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if patch && state::PatchKind::from_media_type(media).is_none() {
        return Err(ApiError::UnsupportedMediaType { accepted: state::PatchKind::ACCEPTED });
    }
    let protobuf = !patch && media == protobuf::MEDIA_TYPE;
    if !(patch || protobuf || matches!(media, "" | "application/json" | "application/yaml")) {
        return Err(ApiError::UnsupportedMediaType { accepted: "application/json, application/yaml" });
    }
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::BadRequest { message: format!("reading request body: {e}") })?
        .to_bytes();
    let value = if protobuf {
        protobuf::decode(&bytes)?
    } else if matches!(media, "application/yaml" | "application/apply-patch+yaml") {
        serde_yaml_ng::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest { message: format!("couldn't decode request body as YAML: {e}") })?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest { message: format!("couldn't decode request body as JSON: {e}") })?
    };
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
    match route {
        Route::NotFound => Err(ApiError::ResourceNotFound { resource: req.uri().path().to_owned() }),
        Route::Resource { res, namespace, name, sub } => {
            objects::dispatch(
                shared,
                req,
                *res,
                namespace.as_deref(),
                name.as_deref(),
                sub.as_deref(),
                verb,
                query,
                format,
            )
            .await
        }
        _ => discovery::serve(shared, route, accept),
    }
}
