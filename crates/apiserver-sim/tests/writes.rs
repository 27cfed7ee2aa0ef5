//! Write semantics a real API server has, driven through kube: strategic merge patch,
//! `dryRun=All`, Secret `stringData`, deletion through finalizers, refused media types, the
//! metadata a create takes from the server.

mod common;

use common::{configmap, sim_with_widgets, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kstore_apiserver_sim::ApiServerSim;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::discovery::ApiResource;
use kube::{Error as KubeError, ResourceExt};
use serde_json::{Value, json};

fn status_code<T: std::fmt::Debug>(r: Result<T, KubeError>) -> u16 {
    match r {
        Err(KubeError::Api(s)) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k.starts_with('$') || has_directive(v)),
        Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}

#[tokio::test]
async fn strategic_merge_patch_merges_by_key_and_never_stores_directives() {
    let sim = sim_with_widgets().await;
    sim.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "ns", "name": "web"},
                      "spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                               "selector": {"app": "web"}}}))
        .unwrap();
    let api: Api<Service> = Api::namespaced(sim.client(), "ns");
    let pp = PatchParams::default();
    // A port renamed in place, one added: merged by `port`, not replaced.
    let patch = json!({"spec": {"ports": [{"port": 443, "name": "tls"}, {"port": 9090, "name": "metrics"}]}});
    let svc = within("patch", api.patch("web", &pp, &Patch::Strategic(patch))).await.unwrap();
    let ports: Vec<(String, i32)> =
        svc.spec.unwrap().ports.unwrap().into_iter().map(|p| (p.name.unwrap_or_default(), p.port)).collect();
    assert_eq!(ports, [("http".into(), 80), ("tls".into(), 443), ("metrics".into(), 9090)]);
    // What a second `kubectl apply` sends when the ports become one.
    let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 8080}],
        "ports": [{"name": "web", "port": 8080}, {"$patch": "delete", "port": 80},
                  {"$patch": "delete", "port": 443}, {"$patch": "delete", "port": 9090}]}});
    within("patch", api.patch("web", &pp, &Patch::Strategic(patch))).await.unwrap();
    let stored = sim.get("services", Some("ns"), "web").unwrap().unwrap();
    assert_eq!(stored["spec"]["ports"], json!([{"name": "web", "port": 8080}]));
    assert!(!has_directive(&stored), "{stored}");
    // Unknown or malformed directives are a 400 Status and change nothing.
    let rv = sim.resource_version();
    for bad in [
        json!({"spec": {"$bogus": 1}}),
        json!({"spec": {"$patch": "explode"}}),
        json!({"spec": {"ports": [{"name": "x"}]}}),
    ] {
        assert_eq!(status_code(api.patch("web", &pp, &Patch::Strategic(bad)).await), 400);
    }
    assert_eq!(sim.resource_version(), rv);
    // Custom resources do not support strategic merge patch: 415, as a real server answers.
    sim.create(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"namespace": "ns", "name": "w"}}))
        .unwrap();
    let ar =
        ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(sim.client(), "ns", &ar);
    assert_eq!(status_code(widgets.patch("w", &pp, &Patch::Strategic(json!({"spec": {"a": 1}}))).await), 415);
    widgets.patch("w", &pp, &Patch::Merge(json!({"spec": {"a": 1}}))).await.unwrap();
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let sim = ApiServerSim::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "ns");
    let dry = PostParams { dry_run: true, ..Default::default() };
    let cm: ConfigMap = serde_json::from_value(configmap("ns", "a", json!({"x": "1"}))).unwrap();
    let created = within("dry create", api.create(&dry, &cm)).await.unwrap();
    assert_eq!(created.name_any(), "a");
    assert!(created.uid().is_some());
    assert_eq!((sim.resource_version(), sim.count("configmaps").unwrap()), (0, 0));
    api.create(&PostParams::default(), &cm).await.unwrap();
    let rv = sim.resource_version();
    let patched =
        api.patch("a", &PatchParams::default().dry_run(), &Patch::Merge(json!({"data": {"k": "dry"}}))).await.unwrap();
    assert_eq!(patched.data.unwrap()["k"], "dry");
    let mut replaced = api.get("a").await.unwrap();
    replaced.data = Some([("k".to_owned(), "dry".to_owned())].into());
    api.replace("a", &dry, &replaced).await.unwrap();
    api.delete("a", &DeleteParams { dry_run: true, ..Default::default() }).await.unwrap();
    assert_eq!(sim.resource_version(), rv);
    assert_eq!(sim.get("configmaps", Some("ns"), "a").unwrap().unwrap()["data"]["k"], "a");
    // An unknown dryRun value is refused.
    let req = http::Request::post("/api/v1/namespaces/ns/configmaps?dryRun=Some")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&configmap("ns", "b", json!({}))).unwrap())
        .unwrap();
    assert_eq!(status_code(sim.client().request::<ConfigMap>(req).await), 400);
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    let sim = ApiServerSim::start().await.unwrap();
    let api: Api<Secret> = Api::namespaced(sim.client(), "ns");
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"a": "b2xk", "b": "Yg=="},
                                                  "stringData": {"a": "new", "c": "plain text"}}))
    .unwrap();
    let created = within("create", api.create(&PostParams::default(), &s)).await.unwrap();
    let data = created.data.unwrap();
    assert_eq!(data["a"], ByteString(b"new".to_vec()));
    assert_eq!(data["b"], ByteString(b"b".to_vec()));
    assert_eq!(data["c"], ByteString(b"plain text".to_vec()));
    assert!(created.string_data.is_none());
    let stored = sim.get("secrets", Some("ns"), "s").unwrap().unwrap();
    assert!(stored.get("stringData").is_none());
    assert_eq!(stored["data"]["c"], "cGxhaW4gdGV4dA==");
    let patched =
        api.patch("s", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"d": "x"}}))).await.unwrap();
    assert_eq!(patched.data.unwrap()["d"], ByteString(b"x".to_vec()));
    assert!(sim.get("secrets", Some("ns"), "s").unwrap().unwrap().get("stringData").is_none());
}

#[tokio::test]
async fn deletion_with_finalizers_sets_deletion_timestamp_first() {
    let sim = ApiServerSim::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "ns");
    let mut cm = configmap("ns", "f", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    sim.create(cm).unwrap();
    let rv = sim.resource_version().to_string();
    let mut events = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let deleted = within("delete", api.delete("f", &DeleteParams::default())).await.unwrap();
    let pending = deleted.left().expect("the object is returned, not a Status");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still = api.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    match within("MODIFIED", events.try_next()).await.unwrap() {
        Some(WatchEvent::Modified(o)) => assert!(o.metadata.deletion_timestamp.is_some()),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    // No new finalizer while terminating.
    let add = Patch::Merge(json!({"metadata": {"finalizers": ["example.com/cleanup", "other"]}}));
    assert_eq!(status_code(api.patch("f", &PatchParams::default(), &add).await), 422);
    // Removing the last finalizer deletes it.
    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    within("clear", api.patch("f", &PatchParams::default(), &clear)).await.unwrap();
    match within("DELETED", events.try_next()).await.unwrap() {
        Some(WatchEvent::Deleted(o)) => assert_eq!(o.name_any(), "f"),
        other => panic!("expected DELETED, got {other:?}"),
    }
    assert!(api.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn other_media_types_and_unknown_protobuf_kinds_are_refused_with_a_415_status() {
    let sim = ApiServerSim::start().await.unwrap();
    // A protobuf envelope (`k8s\0`, runtime.Unknown) whose typeMeta is apps/v1 StatefulSet: a
    // kind the simulator has no protobuf schema for.
    let stateful_set_pb = b"k8s\x00\x0a\x16\x0a\x07apps/v1\x12\x0bStatefulSet\x12\x00".to_vec();
    for (method, path, ct, body) in [
        ("POST", "/apis/apps/v1/namespaces/ns/statefulsets", "application/vnd.kubernetes.protobuf", stateful_set_pb),
        ("PUT", "/api/v1/namespaces/ns/configmaps/a", "application/cbor", b"k8s\x00\x0a".to_vec()),
        ("PATCH", "/api/v1/namespaces/ns/configmaps/a", "application/json", b"k8s\x00\x0a".to_vec()),
    ] {
        let req = http::Request::builder().method(method).uri(path).header("content-type", ct).body(body).unwrap();
        match sim.client().request::<ConfigMap>(req).await {
            Err(KubeError::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (415, "UnsupportedMediaType"), "{method} {ct}");
                assert!(s.message.starts_with("the body of the request was in an unknown format"), "{}", s.message);
            }
            other => panic!("{method} {ct}: expected 415, got {other:?}"),
        }
    }
    assert_eq!(sim.count("configmaps").unwrap(), 0);
    assert_eq!(sim.count("statefulsets").unwrap(), 0);
    // A malformed protobuf body (a field's length runs past the end) is a 400, nothing stored.
    let req = http::Request::post("/api/v1/namespaces/ns/configmaps")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(b"k8s\x00\x0a\x7f".to_vec())
        .unwrap();
    match sim.client().request::<ConfigMap>(req).await {
        Err(KubeError::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
            assert!(s.message.starts_with("couldn't decode protobuf body"), "{}", s.message);
        }
        other => panic!("expected 400, got {other:?}"),
    }
    assert_eq!(sim.count("configmaps").unwrap(), 0);
    // YAML bodies are decoded.
    let req = http::Request::post("/api/v1/namespaces/ns/configmaps")
        .header("content-type", "application/yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n".to_vec())
        .unwrap();
    let created: ConfigMap = sim.client().request(req).await.unwrap();
    assert_eq!(created.data.unwrap()["k"], "v");
}

#[tokio::test]
async fn a_create_takes_system_metadata_from_the_server() {
    let sim = sim_with_widgets().await;
    let client = sim.client();
    // What a client cannot set: erased and made anew, as a real server's create handler does.
    let system = json!({"uid": "uid-from-client", "creationTimestamp": "2008-01-01T01:01:01Z",
                        "deletionTimestamp": "2009-01-01T01:01:01Z", "deletionGracePeriodSeconds": 10,
                        "selfLink": "/self", "generation": 7});
    let with_system = |kind: &str, api_version: &str, extra: Value| {
        let mut meta = system.clone();
        meta["name"] = json!("obj");
        meta["namespace"] = json!("ns");
        let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": meta});
        obj.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        obj
    };
    let check = |created: &DynamicObject, generation: Option<i64>| {
        let meta = &created.metadata;
        assert!(meta.uid.as_deref().is_some_and(|u| !u.is_empty() && u != "uid-from-client"), "{meta:?}");
        assert!(meta.creation_timestamp.as_ref().is_some_and(|t| t.0.to_string().as_str() > "2020"), "{meta:?}");
        assert!(meta.deletion_timestamp.is_none() && meta.deletion_grace_period_seconds.is_none(), "{meta:?}");
        assert_eq!(meta.self_link, None);
        assert_eq!(meta.generation, generation);
    };
    let create = |ar: ApiResource, namespaced: bool, obj: Value| {
        let client = client.clone();
        async move {
            let api: Api<DynamicObject> =
                if namespaced { Api::namespaced_with(client, "ns", &ar) } else { Api::all_with(client, &ar) };
            api.create(&PostParams::default(), &serde_json::from_value(obj).unwrap()).await.unwrap()
        }
    };
    let ar = |g: &str, v: &str, k: &str, p: &str| ApiResource {
        group: g.into(),
        version: v.into(),
        api_version: if g.is_empty() { v.into() } else { format!("{g}/{v}") },
        kind: k.into(),
        plural: p.into(),
    };

    // A built-in kind without spec keeps the client's generation (its strategy ignores it).
    let cm = create(ar("", "v1", "ConfigMap", "configmaps"), true, with_system("ConfigMap", "v1", json!({}))).await;
    check(&cm, Some(7));
    // With a spec, or a custom resource: generation starts at 1. A kind with a status
    // subresource starts with its zero status (Go's serialization of it), a custom resource
    // (no status subresource here) keeps what it was sent.
    let dep = with_system("Deployment", "apps/v1", json!({"spec": {"replicas": 1}, "status": {"replicas": 3}}));
    let dep = create(ar("apps", "v1", "Deployment", "deployments"), true, dep).await;
    check(&dep, Some(1));
    assert_eq!(dep.data["status"], json!({}));
    let sts = with_system("StatefulSet", "apps/v1", json!({"spec": {}, "status": {"replicas": 3}}));
    let sts = create(ar("apps", "v1", "StatefulSet", "statefulsets"), true, sts).await;
    assert_eq!(sts.data["status"], json!({"replicas": 0, "availableReplicas": 0}));
    let svc =
        create(ar("", "v1", "Service", "services"), true, with_system("Service", "v1", json!({"spec": {}}))).await;
    assert_eq!(svc.data["status"], json!({"loadBalancer": {}}));
    let widget = with_system("Widget", "example.com/v1", json!({"size": 3, "status": {"ready": true}}));
    let widget = create(ar("example.com", "v1", "Widget", "widgets"), true, widget).await;
    check(&widget, Some(1));
    assert_eq!(widget.data["status"], json!({"ready": true}));
    // A cluster-scoped kind drops the namespace the object named.
    let role = with_system("ClusterRole", "rbac.authorization.k8s.io/v1", json!({"rules": []}));
    let role = create(ar("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles"), false, role).await;
    check(&role, Some(7));
    assert_eq!(role.metadata.namespace, None);
    // The handle API keeps what its caller set (seeds and generated clusters set uids).
    let mut kept = with_system("ConfigMap", "v1", json!({}));
    kept["metadata"]["name"] = json!("kept");
    let kept = sim.create(kept).unwrap();
    assert_eq!(kept["metadata"]["uid"], "uid-from-client");
}
