//! [`CachedStoreConfig`]: what to fetch, how long to keep it, how much of it to keep.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use compact_object::CompactObject;
use kube::core::ApiResource;

/// The preparation step applied to every fetched object before it is cached — in kstore, the
/// removal of the `ignoreFields` — working on the compact form. Configure it with
/// [`CachedStoreConfig::prepare`] as a [`Prepare`].
///
/// When a store has one, a fetch turns the response text into the object it caches with
/// [`decode`](Self::decode): by default it decodes the text in one pass straight into a
/// [`CompactObject`] with numbers normalised (floats without fractional part become integers:
/// [`CompactObject::from_str_normalized`], byte for byte the decoding full watches use) and
/// hands it to [`prepare`](Self::prepare). No `serde_json::Value` is built. A step that can
/// prepare *while* decoding overrides `decode` — [`indexer::Indexer`] does: its `ignoreFields`
/// are skipped by the parser ([`indexer::Indexer::decode_compact`]), never encoded and copied
/// out again. The step runs on the fetch task, once per fetch, possibly on several objects at
/// once: it must be cheap and must not block.
///
/// Errors: with the default `decode`, a decoding failure is a
/// [`FetchError::Encode`](crate::FetchError::Encode) and a failing `prepare` a
/// [`FetchError::Prepare`](crate::FetchError::Prepare); an overriding `decode` is one step
/// whose failures are `FetchError::Encode` (the indexer's can only fail on the JSON itself).
/// Nothing is cached for that object either way.
///
/// Without a step, the response is decoded exactly (floats stay floats) and cached as is.
///
/// Any `Fn(&CompactObject) -> Result<CompactObject, compact_object::Error>` closure is a
/// step (using the default `decode`); return the object itself (a clone is a reference-count
/// increment) when there is nothing to change.
///
/// # Usage
///
/// The watcher passes its indexer (crates/watcher/src/resource.rs), so an object fetched on
/// demand is byte for byte what a full watch would have stored:
///
/// ```
/// use std::sync::Arc;
/// use kstore_cached_store::{CachedStoreConfig, CompactObject, Prepare, PrepareStep};
/// use kube::core::ApiResource;
/// use k8s_openapi::api::core::v1::Secret;
///
/// let indexer = indexer::Indexer::new(["metadata.namespace", "metadata.name"], ["metadata.managedFields"])?;
/// let prepare: Prepare = Arc::new(indexer);
/// let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2).prepare(prepare.clone());
///
/// let text = r#"{"metadata":{"name":"a","managedFields":[{}]},"data":{"n":"1"},"v":2.0}"#;
/// let expected = r#"{"metadata":{"name":"a"},"data":{"n":"1"},"v":2}"#;
/// // What a fetch caches: decoded and pruned in one pass …
/// assert_eq!(prepare.decode(text)?.to_string(), expected);
/// // … byte for byte what preparing the decoded object gives.
/// let two_steps = prepare.prepare(&CompactObject::from_str_normalized(text)?)?;
/// assert_eq!(prepare.decode(text)?.as_bytes(), two_steps.as_bytes());
///
/// // A closure is a step too (decoded first, then called).
/// let closure: Prepare = Arc::new(|obj: &CompactObject| Ok(obj.clone()));
/// assert_eq!(closure.decode(text)?.to_string(), r#"{"metadata":{"name":"a","managedFields":[{}]},"data":{"n":"1"},"v":2}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # From a `serde_json::Value` step
///
/// Earlier versions took `Fn(&mut serde_json::Value)`. There is no adapter: such a step
/// parsed every fetched object twice, which is what this type removes. Express the step on
/// the compact form (a [`compact_object::Pruner`] for field removal, as the indexer does). A
/// step that can only work on a tree can still be written as
/// `|obj| { let mut v = obj.to_value(); step(&mut v); CompactObject::from_value(&v) }`, at the
/// old cost (and on the normalised object).
pub trait PrepareStep: Send + Sync {
    /// Prepares an object decoded with numbers normalised.
    fn prepare(&self, obj: &CompactObject) -> Result<CompactObject, compact_object::Error>;

    /// Decodes a fetched response's text into the object to cache: by default
    /// [`CompactObject::from_str_normalized`] then [`prepare`](Self::prepare) (see the type's
    /// docs for how the fetch reports failures). An override must return byte for byte what
    /// the default returns for every input the default accepts.
    fn decode(&self, json: &str) -> Result<CompactObject, compact_object::Error> {
        self.prepare(&CompactObject::from_str_normalized(json)?)
    }

    /// Whether [`decode`](Self::decode) is overridden: the fetch then calls it (one pass);
    /// otherwise it decodes and calls [`prepare`](Self::prepare) itself, to tell decoding
    /// failures from preparation failures. `false` by default.
    fn decodes(&self) -> bool {
        false
    }
}

impl<F> PrepareStep for F
where
    F: Fn(&CompactObject) -> Result<CompactObject, compact_object::Error> + Send + Sync,
{
    fn prepare(&self, obj: &CompactObject) -> Result<CompactObject, compact_object::Error> {
        self(obj)
    }
}

/// The indexer's `ignoreFields` removal, decoded and pruned in one pass
/// ([`indexer::Indexer::decode_compact`]); `prepare` is
/// [`indexer::Indexer::prepare_compact`] without number normalisation (the fetch has
/// normalised already). The same pruning rules drive both.
impl PrepareStep for indexer::Indexer {
    fn prepare(&self, obj: &CompactObject) -> Result<CompactObject, compact_object::Error> {
        Ok(self.prepare_compact(obj, false)?.unwrap_or_else(|| obj.clone()))
    }

    fn decode(&self, json: &str) -> Result<CompactObject, compact_object::Error> {
        self.decode_compact(json)
    }

    fn decodes(&self) -> bool {
        true
    }
}

/// A shared [`PrepareStep`]: `Arc::new(closure)` or an `Arc<indexer::Indexer>`.
pub type Prepare = Arc<dyn PrepareStep>;

/// Default time to live of a cache entry: 2m10s, like the Go original.
pub const DEFAULT_TTL: Duration = Duration::from_secs(130);
/// Default timeout of one fetch: 10 s.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default weight bound: 64 MiB of cached objects.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Default number of fetches a store runs at once (over all its lookups).
pub const DEFAULT_MAX_CONCURRENT_FETCHES: usize = 32;
/// Default time a 404 answer is remembered: 5 s.
pub const DEFAULT_NOT_FOUND_TTL: Duration = Duration::from_secs(5);
/// Default backoff after a failed fetch: 1 s, doubling per consecutive failure.
pub const DEFAULT_FETCH_BACKOFF: Duration = Duration::from_secs(1);
/// Default bound of the backoff: 30 s.
pub const DEFAULT_MAX_FETCH_BACKOFF: Duration = Duration::from_secs(30);

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `num_keys` was 0.
    #[error("a cached store needs at least one index key, got 0")]
    NoIndexKeys,
    /// Neither a byte nor an entry bound was set.
    #[error("the cache of {resource} needs a bound: set max_bytes and/or max_entries")]
    Unbounded {
        /// The resource (`plural.group`).
        resource: String,
    },
    /// A bound or duration is zero (or `max_fetch_backoff` is below `fetch_backoff`).
    #[error(
        "{setting} of the cache of {resource} must be greater than zero (max_fetch_backoff: at least fetch_backoff)"
    )]
    Zero {
        /// The setting.
        setting: &'static str,
        /// The resource.
        resource: String,
    },
    /// A namespace restriction was given for a cluster-scoped resource.
    #[error("{resource} is cluster-scoped but a namespace restriction {namespace:?} was set")]
    NamespaceOnClusterScoped {
        /// The resource.
        resource: String,
        /// The namespace given.
        namespace: String,
    },
    /// An index expression reads outside `metadata`, so references fed from a metadata-only
    /// watch could not be indexed.
    #[error(
        "index expression {path:?} reads outside metadata: a metadata-only watch cannot index \
         it, a full watch is required (the cached store still keeps only references)"
    )]
    FullWatchRequired {
        /// The offending expression.
        path: String,
    },
}

/// How a cached store must be fed, decided from its index expressions; see [`required_feed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Every index expression reads `metadata`: a metadata-only watch (`PartialObjectMeta`)
    /// suffices and object bodies are never listed or watched.
    MetadataOnly,
    /// Some expression reads the body: the watcher must watch full objects, index them and
    /// hand the cached store references only (bodies are dropped after indexing).
    Full {
        /// The first expression that needs the body.
        path: String,
    },
}

/// The first segment of an index expression in the indexer's dialect (`metadata.name`,
/// `.metadata.name`, `['metadata']['name']`).
fn root_segment(path: &str) -> &str {
    let p = path.trim().trim_start_matches('.');
    if let Some(rest) = p.strip_prefix("['").or_else(|| p.strip_prefix("[\"")) {
        return rest.split(['\'', '"']).next().unwrap_or("");
    }
    let end = p.find(['.', '[']).unwrap_or(p.len());
    &p[..end]
}

/// Which watch a cached store with these index expressions needs.
///
/// Policy: the **watcher chooses** — `Feed::Full` when any expression leaves `metadata`. A
/// controller that insists on metadata-only feeding calls [`check_metadata_only`] instead and
/// gets [`ConfigError::FullWatchRequired`].
pub fn required_feed<S: AsRef<str>>(index_by: &[S]) -> Feed {
    match index_by.iter().map(AsRef::as_ref).find(|p| root_segment(p) != "metadata") {
        Some(path) => Feed::Full { path: path.to_owned() },
        None => Feed::MetadataOnly,
    }
}

/// `Ok` when a metadata-only watch can feed a store indexed by `index_by`.
pub fn check_metadata_only<S: AsRef<str>>(index_by: &[S]) -> Result<(), ConfigError> {
    match required_feed(index_by) {
        Feed::MetadataOnly => Ok(()),
        Feed::Full { path } => Err(ConfigError::FullWatchRequired { path }),
    }
}

/// Configuration of a [`CachedStore`](crate::CachedStore).
///
/// ```
/// use std::time::Duration;
/// use kstore_cached_store::CachedStoreConfig;
/// use kube::core::ApiResource;
/// use k8s_openapi::api::core::v1::Secret;
///
/// let config = CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2)
///     .ttl(Duration::from_secs(60))
///     .max_bytes(Some(16 << 20))
///     .max_entries(Some(1000));
/// assert_eq!(config.resource_name(), "secrets");
/// ```
#[derive(Clone)]
pub struct CachedStoreConfig {
    pub(crate) resource: ApiResource,
    pub(crate) namespaced: bool,
    pub(crate) namespace: Option<String>,
    pub(crate) num_keys: usize,
    pub(crate) ttl: Duration,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) max_entries: Option<usize>,
    pub(crate) fetch_timeout: Option<Duration>,
    pub(crate) sweep_interval: Option<Duration>,
    pub(crate) max_concurrent_fetches: usize,
    pub(crate) not_found_ttl: Duration,
    pub(crate) fetch_backoff: Duration,
    pub(crate) max_fetch_backoff: Duration,
    pub(crate) prepare: Option<Prepare>,
    pub(crate) max_object_bytes: Option<u64>,
}

impl fmt::Debug for CachedStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStoreConfig")
            .field("resource", &self.resource_name())
            .field("namespaced", &self.namespaced)
            .field("namespace", &self.namespace)
            .field("num_keys", &self.num_keys)
            .field("ttl", &self.ttl)
            .field("max_bytes", &self.max_bytes)
            .field("max_entries", &self.max_entries)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("sweep_interval", &self.sweep_interval)
            .field("max_concurrent_fetches", &self.max_concurrent_fetches)
            .field("not_found_ttl", &self.not_found_ttl)
            .field("fetch_backoff", &self.fetch_backoff)
            .field("max_fetch_backoff", &self.max_fetch_backoff)
            .field("prepare", &self.prepare.is_some())
            .field("max_object_bytes", &self.max_object_bytes)
            .finish()
    }
}

impl CachedStoreConfig {
    /// A store of `resource` (namespaced or cluster-scoped, as discovery says) with `num_keys`
    /// index keys; TTL 2m10s, 64 MiB of cached objects, 10 s fetch timeout, 32 fetches at
    /// once, 404s remembered 5 s, backoff after failures from 1 s up to 30 s, sweep every TTL,
    /// no namespace restriction, no preparation, no bound on one object's size.
    pub fn new(resource: ApiResource, namespaced: bool, num_keys: usize) -> Self {
        CachedStoreConfig {
            resource,
            namespaced,
            namespace: None,
            num_keys,
            ttl: DEFAULT_TTL,
            max_bytes: Some(DEFAULT_MAX_BYTES),
            max_entries: None,
            fetch_timeout: Some(DEFAULT_FETCH_TIMEOUT),
            sweep_interval: None,
            max_concurrent_fetches: DEFAULT_MAX_CONCURRENT_FETCHES,
            not_found_ttl: DEFAULT_NOT_FOUND_TTL,
            fetch_backoff: DEFAULT_FETCH_BACKOFF,
            max_fetch_backoff: DEFAULT_MAX_FETCH_BACKOFF,
            prepare: None,
            max_object_bytes: None,
        }
    }

    /// Restricts the store to one namespace: references elsewhere are rejected and every fetch
    /// goes to this namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Time to live of a cache entry, counted from when the object was fetched (fixed expiry:
    /// reads do not extend it).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Bound on the estimated heap bytes of cached objects (`None`: no byte bound).
    pub fn max_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Bound on the number of cached objects (`None`: no entry bound).
    pub fn max_entries(mut self, entries: Option<usize>) -> Self {
        self.max_entries = entries;
        self
    }

    /// Timeout of one fetch (`None`: wait as long as the client does). It bounds the whole
    /// fetch — waiting for a fetch permit, the GET, the one retry of a stale answer — so no
    /// lookup waits longer than this for its objects.
    pub fn fetch_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// How often expired entries are swept (on access, and by
    /// [`CachedStore::spawn_sweeper`](crate::CachedStore::spawn_sweeper)); default: the TTL.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// How many fetches the store runs at once, over all lookups (default 32); further
    /// fetches wait for a permit (within their fetch timeout).
    pub fn max_concurrent_fetches(mut self, n: usize) -> Self {
        self.max_concurrent_fetches = n;
        self
    }

    /// How long a 404 answer is remembered (default 5 s): lookups of that object version
    /// return nothing without fetching until it passes. A watch event with a new version
    /// fetches at once.
    pub fn not_found_ttl(mut self, ttl: Duration) -> Self {
        self.not_found_ttl = ttl;
        self
    }

    /// Backoff after failed fetches of one object version (default 1 s up to 30 s): after `n`
    /// consecutive failures no fetch is sent for `initial × 2^(n-1)` (at most `max`); lookups
    /// meanwhile get [`FetchError::BackingOff`](crate::FetchError::BackingOff). A success, or a
    /// watch event with a new version, resets it.
    pub fn fetch_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.fetch_backoff = initial;
        self.max_fetch_backoff = max;
        self
    }

    /// The preparation applied to fetched objects (see [`PrepareStep`]); the watcher passes its
    /// indexer (pruned while decoding).
    pub fn prepare(mut self, prepare: Prepare) -> Self {
        self.prepare = Some(prepare);
        self
    }

    /// Refuses a fetched object whose compact encoding (after preparation) is larger than
    /// `bytes`: the fetch fails with [`FetchError::TooLarge`](crate::FetchError::TooLarge)
    /// (backed off like any failure) and nothing is cached. The watcher passes its
    /// `maxObjectBytes`, so a fetched object is bounded like a watched one.
    pub fn max_object_bytes(mut self, bytes: u64) -> Self {
        self.max_object_bytes = Some(bytes);
        self
    }

    /// `plural` for core resources, `plural.group` otherwise.
    pub fn resource_name(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}.{}", self.resource.plural, self.resource.group)
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let resource = self.resource_name();
        if self.num_keys == 0 {
            return Err(ConfigError::NoIndexKeys);
        }
        if self.max_bytes.is_none() && self.max_entries.is_none() {
            return Err(ConfigError::Unbounded { resource });
        }
        let zero = [
            ("ttl", self.ttl.is_zero()),
            ("max_bytes", self.max_bytes == Some(0)),
            ("max_entries", self.max_entries == Some(0)),
            ("fetch_timeout", self.fetch_timeout.is_some_and(|t| t.is_zero())),
            ("sweep_interval", self.sweep_interval.is_some_and(|t| t.is_zero())),
            ("max_concurrent_fetches", self.max_concurrent_fetches == 0),
            ("not_found_ttl", self.not_found_ttl.is_zero()),
            ("fetch_backoff", self.fetch_backoff.is_zero()),
            ("max_fetch_backoff", self.max_fetch_backoff < self.fetch_backoff),
        ];
        if let Some((setting, _)) = zero.into_iter().find(|(_, z)| *z) {
            return Err(ConfigError::Zero { setting, resource });
        }
        if !self.namespaced
            && let Some(ns) = &self.namespace
        {
            return Err(ConfigError::NamespaceOnClusterScoped { resource, namespace: ns.clone() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Namespace, Secret};

    #[test]
    fn feed_follows_the_index_expressions() {
        assert_eq!(required_feed(&["metadata.namespace", ".metadata.labels['app']"]), Feed::MetadataOnly);
        assert_eq!(required_feed(&["['metadata']['name']"]), Feed::MetadataOnly);
        assert_eq!(required_feed(&["metadata.name", "type"]), Feed::Full { path: "type".into() });
        assert_eq!(required_feed(&["metadatax.name"]), Feed::Full { path: "metadatax.name".into() });
        let e = check_metadata_only(&["data['tls.crt']"]).unwrap_err();
        assert!(e.to_string().contains("a full watch is required"), "{e}");
        assert!(check_metadata_only(&["metadata.name"]).is_ok());
    }

    #[test]
    fn validation_names_the_problem() {
        let secrets = ApiResource::erase::<Secret>(&());
        assert!(CachedStoreConfig::new(secrets.clone(), true, 1).validate().is_ok());
        assert_eq!(CachedStoreConfig::new(secrets.clone(), true, 0).validate(), Err(ConfigError::NoIndexKeys));
        let e = CachedStoreConfig::new(secrets.clone(), true, 1).max_bytes(None).validate().unwrap_err();
        assert_eq!(e.to_string(), "the cache of secrets needs a bound: set max_bytes and/or max_entries");
        assert!(matches!(
            CachedStoreConfig::new(secrets, true, 1).ttl(Duration::ZERO).validate(),
            Err(ConfigError::Zero { setting: "ttl", .. })
        ));
        let e = CachedStoreConfig::new(ApiResource::erase::<Namespace>(&()), false, 1)
            .namespace("x")
            .validate()
            .unwrap_err();
        assert!(matches!(e, ConfigError::NamespaceOnClusterScoped { .. }));
    }
}
