//! What-if overlays across a ResourceSet, against apiserver-sim through a real kube::Client:
//! proposed objects are prepared and keyed as the watcher would, the overlay answers like the
//! stores would after the same changes reached them through the watch, and the stores are
//! untouched.

use std::time::Duration;

use apiserver_sim::ApiServerSim;
use compact_object::CompactObject;
use kstore_watcher::{LookupError, ProposalError, ResourceSet, SetOptions, Single, WatchConfig};
use serde_json::{Value, json};
use store_types::ObjectKey;

const CONFIG: &str = r#"
ignoreFields: [metadata.managedFields]
watchedResources:
  ingresses:
    apiVersion: networking.k8s.io/v1
    resources: ingresses
    indexBy: [metadata.namespace, metadata.name]
  services:
    apiVersion: v1
    resources: services
    indexBy: [metadata.namespace, "metadata.labels['app']"]
    fieldSelector: spec.type=ClusterIP
  secrets:
    apiVersion: v1
    resources: secrets
    indexBy: [metadata.namespace, metadata.name]
    store: on-demand
"#;

fn ingress(ns: &str, name: &str, host: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": ns, "name": name,
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "spec": {"rules": [{"host": host}]}})
}

fn service(ns: &str, name: &str, app: &str, ty: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name, "labels": {"app": app}},
        "spec": {"type": ty, "ports": [{"port": 80.0}]}})
}

fn secret(ns: &str, name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": ns, "name": name},
        "data": {"tls.crt": data}})
}

fn names(objects: &[std::sync::Arc<CompactObject>]) -> Vec<String> {
    objects.iter().map(|o| o.identity_key().map(|k| k.to_string()).unwrap_or_default()).collect()
}

trait IdentityKey {
    fn identity_key(&self) -> Option<ObjectKey>;
}
impl IdentityKey for CompactObject {
    fn identity_key(&self) -> Option<ObjectKey> {
        store_types::KubeObject::identity(self).map(|id| id.key())
    }
}

async fn start() -> (ApiServerSim, ResourceSet) {
    let sim = ApiServerSim::builder()
        .objects([
            ingress("a", "web", "web.example"),
            ingress("a", "old", "old.example"),
            ingress("b", "api", "api.example"),
            service("a", "web", "web", "ClusterIP"),
            service("a", "db", "db", "ClusterIP"),
            secret("a", "web-tls", "V0VC"),
            secret("a", "old-tls", "T0xE"),
        ])
        .start()
        .await
        .unwrap();
    let config = WatchConfig::from_yaml(CONFIG).unwrap();
    let options = SetOptions { debounce: Some(Duration::from_millis(10)), ..Default::default() };
    let set = ResourceSet::start(sim.client(), &config, options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), set.wait_for_sync()).await.expect("initial sync");
    (sim, set)
}

/// The proposal used by the tests: a new Ingress (as an admission request's JSON), a modified
/// Service that moves to other keys, a Service the field selector excludes, a deleted Ingress,
/// a deletion of an absent identity, a new Secret of an on-demand store and a deleted one.
fn propose(set: &ResourceSet) -> kstore_watcher::SetOverlay {
    let mut p = set.snapshot().overlay();
    p.upsert_json("ingresses", &ingress("a", "new", "new.example").to_string()).unwrap();
    p.upsert("services", CompactObject::from_value(&service("a", "web", "frontend", "ClusterIP")).unwrap()).unwrap();
    p.upsert("services", CompactObject::from_value(&service("a", "db", "db", "NodePort")).unwrap()).unwrap();
    p.delete("ingresses", "a", "old").unwrap();
    p.delete("ingresses", "a", "never-existed").unwrap();
    p.upsert_json("secrets", &secret("a", "new-tls", "TkVX").to_string()).unwrap();
    p.delete("secrets", "a", "old-tls").unwrap();
    p.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_answers_as_the_stores_would_after_the_same_changes() {
    let (sim, set) = start().await;
    let overlay = propose(&set);

    // Ingresses: added, deleted; the proposal's managedFields were removed (ignoreFields).
    assert_eq!(names(&overlay.list("ingresses").await.unwrap()), ["a/new", "a/web", "b/api"]);
    let Single::Found(new) = overlay.get_single("ingresses", &["a", "new"]).await.unwrap() else { panic!() };
    assert!(new.pointer("/metadata/managedFields").is_none(), "ignoreFields applied to the proposal");
    assert_eq!(new.pointer("/spec/rules/0/host").and_then(|h| h.as_str()), Some("new.example"));
    let s = overlay.summary("ingresses").unwrap();
    assert_eq!((s.changes.created, s.changes.modified, s.changes.deleted), (1, 0, 1));
    assert_eq!(s.changes.absent_deletions, [ObjectKey::new("a", "never-existed")]);

    // Services: `web` moved to the `frontend` key; `db` excluded by the field selector.
    assert_eq!(names(&overlay.fetch("services", &["a", "frontend"]).await.unwrap()), ["a/web"]);
    assert!(overlay.fetch("services", &["a", "web"]).await.unwrap().is_empty());
    assert!(overlay.fetch("services", &["a", "db"]).await.unwrap().is_empty());
    assert_eq!(overlay.summary("services").unwrap().excluded, [ObjectKey::new("a", "db")]);
    assert_eq!(overlay.len("services").unwrap(), 1);

    // Secrets (on demand): the proposed one from the overlay, the rest fetched.
    assert_eq!(names(&overlay.list("secrets").await.unwrap()), ["a/new-tls", "a/web-tls"]);
    let Single::Found(web) = overlay.get_single("secrets", &["a", "web-tls"]).await.unwrap() else { panic!() };
    assert_eq!(web.pointer("/data/tls.crt").and_then(|d| d.as_str()), Some("V0VC"), "fetched from the API");
    assert!(matches!(overlay.get_single("secrets", &["a", "old-tls"]).await.unwrap(), Single::NotFound));
    assert_eq!(overlay.len("secrets").unwrap(), 2);

    // The stores are untouched.
    let now = set.snapshot();
    assert_eq!(names(&now.list("ingresses").await.unwrap()), ["a/old", "a/web", "b/api"]);
    assert_eq!(names(&now.fetch("services", &["a"]).await.unwrap()), ["a/db", "a/web"]);
    assert_eq!(now.len("secrets").unwrap(), 2);

    // The same changes made for real reach the stores through the watch; the stores then
    // answer what the overlay answered.
    sim.apply(ingress("a", "new", "new.example")).unwrap();
    sim.apply(service("a", "web", "frontend", "ClusterIP")).unwrap();
    sim.apply(service("a", "db", "db", "NodePort")).unwrap();
    sim.delete("ingresses", Some("a"), "old").unwrap();
    sim.create(secret("a", "new-tls", "TkVX")).unwrap();
    sim.delete("secrets", Some("a"), "old-tls").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let view = set.snapshot();
        let same = names(&view.list("ingresses").await.unwrap()) == ["a/new", "a/web", "b/api"]
            && view.len("services").unwrap() == 1
            && view.len("secrets").unwrap() == 2;
        if same {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "watch did not converge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let view = set.snapshot();
    for (resource, keys) in
        [("ingresses", vec!["a"]), ("services", vec!["a"]), ("services", vec!["a", "frontend"]), ("secrets", vec!["a"])]
    {
        assert_eq!(
            names(&view.fetch(resource, &keys).await.unwrap()),
            names(&overlay.fetch(resource, &keys).await.unwrap()),
            "{resource} {keys:?}"
        );
    }
    // …and the overlay still shows its own base plus the proposal, not the new state.
    assert_eq!(overlay.summary("ingresses").unwrap().changes.deleted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_proposals_are_named_errors() {
    let (_sim, set) = start().await;
    let mut p = set.snapshot().overlay();
    // A Service without the `app` label: its keys cannot be extracted.
    let mut unlabeled = service("a", "nolabel", "x", "ClusterIP");
    unlabeled["metadata"].as_object_mut().unwrap().remove("labels");
    let e = p.upsert_json("services", &unlabeled.to_string()).err().expect("key extraction fails");
    assert!(matches!(&e, ProposalError::Keys { object, .. } if object == &ObjectKey::new("a", "nolabel")), "{e:?}");
    assert!(e.to_string().contains("a/nolabel"), "{e}");
    let nameless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "a"}});
    assert!(matches!(p.upsert_json("services", &nameless.to_string()), Err(ProposalError::MissingName { .. })));
    assert!(matches!(p.upsert_json("services", "{\"metadata\": "), Err(ProposalError::Decode { .. })));
    assert!(matches!(p.upsert_json("services", "[1, 2]"), Err(ProposalError::MissingName { .. })));
    assert!(matches!(p.delete("nothing", "a", "b"), Err(ProposalError::UnknownResource { .. })));
    // Rejected proposals change nothing.
    let overlay = p.build();
    assert_eq!(overlay.len("services").unwrap(), 2);
    assert!(matches!(overlay.list("nothing").await, Err(LookupError::UnknownResource { .. })));
    assert!(matches!(overlay.fetch("ingresses", &["a", "b", "c"]).await, Err(LookupError::Store { .. })));
}

#[path = "../examples/admission.rs"]
#[allow(dead_code, missing_docs)]
mod admission;

/// The admission example, run: the good proposal is allowed, the bad ones are denied with
/// their reasons, and the cluster is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_example_allows_the_good_proposal_and_denies_the_bad_ones() {
    let sim = ApiServerSim::builder().objects(admission::cluster()).start().await.unwrap();
    let verdicts = admission::run(sim.client()).await.unwrap();
    let problems: Vec<(&str, &[String])> = verdicts.iter().map(|v| (v.proposal.as_str(), &v.problems[..])).collect();
    assert_eq!(problems[0], ("add ingress shop/shop", &[][..]));
    assert_eq!(
        problems[1].1,
        [
            "ingress shop/clash: backend service shop/nope does not exist",
            "ingress shop/clash: TLS secret shop/missing-tls does not exist",
            "ingress shop/web: host web.example is already served by ingress shop/clash",
        ]
        .map(String::from)
    );
    assert_eq!(problems[2].1, ["ingress shop/web: backend service shop/web does not exist".to_string()]);
    assert_eq!(sim.count("ingresses").unwrap(), 1);
}

/// A resource watched in some namespaces only: a proposal elsewhere would not be in the store,
/// so it is excluded (and removes that identity), never added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_outside_the_watched_namespaces_are_excluded() {
    let sim = ApiServerSim::builder().objects([ingress("a", "web", "web.example")]).start().await.unwrap();
    let config = WatchConfig::from_yaml(
        "watchedResources:\n  ingresses: {apiVersion: networking.k8s.io/v1, resources: ingresses, \
         indexBy: [metadata.namespace, metadata.name], namespaces: [a]}",
    )
    .unwrap();
    let set = ResourceSet::start(sim.client(), &config, SetOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), set.wait_for_sync()).await.unwrap();
    let mut p = set.snapshot().overlay();
    p.upsert_json("ingresses", &ingress("b", "other", "other.example").to_string()).unwrap();
    p.upsert_json("ingresses", &ingress("a", "new", "new.example").to_string()).unwrap();
    let overlay = p.build();
    assert_eq!(names(&overlay.list("ingresses").await.unwrap()), ["a/new", "a/web"]);
    let s = overlay.summary("ingresses").unwrap();
    assert_eq!(s.excluded, [ObjectKey::new("b", "other")]);
    assert_eq!(s.changes.absent_deletions, [ObjectKey::new("b", "other")]);
}
