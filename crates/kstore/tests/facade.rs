//! The facade end to end: `examples/quick_start.rs` against apiserver-sim through a real
//! `kube::Client`, using only `kstore::…` paths.

#[allow(dead_code)] // its `main` is the example's, not the test's
#[path = "../examples/quick_start.rs"]
mod quick_start;

use kstore::sim::ApiServerSim;
use kstore::sim::generate::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_joins_every_ingress_through_the_facade() {
    let cluster = Cluster::new(1).namespaces(2).apps_per_namespace(3);
    let sim = ApiServerSim::builder().objects(cluster.build()).start().await.unwrap();
    let lines = quick_start::run(sim.client()).await.unwrap();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    for line in &lines {
        // Every generated Ingress has its Service, at least one EndpointSlice and a TLS Secret,
        // fetched on demand through the CachedStore.
        assert!(line.contains("(1), "), "{line}");
        assert!(!line.contains(" 0 EndpointSlice"), "{line}");
        assert!(line.contains("bytes of tls.crt") && !line.contains(" 0 bytes"), "{line}");
    }
    sim.shutdown().await;
}
