//! Fetching one object from the API server.

use std::sync::Arc;
use std::time::Duration;

use compact_object::{CompactObject, NodeKind};
use kube::api::GetParams;
use kube::core::{ApiResource, DynamicObject, Request, Resource};
use store_types::Identity;

use crate::config::Prepare;

/// Why fetching one object failed. Every variant names the object; none carries its body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The fetch did not complete within the configured fetch timeout (waiting for one of the
    /// store's fetch permits, the GET, and the one retry of a stale answer, together).
    #[error("fetching {resource} {identity} timed out after {after:?}")]
    Timeout {
        /// `plural.group` of the resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// The configured timeout.
        after: Duration,
    },
    /// The request failed (transport error or an API status other than 404).
    #[error("fetching {resource} {identity} failed: {source}")]
    Api {
        /// The resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// The response is not one JSON object (malformed JSON, another JSON value, nesting too
    /// deep) or could not be stored as a compact object. Nothing is cached. (A body that is
    /// not UTF-8 is refused by kube's client already: [`FetchError::Api`].)
    #[error("fetched {resource} {identity} could not be encoded: {source}")]
    Encode {
        /// The resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// The encoding error.
        #[source]
        source: compact_object::Error,
    },
    /// The configured [`Prepare`] step failed on the fetched object. Nothing is cached.
    #[error("fetched {resource} {identity} could not be prepared: {source}")]
    Prepare {
        /// The resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// The step's error.
        #[source]
        source: compact_object::Error,
    },
    /// The fetched object's compact encoding (after preparation) is larger than the configured
    /// [`max_object_bytes`](crate::CachedStoreConfig::max_object_bytes). Nothing is cached.
    #[error("fetched {resource} {identity} is {bytes} bytes encoded, over the bound of {limit}")]
    TooLarge {
        /// The resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// Its encoded size.
        bytes: u64,
        /// The bound.
        limit: u64,
    },
    /// The API kept returning an object older than the version a watch event already reported.
    #[error(
        "fetched {resource} {identity} at resourceVersion {fetched:?}, older than the known \
         {known:?}, twice"
    )]
    Stale {
        /// The resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// The resourceVersion fetched.
        fetched: String,
        /// The resourceVersion the reference holds.
        known: String,
    },
    /// Earlier fetches of this object version failed; no new fetch is sent until the backoff
    /// passes (it doubles per consecutive failure, up to the configured bound, and resets on
    /// success or when a watch event brings a new version).
    #[error(
        "fetching {resource} {identity} is backing off for {retry_in:?} after {failures} failed \
         fetch(es); last: {last}"
    )]
    BackingOff {
        /// The resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// Consecutive failures.
        failures: u32,
        /// Time until the next fetch may start.
        retry_in: Duration,
        /// The last failure.
        #[source]
        last: Arc<FetchError>,
    },
    /// The fetch task panicked or its runtime shut down.
    #[error("fetching {resource} {identity} was interrupted: {reason}")]
    Interrupted {
        /// The resource.
        resource: String,
        /// The object.
        identity: Identity,
        /// What the task reported.
        reason: String,
    },
}

impl FetchError {
    /// The object whose fetch failed.
    pub fn identity(&self) -> &Identity {
        match self {
            FetchError::Timeout { identity, .. }
            | FetchError::Api { identity, .. }
            | FetchError::Encode { identity, .. }
            | FetchError::Prepare { identity, .. }
            | FetchError::TooLarge { identity, .. }
            | FetchError::Stale { identity, .. }
            | FetchError::BackingOff { identity, .. }
            | FetchError::Interrupted { identity, .. } => identity,
        }
    }
}

/// Builds and sends GETs of single objects; holds no state besides its configuration.
pub(crate) struct Fetcher {
    pub(crate) client: crate::sync::Client,
    pub(crate) resource: ApiResource,
    pub(crate) resource_name: String,
    pub(crate) namespaced: bool,
    pub(crate) namespace: Option<String>,
    /// Bounds a whole fetch task (see `flight.rs`).
    pub(crate) timeout: Option<Duration>,
    pub(crate) prepare: Option<Prepare>,
    /// See [`CachedStoreConfig::max_object_bytes`](crate::CachedStoreConfig::max_object_bytes).
    pub(crate) max_object_bytes: Option<u64>,
}

impl Fetcher {
    /// GETs `namespace`/`name` (the namespace restriction wins; ignored when cluster-scoped)
    /// and decodes the response bytes in one pass into a compact object — with numbers
    /// normalised and then prepared when a preparation step is configured, exactly as received
    /// otherwise. The caller bounds the time (the fetch timeout covers the whole fetch task).
    /// `Ok(None)`: 404.
    pub(crate) async fn fetch(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Option<CompactObject>, FetchError> {
        let identity = || {
            let id = Identity::new(namespace, name);
            match uid {
                Some(u) => id.with_uid(u),
                None => id,
            }
        };
        let ns = self.namespaced.then(|| self.namespace.as_deref().unwrap_or(namespace));
        // The same request builder and client call `kube::Api::get` uses, without decoding into
        // a `DynamicObject` first.
        let url = DynamicObject::url_path(&self.resource, ns);
        let mut req = Request::new(url).get(name, &GetParams::default()).map_err(|e| FetchError::Api {
            resource: self.resource_name.clone(),
            identity: identity(),
            source: kube::Error::BuildRequest(e),
        })?;
        req.extensions_mut().insert("get");
        // The response text is decoded straight into the compact form: no `Value` tree.
        let response = self.client.request_text(req).await;
        let text = match response {
            Ok(text) => text,
            Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(None),
            Err(source) => {
                return Err(FetchError::Api { resource: self.resource_name.clone(), identity: identity(), source });
            }
        };
        let encode_error =
            |source| FetchError::Encode { resource: self.resource_name.clone(), identity: identity(), source };
        let prepare_error =
            |source| FetchError::Prepare { resource: self.resource_name.clone(), identity: identity(), source };
        let not_an_object = |object: &CompactObject| {
            (object.root().kind() != NodeKind::Object).then(|| {
                encode_error(compact_object::Error::Unsupported {
                    message: format!(
                        "the API answered a JSON {}, not an object",
                        format!("{:?}", object.root().kind()).to_lowercase()
                    ),
                })
            })
        };
        let object = match &self.prepare {
            // One pass: prepared while decoding (pruning keeps the root's kind).
            Some(prepare) if prepare.decodes() => prepare.decode(&text).map_err(encode_error)?,
            Some(prepare) => {
                let object = CompactObject::from_str_normalized(&text).map_err(encode_error)?;
                if let Some(e) = not_an_object(&object) {
                    return Err(e);
                }
                prepare.prepare(&object).map_err(prepare_error)?
            }
            None => text.parse::<CompactObject>().map_err(encode_error)?,
        };
        if let Some(e) = not_an_object(&object) {
            return Err(e);
        }
        let bytes = object.as_bytes().len() as u64;
        match self.max_object_bytes {
            Some(limit) if bytes > limit => {
                Err(FetchError::TooLarge { resource: self.resource_name.clone(), identity: identity(), bytes, limit })
            }
            _ => Ok(Some(object)),
        }
    }
}
