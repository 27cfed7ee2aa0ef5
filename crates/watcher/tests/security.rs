//! Secret data never leaks: a demo-style run (generated cluster with TLS Secrets, a
//! `ResourceSet` with on-demand secrets, render-like reads, churn, a forced relist, fetch
//! errors) with every tracing event at TRACE level captured, then the captured logs and the
//! `Debug` output of stores, watchers, snapshots, references and errors are searched for the
//! Secrets' data. The request log proves Secret bodies were never listed or watched.
//!
//! A Secret created with `kubectl apply` carries its data a second time, in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, which a metadata-only watch
//! delivers: the second test checks, over the bytes held (the heap while the metadata feed
//! lists such Secrets, the references' own bytes and their `Debug`), that on-demand Secrets'
//! references and the feed building them never hold it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiserver_sim::generate::Cluster;
use apiserver_sim::{ApiServerSim, Matcher, Rejection, Verb};
use kstore_watcher::{ResourceSet, SetOptions, WatchConfig};
use serde_json::{Value, json};
use store_types::Store;

#[global_allocator]
static ALLOC: heap_meter::CountingAllocator = heap_meter::CountingAllocator;

/// The tests of this binary run one at a time: one measures the process's heap.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An in-memory log sink.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

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
    indexBy: [metadata.namespace, metadata.name]
  endpointslices:
    apiVersion: discovery.k8s.io/v1
    resources: endpointslices
    indexBy: [metadata.namespace, "metadata.labels['kubernetes.io/service-name']"]
  secrets:
    apiVersion: v1
    resources: secrets
    indexBy: [metadata.namespace, metadata.name]
    store: on-demand
    cacheTTL: 1m
"#;

/// The sensitive strings of a Secret: each data value, and windows of it (a log line could
/// hold a truncated value).
fn sensitive(secret: &Value, out: &mut Vec<String>) {
    for v in secret.pointer("/data").and_then(Value::as_object).into_iter().flat_map(|m| m.values()) {
        let s = v.as_str().unwrap_or_default();
        if s.len() < 24 {
            continue;
        }
        out.push(s.to_owned());
        for start in [0, s.len() / 2, s.len() - 24] {
            out.push(s[start..start + 24].to_owned());
        }
    }
}

fn leaks<'a>(text: &str, secrets: &'a [String]) -> Vec<&'a str> {
    secrets.iter().filter(|s| text.contains(s.as_str())).map(String::as_str).collect()
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_data_never_reaches_logs_or_debug_output() {
    let _serial = SERIAL.lock().await;
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || sink.clone()).finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");

    let cluster = Cluster::new(42).namespaces(2).apps_per_namespace(3).build();
    let mut secret_values = Vec::new();
    for o in cluster.iter().filter(|o| o["kind"] == "Secret") {
        sensitive(o, &mut secret_values);
    }
    assert!(secret_values.len() >= 6 * 2 * 4, "certificates and keys to look for");
    let sim = ApiServerSim::builder().objects(cluster).start().await.unwrap();
    let config = WatchConfig::from_yaml(CONFIG).unwrap();
    let options = SetOptions { debounce: Some(Duration::from_millis(50)), page_size: Some(5), ..Default::default() };
    let set = ResourceSet::start(sim.client(), &config, options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), set.wait_for_sync()).await.expect("initial sync");
    let mut debug_output = vec![format!("{set:?}")];

    // Render-like reads: every ingress's TLS secret, its services and their endpoints.
    let render = |set: &ResourceSet| {
        let view = set.snapshot();
        async move {
            let mut out = Vec::new();
            let mut secrets_read = 0;
            for ing in view.list("ingresses").await.unwrap().iter() {
                let ns = ing.pointer("/metadata/namespace").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
                let tls_names: Vec<String> = (0..4)
                    .filter_map(|i| {
                        ing.pointer(&format!("/spec/tls/{i}/secretName")).and_then(|n| n.as_str().map(str::to_owned))
                    })
                    .collect();
                for name in tls_names {
                    let single = view.get_single("secrets", &[&ns, &name]).await;
                    out.push(format!("{single:?}").len().to_string()); // touched, not kept
                    if let Ok(s) = &single
                        && let Some(o) = s.object()
                    {
                        assert!(o.pointer("/data/tls.crt").is_some(), "the template gets the certificate");
                        secrets_read += 1;
                    }
                }
                let svc = view.fetch("services", &[&ns]).await.unwrap();
                let eps = view.fetch("endpointslices", &[&ns]).await.unwrap();
                out.push(format!("{} services, {} slices", svc.len(), eps.len()));
            }
            (out, secrets_read)
        }
    };
    let (_, read) = render(&set).await;
    assert!(read >= 6, "the secrets were read ({read})");

    // Churn: new certificates (their data must not leak either), a new secret, a deletion.
    let secrets = sim.list("secrets", None).unwrap();
    for (i, s) in secrets.iter().enumerate().take(3) {
        let mut s = s.clone();
        let fresh = format!("{}{i}", "Q0VSVElGSUNBVEUtUk9UQVRFRC1LRVktTUFURVJJQUwt".repeat(3));
        s["data"]["tls.crt"] = json!(fresh);
        s["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        sensitive(&s, &mut secret_values);
        sim.apply(s).unwrap();
    }
    let new_secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"namespace": str_at(&secrets[0], "/metadata/namespace"), "name": "brand-new-tls"},
        "data": {"tls.crt": "TkVXLUNFUlRJRklDQVRFLURBVEEtVEhBVC1NVVNULU5PVC1MRUFL", "tls.key": "TkVXLVBSSVZBVEUtS0VZLURBVEEtVEhBVC1NVVNULU5PVC1MRUFL"}});
    sensitive(&new_secret, &mut secret_values);
    sim.create(new_secret).unwrap();
    sim.delete("secrets", Some(str_at(&secrets[5], "/metadata/namespace")), str_at(&secrets[5], "/metadata/name"))
        .unwrap();

    // A forced relist (410), with errors on the way: failed fetches and a malformed line.
    let faults = sim.faults();
    tokio::time::timeout(Duration::from_secs(10), sim.wait_for_watches(4)).await.unwrap();
    faults.pause_events();
    sim.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "x", "name": "y"}})).unwrap();
    faults.compact();
    faults.end_watches();
    faults.malformed_event();
    faults.resume_events();
    let cached = set.watcher("secrets").unwrap().store().as_cached().unwrap().clone();
    let want = sim.count("secrets").unwrap();
    eventually("references relisted", || cached.references().len() == want).await;
    cached.clear_cache();
    faults.reject_next(Matcher::verb(Verb::Get).resource("secrets"), 4, Rejection::status(500));
    for s in sim.list("secrets", None).unwrap().iter().take(4) {
        let keys = [str_at(s, "/metadata/namespace"), str_at(s, "/metadata/name")];
        let result = Store::get(&cached, &keys).await;
        if let Err(e) = &result {
            debug_output.push(format!("{e:?} / {e}"));
        }
        let detailed = cached.get_detailed(&keys).await;
        if let Ok(d) = &detailed {
            debug_output.push(format!("{d:?}"));
        }
    }
    faults.reset();
    // Converged: every reference at the simulator's version, and reads return current data.
    eventually("references current", || {
        sim.list("secrets", None).unwrap().iter().all(|s| {
            let keys = [str_at(s, "/metadata/namespace"), str_at(s, "/metadata/name")];
            cached.get_references(&keys).ok().and_then(|r| r.first().map(|r| r.resource_version().map(str::to_owned)))
                == Some(Some(str_at(s, "/metadata/resourceVersion").to_owned()))
        })
    })
    .await;
    // The four rejected fetches back off (1 s, then doubling): reads of those objects fail
    // fast until it expires, so read until the backoff has passed (bounded, like `eventually`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, read) = render(&set).await;
        if read >= 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "reads after the relist ({read})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Debug output of everything a controller might print.
    debug_output.push(format!("{set:?}"));
    debug_output.push(format!("{cached:?}"));
    debug_output.push(format!("{:?}", cached.references().list()));
    debug_output.push(format!("{:?}", cached.cache_stats()));
    for (name, w) in set.watchers() {
        debug_output.push(format!("{name}: {w:?} {:?}", w.store()));
    }
    let view = set.snapshot();
    debug_output.push(format!("{:?}", view.fetch("secrets", &["a", "b", "c"]).await));
    debug_output.push(format!("{:?}", view.list("nope").await));
    let debug = debug_output.join("\n");
    assert!(debug.contains("CachedHandle"), "the Debug output was produced");
    assert_eq!(leaks(&debug, &secret_values), Vec::<&str>::new(), "secret data in Debug output");

    set.stop();
    let text = logs.text();
    assert!(text.lines().count() > 20, "logs were captured at TRACE ({} lines)", text.lines().count());
    assert!(text.contains("initial sync complete"), "the watcher's own logs are in the capture");
    let leaked = leaks(&text, &secret_values);
    if !leaked.is_empty() {
        let line = text.lines().find(|l| leaked.iter().any(|s| l.contains(s))).unwrap_or_default();
        panic!("secret data in the logs ({} strings), e.g. in: {}", leaked.len(), &line[..line.len().min(400)]);
    }

    // The on-demand path never listed or watched Secret bodies.
    let full: Vec<_> =
        sim.requests().filter(|r| r.resource.as_deref() == Some("secrets") && r.name.is_none() && !r.metadata_only);
    assert!(full.is_empty(), "full Secret lists/watches were served: {full:?}");
    let metadata_lists = sim.requests().filter(|r| {
        r.resource.as_deref() == Some("secrets") && r.name.is_none() && r.metadata_only && r.verb == Verb::List
    });
    assert!(metadata_lists.len() >= 2, "initial list and the forced relist were metadata-only");
}

/// `CompactObject`'s `Debug` is a summary (kind, identity, resourceVersion, size) that never
/// shows values, so `{:?}` of a Secret read from a store (or of a `Single`/`Objects` holding
/// one) cannot print its data.
#[test]
fn debug_of_a_secret_object_redacts_its_data() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "a", "name": "b"},
        "data": {"tls.key": "UFJJVkFURS1LRVktREFUQS1ORVZFUi1JTi1ERUJVRw=="}});
    let o = compact_object::CompactObject::from_value(&secret).unwrap();
    let debug = format!("{o:?} {:?}", kstore_watcher::Single::Found(Arc::new(o.clone())));
    assert!(!debug.contains("UFJJVkFURS1LRVktREFUQS1ORVZFUi1JTi1ERUJVRw=="), "{debug}");
}

/// A Secret as `kubectl apply -f` creates it: the manifest as sent, plus the
/// last-applied-configuration annotation holding that manifest (data included) as compact JSON
/// with an empty `annotations` map and a trailing newline, as kubectl writes it.
fn kubectl_applied_secret(ns: &str, name: &str, data_bytes: usize) -> Value {
    let crt: String = format!("LS0tLS1CRUdJTi1DRVJUSUZJQ0FURS0{name}").chars().cycle().take(data_bytes).collect();
    let key: String = format!("LS0tLS1CRUdJTi1QUklWQVRFLUtFWS0{name}").chars().cycle().take(data_bytes / 4).collect();
    let manifest = json!({"apiVersion": "v1", "data": {"tls.crt": crt, "tls.key": key}, "kind": "Secret",
        "metadata": {"annotations": {}, "name": name, "namespace": ns}, "type": "kubernetes.io/tls"});
    let mut applied = manifest.clone();
    applied["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": format!("{}\n", serde_json::to_string(&manifest).unwrap())
    });
    applied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applied_secret_data_is_never_held_by_references_or_the_metadata_feed() {
    let _serial = SERIAL.lock().await;
    const SECRETS: usize = 200;
    const DATA: usize = 40 * 1024;
    let secrets: Vec<Value> =
        (0..SECRETS).map(|i| kubectl_applied_secret("tls", &format!("cert-{i:03}"), DATA)).collect();
    let mut secret_values = Vec::new();
    for s in &secrets {
        sensitive(s, &mut secret_values);
    }
    let sim = ApiServerSim::builder().objects(secrets).start().await.unwrap();
    // Precondition: what the metadata-only watch receives holds the data (in the annotation).
    let stored = sim.get("secrets", Some("tls"), "cert-007").unwrap().unwrap();
    let annotation = str_at(&stored, "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration");
    assert!(!leaks(annotation, &secret_values).is_empty(), "the last-applied annotation carries the data");
    let metadata: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(sim.client(), "tls");
    let pom = metadata.get_metadata("cert-007").await.unwrap();
    assert!(!leaks(&format!("{pom:?}"), &secret_values).is_empty(), "a metadata-only GET delivers it");
    drop((stored, pom));

    let config = WatchConfig::from_yaml(
        r#"
watchedResources:
  secrets:
    apiVersion: v1
    resources: secrets
    indexBy: [metadata.namespace, metadata.name]
    store: on-demand
"#,
    )
    .unwrap();
    // The simulator computes (and keeps) each object's metadata form on first request: a
    // metadata list now, so the measurement below sees only the watcher's allocations.
    assert_eq!(metadata.list_metadata(&kube::api::ListParams::default()).await.unwrap().items.len(), SECRETS);
    let options = SetOptions { page_size: Some(5), ..Default::default() };
    assert!(heap_meter::installed());
    let before = heap_meter::live();
    heap_meter::reset_peak();
    let set = ResourceSet::start(sim.client(), &config, options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), set.wait_for_sync()).await.expect("initial sync");
    let peak = heap_meter::peak().saturating_sub(before);
    let data_total = SECRETS * (DATA + DATA / 4);
    // The feed holds one page at a time (5 Secrets' metadata, as text and decoded) on its way
    // to the references; holding the last-applied annotations of a whole list would take
    // `data_total` at least (without the redaction the peak was 12 MB here).
    assert!(
        peak < data_total / 3,
        "the metadata feed's heap peaked at {peak} bytes while listing {SECRETS} kubectl-applied Secrets \
         ({data_total} bytes of data in their annotations)"
    );

    let cached = set.watcher("secrets").unwrap().store().as_cached().unwrap().clone();
    let references = cached.references().list();
    assert_eq!(references.len(), SECRETS);
    for r in references.iter() {
        // A reference's own heap is its four identity fields, nothing else.
        let fields = r.namespace().len()
            + r.name().len()
            + r.uid().map_or(0, str::len)
            + r.resource_version().map_or(0, str::len);
        assert_eq!(store_types::KubeObject::heap_size(&**r), fields, "{r:?}");
        assert_eq!(leaks(&format!("{r:?}"), &secret_values), Vec::<&str>::new());
    }
    let debug = format!("{:?} {cached:?} {:?} {set:?}", references, cached.cache_stats());
    assert_eq!(leaks(&debug, &secret_values), Vec::<&str>::new(), "secret data in Debug output");
    // Reading one on demand returns the data (the object itself), and only that object is held.
    let one = Store::get(&cached, &["tls", "cert-007"]).await.unwrap();
    assert!(one[0].pointer("/data/tls.crt").is_some());
    assert_eq!(cached.cache_stats().entries, 1);
    set.stop();
}
