//! The Kubernetes API round-trip corpus (`testdata/HEAD/*.json` of kubernetes/api: one object
//! per kind, every field set), read from `../shared/k8s-api-testdata` beside the repository
//! (or `$K8S_API_TESTDATA`); never copied into the repository. Shared by the corpus tests of
//! compact-object, the indexer and the watcher (each includes this file with `#[path]`).

use std::path::PathBuf;

/// The fixtures as `(file name, text)`, sorted by name, or `None` (printed) when the corpus is
/// not there: the calling test then says so and passes.
pub(crate) fn corpus() -> Option<Vec<(String, String)>> {
    // `../shared/k8s-api-testdata` from the repository root, or from any directory above it
    // (a git worktree lives deeper than the main checkout).
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = manifest.parent().and_then(|c| c.parent()).map_or(manifest.clone(), PathBuf::from);
    let roots: Vec<PathBuf> = match std::env::var_os("K8S_API_TESTDATA") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => repo.ancestors().skip(1).map(|a| a.join("shared/k8s-api-testdata")).collect(),
    };
    let dir = roots.iter().flat_map(|r| [r.join("testdata/HEAD"), r.clone()]).find(|d| d.is_dir());
    let Some(dir) = dir else {
        println!("k8s-api-testdata not found (looked for {roots:?}): corpus tests skipped");
        return None;
    };
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_owned();
            name.ends_with(".json").then(|| (name, std::fs::read_to_string(&path).unwrap()))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 190, "{} fixtures in {}", files.len(), dir.display());
    Some(files)
}
