//! Prometheus metrics of the watchers (prometheus-client).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `kstore_objects` | gauge | resource | objects (or references) in the store |
//! | `kstore_key_tuples` | gauge | resource | distinct index key tuples |
//! | `kstore_estimated_bytes` | gauge | resource | the store's memory estimate |
//! | `kstore_events_total` | counter | resource, type | watch events applied (`added`, `modified`, `deleted`, `unchanged`, `skipped`) |
//! | `kstore_relists_total` | counter | resource | completed (re)lists |
//! | `kstore_watch_errors_total` | counter | resource | watch stream errors (retried with backoff) |
//! | `kstore_extraction_failures_total` | counter | resource | objects not stored because key extraction failed |
//! | `kstore_last_event_timestamp_seconds` | gauge | resource | Unix time of the last applied event |
//!
//! Cache metrics of on-demand stores are reported by the cached store's `cache_stats()`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-resource metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// The resource's name in the configuration.
    pub resource: String,
}

/// Labels of event counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The resource's name in the configuration.
    pub resource: String,
    /// `added`, `modified`, `deleted`, `unchanged` or `skipped`.
    pub r#type: String,
}

/// Every watcher metric; cheap to clone (handles share the same series).
#[derive(Clone, Debug, Default)]
pub struct WatchMetrics {
    /// `kstore_objects`.
    pub objects: Family<ResourceLabels, Gauge>,
    /// `kstore_key_tuples`.
    pub key_tuples: Family<ResourceLabels, Gauge>,
    /// `kstore_estimated_bytes`.
    pub estimated_bytes: Family<ResourceLabels, Gauge>,
    /// `kstore_events_total`.
    pub events: Family<EventLabels, Counter>,
    /// `kstore_relists_total`.
    pub relists: Family<ResourceLabels, Counter>,
    /// `kstore_watch_errors_total`.
    pub watch_errors: Family<ResourceLabels, Counter>,
    /// `kstore_extraction_failures_total`.
    pub extraction_failures: Family<ResourceLabels, Counter>,
    /// `kstore_last_event_timestamp_seconds`.
    pub last_event: Family<ResourceLabels, Gauge>,
}

impl WatchMetrics {
    /// Registers every metric in `registry` (names prefixed `kstore_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("kstore_objects", "Objects or references held by the store", self.objects.clone());
        registry.register("kstore_key_tuples", "Distinct index key tuples", self.key_tuples.clone());
        registry.register("kstore_estimated_bytes", "Estimated heap bytes of the store", self.estimated_bytes.clone());
        registry.register("kstore_events", "Watch events applied", self.events.clone());
        registry.register("kstore_relists", "Completed (re)lists", self.relists.clone());
        registry.register("kstore_watch_errors", "Watch stream errors", self.watch_errors.clone());
        registry.register(
            "kstore_extraction_failures",
            "Objects not stored because key extraction failed",
            self.extraction_failures.clone(),
        );
        registry.register(
            "kstore_last_event_timestamp_seconds",
            "Unix time of the last applied event",
            self.last_event.clone(),
        );
    }

    pub(crate) fn labels(resource: &str) -> ResourceLabels {
        ResourceLabels { resource: resource.to_owned() }
    }

    pub(crate) fn event(&self, resource: &str, kind: &str, n: u64) {
        if n > 0 {
            self.events
                .get_or_create(&EventLabels { resource: resource.to_owned(), r#type: kind.to_owned() })
                .inc_by(n);
        }
    }
}
