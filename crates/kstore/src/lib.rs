//! `kstore`: indexed, memory-lean stores of watched Kubernetes resources, for controller authors
//! in Rust. This crate is the one dependency an application adds; it re-exports kstore's layered
//! crates as modules, each behind a feature where it brings in I/O:
//!
//! | module | crate | feature | what it is |
//! |---|---|---|---|
//! | [`types`] | `kstore-types` | always | the shared vocabulary: store traits, keys, identities, errors |
//! | [`compact`] | `kstore-compact-object` | always | `CompactObject`, a dynamic object at about its JSON size |
//! | [`indexer`] | `kstore-indexer` | always | compiled `indexBy`, `ignoreFields` and selectors |
//! | [`memory`] | `kstore-memory-store` | always | `MemoryStore`: every object in memory, indexed, lock-free snapshots |
//! | `cached` | `kstore-cached-store` | `cached` | `CachedStore`: references in memory, objects fetched on demand |
//! | `watcher` | `kstore-watcher` | `watcher` (default) | kube watches into stores; `ResourceSet` |
//! | `sim` | `kstore-apiserver-sim` | `sim` | a Kubernetes-API-compatible server on loopback, for tests |
//! | `render` | `kstore-render` | `render` | minijinja templates over `ResourceSet` snapshots, objects as lazy values |
//!
//! Feature `metrics` (default) adds the watchers' Prometheus metrics (prometheus-client).
//!
//! kstore picks no Kubernetes version and no TLS stack: the application enables one
//! `k8s-openapi` version feature (`latest`, `v1_33`, …) and, to reach a real cluster, kube's
//! TLS features (`rustls-tls` + `ring`, or `aws-lc-rs`, or `openssl-tls`), exactly as for
//! kube-rs itself.
//!
//! What this crate is not: it adds no API of its own beyond the re-exports; every type lives in
//! (and is documented by) its layered crate.
//!
//! # Example
//!
//! A store of Services indexed by namespace and name, without any watch:
//!
//! ```
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::Service;
//! use kstore::MemoryStore;
//! use kstore::types::KeyTuple;
//!
//! let store = MemoryStore::<Service>::new(2)?;
//! let mut svc = Service::default();
//! svc.metadata.namespace = Some("shop".into());
//! svc.metadata.name = Some("web".into());
//! store.add(Arc::new(svc), KeyTuple::new(["shop", "web"]))?;
//! assert_eq!(store.get(&["shop"])?.len(), 1); // every Service of the namespace
//! # Ok::<(), kstore::types::StoreError>(())
//! ```
//!
//! With the `watcher` feature, a [`ResourceSet`] watches what a YAML configuration names and
//! answers lookups from consistent snapshots; `examples/quick_start.rs` runs one against the
//! simulator (`cargo run -p kstore --example quick_start --features sim`).

pub use compact_object as compact;
pub use indexer;
pub use memory_store as memory;
pub use store_types as types;

#[cfg(feature = "cached")]
pub use cached_store as cached;

#[cfg(feature = "watcher")]
pub use watcher;

#[cfg(feature = "render")]
pub use render;

#[cfg(feature = "sim")]
pub use apiserver_sim as sim;

pub use compact_object::CompactObject;
pub use memory_store::MemoryStore;

#[cfg(feature = "cached")]
pub use cached_store::CachedStore;

#[cfg(feature = "watcher")]
pub use watcher::{ResourceSet, WatchConfig};

/// The README's examples, compiled (and, where they need no cluster, run) as doc tests: they
/// use `kstore::…` paths, as an application does.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
