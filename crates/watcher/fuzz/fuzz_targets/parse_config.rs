//! Fuzzes configuration parsing and compilation: any text must give a configuration or a
//! named error, never a panic. Run with `cargo xtask fuzz parse_config`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = watcher::WatchConfig::from_yaml(s) {
        if let Err(e) = config.compile() {
            assert!(!e.to_string().is_empty());
        }
    }
});
