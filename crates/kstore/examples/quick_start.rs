//! kstore in one screen: a `ResourceSet` over a generated cluster served by the simulator, and a
//! template-style join (Ingress → Service → EndpointSlices → TLS Secret) from one snapshot.
//!
//! `cargo run -p kstore --example quick_start --features sim`. Against a real cluster, replace
//! the simulator's client with `kube::Client::try_default().await?` (and enable a kube TLS
//! feature in your application).

use kstore::sim::ApiServerSim;
use kstore::sim::generate::Cluster;
use kstore::watcher::{SetOptions, Single};
use kstore::{ResourceSet, WatchConfig};

const CONFIG: &str = r#"
ignoreFields:
  - metadata.managedFields
watchedResources:
  ingresses:
    apiVersion: networking.k8s.io/v1
    resources: ingresses
    indexBy: [metadata.namespace, metadata.name]
  services:
    apiVersion: v1
    resources: services
    indexBy: [metadata.namespace, metadata.name]
  endpoints:
    apiVersion: discovery.k8s.io/v1
    resources: endpointslices
    indexBy: [metadata.namespace, "metadata.labels['kubernetes.io/service-name']"]
  secrets:
    apiVersion: v1
    resources: secrets
    indexBy: [metadata.namespace, metadata.name]
    store: on-demand
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim =
        ApiServerSim::builder().objects(Cluster::new(1).namespaces(2).apps_per_namespace(3).build()).start().await?;
    let joined = run(sim.client()).await?;
    for line in &joined {
        println!("{line}");
    }
    sim.shutdown().await;
    Ok(())
}

/// Watches what [`CONFIG`] names and joins every Ingress to its backend's Service, its
/// EndpointSlices and its TLS Secret; one line per Ingress.
pub(crate) async fn run(client: kube::Client) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let config = WatchConfig::from_yaml(CONFIG)?;
    let set = ResourceSet::start(client, &config, SetOptions::default()).await?;
    set.wait_for_sync().await;

    let view = set.snapshot(); // nothing changes under this view
    let text =
        |o: &kstore::CompactObject, path: &str| o.pointer(path).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let mut lines = Vec::new();
    for ing in view.list("ingresses").await?.iter() {
        let (ns, name) = (text(ing, "/metadata/namespace"), text(ing, "/metadata/name"));
        let svc = text(ing, "/spec/rules/0/http/paths/0/backend/service/name");
        let service = view.fetch("services", &[&ns, &svc]).await?.len();
        let slices = view.fetch("endpoints", &[&ns, &svc]).await?.len();
        let secret = match view.get_single("secrets", &[&ns, &text(ing, "/spec/tls/0/secretName")]).await? {
            Single::Found(s) => format!("{} bytes of tls.crt", text(&s, "/data/tls.crt").len()),
            Single::NotFound => "no TLS Secret".to_owned(),
            Single::Ambiguous(n) => format!("{n} TLS Secrets"),
        };
        lines.push(format!("{ns}/{name}: service {svc} ({service}), {slices} EndpointSlice(s), {secret}"));
    }
    set.stop();
    Ok(lines)
}
