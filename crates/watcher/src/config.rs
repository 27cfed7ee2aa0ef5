//! User configuration of watched resources, in the Go original's format.

use std::collections::BTreeMap;
use std::time::Duration;

use indexer::{FieldSelector, Indexer, LabelSelector};
use serde::{Deserialize, Serialize};
use store_types::StoreType;

/// Default TTL of on-demand cache entries (the Go original's 2m10s).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(130);

/// Default bound on the encoded (compact) size of one stored object: 8 MiB.
///
/// A real API server cannot hand out a larger object: it refuses request bodies over 3 MiB of
/// JSON, and etcd refuses values over 1.5 MiB (its default `--max-request-bytes`). The compact
/// encoding of an object is smaller than its JSON (0.4–0.65× for typical objects), so 8 MiB
/// leaves more than 2× margin over anything a stock server accepts: it never drops an object a
/// real cluster serves, and it still stops one pathological object (a server with raised limits,
/// a misbehaving aggregated API) from taking a store's memory. Set `maxObjectBytes` to bound
/// tighter (an object over it is skipped, counted and logged once).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 8 << 20;

/// One watched resource, as users write it in YAML or JSON (camelCase; the Go original's
/// snake_case spellings `index_by`, `cache_ttl`, `ignore_fields`, `label_selector`,
/// `field_selector`, `api_version` are accepted too).
///
/// ```
/// let r: kstore_watcher::WatchedResource = serde_yaml_ng::from_str(r#"
/// apiVersion: discovery.k8s.io/v1
/// resources: endpointslices
/// indexBy: ["metadata.namespace", "metadata.labels['kubernetes.io/service-name']"]
/// "#).unwrap();
/// assert_eq!(r.index_by.len(), 2);
/// ```
///
/// Every field is honoured; unknown fields are an error (the original silently ignored, for
/// example, `namespaceSelector`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchedResource {
    /// `group/version` (`networking.k8s.io/v1`) or `v1` for the core group.
    #[serde(alias = "api_version")]
    pub api_version: String,
    /// The resource's plural name (`ingresses`).
    pub resources: String,
    /// Index expressions; their count is the store's number of keys (at least one).
    #[serde(alias = "index_by")]
    pub index_by: Vec<String>,
    /// Server-side label selector (`app in (a,b),!legacy`).
    #[serde(default, alias = "label_selector", skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Field selector (`metadata.namespace!=kube-system`): server-side for `metadata.name` and
    /// `metadata.namespace`, always also checked client-side.
    #[serde(default, alias = "field_selector", skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    /// `full` (MemoryStore) or `on-demand` (CachedStore).
    #[serde(default)]
    pub store: StoreType,
    /// TTL of on-demand cache entries (`2m10s`); only valid with `store: on-demand`.
    #[serde(
        default,
        rename = "cacheTTL",
        alias = "cache_ttl",
        alias = "cacheTtl",
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_ttl: Option<Duration>,
    /// Fields removed from every object before it is stored (merged with the global list).
    #[serde(default, alias = "ignore_fields", skip_serializing_if = "Vec::is_empty")]
    pub ignore_fields: Vec<String>,
    /// Watch only this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Watch only these namespaces (one watch each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Bound on the encoded size of one stored object, in bytes (after `ignoreFields`);
    /// overrides the configuration-wide `maxObjectBytes`. Default
    /// [`DEFAULT_MAX_OBJECT_BYTES`].
    #[serde(default, alias = "max_object_bytes", skip_serializing_if = "Option::is_none")]
    pub max_object_bytes: Option<u64>,
    /// Relist this often (`10m`; default: never), replacing the store at once, so a lost
    /// event is repaired; overrides `WatchOptions::resync_interval`.
    #[serde(
        default,
        alias = "resync_interval",
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub resync_interval: Option<Duration>,
}

/// A whole watch configuration: global ignored fields and named resources.
///
/// ```yaml
/// ignoreFields: [metadata.managedFields]
/// watchedResources:
///   ingresses: {apiVersion: networking.k8s.io/v1, resources: ingresses, indexBy: [metadata.namespace, metadata.name]}
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchConfig {
    /// Fields removed from every object of every resource.
    #[serde(default, alias = "ignore_fields")]
    pub ignore_fields: Vec<String>,
    /// Resources by the name templates use (`ingresses`, `services`, `endpoints`, `secrets`).
    #[serde(alias = "watched_resources")]
    pub watched_resources: BTreeMap<String, WatchedResource>,
    /// Bound on the encoded size of one stored object, in bytes, for every resource that does
    /// not set its own (default [`DEFAULT_MAX_OBJECT_BYTES`]).
    #[serde(default, alias = "max_object_bytes", skip_serializing_if = "Option::is_none")]
    pub max_object_bytes: Option<u64>,
}

/// A configuration that cannot be used. Every variant names the resource and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The YAML or JSON could not be read (unknown or mistyped field, bad duration…).
    #[error("invalid watch configuration: {source}")]
    Parse {
        /// The parser's message, with line and column.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A field has an invalid value.
    #[error("resource {resource:?}: field {field}: {message}")]
    Invalid {
        /// The resource's name in the configuration.
        resource: String,
        /// The field (`indexBy`, `namespaces`, …).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The index or ignore expressions are invalid.
    #[error("resource {resource:?}: {source}")]
    Indexer {
        /// The resource's name in the configuration.
        resource: String,
        /// The indexer's error (names the expression and position).
        #[source]
        source: indexer::ConfigError,
    },
    /// The label selector is invalid (never silently an unfiltered watch).
    #[error("resource {resource:?}: field labelSelector: {source}")]
    LabelSelector {
        /// The resource's name in the configuration.
        resource: String,
        /// The parser's error.
        #[source]
        source: indexer::LabelSelectorError,
    },
    /// The field selector is invalid.
    #[error("resource {resource:?}: field fieldSelector: {source}")]
    FieldSelector {
        /// The resource's name in the configuration.
        resource: String,
        /// The parser's error.
        #[source]
        source: indexer::FieldSelectorError,
    },
}

/// `Result` with [`ConfigError`].
pub(crate) type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// A validated resource configuration: everything parsed and compiled once.
#[derive(Clone, Debug)]
pub struct ResourceConfig {
    /// The resource's name in the configuration.
    pub name: String,
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Key extraction and object preparation.
    pub indexer: Indexer,
    /// Server-side label selector.
    pub label_selector: Option<LabelSelector>,
    /// Client-side field selector (`None` when absent).
    pub field_selector: Option<FieldSelector>,
    /// The part of the field selector the API server evaluates (`metadata.name`/`namespace`).
    pub server_field_selector: Option<String>,
    /// Store type.
    pub store: StoreType,
    /// Cache TTL for on-demand stores.
    pub cache_ttl: Duration,
    /// Namespaces to watch; empty = all namespaces.
    pub namespaces: Vec<String>,
    /// True when every index and selector expression reads only `metadata`, so an on-demand
    /// store can be fed by a metadata-only watch.
    pub metadata_only: bool,
    /// Objects whose encoding (after `ignoreFields`) is larger are not stored.
    pub max_object_bytes: u64,
    /// Periodic relist of this resource, when configured.
    pub resync_interval: Option<Duration>,
}

impl WatchConfig {
    /// Reads a configuration from YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Parse { source })
    }

    /// Validates and compiles every resource.
    pub fn compile(&self) -> Result<Vec<ResourceConfig>> {
        self.watched_resources
            .iter()
            .map(|(name, r)| match (r.max_object_bytes, self.max_object_bytes) {
                (None, Some(global)) => {
                    WatchedResource { max_object_bytes: Some(global), ..r.clone() }.compile(name, &self.ignore_fields)
                }
                _ => r.compile(name, &self.ignore_fields),
            })
            .collect()
    }
}

fn reads_only_metadata(segments_first: Option<&indexer::Segment>) -> bool {
    matches!(segments_first, Some(indexer::Segment::Field(f)) if &**f == "metadata")
}

impl WatchedResource {
    /// Validates this resource and compiles its expressions. `global_ignore` is the
    /// configuration-wide `ignoreFields` list, merged with the resource's own.
    pub fn compile(&self, name: &str, global_ignore: &[String]) -> Result<ResourceConfig> {
        let invalid = |field, message: String| ConfigError::Invalid { resource: name.to_owned(), field, message };
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) if !g.is_empty() && !v.is_empty() && !v.contains('/') => (g.to_owned(), v.to_owned()),
            None if !self.api_version.is_empty() => (String::new(), self.api_version.clone()),
            _ => {
                return Err(invalid(
                    "apiVersion",
                    format!("{:?} is not `group/version` or `version`", self.api_version),
                ));
            }
        };
        if self.resources.is_empty() || self.resources.contains('/') {
            return Err(invalid("resources", format!("{:?} is not a plural resource name", self.resources)));
        }
        if self.index_by.is_empty() {
            return Err(invalid("indexBy", "at least one index expression is required".into()));
        }
        if self.namespace.is_some() && !self.namespaces.is_empty() {
            return Err(invalid("namespaces", "set either namespace or namespaces, not both".into()));
        }
        if self.cache_ttl.is_some() && self.store != StoreType::Cached {
            return Err(invalid("cacheTTL", "only applies to `store: on-demand`".into()));
        }
        if self.cache_ttl == Some(Duration::ZERO) {
            return Err(invalid("cacheTTL", "must be greater than zero".into()));
        }
        if self.resync_interval == Some(Duration::ZERO) {
            return Err(invalid("resyncInterval", "must be greater than zero".into()));
        }
        if self.max_object_bytes == Some(0) {
            return Err(invalid("maxObjectBytes", "must be greater than zero".into()));
        }
        let indexer = Indexer::with_ignore_lists(&self.index_by, global_ignore, &self.ignore_fields)
            .map_err(|source| ConfigError::Indexer { resource: name.to_owned(), source })?;
        let label_selector = match self.label_selector.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(
                LabelSelector::parse(s)
                    .map_err(|source| ConfigError::LabelSelector { resource: name.to_owned(), source })?,
            ),
        };
        let field_selector = match self.field_selector.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(
                FieldSelector::parse(s)
                    .map_err(|source| ConfigError::FieldSelector { resource: name.to_owned(), source })?,
            ),
        };
        let server_field_selector = field_selector.as_ref().and_then(server_side_terms);
        let mut namespaces: Vec<String> = self.namespace.iter().chain(&self.namespaces).cloned().collect();
        if namespaces.iter().any(String::is_empty) {
            return Err(invalid("namespaces", "a namespace name cannot be empty".into()));
        }
        namespaces.sort();
        namespaces.dedup();
        let metadata_only = indexer.index_by().iter().all(|p| reads_only_metadata(p.segments().first()))
            && field_selector
                .as_ref()
                .is_none_or(|f| f.terms().iter().all(|t| reads_only_metadata(t.path.segments().first())));
        Ok(ResourceConfig {
            name: name.to_owned(),
            group,
            version,
            plural: self.resources.clone(),
            indexer,
            label_selector,
            field_selector,
            server_field_selector,
            store: self.store,
            cache_ttl: self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL),
            namespaces,
            metadata_only,
            max_object_bytes: self.max_object_bytes.unwrap_or(DEFAULT_MAX_OBJECT_BYTES),
            resync_interval: self.resync_interval,
        })
    }
}

/// The terms of a field selector every Kubernetes resource supports server-side.
fn server_side_terms(sel: &FieldSelector) -> Option<String> {
    let terms: Vec<String> = sel
        .terms()
        .iter()
        .filter(|t| matches!(t.path.to_string().as_str(), "metadata.name" | "metadata.namespace"))
        // Values that would need escaping (or would lose whitespace at their ends) stay
        // client-side only.
        .filter(|t| !t.value.contains([',', '=', '!', '\\']) && t.value.trim() == t.value)
        .map(|t| {
            let op = match t.op {
                indexer::FieldOp::Equals => "=",
                indexer::FieldOp::NotEquals => "!=",
            };
            format!("{}{op}{}", t.path, t.value)
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_of(yaml: &str, resource: &str) -> Result<u64> {
        let config = WatchConfig::from_yaml(yaml)?;
        let compiled = config.compile()?;
        Ok(compiled.into_iter().find(|r| r.name == resource).map(|r| r.max_object_bytes).unwrap_or_default())
    }

    #[test]
    fn max_object_bytes_defaults_is_global_and_per_resource() {
        let resources = "watchedResources:
  a: {apiVersion: v1, resources: services, indexBy: [metadata.name]}
  b: {apiVersion: v1, resources: secrets, indexBy: [metadata.name], maxObjectBytes: 2048}
";
        assert_eq!(bound_of(resources, "a").unwrap(), DEFAULT_MAX_OBJECT_BYTES);
        assert_eq!(bound_of(resources, "b").unwrap(), 2048);
        let global = format!("maxObjectBytes: 100000\n{resources}");
        assert_eq!(bound_of(&global, "a").unwrap(), 100_000);
        assert_eq!(bound_of(&global, "b").unwrap(), 2048, "the resource's own bound wins");
        let snake = "watchedResources: {a: {apiVersion: v1, resources: services, indexBy: [metadata.name], max_object_bytes: 7}}";
        assert_eq!(bound_of(snake, "a").unwrap(), 7);
        let zero =
            "watchedResources: {a: {apiVersion: v1, resources: services, indexBy: [metadata.name], maxObjectBytes: 0}}";
        let err = bound_of(zero, "a").unwrap_err().to_string();
        assert!(err.contains("maxObjectBytes") && err.contains("\"a\""), "{err}");
        let negative = "watchedResources: {a: {apiVersion: v1, resources: services, indexBy: [metadata.name], maxObjectBytes: -1}}";
        assert!(matches!(WatchConfig::from_yaml(negative), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn resync_interval_is_a_go_duration_and_not_zero() {
        let yaml = |v: &str| {
            format!(
                "watchedResources: {{a: {{apiVersion: v1, resources: services, indexBy: [metadata.name], resyncInterval: {v}}}}}"
            )
        };
        let compiled = WatchConfig::from_yaml(&yaml("10m")).unwrap().compile().unwrap();
        assert_eq!(compiled[0].resync_interval, Some(Duration::from_secs(600)));
        let err = WatchConfig::from_yaml(&yaml("0s")).unwrap().compile().unwrap_err().to_string();
        assert!(err.contains("resyncInterval"), "{err}");
        let none = "watchedResources: {a: {apiVersion: v1, resources: services, indexBy: [metadata.name]}}";
        assert_eq!(WatchConfig::from_yaml(none).unwrap().compile().unwrap()[0].resync_interval, None);
    }
}
