//! Property tests: arbitrary JSON round-trips exactly, pointer lookups agree with
//! `serde_json::Value::pointer`, and serialization equals serde_json's.

use kstore_compact_object::{CompactObject, NodeKind};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Keys like the ones Kubernetes uses, plus the awkward ones (dots, slashes, quotes, tildes,
/// empty, non-ASCII, long).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("metadata".to_string()),
        Just("app.kubernetes.io/name".to_string()),
        Just("a~b/c".to_string()),
        Just(String::new()),
        "[a-z./~\"\\\\-]{1,12}",
        any::<String>(),
        "[a-z]{65,80}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..40).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64).prop_map(Value::Number),
        Just(Value::from(-0.0f64)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        any::<String>().prop_map(Value::String),
        "[a-z]{60,70}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every pointer that resolves in `v`, plus some that do not.
fn pointers(v: &Value, prefix: String, out: &mut Vec<String>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, e) in m {
                let token = k.replace('~', "~0").replace('/', "~1");
                pointers(e, format!("{prefix}/{token}"), out);
            }
            out.push(format!("{prefix}/no-such-key"));
        }
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                pointers(e, format!("{prefix}/{i}"), out);
            }
            out.push(format!("{prefix}/{}", a.len()));
            out.push(format!("{prefix}/01"));
        }
        _ => out.push(format!("{prefix}/0")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_round_trips_exactly(v in json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        // serde_json's own parse of the bytes is the reference (its float parsing is what
        // `Value` users get).
        let reference: Value = serde_json::from_slice(&bytes).unwrap();
        let obj = CompactObject::from_slice(&bytes).unwrap();
        prop_assert_eq!(obj.to_value(), reference.clone());
        prop_assert_eq!(serde_json::to_vec(&obj).unwrap(), serde_json::to_vec(&reference).unwrap());
        prop_assert_eq!(obj.deserialize_into::<Value>().unwrap(), reference.clone());

        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        prop_assert_eq!(CompactObject::from_slice(&pretty).unwrap().to_value(),
                        serde_json::from_slice::<Value>(&pretty).unwrap());

        let from_value = CompactObject::from_value(&v).unwrap();
        prop_assert_eq!(from_value.to_value(), v.clone());
        prop_assert_eq!(serde_json::to_vec(&from_value).unwrap(), bytes);
        prop_assert_eq!(from_value.root().to_string(), serde_json::to_string(&v).unwrap());
        let serialized = CompactObject::from_serialize(&v).unwrap();
        prop_assert_eq!(serialized.to_value(), v.clone());
        prop_assert_eq!(serialized.as_bytes(), from_value.as_bytes());
    }

    /// The normalised slice decoding (on-demand fetches) is byte for byte the resource decoding
    /// (watches), and equals normalising the exact decoding afterwards.
    #[test]
    fn normalised_decoding_is_the_resource_decoding(v in json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let normalised = CompactObject::from_slice_normalized(&bytes).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let from_str = CompactObject::from_str_normalized(text).unwrap();
        prop_assert_eq!(from_str.as_bytes(), normalised.as_bytes());
        let (parsed, exact) = (text.parse::<CompactObject>().unwrap(), CompactObject::from_slice(&bytes).unwrap());
        prop_assert_eq!(parsed.as_bytes(), exact.as_bytes());
        match serde_json::from_slice::<kstore_compact_object::CompactResource>(&bytes) {
            Ok(r) => prop_assert_eq!(r.object().as_bytes(), normalised.as_bytes()),
            Err(_) => prop_assert_ne!(normalised.root().kind(), NodeKind::Object),
        }
        struct KeepAll;
        impl kstore_compact_object::Pruner for KeepAll {
            type State = ();
            fn member(&self, _: &(), _: &str) -> kstore_compact_object::Step<()> {
                kstore_compact_object::Step::Keep
            }
            fn element(&self, _: &(), _: usize) -> kstore_compact_object::Step<()> {
                kstore_compact_object::Step::Keep
            }
        }
        let exact = CompactObject::from_slice(&bytes).unwrap();
        let after = exact.prune(&KeepAll, &(), true).unwrap().unwrap_or(exact);
        prop_assert_eq!(after.as_bytes(), normalised.as_bytes());
    }

    #[test]
    fn pointers_agree_with_value_pointer(v in json()) {
        let obj = CompactObject::from_value(&v).unwrap();
        let mut ps = Vec::new();
        pointers(&v, String::new(), &mut ps);
        ps.extend(["/", "//", "x", "/~", "/~2"].map(String::from));
        for p in &ps {
            let got = obj.pointer(p);
            let want = v.pointer(p);
            prop_assert_eq!(got.map(|n| n.to_value()), want.cloned(), "pointer {}", p);
            if let (Some(n), Some(w)) = (got, want) {
                prop_assert_eq!(n.as_str(), w.as_str());
                prop_assert_eq!(n.as_i64(), w.as_i64());
                prop_assert_eq!(n.as_u64(), w.as_u64());
                prop_assert_eq!(n.as_f64(), w.as_f64());
                prop_assert_eq!(n.as_bool(), w.as_bool());
                prop_assert_eq!(n.is_null(), w.is_null());
                let len = w.as_array().map(Vec::len).or(w.as_object().map(Map::len)).unwrap_or(0);
                prop_assert_eq!(n.len(), len);
                prop_assert_eq!(serde_json::to_vec(&n).unwrap(), serde_json::to_vec(w).unwrap());
                match n.kind() {
                    NodeKind::Object => {
                        let keys: Vec<&str> = n.entries().map(|(k, _)| k).collect();
                        let want: Vec<&str> = w.as_object().unwrap().keys().map(String::as_str).collect();
                        prop_assert_eq!(keys, want);
                        for (k, e) in n.entries() {
                            prop_assert_eq!(n.get(k).map(|x| x.to_value()), Some(e.to_value()));
                        }
                    }
                    NodeKind::Array => {
                        for (i, e) in n.elements().enumerate() {
                            prop_assert_eq!(n.index(i).map(|x| x.to_value()), Some(e.to_value()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// JSON text of an object whose members (key, value text) may repeat keys.
fn object_text(members: &[(String, String)]) -> String {
    let body: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap())).collect();
    format!("{{{}}}", body.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn duplicate_keys_resolve_like_serde_json(
        outer in prop::collection::vec((prop::sample::select(vec!["a", "b", "metadata", "x.y/z", ""]), json()), 0..12),
        inner in prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), json()), 0..8),
    ) {
        let inner: Vec<(String, String)> =
            inner.into_iter().map(|(k, v)| (k.to_owned(), v.to_string())).collect();
        let inner_text = object_text(&inner);
        // The duplicate-laden inner object appears as a member and inside an array.
        let mut members = vec![
            ("nested".to_owned(), format!("[{inner_text},1]")),
            ("n2".to_owned(), inner_text),
        ];
        members.extend(outer.into_iter().map(|(k, v)| (k.to_owned(), v.to_string())));
        let text = object_text(&members);
        let reference: Value = serde_json::from_str(&text).unwrap();
        let obj = CompactObject::from_slice(text.as_bytes()).unwrap();
        prop_assert_eq!(obj.to_value(), reference.clone());
        let root = obj.root();
        prop_assert_eq!(root.len(), reference.as_object().unwrap().len());
        for (k, v) in reference.as_object().unwrap() {
            prop_assert_eq!(root.get(k).map(|n| n.to_value()), Some(v.clone()));
        }
        let keys: Vec<&str> = root.entries().map(|(k, _)| k).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), keys.len());
    }
}

/// A pseudo-random pruner: each decision is a hash of the path so far (the state) and the key or
/// index, so it removes, keeps and enters members *and* array elements (the indexer's pruner
/// never removes elements).
struct HashPruner(u64);

impl HashPruner {
    fn step(&self, state: u64, salt: u64) -> kstore_compact_object::Step<u64> {
        let h = (state ^ salt).wrapping_add(self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        match h % 5 {
            0 => kstore_compact_object::Step::Remove,
            1 => kstore_compact_object::Step::Keep,
            _ => kstore_compact_object::Step::Enter(h),
        }
    }
}

impl kstore_compact_object::Pruner for HashPruner {
    type State = u64;

    fn member(&self, state: &u64, key: &str) -> kstore_compact_object::Step<u64> {
        let salt = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        self.step(*state, salt)
    }

    fn element(&self, state: &u64, index: usize) -> kstore_compact_object::Step<u64> {
        self.step(*state, !(index as u64))
    }
}

proptest! {
    /// Pruning while decoding is byte for byte decoding (normalised) then pruning, for any JSON
    /// and any pruner decisions — also with duplicate keys in the text.
    #[test]
    fn pruning_while_decoding_equals_decoding_then_pruning(
        v in json(),
        seed in any::<u64>(),
        duplicate in any::<bool>(),
        pretty in any::<bool>(),
    ) {
        let mut text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
        if duplicate && matches!(&v, Value::Object(m) if !m.is_empty()) {
            // `{…}` → `{…,…}`: every root member twice (the last wins, at the first position).
            let inner = text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap().to_owned();
            text = format!("{{{inner},{inner}}}");
        }
        let pruner = HashPruner(seed);
        let decoded = CompactObject::from_str_normalized(&text).unwrap();
        let two_steps = decoded.prune(&pruner, &seed, false).unwrap().unwrap_or(decoded);
        let one_pass = CompactObject::from_str_pruned(&text, &pruner, &seed).unwrap();
        prop_assert_eq!(one_pass.as_bytes(), two_steps.as_bytes());
    }
}
