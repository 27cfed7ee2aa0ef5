//! The Kubernetes API round-trip corpus (`testdata/HEAD/*.json` of kubernetes/api: one object
//! per kind, every field set), read by compact-object's `tests/support/corpus.rs` from
//! `../shared/k8s-api-testdata` beside the repository (or `$K8S_API_TESTDATA`). Absent: the tests
//! say so and pass.
//!
//! Every fixture goes through the indexer as a full watch and an on-demand fetch do: keys
//! `[metadata.namespace, metadata.name]` and a label key, `ignoreFields` removing managedFields
//! (two-step `prepare_compact` and one-pass `decode_compact`, byte for byte equal), and the same
//! keys from the compact form as from a `serde_json::Value`.

use compact_object::CompactObject;
use kstore_indexer::Indexer;
use serde_json::Value;

#[path = "../../compact-object/tests/support/corpus.rs"]
mod support;
use support::corpus;

#[test]
fn every_fixture_is_indexed_and_pruned() {
    let Some(files) = corpus() else { return };
    let identity = Indexer::new(["metadata.namespace", "metadata.name"], ["metadata.managedFields"]).unwrap();
    let label = Indexer::new(["metadata.labels.labelsKey"], ["metadata.managedFields"]).unwrap();
    let mut indexed = 0;
    for (name, text) in &files {
        let value: Value = serde_json::from_str(text).unwrap();
        let obj = CompactObject::from_str_normalized(text).unwrap();
        let meta = value.get("metadata");
        let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);

        // Keys: from the compact form exactly as from the JSON tree; present when the fixture
        // has the fields, a named error when it does not.
        let keys = identity.keys(&obj);
        assert_eq!(keys.as_ref().ok(), identity.keys(&value).as_ref().ok(), "{name}");
        match (field("namespace"), field("name")) {
            (Some(ns), Some(n)) => {
                assert_eq!(keys.unwrap().to_vec(), [ns, n], "{name}");
                indexed += 1;
            }
            _ => assert!(keys.is_err(), "{name}: keys without metadata.namespace/name"),
        }
        let labels = label.keys(&obj);
        match meta.and_then(|m| m.pointer("/labels/labelsKey")).and_then(Value::as_str) {
            Some(v) => assert_eq!(labels.unwrap().to_vec(), [v], "{name}"),
            None => assert!(labels.is_err(), "{name}: label key without labels"),
        }

        // ignoreFields: two steps and one pass give the same bytes, and the JSON tree with
        // managedFields removed.
        let two_steps = identity.prepare_compact(&obj, false).unwrap().unwrap_or_else(|| obj.clone());
        let one_pass = identity.decode_compact(text).unwrap();
        assert_eq!(one_pass.as_bytes(), two_steps.as_bytes(), "{name}");
        let mut want = value.clone();
        identity.remove_fields(&mut want);
        assert_eq!(two_steps.to_value(), want, "{name}");
        if meta.and_then(|m| m.get("managedFields")).is_some() {
            assert!(two_steps.pointer("/metadata/managedFields").is_none(), "{name}");
            assert!(two_steps.as_bytes().len() < obj.as_bytes().len(), "{name}");
        }
        // Pruning keeps the keys.
        assert_eq!(identity.keys(&two_steps).ok(), identity.keys(&obj).ok(), "{name}");
    }
    println!("{} fixtures checked, {indexed} with namespace and name", files.len());
    assert!(indexed >= 150, "{indexed}");
}
