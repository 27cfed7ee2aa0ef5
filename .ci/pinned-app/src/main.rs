//! A controller's `main` in miniature: compiles only if kstore leaves the Kubernetes version and
//! the TLS stack to the application.

use k8s_openapi::api::core::v1::Secret;

fn main() {
    let config = kstore::WatchConfig::from_yaml(
        "watchedResources:\n  secrets:\n    apiVersion: v1\n    resources: secrets\n    indexBy: [metadata.namespace, metadata.name]\n    store: on-demand\n",
    )
    .expect("valid configuration");
    let secret = Secret::default();
    println!("{} resource(s); {:?}", config.watched_resources.len(), secret.metadata.name);
}
