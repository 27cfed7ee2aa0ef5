//! The decoder never panics: random, truncated and mutated inputs either decode to exactly what
//! `serde_json::from_slice::<Value>` produces, or fail with an error exactly when serde_json
//! fails. (The cargo-fuzz target in `fuzz/` explores the same property without a time bound.)

use kstore_compact_object::CompactObject;
use serde_json::Value;

const FIXTURES: &[&[u8]] = &[
    include_bytes!("../fixtures/ingress.json"),
    include_bytes!("../fixtures/service.json"),
    include_bytes!("../fixtures/endpointslice.json"),
    include_bytes!("../fixtures/configmap.json"),
    include_bytes!("../fixtures/secret-tls.json"),
];

/// xorshift64*: deterministic, so a failure is reproducible.
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

fn check(input: &[u8]) {
    let ours = CompactObject::from_slice(input);
    let reference = serde_json::from_slice::<Value>(input);
    match (ours, reference) {
        (Ok(obj), Ok(v)) => assert_eq!(obj.to_value(), v, "input {:?}", String::from_utf8_lossy(input)),
        (Err(_), Err(_)) => {}
        (ours, reference) => panic!(
            "disagreement on {:?}: ours {:?}, serde_json {:?}",
            String::from_utf8_lossy(input),
            ours.map(|o| o.to_string()),
            reference.map(|v| v.to_string())
        ),
    }
}

#[test]
fn every_truncation_of_every_fixture() {
    for fixture in FIXTURES {
        let fixture = fixture.trim_ascii_end();
        for len in 0..fixture.len() {
            let cut = &fixture[..len];
            assert!(CompactObject::from_slice(cut).is_err(), "prefix of {len} bytes accepted");
        }
        check(fixture);
    }
}

#[test]
fn mutated_fixtures() {
    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b"\\u",
        b"\\ud83d",
        b"-",
        b"0",
        b"1e999",
        b"1.5e-3",
        b"null",
        b"tru",
        b"\xff",
        b"\xc3",
        b"\x00",
        b" ",
        b"\"k\":\"k\"",
        b"18446744073709551616",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..6_000 {
        let mut input = FIXTURES[rng.below(FIXTURES.len())].to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(input.len() + 1);
            match rng.below(4) {
                0 if at < input.len() => input[at] ^= 1 << rng.below(8),
                1 if at < input.len() => {
                    input.remove(at);
                }
                2 => {
                    let t = TOKENS[rng.below(TOKENS.len())];
                    input.splice(at..at, t.iter().copied());
                }
                _ => input.truncate(at),
            }
        }
        check(&input);
    }
}

#[test]
fn random_bytes_and_token_soup() {
    const SOUP: &[u8] = b"{}[],:\"\\ -0123456789.eE+truefalsnul\xe2\x82\xac\xff";
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for i in 0..20_000 {
        let len = rng.below(64);
        let input: Vec<u8> = if i % 2 == 0 {
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            (0..len).map(|_| SOUP[rng.below(SOUP.len())]).collect()
        };
        check(&input);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for open in [b"[".as_slice(), b"{\"a\":"] {
        let input: Vec<u8> = open.repeat(100_000);
        assert!(CompactObject::from_slice(&input).is_err());
    }
}
