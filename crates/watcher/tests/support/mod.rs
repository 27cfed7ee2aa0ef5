//! Shared helpers of the reliability tests: a seeded workload against apiserver-sim, the
//! convergence check (every store equals the simulator's state), and seed/scenario selection
//! from the environment (`KSTORE_SEED`, `KSTORE_SEEDS`, `KSTORE_SCENARIO`, `KSTORE_BURST`).

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use apiserver_sim::generate::{Cluster, Kind, Rng};
use kstore_watcher::ResourceSet;
use serde_json::{Value, json};
use store_types::Store;

/// The watch configuration every reliability scenario runs: two full stores (one with
/// non-unique keys) and one on-demand store.
pub const CONFIG: &str = r#"
ignoreFields: [metadata.managedFields]
watchedResources:
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

/// [`CONFIG`], optionally with every resource restricted to `namespaces` (one watch stream per
/// namespace, so relists are per namespace too).
pub fn config(namespaces: Option<&[String]>) -> String {
    match namespaces {
        None => CONFIG.to_owned(),
        Some(ns) => {
            let list = format!("    namespaces: [{}]\n", ns.join(", "));
            let mut out = String::new();
            for line in CONFIG.lines() {
                out.push_str(line);
                out.push('\n');
                if line.trim_start().starts_with("indexBy:") {
                    out.push_str(&list);
                }
            }
            out
        }
    }
}

/// The namespaces of a set of objects, sorted.
pub fn namespaces_of(objects: &[Value]) -> Vec<String> {
    let set: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned))
        .collect();
    set.into_iter().collect()
}

/// Objects named with this prefix are injected bad objects (see [`BadKind`]): the workload
/// never touches them and the convergence check expects them absent from every store.
pub const BAD_PREFIX: &str = "bad-";

/// Bound on one object's encoded size in the `undecodable_item` scenario's configuration:
/// well above every object the workload writes, well below [`BadKind::HugeService`] and
/// [`BadKind::HugeSecret`].
pub const SMALL_OBJECT_BOUND: u64 = 16 << 10;

/// An object no store can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKind {
    /// A Service nested one level deeper than compact-object's `MAX_DEPTH` (building and
    /// dropping it needs a large stack: run the scenario with `common::on_big_stacks`).
    Deep,
    /// A Service larger than [`SMALL_OBJECT_BOUND`].
    HugeService,
    /// A Secret whose metadata alone is larger than [`SMALL_OBJECT_BOUND`] (the on-demand store's
    /// metadata feed).
    HugeSecret,
    /// An EndpointSlice without the label its store is indexed by (key extraction fails).
    UnlabelledSlice,
}

impl BadKind {
    /// The resource (its name in [`CONFIG`]) the object belongs to.
    pub fn resource(self) -> &'static str {
        match self {
            BadKind::Deep | BadKind::HugeService => "services",
            BadKind::HugeSecret => "secrets",
            BadKind::UnlabelledSlice => "endpointslices",
        }
    }

    /// The object, named `bad-<n>` in `ns`.
    pub fn object(self, ns: &str, n: u64) -> Value {
        let name = format!("{BAD_PREFIX}{n}");
        let blob = || "x".repeat(4 * SMALL_OBJECT_BOUND as usize);
        match self {
            BadKind::Deep => {
                let mut deep = json!("bottom");
                // The root object and `spec` are two levels.
                for _ in 0..compact_object::MAX_DEPTH - 1 {
                    deep = Value::Array(vec![deep]);
                }
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
                       "spec": {"type": "ClusterIP", "ports": [{"port": 80}], "x": deep}})
            }
            BadKind::HugeService => json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": ns, "name": name, "annotations": {"kstore.test/blob": blob()}},
                "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
            BadKind::HugeSecret => json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"namespace": ns, "name": name, "annotations": {"kstore.test/blob": blob()}},
                "data": {"token": "AAAA"}}),
            BadKind::UnlabelledSlice => json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": ns, "name": name}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
        }
    }
}

/// Injected bad objects present in the simulator, by resource.
pub type Bad = BTreeMap<&'static str, usize>;

/// A bad object. The simulator's handle API reads objects back with serde_json's 128-level
/// limit, so a [`BadKind::Deep`] object comes back as `null`.
fn is_bad(o: &Value) -> bool {
    !o.is_object() || str_at(o, "/metadata/name").starts_with(BAD_PREFIX)
}

/// The label the endpointslice store is indexed by.
pub const SERVICE_LABEL: &str = "kubernetes.io/service-name";

/// An environment variable parsed as a number.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The seeds to run: `KSTORE_SEED` (one), else `0..KSTORE_SEEDS` (default `default`).
pub fn seeds(default: u64) -> Vec<u64> {
    if let Some(one) = env_u64("KSTORE_SEED") {
        return vec![one];
    }
    (0..env_u64("KSTORE_SEEDS").unwrap_or(default)).collect()
}

/// False when `KSTORE_SCENARIO` names another scenario.
pub fn selected(scenario: &str) -> bool {
    std::env::var("KSTORE_SCENARIO").map(|s| s.is_empty() || s == scenario).unwrap_or(true)
}

/// A seeded cluster of services, endpointslices and TLS secrets (small: a few dozen objects).
pub fn cluster(seed: u64) -> Vec<Value> {
    Cluster::new(seed)
        .namespaces(2)
        .apps_per_namespace(3)
        .endpoints(2, 40)
        .cert_bytes(600)
        .only(&[Kind::Service, Kind::EndpointSlice, Kind::Secret])
        .build()
}

/// What the workload did (for the figures printed by the tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpCounts {
    /// Objects created.
    pub created: u64,
    /// Objects modified without changing their keys.
    pub modified: u64,
    /// Endpointslices moved to another service (index key change).
    pub relabelled: u64,
    /// Objects deleted.
    pub deleted: u64,
    /// Objects deleted and created again under the same name (new uid).
    pub recreated: u64,
}

impl OpCounts {
    /// Every operation.
    pub fn total(&self) -> u64 {
        self.created + self.modified + self.relabelled + self.deleted + self.recreated
    }

    /// Adds another tally.
    pub fn add(&mut self, o: &OpCounts) {
        self.created += o.created;
        self.modified += o.modified;
        self.relabelled += o.relabelled;
        self.deleted += o.deleted;
        self.recreated += o.recreated;
    }
}

/// A deterministic random workload of creates, updates (including index-key changes) and
/// deletes, written through the simulator's handle API.
pub struct Workload {
    rng: Rng,
    namespaces: Vec<String>,
    next: u64,
    /// What was done so far.
    pub ops: OpCounts,
    /// Bad objects in the simulator (given at start or injected), never touched again.
    pub bad: Bad,
}

const SERVICE_NAMES: &[&str] = &["alpha", "beta", "gamma", "delta"];

impl Workload {
    /// A workload for this seed over the cluster's namespaces.
    pub fn new(seed: u64, objects: &[Value]) -> Self {
        let namespaces: BTreeSet<String> = objects
            .iter()
            .filter_map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut bad = Bad::new();
        for o in objects.iter().filter(|o| is_bad(o)) {
            let resource = match str_at(o, "/kind") {
                "Service" => "services",
                "Secret" => "secrets",
                _ => "endpointslices",
            };
            *bad.entry(resource).or_default() += 1;
        }
        Workload {
            rng: Rng::new(seed.wrapping_mul(31).wrapping_add(7)),
            namespaces: namespaces.into_iter().collect(),
            next: 0,
            ops: OpCounts::default(),
            bad,
        }
    }

    /// Creates one bad object in a random namespace.
    pub fn inject(&mut self, sim: &ApiServerSim, kind: BadKind) -> Result<(), String> {
        let ns = self.namespace();
        self.next += 1;
        sim.create(kind.object(&ns, 1_000_000 + self.next)).map_err(|e| e.to_string())?;
        *self.bad.entry(kind.resource()).or_default() += 1;
        Ok(())
    }

    fn namespace(&mut self) -> String {
        let i = (self.rng.next_u64() % self.namespaces.len() as u64) as usize;
        self.namespaces[i].clone()
    }

    fn service_name(&mut self) -> &'static str {
        self.rng.pick(SERVICE_NAMES)
    }

    fn fresh_name(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-w{}", self.next)
    }

    /// A random existing object of `resource`, as (namespace, name, object).
    fn existing(&mut self, sim: &ApiServerSim, resource: &str) -> Option<(String, String, Value)> {
        let all: Vec<Value> = sim.list(resource, None).ok()?.into_iter().filter(|o| !is_bad(o)).collect();
        if all.is_empty() {
            return None;
        }
        let o = all[(self.rng.next_u64() % all.len() as u64) as usize].clone();
        let ns = o.pointer("/metadata/namespace")?.as_str()?.to_owned();
        let name = o.pointer("/metadata/name")?.as_str()?.to_owned();
        Some((ns, name, o))
    }

    fn slice(&mut self, ns: &str, name: &str, service: &str) -> Value {
        let ip = format!("10.{}.{}.{}", self.rng.range(0, 255), self.rng.range(0, 255), self.rng.range(1, 254));
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name, "labels": {SERVICE_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        })
    }

    fn service(&mut self, ns: &str, name: &str) -> Value {
        let port = self.rng.range(1000, 9000);
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "labels": {"app": name}},
            "spec": {"type": "ClusterIP", "ports": [{"port": port}]}
        })
    }

    fn secret(&mut self, ns: &str, name: &str) -> Value {
        let value = format!("{:016x}", self.rng.next_u64());
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"namespace": ns, "name": name},
            "data": {"token": value}
        })
    }

    /// One random operation. Errors are the simulator refusing a write the workload believed
    /// valid: a harness bug, reported as a failure.
    pub fn step(&mut self, sim: &ApiServerSim) -> Result<(), String> {
        let roll = self.rng.range(0, 99);
        let e = |e: apiserver_sim::Error| e.to_string();
        match roll {
            0..=19 => {
                let ns = self.namespace();
                let name = self.fresh_name("slice");
                let svc = self.service_name();
                let obj = self.slice(&ns, &name, svc);
                sim.create(obj).map_err(e)?;
                self.ops.created += 1;
            }
            20..=39 => {
                // Index-key change: the slice moves to another service.
                if let Some((ns, name, _)) = self.existing(sim, "endpointslices") {
                    let svc = self.service_name();
                    let patch = json!({"metadata": {"labels": {SERVICE_LABEL: svc}}});
                    sim.patch("endpointslices", Some(&ns), &name, &patch).map_err(e)?;
                    self.ops.relabelled += 1;
                }
            }
            40..=54 => {
                if let Some((ns, name, _)) = self.existing(sim, "endpointslices") {
                    let n = self.rng.next_u64();
                    let patch = json!({"metadata": {"annotations": {"kstore.test/generation": n.to_string()}}});
                    sim.patch("endpointslices", Some(&ns), &name, &patch).map_err(e)?;
                    self.ops.modified += 1;
                }
            }
            55..=64 => {
                if let Some((ns, name, _)) = self.existing(sim, "endpointslices") {
                    sim.delete("endpointslices", Some(&ns), &name).map_err(e)?;
                    self.ops.deleted += 1;
                }
            }
            65..=74 => {
                // Services: create, modify or delete.
                match self.rng.range(0, 2) {
                    0 => {
                        let ns = self.namespace();
                        let name = self.fresh_name("svc");
                        let obj = self.service(&ns, &name);
                        sim.create(obj).map_err(e)?;
                        self.ops.created += 1;
                    }
                    1 => {
                        if let Some((ns, name, _)) = self.existing(sim, "services") {
                            let obj = self.service(&ns, &name);
                            sim.apply(obj).map_err(e)?;
                            self.ops.modified += 1;
                        }
                    }
                    _ => {
                        if let Some((ns, name, _)) = self.existing(sim, "services") {
                            sim.delete("services", Some(&ns), &name).map_err(e)?;
                            self.ops.deleted += 1;
                        }
                    }
                }
            }
            75..=89 => match self.rng.range(0, 2) {
                0 => {
                    let ns = self.namespace();
                    let name = self.fresh_name("secret");
                    let obj = self.secret(&ns, &name);
                    sim.create(obj).map_err(e)?;
                    self.ops.created += 1;
                }
                1 => {
                    if let Some((ns, name, _)) = self.existing(sim, "secrets") {
                        let obj = self.secret(&ns, &name);
                        sim.apply(obj).map_err(e)?;
                        self.ops.modified += 1;
                    }
                }
                _ => {
                    if let Some((ns, name, _)) = self.existing(sim, "secrets") {
                        sim.delete("secrets", Some(&ns), &name).map_err(e)?;
                        self.ops.deleted += 1;
                    }
                }
            },
            _ => self.recreate(sim)?,
        }
        Ok(())
    }

    /// Deletes an object and creates it again under the same name: a new uid (and, for a
    /// slice, possibly another service).
    pub fn recreate(&mut self, sim: &ApiServerSim) -> Result<(), String> {
        let e = |e: apiserver_sim::Error| e.to_string();
        let resource = ["endpointslices", "secrets", "services"][self.rng.range(0, 2) as usize];
        let Some((ns, name, _)) = self.existing(sim, resource) else { return Ok(()) };
        sim.delete(resource, Some(&ns), &name).map_err(e)?;
        let obj = match resource {
            "endpointslices" => {
                let svc = self.service_name();
                self.slice(&ns, &name, svc)
            }
            "secrets" => self.secret(&ns, &name),
            _ => self.service(&ns, &name),
        };
        sim.create(obj).map_err(e)?;
        self.ops.recreated += 1;
        Ok(())
    }

    /// `n` random operations, yielding between them so the watchers interleave.
    pub async fn run(&mut self, sim: &ApiServerSim, n: usize) -> Result<(), String> {
        for i in 0..n {
            self.step(sim)?;
            if i % 4 == 3 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// `n` endpointslice creates and relabels in a burst (yielding every 25 writes, so that
    /// the other seeds' tasks sharing the runtime keep running).
    pub async fn burst(&mut self, sim: &ApiServerSim, n: usize) -> Result<(), String> {
        let e = |e: apiserver_sim::Error| e.to_string();
        let mut created = Vec::new();
        for i in 0..n {
            if i % 3 == 2 && !created.is_empty() {
                let (ns, name): &(String, String) = &created[(self.rng.next_u64() % created.len() as u64) as usize];
                let svc = self.service_name();
                let patch = json!({"metadata": {"labels": {SERVICE_LABEL: svc}}});
                sim.patch("endpointslices", Some(ns), name, &patch).map_err(e)?;
                self.ops.relabelled += 1;
            } else {
                let ns = self.namespace();
                let name = self.fresh_name("burst");
                let svc = self.service_name();
                let obj = self.slice(&ns, &name, svc);
                sim.create(obj).map_err(e)?;
                self.ops.created += 1;
                created.push((ns, name));
            }
            if i % 25 == 24 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }
}

/// Identity → (uid, resourceVersion, keys).
type State = BTreeMap<(String, String), (String, String, Vec<String>)>;

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// The state the stores must reach, recomputed from the simulator's objects. Objects whose
/// keys cannot be extracted (a slice without the service label) and injected bad objects are
/// expected absent.
fn expected(sim: &ApiServerSim, resource: &str) -> State {
    let mut out = State::new();
    for o in sim.list(resource, None).unwrap_or_default().into_iter().filter(|o| !is_bad(o)) {
        let ns = str_at(&o, "/metadata/namespace").to_owned();
        let name = str_at(&o, "/metadata/name").to_owned();
        let keys = if resource == "endpointslices" {
            match o.pointer("/metadata/labels").and_then(|l| l.get(SERVICE_LABEL)).and_then(Value::as_str) {
                Some(svc) => vec![ns.clone(), svc.to_owned()],
                None => continue,
            }
        } else {
            vec![ns.clone(), name.clone()]
        };
        let entry = (str_at(&o, "/metadata/uid").to_owned(), str_at(&o, "/metadata/resourceVersion").to_owned(), keys);
        out.insert((ns, name), entry);
    }
    out
}

fn diff(resource: &str, want: &State, got: &State, entries: usize) -> Result<(), String> {
    if entries != got.len() {
        return Err(format!("{resource}: {entries} entries for {} identities (duplicates)", got.len()));
    }
    for (id, w) in want {
        match got.get(id) {
            None => return Err(format!("{resource}: lost {}/{} (want {w:?})", id.0, id.1)),
            Some(g) if g != w => return Err(format!("{resource}: {}/{} is {g:?}, want {w:?}", id.0, id.1)),
            Some(_) => {}
        }
    }
    if let Some(ghost) = got.keys().find(|id| !want.contains_key(*id)) {
        return Err(format!("{resource}: ghost {}/{} ({:?})", ghost.0, ghost.1, got[ghost]));
    }
    Ok(())
}

/// Objects compared by one successful check.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    /// Objects in full stores.
    pub full: u64,
    /// References in on-demand stores.
    pub references: u64,
    /// Objects read through the CachedStore and compared with the simulator.
    pub cached_reads: u64,
}

/// Compares every store of `set` with the simulator once; `Err` says the first difference.
///
/// `deep` also runs `validate()` (an O(n) index rebuild) on every store; `converge` polls
/// without it and validates once the contents match, so polling does not starve the watchers.
pub fn compare_stores(sim: &ApiServerSim, set: &ResourceSet, deep: bool) -> Result<Checked, String> {
    let mut checked = Checked::default();
    for resource in ["services", "endpointslices"] {
        let w = set.watcher(resource).ok_or("missing watcher")?;
        let store = w.store().as_memory().ok_or("not a memory store")?;
        let snap = store.snapshot();
        let mut got = State::new();
        let mut entries = 0;
        for (o, k) in snap.entries() {
            entries += 1;
            let ns = o.pointer("/metadata/namespace").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
            let name = o.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
            let uid = o.pointer("/metadata/uid").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
            let rv = o.pointer("/metadata/resourceVersion").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
            got.insert((ns, name), (uid, rv, k.to_vec()));
        }
        let want = expected(sim, resource);
        diff(resource, &want, &got, entries)?;
        // The index answers every expected key with exactly the expected objects.
        let mut by_key: BTreeMap<&Vec<String>, Vec<&str>> = BTreeMap::new();
        for ((_, name), (_, _, keys)) in &want {
            by_key.entry(keys).or_default().push(name);
        }
        for (keys, mut names) in by_key {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let hits = snap.get(&refs).map_err(|e| format!("{resource}: get {keys:?}: {e}"))?;
            let mut hit_names: Vec<String> = hits
                .iter()
                .map(|o| o.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default().to_owned())
                .collect();
            hit_names.sort();
            names.sort();
            if hit_names != names {
                return Err(format!("{resource}: get {keys:?} gives {hit_names:?}, want {names:?}"));
            }
        }
        if deep {
            snap.validate().map_err(|e| format!("{resource}: validate: {e}"))?;
        }
        checked.full += want.len() as u64;
    }
    let cached = set.watcher("secrets").and_then(|w| w.store().as_cached()).ok_or("secrets not on-demand")?;
    let refs = cached.references();
    let mut got = State::new();
    let mut entries = 0;
    for (r, k) in refs.entries() {
        entries += 1;
        got.insert(
            (r.namespace().to_owned(), r.name().to_owned()),
            (r.uid().unwrap_or_default().to_owned(), r.resource_version().unwrap_or_default().to_owned(), k.to_vec()),
        );
    }
    let want = expected(sim, "secrets");
    diff("secrets (references)", &want, &got, entries)?;
    if deep {
        refs.validate().map_err(|e| format!("secrets: validate: {e}"))?;
    }
    checked.references = want.len() as u64;
    Ok(checked)
}

/// True when every store holds as many objects as the simulator minus the bad ones (a cheap
/// precondition).
fn counts_match(sim: &ApiServerSim, set: &ResourceSet, bad: &Bad) -> Result<(), String> {
    for resource in ["services", "endpointslices", "secrets"] {
        let held = set.watcher(resource).map(|w| w.store().len()).unwrap_or_default();
        let want = sim.count(resource).map_err(|e| e.to_string())? - bad.get(resource).copied().unwrap_or_default();
        if held != want {
            return Err(format!("{resource}: {held} held, {want} in the simulator"));
        }
    }
    Ok(())
}

/// Reads every secret through the CachedStore and compares it with the simulator.
pub async fn compare_cached_reads(sim: &ApiServerSim, set: &ResourceSet) -> Result<u64, String> {
    let cached = set.watcher("secrets").and_then(|w| w.store().as_cached()).ok_or("secrets not on-demand")?;
    let mut n = 0;
    for o in sim.list("secrets", None).unwrap_or_default().into_iter().filter(|o| !is_bad(o)) {
        let ns = str_at(&o, "/metadata/namespace");
        let name = str_at(&o, "/metadata/name");
        let got = Store::get(cached, &[ns, name]).await.map_err(|e| format!("cached read {ns}/{name}: {e}"))?;
        let [one] = &got[..] else {
            return Err(format!("cached read {ns}/{name}: {} objects", got.len()));
        };
        let rv = one.pointer("/metadata/resourceVersion").and_then(|n| n.as_str()).unwrap_or_default();
        let uid = one.pointer("/metadata/uid").and_then(|n| n.as_str()).unwrap_or_default();
        if rv != str_at(&o, "/metadata/resourceVersion") || uid != str_at(&o, "/metadata/uid") {
            return Err(format!("cached read {ns}/{name}: stale (rv {rv}, uid {uid})"));
        }
        for (k, v) in o.pointer("/data").and_then(Value::as_object).into_iter().flatten() {
            let got = one.pointer(&format!("/data/{k}")).and_then(|n| n.as_str().map(str::to_owned));
            if got.as_deref() != v.as_str() {
                return Err(format!("cached read {ns}/{name}: data {k} differs"));
            }
        }
        n += 1;
    }
    Ok(n)
}

/// Waits (bounded) until every store equals the simulator minus the `bad` objects, then
/// checks CachedStore reads.
pub async fn converge(sim: &ApiServerSim, set: &ResourceSet, bad: &Bad, within: Duration) -> Result<Checked, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last;
    let mut pause = Duration::from_millis(20);
    loop {
        // Counts first (O(1) on both sides): the full comparison parses every simulator
        // object, and polling it while thousands of events are applied would starve the
        // watchers on a small machine.
        let counts = counts_match(sim, set, bad);
        match counts.and_then(|_| compare_stores(sim, set, false)).and_then(|_| compare_stores(sim, set, true)) {
            Ok(mut checked) => {
                // Stable: compare again once the reads are done (the watch may not have
                // delivered a write that happened between the comparison and the reads).
                match compare_cached_reads(sim, set).await {
                    Ok(n) => {
                        checked.cached_reads = n;
                        return Ok(checked);
                    }
                    Err(e) => last = e,
                }
            }
            Err(e) => last = e,
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("not converged within {within:?}: {last}\n{}", diagnostics(sim, set)));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(400));
    }
}

/// Every watcher skips exactly the bad objects: its distinct skipped identities equal the bad
/// objects of its resource, and it counted at least one rejection or extraction failure per
/// bad object, none when there is none.
pub fn check_skipped(set: &ResourceSet, bad: &Bad) -> Result<(), String> {
    for (name, w) in set.watchers() {
        let want = bad.get(name).copied().unwrap_or_default();
        let events = w.rejected_objects() + w.extraction_failures();
        if w.skipped_identities() != want || events < want as u64 || (want == 0 && events > 0) {
            return Err(format!(
                "{name}: {} objects skipped ({events} events: {} rejected, {} extraction failures), {want} bad objects injected",
                w.skipped_identities(),
                w.rejected_objects(),
                w.extraction_failures()
            ));
        }
    }
    Ok(())
}

/// What the watchers received and the last requests served, for failure messages.
pub fn diagnostics(sim: &ApiServerSim, set: &ResourceSet) -> String {
    let mut out = format!(
        "  sim resourceVersion {}, compacted at {}, {} watches open\n",
        sim.resource_version(),
        sim.compacted_resource_version(),
        sim.active_watches()
    );
    for (name, w) in set.watchers() {
        out += &format!("  {name}: {} events received, {} stored\n", w.events_received(), w.store().len());
    }
    let entries = sim.requests().entries();
    for r in entries.iter().rev().take(12).rev() {
        out += &format!("  {:?} {:?} {} ?{}\n", r.verb, r.resource, r.status, r.query);
    }
    out
}
