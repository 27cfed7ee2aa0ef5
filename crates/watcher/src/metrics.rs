//! Prometheus metrics of the watchers (prometheus-client), behind the default-on `metrics`
//! feature.
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
//! | `kstore_rejected_objects_total` | counter | resource | objects not stored because they cannot be decoded or prepared (nested deeper than 10,000 levels, over `maxObjectBytes`, not a JSON object, …) |
//! | `kstore_last_event_timestamp_seconds` | gauge | resource | Unix time of the last applied event |
//!
//! Cache metrics of on-demand stores are reported by the cached store's `cache_stats()`.
//!
//! The feature is on by default because a controller is usually scraped; an application that
//! reports differently (or not at all) turns it off (`default-features = false`) and does not
//! build prometheus-client. Without it [`WatchMetrics`] is an empty value with the same
//! constructor, the watchers record nothing, and `register` does not exist. The watchers record
//! through [`ResourceMetrics`], so no call site depends on the feature.

#[cfg(feature = "metrics")]
pub use enabled::{EventLabels, ResourceLabels, WatchMetrics};

#[cfg(feature = "metrics")]
mod enabled {
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
        /// `kstore_rejected_objects_total`.
        pub rejected_objects: Family<ResourceLabels, Counter>,
        /// `kstore_last_event_timestamp_seconds`.
        pub last_event: Family<ResourceLabels, Gauge>,
    }

    impl WatchMetrics {
        /// Registers every metric in `registry` (names prefixed `kstore_`).
        pub fn register(&self, registry: &mut Registry) {
            registry.register("kstore_objects", "Objects or references held by the store", self.objects.clone());
            registry.register("kstore_key_tuples", "Distinct index key tuples", self.key_tuples.clone());
            registry.register(
                "kstore_estimated_bytes",
                "Estimated heap bytes of the store",
                self.estimated_bytes.clone(),
            );
            registry.register("kstore_events", "Watch events applied", self.events.clone());
            registry.register("kstore_relists", "Completed (re)lists", self.relists.clone());
            registry.register("kstore_watch_errors", "Watch stream errors", self.watch_errors.clone());
            registry.register(
                "kstore_extraction_failures",
                "Objects not stored because key extraction failed",
                self.extraction_failures.clone(),
            );
            registry.register(
                "kstore_rejected_objects",
                "Objects not stored because they cannot be decoded or prepared",
                self.rejected_objects.clone(),
            );
            registry.register(
                "kstore_last_event_timestamp_seconds",
                "Unix time of the last applied event",
                self.last_event.clone(),
            );
        }
    }
}

/// Every watcher metric: nothing, because the `metrics` feature is off.
#[cfg(not(feature = "metrics"))]
#[derive(Clone, Debug, Default)]
pub struct WatchMetrics {
    _off: (),
}

/// The metrics of one watched resource: what the watcher records into, labelled once.
#[derive(Clone, Debug)]
pub(crate) struct ResourceMetrics {
    #[cfg(feature = "metrics")]
    metrics: WatchMetrics,
    #[cfg(feature = "metrics")]
    labels: ResourceLabels,
}

impl ResourceMetrics {
    /// The series of `resource` (its name in the configuration) in `metrics`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(metrics: &WatchMetrics, resource: &str) -> Self {
        ResourceMetrics {
            #[cfg(feature = "metrics")]
            metrics: metrics.clone(),
            #[cfg(feature = "metrics")]
            labels: ResourceLabels { resource: resource.to_owned() },
        }
    }

    /// One watch stream error (retried with backoff).
    pub(crate) fn watch_error(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.watch_errors.get_or_create(&self.labels).inc();
    }

    /// One object not stored because key extraction failed.
    pub(crate) fn extraction_failure(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.extraction_failures.get_or_create(&self.labels).inc();
    }

    /// One object not stored because it cannot be decoded or prepared.
    pub(crate) fn rejected_object(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.rejected_objects.get_or_create(&self.labels).inc();
    }

    /// One completed (re)list.
    pub(crate) fn relist(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.relists.get_or_create(&self.labels).inc();
    }

    /// `n` applied events of type `kind` (`added`, `modified`, `deleted`, `unchanged`,
    /// `skipped`).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn events(&self, kind: &str, n: u64) {
        #[cfg(feature = "metrics")]
        if n > 0 {
            self.metrics
                .events
                .get_or_create(&EventLabels { resource: self.labels.resource.clone(), r#type: kind.to_owned() })
                .inc_by(n);
        }
    }

    /// The store's size after an applied change, and the time of that change.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn store_changed(&self, objects: usize, key_tuples: usize, estimated_bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            self.metrics.objects.get_or_create(&self.labels).set(gauge(objects));
            self.metrics.key_tuples.get_or_create(&self.labels).set(gauge(key_tuples));
            self.metrics.estimated_bytes.get_or_create(&self.labels).set(gauge(estimated_bytes));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default();
            self.metrics.last_event.get_or_create(&self.labels).set(now);
        }
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn records_into_the_resource_series() {
        let metrics = WatchMetrics::default();
        let m = ResourceMetrics::new(&metrics, "ingresses");
        m.watch_error();
        m.relist();
        m.relist();
        m.events("added", 3);
        m.events("deleted", 0);
        m.store_changed(5, 4, 1000);
        let labels = ResourceLabels { resource: "ingresses".into() };
        assert_eq!(metrics.watch_errors.get_or_create(&labels).get(), 1);
        assert_eq!(metrics.relists.get_or_create(&labels).get(), 2);
        assert_eq!(metrics.objects.get_or_create(&labels).get(), 5);
        assert_eq!(metrics.estimated_bytes.get_or_create(&labels).get(), 1000);
        assert!(metrics.last_event.get_or_create(&labels).get() > 0);
        let added = EventLabels { resource: "ingresses".into(), r#type: "added".into() };
        assert_eq!(metrics.events.get_or_create(&added).get(), 3);
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("kstore_relists_total{resource=\"ingresses\"} 2"), "{text}");
        assert!(!text.contains("type=\"deleted\""), "zero counts create no series: {text}");
    }
}
