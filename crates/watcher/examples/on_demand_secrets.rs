//! An on-demand store (`CachedStore`) for Secrets: only references (namespace, name, uid,
//! resourceVersion) are watched, from a metadata-only watch; a Secret's body is fetched on its
//! first lookup and then served from the bounded, TTL-limited cache.
//!
//! `cargo run -p kstore-watcher --example on_demand_secrets` runs it against an in-process
//! apiserver-sim; `tests/examples.rs` runs [`run`] in CI.

use std::error::Error;

use kstore_watcher::{ResourceWatcher, WatchOptions, WatchedResource};

/// What one lookup round saw.
#[derive(Debug)]
pub struct Seen {
    /// References held (one per Secret).
    pub references: usize,
    /// The `tls.crt` value of `default/tls`, base64 as stored.
    pub tls_crt: Option<String>,
    /// GETs sent to the API server so far.
    pub fetches: u64,
    /// Lookups answered from the cache so far.
    pub hits: u64,
}

/// Starts the watcher and looks the same Secret up twice: one fetch, then a cache hit.
pub async fn run(client: kube::Client) -> Result<(ResourceWatcher, Seen), Box<dyn Error>> {
    let config: WatchedResource = serde_yaml_ng::from_str(
        "{apiVersion: v1, resources: secrets, indexBy: [metadata.namespace, metadata.name], store: on-demand, cacheTTL: 5m}",
    )?;
    let watcher = ResourceWatcher::start(client, config.compile("secrets", &[])?, WatchOptions::default()).await?;
    watcher.wait_for_sync().await;
    let store = watcher.store(); // read-only: lookups, never writes
    let mut tls_crt = None;
    for _ in 0..2 {
        let found = store.as_dyn().get(&["default", "tls"]).await?;
        tls_crt = found.first().and_then(|s| s.pointer("/data/tls.crt")).and_then(|v| v.as_str().map(str::to_owned));
    }
    let cached = store.as_cached().ok_or("secrets are on-demand")?;
    let stats = cached.cache_stats();
    let seen = Seen { references: store.len(), tls_crt, fetches: stats.fetches, hits: stats.hits };
    Ok((watcher, seen))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let sim = apiserver_sim::ApiServerSim::builder()
        .objects((0..5).map(|i| {
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"namespace": "default", "name": if i == 0 { "tls".to_owned() } else { format!("other-{i}") }},
                "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}})
        }))
        .start()
        .await?;
    let (_watcher, seen) = run(sim.client()).await?;
    println!("{seen:?}");
    Ok(())
}
