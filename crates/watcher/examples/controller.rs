//! A kube `Controller<Ingress>` whose reconciler looks up each Ingress's backend Services and
//! their EndpointSlices in kstore indexes. Every resource is watched exactly once: the
//! Services and EndpointSlices streams feed kstore's stores through the adapter *and* (passed
//! on) trigger the controller (`watches_stream`); the Ingress stream feeds kube's own reflector
//! for the controller (`for_stream`).
//!
//! `cargo run -p kstore-watcher --example controller` runs it against an in-process
//! apiserver-sim; `tests/examples.rs` runs [`run`] in CI and checks in the simulator's request
//! log that nothing is listed or watched twice.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use indexer::Indexer;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kstore_watcher::reflect::{Reflected, Writer, reflector};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self as kube_reflector, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

/// What the reconciler found for one Ingress: per backend Service, whether it exists and how
/// many ready endpoints its slices have.
pub type Backends = BTreeMap<String, (bool, usize)>;

/// The reconciler's context: the kstore indexes and where results go (for the demo and tests).
pub struct Ctx {
    /// Services by `[namespace, name]`.
    pub services: Reflected<Service>,
    /// EndpointSlices by `[namespace, kubernetes.io/service-name label]`.
    pub slices: Reflected<EndpointSlice>,
    /// The last result per Ingress (`namespace/name`).
    pub seen: Mutex<BTreeMap<String, Backends>>,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A kstore lookup failed (for example a wrong number of keys).
    #[error(transparent)]
    Store(#[from] store_types::StoreError),
}

fn backend_services(ing: &Ingress) -> Vec<String> {
    let spec = ing.spec.as_ref();
    let default =
        spec.and_then(|s| s.default_backend.as_ref()).and_then(|b| b.service.as_ref()).map(|s| s.name.clone());
    let rules = spec.and_then(|s| s.rules.as_ref()).into_iter().flatten();
    let paths = rules.filter_map(|r| r.http.as_ref()).flat_map(|h| h.paths.iter());
    let mut names: Vec<String> =
        default.into_iter().chain(paths.filter_map(|p| p.backend.service.as_ref().map(|s| s.name.clone()))).collect();
    names.sort();
    names.dedup();
    names
}

async fn reconcile(ing: Arc<Ingress>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = ing.namespace().unwrap_or_default();
    let mut backends = Backends::new();
    for svc in backend_services(&ing) {
        let exists = !ctx.services.store().get(&[&ns, &svc])?.is_empty();
        let ready: usize = ctx
            .slices
            .store()
            .get(&[&ns, &svc])?
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .count();
        backends.insert(svc, (exists, ready));
    }
    ctx.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(format!("{ns}/{}", ing.name_any()), backends);
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Ingress>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(5))
}

/// The Ingresses of `namespace` whose backends include `service`.
fn ingresses_using(
    ingresses: &kube_reflector::Store<Ingress>,
    namespace: &str,
    service: &str,
) -> Vec<ObjectRef<Ingress>> {
    ingresses
        .state()
        .iter()
        .filter(|i| i.namespace().as_deref() == Some(namespace) && backend_services(i).iter().any(|s| s == service))
        .map(|i| ObjectRef::from_obj(&**i))
        .collect()
}

/// Runs the controller until the returned task is aborted; returns the context to inspect.
pub async fn run(client: kube::Client) -> Result<(Arc<Ctx>, tokio::task::JoinHandle<()>), Box<dyn Error>> {
    // kstore indexes, fed from one watch each; the adapter passes the events on.
    let services = Writer::<Service>::typed(Indexer::new(["metadata.namespace", "metadata.name"], [""; 0])?)?;
    let slices = Writer::<EndpointSlice>::typed(Indexer::new(
        ["metadata.namespace", "metadata.labels['kubernetes.io/service-name']"],
        [""; 0],
    )?)?;
    let ctx = Arc::new(Ctx { services: services.reader(), slices: slices.reader(), seen: Mutex::new(BTreeMap::new()) });
    let service_events = reflector(services, watcher(Api::<Service>::all(client.clone()), Default::default()))
        .default_backoff()
        .applied_objects();
    let slice_events = reflector(slices, watcher(Api::<EndpointSlice>::all(client.clone()), Default::default()))
        .default_backoff()
        .applied_objects();

    // The controller's own Ingress cache (kube's reflector), from the one Ingress watch.
    let (ingresses, ingress_writer) = kube_reflector::store::<Ingress>();
    let ingress_events = watcher(Api::<Ingress>::all(client), Default::default())
        .default_backoff()
        .reflect(ingress_writer)
        .applied_objects();

    let (by_svc, by_slice) = (ingresses.clone(), ingresses.clone());
    let controller = Controller::for_stream(ingress_events, ingresses)
        .watches_stream(service_events, move |svc: Service| {
            ingresses_using(&by_svc, &svc.namespace().unwrap_or_default(), &svc.name_any())
        })
        .watches_stream(slice_events, move |slice: EndpointSlice| {
            let service = slice.labels().get("kubernetes.io/service-name").cloned().unwrap_or_default();
            ingresses_using(&by_slice, &slice.namespace().unwrap_or_default(), &service)
        })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    ctx.services.wait_until_ready().await?;
    ctx.slices.wait_until_ready().await?;
    Ok((ctx, task))
}

/// A small cluster: an Ingress with two backends, one Service with a slice of two endpoints.
pub fn cluster() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"namespace": "shop", "name": "front"},
               "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
                        "rules": [{"host": "shop.example", "http": {"paths": [{"path": "/api", "pathType": "Prefix",
                            "backend": {"service": {"name": "api", "port": {"number": 8080}}}}]}}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "web"},
               "spec": {"ports": [{"port": 80}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
               "metadata": {"namespace": "shop", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
               "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                             {"addresses": ["10.0.0.2"], "conditions": {"ready": true}}]}),
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let sim = apiserver_sim::ApiServerSim::builder().objects(cluster()).start().await?;
    let (ctx, task) = run(sim.client()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{:?}", ctx.seen.lock().unwrap_or_else(|e| e.into_inner()));
    task.abort();
    Ok(())
}
