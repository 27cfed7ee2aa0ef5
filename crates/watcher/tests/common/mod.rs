//! Helpers shared by the watcher's integration tests (each test file includes it as `mod common`).

use std::time::Duration;

/// Waits until `cond` holds, checking every 10 ms; fails the test after 20 s naming `what`.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
