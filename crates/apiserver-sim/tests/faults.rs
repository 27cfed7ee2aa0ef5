//! Fault injection and observation, driven through kube: recovery of watchers after clean ends,
//! aborted streams, 410s and restarts; rejected requests; latency; malformed lines; pausing.

mod common;

use std::time::{Duration, Instant};

use common::{Probe, Seen, configmap, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kstore_apiserver_sim::{ApiServerSim, Matcher, Rejection, Verb};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Error as KubeError, ResourceExt};
use serde_json::json;

async fn seeded(n: usize) -> ApiServerSim {
    let objs = (0..n).map(|i| configmap("f", &format!("seed-{i}"), json!({})));
    ApiServerSim::builder().objects(objs).start().await.unwrap()
}

async fn started_watcher(sim: &ApiServerSim, cfg: watcher::Config) -> Probe {
    let api: Api<ConfigMap> = Api::all(sim.client());
    let mut probe = Probe::spawn(watcher(api, cfg));
    probe.until("initial sync", |s| s.contains(&Seen::InitDone)).await;
    within("watch to start", sim.wait_for_watches(1)).await;
    probe
}

type RawWatch = futures::stream::BoxStream<'static, Result<WatchEvent<ConfigMap>, KubeError>>;

/// A raw watch of namespace `f`'s ConfigMaps from now on (no bookmarks), once it is open.
async fn raw_watch(sim: &ApiServerSim) -> RawWatch {
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "f");
    let rv = sim.resource_version().to_string();
    let s = api.watch(&WatchParams::default().disable_bookmarks(), &rv).await.unwrap().boxed();
    within("watch", sim.wait_for_watches(1)).await;
    s
}

/// The names of the next `n` events, all `ADDED`.
async fn added(s: &mut RawWatch, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    while names.len() < n {
        match within("events", s.try_next()).await.unwrap().unwrap() {
            WatchEvent::Added(c) => names.push(c.name_any()),
            other => panic!("{other:?}"),
        }
    }
    names
}

#[tokio::test]
async fn watcher_resumes_after_clean_end_without_relisting() {
    let sim = seeded(3).await;
    let mut probe = started_watcher(&sim, watcher::Config::default()).await;
    assert_eq!(sim.faults().end_watches(), 1);
    sim.create(configmap("f", "after-end", json!({}))).unwrap();
    probe.until("event after re-watch", |s| s.contains(&Seen::Apply("after-end".into()))).await;
    let log = sim.requests();
    assert_eq!(log.count(Verb::List, "configmaps"), 1, "no relist after a clean end");
    assert_eq!(log.count(Verb::Watch, "configmaps"), 2);
    // the second watch resumed from the last seen resourceVersion
    let watches = log.filter(|r| r.verb == Verb::Watch);
    assert_eq!(watches[1].query_param("resourceVersion").as_deref(), Some("3"));
    assert_eq!(probe.count(&Seen::Init), 1);
}

#[tokio::test]
async fn watcher_resumes_after_aborted_stream() {
    let sim = seeded(2).await;
    let mut probe = started_watcher(&sim, watcher::Config::default()).await;
    assert_eq!(sim.faults().abort_watches(), 1);
    sim.create(configmap("f", "after-abort", json!({}))).unwrap();
    probe.until("event after abort", |s| s.contains(&Seen::Apply("after-abort".into()))).await;
    assert!(sim.requests().count(Verb::Watch, "configmaps") >= 2);
    assert_eq!(sim.requests().count(Verb::List, "configmaps"), 1);
    assert_eq!(probe.count(&Seen::Init), 1);
}

#[tokio::test]
async fn watcher_relists_after_410_expired() {
    let sim = seeded(2).await;
    let mut probe = started_watcher(&sim, watcher::Config::default()).await;
    // history moves on and is compacted while the watcher is disconnected
    sim.create(configmap("f", "missed", json!({}))).unwrap();
    probe.until("missed", |s| s.contains(&Seen::Apply("missed".into()))).await;
    sim.faults().pause_events();
    sim.create(configmap("f", "during-pause", json!({}))).unwrap();
    sim.faults().compact();
    sim.faults().end_watches();
    sim.faults().resume_events();
    // re-watch from RV 3 < compaction point 4 → ERROR 410 → relist, which sees everything
    probe.until("relist", |s| s.iter().filter(|x| **x == Seen::InitDone).count() == 2).await;
    assert!(probe.seen.contains(&Seen::Error), "{:?}", probe.seen);
    assert!(probe.seen.contains(&Seen::InitApply("during-pause".into())));
    assert_eq!(probe.count(&Seen::Init), 2);
    assert_eq!(sim.requests().count(Verb::List, "configmaps"), 2);
}

#[tokio::test]
async fn streaming_list_watcher_recovers_after_410() {
    let sim = seeded(2).await;
    let cfg = watcher::Config::default().streaming_lists();
    let mut probe = started_watcher(&sim, cfg).await;
    sim.faults().pause_events();
    sim.create(configmap("f", "late", json!({}))).unwrap();
    sim.faults().compact();
    sim.faults().end_watches();
    sim.faults().resume_events();
    probe.until("re-init", |s| s.iter().filter(|x| **x == Seen::InitDone).count() == 2).await;
    assert!(probe.seen.contains(&Seen::InitApply("late".into())));
    assert_eq!(sim.requests().count(Verb::List, "configmaps"), 0);
}

#[tokio::test]
async fn rejections_with_status_and_retry_after() {
    let sim = seeded(1).await;
    let mut cfg = sim.config();
    cfg.default_retry = false;
    let client = kube::Client::try_from(cfg).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "f");
    let faults = sim.faults();
    faults.reject_next(Matcher::verb(Verb::List).resource("configmaps"), 2, Rejection::status(500));
    for _ in 0..2 {
        match api.list(&ListParams::default()).await {
            Err(KubeError::Api(s)) => assert_eq!(s.code, 500),
            other => panic!("expected 500, got {other:?}"),
        }
    }
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    // gets are not affected by a list rule; a 429 carries Retry-After
    faults.reject_next(Matcher::verb(Verb::Get), 1, Rejection::too_many_requests(7));
    let req = http::Request::get("/api/v1/namespaces/f/configmaps/seed-0").body(kube::client::Body::empty()).unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(api.get("seed-0").await.is_ok());
    // kube's default client retries 503s transparently: the log shows the retries
    faults.reject_next(Matcher::verb(Verb::Get), 2, Rejection::status(503));
    let retrying: Api<ConfigMap> = Api::namespaced(sim.client(), "f");
    assert!(retrying.get("seed-0").await.is_ok());
    let gets = sim.requests().filter(|r| r.verb == Verb::Get);
    let statuses: Vec<u16> = gets.iter().rev().take(3).map(|r| r.status).collect();
    assert_eq!(statuses, [200, 503, 503]);
    // reject watches for a duration
    faults.reject_for(Matcher::verb(Verb::Watch), Duration::from_secs(60), Rejection::status(503));
    match api.watch(&WatchParams::default(), "0").await {
        Err(KubeError::Api(s)) => assert_eq!(s.code, 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    faults.clear_rejections();
    assert!(api.watch(&WatchParams::default(), "0").await.is_ok());
}

#[tokio::test]
async fn latency_is_added_to_matching_requests() {
    let sim = seeded(1).await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "f");
    sim.faults().set_latency(Matcher::verb(Verb::Get), Duration::from_millis(400));
    let t = Instant::now();
    api.get("seed-0").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(400));
    sim.faults().clear_latency();
    let t = Instant::now();
    api.get("seed-0").await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn one_malformed_event_line_then_the_stream_continues() {
    let sim = seeded(0).await;
    let mut s = raw_watch(&sim).await;
    sim.faults().malformed_event();
    sim.create(configmap("f", "a", json!({}))).unwrap();
    sim.create(configmap("f", "b", json!({}))).unwrap();
    assert!(matches!(within("bad line", s.next()).await, Some(Err(KubeError::SerdeError(_)))));
    assert_eq!(added(&mut s, 2).await, ["a", "b"]);
}

#[tokio::test]
async fn a_lost_event_is_never_sent_and_the_stream_continues() {
    let sim = seeded(0).await;
    let mut s = raw_watch(&sim).await;
    sim.faults().lose_next_event();
    sim.create(configmap("f", "lost", json!({}))).unwrap();
    sim.create(configmap("f", "seen", json!({}))).unwrap();
    assert_eq!(added(&mut s, 1).await, ["seen"], "the first event was lost");
    assert_eq!(sim.count("configmaps").unwrap(), 2, "the write itself happened");
}

#[tokio::test]
async fn paused_delivery_buffers_then_resumes_in_order() {
    let sim = seeded(0).await;
    let mut s = raw_watch(&sim).await;
    sim.faults().pause_events();
    for i in 0..3 {
        sim.create(configmap("f", &format!("p{i}"), json!({}))).unwrap();
    }
    // writes succeeded, but nothing is delivered while paused (bounded negative check)
    assert_eq!(sim.count("configmaps").unwrap(), 3);
    assert!(tokio::time::timeout(Duration::from_millis(200), s.next()).await.is_err());
    sim.faults().resume_events();
    assert_eq!(added(&mut s, 3).await, ["p0", "p1", "p2"]);
}

#[tokio::test]
async fn restart_drops_connections_but_keeps_state_and_resource_versions() {
    let sim = seeded(2).await;
    let mut probe = started_watcher(&sim, watcher::Config::default()).await;
    let rv_before = sim.resource_version();
    sim.faults().restart();
    sim.create(configmap("f", "after-restart", json!({}))).unwrap();
    probe.until("after restart", |s| s.contains(&Seen::Apply("after-restart".into()))).await;
    assert_eq!(sim.resource_version(), rv_before + 1);
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "f");
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 3);
    assert_eq!(list.metadata.resource_version, Some((rv_before + 1).to_string()));
    // the server side of the dropped watch ended at once; when the client goes, so does the other
    assert_eq!(sim.active_watches(), 1);
    drop(probe);
    within("watch tasks to end", sim.wait_for_watch_count(|n| n == 0)).await;
}

#[tokio::test]
async fn request_log_counts_concurrent_gets_and_no_lists() {
    let sim = seeded(3).await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "f");
    let gets = (0..20).map(|i| {
        let api = api.clone();
        async move { api.get(&format!("seed-{}", i % 3)).await }
    });
    for r in futures::future::join_all(gets).await {
        r.unwrap();
    }
    let log = sim.requests();
    assert_eq!(log.count(Verb::Get, "configmaps"), 20);
    assert_eq!(log.count(Verb::List, "configmaps"), 0);
    assert_eq!(log.path_counts()["/api/v1/namespaces/f/configmaps/seed-0"], 7);
    let counters = log.counters();
    assert_eq!(counters.len(), 1);
    log.clear();
    assert!(log.is_empty());
}

#[tokio::test]
async fn a_running_watch_can_end_with_410_and_the_watcher_relists() {
    let sim = seeded(2).await;
    let api: Api<ConfigMap> = Api::all(sim.client());
    // Raw: the open stream gets an ERROR event with a 410 Status, then ends.
    let rv = sim.resource_version().to_string();
    let mut raw = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    within("raw watch to start", sim.wait_for_watches(1)).await;
    sim.create(configmap("f", "before", json!({}))).unwrap();
    assert!(matches!(within("event", raw.try_next()).await.unwrap(), Some(WatchEvent::Added(_))));
    assert_eq!(sim.faults().expire_watches(), 1);
    match within("error event", raw.try_next()).await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(within("end of stream", raw.try_next()).await.unwrap().is_none());
    drop(raw);
    within("raw watch gone", sim.wait_for_watch_count(|n| n == 0)).await;
    // kube's watcher: the 410 mid-stream makes it relist, and it keeps up.
    let mut probe = started_watcher(&sim, watcher::Config::default()).await;
    assert_eq!(sim.requests().count(Verb::List, "configmaps"), 1);
    assert_eq!(sim.faults().expire_watches(), 1);
    sim.create(configmap("f", "after", json!({}))).unwrap();
    probe
        .until("event after the relist", |s| {
            s.iter().any(|e| matches!(e, Seen::Apply(n) | Seen::InitApply(n) if n == "after"))
        })
        .await;
    assert_eq!(sim.requests().count(Verb::List, "configmaps"), 2);
    assert_eq!(probe.count(&Seen::Init), 2);
}

#[tokio::test]
async fn pages_with_selectors_may_be_short_and_still_continue() {
    let objs = (0..10).map(|i| configmap("f", &format!("cm-{i}"), json!({"even": (i % 2 == 0).to_string()})));
    let sim = ApiServerSim::builder().objects(objs).start().await.unwrap();
    let api: Api<ConfigMap> = Api::all(sim.client());
    let mut lp = ListParams::default().labels("even=true").limit(3);
    let (mut names, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let page = within("list", api.list(&lp)).await.unwrap();
        sizes.push(page.items.len());
        names.extend(page.items.iter().map(|o| o.name_any()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names, ["cm-0", "cm-2", "cm-4", "cm-6", "cm-8"]);
    assert!(sizes.iter().take(sizes.len() - 1).any(|n| *n < 3), "{sizes:?}");
    // Without a selector, pages are full.
    let page = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    // kube's watcher pages through short pages to a complete initial list.
    let cfg = watcher::Config::default().labels("even=false").page_size(2);
    let mut probe = Probe::spawn(watcher(api, cfg));
    probe.until("initial sync", |s| s.contains(&Seen::InitDone)).await;
    let listed = probe.seen.iter().filter(|e| matches!(e, Seen::InitApply(_))).count();
    assert_eq!(listed, 5);
}

#[tokio::test(start_paused = true)]
async fn bookmarks_come_about_once_a_minute_by_default() {
    let sim = seeded(1).await;
    let api: Api<ConfigMap> = Api::all(sim.client());
    let rv = sim.resource_version().to_string();
    let mut raw = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let start = tokio::time::Instant::now();
    // Paused time jumps to the next timer while the stream is idle: the bookmark ticker.
    for i in 1..=2u32 {
        match raw.try_next().await.unwrap() {
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("expected a BOOKMARK, got {other:?}"),
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(60) * i && elapsed < Duration::from_secs(61) * i, "{elapsed:?}");
    }
}
