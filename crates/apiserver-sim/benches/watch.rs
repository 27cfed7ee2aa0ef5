//! Benchmarks of the simulator as a kube watcher sees it:
//!
//! 1. initial list of N generated Ingresses (default 100 000) to `kube::runtime::watcher`, both
//!    with the default paged list-watch (500 per page) and with streaming lists;
//! 2. event throughput: objects created through the handle API and received by a watcher.
//!
//! Run: `cargo bench -p kstore-apiserver-sim --bench watch` (`SIM_BENCH_OBJECTS`, `SIM_BENCH_EVENTS`
//! change the sizes).

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kstore_apiserver_sim::ApiServerSim;
use kstore_apiserver_sim::generate::{Cluster, Kind};
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::json;

/// Just the list metadata of a page; serde skips the items without building them.
#[derive(serde::Deserialize)]
struct PageMeta {
    metadata: ListMeta,
}

#[derive(serde::Deserialize)]
struct ListMeta {
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Drive a watcher until its initial sync is done; returns the number of objects seen.
async fn initial_sync(api: Api<Ingress>, cfg: watcher::Config) -> usize {
    let mut stream = watcher(api, cfg).boxed();
    let mut n = 0;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::InitApply(_)) => n += 1,
            Ok(watcher::Event::InitDone) => return n,
            Ok(_) => {}
            Err(e) => panic!("watcher error: {e}"),
        }
    }
    n
}

fn report(what: &str, n: usize, elapsed: Duration) {
    println!(
        "{what:<48} {n:>8} objects  {:>9.1} ms  {:>10.0} objects/s",
        elapsed.as_secs_f64() * 1000.0,
        n as f64 / elapsed.as_secs_f64()
    );
}

async fn bench_initial_list(objects: usize) {
    let apps = 1000;
    let namespaces = objects.div_ceil(apps);
    let t = Instant::now();
    let objs: Vec<_> = Cluster::new(1)
        .namespaces(namespaces)
        .apps_per_namespace(apps)
        .only(&[Kind::Ingress])
        .iter()
        .take(objects)
        .collect();
    report("generate Ingresses", objs.len(), t.elapsed());
    let bytes: usize = objs.iter().map(|o| serde_json::to_vec(o).map(|v| v.len()).unwrap_or(0)).sum();
    println!("  mean object size: {} bytes", bytes / objs.len().max(1));
    let t = Instant::now();
    let sim = ApiServerSim::builder().objects(objs).start().await.expect("start");
    report("load into simulator", objects, t.elapsed());

    let client = sim.client();
    // server + transfer only: fetch every page as text, no deserialisation
    let t = Instant::now();
    let mut cont = String::new();
    let mut bytes = 0;
    loop {
        let path = format!("/apis/networking.k8s.io/v1/ingresses?&limit=500&continue={cont}");
        let req = http::Request::get(path).body(Vec::new()).expect("request");
        let text = client.request_text(req).await.expect("page");
        bytes += text.len();
        let page: PageMeta = serde_json::from_str(&text).expect("json");
        match page.metadata.continue_token {
            Some(c) if !c.is_empty() => cont = form_urlencoded::byte_serialize(c.as_bytes()).collect(),
            _ => break,
        }
    }
    report("paged list as text (server + transfer)", objects, t.elapsed());
    println!("  {} MB transferred", bytes >> 20);
    let api: Api<Ingress> = Api::all(client);
    for (name, cfg) in [
        ("initial list-watch (pages of 500) to watcher", watcher::Config::default()),
        ("initial streaming list to watcher", watcher::Config::default().streaming_lists()),
    ] {
        let t = Instant::now();
        let n = initial_sync(api.clone(), cfg).await;
        assert_eq!(n, objects);
        report(name, n, t.elapsed());
    }
    sim.shutdown().await;
}

async fn bench_event_throughput(events: usize) {
    let sim = ApiServerSim::builder().start().await.expect("start");
    let api: Api<Ingress> = Api::all(sim.client());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    loop {
        match stream.next().await {
            Some(Ok(watcher::Event::InitDone)) => break,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // the first poll after InitDone opens the watch
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < events {
            match stream.next().await {
                Some(Ok(watcher::Event::Apply(_))) => n += 1,
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        n
    });
    sim.wait_for_watches(1).await;
    let template = Cluster::new(2).namespaces(1).apps_per_namespace(1).only(&[Kind::Ingress]).build();
    let t = Instant::now();
    let objs = (0..events).map(|i| {
        let mut obj = template[0].clone();
        obj["metadata"]["name"] = json!(format!("ing-{i}"));
        obj
    });
    sim.create_all(objs).expect("create");
    let produced = t.elapsed();
    let n = reader.await.expect("reader");
    report("create events (handle API, producer side)", events, produced);
    report("event throughput to watcher", n, t.elapsed());
    sim.shutdown().await;
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; run a tiny size when not benchmarking.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let objects = env_usize("SIM_BENCH_OBJECTS", if benchmarking { 100_000 } else { 500 });
    let events = env_usize("SIM_BENCH_EVENTS", if benchmarking { 50_000 } else { 200 });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        bench_initial_list(objects).await;
        bench_event_throughput(events).await;
    });
}
