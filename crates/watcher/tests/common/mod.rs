//! Helpers shared by the watcher's integration tests (each test file includes it as `mod common`).

use std::time::Duration;

/// Waits until `cond` holds, checking every 10 ms; fails the test after 20 s naming `what`.
#[allow(dead_code, reason = "the reliability suite has its own bounded waits")]
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `f` on a runtime whose threads have 512 MiB stacks: serde_json (in the simulator and
/// the tests) recurses through values nested up to compact-object's `MAX_DEPTH` and beyond.
#[allow(dead_code, reason = "only the files with deep objects use it")]
pub(crate) fn on_big_stacks(f: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(512 << 20)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f)
        })
        .expect("thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
