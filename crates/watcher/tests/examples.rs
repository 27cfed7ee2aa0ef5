//! Runs the examples' `run` functions against apiserver-sim through a real `kube::Client`
//! (the examples' `main`s do the same with a printout).

use std::time::Duration;

use apiserver_sim::ApiServerSim;
use apiserver_sim::Verb;
use serde_json::json;

mod common;
use common::eventually;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/controller.rs"]
mod controller;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/on_demand_secrets.rs"]
mod on_demand_secrets;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/typed_store.rs"]
mod typed_store;

/// The controller resolves its Ingress's backends through kstore, follows Service and
/// EndpointSlice changes, and every resource is listed and watched by one stream only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_example_reconciles_from_one_watch_per_resource() {
    let sim = ApiServerSim::builder().objects(controller::cluster()).start().await.unwrap();
    let (ctx, task) = controller::run(sim.client()).await.unwrap();
    let seen = |ctx: &controller::Ctx| ctx.seen.lock().unwrap().get("shop/front").cloned();
    eventually("first reconcile", || {
        seen(&ctx).is_some_and(|b| b.get("web") == Some(&(true, 2)) && b.get("api") == Some(&(false, 0)))
    })
    .await;

    // A new Service and its slice: the Ingress is reconciled again, from kstore's indexes.
    sim.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "api"},
                     "spec": {"ports": [{"port": 8080}]}}))
        .unwrap();
    sim.apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                     "metadata": {"namespace": "shop", "name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
                     "endpoints": [{"addresses": ["10.0.1.1"], "conditions": {"ready": true}},
                                   {"addresses": ["10.0.1.2"], "conditions": {"ready": false}},
                                   {"addresses": ["10.0.1.3"]}]}))
        .unwrap();
    eventually("reconciled on the new backend", || seen(&ctx).is_some_and(|b| b.get("api") == Some(&(true, 2)))).await;
    let log = sim.requests();
    let resources = ["ingresses.networking.k8s.io", "services", "endpointslices.discovery.k8s.io"];
    // The Ingress watch may open after the reconciles above (its list was enough for them).
    for resource in resources {
        tokio::time::timeout(Duration::from_secs(20), log.wait_for_count(Verb::Watch, resource, 1))
            .await
            .unwrap_or_else(|_| panic!("{resource} never watched"));
    }
    task.abort();

    for resource in resources {
        assert_eq!(log.count(Verb::List, resource), 1, "{resource} listed once");
        assert_eq!(log.count(Verb::Watch, resource), 1, "{resource} watched by one stream");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_store_example_indexes_by_label() {
    let sim = ApiServerSim::builder()
        .objects((0..6).map(|i| {
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "default", "name": format!("svc-{i}"), "labels": {"app": if i < 4 { "web" } else { "db" }}}})
        }))
        .start()
        .await
        .unwrap();
    let (services, task) = typed_store::run(sim.client()).await.unwrap();
    assert_eq!(services.store().get(&["default", "web"]).unwrap().len(), 4);
    assert_eq!(services.store().get(&["default", "db"]).unwrap().len(), 2);
    assert!(services.store().list().iter().all(|s| s.metadata.managed_fields.is_none()), "the user's .modify() ran");
    sim.delete("services", Some("default"), "svc-0").unwrap();
    eventually("delete followed", || services.store().get(&["default", "web"]).unwrap().len() == 3).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_secrets_example_fetches_once() {
    let sim = ApiServerSim::builder()
        .objects((0..5).map(|i| {
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"namespace": "default", "name": if i == 0 { "tls".to_owned() } else { format!("other-{i}") }},
                "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}})
        }))
        .start()
        .await
        .unwrap();
    let (_watcher, seen) = on_demand_secrets::run(sim.client()).await.unwrap();
    assert_eq!(seen.references, 5);
    assert_eq!(seen.tls_crt.as_deref(), Some("Y2VydA=="));
    assert_eq!((seen.fetches, seen.hits), (1, 1), "one GET, then the cache");
    assert_eq!(sim.requests().count(Verb::Get, "secrets"), 1);
}
