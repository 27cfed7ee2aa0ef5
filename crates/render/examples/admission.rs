//! An admission-style check: would the HAProxy configuration still render if this Ingress
//! were applied? The proposal is rendered over a what-if overlay of one `ResourceSet` snapshot
//! (the stores are untouched) with the demo's template in strict mode; a proposal the template
//! cannot render is denied with the template's own error (template, line, expression).
//!
//! `cargo run -p kstore-render --example admission` (an in-process apiserver-sim). The
//! function [`admit`] is what a webhook handler would call per AdmissionReview.

use std::sync::Arc;
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use apiserver_sim::generate::Cluster;
use kstore_render::{RenderError, Renderer, Undefined};
use serde_json::{Value, json};
use watcher::{ResourceSet, SetOptions, SetSnapshot, WatchConfig};

const TEMPLATE: &str = include_str!("../../kstore-demo/haproxy.cfg.j2");
const CONFIG: &str = include_str!("../../kstore-demo/demo.yaml");

/// Renders `snapshot` with `proposed` (an Ingress) applied; `Ok(lines)` admits, `Err(reason)`
/// denies.
async fn admit(renderer: &Renderer, snapshot: &SetSnapshot, proposed: &Value) -> Result<usize, String> {
    let mut overlay = snapshot.overlay();
    overlay.upsert_json("ingresses", &proposed.to_string()).map_err(|e| format!("not a valid proposal: {e}"))?;
    match renderer.render("haproxy.cfg.j2", Arc::new(overlay.build())).await {
        Ok(out) => Ok(out.lines().count()),
        Err(e @ RenderError::Template { .. }) => Err(format!("the configuration would not render: {e}")),
        Err(e) => Err(format!("could not check: {e}")),
    }
}

fn ingress(ns: &str, path: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": ns, "name": "proposed"},
        "spec": {"rules": [{"host": "proposed.example.com", "http": {"paths": [path]}}]}})
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sim =
        ApiServerSim::builder().objects(Cluster::new(1).namespaces(2).apps_per_namespace(3).build()).start().await?;
    let set = ResourceSet::start(sim.client(), &WatchConfig::from_yaml(CONFIG)?, SetOptions::default()).await?;
    tokio::time::timeout(Duration::from_secs(30), set.wait_for_sync()).await?;
    let mut renderer = Renderer::new(Undefined::Strict);
    renderer.add_template("haproxy.cfg.j2", TEMPLATE)?;

    let services = sim.list("services", None)?;
    let ns = services[0]["metadata"]["namespace"].as_str().unwrap_or_default();
    let svc = services[0]["metadata"]["name"].as_str().unwrap_or_default();
    let snapshot = set.snapshot();
    let good = ingress(
        ns,
        json!({"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": svc, "port": {"number": 80}}}}),
    );
    let bad = ingress(ns, json!({"path": "/", "pathType": "Prefix"}));
    for (what, proposal) in [("a route to an existing Service", good), ("a path without a backend", bad)] {
        match admit(&renderer, &snapshot, &proposal).await {
            Ok(lines) => println!("{what}: allowed ({lines} lines rendered)"),
            Err(reason) => println!("{what}: denied — {reason}"),
        }
    }
    set.stop();
    Ok(())
}
