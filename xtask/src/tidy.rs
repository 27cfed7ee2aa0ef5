//! Repository checks, rust-analyzer "tidy" style: they run as ordinary tests.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::root;

/// kstore crates by layer: a crate may depend (normal or build dependencies) only on crates of
/// a strictly lower layer. `apiserver-sim` stands apart: it depends on no kstore crate, and no
/// library crate depends on it outside dev-dependencies.
const LAYERS: &[(&str, u32)] = &[
    ("kstore-types", 0),
    ("kstore-heap-meter", 0),
    ("kstore-compact-object", 1),
    ("kstore-indexer", 2),
    ("kstore-memory-store", 3),
    ("kstore-cached-store", 4),
    ("kstore-watcher", 5),
    ("kstore-demo", 6),
];

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
                // Only the demo embeds the simulator; libraries use it in dev-dependencies.
                (Some(_), None) => dep_name == "kstore-apiserver-sim" && name == "kstore-demo",
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
    for p in meta["packages"].as_array().into_iter().flatten() {
        let manifest = str_of(p, "manifest_path");
        if !manifest.starts_with(root().to_str().unwrap()) {
            continue;
        }
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
    for p in meta["packages"].as_array().into_iter().flatten() {
        let manifest = str_of(p, "manifest_path");
        if !manifest.starts_with(root().to_str().unwrap()) || manifest.ends_with("/fuzz/Cargo.toml") {
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
    for p in meta["packages"].as_array().into_iter().flatten() {
        let name = str_of(p, "name");
        if !str_of(p, "manifest_path").starts_with(root().to_str().unwrap()) || APPLICATIONS.contains(&name) {
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
