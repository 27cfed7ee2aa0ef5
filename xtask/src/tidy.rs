//! Repository checks, rust-analyzer "tidy" style: they run as ordinary tests.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::root;

/// kstore crates by layer: a crate may depend (normal or build dependencies) only on crates of
/// a strictly lower layer. `apiserver-sim` stands apart: it depends on no kstore crate, and no
/// library crate depends on it outside dev-dependencies, except the facade `kstore`, which
/// re-exports it behind its optional `sim` feature.
const LAYERS: &[(&str, u32)] = &[
    ("kstore-types", 0),
    ("kstore-heap-meter", 0),
    ("kstore-compact-object", 1),
    ("kstore-indexer", 2),
    ("kstore-memory-store", 3),
    ("kstore-cached-store", 4),
    ("kstore-watcher", 5),
    ("kstore-render", 6),
    ("kstore", 7),
    ("kstore-demo", 8),
];

/// Non-test users of apiserver-sim: the demo, and the facade behind its optional `sim` feature.
const SIM_USERS: &[&str] = &["kstore-demo", "kstore"];

/// Crates that must do no I/O and pull in no async runtime or HTTP stack, even transitively.
const NO_IO: &[&str] =
    &["kstore-types", "kstore-heap-meter", "kstore-compact-object", "kstore-indexer", "kstore-memory-store"];
const IO_CRATES: &[&str] =
    &["tokio", "hyper", "hyper-util", "kube-client", "kube-runtime", "kube", "axum", "rustls", "reqwest", "mio"];

fn metadata() -> Value {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args(["metadata", "--format-version", "1"])
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Package id → (name, normal/build dependency ids).
fn graph(meta: &Value) -> (HashMap<String, String>, HashMap<String, Vec<String>>) {
    let names = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (str_of(p, "id").to_owned(), str_of(p, "name").to_owned()))
        .collect();
    let mut edges = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().into_iter().flatten() {
        let deps = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["dep_kinds"].as_array().into_iter().flatten().any(|k| k["kind"].as_str() != Some("dev")))
            .map(|d| str_of(d, "pkg").to_owned())
            .collect();
        edges.insert(str_of(node, "id").to_owned(), deps);
    }
    (names, edges)
}

/// The packages whose manifests live in this repository (workspace members, the fuzz crates).
fn local_packages(meta: &Value) -> impl Iterator<Item = &Value> {
    let root = root();
    let root = root.to_str().unwrap().to_owned();
    meta["packages"].as_array().into_iter().flatten().filter(move |p| str_of(p, "manifest_path").starts_with(&root))
}

fn members(meta: &Value) -> Vec<String> {
    meta["workspace_members"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
}

#[test]
fn layering_points_one_way() {
    let meta = metadata();
    let (names, edges) = graph(&meta);
    let layer: HashMap<&str, u32> = LAYERS.iter().copied().collect();
    let member_ids = members(&meta);
    let member_names: HashSet<&str> = member_ids.iter().map(|id| names[id].as_str()).collect();
    let mut problems = Vec::new();
    for id in &member_ids {
        let name = names[id].as_str();
        for dep in &edges[id] {
            let dep_name = names[dep].as_str();
            if !member_names.contains(dep_name) {
                continue;
            }
            let ok = match (layer.get(name), layer.get(dep_name)) {
                (Some(a), Some(b)) => b < a,
                // Only the demo embeds the simulator, and the facade re-exports it (feature
                // `sim`); libraries use it in dev-dependencies.
                (Some(_), None) => dep_name == "kstore-apiserver-sim" && SIM_USERS.contains(&name),
                // apiserver-sim and xtask depend on no kstore crate.
                (None, _) => false,
            };
            if !ok {
                problems.push(format!("{name} depends on {dep_name}"));
            }
        }
    }
    assert!(problems.is_empty(), "layering violated (see docs/architecture.md):\n{}", problems.join("\n"));
}

#[test]
fn lower_layers_do_no_io() {
    let meta = metadata();
    let (names, edges) = graph(&meta);
    let mut problems = Vec::new();
    for id in members(&meta) {
        if !NO_IO.contains(&names[&id].as_str()) {
            continue;
        }
        let mut seen = HashSet::new();
        let mut stack = vec![id.clone()];
        while let Some(p) = stack.pop() {
            if !seen.insert(p.clone()) {
                continue;
            }
            if IO_CRATES.contains(&names[&p].as_str()) {
                problems.push(format!("{} pulls in {}", names[&id], names[&p]));
            }
            stack.extend(edges.get(&p).into_iter().flatten().cloned());
        }
    }
    assert!(problems.is_empty(), "architecture invariant broken:\n{}", problems.join("\n"));
}

#[test]
fn every_crate_opts_into_workspace_lints_and_documents_itself() {
    let meta = metadata();
    let mut problems = Vec::new();
    for p in local_packages(&meta) {
        let manifest = str_of(p, "manifest_path");
        let text = fs::read_to_string(manifest).unwrap();
        if !text.contains("[lints]") || !text.contains("workspace = true") {
            problems.push(format!("{manifest}: missing `[lints] workspace = true`"));
        }
        for target in p["targets"].as_array().into_iter().flatten() {
            let kinds = target["kind"].as_array().unwrap();
            if kinds.iter().any(|k| k == "lib") {
                let src = fs::read_to_string(str_of(target, "src_path")).unwrap();
                if !src.trim_start().starts_with("//!") {
                    problems.push(format!("{}: lib.rs must open with a `//!` paragraph", str_of(target, "src_path")));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn external_dependencies_are_declared_once_in_the_workspace() {
    let meta = metadata();
    let mut problems = Vec::new();
    for p in local_packages(&meta) {
        let manifest = str_of(p, "manifest_path");
        if manifest.ends_with("/fuzz/Cargo.toml") {
            continue;
        }
        let text = fs::read_to_string(manifest).unwrap();
        for line in text.lines() {
            let l = line.trim();
            // `foo = "1.0"` or `foo = { version = ... }` inside a crate is a second declaration.
            if (l.contains("= \"") && !l.starts_with('#') && !l.contains("workspace")
                || l.contains("version =") && !l.contains("workspace"))
                && !l.starts_with("name")
                && !l.starts_with("description")
                && !l.starts_with("documentation")
                && !l.starts_with("path")
                && !l.starts_with("harness")
                && !l.starts_with("required-features")
            {
                problems.push(format!("{manifest}: `{l}` — declare it in [workspace.dependencies]"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Packages that are applications, not libraries: they may pick a Kubernetes version and a TLS
/// stack in their normal dependencies.
const APPLICATIONS: &[&str] = &["kstore-demo", "xtask"];

#[test]
fn libraries_pick_no_kubernetes_version_and_no_tls_stack() {
    let meta = metadata();
    let mut problems = Vec::new();
    for p in local_packages(&meta) {
        let name = str_of(p, "name");
        if APPLICATIONS.contains(&name) {
            continue;
        }
        for dep in p["dependencies"].as_array().into_iter().flatten() {
            // Only normal and build dependencies reach an application; dev-dependencies may pick.
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let features: Vec<&str> =
                dep["features"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let picked: Vec<&str> = match str_of(dep, "name") {
                "k8s-openapi" => features
                    .into_iter()
                    .filter(|f| f.starts_with("v1_") || *f == "latest" || *f == "earliest")
                    .collect(),
                "kube" | "kube-client" => features
                    .into_iter()
                    .filter(|f| ["rustls-tls", "ring", "aws-lc-rs", "openssl-tls", "webpki-roots"].contains(f))
                    .collect(),
                _ => continue,
            };
            if !picked.is_empty() {
                problems.push(format!("{name}: {} enables {picked:?}", str_of(dep, "name")));
            }
            // kube's default features include `rustls-tls` and `ring`.
            if str_of(dep, "name") == "kube" && dep["uses_default_features"].as_bool() == Some(true) {
                problems.push(format!("{name}: kube with default features (a TLS stack)"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "libraries must leave the Kubernetes version and the TLS stack to the application \
         (enable them in [dev-dependencies] or in a binary crate):\n{}",
        problems.join("\n")
    );
}

/// Every workspace package is published except these.
const UNPUBLISHED: &[&str] = &["kstore-demo", "xtask"];

#[test]
fn published_crates_have_metadata_and_package() {
    let meta = metadata();
    let mut problems = Vec::new();
    let mut published = 0;
    for p in local_packages(&meta) {
        let name = str_of(p, "name");
        // `publish`: null = anywhere, [] = nowhere.
        let publishable = p["publish"].as_array().is_none_or(|r| !r.is_empty());
        if UNPUBLISHED.contains(&name) {
            if publishable {
                problems.push(format!("{name}: must set `publish = false`"));
            }
            continue;
        }
        if !publishable {
            problems.push(format!("{name}: published crates set `publish.workspace = true`"));
            continue;
        }
        published += 1;
        for field in ["description", "license", "readme", "documentation", "rust_version"] {
            if str_of(p, field).is_empty() {
                problems.push(format!("{name}: no `{field}`"));
            }
        }
        for field in ["keywords", "categories"] {
            if p[field].as_array().is_none_or(Vec::is_empty) {
                problems.push(format!("{name}: no `{field}`"));
            }
        }
        if str_of(p, "repository").contains(".invalid") || str_of(p, "homepage").contains(".invalid") {
            problems.push(format!("{name}: placeholder URL"));
        }
        // docs.rs builds the library without dev-dependencies: a crate over k8s-openapi names
        // the version docs.rs should pick (an application's choice, so only in this metadata).
        let over_k8s = p["dependencies"].as_array().into_iter().flatten().any(|d| {
            d["kind"].as_str() != Some("dev")
                && ["k8s-openapi", "kube", "kube-core", "kstore-types"].contains(&str_of(d, "name"))
        });
        let docs_rs = p["metadata"]["docs"]["rs"]["features"].as_array().into_iter().flatten();
        if over_k8s && !docs_rs.filter_map(Value::as_str).any(|f| f == "k8s-openapi/latest") {
            problems.push(format!("{name}: [package.metadata.docs.rs] features must include k8s-openapi/latest"));
        }
        // Every path dependency carries a version, or it could not be published.
        for dep in p["dependencies"].as_array().into_iter().flatten() {
            if dep.get("path").is_some() && str_of(dep, "req") == "*" {
                problems.push(format!("{name}: path dependency {} without a version", str_of(dep, "name")));
            }
        }
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args(["package", "--list", "--allow-dirty", "-p", name])
            .output()
            .expect("cargo package runs");
        let list = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            problems.push(format!("{name}: `cargo package --list` failed: {}", String::from_utf8_lossy(&out.stderr)));
            continue;
        }
        for file in ["Cargo.toml", "LICENSE", "README.md", "src/lib.rs"] {
            if !list.lines().any(|l| l == file) {
                problems.push(format!("{name}: the package lacks {file}"));
            }
        }
        if let Some(t) = list.lines().find(|l| l.starts_with("target/") || l.contains("/target/")) {
            problems.push(format!("{name}: the package holds build output {t}"));
        }
    }
    assert!(published >= 9, "only {published} published crates found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every file git tracks, relative to the root.
fn tracked_files() -> Vec<String> {
    let out = Command::new("git").current_dir(root()).args(["ls-files", "-z"]).output().expect("git ls-files runs");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&out.stdout).split('\0').filter(|p| !p.is_empty()).map(String::from).collect()
}

/// Tracked Rust sources that exist in the work tree (a deleted but still tracked file is skipped).
fn rust_sources() -> Vec<(String, String)> {
    tracked_files()
        .into_iter()
        .filter(|p| p.ends_with(".rs"))
        .filter_map(|p| fs::read_to_string(root().join(&p)).ok().map(|text| (p, text)))
        .collect()
}

#[test]
fn no_tracked_build_output() {
    let found: Vec<String> =
        tracked_files().into_iter().filter(|p| p.split('/').any(|part| part == "target")).take(10).collect();
    assert!(
        found.is_empty(),
        "build output is tracked (git rm --cached it; .gitignore has target/):\n{}",
        found.join("\n")
    );
}

/// The code of one line: string literals blanked and a trailing `//` comment cut (a line-local
/// approximation: enough for attributes, `unsafe` blocks and this file's own patterns).
fn code_of(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut in_str, mut escaped) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// The only files that may allow `unsafe_code` (the workspace denies it): the counting
/// allocator has to implement `GlobalAlloc`.
const UNSAFE_ALLOWED: &[&str] = &["crates/heap-meter/src/lib.rs"];

#[test]
fn unsafe_code_only_where_the_allow_list_says() {
    let mut problems = Vec::new();
    for (path, text) in rust_sources() {
        for (i, line) in text.lines().enumerate() {
            let l = code_of(line);
            if (l.contains("allow(unsafe_code)") || l.contains("expect(unsafe_code)"))
                && !UNSAFE_ALLOWED.contains(&path.as_str())
            {
                problems.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    for manifest in tracked_files().into_iter().filter(|p| p.ends_with("Cargo.toml") && p != "Cargo.toml") {
        let text = fs::read_to_string(root().join(&manifest)).unwrap_or_default();
        if text.lines().any(|l| l.trim_start().starts_with("unsafe_code")) {
            problems.push(format!("{manifest}: overrides the workspace's `unsafe_code` lint"));
        }
    }
    assert!(problems.is_empty(), "`unsafe_code` allowed outside {UNSAFE_ALLOWED:?}:\n{}", problems.join("\n"));
}

#[test]
fn every_unsafe_block_states_why_it_is_sound() {
    let mut problems = Vec::new();
    for (path, text) in rust_sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = code_of(line);
            if !(l.contains("unsafe {") || l.contains("unsafe impl")) {
                continue;
            }
            // A `// SAFETY:` comment on the line or within the three lines above it.
            if !lines[i.saturating_sub(3)..=i].iter().any(|l| l.contains("SAFETY:")) {
                problems.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "`unsafe` without a `// SAFETY:` comment:\n{}", problems.join("\n"));
}

/// Whether `token` (a backticked span of docs/architecture.md) reads as a file path.
fn looks_like_path(token: &str) -> bool {
    let file = [".rs", ".md", ".toml", ".yaml", ".yml", ".j2"].iter().any(|e| token.ends_with(e));
    let dir = ["crates/", "docs/", "xtask/", ".ci/"].iter().any(|d| token.starts_with(d));
    (file || dir)
        && !token.contains(char::is_whitespace)
        && token.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

#[test]
fn every_path_architecture_md_names_exists() {
    let text = fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut crate_dir: Option<String> = None;
    let mut problems = Vec::new();
    let mut checked = 0;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            // `### `crates/x`` sections name files relative to that crate.
            let h = h.trim_matches('`');
            crate_dir = if h == "xtask" {
                Some(h.to_owned())
            } else {
                h.strip_prefix("crates/").map(|c| format!("crates/{c}"))
            };
        } else if line.starts_with("## ") {
            crate_dir = None;
        }
        for token in line.split('`').skip(1).step_by(2) {
            if !looks_like_path(token) {
                continue;
            }
            checked += 1;
            let mut candidates = vec![token.to_owned(), format!("crates/{token}")];
            if let Some(dir) = &crate_dir {
                candidates.push(format!("{dir}/{token}"));
                candidates.push(format!("{dir}/src/{token}"));
            }
            if !candidates.iter().any(|c| root().join(c.trim_end_matches('/')).exists()) {
                problems.push(format!("`{token}` (tried {candidates:?})"));
            }
        }
    }
    assert!(checked > 20, "only {checked} paths found in docs/architecture.md");
    assert!(problems.is_empty(), "docs/architecture.md names paths that do not exist:\n{}", problems.join("\n"));
}

/// The non-test part of a source file: test files and `#[cfg(test)]` modules (from the
/// attribute to the end of the file, where this codebase keeps them) are cut off.
fn non_test_part<'a>(path: &str, text: &'a str) -> &'a str {
    let test_file = path.contains("/tests/") || path.ends_with("/tests.rs") || path.contains("/fuzz/");
    if test_file {
        return "";
    }
    match text.find("\n#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Whether `word` occurs in `text` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Public items that nothing outside their crate's tests uses yet, each awaiting its area's
/// decision (remove, make `pub(crate)`, or document as API with an example): (crate, name,
/// owner). An entry that is fixed or gone is simply no longer reported; new items are never
/// added here without a reason.
const PENDING_PUBLIC_ITEMS: &[(&str, &str, &str)] = &[
    // apiserver-sim's test helpers, being reorganised with its state/routing split.
    ("apiserver-sim", "wait_for_watch_count", "sim"),
    ("apiserver-sim", "wait_for_count", "sim"),
    ("apiserver-sim", "group_version_path", "sim"),
    // cached-store's model-test hooks and feed API, being split into modules by concern.
    ("cached-store", "with_model_server", "cache"),
    ("cached-store", "fetches_in_flight", "cache"),
    ("cached-store", "apply_meta", "cache"),
    // Store-handle accessors and preparation entry points, reshaped with the read-only handles
    // and the typed stream adapter.
    ("watcher", "as_cached", "api"),
    ("watcher", "as_dyn", "api"),
    ("indexer", "prepare_dynamic", "api"),
    ("indexer", "prepare_typed", "api"),
];

/// No public item that nothing outside its crate's tests uses, unless its documentation shows
/// it in use (a code example). A heuristic on names: a `pub` item (function, method, type,
/// trait, constant) of a library crate's `src/` counts as used when its name occurs as a whole
/// identifier in any tracked Rust source other than its own crate's tests — another crate,
/// its crate's benches or examples, or its crate's own non-test code beyond the declaring line.
/// Common names (`new`, `get`) thus always pass; the check finds entry points nobody calls.
#[test]
fn public_items_are_used_outside_tests_or_documented_with_an_example() {
    let sources = rust_sources();
    let mut problems = Vec::new();
    for (path, text) in &sources {
        let Some(krate) = path.strip_prefix("crates/").and_then(|p| p.split_once("/src/")).map(|(c, _)| c) else {
            continue;
        };
        if krate == "kstore-demo" || krate == "kstore" {
            continue;
        }
        let own = non_test_part(path, text);
        let lines: Vec<&str> = own.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = line.trim_start();
            let Some(rest) = l.strip_prefix("pub ") else { continue };
            let rest = rest.strip_prefix("async ").unwrap_or(rest);
            let rest = rest.strip_prefix("unsafe ").unwrap_or(rest);
            let Some((kind, rest)) = rest.split_once(' ') else { continue };
            if !["fn", "struct", "enum", "trait", "type", "const", "static"].contains(&kind) {
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if name.is_empty() {
                continue;
            }
            // Its doc comment (the `///` lines above it, attributes skipped) shows an example.
            let documented = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim_start())
                .take_while(|l| l.starts_with("///") || l.starts_with("#["))
                .any(|l| l.starts_with("/// ```"));
            if documented {
                continue;
            }
            let used = sources.iter().any(|(other, other_text)| {
                let same_crate = other.starts_with(&format!("crates/{krate}/"));
                // Another crate, or this crate's benches and examples: all of it; this crate's
                // sources: their non-test part.
                let whole = !same_crate || other.contains("/benches/") || other.contains("/examples/");
                let searched = if whole { other_text.as_str() } else { non_test_part(other, other_text) };
                if other == path {
                    // Its own file, without the declaring line.
                    let (before, after) = searched.split_at(searched.find(line).unwrap_or(0));
                    has_word(before, &name) || has_word(after.get(line.len()..).unwrap_or(""), &name)
                } else {
                    has_word(searched, &name)
                }
            });
            if !used && !PENDING_PUBLIC_ITEMS.iter().any(|(c, n, _)| *c == krate && *n == name) {
                problems.push(format!("{path}:{}: `{name}`", i + 1));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "public items nothing outside their crate's tests uses (remove them, make them pub(crate), or document \
         them as API with an example):\n{}",
        problems.join("\n")
    );
}
