//! Fuzzes the expression parser and everything built on it: parsing must never panic, a
//! parsed path must print to a string that parses back to the same path, and the selector
//! parsers must never panic either. Run with `cargo xtask fuzz parse_expr`.
#![no_main]

use indexer::{FieldSelector, LabelSelector, Path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Path::parse(s) {
        Ok(p) => {
            let printed = p.to_string();
            let again = Path::parse(&printed).expect("printed path must parse");
            assert_eq!(again, p, "print/parse round trip of {s:?} via {printed:?}");
        }
        Err(e) => assert!(e.position <= s.chars().count()),
    }
    if let Ok(sel) = FieldSelector::parse(s) {
        let printed = sel.to_string();
        assert_eq!(
            FieldSelector::parse(&printed).expect("printed selector must parse"),
            sel
        );
    }
    if let Ok(sel) = LabelSelector::parse(s) {
        let printed = sel.to_string();
        assert_eq!(
            LabelSelector::parse(&printed).expect("printed selector must parse"),
            sel
        );
    }
});
