//! A `ResourceSet` over apiserver-sim (through a real `kube::Client`), rendered with the demo's
//! HAProxy template: full stores and an on-demand Secret store fetched as the template asks.

use std::sync::Arc;
use std::time::Duration;

use apiserver_sim::generate::Cluster;
use apiserver_sim::{ApiServerSim, Verb};
use kstore_render::{RenderError, Renderer, Undefined};
use serde_json::json;
use watcher::{ResourceSet, SetOptions, WatchConfig};

const TEMPLATE: &str = include_str!("../../kstore-demo/haproxy.cfg.j2");
const CONFIG: &str = include_str!("../../kstore-demo/demo.yaml");

async fn start() -> (ApiServerSim, ResourceSet, Renderer) {
    let sim = ApiServerSim::builder()
        .objects(Cluster::new(7).namespaces(2).apps_per_namespace(3).build())
        .start()
        .await
        .unwrap();
    let config = WatchConfig::from_yaml(CONFIG).unwrap();
    let set = ResourceSet::start(sim.client(), &config, SetOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), set.wait_for_sync()).await.expect("synced");
    let mut renderer = Renderer::new(Undefined::Strict);
    renderer.add_template("haproxy.cfg.j2", TEMPLATE).unwrap();
    (sim, set, renderer)
}

fn secret_gets(sim: &ApiServerSim) -> usize {
    sim.requests().count(Verb::Get, "secrets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_the_demo_template_from_a_resource_set() {
    let (sim, set, renderer) = start().await;
    let ingresses = sim.list("ingresses", None).unwrap();
    let services = sim.list("services", None).unwrap();
    let slices = sim.list("endpointslices", None).unwrap();
    assert_eq!(ingresses.len(), 6);
    assert_eq!(secret_gets(&sim), 0, "on-demand secrets are not fetched before a template asks");

    // One Secret read: exactly one fetch, when the template reads it.
    let ns = ingresses[0]["metadata"]["namespace"].as_str().unwrap();
    let secret = ingresses[0]["spec"]["tls"][0]["secretName"].as_str().unwrap();
    let mut one = renderer.clone();
    one.add_template("one.j2", format!("{{{{ resources.secrets.get_single('{ns}', '{secret}').type }}}}")).unwrap();
    assert_eq!(one.render("one.j2", Arc::new(set.snapshot())).await.unwrap(), "kubernetes.io/tls");
    assert_eq!(secret_gets(&sim), 1, "only the Secret the template read was fetched");

    let out = renderer.render("haproxy.cfg.j2", Arc::new(set.snapshot())).await.unwrap();

    // A frontend rule per Ingress host and path, to the Service's backend.
    let mut paths = 0;
    for ing in &ingresses {
        let ns = ing["metadata"]["namespace"].as_str().unwrap();
        for rule in ing["spec"]["rules"].as_array().unwrap() {
            for p in rule["http"]["paths"].as_array().unwrap() {
                paths += 1;
                let svc = p["backend"]["service"]["name"].as_str().unwrap();
                let host = rule["host"].as_str().unwrap();
                let needle = format!("use_backend be_{ns}_{svc} if {{ hdr(host) -i {host} }}");
                assert!(out.contains(&needle), "{needle}");
            }
        }
    }
    assert_eq!(out.matches("use_backend ").count(), paths);
    // A backend per Service with a server per endpoint of its EndpointSlices.
    assert_eq!(out.matches("\nbackend be_").count(), services.len() + 1);
    let endpoints: usize = slices.iter().map(|s| s["endpoints"].as_array().unwrap().len()).sum();
    assert_eq!(out.matches("\n    server ").count(), endpoints);
    // TLS from the Secrets, fetched on demand once each, then served from the cache.
    assert_eq!(out.matches("[kubernetes.io/tls, ").count(), ingresses.len());
    assert!(!out.contains("missing TLS secret"));
    assert_eq!(secret_gets(&sim), ingresses.len(), "each Secret fetched once (one was cached before)");
    let again = renderer.render("haproxy.cfg.j2", Arc::new(set.snapshot())).await.unwrap();
    assert_eq!(again, out);
    assert_eq!(secret_gets(&sim), ingresses.len(), "the second render is served from the cache");
    set.stop();
}

#[tokio::test]
async fn renders_on_a_current_thread_runtime_and_follows_changes() {
    let (sim, set, mut renderer) = start().await;
    let ing = &sim.list("ingresses", None).unwrap()[0];
    let (ns, name) = (ing["metadata"]["namespace"].as_str().unwrap(), ing["metadata"]["name"].as_str().unwrap());
    let before = renderer.render("haproxy.cfg.j2", Arc::new(set.snapshot())).await.unwrap();
    assert!(!before.contains("renamed.example"));

    // A changed host and a TLS entry naming a Secret that does not exist.
    let mut spec = ing["spec"].clone();
    spec["rules"][0]["host"] = json!("renamed.example");
    spec["tls"].as_array_mut().unwrap().push(json!({"hosts": ["renamed.example"], "secretName": "absent"}));
    sim.patch("ingresses", Some(ns), name, &json!({"spec": spec})).unwrap();
    let after = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let out = renderer.render("haproxy.cfg.j2", Arc::new(set.snapshot())).await.unwrap();
            if out.contains("renamed.example") {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the change reaches the render");
    assert!(after.contains(&format!("missing TLS secret {ns}/absent for renamed.example")));

    // A lookup error inside the template names the template and line.
    renderer.add_template("bad.j2", "ok\n{{ resources.secrets.fetch('a', 'b', 'c') }}").unwrap();
    let err = renderer.render("bad.j2", Arc::new(set.snapshot())).await.unwrap_err();
    assert!(matches!(&err, RenderError::Template { template, line: Some(2), .. } if template == "bad.j2"), "{err:?}");
    set.stop();
}

/// An admission-style check: the same template renders over a what-if overlay with a proposed
/// Ingress (the base snapshot and the store are untouched), and a proposal the template cannot
/// render (strict mode: a path without a backend) is reported as a render error naming the
/// template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_a_what_if_overlay_and_reports_a_proposal_that_breaks_the_render() {
    let (sim, set, renderer) = start().await;
    let ingresses = sim.list("ingresses", None).unwrap();
    let ns = ingresses[0]["metadata"]["namespace"].as_str().unwrap();
    let svc = ingresses[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"].as_str().unwrap();
    let secret = ingresses[0]["spec"]["tls"][0]["secretName"].as_str().unwrap();
    let proposal = |path: serde_json::Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": ns, "name": "proposed"},
            "spec": {"tls": [{"hosts": ["proposed.example.com"], "secretName": secret}],
                "rules": [{"host": "proposed.example.com", "http": {"paths": [path]}}]}})
        .to_string()
    };
    let snapshot = set.snapshot();
    let base = renderer.render("haproxy.cfg.j2", Arc::new(snapshot.clone())).await.unwrap();
    assert!(!base.contains("proposed.example.com"));

    let mut good = snapshot.overlay();
    good.upsert_json(
        "ingresses",
        &proposal(
            json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 80}}}}),
        ),
    )
    .unwrap();
    let out = renderer.render("haproxy.cfg.j2", Arc::new(good.build())).await.unwrap();
    let needle = format!("use_backend be_{ns}_{svc} if {{ hdr(host) -i proposed.example.com }}");
    assert!(out.contains(&needle), "the proposed Ingress is rendered: {needle}");
    assert_eq!(out.matches("use_backend ").count(), base.matches("use_backend ").count() + 1);

    let mut bad = snapshot.overlay();
    bad.upsert_json("ingresses", &proposal(json!({"path": "/", "pathType": "Prefix"}))).unwrap();
    match renderer.render("haproxy.cfg.j2", Arc::new(bad.build())).await {
        Err(RenderError::Template { template, .. }) => assert_eq!(template, "haproxy.cfg.j2"),
        other => panic!("a path without a backend must fail the strict render, got {other:?}"),
    }
    // Neither overlay touched the store: the base renders as before.
    assert_eq!(renderer.render("haproxy.cfg.j2", Arc::new(set.snapshot())).await.unwrap(), base);
    set.stop();
}
