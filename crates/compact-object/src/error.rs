//! The crate's error type.

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why building, converting or deserializing a [`CompactObject`](crate::CompactObject) failed.
///
/// Every malformed, truncated or oversized input is reported through one of these variants;
/// no input makes the crate panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input bytes are not one well-formed JSON value (syntax error, truncation, invalid
    /// UTF-8, trailing characters; nesting deeper than serde_json's limit of 128 when a
    /// `Deserializer` other than the crate's own constructors' drives the decoding).
    #[error("invalid JSON input: {source}")]
    Json {
        /// serde_json's diagnosis, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// A typed value could not be serialized (its `Serialize` impl failed, it produced a map
    /// key that is not a string, or an integer beyond `u64`/`i64`).
    #[error("serializing {type_name} failed: {source}")]
    Serialize {
        /// The Rust type that was being serialized.
        type_name: &'static str,
        /// What went wrong, as a serde error.
        #[source]
        source: serde_json::Error,
    },

    /// The object does not have the shape the requested Rust type expects.
    #[error("deserializing into {type_name} failed: {message}")]
    Deserialize {
        /// The Rust type that was requested.
        type_name: &'static str,
        /// What did not match, as reported by the type's `Deserialize` impl.
        message: String,
    },

    /// The value nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) arrays/objects.
    #[error("value nests deeper than {limit} arrays/objects")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },

    /// The encoded object would exceed 4 GiB.
    #[error("encoded object of {size} bytes exceeds the 4 GiB limit")]
    TooLarge {
        /// Encoded size reached when the limit was hit.
        size: usize,
    },

    /// A `Deserializer` other than JSON produced something JSON has no counterpart for (bytes,
    /// a non-string map key, ...).
    #[error("unsupported input: {message}")]
    Unsupported {
        /// What was supplied.
        message: String,
    },
}
