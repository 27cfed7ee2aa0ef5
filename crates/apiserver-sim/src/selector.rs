//! Server-side label selectors (equality- and set-based) and field selectors, parsed from the
//! query of list and watch requests. Crate-private: the simulator's own parser, checked by the
//! API server's rules (kstore's configuration selectors are the indexer's).

use std::collections::BTreeMap;

/// Errors parsing a selector from a query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SelectorError {
    /// The label selector could not be parsed.
    #[error("unable to parse requirement {requirement:?} of label selector {selector:?}: {reason}")]
    Label {
        /// The whole selector as sent.
        selector: String,
        /// The requirement that failed.
        requirement: String,
        /// Why it failed.
        reason: &'static str,
    },
    /// The field selector could not be parsed.
    #[error("invalid field selector {selector:?}: {reason}")]
    Field {
        /// The whole selector as sent.
        selector: String,
        /// Why it failed.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A label name (the part after any prefix) or a non-empty label value, as the API server's
/// `IsQualifiedName`/`IsValidLabelValue` check it: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`,
/// at most 63 characters.
fn valid_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.len() <= 63
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// A label key: `name` or `prefix/name`, the prefix a lowercase RFC 1123 DNS subdomain of at
/// most 253 characters.
fn valid_key(k: &str) -> bool {
    let mut parts = k.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => return false,
    };
    let dns_label = |l: &str| {
        let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        !l.is_empty()
            && l.len() <= 63
            && l.starts_with(lower_alnum)
            && l.ends_with(lower_alnum)
            && l.chars().all(|c| lower_alnum(c) || c == '-')
    };
    valid_name(name) && prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(dns_label))
}

/// A label value: empty or a valid name.
fn valid_value(v: &str) -> bool {
    v.is_empty() || valid_name(v)
}

impl LabelSelector {
    /// Parse the `labelSelector` query syntax, e.g. `app=web,tier in (a,b),!legacy`.
    pub(crate) fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if selector.trim().is_empty() {
            return Ok(Self { reqs });
        }
        for raw in split_top_level(selector) {
            let req = raw.trim();
            let err = |reason: &'static str| SelectorError::Label {
                selector: selector.to_owned(),
                requirement: req.to_owned(),
                reason,
            };
            if req.is_empty() {
                return Err(err("empty requirement"));
            }
            let (key, op) = if let Some(k) = req.strip_prefix('!') {
                (k.trim().to_owned(), Op::NotExists)
            } else if let Some((k, v)) = req.split_once("!=") {
                (k.trim().to_owned(), Op::NotEq(v.trim().to_owned()))
            } else if let Some((k, v)) = req.split_once("==") {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some((k, v)) = req.split_once('=') {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some((k, v)) = req.split_once('>') {
                let n = v.trim().parse().map_err(|_| err("'>' needs an integer"))?;
                (k.trim().to_owned(), Op::Gt(n))
            } else if let Some((k, v)) = req.split_once('<') {
                let n = v.trim().parse().map_err(|_| err("'<' needs an integer"))?;
                (k.trim().to_owned(), Op::Lt(n))
            } else if let Some(open) = req.find('(') {
                let head = req[..open].trim();
                let body = req[open + 1..].strip_suffix(')').ok_or_else(|| err("missing ')'"))?;
                let values: Vec<String> =
                    body.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
                if let Some(k) = head.strip_suffix(" notin") {
                    (k.trim().to_owned(), Op::NotIn(values))
                } else if let Some(k) = head.strip_suffix(" in") {
                    (k.trim().to_owned(), Op::In(values))
                } else {
                    return Err(err("expected 'in' or 'notin' before '('"));
                }
            } else {
                (req.to_owned(), Op::Exists)
            };
            if !valid_key(&key) {
                return Err(err("invalid label key"));
            }
            let values_ok = match &op {
                Op::Eq(v) | Op::NotEq(v) => valid_value(v),
                Op::In(vs) | Op::NotIn(vs) => !vs.is_empty() && vs.iter().all(|v| valid_value(v)),
                _ => true,
            };
            if !values_ok {
                return Err(err("invalid label value"));
            }
            reqs.push((key, op));
        }
        Ok(Self { reqs })
    }

    /// Whether the selector selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.reqs.iter().all(|(k, op)| {
            let v = labels.get(k);
            match op {
                Op::Eq(want) => v == Some(want),
                Op::NotEq(want) => v != Some(want),
                Op::In(set) => v.is_some_and(|v| set.contains(v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.contains(v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Gt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|x| x > *n),
                Op::Lt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|x| x < *n),
            }
        })
    }
}

/// Fields a field selector may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

/// A parsed field selector supporting `metadata.name` and `metadata.namespace` with `=`, `==`, `!=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    reqs: Vec<(Field, bool, String)>,
}

impl FieldSelector {
    /// Parse the `fieldSelector` query syntax, e.g. `metadata.name=foo,metadata.namespace!=kube-system`.
    pub(crate) fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if selector.trim().is_empty() {
            return Ok(Self { reqs });
        }
        for raw in selector.split(',') {
            let req = raw.trim();
            let (key, eq, value) = if let Some((k, v)) = req.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = req.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = req.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError::Field {
                    selector: selector.to_owned(),
                    reason: format!("invalid selector: '{req}'; can't understand '{req}'"),
                });
            };
            let field = match key.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => {
                    return Err(SelectorError::Field {
                        selector: selector.to_owned(),
                        reason: format!("field label not supported: {other}"),
                    });
                }
            };
            reqs.push((field, eq, value.trim().to_owned()));
        }
        Ok(Self { reqs })
    }

    /// Whether the selector selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object with this namespace (empty for cluster-scoped) and name matches.
    pub(crate) fn matches(&self, namespace: &str, name: &str) -> bool {
        self.reqs.iter().all(|(field, eq, want)| {
            let have = match field {
                Field::Name => name,
                Field::Namespace => namespace,
            };
            (have == want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn equality_and_set_based() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("rank", "7")]);
        let ok = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(ok("app=web"));
        assert!(ok("app==web,tier=front"));
        assert!(!ok("app!=web"));
        assert!(ok("app!=db"));
        assert!(ok("tier in (front, back)"));
        assert!(!ok("tier notin (front,back)"));
        assert!(ok("env notin (prod)"));
        assert!(ok("app,!legacy"));
        assert!(!ok("legacy"));
        assert!(ok("rank>5"));
        assert!(!ok("rank<5"));
        assert!(ok(""));
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for bad in ["app in (a", "=x", "a=b c", "x foo (a)", "app,,tier", "a>b"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values_follow_the_api_servers_rule() {
        for good in [
            "app=web",
            "example.com/app=web",
            "a.b-c.d/x_y.z=V-1_2.3",
            "app=",
            "app in (a, b)",
            "!k8s.io/legacy",
            &format!("{}=v", "k".repeat(63)),
            &format!("{}/k=v", ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".")),
        ] {
            assert!(LabelSelector::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "-app=web",
            "app-=web",
            "_app=web",
            "app=-web",
            "app=web.",
            "Example.com/app=web",
            "example_com/app=web",
            "/app=web",
            "example.com/=web",
            "a/b/c=web",
            "-a.com/app=web",
            "app in (a, -b)",
            &format!("{}=v", "k".repeat(64)),
            &format!("k={}", "v".repeat(64)),
            &format!("{}/k=v", ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".")),
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches("default", "a"));
        assert!(!f.matches("kube-system", "a"));
        assert!(!f.matches("default", "b"));
        assert!(FieldSelector::parse("spec.nodeName=x").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
