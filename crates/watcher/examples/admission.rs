//! An admission-style check with a what-if overlay: "would the configuration still be valid
//! with this Ingress?" — answered over the watched stores with the proposal applied, without
//! touching them.
//!
//! The check is a validation over the overlay's lookups (what a renderer reads): every
//! Ingress backend names an existing Service, every TLS secret exists, and no two Ingresses
//! claim the same host. Three proposals are checked against a small cluster in apiserver-sim:
//! a good new Ingress, a bad one (duplicate host, unknown Service, missing Secret), and the
//! deletion of a Service that an Ingress still uses.
//!
//! `cargo run -p kstore-watcher --example admission`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apiserver_sim::ApiServerSim;
use kstore_watcher::{ResourceSet, SetOptions, SetOverlay, Single, WatchConfig};
use serde_json::{Value, json};

const CONFIG: &str = r#"
ignoreFields: [metadata.managedFields]
watchedResources:
  ingresses: {apiVersion: networking.k8s.io/v1, resources: ingresses, indexBy: [metadata.namespace, metadata.name]}
  services:  {apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name]}
  secrets:   {apiVersion: v1, resources: secrets, indexBy: [metadata.namespace, metadata.name], store: on-demand}
"#;

/// An Ingress with one host routed to one Service, with TLS from `secret` when given.
pub(crate) fn ingress(ns: &str, name: &str, host: &str, service: &str, secret: Option<&str>) -> Value {
    let mut spec = json!({"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]});
    if let Some(secret) = secret {
        spec["tls"] = json!([{"hosts": [host], "secretName": secret}]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"namespace": ns, "name": name}, "spec": spec})
}

/// The cluster the checks run against.
pub(crate) fn cluster() -> Vec<Value> {
    vec![
        ingress("shop", "web", "web.example", "web", Some("web-tls")),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "api"},
            "spec": {"ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "shop", "name": "web-tls"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}}),
    ]
}

fn str_at<'a>(o: &'a compact_object::CompactObject, pointer: &str) -> Option<&'a str> {
    o.pointer(pointer).and_then(|n| n.as_str())
}

/// Problems of the configuration seen through `view` (empty: valid).
pub(crate) async fn validate(view: &SetOverlay) -> Result<Vec<String>, kstore_watcher::LookupError> {
    let mut problems = Vec::new();
    let mut hosts: BTreeMap<String, String> = BTreeMap::new();
    for ing in view.list("ingresses").await?.iter() {
        let ns = str_at(ing, "/metadata/namespace").unwrap_or_default();
        let who = format!("ingress {ns}/{}", str_at(ing, "/metadata/name").unwrap_or_default());
        for r in 0.. {
            let Some(rule) = ing.pointer(&format!("/spec/rules/{r}")) else { break };
            if let Some(host) = rule.pointer("/host").and_then(|h| h.as_str())
                && let Some(first) = hosts.insert(host.to_owned(), who.clone())
            {
                problems.push(format!("{who}: host {host} is already served by {first}"));
            }
            for p in 0.. {
                let Some(svc) = rule.pointer(&format!("/http/paths/{p}/backend/service/name")).and_then(|n| n.as_str())
                else {
                    break;
                };
                if !matches!(view.get_single("services", &[ns, svc]).await?, Single::Found(_)) {
                    problems.push(format!("{who}: backend service {ns}/{svc} does not exist"));
                }
            }
        }
        for t in 0.. {
            let Some(secret) = str_at(ing, &format!("/spec/tls/{t}/secretName")) else { break };
            match view.get_single("secrets", &[ns, secret]).await? {
                Single::Found(s) if s.pointer("/data/tls.crt").is_some() => {}
                Single::Found(_) => problems.push(format!("{who}: TLS secret {ns}/{secret} has no certificate")),
                _ => problems.push(format!("{who}: TLS secret {ns}/{secret} does not exist")),
            }
        }
    }
    Ok(problems)
}

/// One admission decision.
#[derive(Debug)]
pub(crate) struct Verdict {
    /// What was proposed.
    pub(crate) proposal: String,
    /// Why it is refused (empty: allowed).
    pub(crate) problems: Vec<String>,
    /// Time to build the overlay and validate.
    pub(crate) took: Duration,
}

/// A proposed change.
enum Proposal {
    /// Add or modify an Ingress (its JSON, as an admission request carries it).
    Upsert(Value),
    /// Delete a Service.
    DeleteService(&'static str, &'static str),
}

/// Checks the three proposals against the watched cluster behind `client`.
pub(crate) async fn run(client: kube::Client) -> Result<Vec<Verdict>, Box<dyn std::error::Error>> {
    let set = ResourceSet::start(client, &WatchConfig::from_yaml(CONFIG)?, SetOptions::default()).await?;
    tokio::time::timeout(Duration::from_secs(20), set.wait_for_sync()).await?;
    let mut verdicts = Vec::new();

    let proposals = [
        ("add ingress shop/shop", Proposal::Upsert(ingress("shop", "shop", "shop.example", "api", Some("web-tls")))),
        (
            "add ingress shop/clash",
            Proposal::Upsert(ingress("shop", "clash", "web.example", "nope", Some("missing-tls"))),
        ),
        ("delete service shop/web", Proposal::DeleteService("shop", "web")),
    ];
    for (proposal, change) in proposals {
        let start = Instant::now();
        let mut builder = set.snapshot().overlay();
        match change {
            Proposal::Upsert(ingress) => builder.upsert_json("ingresses", &ingress.to_string())?,
            Proposal::DeleteService(ns, name) => builder.delete("services", ns, name)?,
        };
        let view = builder.build();
        let problems = validate(&view).await?;
        verdicts.push(Verdict { proposal: proposal.to_owned(), problems, took: start.elapsed() });
    }
    set.stop();
    Ok(verdicts)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = ApiServerSim::builder().objects(cluster()).start().await?;
    for v in run(sim.client()).await? {
        let verdict = if v.problems.is_empty() { "allowed" } else { "DENIED" };
        println!("{:<26} {verdict:<8} ({:.0?})", v.proposal, v.took);
        for p in &v.problems {
            println!("    - {p}");
        }
    }
    Ok(())
}
