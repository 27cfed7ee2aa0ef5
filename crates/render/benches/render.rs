//! Render of the demo's HAProxy template (`crates/kstore-demo/haproxy.cfg.j2`) over a generated
//! cluster (default 100 namespaces × 20 apps: 2,000 Ingresses, Services and TLS Secrets, ~3,000
//! EndpointSlices) synced by a `ResourceSet` from apiserver-sim, Secrets on demand and already
//! cached: kstore-render's lazy values vs the same template over a context built with
//! `minijinja::Value::from_serialize` of every object (what a user without kstore-render
//! writes), side by side in one run. Both renders must produce the same text.
//!
//! Time is the wall time of one render (building the eager context included: it is per
//! snapshot); extra heap is the peak heap during the render above the heap before it
//! (counting allocator), output text included for both.
//!
//! `cargo bench -p kstore-render --bench render` (`RENDER_NAMESPACES=100`, `RENDER_APPS=20`,
//! `ROUNDS=5`).

#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver_sim::ApiServerSim;
use apiserver_sim::generate::Cluster;
use heap_meter::CountingAllocator;
use kstore_render::{Renderer, Undefined};
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};
use watcher::{ResourceSet, SetOptions, SetSnapshot, WatchConfig};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const TEMPLATE: &str = include_str!("../../kstore-demo/haproxy.cfg.j2");
const CONFIG: &str = include_str!("../../kstore-demo/demo.yaml");

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One resource of the eager context: every object converted, and an exact-key index.
#[derive(Debug)]
struct EagerResource {
    list: Vec<Value>,
    by_key: HashMap<(String, String), Vec<Value>>,
}

impl Object for EagerResource {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.list.clone())
    }

    fn call_method(self: &Arc<Self>, _: &State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let key = || -> Result<(String, String), Error> {
            match args {
                [a, b] => Ok((a.to_string(), b.to_string())),
                _ => Err(Error::new(ErrorKind::InvalidOperation, "the eager context answers [ns, name] only")),
            }
        };
        match method {
            "list" => Ok(Value::from(self.list.clone())),
            "fetch" => Ok(Value::from(self.by_key.get(&key()?).cloned().unwrap_or_default())),
            "get_single" => Ok(match self.by_key.get(&key()?) {
                Some(v) if v.len() == 1 => v[0].clone(),
                _ => Value::from(()),
            }),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `resources` built with `Value::from_serialize` of every object of the snapshot.
async fn eager_context(view: &SetSnapshot) -> Value {
    let mut resources = std::collections::BTreeMap::new();
    for name in view.resources().map(str::to_owned).collect::<Vec<_>>() {
        let objects = view.list(&name).await.unwrap();
        let mut list = Vec::with_capacity(objects.len());
        let mut by_key: HashMap<(String, String), Vec<Value>> = HashMap::new();
        for o in objects.iter() {
            let value = Value::from_serialize(&**o);
            // The demo configuration's keys: [namespace, name], and for EndpointSlices
            // [namespace, service-name label] (read without converting the object).
            let meta = |p: &str| o.pointer(p).and_then(|n| n.as_str()).unwrap_or_default().to_owned();
            let key = if name == "endpoints" {
                (meta("/metadata/namespace"), meta("/metadata/labels/kubernetes.io~1service-name"))
            } else {
                (meta("/metadata/namespace"), meta("/metadata/name"))
            };
            by_key.entry(key).or_default().push(value.clone());
            list.push(value);
        }
        resources.insert(name, Value::from_object(EagerResource { list, by_key }));
    }
    Value::from(resources)
}

struct Sample {
    time: Duration,
    extra_heap: usize,
    len: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (namespaces, apps, rounds) =
        (env_usize("RENDER_NAMESPACES", 100), env_usize("RENDER_APPS", 20), env_usize("ROUNDS", 5));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let sim = ApiServerSim::builder()
            .objects(Cluster::new(7).namespaces(namespaces).apps_per_namespace(apps).iter())
            .start()
            .await
            .unwrap();
        let ingresses = sim.count("ingresses").unwrap();
        let set = ResourceSet::start(sim.client(), &WatchConfig::from_yaml(CONFIG).unwrap(), SetOptions::default())
            .await
            .unwrap();
        set.wait_for_sync().await;

        let mut renderer = Renderer::new(Undefined::Strict);
        renderer.add_template("haproxy.cfg.j2", TEMPLATE).unwrap();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_debug(false);
        env.set_keep_trailing_newline(true);
        env.add_template("haproxy.cfg.j2", TEMPLATE).unwrap();

        // Warm-up: fetches every Secret the template names into the cache ("from cache").
        let reference = renderer.render("haproxy.cfg.j2", Arc::new(set.snapshot())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (mut lazy, mut eager) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let view = Arc::new(set.snapshot());
            heap_meter::reset_peak();
            let base = heap_meter::live();
            let t = Instant::now();
            let out = renderer.render("haproxy.cfg.j2", view.clone()).await.unwrap();
            let time = t.elapsed();
            lazy.push(Sample { time, extra_heap: heap_meter::peak().saturating_sub(base), len: out.len() });
            assert_eq!(out, reference, "lazy renders agree");
            drop(out);

            heap_meter::reset_peak();
            let base = heap_meter::live();
            let t = Instant::now();
            let resources = eager_context(&view).await;
            let out = env.get_template("haproxy.cfg.j2").unwrap().render(minijinja::context! { resources }).unwrap();
            let time = t.elapsed();
            eager.push(Sample { time, extra_heap: heap_meter::peak().saturating_sub(base), len: out.len() });
            assert_eq!(out, reference, "the eager context renders the same text");
        }
        let ms = |s: &[Sample]| median(s.iter().map(|x| x.time.as_secs_f64() * 1e3).collect());
        let mib = |s: &[Sample]| median(s.iter().map(|x| x.extra_heap as f64 / (1 << 20) as f64).collect());
        let (lt, et, lh, eh) = (ms(&lazy), ms(&eager), mib(&lazy), mib(&eager));
        println!(
            "render of haproxy.cfg.j2 over {ingresses} Ingresses (+ Services, EndpointSlices, cached Secrets), median of {rounds}, output {:.1} MiB",
            lazy[0].len as f64 / (1 << 20) as f64
        );
        println!("| context | time (ms) | extra heap (MiB) | time ratio | heap ratio |");
        println!("|---|---:|---:|---:|---:|");
        println!("| kstore-render lazy values | {lt:.1} | {lh:.1} | {:.2}x | {:.2}x |", lt / et, lh / eh);
        println!("| Value::from_serialize of every object | {et:.1} | {eh:.1} | 1.00x | 1.00x |");
        set.stop();
    });
}
