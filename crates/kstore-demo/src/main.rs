//! `kstore-demo` is the program behind `cargo xtask demo`: it starts apiserver-sim with a
//! generated, realistic cluster (or connects read-only to a real one with `--kubeconfig`),
//! runs a `ResourceSet` configured from `demo.yaml` (the Go original's format), and shows a
//! person at a terminal what kstore does: sync progress, memory per object beside a kube-rs
//! reflector of the same resources (both measured in this run with a counting allocator),
//! lookup latencies, an HAProxy-style configuration rendered from one snapshot with the template
//! shipped beside this crate (`haproxy.cfg.j2`, through `kstore-render`), and a few seconds of
//! churn with debounced change notifications, a forced 410 and a re-render with its diff.
//!
//! It is a demonstration, not a library; `--json` prints the figures for scripts.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver_sim::ApiServerSim;
use apiserver_sim::generate::Cluster;
use compact_object::CompactObject;
use futures::StreamExt;
use heap_meter::CountingAllocator;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, reflector, watcher as kube_watcher};
use render::{Renderer, Undefined};
use serde_json::{Value, json};
use store_types::ChangeStats;
use tokio::sync::mpsc;
use watcher::{ResourceSet, SetOptions, Single, StoreHandle, WatchConfig};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const DEFAULT_CONFIG: &str = include_str!("../demo.yaml");
/// The HAProxy-style template rendered from the `ResourceSet` (its resource names are
/// `demo.yaml`'s).
const TEMPLATE: &str = include_str!("../haproxy.cfg.j2");
const TEMPLATE_NAME: &str = "haproxy.cfg.j2";

type BoxError = Box<dyn Error + Send + Sync>;

struct Args {
    namespaces: usize,
    apps: usize,
    seed: u64,
    json: bool,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    config: Option<PathBuf>,
    churn: Duration,
    render: Option<PathBuf>,
    template: Option<PathBuf>,
}

const USAGE: &str = "\
usage: kstore-demo [--small] [--namespaces N] [--apps M] [--seed S] [--churn-seconds S]
                   [--config FILE] [--kubeconfig PATH [--context NAME]] [--json]
                   [--render FILE] [--template FILE]

  default: apiserver-sim in-process with 100 namespaces × 20 apps (2,000 Ingresses, Services,
  TLS Secrets and ConfigMaps, ~3,000 EndpointSlices); --small: 10 × 5.
  --kubeconfig/--context: read-only against a real cluster (no writes, no churn).
  --render FILE: write the whole rendered configuration (the last render) to FILE.
  --template FILE: render this minijinja template instead of the shipped haproxy.cfg.j2.";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        namespaces: 100,
        apps: 20,
        seed: 7,
        json: false,
        kubeconfig: None,
        context: None,
        config: None,
        churn: Duration::from_secs(3),
        render: None,
        template: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"));
        let num = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name}: {v:?} is not a number"));
        match arg.as_str() {
            "--small" => (a.namespaces, a.apps, a.churn) = (10, 5, Duration::from_secs(1)),
            "--namespaces" => a.namespaces = num("--namespaces", value("--namespaces")?)? as usize,
            "--apps" => a.apps = num("--apps", value("--apps")?)? as usize,
            "--seed" => a.seed = num("--seed", value("--seed")?)?,
            "--churn-seconds" => a.churn = Duration::from_secs(num("--churn-seconds", value("--churn-seconds")?)?),
            "--config" => a.config = Some(value("--config")?.into()),
            "--kubeconfig" => a.kubeconfig = Some(value("--kubeconfig")?.into()),
            "--context" => a.context = Some(value("--context")?),
            "--json" => a.json = true,
            "--render" => a.render = Some(value("--render")?.into()),
            "--template" => a.template = Some(value("--template")?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if a.namespaces == 0 || a.apps == 0 {
        return Err("--namespaces and --apps must be at least 1".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints for people (not in `--json` mode).
struct Out {
    quiet: bool,
}

impl Out {
    fn line(&self, s: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", s.as_ref());
        }
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn per_op(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n.max(1) as f64
}

/// Lets freed buffers (finished HTTP responses, list pages) go before a heap reading.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn client_for(args: &Args) -> Result<kube::Client, BoxError> {
    let path = args.kubeconfig.as_ref().ok_or("no kubeconfig")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let options = kube::config::KubeConfigOptions { context: args.context.clone(), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn run(args: &Args) -> Result<Value, BoxError> {
    let out = Out { quiet: args.json };
    let mut report = serde_json::Map::new();

    // 1. The cluster: an embedded simulator with a generated cluster, or a real one.
    let (sim, client) = if let Some(path) = &args.kubeconfig {
        out.line(format!("kstore demo — read-only against {}", path.display()));
        (None, client_for(args).await?)
    } else {
        let t = Instant::now();
        let cluster = Cluster::new(args.seed).namespaces(args.namespaces).apps_per_namespace(args.apps);
        let sim = ApiServerSim::builder().objects(cluster.iter()).start().await?;
        out.line(format!(
            "kstore demo — apiserver-sim at {} with a generated cluster ({} namespaces × {} apps, seed {}) in {}",
            sim.url(),
            args.namespaces,
            args.apps,
            args.seed,
            ms(t.elapsed())
        ));
        let client = sim.client();
        (Some(sim), client)
    };

    // 2. The watch configuration.
    let text = match &args.config {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => DEFAULT_CONFIG.to_owned(),
    };
    let config = WatchConfig::from_yaml(&text)?;
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(sim) = &sim {
        for (name, r) in &config.watched_resources {
            expected.insert(name.clone(), sim.count(&r.resources)?);
        }
    }

    // 3. Start every watcher; show progress until all are synced.
    let (tx, mut changes) = mpsc::unbounded_channel::<(String, ChangeStats, Instant)>();
    let options = SetOptions {
        debounce: Some(Duration::from_millis(500)),
        on_change: Some(Arc::new(move |name: &str, stats| {
            let _ = tx.send((name.to_owned(), stats, Instant::now()));
        })),
        ..Default::default()
    };
    // The embedded simulator shares this process's heap: warm its lazily built per-object
    // forms (the PartialObjectMetadata it serves to metadata-only watches) so that the
    // measurements below count the clients' memory only, whichever client lists first.
    if sim.is_some() {
        warm_simulator(&client, &config).await?;
    }
    settle().await;
    let heap_before = heap_meter::live();
    let started = Instant::now();
    let set = ResourceSet::start(client.clone(), &config, options).await?;
    let sync_times = show_progress(&set, &expected, started, &out).await?;
    let total_sync = started.elapsed();
    settle().await;
    let heap_set = heap_meter::live().saturating_sub(heap_before);
    out.line(format!(
        "\nall {} resources synced in {}; the whole ResourceSet holds {} of heap (counting allocator)",
        sync_times.len(),
        ms(total_sync),
        mib(heap_set)
    ));

    // 4. Memory beside two kube-rs peers of the same resources (measured one at a time): the
    //    careful user (a typed reflector whose `.modify()` strips the fields kstore's
    //    `ignoreFields` removes; for on-demand stores a `metadata_watcher` reflector, bodies
    //    fetched with `Api::get` when read) and the naive one (a DynamicObject reflector holding
    //    objects as delivered).
    out.line("\nmemory — kstore vs kube-rs peers of the same resource, this run (careful: typed reflector + .modify()");
    out.line(
        "stripping the same fields, or metadata_watcher for on-demand stores; naive: DynamicObject as delivered):",
    );
    out.line(format!(
        "{:<10} {:>7} {:>9} {:>8} {:>7} {:>9} | {:>8} {:>7} {:>6} | {:>8} {:>7} {:>6}",
        "resource",
        "objects",
        "store",
        "sync",
        "B/obj",
        "total",
        "careful",
        "B/obj",
        "ratio",
        "naive",
        "B/obj",
        "ratio"
    ));
    let mut mem_rows = Vec::new();
    let (mut careful_total, mut kube_total) = (0usize, 0usize);
    for (name, w) in set.watchers() {
        let (ar, _) = watcher::resolve(&client, w.config()).await?;
        let stats = w.store().stats();
        let (objects, kstore_bytes) = (stats.objects, stats.estimated_bytes);
        let strip = Strip::of(&config, name);
        let on_demand = matches!(w.config().store, store_types::StoreType::Cached);
        let careful = careful_cost(client.clone(), &ar, strip, on_demand).await?;
        let naive = reflector_cost(client.clone(), &ar).await?;
        careful_total += careful.bytes;
        kube_total += naive.bytes;
        let kb = kstore_bytes / objects.max(1);
        let cb = careful.bytes / careful.objects.max(1);
        let rb = naive.bytes / naive.objects.max(1);
        out.line(format!(
            "{:<10} {:>7} {:>9} {:>8} {:>7} {:>9} | {:>8} {:>7} {:>5.1}x | {:>8} {:>7} {:>5.1}x",
            name,
            objects,
            w.config().store.to_string(),
            ms(sync_times[name]),
            kb,
            mib(kstore_bytes),
            ms(careful.time),
            cb,
            cb as f64 / kb.max(1) as f64,
            ms(naive.time),
            rb,
            rb as f64 / kb.max(1) as f64
        ));
        mem_rows.push(json!({
            "resource": name, "objects": objects, "store": w.config().store.to_string(),
            "sync_ms": sync_times[name].as_secs_f64() * 1e3, "kstore_bytes": kstore_bytes,
            "kstore_bytes_per_object": kb,
            "careful_peer": careful.peer, "careful_sync_ms": careful.time.as_secs_f64() * 1e3,
            "careful_bytes": careful.bytes, "careful_bytes_per_object": cb,
            "reflector_sync_ms": naive.time.as_secs_f64() * 1e3,
            "reflector_bytes": naive.bytes, "reflector_bytes_per_object": rb,
        }));
    }
    out.line(format!(
        "(kstore per-resource bytes: the stores' own accounting — compact objects' real heap plus index estimate;\n \
         measured whole-set heap {}: {:.1}x less than the careful peers' {}, {:.1}x less than the naive reflectors' {})",
        mib(heap_set),
        careful_total as f64 / heap_set.max(1) as f64,
        mib(careful_total),
        kube_total as f64 / heap_set.max(1) as f64,
        mib(kube_total),
    ));
    report.insert("heap_bytes_careful_peers".into(), json!(careful_total));
    report.insert("resources".into(), Value::Array(mem_rows));
    report.insert("heap_bytes_resource_set".into(), json!(heap_set));
    report.insert("heap_bytes_reflectors".into(), json!(kube_total));
    report.insert("sync_ms_total".into(), json!(total_sync.as_secs_f64() * 1e3));

    // 5. Lookups, and the configuration rendered from one consistent snapshot.
    let lookups = lookups(&set, &out).await?;
    report.insert("lookups".into(), lookups);
    let renderer = renderer(args)?;
    let (first, render) = render(&set, &renderer, &out).await?;
    report.insert("render".into(), render);
    let mut last = first.clone();

    // 6. Churn, with change notifications as they fire (simulator only: never writes to a
    //    real cluster).
    if let Some(sim) = &sim {
        while changes.try_recv().is_ok() {}
        let churn = churn(sim, &set, args.churn, &mut changes, &out).await?;
        report.insert("churn".into(), churn);
        let (after, rerender) = rerender(&set, &renderer, &first, &out).await?;
        report.insert("rerender".into(), rerender);
        last = after;
    }
    if let Some(path) = &args.render {
        std::fs::write(path, &last).map_err(|e| format!("--render {}: {e}", path.display()))?;
        out.line(format!(
            "
wrote the whole configuration ({} lines) to {}",
            last.lines().count(),
            path.display()
        ));
    }

    // 7. Cache statistics of on-demand stores.
    for (name, w) in set.watchers() {
        if let StoreHandle::Cached(c) = w.store() {
            let s = c.cache_stats();
            out.line(format!(
                "\ncache of {name}: {} references, {} cached ({}), hits {}, misses {}, fetches {}, not found {}, invalidations {}, evictions {}",
                s.references,
                s.entries,
                mib(s.cached_bytes as usize),
                s.hits,
                s.misses,
                s.fetches,
                s.not_found,
                s.invalidations,
                s.evictions
            ));
            report.insert(
                format!("cache_{name}"),
                json!({"references": s.references, "entries": s.entries, "cached_bytes": s.cached_bytes,
                       "hits": s.hits, "misses": s.misses, "fetches": s.fetches, "fetch_errors": s.fetch_errors,
                       "not_found": s.not_found, "invalidations": s.invalidations, "evictions": s.evictions}),
            );
        }
    }
    set.stop();
    out.line(format!("\ndone in {}", ms(started.elapsed())));
    Ok(Value::Object(report))
}

/// Progress bars per resource, updated as events arrive, until everything is synced.
async fn show_progress(
    set: &ResourceSet,
    expected: &BTreeMap<String, usize>,
    start: Instant,
    out: &Out,
) -> Result<BTreeMap<String, Duration>, BoxError> {
    let tty = std::io::stdout().is_terminal() && !out.quiet;
    let mut synced: BTreeMap<String, Duration> = BTreeMap::new();
    let mut drawn = false;
    loop {
        for (name, w) in set.watchers() {
            if w.is_synced() && !synced.contains_key(name) {
                synced.insert(name.to_owned(), start.elapsed());
                if !tty {
                    out.line(format!("  {name:<12} synced: {} objects in {}", w.store().len(), ms(start.elapsed())));
                }
            }
        }
        if tty {
            let mut s = String::new();
            if drawn {
                s.push_str(&format!("\x1b[{}A", set.watchers().count()));
            }
            for (name, w) in set.watchers() {
                let got = w.events_received() as usize;
                let want = expected.get(name).copied().unwrap_or(0);
                let frac = if synced.contains_key(name) {
                    1.0
                } else if want > 0 {
                    (got as f64 / want as f64).min(1.0)
                } else {
                    0.0
                };
                let filled = (frac * 30.0).round() as usize;
                let status = match synced.get(name) {
                    Some(t) => format!("synced in {}", ms(*t)),
                    None => "listing…".into(),
                };
                s.push_str(&format!(
                    "  {name:<12} [{}{}] {got:>6}/{} {status}\x1b[K\n",
                    "#".repeat(filled),
                    "-".repeat(30 - filled),
                    if want > 0 { want.to_string() } else { "?".into() }
                ));
            }
            print!("{s}");
            let _ = std::io::stdout().flush();
            drawn = true;
        }
        if synced.len() == set.watchers().count() {
            return Ok(synced);
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err("resources did not sync within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lists every watched resource once in full and once metadata-only (and drops the results),
/// so that the simulator's lazily cached per-object forms exist before any heap is measured.
async fn warm_simulator(client: &kube::Client, config: &WatchConfig) -> Result<(), BoxError> {
    use kube::core::PartialObjectMeta;
    for r in config.watched_resources.values() {
        let (group, version) = match r.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", r.api_version.as_str()),
        };
        let gvk = kube::core::GroupVersionKind::gvk(group, version, "");
        let ar = ApiResource::from_gvk_with_plural(&gvk, &r.resources);
        let params = kube::api::ListParams::default();
        Api::<DynamicObject>::all_with(client.clone(), &ar).list(&params).await?;
        Api::<PartialObjectMeta<DynamicObject>>::all_with(client.clone(), &ar).list_metadata(&params).await?;
    }
    Ok(())
}

/// What one kube-rs peer cost: sync time, heap held, objects held, and which peer it was.
struct PeerCost {
    peer: &'static str,
    time: Duration,
    bytes: usize,
    objects: usize,
}

/// The fields kstore's configuration removes from a resource that a careful kube-rs user strips
/// in `.modify()` too (the ones the demo's configuration names; others are not mirrored).
#[derive(Clone, Copy, Debug, Default)]
struct Strip {
    managed_fields: bool,
    last_applied: bool,
    owner_references: bool,
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl Strip {
    fn of(config: &WatchConfig, resource: &str) -> Strip {
        let mut fields: Vec<&str> = config.ignore_fields.iter().map(String::as_str).collect();
        if let Some(r) = config.watched_resources.get(resource) {
            fields.extend(r.ignore_fields.iter().map(String::as_str));
        }
        let has = |f: &str| fields.iter().any(|x| x.replace('"', "'") == f);
        Strip {
            managed_fields: has("metadata.managedFields"),
            last_applied: has(&format!("metadata.annotations['{LAST_APPLIED}']")),
            owner_references: has("metadata.ownerReferences"),
        }
    }

    fn apply(self, meta: &mut kube::api::ObjectMeta) {
        if self.managed_fields {
            meta.managed_fields = None;
        }
        if self.last_applied
            && let Some(a) = meta.annotations.as_mut()
        {
            a.remove(LAST_APPLIED);
        }
        if self.owner_references {
            meta.owner_references = None;
        }
    }
}

/// Heap and time of the careful kube-rs user's store of `ar`: for on-demand resources a
/// `metadata_watcher` reflector (bodies would be fetched with `Api::get` when read); otherwise a
/// typed reflector (DynamicObject for kinds the demo has no k8s-openapi type for) whose
/// `.modify()` strips the same fields kstore's `ignoreFields` removes.
async fn careful_cost(
    client: kube::Client,
    ar: &ApiResource,
    strip: Strip,
    on_demand: bool,
) -> Result<PeerCost, BoxError> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::core::PartialObjectMeta;
    if on_demand {
        // kube's metadata-only requests: `Api<PartialObjectMeta<_>>` (what `metadata_watcher` does).
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, ar);
        let writer = reflector::store::Writer::<PartialObjectMeta<DynamicObject>>::new(ar.clone());
        let stream = kube_watcher(api, kube_watcher::Config::default())
            .modify(move |o: &mut PartialObjectMeta<DynamicObject>| strip.apply(&mut o.metadata));
        return peer_cost("metadata_watcher + Api::get", writer, stream).await;
    }
    match (ar.group.as_str(), ar.plural.as_str()) {
        ("networking.k8s.io", "ingresses") => typed_cost::<Ingress>(client, strip).await,
        ("", "services") => typed_cost::<Service>(client, strip).await,
        ("discovery.k8s.io", "endpointslices") => typed_cost::<EndpointSlice>(client, strip).await,
        ("", "configmaps") => typed_cost::<ConfigMap>(client, strip).await,
        ("", "secrets") => typed_cost::<Secret>(client, strip).await,
        _ => {
            let api: Api<DynamicObject> = Api::all_with(client, ar);
            let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
            let stream = kube_watcher(api, kube_watcher::Config::default())
                .modify(move |o: &mut DynamicObject| strip.apply(&mut o.metadata));
            peer_cost("DynamicObject reflector + .modify()", writer, stream).await
        }
    }
}

async fn typed_cost<K>(client: kube::Client, strip: Strip) -> Result<PeerCost, BoxError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::all(client);
    let writer = reflector::store::Writer::<K>::default();
    let stream = kube_watcher(api, kube_watcher::Config::default()).modify(move |o: &mut K| strip.apply(o.meta_mut()));
    peer_cost("typed reflector + .modify()", writer, stream).await
}

/// Runs `reflector(writer, stream)` until ready and measures it: the time to the initial
/// list and the heap the reflector holds then.
async fn peer_cost<K>(
    peer: &'static str,
    writer: reflector::store::Writer<K>,
    stream: impl futures::Stream<Item = Result<kube_watcher::Event<K>, kube_watcher::Error>> + Send + 'static,
) -> Result<PeerCost, BoxError>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    settle().await;
    let base = heap_meter::live();
    let t = Instant::now();
    let reader = writer.as_reader();
    let task = tokio::spawn(reflector(writer, stream).for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(120), reader.wait_until_ready()).await??;
    let time = t.elapsed();
    settle().await;
    let bytes = heap_meter::live().saturating_sub(base);
    let objects = reader.len();
    task.abort();
    let _ = task.await;
    drop(reader);
    Ok(PeerCost { peer, time, bytes, objects })
}

/// Heap and time of the naive kube-rs user's reflector of `ar`: DynamicObjects as delivered.
async fn reflector_cost(client: kube::Client, ar: &ApiResource) -> Result<PeerCost, BoxError> {
    let api: Api<DynamicObject> = Api::all_with(client, ar);
    let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
    peer_cost("DynamicObject reflector as delivered", writer, kube_watcher(api, kube_watcher::Config::default())).await
}

fn name_of(o: &CompactObject) -> (String, String) {
    let s = |p: &str| o.pointer(p).and_then(|n| n.as_str()).unwrap_or_default().to_owned();
    (s("/metadata/namespace"), s("/metadata/name"))
}

async fn lookups(set: &ResourceSet, out: &Out) -> Result<Value, BoxError> {
    let view = set.snapshot();
    let mut report = serde_json::Map::new();
    out.line("\nlookups through one snapshot:");
    let ingresses: Vec<(String, String)> = view.list("ingresses").await?.iter().map(|o| name_of(o)).collect();
    if ingresses.is_empty() {
        out.line("  (no ingresses)");
        return Ok(Value::Object(report));
    }
    let n = 20_000;
    let t = Instant::now();
    let mut hits = 0;
    for i in 0..n {
        let (ns, name) = &ingresses[i % ingresses.len()];
        hits += view.fetch("ingresses", &[ns, name]).await?.len();
    }
    let exact = per_op(t.elapsed(), n);
    out.line(format!("  exact      ingresses [ns, name]            {exact:>8.0} ns/lookup ({hits} hits of {n})"));
    let t = Instant::now();
    let mut found = 0;
    for i in 0..n {
        found += view.fetch("endpoints", &[&ingresses[i % ingresses.len()].0]).await?.len();
    }
    let partial = per_op(t.elapsed(), n);
    out.line(format!(
        "  partial    endpoints [ns]                  {partial:>8.0} ns/lookup ({:.1} slices per namespace)",
        found as f64 / n as f64
    ));
    let t = Instant::now();
    let mut single = 0;
    for i in 0..n {
        let (ns, name) = &ingresses[i % ingresses.len()];
        if matches!(view.get_single("services", &[ns, name]).await?, Single::Found(_)) {
            single += 1;
        }
    }
    let get_single = per_op(t.elapsed(), n);
    out.line(format!("  get-single services [ns, name]            {get_single:>8.0} ns/lookup ({single} found)"));
    let ambiguous = view.get_single("endpoints", &[&ingresses[0].0, &ingresses[0].1]).await?;
    out.line(format!(
        "  get-single endpoints of {}/{}: {}",
        ingresses[0].0,
        ingresses[0].1,
        match ambiguous {
            Single::Found(_) => "one slice".to_string(),
            Single::NotFound => "none".to_string(),
            Single::Ambiguous(k) => format!("none — ambiguous, {k} slices match"),
        }
    ));
    report.insert("exact_ns".into(), json!(exact));
    report.insert("partial_ns".into(), json!(partial));
    report.insert("get_single_ns".into(), json!(get_single));
    Ok(Value::Object(report))
}

/// The renderer with the shipped template (or `--template FILE`). Strict: a missing field the
/// template does not test for is an error naming the template, line and expression.
fn renderer(args: &Args) -> Result<Renderer, BoxError> {
    let source = match &args.template {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("--template {}: {e}", p.display()))?,
        None => TEMPLATE.to_owned(),
    };
    let mut renderer = Renderer::new(Undefined::Strict);
    renderer.add_template(TEMPLATE_NAME, source)?;
    Ok(renderer)
}

/// Renders once from a fresh snapshot; returns the output and the time.
async fn render_once(set: &ResourceSet, renderer: &Renderer) -> Result<(String, Duration), BoxError> {
    let t = Instant::now();
    let text = renderer.render(TEMPLATE_NAME, Arc::new(set.snapshot())).await?;
    Ok((text, t.elapsed()))
}

/// Renders the configuration twice (on-demand Secrets fetched as the template asks, then from
/// the cache) and prints an excerpt.
async fn render(set: &ResourceSet, renderer: &Renderer, out: &Out) -> Result<(String, Value), BoxError> {
    let (text, cold) = render_once(set, renderer).await?;
    let (_, warm) = render_once(set, renderer).await?;
    let count = |prefix: &str| text.lines().filter(|l| l.trim_start().starts_with(prefix)).count();
    let (routes, backends, servers, certs) =
        (count("use_backend "), count("backend be_"), count("server "), count("#   /etc/"));
    out.line(format!(
        "\nrender: {TEMPLATE_NAME} over one snapshot → {} lines, {}: {routes} routes, {backends} backends, \
         {servers} servers, {certs} TLS certificates\n  first render {} (secrets fetched on demand), second {} (from the cache)",
        text.lines().count(),
        mib(text.len()),
        ms(cold),
        ms(warm)
    ));
    out.line("  excerpt:");
    for line in excerpt(&text) {
        out.line(format!("  | {line}"));
    }
    let report = json!({"lines": text.lines().count(), "bytes": text.len(), "routes": routes, "backends": backends,
                        "servers": servers, "certificates": certs,
                        "cold_ms": cold.as_secs_f64() * 1e3, "warm_ms": warm.as_secs_f64() * 1e3});
    Ok((text, report))
}

/// A few lines of each part of a rendered configuration: the first routes, the first backend
/// and the first certificates.
fn excerpt(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let mut shown = Vec::new();
    for (marker, n) in [("frontend https", 6), ("backend be_", 5), ("# crt-list", 3)] {
        if let Some(i) = lines.iter().position(|l| l.starts_with(marker)) {
            if !shown.is_empty() {
                shown.push("…");
            }
            shown.extend(lines.iter().skip(i).take(n).copied());
        }
    }
    shown
}

/// Re-renders after churn and counts the changed lines against the first render.
async fn rerender(
    set: &ResourceSet,
    renderer: &Renderer,
    before: &str,
    out: &Out,
) -> Result<(String, Value), BoxError> {
    let (after, took) = render_once(set, renderer).await?;
    let (added, removed) = line_diff(before, &after);
    out.line(format!(
        "\nre-render after churn: {} lines in {}; diff against the first render: +{added} −{removed} lines",
        after.lines().count(),
        ms(took)
    ));
    let report = json!({"lines": after.lines().count(), "ms": took.as_secs_f64() * 1e3,
                        "lines_added": added, "lines_removed": removed});
    Ok((after, report))
}

/// Lines added and removed from `before` to `after`, compared as multisets of lines (the
/// configuration's order is stable: objects by namespace, then name).
fn line_diff(before: &str, after: &str) -> (usize, usize) {
    let mut counts: HashMap<&str, isize> = HashMap::new();
    for l in before.lines() {
        *counts.entry(l).or_default() -= 1;
    }
    for l in after.lines() {
        *counts.entry(l).or_default() += 1;
    }
    let added = counts.values().filter(|&&c| c > 0).map(|&c| c as usize).sum();
    let removed = counts.values().filter(|&&c| c < 0).map(|&c| (-c) as usize).sum();
    (added, removed)
}

/// Creates, updates, key changes and deletes for `duration`, with a forced 410 half way, then
/// checks every full store equals the simulator's state.
async fn churn(
    sim: &ApiServerSim,
    set: &ResourceSet,
    duration: Duration,
    changes: &mut mpsc::UnboundedReceiver<(String, ChangeStats, Instant)>,
    out: &Out,
) -> Result<Value, BoxError> {
    out.line(format!("\nchurn for {} (creates, updates, key changes, deletes, a forced 410):", ms(duration)));
    let slices = sim.list("endpointslices", None)?;
    let services = sim.list("services", None)?;
    let ingresses = sim.list("ingresses", None)?;
    if slices.len() < 2 || services.is_empty() || ingresses.is_empty() {
        return Ok(json!({"skipped": "cluster too small"}));
    }
    let start = Instant::now();
    let mut ops = 0usize;
    let mut forced_410 = false;
    let mut notifications = 0usize;
    let mut i = 0usize;
    while start.elapsed() < duration {
        match i % 4 {
            0 => {
                let mut ing = ingresses[i % ingresses.len()].clone();
                ing["metadata"]["name"] = json!(format!("churn-{i}"));
                strip_server_fields(&mut ing);
                sim.create(ing)?;
            }
            1 => {
                let svc = &services[i % services.len()];
                let (ns, name) = (
                    svc["metadata"]["namespace"].as_str().unwrap_or(""),
                    svc["metadata"]["name"].as_str().unwrap_or(""),
                );
                sim.patch(
                    "services",
                    Some(ns),
                    name,
                    &json!({"metadata": {"annotations": {"kstore.demo/churn": i.to_string()}}}),
                )?;
            }
            2 => {
                // Key change: the slice moves to another service's key tuple.
                let s = &slices[i % slices.len()];
                let (ns, name) =
                    (s["metadata"]["namespace"].as_str().unwrap_or(""), s["metadata"]["name"].as_str().unwrap_or(""));
                let patch = json!({"metadata": {"labels": {"kubernetes.io/service-name": format!("moved-{i}")}}});
                let _ = sim.patch("endpointslices", Some(ns), name, &patch);
            }
            _ => {
                let s = &slices[(i * 7) % slices.len()];
                let (ns, name) =
                    (s["metadata"]["namespace"].as_str().unwrap_or(""), s["metadata"]["name"].as_str().unwrap_or(""));
                let _ = sim.delete("endpointslices", Some(ns), name);
            }
        }
        ops += 1;
        i += 1;
        if !forced_410 && start.elapsed() > duration / 2 {
            // While events are held back, compact the log and cut the watches: every watcher
            // must relist (410 Gone) and come back without ghosts.
            sim.faults().pause_events();
            sim.faults().compact();
            sim.faults().end_watches();
            sim.faults().resume_events();
            forced_410 = true;
            out.line(format!("  {:>6}  forced 410: event log compacted, watches ended", ms(start.elapsed())));
        }
        notifications += print_changes(changes, start, out);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // Converge: every full store must equal the simulator's state (identity and version).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut checked;
    loop {
        let mut equal = true;
        checked = 0;
        for (name, w) in set.watchers() {
            let want: HashMap<(String, String), String> = sim
                .list(&w.config().plural, None)?
                .iter()
                .map(|o| {
                    let s = |k: &str| o["metadata"][k].as_str().unwrap_or_default().to_owned();
                    ((s("namespace"), s("name")), s("resourceVersion"))
                })
                .collect();
            let have: HashMap<(String, String), String> = match w.store() {
                StoreHandle::Memory(s) => s
                    .list()
                    .iter()
                    .map(|o| {
                        (name_of(o), store_types::KubeObject::resource_version(&**o).unwrap_or_default().to_owned())
                    })
                    .collect(),
                StoreHandle::Cached(c) => c
                    .references()
                    .iter()
                    .map(|r| {
                        (
                            (r.namespace().to_owned(), r.name().to_owned()),
                            r.resource_version().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
                _ => continue,
            };
            checked += want.len();
            if want != have {
                equal = false;
                if Instant::now() > deadline {
                    return Err(format!("{name}: store differs from the cluster after churn").into());
                }
            }
        }
        if equal {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged = start.elapsed();
    // Let the last debounced notifications fire.
    tokio::time::sleep(Duration::from_millis(600)).await;
    notifications += print_changes(changes, start, out);
    out.line(format!(
        "  {ops} changes, {notifications} debounced notifications; every store equals the cluster \
         ({checked} objects checked by identity and resourceVersion) after {}",
        ms(converged)
    ));
    Ok(json!({"changes": ops, "notifications": notifications, "objects_checked": checked, "forced_410": forced_410,
              "converged_ms": converged.as_secs_f64() * 1e3}))
}

/// Prints the change notifications received so far; returns how many.
fn print_changes(
    changes: &mut mpsc::UnboundedReceiver<(String, ChangeStats, Instant)>,
    start: Instant,
    out: &Out,
) -> usize {
    let mut n = 0;
    while let Ok((name, s, at)) = changes.try_recv() {
        n += 1;
        out.line(format!(
            "  {:>6}  on_change {name:<10} +{} ~{} -{}",
            ms(at.saturating_duration_since(start)),
            s.created,
            s.modified,
            s.deleted
        ));
    }
    n
}

fn strip_server_fields(o: &mut Value) {
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"] {
            m.remove(k);
        }
    }
}
