//! Once the shared key table is full, new keys are stored inline and everything behaves the same.
//! (Its own test binary: it fills the process-wide table.)

use kstore_compact_object::{CompactObject, MAX_KEYS, interner_stats};
use serde_json::{Value, json};

#[test]
fn full_table_falls_back_to_inline_keys() {
    let before = CompactObject::from_value(&json!({"metadata": {"name": "early"}, "k-early": 1})).unwrap();
    // Fill the table with distinct keys, 500 per object.
    let mut i = 0;
    while interner_stats().keys < MAX_KEYS {
        let map: serde_json::Map<String, Value> = (0..500).map(|j| (format!("fill-{i}-{j}"), json!(j))).collect();
        let v = Value::Object(map);
        let obj = CompactObject::from_value(&v).unwrap();
        assert_eq!(obj.to_value(), v);
        i += 1;
    }
    let stats = interner_stats();
    assert_eq!(stats.keys, MAX_KEYS);
    // Every key interned on the way (through all probe-table replacements) is still found. (The
    // last filling object hit the cap part-way, so some of its keys are inline.)
    for n in 0..i - 1 {
        let probe = json!({ format!("fill-{n}-499"): 1, format!("fill-{n}-0"): 2 });
        let obj = CompactObject::from_value(&probe).unwrap();
        // Header (3 bytes) + two members of a 2–3 byte key id and a 1-byte value; inline keys
        // would need 3 + 10..=12 bytes each.
        let len = obj.as_bytes().len();
        assert!(len <= 3 + 2 * (3 + 1), "keys of object {n} are not interned ({len} bytes)");
        assert_eq!(obj.to_value(), probe);
    }
    assert!(stats.heap_bytes < 1_600_000, "{stats:?}");

    // New keys: inline, yet lookups, iteration, pointers and serialization are unchanged.
    let v = json!({
        "metadata": {"name": "late", "namespace": "ns", "labels": {"never-seen-before/x": "y"}},
        "brand-new-key": [1, {"another.new~key": "z"}],
        "fill-0-1": true,
    });
    let obj = CompactObject::from_value(&v).unwrap();
    assert_eq!(interner_stats().keys, MAX_KEYS);
    assert_eq!(obj.to_value(), v);
    assert_eq!(serde_json::to_string(&obj).unwrap(), serde_json::to_string(&v).unwrap());
    assert_eq!(obj.pointer("/brand-new-key/1/another.new~0key").and_then(|n| n.as_str()), Some("z"));
    assert_eq!(obj.pointer("/metadata/labels/never-seen-before~1x").and_then(|n| n.as_str()), Some("y"));
    assert_eq!(obj.root().get("fill-0-1").and_then(|n| n.as_bool()), Some(true));
    let keys: Vec<&str> = obj.root().entries().map(|(k, _)| k).collect();
    assert_eq!(keys, ["brand-new-key", "fill-0-1", "metadata"]);
    use store_types::KubeObject;
    assert_eq!(obj.identity().unwrap().name, "late");
    // Objects built before the table filled up are unaffected.
    assert_eq!(before.root().get("k-early").and_then(|n| n.as_u64()), Some(1));

    // A large object with 40 new keys exercises the hashed lookup path with inline keys.
    let wide: serde_json::Map<String, Value> = (0..40).map(|j| (format!("wide-{j}"), json!(j))).collect();
    let wide = Value::Object(wide);
    let obj = CompactObject::from_value(&wide).unwrap();
    for j in 0..40 {
        assert_eq!(obj.root().get(&format!("wide-{j}")).and_then(|n| n.as_u64()), Some(j));
    }
    assert!(obj.root().get("wide-40").is_none());
}
