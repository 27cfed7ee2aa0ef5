//! The request log: every HTTP request the simulator served, plus per-(verb, resource) counters.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

/// The Kubernetes verb a request was classified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST to a collection.
    Create,
    /// PUT of one object.
    Update,
    /// PATCH of one object.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Discovery, version and health endpoints.
    Discovery,
    /// Anything else (unknown paths, unsupported methods).
    Other,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::DeleteCollection => "deletecollection",
            Self::Discovery => "discovery",
            Self::Other => "other",
        };
        f.write_str(s)
    }
}

/// One served request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request path without the query.
    pub path: String,
    /// Raw query string (may be empty or start with `&`).
    pub query: String,
    /// HTTP status code sent (for watches: the status of the response head).
    pub status: u16,
    /// Classified verb.
    pub verb: Verb,
    /// Resource as `plural` (core) or `plural.group`; `None` for discovery and unknown paths.
    pub resource: Option<String>,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Object name from the path, if any.
    pub name: Option<String>,
    /// Whether a metadata-only (`PartialObjectMetadata`) response was requested.
    pub metadata_only: bool,
}

impl RequestRecord {
    /// The value of one query parameter, if present.
    pub fn query_param(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
    }
}

const MAX_RECORDS: usize = 100_000;

#[derive(Default)]
struct Inner {
    records: VecDeque<RequestRecord>,
    counters: BTreeMap<(Verb, String), usize>,
    paths: BTreeMap<String, usize>,
}

/// Shared view of the request log. Cheap to clone.
#[derive(Clone)]
pub struct RequestLog {
    inner: Arc<Mutex<Inner>>,
    version: Arc<watch::Sender<u64>>,
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLog").field("len", &self.len()).finish()
    }
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestLog {
    pub(crate) fn new() -> Self {
        Self { inner: Arc::default(), version: Arc::new(watch::Sender::new(0)) }
    }

    pub(crate) fn push(&self, rec: RequestRecord) {
        {
            let mut inner = self.inner.lock();
            let resource = rec.resource.clone().unwrap_or_default();
            *inner.counters.entry((rec.verb, resource)).or_default() += 1;
            *inner.paths.entry(rec.path.clone()).or_default() += 1;
            if inner.records.len() >= MAX_RECORDS {
                inner.records.pop_front();
            }
            inner.records.push_back(rec);
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// The most recent records (at most 100 000 are kept), oldest first.
    pub fn entries(&self) -> Vec<RequestRecord> {
        self.inner.lock().records.iter().cloned().collect()
    }

    /// Number of records kept.
    pub fn len(&self) -> usize {
        self.inner.lock().records.len()
    }

    /// Whether no request was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many requests of `verb` on `resource` (`secrets`, `ingresses.networking.k8s.io`) were
    /// served since the last [`clear`](Self::clear). Use `""` as resource for discovery.
    pub fn count(&self, verb: Verb, resource: &str) -> usize {
        self.inner.lock().counters.get(&(verb, resource.to_owned())).copied().unwrap_or(0)
    }

    /// All per-(verb, resource) counters.
    pub fn counters(&self) -> BTreeMap<(Verb, String), usize> {
        self.inner.lock().counters.clone()
    }

    /// Requests per path (without query).
    pub fn path_counts(&self) -> BTreeMap<String, usize> {
        self.inner.lock().paths.clone()
    }

    /// Records matching a predicate.
    pub fn filter(&self, pred: impl Fn(&RequestRecord) -> bool) -> Vec<RequestRecord> {
        self.inner.lock().records.iter().filter(|r| pred(r)).cloned().collect()
    }

    /// Forget all records and counters.
    pub fn clear(&self) {
        *self.inner.lock() = Inner::default();
        self.version.send_modify(|v| *v += 1);
    }

    /// Wait until `count(verb, resource) >= n`. Wrap in a timeout in tests.
    pub async fn wait_for_count(&self, verb: Verb, resource: &str, n: usize) {
        let mut rx = self.version.subscribe();
        loop {
            if self.count(verb, resource) >= n {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(verb: Verb, resource: &str) -> RequestRecord {
        RequestRecord {
            method: "GET".into(),
            path: "/api/v1/secrets".into(),
            query: "&limit=500&labelSelector=a%3Db".into(),
            status: 200,
            verb,
            resource: Some(resource.into()),
            namespace: None,
            name: None,
            metadata_only: false,
        }
    }

    #[test]
    fn counts_per_verb_and_resource() {
        let log = RequestLog::new();
        log.push(rec(Verb::List, "secrets"));
        log.push(rec(Verb::List, "secrets"));
        log.push(rec(Verb::Watch, "secrets"));
        assert_eq!(log.count(Verb::List, "secrets"), 2);
        assert_eq!(log.count(Verb::Watch, "secrets"), 1);
        assert_eq!(log.count(Verb::Get, "secrets"), 0);
        assert_eq!(log.path_counts()["/api/v1/secrets"], 3);
        assert_eq!(log.entries()[0].query_param("labelSelector").as_deref(), Some("a=b"));
        log.clear();
        assert!(log.is_empty());
        assert_eq!(log.count(Verb::List, "secrets"), 0);
    }
}
