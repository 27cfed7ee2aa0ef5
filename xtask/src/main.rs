//! `xtask` drives kstore's development tasks through `cargo xtask <task>` (an alias in
//! `.cargo/config.toml`). It is deliberately small: it depends only on `serde_json` and shells
//! out to `cargo`, so it builds in seconds. It is not part of any library crate's API.
//!
//! Start with `cargo xtask help`. Repository checks (layering, lints opt-in, crate docs) live
//! in `tidy.rs` as ordinary `#[test]`s, so `cargo test` runs them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench_report;
#[cfg(test)]
mod tidy;

const HELP: &str = "\
cargo xtask <task> [args]

tasks:
  test                 unit, integration (against apiserver-sim) and doc tests of every crate
  lint                 cargo fmt --check, clippy --workspace --all-targets and rustdoc, -D warnings
  ci                   lint + test + portable + a short demo run + cargo deny (when installed)
  portable             the libraries leave the Kubernetes version, the TLS stack and metrics to
                       the application: an app pinned to k8s-openapi v1_33 builds against them
                       (.ci/pinned-app), and the watcher builds without its `metrics` feature
  demo [args]          the main job: kstore on a generated cluster (see `cargo xtask demo --help`)
  integration [--kubeconfig PATH [--context NAME]]
                       the integration suite against the embedded apiserver-sim (default) or,
                       read-write in a throwaway namespace, a real cluster
  bench [--quick] [--report-only]
                       every benchmark, side by side with its peers; rewrites the generated
                       tables in docs/benchmarks.md (--report-only: from the last run's results)
  loom                 loom models (--cfg kstore_loom) of memory-store's snapshot publication and
                       cached-store's single flight, freshness and eviction
  fuzz [TARGET] [--seconds N]  libFuzzer targets compact_from_slice, parse_expr,
                       prepare_compact, parse_config, built with the stable toolchain (needs a
                       C++ compiler), run N s each (default 60)
  soak [--seeds N] [--minutes M]  the reliability suite in release with N seeds per scenario,
                       then its ignored soak test (every scenario, fresh seeds) for M minutes,
                       then the 1M-object MemoryStore stress test
  help                 this text
";

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let task = args.next().unwrap_or_else(|| "help".into());
    let rest: Vec<String> = args.collect();
    let result = match task.as_str() {
        "test" => test(&rest),
        "lint" => lint(),
        "ci" => ci(),
        "portable" => portable(),
        "demo" => demo(&rest),
        "bench" => bench(&rest),
        "integration" => integration(&rest),
        "loom" => loom(),
        "fuzz" => fuzz(&rest),
        "soak" => soak(&rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut cmd: Command) -> Result<(), String> {
    eprintln!("$ {}", describe(&cmd));
    let status = cmd.status().map_err(|e| format!("could not start {}: {e}", describe(&cmd)))?;
    if status.success() { Ok(()) } else { Err(format!("{} failed: {status}", describe(&cmd))) }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn test(extra: &[String]) -> Result<(), String> {
    let mut c = cargo();
    c.args(["test", "--workspace", "--all-targets"]).args(extra);
    run(c)?;
    let mut c = cargo();
    c.args(["test", "--workspace", "--doc"]).args(extra);
    run(c)?;
    // The facade's example and end-to-end test need its optional `sim` feature.
    let mut c = cargo();
    c.args(["test", "-p", "kstore", "--all-features"]).args(extra);
    run(c)
}

fn lint() -> Result<(), String> {
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run(c)?;
    let mut c = cargo();
    c.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(c)?;
    // Broken or private intra-doc links: the API docs are part of the product.
    let mut c = cargo();
    c.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    run(c)
}

fn ci() -> Result<(), String> {
    lint()?;
    test(&[])?;
    portable()?;
    demo(&["--small".into()])?;
    let has_deny = Command::new("cargo").args(["deny", "--version"]).output().is_ok_and(|o| o.status.success());
    if has_deny {
        let mut c = cargo();
        c.args(["deny", "check", "licenses", "bans", "sources"]);
        run(c)?;
    } else {
        eprintln!("xtask: cargo-deny is not installed; skipping `cargo deny check licenses bans sources`");
    }
    Ok(())
}

/// Crates that select a TLS implementation; no library may pull one into an application.
const TLS_CRATES: &[&str] = &["rustls", "ring", "aws-lc-rs", "aws-lc-sys", "openssl", "native-tls", "hyper-rustls"];

/// `cargo xtask portable`: what a library leaves to the application stays with it.
///
/// 1. `.ci/pinned-app`, an application outside the workspace pinned to k8s-openapi's `v1_33`
///    (the oldest version it supports) and depending on kstore with every feature, is checked
///    with the workspace's lock file. k8s-openapi's build script panics when two version
///    features are enabled, so this fails if any kstore library enables one (`latest`
///    included) in its normal dependencies.
/// 2. The app's normal dependency tree holds no TLS implementation (kube's `rustls-tls`,
///    `ring`, `aws-lc-rs`, `openssl-tls` stay the application's choice).
/// 3. The watcher builds without its `metrics` feature, and prometheus-client is then not in
///    its dependency tree.
fn portable() -> Result<(), String> {
    let app = root().join(".ci/pinned-app");
    let manifest = app.join("Cargo.toml");
    std::fs::copy(root().join("Cargo.lock"), app.join("Cargo.lock")).map_err(|e| format!("copying Cargo.lock: {e}"))?;
    let mut c = cargo();
    // The workspace's `.cargo/config.toml` names 1.37 for workspace commands (it applies to
    // any cargo run inside this directory); the application's version is 1.33.
    c.env("K8S_OPENAPI_ENABLED_VERSION", "1.33")
        .args(["check", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(root().join("target/pinned-app"));
    run(c)?;
    let tree = |args: &[&str]| -> Result<Vec<String>, String> {
        let mut c = cargo();
        c.env("K8S_OPENAPI_ENABLED_VERSION", "1.33").args(["tree", "--prefix", "none", "-e", "normal"]).args(args);
        eprintln!("$ {}", describe(&c));
        let out = c.output().map_err(|e| format!("could not run cargo tree: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect())
    };
    let manifest_arg = manifest.to_string_lossy().into_owned();
    let tls: Vec<String> =
        tree(&["--manifest-path", &manifest_arg])?.into_iter().filter(|n| TLS_CRATES.contains(&n.as_str())).collect();
    if !tls.is_empty() {
        return Err(format!("kstore's libraries pull a TLS stack into the application: {tls:?}"));
    }
    let mut c = cargo();
    c.args(["check", "-p", "kstore-watcher", "--no-default-features"]);
    run(c)?;
    if tree(&["-p", "kstore-watcher", "--no-default-features"])?.iter().any(|n| n == "prometheus-client") {
        return Err("kstore-watcher without `metrics` still depends on prometheus-client".into());
    }
    eprintln!("xtask: portable: the libraries build in an application pinned to Kubernetes 1.33, with no TLS stack");
    Ok(())
}

fn demo(args: &[String]) -> Result<(), String> {
    let small = args.iter().any(|a| a == "--small");
    let mut c = cargo();
    c.args(["run", "--quiet", "-p", "kstore-demo"]);
    if !small {
        c.arg("--release");
    }
    c.arg("--").args(args);
    run(c)
}

fn loom() -> Result<(), String> {
    let mut c = cargo();
    // A separate target directory: the cfg flag changes every dependency's build.
    // Three preemptions bound every model to a few minutes (CI runs this); set
    // LOOM_MAX_PREEMPTIONS for a deeper search.
    let preemptions = env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "3".into());
    c.env("RUSTFLAGS", "--cfg kstore_loom")
        .env("CARGO_TARGET_DIR", root().join("target/loom"))
        .env("LOOM_MAX_PREEMPTIONS", preemptions)
        .args([
            "test",
            "--release",
            "-p",
            "kstore-memory-store",
            "-p",
            "kstore-cached-store",
            "--test",
            "loom",
            "--",
            "--nocapture",
        ]);
    run(c)
}

fn integration(args: &[String]) -> Result<(), String> {
    let mut c = cargo();
    c.args(["test", "-p", "kstore-watcher", "--test", "integration", "--", "--test-threads", "1"]);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kubeconfig" => {
                let path = it.next().ok_or("--kubeconfig needs a path")?;
                let path = std::fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
                c.env("KSTORE_KUBECONFIG", path);
            }
            "--context" => {
                c.env("KSTORE_CONTEXT", it.next().ok_or("--context needs a name")?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    run(c)
}

fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--report-only") {
        // Re-render docs/benchmarks.md from the last run's results.
        let stdout = std::fs::read_to_string(root().join("target/bench-output.txt")).map_err(|e| e.to_string())?;
        return write_bench_report(&stdout, if quick { "cargo xtask bench --quick" } else { "cargo xtask bench" });
    }
    let mut c = cargo();
    // Only `[[bench]]` targets: libraries' unit-test harness rejects criterion's flags.
    c.args(["bench", "--workspace", "--bench", "*"]);
    if quick {
        c.args(["--", "--warm-up-time", "1", "--measurement-time", "2"]);
        c.env("KSTORE_SYNC_OBJECTS", "10000")
            .env("ROUNDS", "1")
            .env("SIM_BENCH_OBJECTS", "20000")
            .env("SIM_BENCH_EVENTS", "10000");
    }
    eprintln!("$ {}", describe(&c));
    let output = c.output().map_err(|e| format!("could not run cargo bench: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(root().join("target/bench-output.txt"), &stdout).map_err(|e| e.to_string())?;
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        return Err(format!("cargo bench failed: {}", output.status));
    }
    write_bench_report(&stdout, if quick { "cargo xtask bench --quick" } else { "cargo xtask bench" })
}

fn write_bench_report(stdout: &str, command: &str) -> Result<(), String> {
    let generated = bench_report::render(&root().join("target/criterion"), stdout, command)?;
    let path = root().join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let updated = bench_report::splice(&doc, &generated)?;
    std::fs::write(&path, updated).map_err(|e| e.to_string())?;
    eprintln!("xtask: wrote the generated tables of {}", path.display());
    Ok(())
}

/// cargo-fuzz targets: (name, crate directory).
const FUZZ_TARGETS: &[(&str, &str)] = &[
    ("compact_from_slice", "crates/compact-object/fuzz"),
    ("parse_expr", "crates/indexer/fuzz"),
    ("prepare_compact", "crates/indexer/fuzz"),
    ("parse_config", "crates/watcher/fuzz"),
];

/// rustc flags of a libFuzzer build on the stable toolchain: the same SanitizerCoverage
/// instrumentation cargo-fuzz passes (all stable `-C` flags), `--cfg fuzzing`, and debug
/// assertions and overflow checks in the optimised build. No sanitizer: `-Zsanitizer` is
/// nightly-only, and the fuzzed crates forbid `unsafe` code anyway.
const FUZZ_RUSTFLAGS: &[&str] = &[
    "--cfg fuzzing",
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cdebug-assertions",
    "-Coverflow-checks",
    "-Cforce-frame-pointers=yes",
];

/// `cargo xtask fuzz [TARGET] [--seconds N]`: builds each libFuzzer target with the installed
/// stable toolchain (no nightly, no cargo-fuzz; libfuzzer-sys compiles libFuzzer with the C++
/// compiler) and runs it for N seconds (default 60), keeping its corpus in
/// `target/fuzz/corpus/TARGET` and any crashing input in `target/fuzz/artifacts/TARGET/`.
fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut named = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                seconds = v.parse().map_err(|_| format!("--seconds needs a number, not {v:?}"))?;
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown argument {flag:?}; usage: cargo xtask fuzz [TARGET] [--seconds N]"));
            }
            target => named.push(target),
        }
    }
    let targets: Vec<(&str, &str)> = match named.as_slice() {
        [] => FUZZ_TARGETS.to_vec(),
        [t] => vec![*FUZZ_TARGETS.iter().find(|(n, _)| n == t).ok_or_else(|| {
            format!("unknown fuzz target {t:?}; targets: {:?}", FUZZ_TARGETS.iter().map(|t| t.0).collect::<Vec<_>>())
        })?],
        _ => return Err("usage: cargo xtask fuzz [TARGET] [--seconds N]".into()),
    };
    let cxx = env::var("CXX").unwrap_or_else(|_| "c++".into());
    if !Command::new(&cxx).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Err(format!(
            "no C++ compiler ({cxx:?}): libfuzzer-sys builds libFuzzer from C++ source; install one \
             (e.g. `apt-get install g++`) or set CXX"
        ));
    }
    let host = host_triple()?;
    let out = root().join("target/fuzz");
    let mut failed = Vec::new();
    for (target, dir) in targets {
        // `--target` keeps the instrumentation out of build scripts and proc macros, which run
        // inside the compiler where libFuzzer's coverage symbols do not exist.
        let mut build = cargo();
        build
            .env("RUSTFLAGS", FUZZ_RUSTFLAGS.join(" "))
            .env("CARGO_TARGET_DIR", &out)
            .args(["build", "--release", "--manifest-path"])
            .arg(root().join(dir).join("Cargo.toml"))
            .args(["--bin", target, "--target", &host]);
        run(build)?;
        let corpus = out.join("corpus").join(target);
        let artifacts = out.join("artifacts").join(target);
        for d in [&corpus, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut fuzz = Command::new(out.join(&host).join("release").join(target));
        fuzz.current_dir(root())
            .arg(format!("-max_total_time={seconds}"))
            // An input that runs 10 s is a hang (libFuzzer's default allows 20 minutes).
            .arg("-timeout=10")
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus);
        // Small hand-written seeds (committed); the corpus libFuzzer grows from them is not.
        let seeds = root().join(dir).join("seeds").join(target);
        if seeds.is_dir() {
            fuzz.arg(seeds);
        }
        // A crash or hang fails the task, after the other targets had their turn.
        if let Err(e) = run(fuzz) {
            eprintln!("xtask: {e}");
            failed.push(format!("{target} (input in {})", artifacts.display()));
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(format!("fuzz targets failed: {}", failed.join(", "))) }
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String, String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc).arg("-vV").output().map_err(|e| format!("could not run {rustc} -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| format!("{rustc} -vV printed no host triple"))
}

/// `cargo xtask soak [--seeds N] [--minutes M]`: the fault-injection reliability suite in
/// release with N seeds per scenario, then its `#[ignore]`d soak test for M minutes.
fn soak(args: &[String]) -> Result<(), String> {
    let value = |flag: &str, default: &str| -> Result<String, String> {
        match args.iter().position(|a| a == flag) {
            Some(i) => {
                let v = args.get(i + 1).ok_or(format!("{flag} needs a number"))?;
                v.parse::<u64>().map_err(|_| format!("{flag} needs a number, not {v:?}"))?;
                Ok(v.clone())
            }
            None => Ok(default.into()),
        }
    };
    let seeds = value("--seeds", "100")?;
    let minutes = value("--minutes", "10")?;
    if let Some(a) = args.iter().find(|a| a.starts_with("--") && *a != "--seeds" && *a != "--minutes") {
        return Err(format!("unknown argument {a:?}; usage: cargo xtask soak [--seeds N] [--minutes M]"));
    }
    let mut c = cargo();
    c.env("KSTORE_SEEDS", &seeds).args(["test", "--release", "-p", "kstore-watcher", "--test", "reliability"]);
    run(c)?;
    let mut c = cargo();
    c.env("KSTORE_SEEDS", &seeds).env("KSTORE_SOAK_MINUTES", &minutes);
    c.args([
        "test",
        "--release",
        "-p",
        "kstore-watcher",
        "--test",
        "reliability",
        "--",
        "--ignored",
        "--nocapture",
        "soak",
    ]);
    run(c)?;
    // The 1M-object MemoryStore stress variant (8 readers, 2 writers).
    let mut c = cargo();
    c.args(["test", "--release", "-p", "kstore-memory-store", "--test", "stress", "--", "--ignored", "--nocapture"]);
    run(c)
}
