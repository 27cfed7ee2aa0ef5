//! The one error type of store operations.

use std::fmt;

use crate::Identity;

/// A boxed error from a lower layer (HTTP, decoding…).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`StoreError`] as the default error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store operation that failed, named in every [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Building a store.
    Construct,
    /// Lookup by 1..=N keys.
    Get,
    /// Listing every object.
    List,
    /// Adding an object.
    Add,
    /// Adding or replacing an object.
    Update,
    /// Deleting one object by identity.
    Delete,
    /// Deleting every object under a key tuple.
    DeleteAllUnder,
    /// Removing everything.
    Clear,
    /// Applying a batch of changes.
    Batch,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Operation::Construct => "construct",
            Operation::Get => "get",
            Operation::List => "list",
            Operation::Add => "add",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::DeleteAllUnder => "delete_all_under",
            Operation::Clear => "clear",
            Operation::Batch => "batch",
        };
        f.write_str(s)
    }
}

/// How many keys an operation accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyArity {
    /// Exactly this many (add, update).
    Exactly(usize),
    /// From 1 up to this many (get, delete_all_under).
    UpTo(usize),
}

impl fmt::Display for KeyArity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyArity::Exactly(n) => write!(f, "exactly {n}"),
            KeyArity::UpTo(n) => write!(f, "1 to {n}"),
        }
    }
}

/// Everything that can go wrong in a store operation. Each variant names the operation and the
/// keys or identities involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A store was configured with zero index keys; every store needs at least one.
    #[error("a store needs at least one index key, got 0")]
    NoIndexKeys,

    /// An operation got the wrong number of keys.
    #[error("{op}: expected {expected} keys, got {got}: {keys:?}")]
    KeyCount {
        /// The operation.
        op: Operation,
        /// What it accepts.
        expected: KeyArity,
        /// How many it got.
        got: usize,
        /// The keys it got.
        keys: Vec<String>,
    },

    /// An object has no `metadata.name`, so it has no identity and cannot be stored.
    #[error("{op}: object under keys {keys:?} has no metadata.name")]
    MissingIdentity {
        /// The operation.
        op: Operation,
        /// The keys it was to be stored under.
        keys: Vec<String>,
    },

    /// Fetching objects from the API failed for some identities. `partial` holds how many
    /// objects were fetched successfully (they are available from the store).
    #[error("{op}: fetching {} object(s) failed ({failed:?}), {partial} succeeded: {source}", failed.len())]
    Fetch {
        /// The operation.
        op: Operation,
        /// The keys that were looked up.
        keys: Vec<String>,
        /// Identities whose fetch failed.
        failed: Vec<Identity>,
        /// Objects that were fetched successfully.
        partial: usize,
        /// The first failure.
        #[source]
        source: BoxError,
    },

    /// A backend failure not covered above.
    #[error("{op} with keys {keys:?} failed: {source}")]
    Backend {
        /// The operation.
        op: Operation,
        /// The keys involved.
        keys: Vec<String>,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// The operation that failed, where there is one.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            StoreError::NoIndexKeys => Some(Operation::Construct),
            StoreError::KeyCount { op, .. }
            | StoreError::MissingIdentity { op, .. }
            | StoreError::Fetch { op, .. }
            | StoreError::Backend { op, .. } => Some(*op),
        }
    }

    /// Checks a key count, returning [`StoreError::KeyCount`] when it is out of range.
    #[inline]
    pub fn check_arity<S: AsRef<str>>(op: Operation, expected: KeyArity, keys: &[S]) -> Result<()> {
        let ok = match expected {
            KeyArity::Exactly(n) => keys.len() == n,
            KeyArity::UpTo(n) => (1..=n).contains(&keys.len()),
        };
        if ok { Ok(()) } else { Err(Self::key_count(op, expected, keys)) }
    }

    // Out of line: lookups inline `check_arity`, and the error's allocations would bloat them.
    #[cold]
    #[inline(never)]
    fn key_count<S: AsRef<str>>(op: Operation, expected: KeyArity, keys: &[S]) -> StoreError {
        StoreError::KeyCount {
            op,
            expected,
            got: keys.len(),
            keys: keys.iter().map(|k| k.as_ref().to_owned()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_operation_and_keys() {
        let e = StoreError::check_arity(Operation::Add, KeyArity::Exactly(2), &["a/b"]).unwrap_err();
        assert_eq!(e.to_string(), r#"add: expected exactly 2 keys, got 1: ["a/b"]"#);
        assert_eq!(e.operation(), Some(Operation::Add));
        let e = StoreError::check_arity::<&str>(Operation::Get, KeyArity::UpTo(2), &[]).unwrap_err();
        assert_eq!(e.to_string(), "get: expected 1 to 2 keys, got 0: []");
        assert!(StoreError::check_arity(Operation::Get, KeyArity::UpTo(2), &["a", "b"]).is_ok());
        assert_eq!(StoreError::NoIndexKeys.to_string(), "a store needs at least one index key, got 0");
    }
}
