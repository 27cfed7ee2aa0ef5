//! Unit tests of the public API on hand-written inputs (property tests live in `tests/`).

use serde_json::{Value, json};
use store_types::KubeObject;

use crate::{CompactObject, Error, MAX_DEPTH, NodeKind};

fn roundtrip(json: &str) {
    let expected: Value = serde_json::from_str(json).unwrap();
    let obj = CompactObject::from_slice(json.as_bytes()).unwrap();
    assert_eq!(obj.to_value(), expected, "from_slice {json}");
    // Serialization keeps member order, so compare it as JSON here; built from a `Value`
    // (whose map is sorted) it must be byte-identical to serde_json's output.
    let text = serde_json::to_string(&obj).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    let from_value = CompactObject::from_value(&expected).unwrap();
    assert_eq!(from_value.to_value(), expected, "from_value {json}");
    assert_eq!(
        serde_json::to_string(&from_value).unwrap(),
        serde_json::to_string(&expected).unwrap(),
        "serialize {json}"
    );
    assert_eq!(obj, from_value);
}

#[test]
fn scalars_and_edge_numbers_round_trip() {
    for json in [
        "null",
        "true",
        "false",
        "0",
        "31",
        "32",
        "-1",
        "-0",
        "0.0",
        "-0.0",
        "1.5",
        "1e300",
        "-1e-300",
        "18446744073709551615",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "\"\"",
        "\"héllo wörld ✓ 🎉\"",
        "\"quote \\\" backslash \\\\ newline \\n nul \\u0000\"",
        "[]",
        "{}",
        "[[],{},[{}]]",
    ] {
        roundtrip(json);
    }
    let long = format!("\"{}\"", "x".repeat(70_000));
    roundtrip(&long);
}

#[test]
fn numbers_keep_serde_json_types() {
    let obj = CompactObject::from_slice(br#"[5, -5, 5.0, 18446744073709551615, -9223372036854775808]"#).unwrap();
    let n: Vec<_> = obj.root().elements().collect();
    assert_eq!(n[0].as_u64(), Some(5));
    assert_eq!(n[0].as_i64(), Some(5));
    assert_eq!(n[1].as_u64(), None);
    assert_eq!(n[1].as_i64(), Some(-5));
    assert_eq!(n[2].as_i64(), None);
    assert_eq!(n[2].as_f64(), Some(5.0));
    assert_eq!(n[3].as_u64(), Some(u64::MAX));
    assert_eq!(n[3].as_i64(), None);
    assert_eq!(n[4].as_i64(), Some(i64::MIN));
    assert!(n.iter().all(|n| n.kind() == NodeKind::Number));
    assert_eq!(obj.to_value()[2], json!(5.0));
    assert_ne!(obj.to_value()[2], json!(5));
}

#[test]
fn awkward_keys_and_order_are_preserved() {
    let json = r#"{"z":1,"a.b/c":{"\"q\"":[1,{"":null}]},"~":2,"app.kubernetes.io/name":"x"}"#;
    roundtrip(json);
    let obj = CompactObject::from_slice(json.as_bytes()).unwrap();
    let keys: Vec<_> = obj.root().entries().map(|(k, _)| k).collect();
    assert_eq!(keys, ["z", "a.b/c", "~", "app.kubernetes.io/name"]);
    assert_eq!(obj.pointer("/a.b~1c/\"q\"/1/").unwrap().kind(), NodeKind::Null);
    assert_eq!(obj.pointer("/~0").unwrap().as_u64(), Some(2));
    assert_eq!(obj.to_string(), json);
    let long_key = "k".repeat(crate::MAX_KEY_LEN + 10);
    let json = format!(r#"{{"{long_key}":true}}"#);
    let obj = CompactObject::from_slice(json.as_bytes()).unwrap();
    assert_eq!(obj.root().get(&long_key).and_then(|n| n.as_bool()), Some(true));
    assert_eq!(obj.root().entries().next().unwrap().0, long_key);
}

#[test]
fn duplicate_keys_resolve_like_serde_json() {
    let json = br#"{"a":1,"b":2,"a":{"x":[3]},"c":4,"b":5}"#;
    let obj = CompactObject::from_slice(json).unwrap();
    let expected: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(obj.to_value(), expected);
    assert_eq!(obj.root().len(), 3);
    assert_eq!(obj.pointer("/a/x/0").and_then(|n| n.as_u64()), Some(3));
    assert_eq!(obj.pointer("/b").and_then(|n| n.as_u64()), Some(5));
    let keys: Vec<_> = obj.root().entries().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "b", "c"]);
}

#[test]
fn pointer_follows_serde_json_rules() {
    let v = json!({"spec": {"rules": [{"host": "a"}, {"host": "b"}]}, "": {"": 7}, "n": 1});
    let obj = CompactObject::from_value(&v).unwrap();
    for p in [
        "",
        "/spec",
        "/spec/rules",
        "/spec/rules/1/host",
        "/spec/rules/01",
        "/spec/rules/+1",
        "/spec/rules/2",
        "/spec/rules/-1",
        "/spec/rules/x",
        "/",
        "//",
        "/n/x",
        "spec",
        "/missing",
    ] {
        assert_eq!(obj.pointer(p).map(|n| n.to_value()), v.pointer(p).cloned(), "{p}");
    }
    let rules = obj.pointer("/spec/rules").unwrap();
    assert_eq!(rules.len(), 2);
    assert!(rules.index(2).is_none());
    assert!(rules.get("host").is_none());
    assert_eq!(obj.root().get("n").unwrap().len(), 0);
    assert_eq!(obj.root().elements().count(), 0);
    assert_eq!(rules.entries().count(), 0);
}

#[test]
fn identity_and_resource_version() {
    let obj = CompactObject::from_value(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"labels": {"name": "not-this"}, "name": "web-0", "namespace": "prod",
                     "uid": "1234", "resourceVersion": "99"},
    }))
    .unwrap();
    let id = obj.identity().unwrap();
    assert_eq!((id.namespace, id.name, id.uid), ("prod", "web-0", Some("1234")));
    assert_eq!(obj.resource_version(), Some("99"));
    assert_eq!(KubeObject::heap_size(&obj), obj.heap_size());
    assert!(obj.heap_size() >= obj.as_bytes().len());

    let cluster = CompactObject::from_value(&json!({"metadata": {"name": "n1"}})).unwrap();
    let id = cluster.identity().unwrap();
    assert_eq!((id.namespace, id.name, id.uid), ("", "n1", None));
    assert_eq!(cluster.resource_version(), None);

    for nameless in [
        json!({"metadata": {"generateName": "x-"}}),
        json!({"metadata": {"name": 5}}),
        json!({"metadata": "x"}),
        json!([1, 2]),
        json!({}),
    ] {
        assert!(CompactObject::from_value(&nameless).unwrap().identity().is_none());
    }
}

#[test]
fn typed_and_dynamic_conversions() {
    use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    let svc = Service {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let obj = CompactObject::from_serialize(&svc).unwrap();
    assert_eq!(obj.to_value(), serde_json::to_value(&svc).unwrap());
    assert_eq!(obj.pointer("/spec/ports/0/port").unwrap().as_i64(), Some(80));
    let back: Service = obj.deserialize_into().unwrap();
    assert_eq!(back, svc);
    assert_eq!(obj.identity().unwrap().name, "web");

    let dynamic = obj.to_dynamic().unwrap();
    assert_eq!(dynamic.metadata.name.as_deref(), Some("web"));
    assert_eq!(dynamic.data["spec"]["ports"][0]["port"], json!(80));
    let again = CompactObject::from_dynamic(&dynamic).unwrap();
    assert_eq!(again.to_value(), serde_json::to_value(&dynamic).unwrap());
    assert_eq!(again, obj);

    let err = obj.deserialize_into::<Vec<u8>>().unwrap_err();
    assert!(matches!(err, Error::Deserialize { .. }), "{err}");
    let cm = CompactObject::from_value(&json!({"metadata": {"name": 3}})).unwrap();
    assert!(matches!(cm.deserialize_into::<ConfigMap>(), Err(Error::Deserialize { .. })));
}

#[test]
fn deserialize_impl_decodes_without_value() {
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(rename = "type")]
        kind: String,
        object: CompactObject,
    }
    let ev: Event =
        serde_json::from_str(r#"{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}"#).unwrap();
    assert_eq!(ev.kind, "ADDED");
    assert_eq!(ev.object.resource_version(), Some("5"));
    assert!(serde_json::from_str::<CompactObject>("[1,").is_err());
}

#[test]
fn malformed_input_is_an_error() {
    for bad in [
        &b""[..],
        b"{",
        b"{\"a\":",
        b"[1,2",
        b"{\"a\" 1}",
        b"nul",
        b"\"\xff\"",
        b"1 2",
        b"{\"a\":1}}",
        b"01",
        b"1e400",
        b"\"\\ud800\"",
    ] {
        assert!(matches!(CompactObject::from_slice(bad), Err(Error::Json { .. })), "{bad:?}");
    }
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert!(matches!(CompactObject::from_slice(deep.as_bytes()), Err(Error::TooDeep { limit: MAX_DEPTH })));
    let deepest = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert_eq!(CompactObject::from_slice(deepest.as_bytes()).unwrap().to_string(), deepest);
}

/// Runs `f` on a thread with a large stack: dropping a `serde_json::Value` nested 10,000 deep
/// recurses (serde_json's own drop), which the default 2 MiB test thread may not survive.
fn on_big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(256 << 20).spawn(f).unwrap().join().unwrap();
}

#[test]
fn from_value_rejects_excessive_depth() {
    on_big_stack(|| {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        let obj = CompactObject::from_value(&v).unwrap();
        assert_eq!(obj.to_value(), v);
        let too_deep = json!({ "a": v });
        assert!(matches!(CompactObject::from_value(&too_deep), Err(Error::TooDeep { limit: MAX_DEPTH })));
    });
}

#[test]
fn debug_prints_json_and_clone_shares() {
    let obj = CompactObject::from_slice(br#"{"b":[1,2.5,"x"],"a":null}"#).unwrap();
    assert_eq!(format!("{obj}"), r#"{"b":[1,2.5,"x"],"a":null}"#);
    assert_eq!(format!("{}", obj.pointer("/b").unwrap()), r#"[1,2.5,"x"]"#);
    // Debug never shows values (objects may be Secrets).
    assert_eq!(format!("{:?}", obj.pointer("/b").unwrap()), "Node(Array, 3 entries)");
    assert!(!format!("{obj:?}").contains("2.5"));
    let clone = obj.clone();
    assert!(std::ptr::eq(clone.as_bytes(), obj.as_bytes()));
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<CompactObject>();
    assert_send_sync::<crate::Node<'static>>();
}

#[test]
fn large_containers_use_multi_byte_headers() {
    let v = json!({
        "items": (0..5000).map(|i| json!({"i": i, "s": "y".repeat(i % 100)})).collect::<Vec<_>>(),
        "map": (0..3000).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>(),
    });
    let obj = CompactObject::from_value(&v).unwrap();
    assert_eq!(obj.to_value(), v);
    assert_eq!(obj.pointer("/items/4999/i").unwrap().as_u64(), Some(4999));
    assert_eq!(obj.pointer("/map/k2999").unwrap().as_u64(), Some(2999));
    assert_eq!(obj.pointer("/items").unwrap().len(), 5000);
}

#[test]
fn from_serialize_matches_serde_json_to_value() {
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    enum E {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { a: Option<bool>, b: () },
    }
    #[derive(serde::Serialize)]
    struct Unit;
    #[derive(serde::Serialize)]
    struct Wrapper(f32);
    #[derive(serde::Serialize)]
    struct All {
        e: Vec<E>,
        chars: (char, char),
        #[serde(with = "serde_bytes_like")]
        bytes: Vec<u8>,
        big: i128,
        small: i128,
        huge: u128,
        float: Wrapper,
        nan: f64,
        unit: Unit,
        int_keys: BTreeMap<i32, &'static str>,
        bool_keys: BTreeMap<bool, u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        #[serde(flatten)]
        flat: BTreeMap<String, i64>,
    }
    mod serde_bytes_like {
        pub(super) fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }
    let all = All {
        e: vec![E::Unit, E::Newtype(7), E::Tuple(-1, "t".into()), E::Struct { a: None, b: () }],
        chars: ('x', '✓'),
        bytes: vec![0, 255],
        big: -5,
        small: 1 << 62,
        huge: 12,
        float: Wrapper(0.1),
        nan: f64::NAN,
        unit: Unit,
        int_keys: [(-3, "a"), (10, "b")].into(),
        bool_keys: [(true, 1)].into(),
        skipped: None,
        flat: [("extra".to_string(), -9)].into(),
    };
    let expected = serde_json::to_value(&all).unwrap();
    let obj = CompactObject::from_serialize(&all).unwrap();
    assert_eq!(obj.to_value(), expected);
    assert_eq!(obj, CompactObject::from_value(&expected).unwrap());

    // Shapes JSON cannot hold are named errors, as in serde_json.
    let nested_int_keys: BTreeMap<String, BTreeMap<u8, u8>> = [("k".into(), [(1, 1)].into())].into();
    assert!(CompactObject::from_serialize(&nested_int_keys).is_ok());
    let bad: Vec<(Vec<u8>, u8)> = vec![(vec![1], 1)];
    let bad_map: std::collections::HashMap<Vec<u8>, u8> = bad.into_iter().collect();
    assert!(serde_json::to_value(&bad_map).is_err());
    assert!(matches!(CompactObject::from_serialize(&bad_map), Err(Error::Serialize { .. })));
    assert!(serde_json::to_value(u128::MAX).is_err());
    assert!(matches!(CompactObject::from_serialize(&u128::MAX), Err(Error::Serialize { .. })));
    on_big_stack(|| {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 1 {
            deep = serde_json::Value::Array(vec![deep]);
        }
        assert!(matches!(CompactObject::from_serialize(&deep), Err(Error::TooDeep { .. })));
    });
}

#[test]
fn objects_built_and_read_across_threads() {
    use std::sync::Arc;
    let objects: Vec<Arc<CompactObject>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    (0..50)
                        .map(|i| {
                            let v = json!({
                                "metadata": {"name": format!("o-{t}-{i}"), "namespace": "ns",
                                             "labels": {format!("threads.test/k{}", i % 7): "v"}},
                                "spec": {format!("threads-test-{}", i % 5): [i, t]},
                            });
                            Arc::new(CompactObject::from_value(&v).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    std::thread::scope(|s| {
        for chunk in objects.chunks(50) {
            s.spawn(move || {
                for (i, o) in chunk.iter().enumerate() {
                    let id = o.identity().unwrap();
                    assert!(id.name.ends_with(&format!("-{i}")));
                    let key = format!("threads-test-{}", i % 5);
                    assert_eq!(o.root().get("spec").unwrap().get(&key).unwrap().len(), 2);
                    let label = format!("threads.test/k{}", i % 7);
                    let labels = o.pointer("/metadata/labels").unwrap();
                    assert_eq!(labels.get(&label).and_then(|n| n.as_str()), Some("v"));
                }
            });
        }
    });
}

#[test]
fn iterators_outlive_the_node_they_came_from() {
    // Compiles only because `entries`/`elements` capture the object's lifetime, not `&self`.
    fn children<'a>(n: crate::Node<'a>) -> impl Iterator<Item = crate::Node<'a>> + 'a {
        n.elements().chain(n.entries().map(|(_, v)| v))
    }
    let obj = CompactObject::from_slice(br#"{"a":[1,2],"b":{"c":3}}"#).unwrap();
    let kids: Vec<_> = children(obj.root()).map(|n| n.to_string()).collect();
    assert_eq!(kids, ["[1,2]", r#"{"c":3}"#]);
    let nested: Vec<_> = children(obj.pointer("/a").unwrap()).map(|n| n.as_u64()).collect();
    assert_eq!(nested, [Some(1), Some(2)]);
}

mod kube_resource {
    use kube_core::{ObjectList, Resource, ResourceExt, WatchEvent};

    use super::*;
    use crate::{CompactResource, Pruner, Step};

    const SERVICE: &str = r#"{"apiVersion":"v1","kind":"Service",
        "metadata":{"name":"web","namespace":"shop","uid":"u-1","resourceVersion":"12",
                    "labels":{"app":"web"},"managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},
        "spec":{"ports":[{"port":80.0,"weight":0.5,"big":1e19,"huge":1e300}]}}"#;

    #[test]
    fn decodes_into_compact_with_numbers_normalised_and_kube_metadata() {
        let r: CompactResource = serde_json::from_str(SERVICE).unwrap();
        assert_eq!(r.name_any(), "web");
        assert_eq!(r.namespace().as_deref(), Some("shop"));
        assert_eq!(r.uid().as_deref(), Some("u-1"));
        assert_eq!(ResourceExt::resource_version(&r).as_deref(), Some("12"));
        // Only the identity fields are copied into the wrapper's metadata.
        assert!(r.meta().labels.is_none() && r.meta().managed_fields.is_none());
        let port = r.object().pointer("/spec/ports/0").unwrap();
        assert_eq!(port.get("port").unwrap().as_u64(), Some(80));
        assert_eq!(port.get("weight").unwrap().as_f64(), Some(0.5));
        assert_eq!(port.get("big").unwrap().as_u64(), Some(10_000_000_000_000_000_000));
        assert_eq!(port.get("huge").unwrap().as_f64(), Some(1e300));
        // Everything else is kept in the object.
        assert_eq!(r.object().pointer("/metadata/labels/app").unwrap().as_str(), Some("web"));
        assert!(r.object().pointer("/metadata/managedFields/0/fieldsV1/f:spec").is_some());
        // Plain decoding keeps floats as floats; the resource's decoding is the normalised one.
        let plain = CompactObject::from_slice(SERVICE.as_bytes()).unwrap();
        assert_eq!(plain.pointer("/spec/ports/0/port").unwrap().as_f64(), Some(80.0));
        assert!(plain.pointer("/spec/ports/0/port").unwrap().as_u64().is_none());
        // Debug shows the summary, never values.
        assert!(!format!("{r:?}").contains("kubectl"));
        // Serialize gives the object back.
        let back: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(back["spec"]["ports"][0]["port"], json!(80));
    }

    #[test]
    fn normalised_slice_decoding_is_the_resource_decoding() {
        let r: CompactResource = serde_json::from_str(SERVICE).unwrap();
        let normalised = CompactObject::from_slice_normalized(SERVICE.as_bytes()).unwrap();
        assert_eq!(normalised.as_bytes(), r.object().as_bytes());
        assert_eq!(CompactObject::from_str_normalized(SERVICE).unwrap().as_bytes(), r.object().as_bytes());
        assert!(matches!(CompactObject::from_str_normalized("{\"a\":"), Err(Error::Json { .. })));
        assert_eq!(normalised.pointer("/spec/ports/0/port").unwrap().as_u64(), Some(80));
        assert_ne!(normalised.as_bytes(), CompactObject::from_slice(SERVICE.as_bytes()).unwrap().as_bytes());
        // The same errors as `from_slice`; non-objects are accepted.
        for bad in [&b"{\"a\":"[..], b"{\"a\":1} x", b"\xff"] {
            assert!(matches!(CompactObject::from_slice_normalized(bad), Err(Error::Json { .. })), "{bad:?}");
        }
        assert_eq!(CompactObject::from_slice_normalized(b"[2.0,-3.0,1.5]").unwrap().to_string(), "[2,-3,1.5]");
    }

    #[test]
    fn lists_and_watch_events_decode_as_kube_decodes_them() {
        let list = format!(
            r#"{{"apiVersion":"v1","kind":"ServiceList","metadata":{{"resourceVersion":"99"}},"items":[{SERVICE},{SERVICE}]}}"#
        );
        let list: ObjectList<CompactResource> = serde_json::from_str(&list).unwrap();
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.metadata.resource_version.as_deref(), Some("99"));
        let ev: WatchEvent<CompactResource> =
            serde_json::from_str(&format!(r#"{{"type":"MODIFIED","object":{SERVICE}}}"#)).unwrap();
        assert!(matches!(ev, WatchEvent::Modified(r) if ResourceExt::resource_version(&r).as_deref() == Some("12")));
        let ar = kube_core::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
        assert_eq!(CompactResource::plural(&ar), "services");
        assert_eq!(CompactResource::api_version(&ar), "v1");
    }

    #[test]
    fn non_objects_are_rejected_and_bad_json_is_an_error() {
        // Well-formed JSON that is not an object decodes as rejected, so that it does not fail
        // the list page or watch event around it.
        for other in ["[1,2]", "\"x\"", "null"] {
            let r = serde_json::from_str::<CompactResource>(other).unwrap();
            assert!(matches!(r.rejection(), Some(crate::Error::Unsupported { .. })), "{other}");
            assert!(r.into_checked().unwrap_err().identity.is_none());
        }
        for bad in ["{\"metadata\":", "{\"a\":1} x"] {
            assert!(serde_json::from_str::<CompactResource>(bad).is_err(), "{bad}");
        }
        // An object without metadata is accepted (kube decides what it needs).
        let r: CompactResource = serde_json::from_str("{}").unwrap();
        assert!(r.meta().name.is_none() && r.object().identity().is_none());
    }

    /// Removes `metadata.<key>` for the keys given.
    struct DropMeta(&'static [&'static str]);

    impl Pruner for DropMeta {
        type State = bool;
        fn member(&self, in_meta: &bool, key: &str) -> Step<bool> {
            match (in_meta, key) {
                (false, "metadata") => Step::Enter(true),
                (true, k) if self.0.contains(&k) => Step::Remove,
                _ => Step::Keep,
            }
        }
        fn element(&self, _: &bool, _: usize) -> Step<bool> {
            Step::Keep
        }
    }

    #[test]
    fn prune_removes_members_and_keeps_identity_offsets_right() {
        let obj = CompactObject::from_slice(SERVICE.as_bytes()).unwrap();
        let pruned = obj.prune(&DropMeta(&["managedFields", "uid"]), &false, false).unwrap().unwrap();
        let id = pruned.identity().unwrap();
        assert_eq!((id.namespace, id.name, id.uid), ("shop", "web", None));
        assert_eq!(pruned.resource_version(), Some("12"));
        let mut expected: Value = serde_json::from_str(SERVICE).unwrap();
        let meta = expected["metadata"].as_object_mut().unwrap();
        meta.remove("managedFields");
        meta.remove("uid");
        assert_eq!(pruned.to_value(), expected);
        assert!(pruned.heap_size() < obj.heap_size());
        // Nothing to remove, nothing to normalise: no copy.
        assert!(pruned.prune(&DropMeta(&["managedFields"]), &false, false).unwrap().is_none());
        // Normalising alone still finds the float port.
        let normalised = pruned.prune(&DropMeta(&[]), &false, true).unwrap().unwrap();
        assert_eq!(normalised.pointer("/spec/ports/0/port").unwrap().as_u64(), Some(80));
        // Inline (long, non-interned) keys are copied and removed like interned ones.
        let long = "k".repeat(crate::MAX_KEY_LEN + 10);
        let obj = CompactObject::from_value(&json!({"metadata": {&long: 1, "name": "x"}, &long: [1.0]})).unwrap();
        struct DropLong(String);
        impl Pruner for DropLong {
            type State = ();
            fn member(&self, _: &(), key: &str) -> Step<()> {
                if key == "metadata" {
                    Step::Enter(())
                } else if key == self.0 {
                    Step::Remove
                } else {
                    Step::Keep
                }
            }
            fn element(&self, _: &(), _: usize) -> Step<()> {
                Step::Keep
            }
        }
        let pruned = obj.prune(&DropLong(long.clone()), &(), false).unwrap().unwrap();
        assert_eq!(pruned.to_value(), json!({"metadata": {"name": "x"}}));
        assert_eq!(pruned.identity().unwrap().name, "x");
    }
}

/// Found by the `compact_from_slice` fuzz target: serde_json's default float parser is not
/// correctly rounded, so `1141111111111111111111` decoded one ulp away from what its own printed
/// form (`1.1411111111111111e21`) decodes to, and a serialize / decode round trip changed the
/// object. The workspace enables serde_json's `float_roundtrip` (correctly rounded parsing).
#[test]
fn floats_survive_a_text_round_trip() {
    for json in [
        "1141111111111111111111",
        "1.1411111111111111e+21",
        "[0.1,0.30000000000000004,2.2250738585072014e-308,1.7976931348623157e308,123456789012345678901234567890]",
        "{\"a\":9007199254740993.0,\"b\":-4.9406564584124654e-324}",
    ] {
        let obj = CompactObject::from_slice(json.as_bytes()).unwrap();
        let text = serde_json::to_string(&obj).unwrap();
        let again = CompactObject::from_slice(text.as_bytes()).unwrap();
        assert_eq!(again, obj, "{json} printed as {text}");
        assert_eq!(serde_json::to_string(&again).unwrap(), text);
    }
}

#[test]
fn owned_node_reads_as_its_node_and_rejects_other_objects() {
    let a = CompactObject::from_slice(br#"{"spec":{"rules":[{"host":"a.example"},{"host":"b.example"}]}}"#).unwrap();
    let b = CompactObject::from_slice(br#"{"spec":{"rules":[{"host":"a.example"}]}}"#).unwrap();
    let rules = a.pointer("/spec/rules").unwrap();
    let owned = a.owned_node(rules).unwrap();
    assert_eq!(owned.node(), rules);
    let second = owned.child(owned.node().index(1).unwrap()).unwrap();
    assert_eq!(second.node().get("host").and_then(|h| h.as_str()), Some("b.example"));
    assert_eq!(a.owned_node(a.root()).unwrap().node(), a.root());
    // A node of another object (even an equal one) is refused, never misread.
    assert!(a.owned_node(b.pointer("/spec/rules").unwrap()).is_none());
    assert!(owned.child(b.root()).is_none());
    // The handle keeps the buffer alive after the object is dropped.
    drop(a);
    assert_eq!(second.node().get("host").and_then(|h| h.as_str()), Some("b.example"));
}
