//! Fuzzes the byte-copying `ignoreFields` removal and number normalisation against the JSON
//! path it replaces: for any object and up to four patterns, `Indexer::prepare_compact` must
//! give exactly what `Indexer::prepare` (or `remove_fields`) gives on the object's
//! `serde_json::Value`, and `None` only when that changes nothing; decoding through
//! `CompactResource` (what full watches do) must give the normalised object, and accept every
//! JSON object; and pruning while decoding (`Indexer::decode_compact`, what on-demand fetches
//! use) must accept that JSON and give byte for byte the normalised decoding pruned by
//! `prepare_compact`. Input: patterns, one per line, a NUL byte, then the JSON (no NUL: no
//! patterns).
//! Run with `cargo xtask fuzz prepare_compact`.
#![no_main]

use compact_object::{CompactObject, CompactResource};
use indexer::{Indexer, normalize_numbers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, json) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let patterns: Vec<&str> = head.lines().filter(|l| !l.is_empty()).take(4).collect();
    let Ok(indexer) = Indexer::new(["metadata.name"], patterns.iter().copied()) else {
        return;
    };
    let Ok(obj) = CompactObject::from_slice(json) else {
        return;
    };
    let value = obj.to_value();
    for normalize in [false, true] {
        let mut expected = value.clone();
        if normalize {
            indexer.prepare(&mut expected);
        } else {
            indexer.remove_fields(&mut expected);
        }
        match indexer.prepare_compact(&obj, normalize).expect("pruning a decoded object") {
            Some(pruned) => assert_eq!(pruned.to_value(), expected, "patterns {patterns:?}, normalize {normalize}"),
            None => assert_eq!(
                value, expected,
                "None, but prepare changes it: patterns {patterns:?}, normalize {normalize}"
            ),
        }
    }
    // Valid JSON is valid UTF-8.
    let text = std::str::from_utf8(json).expect("decoded JSON is UTF-8");
    let normalized = CompactObject::from_str_normalized(text).expect("from_slice accepted it");
    let two_passes =
        indexer.prepare_compact(&normalized, false).expect("pruning a decoded object").unwrap_or(normalized);
    let one_pass = indexer.decode_compact(text).expect("decode_compact rejected what two passes accept");
    assert_eq!(one_pass.as_bytes(), two_passes.as_bytes(), "patterns {patterns:?}");
    match serde_json::from_slice::<CompactResource>(json) {
        Ok(resource) => {
            let mut expected = value.clone();
            normalize_numbers(&mut expected);
            assert_eq!(resource.object().to_value(), expected);
        }
        Err(e) => assert!(!value.is_object(), "CompactResource rejected an object: {e}"),
    }
});
