//! A typed `MemoryStore<Service>` fed by kstore's stream adapter from the application's own
//! kube watcher (its own `watcher::Config`, backoff and `.modify()`), indexed by
//! `[namespace, app label]`.
//!
//! `cargo run -p kstore-watcher --example typed_store` runs it against an in-process
//! apiserver-sim; `tests/examples.rs` runs [`run`] in CI.

use std::error::Error;

use futures::TryStreamExt;
use indexer::Indexer;
use k8s_openapi::api::core::v1::Service;
use kstore_watcher::reflect::{Reflected, Writer, reflector};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// Starts the store and returns its read handle once the first list is in; the stream task
/// runs until the returned handle's task is aborted.
pub async fn run(client: kube::Client) -> Result<(Reflected<Service>, tokio::task::JoinHandle<()>), Box<dyn Error>> {
    let indexer = Indexer::new(["metadata.namespace", "metadata.labels.app"], [""; 0])?;
    let writer = Writer::<Service>::typed(indexer)?;
    let services = writer.reader();
    // The application's own stream: its config, its backoff, its `.modify()`.
    let stream = watcher(Api::<Service>::all(client), watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|s: &mut Service| s.metadata.managed_fields = None);
    let task = tokio::spawn(async move {
        // Every event is passed on: here nobody else consumes them.
        let _ = reflector(writer, stream).try_for_each(|_| async { Ok(()) }).await;
    });
    services.wait_until_ready().await?;
    Ok((services, task))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let sim = apiserver_sim::ApiServerSim::builder()
        .objects((0..6).map(|i| {
            serde_json::json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "default", "name": format!("svc-{i}"), "labels": {"app": if i < 4 { "web" } else { "db" }}}})
        }))
        .start()
        .await?;
    let (services, task) = run(sim.client()).await?;
    for s in services.store().get(&["default", "web"])?.iter() {
        println!("web service: {}", s.metadata.name.as_deref().unwrap_or_default());
    }
    println!("{} services, ready: {:?}", services.store().len(), services.readiness());
    task.abort();
    Ok(())
}
