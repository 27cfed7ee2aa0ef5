//! Conformance: drive the simulator only through kube (and kubectl), as real clients would.

mod common;

use std::collections::BTreeSet;

use common::{Probe, Seen, configmap, sim_with_widgets, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kstore_apiserver_sim::generate::{Cluster, Kind};
use kstore_apiserver_sim::{ApiServerSim, ResourceDef, Scope, Verb};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, VersionMatch, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::discovery::{ApiResource, Discovery, Scope as KubeScope};
use kube::runtime::watcher;
use kube::{Error as KubeError, ResourceExt};
use serde_json::{Value, json};

fn cm_resource() -> ApiResource {
    ApiResource::erase::<ConfigMap>(&())
}

#[tokio::test]
async fn dynamic_api_paged_list_get_create_update_delete() {
    let sim = ApiServerSim::start().await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client(), "team", &cm_resource());
    for i in 0..7 {
        let obj: DynamicObject =
            serde_json::from_value(configmap("team", &format!("cm-{i}"), json!({"i": i.to_string()}))).unwrap();
        let created = within("create", api.create(&PostParams::default(), &obj)).await.unwrap();
        assert_eq!(created.resource_version().unwrap(), (i + 1).to_string());
        assert!(created.uid().is_some());
    }
    // paged list: 3 + 3 + 1 over one snapshot, even with a write in between
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = within("list", api.list(&lp)).await.unwrap();
        pages += 1;
        assert_eq!(page.metadata.resource_version.as_deref(), Some("7"));
        names.extend(page.items.iter().map(|o| o.name_any()));
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(4));
            sim.create(configmap("team", "cm-late", json!({}))).unwrap();
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());

    // get / get_opt
    let got = api.get("cm-2").await.unwrap();
    assert_eq!(got.data["data"]["k"], "cm-2");
    assert!(api.get_opt("missing").await.unwrap().is_none());

    // replace with the current RV succeeds, with a stale one conflicts (409)
    let mut obj = got.clone();
    obj.data["data"]["k"] = json!("changed");
    let replaced = api.replace("cm-2", &PostParams::default(), &obj).await.unwrap();
    assert_ne!(replaced.resource_version(), got.resource_version());
    match api.replace("cm-2", &PostParams::default(), &obj).await {
        Err(KubeError::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected conflict, got {other:?}"),
    }
    // merge patch
    let patched = api
        .patch("cm-2", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"p": "1"}}})))
        .await
        .unwrap();
    assert_eq!(patched.labels().get("p").map(String::as_str), Some("1"));
    assert_eq!(patched.data["data"]["k"], "changed");
    // delete returns the object carrying the deletion RV
    let before = sim.resource_version();
    let deleted = api.delete("cm-2", &DeleteParams::default()).await.unwrap();
    let deleted = deleted.left().expect("object returned");
    assert_eq!(deleted.resource_version(), Some((before + 1).to_string()));
    assert!(api.get_opt("cm-2").await.unwrap().is_none());
    match api.delete("cm-2", &DeleteParams::default()).await {
        Err(KubeError::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    // creating a duplicate is AlreadyExists
    let dup: DynamicObject = serde_json::from_value(configmap("team", "cm-1", json!({}))).unwrap();
    match api.create(&PostParams::default(), &dup).await {
        Err(KubeError::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_api_crud_and_json_patch() {
    let sim = ApiServerSim::start().await.unwrap();
    let client = sim.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let mut s = Secret::default();
    s.metadata.name = Some("creds".into());
    s.string_data = None;
    s.data = Some([("user".to_owned(), k8s_openapi::ByteString(b"admin".to_vec()))].into());
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.creation_timestamp.is_some());
    let list = secrets.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].data.as_ref().unwrap()["user"].0, b"admin");

    // raw JSON patch over HTTP
    let req = http::Request::patch("/api/v1/namespaces/default/secrets/creds")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])).unwrap())
        .unwrap();
    let patched: Secret = client.request(req).await.unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["a"], "b");

    // a JSON patch that destroys the object shape is a 400, not a crash
    for bad in [
        json!([{"op": "add", "path": "", "value": [1]}]),
        json!([{"op": "replace", "path": "/metadata", "value": "x"}]),
    ] {
        let req = http::Request::patch("/api/v1/namespaces/default/secrets/creds")
            .header("content-type", "application/json-patch+json")
            .body(serde_json::to_vec(&bad).unwrap())
            .unwrap();
        match client.request::<Secret>(req).await {
            Err(KubeError::Api(s)) => assert_eq!(s.code, 400),
            other => panic!("expected 400, got {other:?}"),
        }
    }
    // so is a merge patch with a non-object metadata
    let req = http::Request::patch("/api/v1/namespaces/default/secrets/creds")
        .header("content-type", "application/merge-patch+json")
        .body(serde_json::to_vec(&json!({"metadata": 5})).unwrap())
        .unwrap();
    match client.request::<Secret>(req).await {
        Err(KubeError::Api(s)) => assert_eq!(s.code, 400),
        other => panic!("expected 400, got {other:?}"),
    }
    // bad query parameters are 400 Status bodies
    for q in [
        "limit=abc",
        "resourceVersion=abc",
        "watch=true&timeoutSeconds=-1",
        "watch=true&resourceVersion=x1",
        "watch=true&allowWatchBookmarks=maybe",
        "continue=%%%",
        "resourceVersionMatch=Exact",
        "resourceVersion=1&resourceVersionMatch=Sometimes",
    ] {
        let req = http::Request::get(format!("/api/v1/namespaces/default/secrets?&{q}")).body(vec![]).unwrap();
        match client.request_text(req).await {
            Err(KubeError::Api(s)) => {
                assert_eq!(s.code, 400, "{q}");
                assert!(s.is_failure(), "{q}")
            }
            other => panic!("expected 400 for {q}, got {other:?}"),
        }
    }
    // bad JSON body is a 400 Status, not a crash
    let req = http::Request::post("/api/v1/namespaces/default/secrets")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    match client.request::<Secret>(req).await {
        Err(KubeError::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest")),
        other => panic!("expected 400, got {other:?}"),
    }
    // unknown resource is a 404 Status
    let req = http::Request::get("/apis/nope.example.com/v1/things").body(vec![]).unwrap();
    match client.request::<serde_json::Value>(req).await {
        Err(KubeError::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    // the one list kube sent answered 200; the bad queries above answered 400
    let lists = sim.requests().filter(|r| r.verb == Verb::List && r.resource.as_deref() == Some("secrets"));
    let ok: Vec<_> = lists.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1);
    assert!(ok[0].query.is_empty() || ok[0].query.starts_with('&'), "{:?}", ok[0].query);
    assert_eq!(lists.iter().filter(|r| r.status == 400).count(), 5);

    secrets.delete("creds", &DeleteParams::default()).await.unwrap();
    assert!(secrets.list(&ListParams::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn typed_paged_list_of_generated_ingresses() {
    let objs = Cluster::new(3).namespaces(3).apps_per_namespace(5).build();
    let sim = ApiServerSim::builder().objects(objs).start().await.unwrap();
    let api: Api<Ingress> = Api::all(sim.client());
    let mut lp = ListParams::default().limit(4);
    let mut all = Vec::new();
    loop {
        let page = api.list(&lp).await.unwrap();
        all.extend(page.items);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(all.len(), 15);
    let ing = &all[0];
    let spec = ing.spec.as_ref().unwrap();
    assert!(!spec.tls.as_ref().unwrap()[0].hosts.as_ref().unwrap().is_empty());
    assert!(spec.rules.as_ref().unwrap()[0].http.as_ref().unwrap().paths.len() >= 2);
    assert!(ing.metadata.managed_fields.is_some());
    assert_eq!(sim.requests().count(Verb::List, "ingresses.networking.k8s.io"), 4);
}

#[tokio::test]
async fn list_resource_version_semantics() {
    let sim = ApiServerSim::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "ns");
    for i in 0..3 {
        sim.create(configmap("ns", &format!("c{i}"), json!({}))).unwrap();
    }
    sim.delete("configmaps", Some("ns"), "c0").unwrap();
    // Exact at RV 2 sees the state before c2 was created and c0 deleted
    let exact = api.list(&ListParams::default().at("2").matching(VersionMatch::Exact)).await.unwrap();
    let names: Vec<String> = exact.items.iter().map(|c| c.name_any()).collect();
    assert_eq!(names, ["c0", "c1"]);
    assert_eq!(exact.metadata.resource_version.as_deref(), Some("2"));
    // NotOlderThan serves the latest
    let nto = api.list(&ListParams::default().at("2").matching(VersionMatch::NotOlderThan)).await.unwrap();
    assert_eq!(nto.metadata.resource_version.as_deref(), Some("4"));
    assert_eq!(nto.items.len(), 2);
    // resourceVersion=0 (any) works too
    assert_eq!(api.list(&ListParams::default().match_any()).await.unwrap().items.len(), 2);
    // future RV: 504 Timeout "Too large resource version" (kube's default retry would retry 504s)
    let mut cfg = sim.config();
    cfg.default_retry = false;
    let api: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(cfg).unwrap(), "ns");
    match api.list(&ListParams::default().at("99").matching(VersionMatch::NotOlderThan)).await {
        Err(KubeError::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (504, "Timeout")),
        other => panic!("expected 504, got {other:?}"),
    }
    // expired continue token after compaction: 410 Expired
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    sim.create(configmap("ns", "c9", json!({}))).unwrap();
    sim.faults().compact();
    match api.list(&ListParams::default().limit(1).continue_token(&token)).await {
        Err(KubeError::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    // Exact below the compaction point is expired too
    match api.list(&ListParams::default().at("2").matching(VersionMatch::Exact)).await {
        Err(KubeError::Api(s)) => assert_eq!(s.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn label_and_field_selectors() {
    let sim = ApiServerSim::start().await.unwrap();
    for (ns, name, tier) in [("a", "x", "web"), ("a", "y", "db"), ("b", "x", "web"), ("b", "z", "cache")] {
        sim.create(configmap(ns, name, json!({"tier": tier}))).unwrap();
    }
    let api: Api<ConfigMap> = Api::all(sim.client());
    let names = |l: kube::api::ObjectList<ConfigMap>| {
        l.items.iter().map(|c| format!("{}/{}", c.namespace().unwrap(), c.name_any())).collect::<Vec<_>>()
    };
    let l = api.list(&ListParams::default().labels("tier=web")).await.unwrap();
    assert_eq!(names(l), ["a/x", "b/x"]);
    let l = api.list(&ListParams::default().labels("tier in (db,cache)")).await.unwrap();
    assert_eq!(names(l), ["a/y", "b/z"]);
    let l = api.list(&ListParams::default().labels("tier notin (web),tier!=db")).await.unwrap();
    assert_eq!(names(l), ["b/z"]);
    let l = api.list(&ListParams::default().fields("metadata.name=x")).await.unwrap();
    assert_eq!(names(l), ["a/x", "b/x"]);
    let l = api.list(&ListParams::default().fields("metadata.namespace!=a")).await.unwrap();
    assert_eq!(names(l), ["b/x", "b/z"]);
    // With a selector a page examines `limit` objects: the first (a/x) does not match, so the
    // first page is empty but continues.
    let mut lp = ListParams::default().labels("tier").fields("metadata.name!=x").limit(1);
    let l = api.list(&lp).await.unwrap();
    assert!(l.items.is_empty());
    let mut all = Vec::new();
    let mut next = l.metadata.continue_.clone();
    while let Some(c) = next.filter(|c| !c.is_empty()) {
        lp = lp.continue_token(&c);
        let l = api.list(&lp).await.unwrap();
        next = l.metadata.continue_.clone();
        all.extend(names(l));
    }
    assert_eq!(all, ["a/y", "b/z"]);
    // Syntax errors and keys/values the API server's label rules reject are 400s.
    for bad in ["tier in (web", "-tier=web", "tier=web-", "Example.com/tier=web", "a/b/c=web"] {
        match api.list(&ListParams::default().labels(bad)).await {
            Err(KubeError::Api(s)) => assert_eq!(s.code, 400, "{bad}"),
            other => panic!("expected 400 for {bad:?}, got {other:?}"),
        }
    }
    match api.list(&ListParams::default().fields("spec.nodeName=n1")).await {
        Err(KubeError::Api(s)) => assert_eq!(s.code, 400),
        other => panic!("expected 400, got {other:?}"),
    }

    // A watch with a label selector sees objects enter (ADDED) and leave (DELETED) the selection.
    let rv = sim.resource_version().to_string();
    let mut stream = api.watch(&WatchParams::default().labels("tier=web"), &rv).await.unwrap().boxed();
    sim.patch("configmaps", Some("a"), "y", &json!({"metadata": {"labels": {"tier": "web"}}})).unwrap();
    sim.patch("configmaps", Some("a"), "x", &json!({"metadata": {"labels": {"tier": "db"}}})).unwrap();
    sim.patch("configmaps", Some("b"), "x", &json!({"data": {"k": "2"}})).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        match within("selector watch", stream.try_next()).await.unwrap().unwrap() {
            WatchEvent::Added(c) => got.push(format!("ADDED {}", c.name_any())),
            WatchEvent::Modified(c) => got.push(format!("MODIFIED {}", c.name_any())),
            WatchEvent::Deleted(c) => got.push(format!("DELETED {}", c.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got, ["ADDED y", "DELETED x", "MODIFIED x"]);
}

#[tokio::test]
async fn watcher_default_list_watch_sees_add_modify_delete() {
    let objs = Cluster::new(5).namespaces(2).apps_per_namespace(3).only(&[Kind::ConfigMap]).build();
    let sim = ApiServerSim::builder().objects(objs).start().await.unwrap();
    let api: Api<ConfigMap> = Api::all(sim.client());
    let mut probe = Probe::spawn(watcher(api, watcher::Config::default().page_size(4)));
    probe.until("init", |s| s.contains(&Seen::InitDone)).await;
    assert_eq!(probe.init_applies(), 6);
    within("watch to start", sim.wait_for_watches(1)).await;

    sim.create(configmap("n1", "new", json!({}))).unwrap();
    sim.patch("configmaps", Some("n1"), "new", &json!({"data": {"k": "v2"}})).unwrap();
    sim.delete("configmaps", Some("n1"), "new").unwrap();
    probe.until("delete", |s| s.contains(&Seen::Delete("new".into()))).await;
    assert_eq!(probe.count(&Seen::Apply("new".into())), 2);
    assert_eq!(probe.count(&Seen::Error), 0);
    // paged initial list: 6 objects / 4 per page = 2 list calls, then one watch
    assert_eq!(sim.requests().count(Verb::List, "configmaps"), 2);
    assert_eq!(sim.requests().count(Verb::Watch, "configmaps"), 1);
    let watch = &sim.requests().filter(|r| r.verb == Verb::Watch)[0];
    assert_eq!(watch.query_param("allowWatchBookmarks").as_deref(), Some("true"));
    assert_eq!(watch.query_param("resourceVersion").as_deref(), Some("6"));
}

#[tokio::test]
async fn watcher_streaming_lists_sees_add_modify_delete() {
    let objs = Cluster::new(6).namespaces(2).apps_per_namespace(2).only(&[Kind::Secret]).build();
    let sim = ApiServerSim::builder().objects(objs).start().await.unwrap();
    let api: Api<Secret> = Api::all(sim.client());
    let mut probe = Probe::spawn(watcher(api, watcher::Config::default().streaming_lists()));
    probe.until("init", |s| s.contains(&Seen::InitDone)).await;
    assert_eq!(probe.init_applies(), 4);

    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s-new", "namespace": "x"}, "data": {}});
    sim.create(secret).unwrap();
    sim.patch("secrets", Some("x"), "s-new", &json!({"metadata": {"labels": {"m": "1"}}})).unwrap();
    sim.delete("secrets", Some("x"), "s-new").unwrap();
    probe.until("delete", |s| s.contains(&Seen::Delete("s-new".into()))).await;
    assert_eq!(probe.count(&Seen::Apply("s-new".into())), 2);
    // no list at all: the initial state came from the watch's initial events
    assert_eq!(sim.requests().count(Verb::List, "secrets"), 0);
    assert_eq!(sim.requests().count(Verb::Watch, "secrets"), 1);
    let w = &sim.requests().filter(|r| r.verb == Verb::Watch)[0];
    assert_eq!(w.query_param("sendInitialEvents").as_deref(), Some("true"));
    assert_eq!(w.query_param("resourceVersionMatch").as_deref(), Some("NotOlderThan"));
}

#[tokio::test]
async fn metadata_only_watch_and_get() {
    let objs = Cluster::new(8).namespaces(1).apps_per_namespace(3).only(&[Kind::Secret]).build();
    let sim = ApiServerSim::builder().objects(objs).start().await.unwrap();
    let api: Api<PartialObjectMeta<Secret>> = Api::all(sim.client());
    let mut probe = Probe::spawn(watcher(api, watcher::Config::default()));
    probe.until("init", |s| s.contains(&Seen::InitDone)).await;
    assert_eq!(probe.init_applies(), 3);
    within("watch", sim.wait_for_watches(1)).await;
    let mut obj = sim.list("secrets", None).unwrap().remove(0);
    obj["metadata"]["labels"]["rotated"] = json!("yes");
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    let ns = obj["metadata"]["namespace"].as_str().unwrap().to_owned();
    sim.update(obj).unwrap();
    probe.until("update", |s| s.contains(&Seen::Apply(name.clone()))).await;

    // get via the metadata Accept header
    let api_ns: Api<PartialObjectMeta<Secret>> = Api::namespaced(sim.client(), &ns);
    let meta = api_ns.get(&name).await.unwrap();
    assert_eq!(meta.types.as_ref().unwrap().kind, "PartialObjectMetadata");
    assert_eq!(meta.labels()["rotated"], "yes");
    assert!(meta.annotations().contains_key("kubectl.kubernetes.io/last-applied-configuration"));

    // the secret bodies never left the server: every secrets request was metadata-only
    let reqs = sim.requests().filter(|r| r.resource.as_deref() == Some("secrets"));
    assert_eq!(reqs.len(), 3, "list, watch, get: {reqs:?}");
    assert!(reqs.iter().all(|r| r.metadata_only), "{reqs:?}");
}

#[tokio::test]
async fn raw_watch_semantics_bookmarks_410_and_timeout() {
    let sim = ApiServerSim::builder().bookmark_interval(std::time::Duration::from_millis(50)).start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "w");
    sim.create(configmap("w", "a", json!({}))).unwrap();
    // RV "0": synthetic ADDED for current state, then live events and bookmarks
    let mut s = api.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    match within("added", s.try_next()).await.unwrap().unwrap() {
        WatchEvent::Added(c) => assert_eq!(c.name_any(), "a"),
        other => panic!("{other:?}"),
    }
    sim.create(configmap("w", "b", json!({}))).unwrap();
    let mut saw_bookmark = false;
    let mut saw_b = false;
    while !(saw_bookmark && saw_b) {
        match within("events", s.try_next()).await.unwrap().unwrap() {
            WatchEvent::Added(c) => saw_b |= c.name_any() == "b",
            WatchEvent::Bookmark(bm) => {
                saw_bookmark = true;
                assert!(bm.metadata.resource_version.parse::<u64>().unwrap() >= 1);
                assert_eq!(bm.types.kind, "ConfigMap");
            }
            other => panic!("{other:?}"),
        }
    }
    // replay from an RV in the log
    let mut s = api.watch(&WatchParams::default().disable_bookmarks(), "1").await.unwrap().boxed();
    match within("replay", s.try_next()).await.unwrap().unwrap() {
        WatchEvent::Added(c) => assert_eq!(c.name_any(), "b"),
        other => panic!("{other:?}"),
    }
    // compaction: a watch from an old RV gets HTTP 200 + one ERROR 410 event, then EOF
    sim.faults().compact();
    let mut s = api.watch(&WatchParams::default(), "1").await.unwrap().boxed();
    match within("410", s.try_next()).await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
    assert!(within("eof", s.try_next()).await.unwrap().is_none());
    let watches = sim.requests().filter(|r| r.verb == Verb::Watch);
    assert!(watches.iter().all(|r| r.status == 200));
    // timeoutSeconds ends the stream cleanly
    let rv = sim.resource_version().to_string();
    let start = std::time::Instant::now();
    let mut s = api.watch(&WatchParams::default().timeout(1).disable_bookmarks(), &rv).await.unwrap().boxed();
    assert!(within("timeout end", s.try_next()).await.unwrap().is_none());
    assert!(start.elapsed() >= std::time::Duration::from_millis(900));
    // sendInitialEvents without NotOlderThan is rejected like the real apiserver does
    let req =
        http::Request::get("/api/v1/namespaces/w/configmaps?watch=true&sendInitialEvents=true").body(vec![]).unwrap();
    match sim.client().request_text(req).await {
        Err(KubeError::Api(s)) => assert_eq!(s.code, 422),
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_finds_builtins_and_registered_resources() {
    let sim = ApiServerSim::builder()
        .resource(ResourceDef::new("example.com", "v1alpha1", "Widget", "widgets", Scope::Namespaced))
        .resource(ResourceDef::new("example.com", "v1alpha1", "Gadget", "gadgets", Scope::Cluster))
        .start()
        .await
        .unwrap();
    let client = sim.client();
    let discovery = within("discovery", Discovery::new(client.clone()).run()).await.unwrap();
    let mut kinds = BTreeSet::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            kinds.insert(ar.kind.clone());
            if ar.kind == "Gadget" {
                assert_eq!(caps.scope, KubeScope::Cluster);
            }
            if ar.kind == "Widget" {
                assert_eq!(caps.scope, KubeScope::Namespaced);
                assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
            }
        }
    }
    for k in ["Secret", "ConfigMap", "Service", "Pod", "Namespace", "Ingress", "EndpointSlice", "Widget", "Gadget"] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }
    // aggregated discovery (two requests) finds the same kinds
    let aggregated = within("aggregated discovery", Discovery::new(client.clone()).run_aggregated()).await.unwrap();
    let mut agg_kinds = BTreeSet::new();
    for group in aggregated.groups() {
        for (ar, _) in group.recommended_resources() {
            agg_kinds.insert(ar.kind.clone());
        }
    }
    assert_eq!(agg_kinds, kinds);
    let (ar, _) =
        discovery.resolve_gvk(&kube::api::GroupVersionKind::gvk("example.com", "v1alpha1", "Widget")).unwrap();
    assert_eq!(ar.plural, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "ns", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1alpha1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3},
    }))
    .unwrap();
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(widgets.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let gadget = json!({"apiVersion": "example.com/v1alpha1", "kind": "Gadget", "metadata": {"name": "g1"}});
    sim.create(gadget).unwrap();
    let (gar, _) =
        discovery.resolve_gvk(&kube::api::GroupVersionKind::gvk("example.com", "v1alpha1", "Gadget")).unwrap();
    let gadgets: Api<DynamicObject> = Api::all_with(client, &gar);
    assert_eq!(gadgets.get("g1").await.unwrap().name_any(), "g1");
    assert!(sim.requests().count(Verb::Discovery, "") >= 3);
}

fn kubectl_available() -> bool {
    std::process::Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success())
}

fn kubectl(url: String, args: Vec<String>) -> std::process::Output {
    std::process::Command::new("kubectl")
        .arg("--server")
        .arg(url)
        .arg("--request-timeout=10s")
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_against_the_simulator() {
    if !kubectl_available() {
        eprintln!("kubectl not on PATH; skipping");
        return;
    }
    let objs = Cluster::new(9).namespaces(2).apps_per_namespace(2).build();
    let sim = ApiServerSim::builder().objects(objs).start().await.unwrap();
    let url = sim.url();
    let run = |args: &[&str]| {
        let url = url.clone();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        tokio::task::spawn_blocking(move || kubectl(url, args))
    };
    let out = within("kubectl", run(&["get", "ingresses", "-A"])).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ingresses = sim.list("ingresses", None).unwrap();
    for ing in &ingresses {
        assert!(stdout.contains(ing["metadata"]["name"].as_str().unwrap()), "{stdout}");
    }
    assert_eq!(stdout.lines().count(), ingresses.len() + 1, "{stdout}");
    // server-side printing: the Ingress columns kubectl shows for a real cluster
    let header: Vec<&str> = stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]);
    let host = ingresses[0]["spec"]["rules"][0]["host"].as_str().unwrap();
    assert!(stdout.contains(host), "{stdout}");
    // JSON output, a short name, a namespace and a label selector
    let ns = sim.list("namespaces", None).unwrap()[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let out = within("kubectl", run(&["get", "cm", "-n", &ns, "-o", "json"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let out =
        within("kubectl", run(&["get", "secrets", "-A", "-l", "app.kubernetes.io/managed-by=kubectl", "-o", "name"]))
            .await
            .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    let out = within("kubectl", run(&["get", "secret", "-n", &ns, "nope"])).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    // kubectl used aggregated discovery (no per-group-version discovery requests)
    let paths = sim.requests().path_counts();
    assert!(paths.contains_key("/apis"), "{paths:?}");
    assert!(!paths.contains_key("/apis/networking.k8s.io/v1"), "{paths:?}");
}

#[tokio::test]
async fn deleted_events_carry_the_deletion_rv_and_shutdown_stops_serving() {
    let sim = ApiServerSim::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "d");
    sim.create(configmap("d", "gone", json!({}))).unwrap();
    let rv = sim.resource_version().to_string();
    let mut s = api.watch(&WatchParams::default().disable_bookmarks(), &rv).await.unwrap().boxed();
    within("watch", sim.wait_for_watches(1)).await;
    sim.delete("configmaps", Some("d"), "gone").unwrap();
    match within("deleted", s.try_next()).await.unwrap().unwrap() {
        WatchEvent::Deleted(c) => {
            assert_eq!(c.resource_version(), Some(sim.resource_version().to_string()));
            assert_eq!(sim.resource_version(), 2);
        }
        other => panic!("{other:?}"),
    }
    // shutdown ends open watches and refuses new connections
    let addr = sim.addr();
    sim.shutdown().await;
    assert!(within("stream end", s.next()).await.is_none_or(|r| r.is_err()));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // dropping a simulator stops it too
    let sim = ApiServerSim::start().await.unwrap();
    let addr = sim.addr();
    drop(sim);
    let mut refused = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "listener still open after drop");
}

#[tokio::test]
async fn table_responses_for_list_get_and_watch() {
    let objs = Cluster::new(4).namespaces(1).apps_per_namespace(2).only(&[Kind::Secret]).build();
    let sim = ApiServerSim::builder().objects(objs).start().await.unwrap();
    let client = sim.client();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let get = |path: String| http::Request::get(path).header("accept", accept).body(Vec::new()).unwrap();
    let table: serde_json::Value = client.request(get("/api/v1/secrets?limit=1".into())).await.unwrap();
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["Name", "Type", "Data", "Age"]);
    let row = &table["rows"][0];
    assert_eq!(row["cells"][1], "kubernetes.io/tls");
    assert_eq!(row["cells"][2], 2);
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert!(table["metadata"]["continue"].is_string());
    let name = row["cells"][0].as_str().unwrap().to_owned();
    let ns = row["object"]["metadata"]["namespace"].as_str().unwrap().to_owned();
    // includeObject=Object carries the whole object; None carries none
    let t: serde_json::Value =
        client.request(get(format!("/api/v1/namespaces/{ns}/secrets/{name}?includeObject=Object"))).await.unwrap();
    assert_eq!(t["rows"][0]["object"]["kind"], "Secret");
    assert!(t["rows"][0]["object"]["data"]["tls.crt"].is_string());
    let t: serde_json::Value =
        client.request(get(format!("/api/v1/namespaces/{ns}/secrets/{name}?includeObject=None"))).await.unwrap();
    assert!(t["rows"][0].get("object").is_none());
    // a watch carries one-row tables
    let rv = sim.resource_version();
    let req = get(format!("/api/v1/secrets?watch=true&resourceVersion={rv}"));
    let mut events = client.request_events::<serde_json::Value>(req).await.unwrap().boxed();
    within("watch", sim.wait_for_watches(1)).await;
    sim.patch("secrets", Some(&ns), &name, &json!({"metadata": {"labels": {"x": "1"}}})).unwrap();
    match within("table event", events.try_next()).await.unwrap().unwrap() {
        WatchEvent::Modified(t) => {
            assert_eq!(t["kind"], "Table");
            assert_eq!(t["rows"][0]["cells"][0], name.as_str());
        }
        other => panic!("{other:?}"),
    }
}

/// GET `path` through kube's client and decode the JSON body.
async fn raw_get(client: &kube::Client, path: &str) -> serde_json::Value {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    let text = within(path, client.request_text(req)).await.unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn builtin_list_items_omit_type_meta_custom_resources_keep_it() {
    let sim = sim_with_widgets().await;
    let client = sim.client();
    sim.create(configmap("ns", "a", json!({"x": "1"}))).unwrap();
    sim.create(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ns"}}))
        .unwrap();

    let list = raw_get(&client, "/api/v1/namespaces/ns/configmaps").await;
    assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("ConfigMapList"), Some("v1")));
    let item = &list["items"][0];
    assert_eq!(item["metadata"]["name"], "a");
    assert!(item.get("kind").is_none() && item.get("apiVersion").is_none(), "{item}");
    // Pages of a paged list too.
    let page = raw_get(&client, "/api/v1/configmaps?limit=1").await;
    assert!(page["items"][0].get("kind").is_none());

    let widgets = raw_get(&client, "/apis/example.com/v1/namespaces/ns/widgets").await;
    assert_eq!(widgets["items"][0]["kind"], "Widget");
    assert_eq!(widgets["items"][0]["apiVersion"], "example.com/v1");

    // GET and watch events carry kind and apiVersion.
    let got = raw_get(&client, "/api/v1/namespaces/ns/configmaps/a").await;
    assert_eq!((got["kind"].as_str(), got["apiVersion"].as_str()), (Some("ConfigMap"), Some("v1")));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "ns", &cm_resource());
    let mut events = api.watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    match within("watch event", events.try_next()).await.unwrap() {
        Some(WatchEvent::Added(o)) => {
            let types = o.types.expect("watch events carry type meta");
            assert_eq!((types.kind.as_str(), types.api_version.as_str()), ("ConfigMap", "v1"));
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
    // kube decodes both shapes: typed and dynamic lists work.
    let typed: Api<ConfigMap> = Api::namespaced(client, "ns");
    assert_eq!(typed.list(&ListParams::default()).await.unwrap().items[0].metadata.name.as_deref(), Some("a"));
    let dynamic = api.list(&ListParams::default()).await.unwrap();
    assert!(dynamic.items[0].types.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_with_validation_and_dry_run() {
    if !kubectl_available() {
        eprintln!("kubectl not on PATH; skipping");
        return;
    }
    let sim = ApiServerSim::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("sim-kubectl-{}-{}", std::process::id(), sim.addr().port()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = |ports: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\nspec:\n  selector:\n    app: web\n  ports:\n{ports}"
        )
    };
    let first = dir.join("first.yaml");
    std::fs::write(&first, manifest("  - name: http\n    port: 80\n  - name: https\n    port: 443\n")).unwrap();
    let second = dir.join("second.yaml");
    std::fs::write(&second, manifest("  - name: web\n    port: 8080\n")).unwrap();
    let url = sim.url();
    let run = |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || kubectl(url, args))
    };
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let ok = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", String::from_utf8_lossy(&out.stderr));
    };

    // First apply, validation on (kubectl's default): created with last-applied.
    let out = within("kubectl apply", run(vec!["apply".into(), "-f".into(), path(&first)])).await.unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("service/web created"));
    let svc = sim.get("services", Some("default"), "web").unwrap().unwrap();
    assert_eq!(svc["spec"]["ports"], json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}]));
    assert!(svc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
    // Validation went to the server (fieldValidation), found through /openapi/v3.
    let paths = sim.requests().path_counts();
    assert!(paths.contains_key("/openapi/v3"), "{paths:?}");

    // Server-side dry run of the changed manifest writes nothing.
    let rv = sim.resource_version();
    let out = within(
        "kubectl apply --dry-run=server",
        run(vec!["apply".into(), "--dry-run=server".into(), "-f".into(), path(&second)]),
    )
    .await
    .unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(server dry run)"));
    assert_eq!(sim.resource_version(), rv);
    assert_eq!(sim.get("services", Some("default"), "web").unwrap().unwrap(), svc);

    // The changed apply: a strategic merge patch with directives, applied, never stored.
    let out = within("kubectl apply (changed)", run(vec!["apply".into(), "-f".into(), path(&second)])).await.unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("service/web configured"));
    let patches = sim.requests().filter(|r| r.verb == Verb::Patch);
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert!(patches[0].query.contains("dryRun=All") && !patches[1].query.contains("dryRun"), "{patches:?}");
    let svc = sim.get("services", Some("default"), "web").unwrap().unwrap();
    assert_eq!(svc["spec"]["ports"], json!([{"name": "web", "port": 8080}]));
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
    assert!(!svc.to_string().contains("$patch") && !svc.to_string().contains("$setElementOrder"), "{svc}");

    let _ = std::fs::remove_dir_all(&dir);
}

/// kubectl's typed `create` commands send protobuf: each object the simulator stores equals
/// the JSON kubectl renders for the same command client-side (`--dry-run=client -o json`),
/// but for the metadata a server sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_protobuf_and_stores_what_kubectl_renders() {
    if !kubectl_available() {
        eprintln!("kubectl not on PATH; skipping");
        return;
    }
    let sim = ApiServerSim::start().await.unwrap();
    let url = sim.url();
    let run = |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || kubectl(url, args))
    };
    // (kubectl arguments, resource, namespace, name)
    let cases: &[(&[&str], &str, Option<&str>, &str)] = &[
        (&["create", "namespace", "pb"], "namespaces", None, "pb"),
        (
            &["-n", "pb", "create", "configmap", "c1", "--from-literal=a=b", "--from-literal=x="],
            "configmaps",
            Some("pb"),
            "c1",
        ),
        (&["-n", "pb", "create", "secret", "generic", "s1", "--from-literal=user=admin"], "secrets", Some("pb"), "s1"),
        (&["-n", "pb", "create", "serviceaccount", "sa1"], "serviceaccounts", Some("pb"), "sa1"),
        (
            &["-n", "pb", "create", "role", "r1", "--verb=get,list", "--resource=pods,configmaps"],
            "roles",
            Some("pb"),
            "r1",
        ),
        (&["create", "clusterrole", "cr1", "--verb=get", "--non-resource-url=/healthz"], "clusterroles", None, "cr1"),
        (
            &["-n", "pb", "create", "rolebinding", "rb1", "--role=r1", "--user=alice", "--serviceaccount=pb:sa1"],
            "rolebindings",
            Some("pb"),
            "rb1",
        ),
        (
            &["create", "clusterrolebinding", "crb1", "--clusterrole=cr1", "--group=devs"],
            "clusterrolebindings",
            None,
            "crb1",
        ),
        (
            &["create", "priorityclass", "pc1", "--value=-5", "--description=low", "--preemption-policy=Never"],
            "priorityclasses",
            None,
            "pc1",
        ),
        (
            &["-n", "pb", "create", "deployment", "d1", "--image=nginx", "--replicas=2", "--port=80"],
            "deployments",
            Some("pb"),
            "d1",
        ),
        (
            &[
                "-n",
                "pb",
                "run",
                "p1",
                "--image=busybox",
                "--env=A=b",
                "--labels=x=y",
                "--restart=Never",
                "--",
                "sleep",
                "10",
            ],
            "pods",
            Some("pb"),
            "p1",
        ),
        (&["-n", "pb", "create", "service", "clusterip", "s1", "--tcp=80:8080"], "services", Some("pb"), "s1"),
        (&["-n", "pb", "create", "service", "nodeport", "s2", "--tcp=80:http"], "services", Some("pb"), "s2"),
        (
            &["-n", "pb", "create", "service", "externalname", "s3", "--external-name=example.com"],
            "services",
            Some("pb"),
            "s3",
        ),
        (&["-n", "pb", "create", "job", "j1", "--image=busybox", "--", "echo", "hi"], "jobs", Some("pb"), "j1"),
        (
            &["-n", "pb", "create", "cronjob", "cj1", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"],
            "cronjobs",
            Some("pb"),
            "cj1",
        ),
        (
            &[
                "-n",
                "pb",
                "create",
                "quota",
                "q1",
                "--hard=pods=10,requests.cpu=2,requests.memory=1Gi",
                "--scopes=BestEffort",
            ],
            "resourcequotas",
            Some("pb"),
            "q1",
        ),
        (
            &[
                "-n",
                "pb",
                "create",
                "ingress",
                "i1",
                "--class=nginx",
                "--rule=foo.com/bar*=svc1:8080,tls=my-cert",
                "--rule=/path=svc2:http",
                "--default-backend=defsvc:80",
            ],
            "ingresses",
            Some("pb"),
            "i1",
        ),
        (
            &["-n", "pb", "create", "poddisruptionbudget", "pdb1", "--selector=app=x", "--min-available=50%"],
            "poddisruptionbudgets",
            Some("pb"),
            "pdb1",
        ),
    ];
    // The flags go before a container command's `--`.
    let args = |line: &[&str], extra: &[&str]| -> Vec<String> {
        let at = line.iter().position(|a| *a == "--").unwrap_or(line.len());
        line[..at].iter().chain(extra).chain(&line[at..]).map(|a| (*a).to_owned()).collect()
    };
    for (line, resource, namespace, name) in cases {
        let rendered =
            within("kubectl --dry-run=client", run(args(line, &["--dry-run=client", "-o", "json"]))).await.unwrap();
        assert!(rendered.status.success(), "{line:?}: {}", String::from_utf8_lossy(&rendered.stderr));
        let mut expected: Value = serde_json::from_slice(&rendered.stdout).unwrap();
        let out = within("kubectl create", run(args(line, &[]))).await.unwrap();
        assert!(out.status.success(), "{line:?}: {}", String::from_utf8_lossy(&out.stderr));
        let mut stored = sim.get(resource, *namespace, name).unwrap().unwrap_or_else(|| panic!("{line:?}: not stored"));
        for object in [&mut expected, &mut stored] {
            let meta = object["metadata"].as_object_mut().unwrap();
            for server_set in ["creationTimestamp", "resourceVersion", "uid", "managedFields", "generation"] {
                meta.remove(server_set);
            }
        }
        assert_eq!(stored, expected, "{line:?}");
    }
    let creates = sim.requests().filter(|r| r.verb == Verb::Create);
    assert_eq!(creates.len(), cases.len());
    assert!(creates.iter().all(|r| r.status == 201), "{creates:?}");
}
