//! Initial sync of generated Ingresses from apiserver-sim: kstore's watcher into a MemoryStore
//! vs a kube-rs reflector of the same resource (dynamic and typed), side by side in one run.
//! Reports wall time, peak heap during the sync and steady-state heap after it, measured with
//! a counting allocator. The simulator runs in a child process (this same binary), so only the
//! client side is counted.
//!
//! `cargo bench -p kstore-watcher --bench sync` (`KSTORE_SYNC_OBJECTS=50000` by default; `ROUNDS=3`;
//! `KSTORE_SYNC_PEERS=typed` measures only the peers whose names contain `typed`).

#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apiserver_sim::ApiServerSim;
use apiserver_sim::generate::{Cluster, Kind};
use futures::StreamExt;
use heap_meter::CountingAllocator;
use k8s_openapi::api::networking::v1::Ingress;
use kstore_watcher::{ResourceSet, ResourceWatcher, SetOptions, WatchConfig, WatchOptions, WatchedResource};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{reflector, watcher as kube_watcher};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// The adapter peer exists only where the adapter does (this file is also built against the
/// code before it, for the side-by-side figure).
const KSTORE_REFLECT: bool = true;

/// `KSTORE_SYNC_PEERS=a,b`: measure only the peers whose names contain one of these (all by
/// default), e.g. `KSTORE_SYNC_PEERS=typed` for the typed peers side by side.
fn wanted(name: &str) -> bool {
    match std::env::var("KSTORE_SYNC_PEERS") {
        Ok(v) if !v.is_empty() => v.split(',').any(|p| name.contains(p.trim())),
        _ => true,
    }
}

fn objects() -> usize {
    std::env::var("KSTORE_SYNC_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000)
}

/// Child mode: serve a generated cluster of Ingresses and print the URL.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let n = objects();
        let apps = 100;
        let cluster = Cluster::new(42).namespaces(n.div_ceil(apps)).apps_per_namespace(apps).only(&[Kind::Ingress]);
        let sim = ApiServerSim::builder().objects(cluster.iter().take(n)).start().await.unwrap();
        println!("{}", sim.url());
        std::io::stdout().flush().unwrap();
        // Serve until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
        })
        .await
        .unwrap();
    });
}

struct Measured {
    name: &'static str,
    time: Duration,
    peak: usize,
    steady: usize,
    objects: usize,
}

async fn measure<F, Fut, H>(name: &'static str, run: F) -> Measured
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (H, usize)>,
{
    let base = heap_meter::live();
    heap_meter::reset_peak();
    let t = Instant::now();
    let (held, objects) = run().await;
    let time = t.elapsed();
    // Let the runtime settle (drop buffers of finished requests) before reading the steady state.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let steady = heap_meter::live().saturating_sub(base);
    let peak = heap_meter::peak().saturating_sub(base);
    drop(held);
    settle_heap().await;
    Measured { name, time, peak, steady, objects }
}

/// Aborted tasks free their stores asynchronously: wait until the heap stops shrinking so the
/// next measurement starts from a clean baseline.
async fn settle_heap() {
    // Three quiet readings in a row (a large store is freed in pieces by the aborted task, and
    // one quiet reading between pieces let the next peer start from an inflated baseline).
    let mut last = heap_meter::live();
    let mut quiet = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = heap_meter::live();
        quiet = if now.abs_diff(last) < (64 << 10) { quiet + 1 } else { 0 };
        if quiet == 3 {
            break;
        }
        last = now;
    }
}

/// What the careful kube-rs user strips in `.modify()`: the same fields kstore's `ignoreFields`
/// removes in these benchmarks.
fn strip(o: &mut Ingress) {
    o.metadata.managed_fields = None;
    if let Some(a) = o.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

async fn kstore(client: kube::Client, ignore: bool) -> (ResourceWatcher, usize) {
    let r: WatchedResource = serde_yaml_ng::from_str(
        "{apiVersion: networking.k8s.io/v1, resources: ingresses, indexBy: [metadata.namespace, metadata.name]}",
    )
    .unwrap();
    let global: Vec<String> = if ignore {
        vec![
            "metadata.managedFields".into(),
            "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']".into(),
        ]
    } else {
        vec![]
    };
    let w = ResourceWatcher::start(client, r.compile("ingresses", &global).unwrap(), WatchOptions::default())
        .await
        .unwrap();
    w.wait_for_sync().await;
    let n = w.store().len();
    (w, n)
}

/// The same resource through a `ResourceSet` (what a controller starts from its YAML).
async fn kstore_set(client: kube::Client) -> (ResourceSet, usize) {
    let config = WatchConfig::from_yaml(
        r#"
ignoreFields: [metadata.managedFields, "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"]
watchedResources:
  ingresses: {apiVersion: networking.k8s.io/v1, resources: ingresses, indexBy: [metadata.namespace, metadata.name]}
"#,
    )
    .unwrap();
    let set = ResourceSet::start(client, &config, SetOptions::default()).await.unwrap();
    set.wait_for_sync().await;
    let n = set.snapshot().len("ingresses").unwrap();
    (set, n)
}

async fn reflector_dynamic(client: kube::Client) -> (impl Sized, usize) {
    let ar = ApiResource::erase::<Ingress>(&());
    let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
    let reader = writer.as_reader();
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let task =
        tokio::spawn(reflector(writer, kube_watcher(api, kube_watcher::Config::default())).for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    let n = reader.len();
    ((reader, AbortOnDrop(task)), n)
}

async fn reflector_typed(client: kube::Client, careful: bool) -> (impl Sized, usize) {
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = reflector::store::<Ingress>();
    let api: Api<Ingress> = Api::all(client);
    let stream = kube_watcher(api, kube_watcher::Config::default()).modify(move |o| {
        if careful {
            strip(o)
        }
    });
    let task = tokio::spawn(reflector(writer, stream).for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    let n = reader.len();
    ((reader, AbortOnDrop(task)), n)
}

/// A typed store fed by kstore's adapter from the same kind of stream as `reflector_typed`.
async fn kstore_reflect_typed(client: kube::Client) -> (impl Sized, usize) {
    use kube::runtime::WatchStreamExt;
    let indexer = indexer::Indexer::new(["metadata.namespace", "metadata.name"], [""; 0]).unwrap();
    let writer = kstore_watcher::reflect::Writer::<Ingress>::typed(indexer).unwrap();
    let reader = writer.reader();
    let api: Api<Ingress> = Api::all(client);
    let task = tokio::spawn(
        kstore_watcher::reflect::reflector(writer, kube_watcher(api, kube_watcher::Config::default()).modify(strip))
            .for_each(|_| async {}),
    );
    reader.wait_until_ready().await.unwrap();
    let n = reader.store().len();
    ((reader, AbortOnDrop(task)), n)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn main() {
    if std::env::var_os("KSTORE_SYNC_SERVE").is_some() {
        return serve();
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run a tiny size then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 200 } else { objects() };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("KSTORE_SYNC_SERVE", "1")
        .env("KSTORE_SYNC_OBJECTS", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let url = url.trim().to_owned();
    let rounds: usize = if quick { 1 } else { std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3) };

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let results = rt.block_on(async {
        let config = kube::Config::new(url.parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        // Warm-up: connection pools, TLS-free HTTP client state, the simulator's caches.
        drop(kstore(client.clone(), true).await);
        drop(reflector_dynamic(client.clone()).await);
        settle_heap().await;
        let mut all: Vec<Measured> = Vec::new();
        for _ in 0..rounds {
            if wanted("kstore MemoryStore (ignoreFields)") {
                all.push(measure("kstore MemoryStore (ignoreFields)", || kstore(client.clone(), true)).await);
            }
            if wanted("kstore MemoryStore (no ignoreFields)") {
                all.push(measure("kstore MemoryStore (no ignoreFields)", || kstore(client.clone(), false)).await);
            }
            if wanted("kstore ResourceSet (ignoreFields)") {
                all.push(measure("kstore ResourceSet (ignoreFields)", || kstore_set(client.clone())).await);
            }
            if wanted("kube-rs reflector DynamicObject") {
                all.push(measure("kube-rs reflector DynamicObject", || reflector_dynamic(client.clone())).await);
            }
            if wanted("kube-rs reflector typed Ingress") {
                all.push(measure("kube-rs reflector typed Ingress", || reflector_typed(client.clone(), false)).await);
            }
            if wanted("kube-rs typed Ingress + .modify()") {
                all.push(measure("kube-rs typed Ingress + .modify()", || reflector_typed(client.clone(), true)).await);
            }
            if KSTORE_REFLECT && wanted("kstore reflect typed + .modify()") {
                all.push(measure("kstore reflect typed + .modify()", || kstore_reflect_typed(client.clone())).await);
            }
        }
        all
    });
    drop(child.stdin.take());
    let _ = child.wait();

    println!("\ninitial sync of {n} Ingresses from apiserver-sim (best of {rounds} rounds per peer)\n");
    println!(
        "| {:<38} | {:>9} | {:>8} | {:>12} | {:>12} | {:>10} | {:>11} |",
        "peer", "sync ms", "× kube", "peak MiB", "steady MiB", "peak/steady", "bytes/object"
    );
    println!("|{:-<40}|{:->11}|{:->10}|{:->14}|{:->14}|{:->12}|{:->13}|", "", "", "", "", "", "", "");
    let best = |name: &str| {
        results.iter().filter(|m| m.name == name).min_by_key(|m| m.time).map(|m| (m.time, m.peak, m.steady, m.objects))
    };
    // Ratios against the dynamic kube-rs reflector, or the first peer measured when it was not.
    let (kube_time, ..) = best("kube-rs reflector DynamicObject").or_else(|| best(results[0].name)).unwrap();
    let mut names: Vec<&str> = Vec::new();
    for m in &results {
        if !names.contains(&m.name) {
            names.push(m.name);
        }
    }
    for name in names {
        let (time, peak, steady, objects) = best(name).unwrap();
        assert_eq!(objects, n, "{name} synced every object");
        println!(
            "| {:<38} | {:>9.1} | {:>8.2} | {:>12.1} | {:>12.1} | {:>10.2} | {:>11} |",
            name,
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / kube_time.as_secs_f64(),
            peak as f64 / (1 << 20) as f64,
            steady as f64 / (1 << 20) as f64,
            peak as f64 / steady.max(1) as f64,
            steady / objects.max(1)
        );
    }
}
