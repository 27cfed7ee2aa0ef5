//! `watcher` connects a cluster to kstore's stores: it runs `kube::runtime::watcher` for each
//! configured resource, prepares every object with the `indexer` (field removal, key
//! extraction, selectors), applies it to a `MemoryStore` (or the references of a
//! `CachedStore`), signals when the initial sync is complete and sends debounced change
//! notifications.
//!
//! It is *not* a list/watch implementation of its own (kube's watcher does list-watch,
//! resume, relist on 410, bookmarks and backoff) and not a store.
//!
//! Start with [`WatchConfig`] / [`WatchedResource`] (the user configuration, in the Go
//! original's format), [`ResourceWatcher`] for one resource, and [`ResourceSet`] for the named
//! set of resources a controller renders from. An application that already runs its own
//! `kube::runtime::watcher` streams feeds kstore stores from them with
//! [`reflect::reflector`] instead (and can keep sharing the streams with a kube `Controller`).
//!
//! # Usage
//! * YAML-configured resources: [`ResourceSet::start`], then [`ResourceSet::snapshot`] per
//!   render (see [`ResourceSet`]).
//! * Your own stream: [`reflect::Writer`] + [`reflect::reflector`] (see [`reflect`]);
//!   `examples/controller.rs` shares the streams with a kube `Controller`.
//!
//! # Writers and readers
//! Every store has exactly one writer, held by whatever feeds it (a [`ResourceWatcher`], or
//! the [`reflect::reflector`] stream); everything handed out — [`StoreHandle`],
//! [`reflect::Reflected`], [`SetSnapshot`] — is read-only, so a template or reconciler can
//! never clear a store while its watcher reports it synced.

mod config;
mod debounce;
mod duration;
mod metrics;
mod overlay;
pub mod reflect;
mod resource;
mod set;
mod single;

pub use config::{
    ConfigError, DEFAULT_CACHE_TTL, DEFAULT_MAX_OBJECT_BYTES, ResourceConfig, WatchConfig, WatchedResource,
};
pub use debounce::{ChangeCallback, Debouncer};
pub use duration::{DurationError, format_duration, parse_duration};
pub use metrics::WatchMetrics;
#[cfg(feature = "metrics")]
pub use metrics::{EventLabels, ResourceLabels};
pub use overlay::{ProposalError, ResourceOverlaySummary, SetOverlay, SetOverlayBuilder};
pub use resource::{
    DEFAULT_DEBOUNCE, Health, ObjectTooLarge, ResourceWatcher, StoreHandle, SyncCallback, WatchError, WatchOptions,
    resolve,
};
pub use set::{
    LookupError, ResourceSet, SetChangeCallback, SetError, SetOptions, SetSnapshot, SetSyncCallback, Single,
};
pub use single::{LastWatchError, ObjectCallback, ObjectWatchError, ObjectWatchOptions, ObjectWatcher};
