//! The integration suite that runs unchanged against the embedded apiserver-sim (default) or a
//! real cluster: `cargo xtask integration [--kubeconfig PATH [--context NAME]]`, which sets
//! `KSTORE_KUBECONFIG` / `KSTORE_CONTEXT`. Against a real cluster every test works in a
//! throwaway namespace it creates and deletes, and changes state only through the Kubernetes
//! API (never through the simulator's handle), so both modes exercise the same code.

use std::time::Duration;

use apiserver_sim::ApiServerSim;
use kstore_watcher::{ResourceWatcher, WatchOptions, WatchedResource};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Where the tests run: the simulator, or a real cluster with a throwaway namespace.
struct Cluster {
    client: kube::Client,
    namespace: String,
    _sim: Option<ApiServerSim>,
    real: bool,
}

impl Cluster {
    async fn new(test: &str) -> Cluster {
        let namespace = format!("kstore-it-{test}-{}", std::process::id());
        match std::env::var("KSTORE_KUBECONFIG") {
            Ok(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("readable kubeconfig");
                let options = kube::config::KubeConfigOptions {
                    context: std::env::var("KSTORE_CONTEXT").ok(),
                    ..Default::default()
                };
                let config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.expect("usable kubeconfig");
                let client = kube::Client::try_from(config).expect("client");
                let c = Cluster { client, namespace, _sim: None, real: true };
                c.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.namespace}})).await;
                c
            }
            Err(_) => {
                let sim = ApiServerSim::start().await.expect("simulator starts");
                Cluster { client: sim.client(), namespace, _sim: Some(sim), real: false }
            }
        }
    }

    fn api(&self, kind: &str, namespaced: bool) -> Api<DynamicObject> {
        let ar = match kind {
            "Namespace" => ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
            "Service" => ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
            "Secret" => ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
            "EndpointSlice" => ApiResource::erase::<k8s_openapi::api::discovery::v1::EndpointSlice>(&()),
            other => panic!("unsupported kind {other}"),
        };
        if namespaced {
            Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        }
    }

    async fn create(&self, obj: Value) -> Value {
        let kind = obj["kind"].as_str().unwrap().to_owned();
        let namespaced = kind != "Namespace";
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        let created = self.api(&kind, namespaced).create(&PostParams::default(), &obj).await.expect("create");
        serde_json::to_value(created).unwrap()
    }

    async fn patch(&self, kind: &str, name: &str, patch: Value) -> Value {
        let p = self.api(kind, true).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
        serde_json::to_value(p).unwrap()
    }

    async fn delete(&self, kind: &str, name: &str) {
        self.api(kind, true).delete(name, &DeleteParams::default()).await.expect("delete");
    }

    /// Deletes the throwaway namespace of a real cluster.
    async fn cleanup(self) {
        if self.real {
            let _ = self.api("Namespace", false).delete(&self.namespace, &DeleteParams::default()).await;
        }
    }

    async fn watch(&self, yaml: &str) -> ResourceWatcher {
        let mut r: WatchedResource = serde_yaml_ng::from_str(yaml).unwrap();
        r.namespaces = vec![self.namespace.clone()];
        let w = ResourceWatcher::start(self.client.clone(), r.compile("it", &[]).unwrap(), WatchOptions::default())
            .await
            .expect("watcher starts");
        tokio::time::timeout(Duration::from_secs(60), w.wait_for_sync()).await.expect("initial sync");
        w
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn slice(name: &str, service: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80, "protocol": "TCP"}]
    })
}

const SLICES: &str = "{apiVersion: discovery.k8s.io/v1, resources: endpointslices, \
    indexBy: [metadata.namespace, \"metadata.labels['kubernetes.io/service-name']\"]}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slices_sync_move_and_delete_one_by_one() {
    let c = Cluster::new("slices").await;
    let ns = c.namespace.clone();
    for n in ["a", "b", "c"] {
        c.create(slice(&format!("web-{n}"), "web")).await;
    }
    let w = c.watch(SLICES).await;
    let store = w.store().as_memory().unwrap().clone();
    assert_eq!(store.get(&[&ns, "web"]).unwrap().len(), 3);

    c.delete("EndpointSlice", "web-b").await;
    eventually("one slice deleted, siblings kept", || store.get(&[&ns, "web"]).unwrap().len() == 2).await;
    c.patch("EndpointSlice", "web-c", json!({"metadata": {"labels": {"kubernetes.io/service-name": "api"}}})).await;
    eventually("moved to the api key", || store.get(&[&ns, "api"]).unwrap().len() == 1).await;
    assert_eq!(store.get(&[&ns, "web"]).unwrap().len(), 1, "no stale copy under the old key");
    let created = c.create(slice("web-d", "web")).await;
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    eventually("added", || {
        store.get_by_identity(&ns, "web-d").is_some_and(|o| store_types::KubeObject::resource_version(&*o) == Some(&rv))
    })
    .await;
    store.validate().unwrap();
    w.stop();
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_secrets_are_fetched_fresh() {
    let c = Cluster::new("secrets").await;
    let ns = c.namespace.clone();
    let secret = |v: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "type": "Opaque", "data": {"k": v}});
    c.create(secret("MQ==")).await;
    let w = c
        .watch("{apiVersion: v1, resources: secrets, indexBy: [metadata.namespace, metadata.name], store: on-demand}")
        .await;
    let store = w.store().as_dyn();
    let got = store.get(&[&ns, "creds"]).await.unwrap();
    assert_eq!(got[0].pointer("/data/k").unwrap().as_str(), Some("MQ=="));
    let patched = c.patch("Secret", "creds", json!({"data": {"k": "Mg=="}})).await;
    let rv = patched["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let cached = w.store().as_cached().unwrap().clone();
    eventually("reference updated", || {
        cached.get_references(&[&ns, "creds"]).unwrap().first().and_then(|r| r.resource_version().map(str::to_owned))
            == Some(rv.clone())
    })
    .await;
    let fresh = store.get(&[&ns, "creds"]).await.unwrap();
    assert_eq!(fresh[0].pointer("/data/k").unwrap().as_str(), Some("Mg=="));
    c.delete("Secret", "creds").await;
    eventually("reference removed", || cached.references().is_empty()).await;
    w.stop();
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_by_label_selector_and_field_selector() {
    let c = Cluster::new("services").await;
    let ns = c.namespace.clone();
    let svc = |name: &str, app: &str, ty: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"app": app}},
               "spec": {"type": ty, "ports": [{"port": 80}]}})
    };
    c.create(svc("web", "web", "ClusterIP")).await;
    c.create(svc("db", "db", "ClusterIP")).await;
    c.create(svc("legacy", "legacy", "ClusterIP")).await;
    let w = c
        .watch("{apiVersion: v1, resources: services, indexBy: [metadata.namespace, metadata.name], labelSelector: 'app in (web, db)', fieldSelector: spec.type=ClusterIP}")
        .await;
    let store = w.store().as_memory().unwrap().clone();
    assert_eq!(store.get(&[&ns]).unwrap().len(), 2);
    c.patch("Service", "db", json!({"spec": {"type": "NodePort"}})).await;
    eventually("no longer matching", || store.get(&[&ns, "db"]).unwrap().is_empty()).await;
    w.stop();
    c.cleanup().await;
}
