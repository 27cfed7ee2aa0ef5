//! The `Store` trait.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Identity, KeyTuple, Objects, Result};

/// An indexed store of Kubernetes objects of one resource type.
///
/// Both kstore stores implement it (`MemoryStore`: everything in memory; `CachedStore`:
/// references in memory, objects fetched on demand), so a controller can switch between them
/// per resource without changing its lookups. Methods are async because a `CachedStore` lookup
/// may fetch from the API server; a `MemoryStore` never awaits.
///
/// # Key semantics (every implementation)
/// * A store has a fixed number `N >= 1` of index keys; [`KeyTuple`]s are tuples, never joined
///   strings.
/// * `add`/`update` take exactly `N` keys; `get` takes `1..=N` keys, and fewer than `N` select by
///   prefix of the key tuple. A miss is an empty result, not an error.
/// * Keys need not be unique: many objects may share one key tuple. Each object is held once,
///   by identity (`namespace`, `name`).
/// * `update` moves an object whose keys changed and adds an absent one; `delete` removes one
///   object by identity; [`Store::delete_all_under`] is the explicit bulk removal.
/// * Results are ordered by namespace, then name.
#[async_trait]
pub trait Store<T: Send + Sync + 'static>: Send + Sync {
    /// The number of index keys, `N`.
    fn num_keys(&self) -> usize;

    /// Objects whose key tuple equals `keys` (`keys.len() == N`) or starts with it (fewer).
    async fn get(&self, keys: &[&str]) -> Result<Objects<T>>;

    /// Every object, ordered by namespace, then name.
    async fn list(&self) -> Result<Objects<T>>;

    /// Adds `object` under `keys`; an object with the same identity is replaced (and moved).
    async fn add(&self, object: Arc<T>, keys: KeyTuple) -> Result<()>;

    /// Replaces the object with the same identity (moving it if its keys changed), or adds it.
    async fn update(&self, object: Arc<T>, keys: KeyTuple) -> Result<()>;

    /// Removes the one object with this identity, returning it. When both `identity.uid` and the
    /// stored object's uid are known and differ, nothing is removed (a late delete of an earlier
    /// incarnation).
    async fn delete(&self, identity: &Identity) -> Result<Option<Arc<T>>>;

    /// Removes every object under `keys` (exact or prefix, like `get`); returns how many.
    async fn delete_all_under(&self, keys: &[&str]) -> Result<usize>;

    /// Removes everything.
    async fn clear(&self) -> Result<()>;

    /// Number of objects (or references) held.
    fn len(&self) -> usize;

    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
