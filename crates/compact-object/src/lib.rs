//! `compact-object` is kstore's representation of dynamic Kubernetes objects: an immutable,
//! `Arc`-shared [`CompactObject`] that stores a JSON value in one allocation, at 0.4–0.65× its
//! compact JSON size for typical objects and ≈ 0.96× for a TLS Secret whose payload is one long
//! base64 string (against 4–16× and 1.3× for `serde_json::Value` and
//! `kube::api::DynamicObject`), while still answering path lookups
//! ([`CompactObject::pointer`], [`Node::get`]), iterating maps and arrays, serializing through
//! serde and deserializing into typed objects — all without decoding the whole object.
//!
//! It is *not* a general JSON library (no mutation, no JSON-path queries, no streaming) and not
//! a wire format: the encoding refers to a process-wide key table (see [`interner_stats`]) and
//! is only meaningful inside the process that built it.
//!
//! Start with [`CompactObject::from_slice`] (or `serde::Deserialize`, to decode a watch event
//! straight into the compact form), then [`CompactObject::root`] / [`CompactObject::pointer`]
//! for [`Node`] views, and `store_types::KubeObject` for identity and resourceVersion.
//! `docs/compact-object.md` describes the encoding, the crates evaluated before writing it, and
//! the benchmark results.

mod de;
mod encode;
mod error;
mod intern;
mod node;
mod object;
mod prune;
mod resource;
mod scope;
mod ser;
mod stack;
mod type_meta;

pub use de::DeError;
pub use encode::MAX_DEPTH;
pub use error::{Error, Result};
pub use intern::{InternerStats, MAX_KEY_LEN, MAX_KEYS, interner_stats};
pub use node::{Node, NodeKind};
pub use object::{CompactObject, OwnedNode};
pub use prune::{Integral, Pruner, Step, integral};
pub use resource::{CompactResource, Rejected};
pub use scope::DecodePruning;

#[cfg(test)]
mod tests;
