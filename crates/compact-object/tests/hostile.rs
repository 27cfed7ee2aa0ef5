//! Hostile objects: nesting up to the Kubernetes API server's limit (10,000 levels) decodes,
//! serializes and compares without overflowing a stack; deeper nesting is a named error — and,
//! inside a list page or watch event decoded as `CompactResource`s, a rejected item that does
//! not fail the page around it.

use kstore_compact_object::{CompactObject, CompactResource, Error, MAX_DEPTH, Pruner, Step};
use kube_core::{ObjectList, WatchEvent};
use store_types::KubeObject;

/// An object named `name` whose `spec.deep` nests so that the whole object is `depth` levels
/// deep (the root object is level 1, `spec` level 2), with a scalar at the bottom.
fn deep_object(name: &str, depth: usize) -> String {
    let inner = depth - 2;
    format!(
        r#"{{"apiVersion":"example.com/v1","kind":"Deep","metadata":{{"name":"{name}","namespace":"ns","uid":"u-{name}","resourceVersion":"7","managedFields":[{{"manager":"m"}}]}},"spec":{{"deep":{}7{},"after":1}}}}"#,
        r#"{"a":["#.repeat(inner / 2) + &"[".repeat(inner % 2),
        "]".repeat(inner % 2) + &"]}".repeat(inner / 2),
    )
}

fn plain(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"ns","resourceVersion":"3"}},"data":{{"k":"v"}}}}"#
    )
}

/// Removes `metadata.managedFields`.
struct NoManagedFields;
impl Pruner for NoManagedFields {
    type State = u8;
    fn member(&self, depth: &u8, key: &str) -> Step<u8> {
        match (depth, key) {
            (0, "metadata") => Step::Enter(1),
            (1, "managedFields") => Step::Remove,
            _ => Step::Keep,
        }
    }
    fn element(&self, _: &u8, _: usize) -> Step<u8> {
        Step::Keep
    }
}

#[test]
fn ten_thousand_levels_decode_serialize_compare_and_prune() {
    let json = deep_object("deep", MAX_DEPTH);
    assert_eq!(MAX_DEPTH, 10_000);
    let obj = CompactObject::from_slice(json.as_bytes()).unwrap();
    assert_eq!(obj.identity().unwrap().name, "deep");
    assert_eq!(serde_json::to_string(&obj).unwrap(), json);
    assert_eq!(obj.to_string(), json);
    let again = json.parse::<CompactObject>().unwrap();
    assert_eq!(again.as_bytes(), obj.as_bytes());
    // Equality walks both trees (not the buffer shortcut: distinct allocations).
    assert!(obj == again);
    assert_eq!(obj.pointer("/spec/after").and_then(|n| n.as_u64()), Some(1));

    // Pruned while parsing equals decoded then pruned, also 10,000 levels deep.
    let one_pass = CompactObject::from_str_pruned(&json, &NoManagedFields, &0).unwrap();
    let two_steps =
        CompactObject::from_str_normalized(&json).unwrap().prune(&NoManagedFields, &0, true).unwrap().unwrap();
    assert_eq!(one_pass.as_bytes(), two_steps.as_bytes());
    assert!(one_pass.pointer("/metadata/managedFields").is_none());

    // As kube decodes it: one item of a list page, and a watch event.
    let page = format!(r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":"9"}},"items":[{json}]}}"#);
    let list: ObjectList<CompactResource> = serde_json::from_str(&page).unwrap();
    assert!(list.items[0].rejection().is_none());
    assert_eq!(list.items[0].object().to_string(), json);
    let event: WatchEvent<CompactResource> =
        serde_json::from_str(&format!(r#"{{"type":"ADDED","object":{json}}}"#)).unwrap();
    let WatchEvent::Added(r) = event else { panic!("not ADDED") };
    assert_eq!(r.into_checked().unwrap().as_bytes(), obj.as_bytes());
}

#[test]
fn deeper_than_the_limit_is_a_named_error_at_any_depth() {
    for depth in [MAX_DEPTH + 1, 100_000, 1_000_000] {
        let json = deep_object("too-deep", depth);
        assert!(
            matches!(CompactObject::from_slice(json.as_bytes()), Err(Error::TooDeep { limit: MAX_DEPTH })),
            "{depth}"
        );
        assert!(matches!(CompactObject::from_str_normalized(&json), Err(Error::TooDeep { .. })), "{depth}");
        assert!(
            matches!(CompactObject::from_str_pruned(&json, &NoManagedFields, &0), Err(Error::TooDeep { .. })),
            "{depth}"
        );
    }
}

#[test]
fn one_bad_item_never_fails_its_page() {
    let items = [
        plain("first"),
        deep_object("too-deep", MAX_DEPTH + 1),
        plain("second"),
        deep_object("deepest", MAX_DEPTH),
        "5".to_owned(),
        deep_object("far-too-deep", 200_000),
        r#"{"metadata":{"name":"many-arrays"},"x":"#.to_owned() + &"[".repeat(50_000) + &"]".repeat(50_000) + "}",
        plain("third"),
    ];
    let page = format!(
        r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":"9"}},"items":[{}]}}"#,
        items.join(",")
    );
    let list: ObjectList<CompactResource> = serde_json::from_str(&page).unwrap();
    assert_eq!(list.items.len(), items.len());
    let mut kept = Vec::new();
    let mut rejected = Vec::new();
    for (item, json) in list.items.into_iter().zip(&items) {
        match item.into_checked() {
            Ok(obj) => {
                assert_eq!(&obj.to_string(), json);
                kept.push(obj.identity().unwrap().name.to_owned());
            }
            Err(r) => rejected.push((r.identity.map(|id| id.key.name()), r.error.to_string())),
        }
    }
    assert_eq!(kept, ["first", "second", "deepest", "third"]);
    let too_deep = format!("value nests deeper than {MAX_DEPTH} arrays/objects");
    assert_eq!(
        rejected,
        [
            (Some("too-deep".to_owned()), too_deep.clone()),
            (None, "unsupported input: a Kubernetes object must be a JSON object".to_owned()),
            (Some("far-too-deep".to_owned()), too_deep.clone()),
            (Some("many-arrays".to_owned()), too_deep),
        ]
    );

    // A rejected watch event still decodes, with the identity kube needs.
    let event = format!(r#"{{"type":"MODIFIED","object":{}}}"#, deep_object("too-deep", MAX_DEPTH + 1));
    let WatchEvent::Modified(r) = serde_json::from_str::<WatchEvent<CompactResource>>(&event).unwrap() else {
        panic!("not MODIFIED")
    };
    assert!(matches!(r.rejection(), Some(Error::TooDeep { .. })));
    assert_eq!(kube_core::ResourceExt::resource_version(&r).as_deref(), Some("7"));
}
