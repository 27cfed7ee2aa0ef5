//! `indexer` turns the user configuration of a watched resource — `indexBy`, `ignoreFields`,
//! `fieldSelector`, `labelSelector` — into compiled operations on objects: index-key
//! extraction, in-place field removal with number normalisation, and client-side selectors.
//!
//! All expressions use one dialect and one parser ([`Path`]): the Kubernetes JSONPath subset
//! users write (`metadata.namespace`, `.metadata.name`, `metadata.labels['app']`,
//! `metadata.labels.kubernetes\.io/service-name`, `["a.b/c"]`, `[0]`, `[*]`). Expressions are
//! validated once, with errors naming the expression and position; per-object work walks the
//! compiled segments directly on the object's own representation (`serde_json::Value`,
//! `DynamicObject`, typed objects via [`Typed`], kstore's compact object) through the
//! [`Indexable`] trait.
//!
//! It is *not* a store and does no I/O: no async runtime, no HTTP, no watch. The watcher calls
//! it; stores receive the [`IndexKeys`] it produces.
//!
//! Start with [`Indexer`] (keys and [`Indexer::prepare`]), then [`FieldSelector`],
//! [`LabelSelector`] and [`ExtractionFailures`].

mod compact;
mod document;
mod failures;
mod field_selector;
mod indexer;
mod label_selector;
mod path;

pub use document::{Document, Indexable, MetaNode, NodeKind, NodeRef, ResourceDoc, Typed};
pub use failures::ExtractionFailures;
pub use field_selector::{FieldOp, FieldSelector, FieldSelectorError, FieldTerm};
pub use indexer::{ConfigError, IndexError, IndexKeys, Indexer, MissingFieldPolicy, PrepareError, normalize_numbers};
pub use label_selector::{LabelErrorKind, LabelSelector, LabelSelectorError};
pub use path::{ExprError, ExprErrorKind, Path, Segment};
