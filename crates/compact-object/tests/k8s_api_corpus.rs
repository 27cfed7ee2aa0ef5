//! The Kubernetes API round-trip corpus (`testdata/HEAD/*.json` of kubernetes/api: one object
//! per kind, every field set), read by compact-object's `tests/support/corpus.rs` from
//! `../shared/k8s-api-testdata` beside the repository (or `$K8S_API_TESTDATA`). Absent: the tests
//! say so and pass.
//!
//! Every fixture must round-trip through `CompactObject` byte for byte: decoding its text and
//! serializing the result with serde_json gives exactly the fixture's *canonical JSON*, defined
//! as the fixture with every token re-serialised by serde_json and nothing else changed: member
//! order kept, insignificant whitespace removed, each string decoded and re-encoded by
//! serde_json (so Go's `\u003c` becomes `<`), each number parsed as a `serde_json::Number` and
//! printed again.

use kstore_compact_object::{CompactObject, CompactResource};
use store_types::KubeObject;

#[path = "support/corpus.rs"]
mod support;
use support::corpus;

/// The canonical JSON of `text` (see the module docs): a token-by-token re-serialisation.
fn canonical(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\n' | b'\r' | b'\t' => i += 1,
            b'{' | b'}' | b'[' | b']' | b':' | b',' => {
                out.push(b[i] as char);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                let s: String = serde_json::from_str(&text[start..i]).unwrap();
                out.push_str(&serde_json::to_string(&s).unwrap());
            }
            _ => {
                let start = i;
                while i < b.len() && !b" \n\r\t,]}".contains(&b[i]) {
                    i += 1;
                }
                let v: serde_json::Value = serde_json::from_str(&text[start..i]).unwrap();
                out.push_str(&v.to_string());
            }
        }
    }
    out
}

#[test]
fn canonical_form_is_what_it_says() {
    assert_eq!(canonical("{ \"a\" : [1, 2.5 ,\"\\u003cx\\u003e\"],\n \"b\":null}"), r#"{"a":[1,2.5,"<x>"],"b":null}"#);
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    let Some(files) = corpus() else { return };
    let mut failures = Vec::new();
    for (name, text) in &files {
        let want = canonical(text);
        let checks: [(&str, Result<CompactObject, String>); 4] = [
            ("from_slice", CompactObject::from_slice(text.as_bytes()).map_err(|e| e.to_string())),
            ("from_str", text.parse::<CompactObject>().map_err(|e| e.to_string())),
            // What full watches and on-demand fetches store: the corpus has no integral floats,
            // so normalising changes nothing.
            ("from_str_normalized", CompactObject::from_str_normalized(text).map_err(|e| e.to_string())),
            (
                "CompactResource",
                serde_json::from_str::<CompactResource>(text)
                    .map(CompactResource::into_object)
                    .map_err(|e| e.to_string()),
            ),
        ];
        for (how, got) in checks {
            match got {
                Ok(obj) => {
                    let out = serde_json::to_string(&obj).unwrap();
                    if out != want {
                        failures.push(format!("{name} ({how}): serialized {out}\n   canonical  {want}"));
                    }
                    if obj.to_string() != want {
                        failures.push(format!("{name} ({how}): Display differs from canonical"));
                    }
                    let value: serde_json::Value = serde_json::from_str(text).unwrap();
                    if obj.to_value() != value {
                        failures.push(format!("{name} ({how}): to_value differs"));
                    }
                    // Re-encoding the output gives the same bytes (the encoding is canonical).
                    if CompactObject::from_slice(out.as_bytes()).unwrap().as_bytes() != obj.as_bytes() {
                        failures.push(format!("{name} ({how}): re-encoding differs"));
                    }
                    let meta = value.get("metadata");
                    let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(|v| v.as_str());
                    if let Some(name_field) = field("name") {
                        let id = obj.identity().expect("identity");
                        assert_eq!(id.name, name_field, "{name}");
                        assert_eq!(id.namespace, field("namespace").unwrap_or(""), "{name}");
                        assert_eq!(id.uid, field("uid"), "{name}");
                        assert_eq!(obj.resource_version(), field("resourceVersion"), "{name}");
                    }
                }
                Err(e) => failures.push(format!("{name} ({how}): {e}")),
            }
        }
    }
    println!("{} fixtures checked", files.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
