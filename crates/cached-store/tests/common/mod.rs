//! Helpers shared by the integration tests: Secrets in apiserver-sim, stores over them.

#![allow(dead_code, unreachable_pub)]

use apiserver_sim::ApiServerSim;
use k8s_openapi::api::core::v1::Secret;
use kstore_cached_store::{CachedStore, CachedStoreConfig, Reference};
use kube::core::ApiResource;
use serde_json::{Value, json};
use store_types::KeyTuple;

/// The marker every test Secret's data contains; it must never show up in Debug output.
pub const SECRET_MARKER: &str = "c3VwZXItc2VjcmV0LWtleS1tYXRlcmlhbA";

/// A TLS Secret with `data_bytes` of (base64-looking) data.
pub fn secret(ns: &str, name: &str, data_bytes: usize) -> Value {
    let mut crt = String::from(SECRET_MARKER);
    while crt.len() < data_bytes {
        crt.push('A');
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": ns, "name": name, "labels": {"app": name}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": crt, "tls.key": SECRET_MARKER},
    })
}

/// Starts a simulator holding `n` Secrets `s-000..` in namespace `ns`.
pub async fn sim_with_secrets(ns: &str, n: usize, data_bytes: usize) -> ApiServerSim {
    let sim = ApiServerSim::builder()
        .objects((0..n).map(|i| secret(ns, &format!("s-{i:03}"), data_bytes)))
        .start()
        .await
        .expect("simulator starts");
    sim.requests().clear();
    sim
}

/// Config for Secrets indexed by `[namespace, name]`.
pub fn secrets_config() -> CachedStoreConfig {
    CachedStoreConfig::new(ApiResource::erase::<Secret>(&()), true, 2)
}

/// Feeds the store a reference for every Secret in the simulator (as the sim has them).
pub fn feed_from_sim(sim: &ApiServerSim, store: &CachedStore) {
    for v in sim.list("secrets", None).unwrap() {
        let m = &v["metadata"];
        let (ns, name) = (m["namespace"].as_str().unwrap(), m["name"].as_str().unwrap());
        let r = Reference::new(ns, name, m["uid"].as_str(), m["resourceVersion"].as_str()).unwrap();
        store.apply_reference(r, KeyTuple::new([ns, name])).unwrap();
    }
}

/// The resourceVersion of a sim object.
pub fn rv_of(v: &Value) -> String {
    v["metadata"]["resourceVersion"].as_str().unwrap().to_owned()
}
