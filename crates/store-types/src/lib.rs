//! `store-types` is kstore's shared vocabulary: the [`Store`] trait both stores implement, the
//! [`StoreError`] they return, the [`KeyTuple`] index keys, object identity ([`ObjectKey`],
//! [`Identity`], the [`KubeObject`] trait), result sets ([`Objects`]) and small configuration
//! types ([`StoreType`], [`ChangeStats`]).
//!
//! It is *not* a store and it does no I/O: it pulls in no async runtime, no HTTP client and no
//! watch machinery, so every other kstore crate (and a controller's own code) can depend on it
//! cheaply.
//!
//! Start with [`Store`] for the operations, [`KeyTuple`] for how index keys are compared, and
//! [`KubeObject`] for how a stored object tells the store who it is.

mod config;
mod error;
mod identity;
mod key;
mod objects;
mod store;

pub use config::{ChangeStats, ParseStoreTypeError, StoreType};
pub use error::{BoxError, KeyArity, Operation, Result, StoreError};
pub use identity::{Identity, IdentityRef, KubeObject, ObjectKey, json_identity, json_resource_version};
pub use key::{KeyElements, KeyTuple};
pub use objects::Objects;
pub use store::{GetFuture, Store};
