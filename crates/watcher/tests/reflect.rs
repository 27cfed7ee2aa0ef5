//! The stream adapter (`kstore_watcher::reflect`): hand-made event streams for the exact
//! semantics (atomic relists, errors, end of stream, nameless objects, pass-through), and a
//! real `kube::Client` against apiserver-sim for typed and dynamic objects.

use std::time::Duration;

use apiserver_sim::ApiServerSim;
use futures::{StreamExt, TryStreamExt, stream};
use indexer::Indexer;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kstore_watcher::reflect::{Readiness, StoreChange, Writer, identity_of, object_ref, reflector};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as kube_watcher};
use serde_json::json;
use store_types::{Identity, Store};

mod common;
use common::eventually;

fn cm(ns: &str, name: &str, app: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some(ns.into());
    c.metadata.name = (!name.is_empty()).then(|| name.into());
    c.metadata.resource_version = Some("1".into());
    c.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
    c
}

fn by_app() -> Indexer {
    Indexer::new(["metadata.namespace", "metadata.labels.app"], [""; 0]).unwrap()
}

type Ev = Result<Event<ConfigMap>, watcher::Error>;

fn err() -> Ev {
    Err(watcher::Error::NoResourceVersion)
}

/// A relist is published whole at `InitDone`; until then readers see the previous state, and
/// objects absent from the new list disappear.
#[tokio::test]
async fn relists_are_published_whole() {
    let writer = Writer::<ConfigMap>::typed(by_app()).unwrap();
    let reader = writer.reader();
    let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
    let mut out = Box::pin(reflector(writer, rx));
    let mut step = async |ev: Ev| {
        tx.unbounded_send(ev).unwrap();
        out.next().await.unwrap()
    };
    step(Ok(Event::Init)).await.unwrap();
    step(Ok(Event::InitApply(cm("a", "one", "web")))).await.unwrap();
    step(Ok(Event::InitApply(cm("a", "two", "web")))).await.unwrap();
    assert_eq!(reader.readiness(), Readiness::Pending);
    assert!(reader.store().is_empty(), "nothing is published before InitDone");
    step(Ok(Event::InitDone)).await.unwrap();
    assert_eq!(reader.readiness(), Readiness::Ready);
    assert_eq!(reader.store().get(&["a", "web"]).unwrap().len(), 2);

    // A relist without "two": readers keep the old state until InitDone, then "two" is gone.
    step(Ok(Event::Init)).await.unwrap();
    step(Ok(Event::InitApply(cm("a", "one", "db")))).await.unwrap();
    assert_eq!(reader.store().get(&["a", "web"]).unwrap().len(), 2, "old state during the relist");
    step(Ok(Event::InitDone)).await.unwrap();
    assert!(reader.store().get(&["a", "web"]).unwrap().is_empty());
    assert_eq!(reader.store().get(&["a", "db"]).unwrap().len(), 1);
    assert_eq!(reader.store().len(), 1);
    assert!(reader.is_ready());
}

/// Errors are passed on and counted, never clear the store; an ended stream marks the store
/// `Ended` (keeping its last state); objects without a name are skipped and counted; every
/// event comes out unchanged and in order.
#[tokio::test]
async fn errors_end_and_nameless_objects() {
    let writer = Writer::<ConfigMap>::typed(by_app()).unwrap();
    let reader = writer.reader();
    let events: Vec<Ev> = vec![
        Ok(Event::Init),
        Ok(Event::InitApply(cm("a", "one", "web"))),
        Ok(Event::InitApply(cm("a", "", "web"))),
        Ok(Event::InitDone),
        err(),
        Ok(Event::Apply(cm("a", "", "web"))),
        Ok(Event::Apply(cm("a", "two", "web"))),
        err(),
        Ok(Event::Delete(cm("a", "one", "web"))),
    ];
    let n = events.len();
    let passed: Vec<Ev> = reflector(writer, stream::iter(events)).collect().await;
    assert_eq!(passed.len(), n, "every event is passed on");
    assert!(matches!(passed[1], Ok(Event::InitApply(ref c)) if c.metadata.name.as_deref() == Some("one")));
    assert_eq!(passed.iter().filter(|e| e.is_err()).count(), 2);
    assert_eq!(reader.stream_errors(), 2);
    assert_eq!(reader.skipped(), 2, "two nameless objects");
    assert_eq!(reader.readiness(), Readiness::Ended, "an ended stream is observable");
    assert!(!reader.is_ready());
    let names: Vec<_> = reader.store().list().iter().map(|c| c.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["two"], "the last state stays readable");
    assert!(reader.wait_until_ready().await.is_ok(), "it was complete once");

    // A stream that ends before its first list never becomes ready.
    let writer = Writer::<ConfigMap>::typed(by_app()).unwrap();
    let reader = writer.reader();
    let _: Vec<Ev> = reflector(writer, stream::iter(vec![Ok(Event::Init), err()])).collect().await;
    assert_eq!(reader.readiness(), Readiness::Ended);
    assert!(reader.wait_until_ready().await.is_err());
}

/// Objects whose keys cannot be extracted are not stored; an earlier copy is removed.
#[tokio::test]
async fn unkeyable_objects_are_removed_and_counted() {
    let writer = Writer::<ConfigMap>::typed(by_app()).unwrap();
    let reader = writer.reader();
    let mut unlabelled = cm("a", "one", "web");
    unlabelled.metadata.labels = None;
    let events: Vec<Ev> = vec![
        Ok(Event::Init),
        Ok(Event::InitApply(cm("a", "one", "web"))),
        Ok(Event::InitDone),
        Ok(Event::Apply(unlabelled)),
    ];
    let _: Vec<Ev> = reflector(writer, stream::iter(events)).collect().await;
    assert!(reader.store().is_empty(), "the stale copy was removed");
    assert_eq!(reader.skipped(), 1);
}

/// The change stream: one item per applied event and per relist, sent after publication.
#[tokio::test]
async fn changes_follow_publication() {
    let writer = Writer::<ConfigMap>::typed(by_app()).unwrap();
    let reader = writer.reader();
    let changes = writer.changes();
    let events: Vec<Ev> = vec![
        Ok(Event::Init),
        Ok(Event::InitApply(cm("a", "one", "web"))),
        Ok(Event::InitDone),
        Ok(Event::Apply(cm("a", "two", "web"))),
        Ok(Event::Apply(cm("a", "two", "web"))),
        Ok(Event::Delete(cm("a", "one", "web"))),
    ];
    let _: Vec<Ev> = reflector(writer, stream::iter(events)).collect().await;
    let got: Vec<StoreChange> = changes.collect().await;
    assert!(matches!(&got[0], StoreChange::Relisted(s) if s.created == 1));
    assert_eq!(got[1], StoreChange::Applied(Identity::new("a", "two")));
    assert_eq!(got[2], StoreChange::Deleted(Identity::new("a", "one")), "an unchanged apply is not a change");
    assert_eq!(got.len(), 3);
    let r: ObjectRef<ConfigMap> = got[1].object_ref(&()).unwrap();
    assert_eq!(r, ObjectRef::new("two").within("a"));
    assert_eq!(identity_of(&r), Identity::new("a", "two"));
    assert_eq!(object_ref::<ConfigMap>(&identity_of(&r), &()), r);
    assert!(reader.get_by_ref(&r).is_some());
    assert!(reader.get_by_ref(&ObjectRef::<ConfigMap>::new("one").within("a")).is_none());
}

fn service(ns: &str, name: &str, app: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name, "labels": {"app": app}},
           "spec": {"ports": [{"port": 80}]}})
}

/// Typed and dynamic stores fed from the user's own kube watcher streams (with their own
/// config and backoff) through a real client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_and_dynamic_streams_from_a_real_client() {
    let sim = ApiServerSim::builder()
        .objects((0..20).map(|i| service("default", &format!("s{i:02}"), if i % 2 == 0 { "web" } else { "db" })))
        .start()
        .await
        .unwrap();

    let typed = Writer::<Service>::typed(by_app()).unwrap();
    let services = typed.reader();
    let config = kube_watcher::Config::default().labels("app=web");
    let stream = reflector(typed, kube_watcher(Api::<Service>::all(sim.client()), config).default_backoff());
    let typed_task = tokio::spawn(stream.try_for_each(|_| async { Ok(()) }));

    let ar = ApiResource::erase::<Service>(&());
    let dynamic =
        Writer::dynamic(Indexer::new(["metadata.namespace", "metadata.name"], ["metadata.managedFields"]).unwrap())
            .unwrap();
    let all = dynamic.reader();
    let api: Api<DynamicObject> = Api::all_with(sim.client(), &ar);
    let dyn_task = tokio::spawn(
        reflector(dynamic, kube_watcher(api, kube_watcher::Config::default()).default_backoff())
            .try_for_each(|_| async { Ok(()) }),
    );

    tokio::time::timeout(Duration::from_secs(20), services.wait_until_ready()).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(20), all.wait_until_ready()).await.unwrap().unwrap();
    assert_eq!(services.store().get(&["default", "web"]).unwrap().len(), 10, "the user's label selector");
    assert!(services.store().get(&["default", "db"]).unwrap().is_empty());
    assert_eq!(all.store().len(), 20);
    let s00 = Store::get(&all, &["default", "s00"]).await.unwrap();
    assert_eq!(s00[0].pointer("/spec/ports/0/port").and_then(|p| p.as_u64()), Some(80));

    sim.apply(service("default", "new", "web")).unwrap();
    sim.delete("services", Some("default"), "s00").unwrap();
    eventually("typed store follows", || services.store().get(&["default", "web"]).unwrap().len() == 10).await;
    eventually("typed store has the new one", || services.store().get_by_identity("default", "new").is_some()).await;
    eventually("dynamic store follows", || {
        all.store().get_by_identity("default", "new").is_some()
            && all.store().get_by_identity("default", "s00").is_none()
    })
    .await;
    typed_task.abort();
    dyn_task.abort();
    let _ = typed_task.await;
    let _ = dyn_task.await;
    assert_eq!(services.readiness(), Readiness::Ended, "dropping the stream ends the store");
    assert_eq!(all.store().len(), 20, "its last state stays readable");
}
