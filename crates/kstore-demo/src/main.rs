//! `kstore-demo` is the program behind `cargo xtask demo`: it builds indexed stores of a
//! generated cluster and shows, for a person at a terminal, what they cost and how fast lookups
//! are. It is a demonstration, not a library.
//!
//! Current scope: MemoryStore on generated EndpointSlices (non-unique keys) and Ingresses; the
//! watcher-driven demo against apiserver-sim replaces the generator once those crates land.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::api::networking::v1::Ingress;
use memory_store::MemoryStore;
use store_types::{Identity, KeyTuple};

struct Args {
    namespaces: usize,
    apps: usize,
    seed: u64,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        namespaces: 100,
        apps: 20,
        seed: 1,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--small" => (a.namespaces, a.apps) = (10, 5),
            "--namespaces" => a.namespaces = num("--namespaces")? as usize,
            "--apps" => a.apps = num("--apps")? as usize,
            "--seed" => a.seed = num("--seed")?,
            "--json" => a.json = true,
            "-h" | "--help" => {
                return Err(
                    "usage: kstore-demo [--small] [--namespaces N] [--apps M] [--seed S] [--json]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

/// A small deterministic generator (xorshift), so runs with the same seed are identical.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn ingress(ns: &str, app: &str, rv: u64) -> Ingress {
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": ns, "name": app, "resourceVersion": rv.to_string(), "uid": format!("{ns}-{app}"),
                     "labels": {"app": app}},
        "spec": {"tls": [{"hosts": [format!("{app}.{ns}.example.com")], "secretName": format!("{app}-tls")}],
                 "rules": [{"host": format!("{app}.{ns}.example.com"), "http": {"paths": [
                     {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": app, "port": {"number": 80}}}}]}}]}
    }))
    .expect("generated Ingress is valid")
}

fn slice(ns: &str, app: &str, i: u64, endpoints: u64, rv: u64) -> EndpointSlice {
    let mut s = EndpointSlice {
        address_type: "IPv4".into(),
        endpoints: Some(
            (0..endpoints)
                .map(|e| Endpoint {
                    addresses: vec![format!("10.{}.{}.{}", i % 250, e / 250, e % 250)],
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    s.metadata.namespace = Some(ns.into());
    s.metadata.name = Some(format!("{app}-{i}"));
    s.metadata.resource_version = Some(rv.to_string());
    s.metadata.labels = Some([("kubernetes.io/service-name".to_string(), app.to_string())].into());
    s
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn per_op(d: Duration, n: usize) -> String {
    format!("{:.0} ns", d.as_nanos() as f64 / n.max(1) as f64)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), store_types::StoreError> {
    let mut rng = Rng(args.seed.max(1));
    let ingresses = MemoryStore::<Ingress>::new(2)?;
    // EndpointSlices indexed by (namespace, service name): non-unique keys.
    let slices = MemoryStore::<EndpointSlice>::new(2)?;

    let mut ing_batch = Vec::new();
    let mut slice_batch = Vec::new();
    for n in 0..args.namespaces {
        let ns = format!("team-{n:03}");
        for a in 0..args.apps {
            let app = format!("app-{a:03}");
            ing_batch.push((Arc::new(ingress(&ns, &app, 1)), KeyTuple::new([&ns, &app])));
            for i in 0..1 + rng.next(3) {
                let s = slice(&ns, &app, i, 5 + rng.next(46), 1);
                slice_batch.push((Arc::new(s), KeyTuple::new([&ns, &app])));
            }
        }
    }
    let (ing_stats, ing_load) = timed(|| ingresses.replace_all(ing_batch));
    let ing_stats = ing_stats?;
    let (sl_stats, sl_load) = timed(|| slices.replace_all(slice_batch));
    let sl_stats = sl_stats?;

    // Sample lookups, timed over many repetitions.
    let probes: Vec<(String, String)> = (0..10_000)
        .map(|_| {
            (
                format!("team-{:03}", rng.next(args.namespaces as u64)),
                format!("app-{:03}", rng.next(args.apps as u64)),
            )
        })
        .collect();
    let (hits, exact) = timed(|| {
        probes
            .iter()
            .filter(|(ns, app)| ingresses.get(&[ns, app]).is_ok_and(|r| r.len() == 1))
            .count()
    });
    let (found, partial) = timed(|| {
        probes
            .iter()
            .map(|(ns, _)| slices.get(&[ns]).map(|r| r.len()).unwrap_or(0))
            .sum::<usize>()
    });
    // A template-style pass: every Ingress joined to its EndpointSlices through one snapshot.
    let (joined, render) = timed(|| {
        let (ings, sls) = (ingresses.snapshot(), slices.snapshot());
        let mut endpoints = 0;
        for ing in ings.iter() {
            let (ns, name) = (
                ing.metadata.namespace.as_deref().unwrap_or(""),
                ing.metadata.name.as_deref().unwrap_or(""),
            );
            for s in sls.get(&[ns, name]).into_iter().flatten() {
                endpoints += s.endpoints.as_ref().map_or(0, Vec::len);
            }
        }
        endpoints
    });
    // Churn: one EndpointSlice deleted leaves its siblings in place.
    let svc_of = |s: &EndpointSlice| -> (String, String) {
        let svc = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
            .unwrap_or_default();
        (s.metadata.namespace.clone().unwrap_or_default(), svc)
    };
    let first = slices.list().into_iter().find(|s| {
        let (ns, svc) = svc_of(s);
        slices.get(&[&ns, &svc]).is_ok_and(|r| r.len() > 1)
    });
    let siblings_before = first.as_ref().map(|s| {
        slices.get(&[
            s.metadata.namespace.as_deref().unwrap(),
            &s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"],
        ])
    });
    if let Some(s) = &first {
        slices.delete(&Identity::new(
            s.metadata.namespace.as_deref().unwrap(),
            s.metadata.name.as_deref().unwrap(),
        ));
    }

    let (is, ss) = (ingresses.stats(), slices.stats());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ingresses": {"objects": is.objects, "key_tuples": is.key_tuples, "estimated_bytes": is.estimated_bytes, "load_ms": ing_load.as_secs_f64() * 1e3, "created": ing_stats.created},
                "endpointslices": {"objects": ss.objects, "key_tuples": ss.key_tuples, "estimated_bytes": ss.estimated_bytes, "load_ms": sl_load.as_secs_f64() * 1e3, "created": sl_stats.created},
                "exact_get_ns": exact.as_nanos() as f64 / probes.len() as f64,
                "partial_get_ns": partial.as_nanos() as f64 / probes.len() as f64,
                "render_ms": render.as_secs_f64() * 1e3,
                "joined_endpoints": joined,
            })
        );
        return Ok(());
    }
    println!(
        "kstore demo — MemoryStore on a generated cluster ({} namespaces × {} apps, seed {})\n",
        args.namespaces, args.apps, args.seed
    );
    println!(
        "{:<16} {:>8} {:>10} {:>10} {:>14} {:>12}",
        "resource", "objects", "key tuples", "load", "est. bytes", "bytes/object"
    );
    for (name, st, load) in [("ingresses", is, ing_load), ("endpointslices", ss, sl_load)] {
        println!(
            "{:<16} {:>8} {:>10} {:>8.1}ms {:>14} {:>12}",
            name,
            st.objects,
            st.key_tuples,
            load.as_secs_f64() * 1e3,
            st.estimated_bytes,
            st.estimated_bytes / st.objects.max(1)
        );
    }
    println!("\nlookups ({} probes each):", probes.len());
    println!(
        "  exact   ingresses.get([ns, name])         {:>8} per lookup, {hits} hits",
        per_op(exact, probes.len())
    );
    println!(
        "  partial endpointslices.get([ns])          {:>8} per lookup, {found} objects returned",
        per_op(partial, probes.len())
    );
    println!(
        "  render  every Ingress → its EndpointSlices {:>8.2}ms, {joined} endpoints joined",
        render.as_secs_f64() * 1e3
    );
    if let (Some(s), Some(Ok(before))) = (first, siblings_before) {
        let svc = &s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"];
        let after = slices
            .get(&[s.metadata.namespace.as_deref().unwrap(), svc])?
            .len();
        println!(
            "\nchurn: deleted EndpointSlice {} of service {svc}: {} slices before, {after} after (siblings kept)",
            s.metadata.name.as_deref().unwrap(),
            before.len()
        );
    }
    Ok(())
}
