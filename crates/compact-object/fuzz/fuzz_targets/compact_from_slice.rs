//! Fuzzes `CompactObject::from_slice` against serde_json: for every input it must not panic, must
//! accept exactly what `serde_json::from_slice::<Value>` accepts, must decode to the same value,
//! and every accepted object must survive serialization, pointer lookups and typed decoding.

#![no_main]

use compact_object::CompactObject;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let ours = CompactObject::from_slice(data);
    let reference = serde_json::from_slice::<Value>(data);
    match (ours, reference) {
        (Ok(obj), Ok(value)) => {
            assert_eq!(obj.to_value(), value);
            let text = serde_json::to_vec(&obj).expect("serializing a decoded object");
            let again = CompactObject::from_slice(&text).expect("re-decoding our own output");
            assert_eq!(again, obj);
            assert_eq!(
                obj.deserialize_into::<Value>()
                    .expect("Value accepts any JSON"),
                value
            );
            // Walk every member and element through the `Node` API.
            fn walk(node: compact_object::Node<'_>, value: &Value) {
                assert_eq!(
                    node.len(),
                    value
                        .as_array()
                        .map_or(value.as_object().map_or(0, |m| m.len()), |a| a.len())
                );
                for (k, child) in node.entries() {
                    assert_eq!(node.get(k).map(|n| n.to_value()), Some(child.to_value()));
                    walk(child, &value[k]);
                }
                for (i, child) in node.elements().enumerate() {
                    walk(child, &value[i]);
                }
                assert_eq!(node.as_str(), value.as_str());
                assert_eq!(node.as_i64(), value.as_i64());
                assert_eq!(node.as_u64(), value.as_u64());
            }
            walk(obj.root(), &value);
        }
        (Err(_), Err(_)) => {}
        (ours, reference) => panic!(
            "acceptance differs: ours {:?}, serde_json {:?}",
            ours.map(|o| o.to_string()),
            reference.map(|v| v.to_string())
        ),
    }
});
