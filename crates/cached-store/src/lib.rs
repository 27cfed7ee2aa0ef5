//! `cached-store` is kstore's [`CachedStore`]: for large, rarely read resources (TLS Secrets,
//! big ConfigMaps) it keeps only [`Reference`]s (namespace, name, uid, resourceVersion) in
//! memory, indexed exactly like a `MemoryStore` — it *is* a `MemoryStore` of references — and
//! fetches objects from the API server through `kube` when a lookup asks for them, keeping them
//! in a bounded, TTL-limited cache (quick_cache) as [`CompactObject`]s.
//!
//! It is *not* a watcher: the `watcher` crate feeds it references
//! ([`CachedStore::apply_reference`], [`CachedStore::delete_reference`],
//! [`CachedStore::replace_references`]), ideally from a metadata-only watch so object bodies are
//! never listed or watched. It is not a general HTTP cache either: it caches only objects whose
//! references it holds, and drops an entry as soon as a watch event changes its object.
//!
//! A miss GETs the object and decodes the response text in one pass straight into a
//! [`CompactObject`] (never a `serde_json::Value` or a `DynamicObject`); with a [`Prepare`]
//! step configured — the watcher passes its indexer, whose `ignoreFields` are skipped while
//! decoding ([`PrepareStep`]) — numbers are normalised while decoding and the step works on the
//! compact form, so an object fetched on demand is byte for byte what a full watch stores for
//! the same JSON. A response that is not one JSON object is a [`FetchError::Encode`], a failing
//! step a [`FetchError::Prepare`]; neither is cached.
//!
//! Start with [`CachedStore::new`] and [`CachedStoreConfig`]; read through the
//! [`Store`](store_types::Store) trait (or [`CachedStore::get_detailed`] for per-object
//! failures); watch the cache with [`CachedStore::cache_stats`]. `docs/cached-store.md` has the
//! guide and the measured memory and speed.

mod config;
mod fetch;
mod reference;
mod store;
mod sync;

pub use compact_object::CompactObject;
pub use config::{
    CachedStoreConfig, ConfigError, DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_CONCURRENT_FETCHES,
    DEFAULT_TTL, Feed, Prepare, PrepareStep, check_metadata_only, required_feed,
};
pub use fetch::FetchError;
pub use memory_store::Change;
pub use reference::{Reference, ReferenceError};
pub use store::{CacheStats, CachedHandle, CachedStore, FeedError, Fetched};
