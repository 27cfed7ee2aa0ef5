//! The fuzz target's properties, checked in CI without nightly: the parsers never panic on
//! random and mutated inputs, accepted expressions print to a string that parses back to the
//! same value, and errors point inside the input.

use kstore_indexer::{FieldSelector, LabelSelector, Path};

const SEEDS: &[&str] = &[
    "metadata.namespace",
    ".metadata.name",
    "metadata.labels['app']",
    r"metadata.labels.kubernetes\.io/service-name",
    "metadata.labels['kubernetes.io/service-name']",
    r#"metadata.annotations["a.b/c"]"#,
    "spec.rules[0].host",
    "spec.ports[*].port",
    r"a['it\'s']",
    "spec.type=ClusterIP,metadata.labels['tier']!=db",
    "app in (a,b),!legacy,env notin (dev),tier==web,x!=y",
];

/// The characters that drive the grammars, plus a few multi-byte ones.
const ALPHABET: &[char] = &[
    'a',
    'z',
    '0',
    '9',
    '.',
    '[',
    ']',
    '\'',
    '"',
    '\\',
    '*',
    '=',
    '!',
    ',',
    '(',
    ')',
    ' ',
    '-',
    '/',
    '<',
    '>',
    'ä',
    '€',
    '\u{10FFFF}',
    '\0',
];

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..=rng.below(4) {
        let c = ALPHABET[rng.below(ALPHABET.len())];
        let at = rng.below(chars.len() + 1);
        match rng.below(3) {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => chars.push(c),
        }
    }
    chars.into_iter().collect()
}

fn check(s: &str) {
    match Path::parse(s) {
        Ok(p) => {
            let printed = p.to_string();
            assert_eq!(Path::parse(&printed).as_ref(), Ok(&p), "{s:?} printed as {printed:?}");
        }
        Err(e) => {
            assert!(e.position <= s.chars().count(), "{s:?}: {e}");
            assert_eq!(e.expression, s);
        }
    }
    if let Ok(sel) = FieldSelector::parse(s) {
        assert_eq!(FieldSelector::parse(&sel.to_string()).as_ref(), Ok(&sel), "{s:?}");
    }
    match LabelSelector::parse(s) {
        Ok(sel) => assert_eq!(LabelSelector::parse(&sel.to_string()).as_ref(), Ok(&sel), "{s:?}"),
        Err(e) => assert!(e.position <= s.chars().count(), "{s:?}: {e}"),
    }
}

#[test]
fn mutated_expressions_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for i in 0..20_000 {
        let seed = SEEDS[i % SEEDS.len()];
        let s = mutate(&mut rng, seed);
        accepted += usize::from(Path::parse(&s).is_ok());
        check(&s);
    }
    // The mutations must exercise both outcomes, or the test checks nothing.
    assert!(accepted > 1_000 && accepted < 19_000, "accepted {accepted}");
}

#[test]
fn random_strings_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let len = rng.below(24);
        let s: String = (0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect();
        check(&s);
    }
}
