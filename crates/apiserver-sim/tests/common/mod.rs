//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kstore_apiserver_sim::{ApiServerSim, ResourceDef, Scope};
use kube::runtime::watcher;
use serde_json::{Value, json};

/// Bound every await in tests so a bug fails fast instead of hanging.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A simulator that also serves the namespaced custom resource `widgets.example.com/v1`.
pub async fn sim_with_widgets() -> ApiServerSim {
    ApiServerSim::builder()
        .resource(ResourceDef::new("example.com", "v1", "Widget", "widgets", Scope::Namespaced))
        .start()
        .await
        .unwrap()
}

pub fn configmap(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {"k": name},
    })
}

/// A simplified view of watcher events for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Init,
    InitApply(String),
    InitDone,
    Apply(String),
    Delete(String),
    Error,
}

/// A watcher driven by its own task, so the server side progresses while the test acts.
pub struct Probe {
    rx: tokio::sync::mpsc::UnboundedReceiver<Seen>,
    /// Everything seen so far.
    pub seen: Vec<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    /// Spawn a task that polls `stream` and records simplified events.
    pub fn spawn<S, K>(stream: S) -> Self
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
        K: kube::Resource + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let name = |k: &K| k.meta().name.clone().unwrap_or_default();
                let seen = match ev {
                    Ok(watcher::Event::Init) => Seen::Init,
                    Ok(watcher::Event::InitApply(k)) => Seen::InitApply(name(&k)),
                    Ok(watcher::Event::InitDone) => Seen::InitDone,
                    Ok(watcher::Event::Apply(k)) => Seen::Apply(name(&k)),
                    Ok(watcher::Event::Delete(k)) => Seen::Delete(name(&k)),
                    Err(_) => Seen::Error,
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        Self { rx, seen: Vec::new(), task }
    }

    /// Wait until `done` holds on everything seen so far.
    pub async fn until(&mut self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        within(what, async {
            while !done(&self.seen) {
                let Some(s) = self.rx.recv().await else { panic!("watcher stream ended") };
                self.seen.push(s);
            }
        })
        .await;
    }

    /// How many times `want` was seen.
    pub fn count(&self, want: &Seen) -> usize {
        self.seen.iter().filter(|s| *s == want).count()
    }

    /// How many `InitApply` events were seen.
    pub fn init_applies(&self) -> usize {
        self.seen.iter().filter(|s| matches!(s, Seen::InitApply(_))).count()
    }
}
