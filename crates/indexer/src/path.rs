//! The expression dialect: parsing, validation and printing of paths such as
//! `metadata.labels['kubernetes.io/service-name']`.

use std::fmt;
use std::str::FromStr;

/// `Result` with [`ExprError`] as the default error.
pub(crate) type Result<T, E = ExprError> = std::result::Result<T, E>;

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A map key: `.name`, `name\.with\.dots`, `['a.b/c']` or `["a.b/c"]`.
    Field(Box<str>),
    /// An array element: `[0]`.
    Index(usize),
    /// Every element of an array or every value of a map: `[*]`.
    Wildcard,
}

impl Segment {
    /// True when `self` and `other` can select the same child (equal, or either is a wildcard).
    pub(crate) fn may_overlap(&self, other: &Segment) -> bool {
        matches!((self, other), (Segment::Wildcard, _) | (_, Segment::Wildcard)) || self == other
    }
}

/// A compiled path expression in the Kubernetes JSONPath dialect that users write in
/// `indexBy`, `ignoreFields` and `fieldSelector`.
///
/// A path is parsed and validated once ([`Path::parse`]); resolving it against an object walks
/// the segments directly, without re-parsing and without allocating.
///
/// # Dialect
/// * an optional leading dot: `metadata.name` and `.metadata.name` are the same path;
/// * dotted field names; `\` escapes the next character, so `kubernetes\.io/service-name` is one
///   field name;
/// * bracketed keys in single or double quotes, which may contain dots, slashes and any other
///   character (`\` escapes a quote or backslash inside): `['kubernetes.io/service-name']`,
///   `["a.b/c"]`;
/// * array indexes `[0]` and the wildcard `[*]` (every array element or map value).
///
/// Outside quotes, whitespace and the characters `] ' " = ! ,` must be escaped with `\` in a
/// dotted field name (they end the path in a field selector).
///
/// # Printing
/// `Display` prints the canonical form: fields that need no escaping are dotted, every other
/// field is bracketed in single quotes, and there is no leading dot. Parsing the printed form
/// gives the same path back.
///
/// # Usage
/// ```
/// use kstore_indexer::{Path, Segment};
/// let p: Path = ".metadata.labels['kubernetes.io/service-name']".parse()?;
/// assert_eq!(p.segments().len(), 3);
/// assert_eq!(p.segments()[2], Segment::Field("kubernetes.io/service-name".into()));
/// assert_eq!(p.to_string(), "metadata.labels['kubernetes.io/service-name']");
/// assert_eq!(p, Path::parse(r"metadata.labels.kubernetes\.io/service-name")?);
///
/// let err = Path::parse("metadata.labels['x").unwrap_err();
/// assert_eq!(err.to_string(), r#"invalid index expression "metadata.labels['x" at 16: unclosed quote"#);
/// # Ok::<(), kstore_indexer::ExprError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Path {
    segments: Vec<Segment>,
}

/// What is wrong with an expression (the `reason` of an [`ExprError`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// The expression is empty (or only a dot).
    #[error("empty expression")]
    Empty,
    /// A `'` or `"` quote was opened and never closed.
    #[error("unclosed quote")]
    UnclosedQuote,
    /// A `[` was opened and never closed.
    #[error("unclosed bracket, expected ']'")]
    UnclosedBracket,
    /// A field name was expected (after a `.` or at the start) but none was found.
    #[error("expected a field name")]
    ExpectedField,
    /// A `\` ends the expression with nothing to escape.
    #[error("dangling escape '\\' at end of expression")]
    DanglingEscape,
    /// The inside of `[...]` is not a quoted key, an index or `*`.
    #[error("expected a quoted key, an array index or '*' inside brackets")]
    BadBracket,
    /// An array index is negative.
    #[error("negative array indexes are not supported")]
    NegativeIndex,
    /// An array index does not fit in `usize`.
    #[error("array index is too large")]
    IndexOverflow,
    /// A character that cannot appear here unescaped.
    #[error("unexpected character {found:?}")]
    Unexpected {
        /// The character found.
        found: char,
    },
}

/// An invalid expression, with the expression and the (0-based, in characters) position of the
/// problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid index expression {expression:?} at {position}: {reason}")]
pub struct ExprError {
    /// The whole expression as given.
    pub expression: String,
    /// Character offset of the problem (0-based).
    pub position: usize,
    /// What is wrong.
    pub reason: ExprErrorKind,
}

impl ExprError {
    fn at(input: &str, byte_pos: usize, reason: ExprErrorKind) -> Self {
        let byte_pos = byte_pos.min(input.len());
        let position = input.char_indices().take_while(|(i, _)| *i < byte_pos).count();
        ExprError { expression: input.to_owned(), position, reason }
    }
}

/// True for characters that may appear unescaped in a dotted field name.
fn is_field_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '.' | '[' | ']' | '\\' | '\'' | '"' | '=' | '!' | ','))
}

impl Path {
    /// Parses and validates a whole expression.
    pub fn parse(input: &str) -> Result<Path> {
        let (path, end) = Self::parse_prefix(input)?;
        if end < input.len() {
            let found = input[end..].chars().next().unwrap_or(' ');
            return Err(ExprError::at(input, end, ExprErrorKind::Unexpected { found }));
        }
        Ok(path)
    }

    /// Parses the longest path at the start of `input`; returns it and the byte offset where it
    /// ends (at the first unescaped character that cannot continue a path, such as `=` or `!`).
    /// Errors report positions within `input`.
    pub(crate) fn parse_prefix(input: &str) -> Result<(Path, usize)> {
        Parser { input, pos: 0 }.path()
    }

    /// Builds a path from segments (no validation needed: every segment list is a valid path
    /// except the empty one, which is rejected).
    ///
    /// ```
    /// use kstore_indexer::{Path, Segment};
    /// let p = Path::from_segments(vec![Segment::Field("spec".into()), Segment::Wildcard])?;
    /// assert_eq!(p, Path::parse("spec[*]")?);
    /// assert!(p.has_wildcard());
    /// assert!(Path::from_segments(Vec::new()).is_err());
    /// # Ok::<(), kstore_indexer::ExprError>(())
    /// ```
    pub fn from_segments(segments: Vec<Segment>) -> Result<Path> {
        if segments.is_empty() {
            return Err(ExprError::at("", 0, ExprErrorKind::Empty));
        }
        Ok(Path { segments })
    }

    /// The segments, in order (never empty).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True when some segment is a wildcard (the path may match many values).
    ///
    /// ```
    /// use kstore_indexer::Path;
    /// assert!(Path::parse("spec.rules[*].host")?.has_wildcard());
    /// assert!(!Path::parse("spec.rules[0].host")?.has_wildcard());
    /// # Ok::<(), kstore_indexer::ExprError>(())
    /// ```
    pub fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Wildcard)
    }

    /// True when this is exactly `metadata.namespace`.
    pub(crate) fn is_metadata_namespace(&self) -> bool {
        matches!(self.segments.as_slice(), [Segment::Field(a), Segment::Field(b)] if &**a == "metadata" && &**b == "namespace")
    }

    /// True when one of the paths is a prefix of the other, segment by segment, where a wildcard
    /// matches any segment: then changing what one selects may change what the other selects.
    pub fn overlaps(&self, other: &Path) -> bool {
        self.segments.iter().zip(&other.segments).all(|(a, b)| a.may_overlap(b))
    }
}

impl FromStr for Path {
    type Err = ExprError;
    fn from_str(s: &str) -> Result<Path> {
        Path::parse(s)
    }
}

impl TryFrom<&str> for Path {
    type Error = ExprError;
    fn try_from(s: &str) -> Result<Path> {
        Path::parse(s)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Field(name) if !name.is_empty() && name.chars().all(is_field_char) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Segment::Field(name) => {
                    f.write_str("['")?;
                    for c in name.chars() {
                        if c == '\'' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        fmt::Write::write_char(f, c)?;
                    }
                    f.write_str("']")?;
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Wildcard => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({self})")
    }
}

impl serde::Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Path {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Path, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Path::parse(&s).map_err(serde::de::Error::custom)
    }
}

struct Parser<'s> {
    input: &'s str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn err(&self, pos: usize, reason: ExprErrorKind) -> ExprError {
        ExprError::at(self.input, pos, reason)
    }

    fn path(mut self) -> Result<(Path, usize)> {
        let mut segments = Vec::new();
        if self.peek() == Some('.') {
            self.pos += 1;
        }
        match self.peek() {
            None => return Err(self.err(self.pos, ExprErrorKind::Empty)),
            Some('[') => {}
            _ => segments.push(self.field()?),
        }
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    segments.push(self.field()?);
                }
                Some('[') => segments.push(self.bracket()?),
                _ => break,
            }
        }
        Ok((Path { segments }, self.pos))
    }

    /// A dotted field name at `self.pos`.
    fn field(&mut self) -> Result<Segment> {
        let start = self.pos;
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                let esc_at = self.pos;
                self.pos += 1;
                match self.peek() {
                    Some(e) => {
                        name.push(e);
                        self.pos += e.len_utf8();
                    }
                    None => return Err(self.err(esc_at, ExprErrorKind::DanglingEscape)),
                }
            } else if is_field_char(c) {
                name.push(c);
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if self.pos == start {
            return Err(self.err(start, ExprErrorKind::ExpectedField));
        }
        Ok(Segment::Field(name.into()))
    }

    /// A `[...]` segment at `self.pos` (which holds `[`).
    fn bracket(&mut self) -> Result<Segment> {
        let open = self.pos;
        self.pos += 1;
        let seg = match self.peek() {
            None => return Err(self.err(open, ExprErrorKind::UnclosedBracket)),
            Some(q @ ('\'' | '"')) => {
                let quote_at = self.pos;
                self.pos += 1;
                let mut key = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.err(quote_at, ExprErrorKind::UnclosedQuote)),
                        Some('\\') => {
                            self.pos += 1;
                            match self.peek() {
                                Some(e) => {
                                    key.push(e);
                                    self.pos += e.len_utf8();
                                }
                                None => {
                                    return Err(self.err(quote_at, ExprErrorKind::UnclosedQuote));
                                }
                            }
                        }
                        Some(c) if c == q => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            key.push(c);
                            self.pos += c.len_utf8();
                        }
                    }
                }
                Segment::Field(key.into())
            }
            Some('*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some('-') => return Err(self.err(self.pos, ExprErrorKind::NegativeIndex)),
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                match self.input[start..self.pos].parse::<usize>() {
                    Ok(n) => Segment::Index(n),
                    Err(_) => return Err(self.err(start, ExprErrorKind::IndexOverflow)),
                }
            }
            Some(_) => return Err(self.err(self.pos, ExprErrorKind::BadBracket)),
        };
        match self.peek() {
            Some(']') => {
                self.pos += 1;
                Ok(seg)
            }
            None => Err(self.err(open, ExprErrorKind::UnclosedBracket)),
            Some(_) => Err(self.err(self.pos, ExprErrorKind::BadBracket)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Segment {
        Segment::Field(s.into())
    }

    #[test]
    fn dialect_table() {
        use Segment::*;
        let cases: Vec<(&str, Vec<Segment>)> = vec![
            ("metadata.namespace", vec![f("metadata"), f("namespace")]),
            (".metadata.name", vec![f("metadata"), f("name")]),
            ("metadata.labels['app']", vec![f("metadata"), f("labels"), f("app")]),
            (
                r"metadata.labels.kubernetes\.io/service-name",
                vec![f("metadata"), f("labels"), f("kubernetes.io/service-name")],
            ),
            (
                "metadata.labels['kubernetes.io/service-name']",
                vec![f("metadata"), f("labels"), f("kubernetes.io/service-name")],
            ),
            (r#"metadata.annotations["a.b/c"]"#, vec![f("metadata"), f("annotations"), f("a.b/c")]),
            ("spec.rules[0].host", vec![f("spec"), f("rules"), Index(0), f("host")]),
            ("spec.ports[*].port", vec![f("spec"), f("ports"), Wildcard, f("port")]),
            ("['metadata']", vec![f("metadata")]),
            (".['a b']", vec![f("a b")]),
            ("a['']", vec![f("a"), f("")]),
            (r"a['it\'s']", vec![f("a"), f("it's")]),
            (r#"a["q\"\\"]"#, vec![f("a"), f("q\"\\")]),
            ("a[12][3]", vec![f("a"), Index(12), Index(3)]),
            ("ünï.côdé", vec![f("ünï"), f("côdé")]),
            (r"a\=b", vec![f("a=b")]),
        ];
        for (input, want) in cases {
            let p = Path::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(p.segments(), want.as_slice(), "{input}");
            assert_eq!(Path::parse(&p.to_string()).unwrap(), p, "{input} -> {p}");
        }
    }

    #[test]
    fn printing_is_canonical() {
        for (input, printed) in [
            (".metadata.name", "metadata.name"),
            (r"metadata.labels.kubernetes\.io/x", "metadata.labels['kubernetes.io/x']"),
            (r#"a["it's"]"#, r"a['it\'s']"),
            ("['a']['b'][0][*]", "a.b[0][*]"),
            ("a['']", "a['']"),
        ] {
            assert_eq!(Path::parse(input).unwrap().to_string(), printed, "{input}");
        }
    }

    #[test]
    fn errors_carry_expression_and_position() {
        for (input, pos, reason) in [
            ("metadata.labels['x", 16, ExprErrorKind::UnclosedQuote),
            ("", 0, ExprErrorKind::Empty),
            (".", 1, ExprErrorKind::Empty),
            ("metadata.", 9, ExprErrorKind::ExpectedField),
            ("metadata..name", 9, ExprErrorKind::ExpectedField),
            ("a.['x']", 2, ExprErrorKind::ExpectedField),
            ("a[", 1, ExprErrorKind::UnclosedBracket),
            ("a[0", 1, ExprErrorKind::UnclosedBracket),
            ("a['x'", 1, ExprErrorKind::UnclosedBracket),
            ("a[x]", 2, ExprErrorKind::BadBracket),
            ("a[0x]", 3, ExprErrorKind::BadBracket),
            ("a[-1]", 2, ExprErrorKind::NegativeIndex),
            ("a[99999999999999999999999]", 2, ExprErrorKind::IndexOverflow),
            ("a\\", 1, ExprErrorKind::DanglingEscape),
            ("a b", 1, ExprErrorKind::Unexpected { found: ' ' }),
            ("a=b", 1, ExprErrorKind::Unexpected { found: '=' }),
            ("a]", 1, ExprErrorKind::Unexpected { found: ']' }),
            ("ä.b c", 3, ExprErrorKind::Unexpected { found: ' ' }),
        ] {
            let e = Path::parse(input).unwrap_err();
            assert_eq!((e.position, &e.reason), (pos, &reason), "{input}: {e}");
            assert_eq!(e.expression, input);
        }
        assert_eq!(
            Path::parse("metadata.labels['x").unwrap_err().to_string(),
            r#"invalid index expression "metadata.labels['x" at 16: unclosed quote"#
        );
    }

    #[test]
    fn prefix_stops_at_operator() {
        let (p, end) = Path::parse_prefix("metadata.labels['a=b']!=x").unwrap();
        assert_eq!(p.to_string(), "metadata.labels['a=b']");
        assert_eq!(end, 22);
    }

    #[test]
    fn overlap_rules() {
        let p = |s| Path::parse(s).unwrap();
        assert!(p("metadata.labels").overlaps(&p("metadata.labels['app']")));
        assert!(p("metadata.labels['app']").overlaps(&p("metadata.labels")));
        assert!(p("spec.rules[*].host").overlaps(&p("spec.rules[0]")));
        assert!(!p("metadata.annotations").overlaps(&p("metadata.labels['app']")));
        assert!(!p("spec.rules[1]").overlaps(&p("spec.rules[0].host")));
    }

    #[test]
    fn serde_round_trip() {
        let p: Path = serde_json::from_str(r#""metadata.labels['a.b']""#).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""metadata.labels['a.b']""#);
        assert!(serde_json::from_str::<Path>(r#""a['""#).is_err());
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            4 => any::<String>().prop_map(|s| Segment::Field(s.into())),
            4 => "[a-z.\\\\'\"\\[\\]=!, /-]{0,6}".prop_map(|s| Segment::Field(s.into())),
            1 => any::<usize>().prop_map(Segment::Index),
            1 => Just(Segment::Wildcard),
        ]
    }

    /// Random strings built from the dialect's own characters, so many reach deep parser states.
    fn dialect_noise() -> impl Strategy<Value = String> {
        "[a-z0-9.\\[\\]'\"\\\\*=!, -]{0,24}"
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(segs in prop::collection::vec(segment(), 1..6)) {
            let p = Path::from_segments(segs).unwrap();
            let printed = p.to_string();
            prop_assert_eq!(Path::parse(&printed).unwrap(), p);
        }

        #[test]
        fn parser_never_panics(s in any::<String>()) {
            let _ = Path::parse(&s);
        }

        #[test]
        fn parser_never_panics_on_dialect_noise(s in dialect_noise()) {
            match Path::parse(&s) {
                Ok(p) => prop_assert_eq!(Path::parse(&p.to_string()).unwrap(), p),
                Err(e) => prop_assert!(e.position <= s.chars().count()),
            }
        }
    }
}
