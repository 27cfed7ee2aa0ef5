//! Object handlers: get, list, create, update, patch, delete and deletecollection, and the
//! object, list, metadata-only and Table response bodies.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::routing::Query;
use super::{Body, Format, MAX_BODY, META_LIST_MIME, META_MIME, Shared, TABLE_MIME, json_response, read_json};
use crate::requests::Verb;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::state::{ListRequest, PatchKind, StoredObject};
use crate::status::ApiError;
use crate::table;

/// Serve a request on a resource path.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    res: usize,
    ns: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
    verb: Verb,
    query: &Query,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let state = &shared.state;
    let def = state.registry().def(res).clone();
    if let Some(s) = sub
        && s != "status"
    {
        return Err(ApiError::ResourceNotFound { resource: format!("{def}/{s}") });
    }
    let dry_run = match query.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest {
                message: format!("dryRun: Unsupported value: {other:?}: supported values: \"All\""),
            });
        }
    };
    match verb {
        Verb::Get => {
            let obj = state.get(res, ns, name.unwrap_or_default())?;
            Ok(object_response(&def, &obj, format))
        }
        Verb::List => list(shared, res, &def, ns, query, format),
        Verb::Watch => super::watch::watch(shared, res, &def, ns, query, format),
        Verb::Create => {
            let (mut body, _) = read_json(req, false).await?;
            crate::state::prepare_for_create(&def, &mut body);
            let obj = state.create(res, ns, body, dry_run)?;
            let mut resp = object_response(&def, &obj, format);
            *resp.status_mut() = StatusCode::CREATED;
            Ok(resp)
        }
        Verb::Update => {
            let (body, _) = read_json(req, false).await?;
            let obj = state.update(res, ns, name, body, true, dry_run)?;
            Ok(object_response(&def, &obj, format))
        }
        Verb::Patch => {
            let name = name.unwrap_or_default();
            let (body, content_type) = read_json(req, true).await?;
            let media = content_type.split(';').next().unwrap_or_default().trim();
            let kind = PatchKind::from_media_type(media)
                .ok_or(ApiError::UnsupportedMediaType { accepted: PatchKind::ACCEPTED })?;
            let obj = state.patch(res, ns, name, kind, &body, dry_run)?;
            Ok(object_response(&def, &obj, format))
        }
        Verb::Delete => {
            let opts = delete_options(req).await?;
            let dry_run = dry_run || opts.dry_run;
            let obj = state.delete(res, ns, name.unwrap_or_default(), opts.precondition_rv.as_deref(), dry_run)?;
            Ok(object_response(&def, &obj, format))
        }
        Verb::DeleteCollection => {
            let dry_run = dry_run || delete_options(req).await?.dry_run;
            let lr = list_request(ns, query)?;
            let page = state.list(res, &ListRequest { limit: None, continue_token: None, ..lr })?;
            let mut deleted = Vec::new();
            for obj in &page.items {
                let ons = (!obj.namespace.is_empty()).then_some(obj.namespace.as_str());
                match state.delete(res, ons, &obj.name, None, dry_run) {
                    Ok(d) => deleted.push(d),
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let rv = state.current_rv();
            Ok(list_response(&def, rv, None, None, &deleted, format))
        }
        Verb::Discovery | Verb::Other => Err(ApiError::MethodNotAllowed),
    }
}

/// What a DELETE body (`DeleteOptions`) asks for.
#[derive(Debug, Default)]
struct DeleteOptions {
    precondition_rv: Option<String>,
    dry_run: bool,
}

async fn delete_options(req: Request<Incoming>) -> Result<DeleteOptions, ApiError> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::BadRequest { message: format!("reading request body: {e}") })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeleteOptions::default());
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest { message: format!("couldn't decode DeleteOptions: {e}") })?;
    let dry_run = match &v["dryRun"] {
        Value::Null => false,
        Value::Array(values) if values.iter().all(|d| d == "All") => !values.is_empty(),
        other => {
            return Err(ApiError::BadRequest {
                message: format!("dryRun: Unsupported value: {other}: supported values: \"All\""),
            });
        }
    };
    Ok(DeleteOptions { precondition_rv: v["preconditions"]["resourceVersion"].as_str().map(str::to_owned), dry_run })
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

pub(crate) fn list_request(ns: Option<&str>, query: &Query) -> Result<ListRequest, ApiError> {
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
    let page = shared.state.list(res, &lr)?;
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
            obj.put_list_item(&mut buf, !def.builtin);
        }
    }
    buf.put_slice(b"]}");
    let ct = if metadata_only { META_LIST_MIME } else { "application/json" };
    json_response(200, buf.freeze(), ct)
}
