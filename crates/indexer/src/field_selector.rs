//! Client-side field selectors: `spec.type=ClusterIP,metadata.labels['tier']!=db`.

use std::fmt;
use std::str::FromStr;

use crate::document::{Document, Indexable, render, resolve};
use crate::path::{ExprError, Path};

/// `Result` with [`FieldSelectorError`] as the default error.
pub(crate) type Result<T, E = FieldSelectorError> = std::result::Result<T, E>;

/// An invalid field selector.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldSelectorError {
    /// The path of a term does not parse.
    #[error("invalid field selector {selector:?}: {source}")]
    Path {
        /// The whole selector.
        selector: String,
        /// The path error (its expression and position are relative to the term's path).
        #[source]
        source: ExprError,
    },
    /// A term has no `=`, `==` or `!=` after its path.
    #[error("invalid field selector {selector:?} at {position}: expected '=', '==' or '!='")]
    ExpectedOperator {
        /// The whole selector.
        selector: String,
        /// Character offset where the operator was expected.
        position: usize,
    },
    /// A value ends in a lone `\`.
    #[error("invalid field selector {selector:?} at {position}: dangling escape '\\'")]
    DanglingEscape {
        /// The whole selector.
        selector: String,
        /// Character offset of the `\`.
        position: usize,
    },
}

/// How a term compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `=` or `==`: the field exists and its key string equals the value.
    Equals,
    /// `!=`: not [`FieldOp::Equals`] (true when the field is missing).
    NotEquals,
}

/// One `path op value` term of a [`FieldSelector`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldTerm {
    /// The field, in the same dialect as `indexBy`.
    pub path: Path,
    /// The comparison.
    pub op: FieldOp,
    /// The value compared with the field's key string (see [`Indexer`](crate::Indexer) for how
    /// values render: `80`, `true`, `""` for null).
    pub value: String,
}

/// A client-side field selector: terms `path=value`, `path==value` or `path!=value` joined by
/// `,`; an object matches when every term holds.
///
/// Paths use the same dialect and parser as `indexBy` (so `metadata.labels['a.b/c']=x` works).
/// The field's value is rendered like an index key and compared as a string. A missing field
/// never equals a value: `x=v` is false and `x!=v` is true when `x` is missing. `\` escapes
/// `,`, `=`, `!` and `\` in values. Empty terms are skipped; the empty selector matches
/// everything. Whitespace around terms, paths, operators and values is ignored, as the Go
/// original trims it (`" spec.type = ClusterIP "` is `spec.type=ClusterIP`); whitespace inside
/// a value is kept, and an escaped space (`\ `) at either end of a value is kept.
///
/// # How the watcher uses it
/// Evaluate [`FieldSelector::matches`] on every incoming object, before
/// [`Indexer::prepare`](crate::Indexer::prepare) removes fields:
///
/// | stored before | matches now | action |
/// |---------------|-------------|--------|
/// | no            | no          | ignore |
/// | no            | yes         | add    |
/// | yes           | yes         | update |
/// | yes           | no          | **delete** (the object left the selection) |
///
/// A delete event removes the object whether or not it matches.
///
/// # Usage
/// ```
/// use kstore_indexer::FieldSelector;
/// use serde_json::json;
/// let sel: FieldSelector = "spec.type=ClusterIP,metadata.labels['app.kubernetes.io/tier']!=db".parse()?;
/// let svc = json!({"spec": {"type": "ClusterIP"}, "metadata": {"labels": {}}});
/// assert!(sel.matches(&svc));
/// assert!(!sel.matches(&json!({"spec": {"type": "NodePort"}})));
/// # Ok::<(), kstore_indexer::FieldSelectorError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses a selector string.
    pub fn parse(selector: &str) -> Result<FieldSelector> {
        let char_pos = |byte: usize| selector[..byte].chars().count();
        let mut terms = Vec::new();
        let mut pos = 0;
        // Whitespace around a term, its path, its operator and its value is not part of them
        // (as the Go original trims terms, keys and values).
        let skip_ws = |pos: usize| pos + (selector[pos..].len() - selector[pos..].trim_start().len());
        while pos < selector.len() {
            pos = skip_ws(pos);
            if pos == selector.len() {
                break;
            }
            let rest = &selector[pos..];
            if let Some(after) = rest.strip_prefix(',') {
                // Empty term.
                pos = selector.len() - after.len();
                continue;
            }
            let (path, end) = Path::parse_prefix(rest)
                .map_err(|source| FieldSelectorError::Path { selector: selector.to_owned(), source })?;
            pos = skip_ws(pos + end);
            let rest = &selector[pos..];
            let (op, len) = if rest.starts_with("==") {
                (FieldOp::Equals, 2)
            } else if rest.starts_with("!=") {
                (FieldOp::NotEquals, 2)
            } else if rest.starts_with('=') {
                (FieldOp::Equals, 1)
            } else {
                return Err(FieldSelectorError::ExpectedOperator {
                    selector: selector.to_owned(),
                    position: char_pos(pos),
                });
            };
            pos = skip_ws(pos + len);
            let mut value = String::new();
            // Length of `value` up to its last character that is not unescaped whitespace.
            let mut kept = 0;
            let mut chars = selector[pos..].char_indices();
            let mut consumed = selector.len() - pos;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => {
                            value.push(e);
                            kept = value.len();
                        }
                        None => {
                            return Err(FieldSelectorError::DanglingEscape {
                                selector: selector.to_owned(),
                                position: char_pos(pos + i),
                            });
                        }
                    },
                    ',' => {
                        consumed = i + 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        if !c.is_whitespace() {
                            kept = value.len();
                        }
                    }
                }
            }
            pos += consumed;
            value.truncate(kept);
            terms.push(FieldTerm { path, op, value });
        }
        Ok(FieldSelector { terms })
    }

    /// The terms, in order.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// True when the selector has no terms (matches everything).
    pub fn selects_all(&self) -> bool {
        self.terms.is_empty()
    }

    /// True when every term holds for `obj`.
    pub fn matches<O: Indexable + ?Sized>(&self, obj: &O) -> bool {
        self.matches_document(&obj.document())
    }

    /// [`FieldSelector::matches`] on any [`Document`].
    pub fn matches_document<D: Document + ?Sized>(&self, doc: &D) -> bool {
        let root = doc.root();
        self.terms.iter().all(|t| {
            let equal = resolve(root, t.path.segments()).is_some_and(|n| render(n) == t.value);
            match t.op {
                FieldOp::Equals => equal,
                FieldOp::NotEquals => !equal,
            }
        })
    }
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;
    fn from_str(s: &str) -> Result<FieldSelector> {
        FieldSelector::parse(s)
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form, which parses back to the same selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}", t.path)?;
            // Whitespace at either end of a value is escaped: unescaped, parsing trims it.
            let start = t.value.len() - t.value.trim_start().len();
            let end = t.value.trim_end().len();
            for (i, c) in t.value.char_indices() {
                if matches!(c, ',' | '=' | '!' | '\\') || (c.is_whitespace() && (i < start || i >= end)) {
                    f.write_str("\\")?;
                }
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for FieldSelector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FieldSelector {
    /// Parses the string form, so a configuration with an invalid selector fails to load.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<FieldSelector, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        FieldSelector::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn svc() -> serde_json::Value {
        json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"a.b/c": "x=y"}},
            "spec": {"type": "ClusterIP", "port": 80.0, "ipFamilies": ["IPv4"], "opt": null}
        })
    }

    #[test]
    fn matching_table() {
        let obj = svc();
        for (sel, want) in [
            ("", true),
            ("spec.type=ClusterIP", true),
            ("spec.type==ClusterIP", true),
            ("spec.type!=ClusterIP", false),
            ("spec.type=NodePort", false),
            ("spec.type!=NodePort", true),
            ("spec.port=80", true),
            ("spec.ipFamilies[0]=IPv4", true),
            ("spec.ipFamilies[*]=IPv4", true),
            ("metadata.labels['a.b/c']=x\\=y", true),
            ("metadata.namespace=shop,metadata.name=web", true),
            ("metadata.namespace=shop,metadata.name=db", false),
            ("metadata.namespace=shop,,", true),
            // Missing never equals, even the empty value; null renders as "".
            ("spec.missing=", false),
            ("spec.missing!=", true),
            ("spec.missing!=x", true),
            ("spec.opt=", true),
        ] {
            let parsed = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(parsed.matches(&obj), want, "{sel}");
            let reparsed = FieldSelector::parse(&parsed.to_string()).unwrap();
            assert_eq!(reparsed, parsed, "{sel}");
        }
    }

    #[test]
    fn parse_errors() {
        let e = FieldSelector::parse("spec.type").unwrap_err();
        assert_eq!(e, FieldSelectorError::ExpectedOperator { selector: "spec.type".into(), position: 9 });
        assert!(matches!(
            FieldSelector::parse("a=b,c d"),
            Err(FieldSelectorError::ExpectedOperator { position: 6, .. })
        ));
        assert!(matches!(FieldSelector::parse("a['x=1"), Err(FieldSelectorError::Path { .. })));
        assert!(matches!(FieldSelector::parse("=x"), Err(FieldSelectorError::Path { .. })));
        assert!(matches!(FieldSelector::parse("a=x\\"), Err(FieldSelectorError::DanglingEscape { position: 3, .. })));
        let e = FieldSelector::parse("a['x=1").unwrap_err();
        assert!(e.to_string().contains("unclosed quote"), "{e}");
    }

    /// The Go original trims whitespace around terms, keys and values:
    /// `" spec.type = ClusterIP "` selects like `spec.type=ClusterIP`.
    #[test]
    fn whitespace_is_trimmed_as_the_original_does() {
        let obj = svc();
        let plain = FieldSelector::parse("spec.type=ClusterIP,metadata.name!=db").unwrap();
        for sel in [
            " spec.type = ClusterIP ",
            "spec.type =ClusterIP, metadata.name != db",
            "\tspec.type==  ClusterIP\t ,  metadata.name!=db  ,  ",
        ] {
            let sel = sel.replace("\\t", "\t");
            let parsed = FieldSelector::parse(&sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
            assert!(parsed.matches(&obj), "{sel:?}");
            if parsed.terms().len() == 2 {
                assert_eq!(parsed, plain, "{sel:?}");
            }
        }
        assert_eq!(FieldSelector::parse("  ,  ").unwrap(), FieldSelector::default());
        // Inner whitespace is part of the value; escaped spaces at the ends are kept.
        let t = FieldSelector::parse("spec.type = a b ").unwrap();
        assert_eq!(t.terms()[0].value, "a b");
        let t = FieldSelector::parse("spec.type=\\ a\\ ").unwrap();
        assert_eq!(t.terms()[0].value, " a ");
        assert_eq!(FieldSelector::parse(&t.to_string()).unwrap(), t, "escaped again when printed");
    }

    #[test]
    fn serde_uses_the_string_form() {
        let sel: FieldSelector = serde_json::from_str(r#""spec.type==ClusterIP""#).unwrap();
        assert_eq!(serde_json::to_string(&sel).unwrap(), r#""spec.type=ClusterIP""#);
        assert!(serde_json::from_str::<FieldSelector>(r#""spec.type""#).is_err());
    }

    #[test]
    fn works_on_dynamic_objects() {
        let dynamic: kube_core::DynamicObject = serde_json::from_value(svc()).unwrap();
        let sel = FieldSelector::parse("metadata.name=web,spec.type=ClusterIP").unwrap();
        assert!(sel.matches(&dynamic));
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "[a-c.\\[\\]'=!,\\\\*0-9 ]{0,20}") {
            if let Ok(sel) = FieldSelector::parse(&s) {
                prop_assert_eq!(FieldSelector::parse(&sel.to_string()).unwrap(), sel);
            }
        }
    }
}
