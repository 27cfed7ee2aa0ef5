//! Label selectors, parsed from strings into kube's own [`Selector`] and [`Expression`] types.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use kube_core::{Expression, Selector};

use crate::document::{Document, Indexable, NodeRef, render};

/// `Result` with [`LabelSelectorError`] as the default error.
pub(crate) type Result<T, E = LabelSelectorError> = std::result::Result<T, E>;

/// What is wrong with a label selector (the `reason` of a [`LabelSelectorError`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelErrorKind {
    /// A label key was expected.
    #[error("expected a label key")]
    ExpectedKey,
    /// After a key: not `=`, `==`, `!=`, `in`, `notin`, `,` or the end.
    #[error("expected '=', '==', '!=', 'in', 'notin', ',' or end of selector")]
    ExpectedOperator,
    /// `in`/`notin` not followed by `(`.
    #[error("expected '(' after in/notin")]
    ExpectedOpenParen,
    /// A value list without closing `)`.
    #[error("expected ',' or ')' in value list")]
    UnclosedParen,
    /// A value was expected.
    #[error("expected a label value")]
    ExpectedValue,
    /// Something follows a complete requirement other than `,`.
    #[error("expected ',' or end of selector")]
    ExpectedComma,
    /// `>` and `<` have no counterpart in kube's `Expression`.
    #[error("operator {op:?} is not supported")]
    UnsupportedOperator {
        /// The operator.
        op: String,
    },
    /// A key that is not a valid label key (`[prefix/]name`).
    #[error("invalid label key {key:?}: {why}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it is invalid.
        why: &'static str,
    },
    /// A value that is not a valid label value.
    #[error("invalid label value {value:?}: {why}")]
    InvalidValue {
        /// The value.
        value: String,
        /// Why it is invalid.
        why: &'static str,
    },
}

/// An invalid label selector, with the selector and the (0-based, in characters) position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?} at {position}: {reason}")]
pub struct LabelSelectorError {
    /// The selector as given.
    pub selector: String,
    /// Character offset of the problem.
    pub position: usize,
    /// What is wrong.
    pub reason: LabelErrorKind,
}

/// A label selector in the Kubernetes string syntax, parsed into kube's [`Selector`].
///
/// Supports equality (`app=web`, `app==web`, `tier!=db`), sets (`env in (prod,staging)`,
/// `env notin (dev)`), existence (`app`) and absence (`!legacy`), joined by `,`. Keys and
/// values are validated as Kubernetes validates labels. An invalid selector is an error —
/// never an unfiltered watch. The empty string selects everything.
///
/// Send [`LabelSelector::selector`] to the API server (its `to_string()` is the server-side
/// string); use [`LabelSelector::matches`] to check objects client-side with the same semantics
/// as kube's [`SelectorExt`](kube_core::SelectorExt).
///
/// # Usage
/// ```
/// use kstore_indexer::LabelSelector;
/// use serde_json::json;
/// let sel: LabelSelector = "app in (a,b),!legacy".parse()?;
/// assert_eq!(sel.to_string(), "app in (a,b),!legacy");
/// assert!(sel.matches(&json!({"metadata": {"labels": {"app": "a"}}})));
/// assert!(!sel.matches(&json!({"metadata": {"labels": {"app": "a", "legacy": ""}}})));
/// assert!("app in (a".parse::<LabelSelector>().is_err());
/// # Ok::<(), kstore_indexer::LabelSelectorError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    selector: Selector,
    expressions: Vec<Expression>,
}

impl LabelSelector {
    /// Parses and validates a selector string.
    pub fn parse(input: &str) -> Result<LabelSelector> {
        let expressions = Parser { input, tokens: tokenize(input), at: 0 }.selector()?;
        Ok(LabelSelector { selector: expressions.iter().cloned().collect(), expressions })
    }

    /// The kube selector, for `ListParams`/`WatchParams::labels_from`.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// The kube selector, by value.
    ///
    /// ```
    /// use kstore_indexer::LabelSelector;
    /// let sel: LabelSelector = "app=web,tier notin (db)".parse()?;
    /// let params = kube_core::params::ListParams::default().labels_from(&sel.into_selector());
    /// assert_eq!(params.label_selector.as_deref(), Some("app=web,tier notin (db)"));
    /// # Ok::<(), kstore_indexer::LabelSelectorError>(())
    /// ```
    pub fn into_selector(self) -> Selector {
        self.selector
    }

    /// The expressions, in order.
    pub fn expressions(&self) -> &[Expression] {
        &self.expressions
    }

    /// True when the selector selects everything (no expressions).
    pub fn selects_all(&self) -> bool {
        self.expressions.is_empty()
    }

    /// True when the object's `metadata.labels` satisfy every expression.
    pub fn matches<O: Indexable + ?Sized>(&self, obj: &O) -> bool {
        self.matches_document(&obj.document())
    }

    /// [`LabelSelector::matches`] on any [`Document`].
    pub fn matches_document<D: Document + ?Sized>(&self, doc: &D) -> bool {
        let labels = doc.root().get("metadata").and_then(|m| m.get("labels"));
        let lookup = |key: &str| labels.and_then(|l| l.get(key)).map(render);
        self.expressions.iter().all(|e| match e {
            Expression::In(k, set) => lookup(k).is_some_and(|v| set.contains(&*v)),
            Expression::NotIn(k, set) => lookup(k).is_none_or(|v| !set.contains(&*v)),
            Expression::Equal(k, want) => lookup(k).is_some_and(|v| v == want.as_str()),
            Expression::NotEqual(k, want) => lookup(k).is_none_or(|v| v != want.as_str()),
            Expression::Exists(k) => lookup(k).is_some(),
            Expression::DoesNotExist(k) => lookup(k).is_none(),
        })
    }
}

impl FromStr for LabelSelector {
    type Err = LabelSelectorError;
    fn from_str(s: &str) -> Result<LabelSelector> {
        LabelSelector::parse(s)
    }
}

impl fmt::Display for LabelSelector {
    /// The server-side string (kube's `Selector` formatting).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.selector, f)
    }
}

impl From<LabelSelector> for Selector {
    fn from(s: LabelSelector) -> Selector {
        s.selector
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok<'s> {
    Ident(&'s str),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Tokens with their byte offsets.
fn tokenize(input: &str) -> Vec<(usize, Tok<'_>)> {
    let mut out = Vec::new();
    let mut it = input.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let next_is_eq = it.peek().is_some_and(|(_, n)| *n == '=');
        let tok = match c {
            c if c.is_whitespace() => continue,
            '!' if next_is_eq => {
                it.next();
                Tok::NotEq
            }
            '!' => Tok::Not,
            '=' if next_is_eq => {
                it.next();
                Tok::DoubleEq
            }
            '=' => Tok::Eq,
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            _ => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, n)) = it.peek() {
                    if n.is_whitespace() || is_special(n) {
                        break;
                    }
                    end = j + n.len_utf8();
                    it.next();
                }
                Tok::Ident(&input[i..end])
            }
        };
        out.push((i, tok));
    }
    out
}

struct Parser<'s> {
    input: &'s str,
    tokens: Vec<(usize, Tok<'s>)>,
    at: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<&Tok<'s>> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    /// Byte offset of the current token (end of input when exhausted).
    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.input.len(), |(o, _)| *o)
    }

    fn err(&self, offset: usize, reason: LabelErrorKind) -> LabelSelectorError {
        LabelSelectorError {
            selector: self.input.to_owned(),
            position: self.input[..offset.min(self.input.len())].chars().count(),
            reason,
        }
    }

    fn next(&mut self) -> Option<Tok<'s>> {
        let t = self.tokens.get(self.at).map(|(_, t)| t.clone());
        self.at += 1;
        t
    }

    fn selector(mut self) -> Result<Vec<Expression>> {
        let mut out = Vec::new();
        if self.tokens.is_empty() {
            return Ok(out);
        }
        loop {
            out.push(self.requirement()?);
            match self.peek() {
                None => return Ok(out),
                Some(Tok::Comma) => {
                    self.at += 1;
                }
                Some(_) => return Err(self.err(self.offset(), LabelErrorKind::ExpectedComma)),
            }
        }
    }

    fn key(&mut self) -> Result<String> {
        let at = self.offset();
        match self.next() {
            Some(Tok::Ident(k)) => {
                validate_key(k).map_err(|why| self.err(at, LabelErrorKind::InvalidKey { key: k.to_owned(), why }))?;
                Ok(k.to_owned())
            }
            _ => Err(self.err(at, LabelErrorKind::ExpectedKey)),
        }
    }

    fn requirement(&mut self) -> Result<Expression> {
        if self.peek() == Some(&Tok::Not) {
            self.at += 1;
            return Ok(Expression::DoesNotExist(self.key()?));
        }
        let key = self.key()?;
        let op_at = self.offset();
        match self.peek().cloned() {
            None | Some(Tok::Comma) => Ok(Expression::Exists(key)),
            Some(Tok::Eq | Tok::DoubleEq) => {
                self.at += 1;
                Ok(Expression::Equal(key, self.exact_value()?))
            }
            Some(Tok::NotEq) => {
                self.at += 1;
                Ok(Expression::NotEqual(key, self.exact_value()?))
            }
            Some(Tok::Ident("in")) => {
                self.at += 1;
                Ok(Expression::In(key, self.value_set()?))
            }
            Some(Tok::Ident("notin")) => {
                self.at += 1;
                Ok(Expression::NotIn(key, self.value_set()?))
            }
            Some(Tok::Gt) => Err(self.err(op_at, LabelErrorKind::UnsupportedOperator { op: ">".into() })),
            Some(Tok::Lt) => Err(self.err(op_at, LabelErrorKind::UnsupportedOperator { op: "<".into() })),
            Some(_) => Err(self.err(op_at, LabelErrorKind::ExpectedOperator)),
        }
    }

    fn value(&self, at: usize, v: &str) -> Result<String> {
        validate_value(v).map_err(|why| self.err(at, LabelErrorKind::InvalidValue { value: v.to_owned(), why }))?;
        Ok(v.to_owned())
    }

    /// The value after `=`, `==` or `!=`; empty when a `,` or the end follows.
    fn exact_value(&mut self) -> Result<String> {
        let at = self.offset();
        match self.peek().cloned() {
            None | Some(Tok::Comma) => Ok(String::new()),
            Some(Tok::Ident(v)) => {
                self.at += 1;
                self.value(at, v)
            }
            Some(_) => Err(self.err(at, LabelErrorKind::ExpectedValue)),
        }
    }

    /// `( v1, v2, ... )`; values may be empty, as in Kubernetes.
    fn value_set(&mut self) -> Result<BTreeSet<String>> {
        let at = self.offset();
        if self.next() != Some(Tok::Open) {
            return Err(self.err(at, LabelErrorKind::ExpectedOpenParen));
        }
        let mut set = BTreeSet::new();
        loop {
            let at = self.offset();
            let v = match self.peek().cloned() {
                Some(Tok::Ident(v)) => {
                    self.at += 1;
                    self.value(at, v)?
                }
                Some(Tok::Comma | Tok::Close) => String::new(),
                None => return Err(self.err(at, LabelErrorKind::UnclosedParen)),
                Some(_) => return Err(self.err(at, LabelErrorKind::ExpectedValue)),
            };
            set.insert(v);
            let at = self.offset();
            match self.next() {
                Some(Tok::Comma) => {}
                Some(Tok::Close) => return Ok(set),
                _ => return Err(self.err(at, LabelErrorKind::UnclosedParen)),
            }
        }
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn validate_name(s: &str) -> std::result::Result<(), &'static str> {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if s.len() > 63 {
        return Err("must be at most 63 characters");
    }
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return Err("must start and end with an alphanumeric character");
    }
    if !s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.')) {
        return Err("may contain only alphanumerics, '-', '_' and '.'");
    }
    Ok(())
}

/// A label key: `[dns-subdomain/]name`.
fn validate_key(k: &str) -> std::result::Result<(), &'static str> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if name.is_empty() {
        return Err("name part must not be empty");
    }
    validate_name(name)?;
    if let Some(p) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if p.is_empty() || p.len() > 253 || !p.split('.').all(label_ok) {
            return Err("prefix must be a lowercase DNS subdomain of at most 253 characters");
        }
    }
    Ok(())
}

/// A label value: empty or a valid name.
fn validate_value(v: &str) -> std::result::Result<(), &'static str> {
    if v.is_empty() { Ok(()) } else { validate_name(v) }
}

impl serde::Serialize for LabelSelector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LabelSelector {
    /// Parses the string form, so a configuration with an invalid selector fails to load.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<LabelSelector, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        LabelSelector::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_core::SelectorExt;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_into_kube_expressions() {
        use Expression::*;
        for (input, want, printed) in [
            ("", vec![], ""),
            ("app=web", vec![Equal("app".into(), "web".into())], "app=web"),
            ("app == web", vec![Equal("app".into(), "web".into())], "app=web"),
            ("tier!=db", vec![NotEqual("tier".into(), "db".into())], "tier!=db"),
            ("app=", vec![Equal("app".into(), "".into())], "app="),
            (
                "app in (a,b),!legacy",
                vec![In("app".into(), set(&["a", "b"])), DoesNotExist("legacy".into())],
                "app in (a,b),!legacy",
            ),
            (
                " env notin ( dev , test ) , kubernetes.io/name ",
                vec![NotIn("env".into(), set(&["dev", "test"])), Exists("kubernetes.io/name".into())],
                "env notin (dev,test),kubernetes.io/name",
            ),
            ("x in ()", vec![In("x".into(), set(&[""]))], "x in ()"),
        ] {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.expressions(), want.as_slice(), "{input}");
            assert_eq!(sel.to_string(), printed, "{input}");
            assert_eq!(sel.selects_all(), want.is_empty());
            assert_eq!(LabelSelector::parse(printed).unwrap(), sel);
        }
    }

    #[test]
    fn invalid_selectors_are_errors() {
        for (input, pos, reason) in [
            ("app in (a", 9, LabelErrorKind::UnclosedParen),
            ("app in a", 7, LabelErrorKind::ExpectedOpenParen),
            ("app = (", 6, LabelErrorKind::ExpectedValue),
            ("app=a b", 6, LabelErrorKind::ExpectedComma),
            ("app is x", 4, LabelErrorKind::ExpectedOperator),
            ("!", 1, LabelErrorKind::ExpectedKey),
            (",", 0, LabelErrorKind::ExpectedKey),
            ("a,", 2, LabelErrorKind::ExpectedKey),
            ("replicas>3", 8, LabelErrorKind::UnsupportedOperator { op: ">".into() }),
            ("a<3", 1, LabelErrorKind::UnsupportedOperator { op: "<".into() }),
        ] {
            let e = LabelSelector::parse(input).unwrap_err();
            assert_eq!((e.position, &e.reason), (pos, &reason), "{input}: {e}");
        }
        for bad in ["-app=x", "Foo.Com/app=x", "a/b/c", "/x", "app=-x", "app in (a,-b)", "x/=1"] {
            let e = LabelSelector::parse(bad).unwrap_err();
            assert!(
                matches!(e.reason, LabelErrorKind::InvalidKey { .. } | LabelErrorKind::InvalidValue { .. }),
                "{bad}: {e}"
            );
        }
        let long = format!("app={}", "v".repeat(64));
        assert!(LabelSelector::parse(&long).is_err());
        assert_eq!(
            LabelSelector::parse("app in (a").unwrap_err().to_string(),
            "invalid label selector \"app in (a\" at 9: expected ',' or ')' in value list"
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        let sel: LabelSelector = serde_json::from_str(r#""app in (a,b),!legacy""#).unwrap();
        assert_eq!(serde_json::to_string(&sel).unwrap(), r#""app in (a,b),!legacy""#);
        let e = serde_json::from_str::<LabelSelector>(r#""app in (a""#).unwrap_err();
        assert!(e.to_string().contains("invalid label selector"), "{e}");
    }

    #[test]
    fn works_on_dynamic_objects() {
        let d: kube_core::DynamicObject =
            serde_json::from_value(json!({"metadata": {"name": "x", "labels": {"app": "a"}}})).unwrap();
        assert!(LabelSelector::parse("app=a").unwrap().matches(&d));
        assert!(!LabelSelector::parse("app=b").unwrap().matches(&d));
        assert!(LabelSelector::parse("!tier").unwrap().matches(&json!({})));
    }

    fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map("[a-c]", "[a-c]?", 0..3)
    }

    fn selector_str() -> impl Strategy<Value = String> {
        let req = prop_oneof![
            ("[a-c]", "[a-c]?").prop_map(|(k, v)| format!("{k}={v}")),
            ("[a-c]", "[a-c]?").prop_map(|(k, v)| format!("{k}!={v}")),
            ("[a-c]", "[a-c]", "[a-c]").prop_map(|(k, a, b)| format!("{k} in ({a},{b})")),
            ("[a-c]", "[a-c]").prop_map(|(k, a)| format!("{k} notin ({a})")),
            "[a-c]",
            "[a-c]".prop_map(|k| format!("!{k}")),
        ];
        prop::collection::vec(req, 0..4).prop_map(|v| v.join(","))
    }

    proptest! {
        #[test]
        fn agrees_with_kube_selector_ext(s in selector_str(), l in labels()) {
            let sel = LabelSelector::parse(&s).unwrap();
            let obj = json!({"metadata": {"labels": l}});
            prop_assert_eq!(sel.matches(&obj), sel.selector().matches(&l));
        }

        #[test]
        fn never_panics(s in "[a-c =!(),<>/.-]{0,16}") {
            if let Ok(sel) = LabelSelector::parse(&s) {
                prop_assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
            }
        }
    }
}
