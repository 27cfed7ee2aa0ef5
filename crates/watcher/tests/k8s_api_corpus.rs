//! The Kubernetes API round-trip corpus (`testdata/HEAD/*.json` of kubernetes/api: one object
//! per kind, every field set; read by compact-object's `tests/support/corpus.rs` from
//! `../shared/k8s-api-testdata`, skipped with a message when absent) over HTTP: every fixture
//! with object metadata is created through a real `kube::Client` against apiserver-sim, then
//! read back by GET, by a list into one full store and by a watch into another, and fetched on
//! demand into a third — each equal to the fixture except what a server owns, and the listed,
//! watched and fetched copies byte for byte identical.
//!
//! **Which kinds.** Every fixture whose `apiVersion`/`kind` the simulator serves as a built-in
//! kind (`apiserver_sim::builtin_resources`: the kinds a current kube-apiserver serves by
//! default, one version each) is created as that built-in kind, whose list items carry no
//! `apiVersion`/`kind`. Every other fixture with a `metadata.name` (older API versions,
//! alpha/beta kinds, and object-shaped kinds a real server only accepts as a subresource or a
//! review, such as `Scale` or `TokenReview`) is registered as a custom resource of its own
//! group, version and kind (plural from kube's `ApiResource::from_gvk`; the scope of the same
//! kind where the simulator serves it, namespaced otherwise), whose list items keep theirs.
//! Fixtures that are not objects with metadata (`WatchEvent`, `Status`, the `*Options` kinds,
//! `APIGroup`, `APIVersions`, `DeploymentRollback`, `AdmissionReview`, …) are counted and skipped.
//!
//! **What the test changes before the create** (a client's side; each is what any client must
//! do with these fixtures, and a real server would refuse them otherwise):
//! - `metadata.name` `nameValue` → [`NAME`]: names must be lowercase RFC 1123 subdomains.
//! - `metadata.namespace` `namespaceValue` → [`NAMESPACE`] (a namespace name has the same rule);
//!   for cluster-scoped kinds the server drops it (not a test change: the expectation has none).
//! - `metadata.resourceVersion` removed: a real server refuses a create that sets one.
//!
//! **What the server owns** (the expectation takes these from the create response after
//! checking that the server made them): `metadata.uid` and `metadata.creationTimestamp` (new,
//! never the fixture's), `metadata.resourceVersion` (a number); `metadata.selfLink`,
//! `metadata.deletionTimestamp` and `metadata.deletionGracePeriodSeconds` erased (a real
//! server's create handler wipes them); `metadata.generation` set to 1 for custom resources and
//! objects with a `spec`, the fixture's kept otherwise. Everything else — `generateName`,
//! labels, annotations, `ownerReferences`, `finalizers`, `managedFields`, `spec`, `status`, every
//! other field — is the fixture's, except that a Secret's write-only `stringData` is folded
//! into `data` (base64), and that the built-in kinds whose create strategy resets `status`
//! (Deployment, Service, …: `ResourceDef::status_on_create`) get that status, as on a real
//! server. What a real server would still do differently is listed in docs/apiserver-sim.md's
//! divergences: replace `managedFields` with its own entry; give Pods, Namespaces and
//! PersistentVolume(Claim)s a computed status; and refuse most fixtures' placeholder values
//! (`typeValue`, …) in validation — so this test runs against the simulator only.

#[path = "../../compact-object/tests/support/corpus.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use apiserver_sim::{ApiServerSim, ResourceDef, Scope as SimScope, builtin_resources};
use kstore_watcher::{ResourceSet, SetOptions, Single, WatchConfig};
use kube::api::{ApiResource, DynamicObject, GetParams, GroupVersionKind, PostParams};
use kube::discovery::{Discovery, Scope};
use kube::{Client, Resource};
use serde_json::{Value, json};

/// The name every created fixture gets (each kind is its own resource, so one name serves all).
const NAME: &str = "corpus-object";
/// The namespace of every namespaced fixture.
const NAMESPACE: &str = "corpus";
/// Metadata the server erases on create.
const ERASED: [&str; 3] = ["selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"];

/// One fixture to create.
struct Case {
    file: String,
    /// The fixture after the test's changes (module docs): what is POSTed.
    body: Value,
    gvk: GroupVersionKind,
    /// Served as a built-in kind (else registered as a custom resource).
    builtin: bool,
    /// The status a create gives it (`ResourceDef::status_on_create`), for the built-in kinds
    /// whose create strategy resets it; the fixture's otherwise.
    status_on_create: Option<Value>,
    /// Filled in from discovery.
    resource: Option<(ApiResource, bool)>,
}

impl Case {
    fn namespaced(&self) -> bool {
        self.resource.as_ref().is_some_and(|(_, ns)| *ns)
    }

    fn api_resource(&self) -> &ApiResource {
        &self.resource.as_ref().expect("discovered").0
    }

    /// The store keys of the created object.
    fn keys(&self) -> Vec<&str> {
        if self.namespaced() { vec![NAMESPACE, NAME] } else { vec![NAME] }
    }

    /// The collection path (`/api/v1/namespaces/corpus/configmaps`, …).
    fn url_path(&self) -> String {
        let ns = self.namespaced().then_some(NAMESPACE);
        DynamicObject::url_path(self.api_resource(), ns)
    }
}

/// The fixtures with object metadata, each adjusted for the create; and how many were skipped.
fn cases(files: &[(String, String)]) -> (Vec<Case>, Vec<String>) {
    let builtins = builtin_resources();
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for (file, text) in files {
        let mut body: Value = serde_json::from_str(text).unwrap();
        let type_meta = (body["apiVersion"].as_str(), body["kind"].as_str());
        let (Some(api_version), Some(kind)) = type_meta else {
            skipped.push(file.clone());
            continue;
        };
        if body.pointer("/metadata/name").and_then(Value::as_str).is_none() {
            skipped.push(file.clone());
            continue;
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let def = builtins.iter().find(|d| d.group == group && d.version == version && d.kind == kind);
        let (builtin, status_on_create) = (def.is_some(), def.and_then(ResourceDef::status_on_create));
        let meta = body["metadata"].as_object_mut().unwrap();
        meta.insert("name".into(), json!(NAME));
        meta.insert("namespace".into(), json!(NAMESPACE));
        meta.remove("resourceVersion");
        cases.push(Case { file: file.clone(), body, gvk, builtin, status_on_create, resource: None });
    }
    (cases, skipped)
}

/// Registrations for the fixtures the simulator does not serve as built-in kinds.
fn custom_resources(cases: &[Case]) -> Vec<ResourceDef> {
    let builtins = builtin_resources();
    let mut defs: Vec<ResourceDef> = Vec::new();
    for case in cases.iter().filter(|c| !c.builtin) {
        let GroupVersionKind { group, version, kind } = &case.gvk;
        let plural = ApiResource::from_gvk(&case.gvk).plural;
        let scope = builtins.iter().find(|d| d.kind == *kind).map_or(SimScope::Namespaced, |d| d.scope);
        defs.push(ResourceDef::new(group, version, kind, &plural, scope));
    }
    defs
}

/// What the server must answer for `case` (see the module docs), given its create response.
fn expected(case: &Case, created: &Value) -> Value {
    let mut want = case.body.clone();
    let meta = want["metadata"].as_object_mut().unwrap();
    for field in ERASED {
        meta.remove(field);
    }
    if !case.namespaced() {
        meta.remove("namespace");
    }
    for field in ["uid", "creationTimestamp", "resourceVersion"] {
        meta.insert(field.into(), created["metadata"][field].clone());
    }
    if !case.builtin || case.body.get("spec").is_some() {
        meta.insert("generation".into(), json!(1));
    }
    if let Some(status) = &case.status_on_create {
        want["status"] = status.clone();
    }
    // A Secret's write-only stringData is folded into data (base64), as a real server does.
    if case.builtin
        && case.gvk.kind == "Secret"
        && let Some(Value::Object(strings)) = want.as_object_mut().unwrap().remove("stringData")
    {
        for (k, v) in strings {
            let bytes = k8s_openapi::ByteString(v.as_str().unwrap().as_bytes().to_vec());
            want["data"][k] = serde_json::to_value(bytes).unwrap();
        }
    }
    want
}

/// The server made these fields, not the client.
fn assert_server_owned(case: &Case, created: &Value) {
    let file = &case.file;
    let meta = &created["metadata"];
    let uid = meta["uid"].as_str().unwrap_or_default();
    assert!(!uid.is_empty() && uid != "uidValue", "{file}: uid {uid:?}");
    let ts = meta["creationTimestamp"].as_str().unwrap_or_default();
    assert!(ts.len() == 20 && ts > "2020" && case.body["metadata"]["creationTimestamp"] != ts, "{file}: {ts}");
    let rv = meta["resourceVersion"].as_str().unwrap_or_default();
    assert!(rv.parse::<u64>().is_ok_and(|n| n > 0), "{file}: resourceVersion {rv:?}");
    for field in ERASED {
        assert!(meta.get(field).is_none(), "{file}: metadata.{field} kept");
    }
}

/// A watch configuration with one resource per case (`r0`, `r1`, …), full or on-demand.
fn config(cases: &[Case], on_demand: bool) -> WatchConfig {
    let mut resources = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let ar = case.api_resource();
        let index_by: &[&str] =
            if case.namespaced() { &["metadata.namespace", "metadata.name"] } else { &["metadata.name"] };
        let mut r = json!({"apiVersion": ar.api_version, "resources": ar.plural, "indexBy": index_by});
        if on_demand {
            r["store"] = json!("on-demand");
        }
        resources.insert(format!("r{i}"), r);
    }
    WatchConfig::from_yaml(&serde_json::to_string(&json!({ "watchedResources": resources })).unwrap()).unwrap()
}

async fn synced(client: &Client, config: &WatchConfig) -> ResourceSet {
    let set = ResourceSet::start(client.clone(), config, SetOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), set.wait_for_sync()).await.expect("initial sync");
    set
}

/// The one object a set holds for `case`, if any.
async fn held(set: &ResourceSet, i: usize, case: &Case) -> Option<std::sync::Arc<compact_object::CompactObject>> {
    match set.snapshot().get_single(&format!("r{i}"), &case.keys()).await.unwrap() {
        Single::Found(obj) => Some(obj),
        Single::NotFound => None,
        Single::Ambiguous(n) => panic!("{}: {n} objects", case.file),
    }
}

/// A simulator serving every fixture kind, its client, and the cases with their resources
/// resolved through discovery; `None` without the corpus.
async fn setup() -> Option<(ApiServerSim, Client, Vec<Case>)> {
    let files = support::corpus()?;
    let (mut cases, skipped) = cases(&files);
    let mut builder = ApiServerSim::builder();
    for def in custom_resources(&cases) {
        builder = builder.resource(def);
    }
    let sim = builder.start().await.unwrap();
    let client = sim.client();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for case in &mut cases {
        let (ar, caps) = discovery.resolve_gvk(&case.gvk).unwrap_or_else(|| panic!("{}: not served", case.file));
        case.resource = Some((ar, caps.scope == Scope::Namespaced));
    }
    let builtin = cases.iter().filter(|c| c.builtin).count();
    println!(
        "{} fixtures: {builtin} built-in kinds, {} registered as custom resources, {} skipped (not objects with metadata): {skipped:?}",
        files.len(),
        cases.len() - builtin,
        skipped.len()
    );
    assert!(builtin >= 45, "{builtin} built-in kinds");
    assert!(cases.len() >= 165, "{} cases", cases.len());
    Some((sim, client, cases))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_round_trips_through_create_get_list_watch_and_fetch() {
    let Some((_sim, client, cases)) = setup().await else { return };
    // Started before any object exists: every object reaches it in a watch event.
    let watched = synced(&client, &config(&cases, false)).await;

    let mut want = Vec::new();
    for case in &cases {
        let body = serde_json::to_vec(&case.body).unwrap();
        let req = kube::core::Request::new(case.url_path()).create(&PostParams::default(), body).unwrap();
        let created: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
        assert_server_owned(case, &created);
        let expected = expected(case, &created);
        assert_eq!(created, expected, "{}: create response", case.file);

        let req = kube::core::Request::new(case.url_path()).get(NAME, &GetParams::default()).unwrap();
        let got: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
        assert_eq!(got, expected, "{}: GET", case.file);
        want.push(expected);
    }

    // Started after: every object reaches it in a list page (built-in kinds' items without
    // apiVersion/kind, restored by kstore). On demand: references from a metadata-only list,
    // objects fetched by GET when read.
    let listed = synced(&client, &config(&cases, false)).await;
    let on_demand = synced(&client, &config(&cases, true)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (i, (case, want)) in cases.iter().zip(&want).enumerate() {
        let from_watch = loop {
            if let Some(obj) = held(&watched, i, case).await {
                break obj;
            }
            assert!(tokio::time::Instant::now() < deadline, "{}: the watch event never arrived", case.file);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let from_list = held(&listed, i, case).await.unwrap_or_else(|| panic!("{}: not listed", case.file));
        let fetched = held(&on_demand, i, case).await.unwrap_or_else(|| panic!("{}: not fetched", case.file));
        assert_eq!(from_watch.to_value(), *want, "{}: watched", case.file);
        assert_eq!(from_list.as_bytes(), from_watch.as_bytes(), "{}: listed vs watched", case.file);
        assert_eq!(fetched.as_bytes(), from_watch.as_bytes(), "{}: fetched vs watched", case.file);
        let type_meta = (from_list.root().get("kind").and_then(|k| k.as_str()), case.gvk.kind.as_str());
        assert_eq!(type_meta.0, Some(type_meta.1), "{}: kind restored", case.file);
    }
    watched.stop();
    listed.stop();
    on_demand.stop();
}

fn kubectl_available() -> bool {
    std::process::Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success())
}

/// `kubectl --server <url> <args>` with `stdin` as its standard input; (success, stdout, stderr).
fn kubectl(url: &str, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("kubectl")
        .args(["--server", url, "--request-timeout=10s"])
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_and_gets_fixtures_unchanged() {
    if !kubectl_available() {
        println!("kubectl not on PATH; skipping");
        return;
    }
    let Some((sim, _client, cases)) = setup().await else { return };
    // Built-in kinds (namespaced, cluster-scoped, with and without spec and status) and a
    // custom resource.
    let picked = [
        "core.v1.ConfigMap.json",
        "apps.v1.Deployment.json",
        "rbac.authorization.k8s.io.v1.ClusterRole.json",
        "apps.v1beta2.StatefulSet.json",
    ];
    for file in picked {
        let case = cases.iter().find(|c| c.file == file).unwrap();
        let ar = case.api_resource();
        let resource =
            if ar.group.is_empty() { ar.plural.clone() } else { format!("{}.{}.{}", ar.plural, ar.version, ar.group) };
        let url = sim.url();
        let body = serde_json::to_vec(&case.body).unwrap();
        let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
            kubectl(&url, &["create", "-f", "-", "-o", "json", "--show-managed-fields"], &body)
        })
        .await
        .unwrap();
        assert!(ok, "{file}: kubectl create: {stderr}");
        let created: Value = serde_json::from_str(&stdout).unwrap();
        assert_server_owned(case, &created);
        assert_eq!(created, expected(case, &created), "{file}: kubectl create -o json");

        let url = sim.url();
        let mut args: Vec<String> =
            ["get", &resource, NAME, "-o", "json", "--show-managed-fields"].map(str::to_owned).to_vec();
        if case.namespaced() {
            args.extend(["-n".to_owned(), NAMESPACE.to_owned()]);
        }
        let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            kubectl(&url, &args, b"")
        })
        .await
        .unwrap();
        assert!(ok, "{file}: kubectl get: {stderr}");
        let got: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(got, created, "{file}: kubectl get -o json");
    }
}
