//! The [`Indexer`]: compiled `indexBy` and `ignoreFields`.

use std::borrow::Cow;

use compact_object::{CompactObject, DecodePruning, Pruner, Step};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_core::DynamicObject;
use serde_json::Value;
use smallvec::SmallVec;
use store_types::KeyTuple;

use crate::document::{Document, Indexable, NodeRef, render, resolve};
use crate::path::{ExprError, Path, Segment};

/// The index keys extracted from one object: a [`KeyTuple`] with one element per `indexBy`
/// expression, in order.
pub type IndexKeys = KeyTuple;

/// `Result` with [`ConfigError`] as the default error.
pub(crate) type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// What to do when an `indexBy` path is missing from an object.
///
/// `metadata.namespace` is never "missing": on a cluster-scoped object it yields `""` under
/// both policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingFieldPolicy {
    /// [`Indexer::keys`] fails with [`IndexError::MissingField`]; the watcher does not store
    /// the object, counts the failure and logs it once per object identity (see
    /// [`ExtractionFailures`](crate::ExtractionFailures)).
    #[default]
    Error,
    /// The missing key becomes `""`.
    Empty,
}

/// An invalid indexer configuration, detected when the [`Indexer`] is built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `indexBy` is empty; every store needs at least one index key.
    #[error("indexBy needs at least one expression, got none")]
    NoIndexKeys,
    /// An `indexBy` expression does not parse.
    #[error("indexBy[{index}]: {source}")]
    InvalidIndexBy {
        /// Position in `indexBy`.
        index: usize,
        /// The parse error (with expression and position).
        #[source]
        source: ExprError,
    },
    /// An `ignoreFields` expression does not parse.
    #[error("ignoreFields[{index}]: {source}")]
    InvalidIgnoreField {
        /// Position in the merged `ignoreFields` list (global first, then per resource).
        index: usize,
        /// The parse error (with expression and position).
        #[source]
        source: ExprError,
    },
    /// An `ignoreFields` pattern ends in `[n]` or `[*]`: removing array elements would shift
    /// the remaining ones (and make removal non-idempotent).
    #[error(
        "ignoreFields pattern {pattern:?} must end with a field name, not an array index or [*] \
         (remove the field that holds the array instead)"
    )]
    IgnoreEndsInArray {
        /// The pattern, as printed.
        pattern: String,
    },
    /// An `ignoreFields` pattern would remove (part of) a field that is an index key.
    #[error(
        "ignoreFields pattern {pattern:?} removes data that indexBy expression {index_by:?} \
         reads; remove one of them"
    )]
    IgnoresIndexedField {
        /// The `ignoreFields` pattern, as printed.
        pattern: String,
        /// The `indexBy` expression, as printed.
        index_by: String,
    },
}

/// Key extraction failed for an object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// An `indexBy` path is missing from the object and the policy is
    /// [`MissingFieldPolicy::Error`].
    #[error("object {object}: index key {position} ({path}) is missing")]
    MissingField {
        /// The object, as `namespace/name` (or `name`, or `<unnamed>`).
        object: String,
        /// Which key (0-based position in `indexBy`).
        position: usize,
        /// The `indexBy` expression, as printed.
        path: String,
    },
}

/// Preparing an object for storage failed (only typed and dynamic objects, which are
/// converted through JSON).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The object did not convert to or from JSON, for example because an `ignoreFields`
    /// pattern removed a field its Rust type requires.
    #[error("preparing a {type_name} for storage failed: {source}")]
    Convert {
        /// The Rust type of the object.
        type_name: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// Compiled `indexBy` and `ignoreFields` of one watched resource.
///
/// * [`Indexer::keys`] extracts the index keys of an object (any [`Indexable`]
///   representation), following the [`MissingFieldPolicy`].
/// * [`Indexer::prepare`] readies an owned object for storage: it removes the `ignoreFields`
///   and normalises numbers (floats without fractional part become integers, so ports render as
///   `80`, not `80.0`).
///
/// Every expression is parsed and validated in the constructor; an `ignoreFields` pattern that
/// would remove data an `indexBy` expression reads is rejected there, not discovered per object.
///
/// # Key strings
/// Strings are used as-is; integers in decimal; floats in the shortest form that round-trips
/// (`0.5`, `80` for `80.0`, never an exponent); booleans `true`/`false`; `null` as `""`; maps
/// and arrays as compact JSON. A wildcard path uses its first match.
///
/// # Usage
/// ```
/// use kstore_indexer::{Indexer, MissingFieldPolicy};
/// use serde_json::json;
///
/// let indexer = Indexer::new(
///     ["metadata.namespace", "metadata.labels['app']"],
///     ["metadata.managedFields"],
/// )?;
/// let mut obj = json!({
///     "metadata": {"namespace": "default", "name": "web", "labels": {"app": "shop"},
///                  "managedFields": [{"manager": "kubectl"}]},
///     "spec": {"port": 80.0}
/// });
/// indexer.prepare(&mut obj);
/// assert_eq!(obj["spec"]["port"], json!(80));
/// assert!(obj["metadata"].get("managedFields").is_none());
/// assert_eq!(indexer.keys(&obj)?.to_vec(), ["default", "shop"]);
///
/// // A missing label is an error by default, "" with the Empty policy.
/// let unlabelled = json!({"metadata": {"name": "x"}});
/// assert!(indexer.keys(&unlabelled).is_err());
/// let lenient = indexer.clone().with_missing_fields(MissingFieldPolicy::Empty);
/// assert_eq!(lenient.keys(&unlabelled)?.to_vec(), ["", ""]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Indexer {
    index_by: Vec<Path>,
    ignore: Vec<Path>,
    missing: MissingFieldPolicy,
}

impl Indexer {
    /// Compiles `index_by` and `ignore_fields` with the default [`MissingFieldPolicy::Error`].
    ///
    /// To merge a global and a per-resource `ignoreFields` list, use
    /// [`Indexer::with_ignore_lists`] (or chain the iterators).
    pub fn new<I, S, J, T>(index_by: I, ignore_fields: J) -> Result<Indexer>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        J: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        Self::with_ignore_lists(index_by, ignore_fields, std::iter::empty::<&str>())
    }

    /// Compiles `index_by` with the global and per-resource `ignoreFields` lists merged
    /// (duplicates removed).
    pub fn with_ignore_lists<I, S, G, T, R, U>(index_by: I, global: G, resource: R) -> Result<Indexer>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        G: IntoIterator<Item = T>,
        T: AsRef<str>,
        R: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let index_by = index_by
            .into_iter()
            .enumerate()
            .map(|(index, s)| Path::parse(s.as_ref()).map_err(|source| ConfigError::InvalidIndexBy { index, source }))
            .collect::<Result<Vec<_>>>()?;
        if index_by.is_empty() {
            return Err(ConfigError::NoIndexKeys);
        }
        let patterns = global
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .chain(resource.into_iter().map(|s| s.as_ref().to_owned()));
        let mut ignore: Vec<Path> = Vec::new();
        for (index, s) in patterns.enumerate() {
            let p = Path::parse(&s).map_err(|source| ConfigError::InvalidIgnoreField { index, source })?;
            if matches!(p.segments().last(), Some(Segment::Index(_) | Segment::Wildcard)) {
                return Err(ConfigError::IgnoreEndsInArray { pattern: p.to_string() });
            }
            if let Some(ix) = index_by.iter().find(|ix| ix.overlaps(&p)) {
                return Err(ConfigError::IgnoresIndexedField { pattern: p.to_string(), index_by: ix.to_string() });
            }
            if !ignore.contains(&p) {
                ignore.push(p);
            }
        }
        Ok(Indexer { index_by, ignore, missing: MissingFieldPolicy::default() })
    }

    /// Sets the missing-field policy.
    pub fn with_missing_fields(mut self, policy: MissingFieldPolicy) -> Self {
        self.missing = policy;
        self
    }

    /// The missing-field policy.
    ///
    /// ```
    /// use kstore_indexer::{Indexer, MissingFieldPolicy};
    /// let ix = Indexer::new(["metadata.namespace", "spec.host"], Vec::<&str>::new())?;
    /// assert_eq!(ix.missing_fields(), MissingFieldPolicy::Error);
    /// let ix = ix.with_missing_fields(MissingFieldPolicy::Empty);
    /// assert_eq!(ix.missing_fields(), MissingFieldPolicy::Empty);
    /// # Ok::<(), kstore_indexer::ConfigError>(())
    /// ```
    pub fn missing_fields(&self) -> MissingFieldPolicy {
        self.missing
    }

    /// The compiled `indexBy` expressions.
    pub fn index_by(&self) -> &[Path] {
        &self.index_by
    }

    /// The compiled, merged `ignoreFields` patterns.
    pub fn ignore_fields(&self) -> &[Path] {
        &self.ignore
    }

    /// Number of index keys (the store's `N`).
    pub fn num_keys(&self) -> usize {
        self.index_by.len()
    }

    /// Extracts the index keys of `obj`.
    ///
    /// Walks each compiled path directly on the object's own representation; strings are
    /// borrowed, so the only allocation in the common case is the returned [`KeyTuple`].
    pub fn keys<O: Indexable + ?Sized>(&self, obj: &O) -> Result<IndexKeys, IndexError> {
        let doc = obj.document();
        self.keys_of_document(&doc)
    }

    /// [`Indexer::keys`] on any [`Document`].
    fn keys_of_document<D: Document + ?Sized>(&self, doc: &D) -> Result<IndexKeys, IndexError> {
        let root = doc.root();
        let mut missing = None;
        let keys =
            KeyTuple::new(self.index_by.iter().enumerate().map(|(i, path)| match resolve(root, path.segments()) {
                Some(node) => render(node),
                None => {
                    if self.missing == MissingFieldPolicy::Error && !path.is_metadata_namespace() {
                        missing.get_or_insert(i);
                    }
                    Cow::Borrowed("")
                }
            }));
        match missing {
            None => Ok(keys),
            Some(position) => Err(IndexError::MissingField {
                object: describe(root),
                position,
                path: self.index_by[position].to_string(),
            }),
        }
    }

    /// Prepares an owned JSON object for storage: removes every `ignoreFields` pattern (in
    /// place; a missing path or a path through a scalar does nothing) and normalises numbers.
    /// Idempotent.
    pub fn prepare(&self, value: &mut Value) {
        self.remove_fields(value);
        normalize_numbers(value);
    }

    /// True when [`apply_to_meta`] fully applies `p` on a typed `ObjectMeta`.
    fn meta_handles(p: &Path) -> bool {
        matches!(p.segments(), [Segment::Field(root), rest @ ..] if &**root == "metadata" && match rest {
            [Segment::Field(f)] => matches!(&**f, "managedFields" | "annotations" | "labels" | "ownerReferences" | "finalizers"),
            [Segment::Field(f), Segment::Field(_)] => matches!(&**f, "annotations" | "labels"),
            _ => false,
        })
    }

    /// Applies one ignore pattern to a typed `ObjectMeta` when [`Self::meta_handles`] says it can.
    fn apply_to_meta(p: &Path, meta: &mut ObjectMeta) {
        if !Self::meta_handles(p) {
            return;
        }
        match &p.segments()[1..] {
            [Segment::Field(f)] => match &**f {
                "managedFields" => meta.managed_fields = None,
                "annotations" => meta.annotations = None,
                "labels" => meta.labels = None,
                "ownerReferences" => meta.owner_references = None,
                _ => meta.finalizers = None,
            },
            [Segment::Field(f), Segment::Field(key)] => {
                let map = if &**f == "annotations" { &mut meta.annotations } else { &mut meta.labels };
                if let Some(m) = map {
                    m.remove(&**key);
                }
            }
            _ => {}
        }
    }

    /// Removes every `ignoreFields` pattern from `value`, in place. Idempotent.
    pub fn remove_fields(&self, value: &mut Value) {
        for p in &self.ignore {
            remove_path(value, p.segments());
        }
    }

    /// Applies, on a typed `ObjectMeta`, the `ignoreFields` patterns that address a whole
    /// metadata field or one label or annotation (`metadata.managedFields`,
    /// `metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']`, …), so
    /// callers that convert the metadata to JSON afterwards do not convert what is removed
    /// anyway. Other patterns are left for [`Indexer::prepare`]; applying both is the same as
    /// applying `prepare` alone.
    pub fn prepare_meta(&self, meta: &mut ObjectMeta) {
        for p in &self.ignore {
            Self::apply_to_meta(p, meta);
        }
    }

    /// [`Indexer::prepare`] for a `DynamicObject`: `data` is prepared in place; the typed
    /// `metadata` goes through JSON only when some pattern can reach into it.
    pub fn prepare_dynamic(&self, obj: &mut DynamicObject) -> Result<(), PrepareError> {
        // Patterns on whole metadata fields, labels or annotations apply to the typed
        // metadata directly; only other patterns that reach into metadata need JSON.
        self.prepare_meta(&mut obj.metadata);
        let reaches_meta = self.ignore.iter().any(|p| {
            let reaches = match &p.segments()[0] {
                Segment::Field(f) => &**f == "metadata",
                Segment::Wildcard => true,
                Segment::Index(_) => false,
            };
            reaches && !Self::meta_handles(p)
        });
        if reaches_meta {
            let convert = |source| PrepareError::Convert { type_name: "ObjectMeta", source };
            let mut wrapped = serde_json::json!({
                "metadata": serde_json::to_value(&obj.metadata).map_err(convert)?
            });
            self.remove_fields(&mut wrapped);
            let meta = wrapped.as_object_mut().and_then(|m| m.remove("metadata")).unwrap_or(Value::Null);
            obj.metadata = serde_json::from_value(meta).map_err(convert)?;
        }
        self.prepare(&mut obj.data);
        Ok(())
    }

    /// [`Indexer::prepare`] for a [`CompactObject`]: a copy without the `ignoreFields`
    /// patterns and, with `normalize_numbers`, with integral floats turned into integers;
    /// `None` when nothing changes (keep the original). Equal to converting to JSON,
    /// [`Indexer::prepare`] (or [`Indexer::remove_fields`] without `normalize_numbers`) and
    /// converting back, but one pass over the encoding that copies kept subtrees as bytes
    /// and never builds a JSON tree. Objects decoded through
    /// [`compact_object::CompactResource`] are normalised already: pass `false`.
    pub fn prepare_compact(
        &self,
        obj: &CompactObject,
        normalize_numbers: bool,
    ) -> Result<Option<CompactObject>, compact_object::Error> {
        if self.ignore.is_empty() && !normalize_numbers {
            return Ok(None);
        }
        obj.prune(&IgnorePruner(&self.ignore), &self.root_cursors(), normalize_numbers)
    }

    /// Decodes JSON (an API response's text) into a [`CompactObject`] with numbers normalised
    /// and without the `ignoreFields` patterns, in one pass: byte for byte
    /// `prepare_compact(&CompactObject::from_str_normalized(json)?, false)` (or the decoded
    /// object when that is `None`), but removed fields are skipped by the parser instead of
    /// being encoded and then left out of a second copy (see
    /// [`CompactObject::from_str_pruned`], which also says how errors differ). The same
    /// [`Pruner`] drives both paths.
    pub fn decode_compact(&self, json: &str) -> Result<CompactObject, compact_object::Error> {
        if self.ignore.is_empty() {
            return CompactObject::from_str_normalized(json);
        }
        CompactObject::from_str_pruned(json, &IgnorePruner(&self.ignore), &self.root_cursors())
    }

    /// The `ignoreFields` patterns as a [`DecodePruning`], for
    /// [`CompactResource`](compact_object::CompactResource)s decoded by `kube` inside its
    /// [`scope`](DecodePruning::scope): removed fields are skipped by the parser (never
    /// encoded, never interned), as [`decode_compact`](Self::decode_compact) does for text.
    /// `None` without `ignoreFields`.
    ///
    /// ```
    /// use compact_object::CompactResource;
    /// use kstore_indexer::Indexer;
    ///
    /// let ix = Indexer::new(["metadata.name"], ["metadata.managedFields"])?;
    /// let pruning = ix.decode_pruning().expect("ignoreFields are set");
    /// let json = r#"{"metadata":{"name":"a","managedFields":[{"manager":"kubectl"}]}}"#;
    /// let r: CompactResource = pruning.scope(|| serde_json::from_str(json))?;
    /// assert_eq!(r.object().to_string(), r#"{"metadata":{"name":"a"}}"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode_pruning(&self) -> Option<DecodePruning> {
        if self.ignore.is_empty() {
            return None;
        }
        Some(DecodePruning::new(IgnorePruner(self.ignore.clone()), self.root_cursors()))
    }

    /// Every `ignoreFields` pattern at its first segment: the pruner's state at the root.
    fn root_cursors(&self) -> Cursors {
        (0..self.ignore.len()).filter(|&p| !self.ignore[p].segments().is_empty()).map(|p| (p, 0)).collect()
    }

    /// [`Indexer::prepare`] for a typed object: converts it to JSON, prepares it and converts
    /// it back (one serialization and one deserialization; prefer preparing the JSON before
    /// deserializing when you have it).
    pub fn prepare_typed<K>(&self, obj: &K) -> Result<K, PrepareError>
    where
        K: serde::Serialize + serde::de::DeserializeOwned,
    {
        let convert = |source| PrepareError::Convert { type_name: std::any::type_name::<K>(), source };
        let mut v = serde_json::to_value(obj).map_err(convert)?;
        self.prepare(&mut v);
        serde_json::from_value(v).map_err(convert)
    }
}

/// `namespace/name` of a document, for error messages.
pub(crate) fn describe<'a, N: NodeRef<'a>>(root: N) -> String {
    let meta = root.get("metadata");
    let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(|n| n.as_str());
    match (field("namespace"), field("name")) {
        (Some(ns), Some(name)) if !ns.is_empty() => format!("{ns}/{name}"),
        (_, Some(name)) => name.to_owned(),
        _ => "<unnamed>".to_owned(),
    }
}

fn remove_path(value: &mut Value, segs: &[Segment]) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        if let (Segment::Field(k), Value::Object(m)) = (first, value) {
            m.remove(&**k);
        }
        return;
    }
    match (first, value) {
        (Segment::Field(k), Value::Object(m)) => {
            if let Some(child) = m.get_mut(&**k) {
                remove_path(child, rest);
            }
        }
        (Segment::Index(i), Value::Array(a)) => {
            if let Some(child) = a.get_mut(*i) {
                remove_path(child, rest);
            }
        }
        (Segment::Wildcard, Value::Array(a)) => a.iter_mut().for_each(|c| remove_path(c, rest)),
        (Segment::Wildcard, Value::Object(m)) => m.values_mut().for_each(|c| remove_path(c, rest)),
        _ => {}
    }
}

/// Turns every float without fractional part that fits an integer type into that integer.
pub fn normalize_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(int) = n.as_f64().and_then(integral) {
                *value = int;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize_numbers),
        Value::Object(m) => m.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

fn integral(f: f64) -> Option<Value> {
    match compact_object::integral(f)? {
        compact_object::Integral::I64(i) => Some(Value::from(i)),
        compact_object::Integral::U64(u) => Some(Value::from(u)),
    }
}

/// Where the `ignoreFields` patterns stand inside an entered container: (pattern, segment).
type Cursors = SmallVec<[(usize, usize); 4]>;

/// [`Indexer::remove_fields`]'s rules as a [`Pruner`]: a last `Field` segment removes the
/// member; wildcards match every member and element; arrays never lose elements.
/// Borrowed (`&[Path]`) for one call, owned (`Vec<Path>`) inside a [`DecodePruning`].
struct IgnorePruner<T>(T);

impl<T: AsRef<[Path]>> IgnorePruner<T> {
    fn step(&self, at: &Cursors, matches: impl Fn(&Segment) -> bool, in_object: bool) -> Step<Cursors> {
        let mut next = Cursors::new();
        for &(p, i) in at {
            let segs = self.0.as_ref()[p].segments();
            if !matches(&segs[i]) {
                continue;
            }
            if i + 1 == segs.len() {
                if in_object && matches!(segs[i], Segment::Field(_)) {
                    return Step::Remove;
                }
            } else {
                next.push((p, i + 1));
            }
        }
        if next.is_empty() { Step::Keep } else { Step::Enter(next) }
    }
}

impl<T: AsRef<[Path]>> Pruner for IgnorePruner<T> {
    type State = Cursors;

    fn member(&self, at: &Cursors, key: &str) -> Step<Cursors> {
        self.step(at, |s| matches!(s, Segment::Field(f) if **f == *key) || *s == Segment::Wildcard, true)
    }

    fn element(&self, at: &Cursors, index: usize) -> Step<Cursors> {
        self.step(at, |s| *s == Segment::Index(index) || *s == Segment::Wildcard, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use store_types::KubeObject;

    fn ingress() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "labels": {"app": "frontend", "kubernetes.io/service-name": "web-svc"},
                "annotations": {"a.b/c": "dotted", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {}}],
                "generation": 3
            },
            "spec": {
                "rules": [
                    {"host": "a.example", "http": {"paths": [{"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80.0}}}}]}},
                    {"host": "b.example"}
                ],
                "tls": null,
                "enabled": true,
                "weight": 0.25
            }
        })
    }

    fn key(index_by: &str, obj: &Value) -> std::result::Result<String, IndexError> {
        let ix = Indexer::new([index_by], [""; 0]).unwrap();
        Ok(ix.keys(obj)?.to_vec().remove(0))
    }

    #[test]
    fn prepare_meta_agrees_with_prepare() {
        let ix = Indexer::new(
            ["metadata.name"],
            [
                "metadata.managedFields",
                "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']",
                "metadata.labels.tier",
                "spec.x",
            ],
        )
        .unwrap();
        let v = serde_json::json!({"metadata": {"name": "a", "namespace": "n",
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:x": {}}}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"},
            "labels": {"tier": "web", "app": "a"}}, "spec": {"x": 1, "y": 2}});
        let mut expected = v.clone();
        ix.prepare(&mut expected);
        let mut meta: ObjectMeta = serde_json::from_value(v["metadata"].clone()).unwrap();
        ix.prepare_meta(&mut meta);
        let mut both = v.clone();
        both["metadata"] = serde_json::to_value(&meta).unwrap();
        ix.prepare(&mut both);
        assert_eq!(both, expected);
        assert!(meta.managed_fields.is_none());
        assert_eq!(meta.annotations.unwrap().len(), 1);
        // The DynamicObject path gives the same object.
        let mut d: DynamicObject = serde_json::from_value(v.clone()).unwrap();
        ix.prepare_dynamic(&mut d).unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), expected);
    }

    #[test]
    fn original_documented_cases_and_value_rules() {
        let obj = ingress();
        for (expr, want) in [
            ("metadata.namespace", "shop"),
            (".metadata.name", "web"),
            ("metadata.labels['app']", "frontend"),
            (r"metadata.labels.kubernetes\.io/service-name", "web-svc"),
            ("metadata.labels['kubernetes.io/service-name']", "web-svc"),
            (r#"metadata.annotations["a.b/c"]"#, "dotted"),
            ("spec.rules[0].host", "a.example"),
            ("spec.rules[1].host", "b.example"),
            ("spec.rules[*].host", "a.example"),
            ("metadata.generation", "3"),
            ("spec.enabled", "true"),
            ("spec.tls", ""),
            ("spec.weight", "0.25"),
            ("spec.rules[0].http.paths[0].backend.service.port.number", "80"),
            ("spec.rules[1]", r#"{"host":"b.example"}"#),
            ("metadata.managedFields[0].fieldsV1", "{}"),
        ] {
            assert_eq!(key(expr, &obj).unwrap(), want, "{expr}");
        }
    }

    #[test]
    fn float_rendering() {
        for (v, want) in [
            (json!(80.0), "80"),
            (json!(-0.5), "-0.5"),
            (json!(1e-7), "0.0000001"),
            (json!(0.1), "0.1"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(-3), "-3"),
        ] {
            assert_eq!(key("x", &json!({ "x": v })).unwrap(), want);
        }
    }

    #[test]
    fn missing_fields_follow_policy() {
        let cluster_scoped = json!({"metadata": {"name": "node-1"}});
        let ix = Indexer::new(["metadata.namespace", "metadata.name"], [""; 0]).unwrap();
        assert_eq!(ix.keys(&cluster_scoped).unwrap().to_vec(), ["", "node-1"]);

        let ix = Indexer::new(["metadata.name", "metadata.labels['app']"], [""; 0]).unwrap();
        let err = ix.keys(&cluster_scoped).unwrap_err();
        assert_eq!(
            err,
            IndexError::MissingField { object: "node-1".into(), position: 1, path: "metadata.labels.app".into() }
        );
        assert_eq!(err.to_string(), "object node-1: index key 1 (metadata.labels.app) is missing");
        let ix = ix.with_missing_fields(MissingFieldPolicy::Empty);
        assert_eq!(ix.keys(&cluster_scoped).unwrap().to_vec(), ["node-1", ""]);
        // Through a scalar or out of range is missing, too.
        let ix = Indexer::new(["metadata.name.x"], [""; 0]).unwrap();
        assert!(ix.keys(&cluster_scoped).is_err());
        let ix = Indexer::new(["spec.rules[5]"], [""; 0]).unwrap();
        assert!(matches!(ix.keys(&ingress()), Err(IndexError::MissingField { object, .. }) if object == "shop/web"));
    }

    #[test]
    fn config_errors() {
        let e = Indexer::new(["metadata.labels['x"], [""; 0]).unwrap_err();
        assert_eq!(e.to_string(), r#"indexBy[0]: invalid index expression "metadata.labels['x" at 16: unclosed quote"#);
        assert!(matches!(Indexer::new([""; 0], [""; 0]), Err(ConfigError::NoIndexKeys)));
        let e = Indexer::new(["metadata.name"], ["a", "b["]).unwrap_err();
        assert!(matches!(e, ConfigError::InvalidIgnoreField { index: 1, .. }), "{e}");
        for bad in ["spec.rules[0]", "spec.rules[*]"] {
            let e = Indexer::new(["metadata.name"], [bad]).unwrap_err();
            assert!(matches!(e, ConfigError::IgnoreEndsInArray { .. }), "{e}");
        }
        for (index_by, ignore) in [
            ("metadata.labels['app']", "metadata.labels"),
            ("metadata.labels['app']", "metadata.labels.app"),
            ("metadata.labels", "metadata.labels['app']"),
            ("spec.rules[0].host", "spec.rules[*].host"),
            ("spec.rules[*].host", "spec.rules[1].host"),
        ] {
            let e = Indexer::new([index_by], [ignore]).unwrap_err();
            assert!(matches!(e, ConfigError::IgnoresIndexedField { .. }), "{index_by} / {ignore}: {e}");
        }
        let e = Indexer::new(["metadata.labels.app"], ["metadata.labels"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ignoreFields pattern \"metadata.labels\" removes data that indexBy expression \
             \"metadata.labels.app\" reads; remove one of them"
        );
        assert!(Indexer::new(["metadata.labels['app']"], ["metadata.annotations", "spec.rules[1].host"]).is_ok());
    }

    #[test]
    fn merged_ignore_lists_and_removal() {
        let ix = Indexer::with_ignore_lists(
            ["metadata.name"],
            ["metadata.managedFields", "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"],
            ["metadata.managedFields", "spec.rules[*].http", "spec.rules[0].missing", "spec.enabled.deeper", "nope.x"],
        )
        .unwrap();
        assert_eq!(ix.ignore_fields().len(), 6);
        let mut obj = ingress();
        ix.prepare(&mut obj);
        let meta = &obj["metadata"];
        assert!(meta.get("managedFields").is_none());
        assert_eq!(meta["annotations"], json!({"a.b/c": "dotted"}));
        assert_eq!(obj["spec"]["rules"], json!([{"host": "a.example"}, {"host": "b.example"}]));
        assert_eq!(obj["spec"]["enabled"], json!(true));
        let once = obj.clone();
        ix.prepare(&mut obj);
        assert_eq!(obj, once);
    }

    #[test]
    fn number_normalisation() {
        let mut v = json!({"a": [1.0, 1.5, -2.0, 1e300, 9.3e18, -0.0, 3], "b": {"c": 80.0}});
        normalize_numbers(&mut v);
        assert_eq!(v["a"][0], json!(1));
        assert!(v["a"][0].is_i64());
        assert_eq!(v["a"][1], json!(1.5));
        assert_eq!(v["a"][2], json!(-2));
        assert!(v["a"][3].is_f64());
        assert!(v["a"][4].is_u64());
        assert_eq!(v["a"][5], json!(0));
        assert_eq!(v["b"]["c"].to_string(), "80");
    }

    #[test]
    fn dynamic_and_typed_agree_with_json() {
        use k8s_openapi::api::networking::v1::Ingress;
        let v = ingress();
        // Typed ports are integers: JSON `80.0` only deserializes after normalisation.
        assert!(serde_json::from_value::<Ingress>(v.clone()).is_err());
        let mut normalized = v.clone();
        normalize_numbers(&mut normalized);
        let typed: Ingress = serde_json::from_value(normalized).unwrap();
        let dynamic: DynamicObject = serde_json::from_value(v.clone()).unwrap();
        let exprs = [
            "metadata.namespace",
            "metadata.name",
            "metadata.labels['app']",
            "metadata.generation",
            "metadata.annotations",
            "metadata.managedFields[0].manager",
            "spec.rules[0].host",
            "spec.rules[*].host",
            "kind",
            "apiVersion",
            "metadata.labels[*]",
        ];
        let ix = Indexer::new(exprs, [""; 0]).unwrap();
        let want = ix.keys(&v).unwrap();
        assert_eq!(ix.keys(&dynamic).unwrap(), want);
        // Typed objects keep only fields their schema knows (spec.enabled etc. are gone), and
        // serialize kind/apiVersion from the type.
        assert_eq!(ix.keys(&crate::Typed(&typed)).unwrap(), want);

        let missing = Indexer::new(["metadata.labels['nope']"], [""; 0]).unwrap();
        assert_eq!(missing.keys(&dynamic).unwrap_err(), missing.keys(&v).unwrap_err());
    }

    #[test]
    fn prepare_dynamic_and_typed() {
        use k8s_openapi::api::networking::v1::Ingress;
        let ix =
            Indexer::new(["metadata.name"], ["metadata.managedFields", "metadata.labels['app']", "spec.rules[*].http"])
                .unwrap();
        let mut dynamic: DynamicObject = serde_json::from_value(ingress()).unwrap();
        ix.prepare_dynamic(&mut dynamic).unwrap();
        assert!(dynamic.metadata.managed_fields.is_none());
        assert_eq!(dynamic.metadata.labels.as_ref().unwrap().len(), 1);
        assert_eq!(dynamic.data["spec"]["rules"][0], json!({"host": "a.example"}));
        let mut v = ingress();
        normalize_numbers(&mut v);
        let typed: Ingress = serde_json::from_value(v).unwrap();
        let prepared = ix.prepare_typed(&typed).unwrap();
        assert!(prepared.metadata.managed_fields.is_none());
        assert!(prepared.spec.unwrap().rules.unwrap()[0].http.is_none());

        // Removing a field a typed object requires is a named error, not a panic.
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        struct Strict {
            required: String,
        }
        let ix = Indexer::new(["metadata.name"], ["required"]).unwrap();
        let e = ix.prepare_typed(&Strict { required: "x".into() }).unwrap_err();
        assert!(e.to_string().contains("Strict"), "{e}");
        assert!(e.to_string().contains("missing field `required`"), "{e}");
    }

    #[test]
    fn decode_compact_prunes_duplicates_escapes_and_identity_like_two_steps() {
        let ix = Indexer::new(
            ["metadata.name"],
            [
                "metadata.managedFields",
                "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']",
                "spec.rules[*].host",
                "spec.rules[0].http",
            ],
        )
        .unwrap();
        // Duplicate keys (the last value wins, at the first position), an escaped key, a
        // removed member that is itself escaped JSON, integral floats on kept and removed paths.
        let json = r#"{"metadata":{"name":"web","namespace":"shop","managedFields":[{"f:a":{"x":1.0}}],
            "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"a\":\"\u00e9\"}","k\u0065ep":"1"},
            "resourceVersion":"5","name":"web2"},
            "spec":{"rules":[{"host":"a","http":{"p":2.0},"x":3.0},{"host":"b","http":{}},7.0],"rules":[{"host":"c","y":1}]},
            "spec":{"rules":[{"host":"d","http":{"q":[]},"z":4.0},{"host":"e","http":1}]}}"#;
        let decoded = CompactObject::from_str_normalized(json).unwrap();
        let two_steps = ix.prepare_compact(&decoded, false).unwrap().expect("fields removed");
        let one_pass = ix.decode_compact(json).unwrap();
        assert_eq!(one_pass.as_bytes(), two_steps.as_bytes());
        assert_eq!(
            one_pass.to_string(),
            r#"{"metadata":{"name":"web2","namespace":"shop","annotations":{"keep":"1"},"resourceVersion":"5"},"spec":{"rules":[{"z":4},{"http":1}]}}"#
        );
        assert_eq!(one_pass.identity(), two_steps.identity());
        assert_eq!(one_pass.resource_version(), Some("5"));
        // Nothing to remove: the plain normalised decoding.
        let none = Indexer::new(["metadata.name"], [""; 0]).unwrap();
        assert_eq!(none.decode_compact(json).unwrap().as_bytes(), decoded.as_bytes());
        // Syntax errors are still errors, inside removed subtrees too.
        for bad in [r#"{"metadata":{"managedFields":[}}"#, r#"{"metadata":{"managedFields":[]}"#, "", "{} x"] {
            assert!(ix.decode_compact(bad).is_err(), "{bad}");
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            (-5i32..5).prop_map(|i| Value::from(f64::from(i))),
            "[a-z]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::btree_map("[a-c]", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_path() -> impl Strategy<Value = Path> {
        let seg = prop_oneof![
            3 => "[a-c]".prop_map(|s| Segment::Field(s.into())),
            1 => (0usize..3).prop_map(Segment::Index),
            1 => Just(Segment::Wildcard),
        ];
        prop::collection::vec(seg, 1..5).prop_map(|s| Path::from_segments(s).unwrap())
    }

    fn field_path() -> impl Strategy<Value = Path> {
        (arb_path(), "[a-c]").prop_map(|(p, last)| {
            let mut s = p.segments().to_vec();
            s.push(Segment::Field(last.into()));
            Path::from_segments(s).unwrap()
        })
    }

    /// An indexer with these removal patterns (which may overlap any index path, so the
    /// overlap check is bypassed: only removal is under test).
    fn remover(ignore: Vec<Path>) -> Indexer {
        Indexer { index_by: vec![Path::parse("zzz").unwrap()], ignore, missing: MissingFieldPolicy::Error }
    }

    proptest! {
        #[test]
        fn extraction_never_panics(v in arb_json(), paths in prop::collection::vec(arb_path(), 1..4)) {
            let exprs: Vec<String> = paths.iter().map(ToString::to_string).collect();
            for policy in [MissingFieldPolicy::Error, MissingFieldPolicy::Empty] {
                let ix = Indexer::new(&exprs, [""; 0]).unwrap().with_missing_fields(policy);
                match ix.keys(&v) {
                    Ok(k) => prop_assert_eq!(k.len(), exprs.len()),
                    Err(e) => prop_assert_eq!(policy, MissingFieldPolicy::Error, "{}", e),
                }
            }
        }

        #[test]
        fn removal_is_idempotent(mut v in arb_json(), patterns in prop::collection::vec(field_path(), 1..4)) {
            let ix = remover(patterns);
            ix.prepare(&mut v);
            let once = v.clone();
            ix.prepare(&mut v);
            prop_assert_eq!(v, once);
        }

        #[test]
        fn compact_prepare_equals_json_prepare(
            v in arb_json(),
            patterns in prop::collection::vec(prop_oneof![field_path(), arb_path()], 0..4),
            normalize in any::<bool>(),
        ) {
            let ix = remover(patterns);
            let compact = CompactObject::from_value(&v).unwrap();
            let mut expected = v.clone();
            if normalize { ix.prepare(&mut expected) } else { ix.remove_fields(&mut expected) }
            let pruned = ix.prepare_compact(&compact, normalize).unwrap();
            prop_assert_eq!(pruned.is_some(), expected != v, "None exactly when nothing changes");
            let got = pruned.unwrap_or(compact);
            prop_assert_eq!(got.to_value(), expected.clone());
            // The copy is a well-formed encoding: it equals a fresh encoding of the result.
            let fresh = CompactObject::from_value(&expected).unwrap();
            prop_assert_eq!(got.as_bytes(), fresh.as_bytes());
        }

        #[test]
        fn decode_compact_equals_decode_then_prepare(
            v in arb_json(),
            patterns in prop::collection::vec(prop_oneof![field_path(), arb_path()], 0..4),
            pretty in any::<bool>(),
        ) {
            // `arb_json` has integral floats (`3.0`), so normalisation meets pruning.
            let ix = remover(patterns);
            let json = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
            let decoded = CompactObject::from_str_normalized(&json).unwrap();
            let two_steps = ix.prepare_compact(&decoded, false).unwrap().unwrap_or(decoded);
            let one_pass = ix.decode_compact(&json).unwrap();
            prop_assert_eq!(one_pass.as_bytes(), two_steps.as_bytes());
        }

        #[test]
        fn removed_fields_are_gone(mut v in arb_json(), pattern in field_path()) {
            let ix = remover(vec![pattern.clone()]);
            ix.remove_fields(&mut v);
            prop_assert!(resolve(&v, pattern.segments()).is_none());
        }
    }
}
