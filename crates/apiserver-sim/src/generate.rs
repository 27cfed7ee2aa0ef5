//! Deterministic, seeded generator of realistic clusters.
//!
//! `Cluster::new(seed).namespaces(n).apps_per_namespace(m)` yields, per namespace, a `Namespace`
//! and, per app, an `Ingress` (TLS, several rules and paths), a `Service`, one or two
//! `EndpointSlice`s (5–50 endpoints in total), a `kubernetes.io/tls` `Secret` with a few-KB
//! certificate chain and key, and a `ConfigMap` — each with labels, `managedFields` and a
//! `kubectl.kubernetes.io/last-applied-configuration` annotation like objects created with
//! `kubectl apply`. The same seed and sizes always give byte-identical objects.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::status::rfc3339;

/// Kinds the generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `v1` Namespace.
    Namespace,
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `v1` Secret of type `kubernetes.io/tls`.
    Secret,
    /// `v1` ConfigMap.
    ConfigMap,
}

impl Kind {
    /// Every kind, in generation order.
    pub const ALL: [Kind; 6] =
        [Kind::Namespace, Kind::Ingress, Kind::Service, Kind::EndpointSlice, Kind::Secret, Kind::ConfigMap];
}

/// A small, fast, seedable PRNG (SplitMix64); stable across versions so output is reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6A09_E667_F3BC_C909)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// A random element.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    fn uid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        uuid_from(a, b)
    }
}

const TEAMS: &[&str] = &[
    "payments", "checkout", "search", "identity", "catalog", "billing", "platform", "growth", "media", "ledger",
    "notify", "risk",
];
const NOUNS: &[&str] = &[
    "api",
    "web",
    "worker",
    "gateway",
    "frontend",
    "indexer",
    "scheduler",
    "exporter",
    "auth",
    "cart",
    "reports",
    "cache",
    "events",
    "admin",
];
const DOMAINS: &[&str] = &["example.com", "corp.example.net", "shop.example.org"];
const PATHS: &[&str] = &[
    "/",
    "/api",
    "/v1",
    "/v2",
    "/healthz",
    "/static",
    "/graphql",
    "/admin",
    "/webhooks",
    "/metrics",
    "/login",
    "/assets",
];
const ZONES: &[&str] = &["eu-west-1a", "eu-west-1b", "eu-west-1c"];

/// A version-4-UUID-shaped string from 128 random bits (used by the generator and by the
/// simulator for the uids of created objects).
pub(crate) fn uuid_from(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Builder of a generated cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    seed: u64,
    namespaces: usize,
    apps: usize,
    endpoints: (u64, u64),
    cert_bytes: usize,
    kinds: Vec<Kind>,
}

impl Cluster {
    /// A cluster with this seed; defaults: 3 namespaces × 4 apps, 5–50 endpoints per app,
    /// ~2 KB of certificate DER per TLS secret, every kind.
    pub fn new(seed: u64) -> Self {
        Self { seed, namespaces: 3, apps: 4, endpoints: (5, 50), cert_bytes: 2048, kinds: Kind::ALL.to_vec() }
    }

    /// Number of namespaces.
    pub fn namespaces(mut self, n: usize) -> Self {
        self.namespaces = n;
        self
    }

    /// Number of apps per namespace.
    pub fn apps_per_namespace(mut self, m: usize) -> Self {
        self.apps = m;
        self
    }

    /// Endpoints per app, inclusive range (clamped to at least 1).
    pub fn endpoints(mut self, min: u64, max: u64) -> Self {
        let min = min.max(1);
        self.endpoints = (min, max.max(min));
        self
    }

    /// Bytes of DER in each certificate of a TLS secret's chain (two certificates per chain).
    pub fn cert_bytes(mut self, n: usize) -> Self {
        self.cert_bytes = n.max(64);
        self
    }

    /// Only produce these kinds (the same objects as a full build, filtered).
    pub fn only(mut self, kinds: &[Kind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    /// Namespace names, in order.
    pub fn namespace_names(&self) -> Vec<String> {
        (0..self.namespaces).map(|i| format!("{}-{i}", TEAMS[i % TEAMS.len()])).collect()
    }

    /// How many objects [`build`](Self::build) yields (walks the generator).
    pub fn count(&self) -> usize {
        self.iter().count()
    }

    /// All objects: each namespace, then per app Ingress, Service, EndpointSlices, Secret,
    /// ConfigMap.
    pub fn build(&self) -> Vec<Value> {
        self.iter().collect()
    }

    /// Lazily generate the objects (useful for very large clusters).
    pub fn iter(&self) -> impl Iterator<Item = Value> + '_ {
        self.namespace_names().into_iter().enumerate().flat_map(move |(i, ns)| {
            let mut rng = Rng::new(self.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            let mut out = Vec::new();
            let base_time = 1_704_067_200 + rng.range(0, 86_400 * 30) as i64;
            if self.kinds.contains(&Kind::Namespace) {
                out.push(namespace(&mut rng, &ns, base_time));
            }
            let ns_objects = (0..self.apps).flat_map(move |j| {
                let mut rng = Rng::new(self.seed ^ ((i as u64) << 32 | j as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
                let app = format!("{}-{}-{j}", rng.pick(TEAMS), rng.pick(NOUNS));
                let t = base_time + rng.range(60, 86_400 * 90) as i64;
                self.app_objects(&mut rng, &ns, &app, t)
            });
            out.into_iter().chain(ns_objects)
        })
    }

    fn app_objects(&self, rng: &mut Rng, ns: &str, app: &str, t: i64) -> Vec<Value> {
        let mut out = Vec::new();
        let labels = json!({
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/instance": format!("{app}-prod"),
            "app.kubernetes.io/part-of": ns,
            "app.kubernetes.io/managed-by": "kubectl",
            "tier": rng.pick(&["frontend", "backend", "edge"]),
        });
        let host_domain = rng.pick(DOMAINS);
        let hosts: Vec<String> = (0..rng.range(1, 3))
            .map(|h| format!("{app}{}.{ns}.{host_domain}", if h == 0 { String::new() } else { format!("-{h}") }))
            .collect();
        let port = [8080, 8443, 3000, 9090][(rng.next_u64() % 4) as usize];
        let secret_name = format!("{app}-tls");
        let service_uid = rng.uid();
        let total = rng.range(self.endpoints.0, self.endpoints.1);
        // Each kind draws from its own stream, so filtered builds yield the same objects as
        // full ones without generating the kinds left out.
        let app_seed = rng.next_u64();
        let kind_rng = |k: u64| Rng::new(app_seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if self.kinds.contains(&Kind::Ingress) {
            let rng = &mut kind_rng(1);
            out.push(ingress(rng, ns, app, &labels, &hosts, &secret_name, port, t));
        }
        if self.kinds.contains(&Kind::Service) {
            let mut svc = service(&mut kind_rng(2), ns, app, &labels, port, t);
            svc["metadata"]["uid"] = json!(service_uid);
            out.push(svc);
        }
        if self.kinds.contains(&Kind::EndpointSlice) {
            let rng = &mut kind_rng(3);
            let slices = if total > 30 { vec![total / 2, total - total / 2] } else { vec![total] };
            for n in slices {
                out.push(endpoint_slice(rng, ns, app, &service_uid, n, port, t));
            }
        }
        if self.kinds.contains(&Kind::Secret) {
            let rng = &mut kind_rng(4);
            out.push(tls_secret(rng, ns, &secret_name, &labels, &hosts, self.cert_bytes, t));
        }
        if self.kinds.contains(&Kind::ConfigMap) {
            out.push(config_map(&mut kind_rng(5), ns, app, &labels, t));
        }
        out
    }
}

/// `managedFields` entry as written by `kubectl apply` (client-side).
fn managed_fields(api_version: &str, t: i64, fields: Value) -> Value {
    json!([{
        "manager": "kubectl-client-side-apply",
        "operation": "Update",
        "apiVersion": api_version,
        "time": rfc3339(t),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }])
}

/// Finish an applied object: add last-applied annotation, managedFields, uid and timestamp.
fn applied(mut obj: Value, rng: &mut Rng, t: i64, spec_fields: Value) -> Value {
    let last_applied = serde_json::to_string(&obj).unwrap_or_default();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_owned();
    let label_fields: serde_json::Map<String, Value> = obj["metadata"]["labels"]
        .as_object()
        .map(|m| m.keys().map(|k| (format!("f:{k}"), json!({}))).collect())
        .unwrap_or_default();
    let mut fields = json!({
        "f:metadata": {
            "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
            "f:labels": Value::Object(label_fields),
        }
    });
    if let (Some(f), Some(s)) = (fields.as_object_mut(), spec_fields.as_object()) {
        for (k, v) in s {
            f.insert(k.clone(), v.clone());
        }
    }
    let meta = &mut obj["metadata"];
    meta["annotations"]
        .as_object_mut()
        .map(|a| a.insert("kubectl.kubernetes.io/last-applied-configuration".into(), json!(last_applied)))
        .unwrap_or_else(|| {
            meta["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": last_applied});
            None
        });
    meta["uid"] = json!(rng.uid());
    meta["creationTimestamp"] = json!(rfc3339(t));
    meta["managedFields"] = managed_fields(&api_version, t, fields);
    obj
}

fn namespace(rng: &mut Rng, ns: &str, t: i64) -> Value {
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": ns,
            "labels": {"kubernetes.io/metadata.name": ns, "team": ns.split('-').next().unwrap_or(ns)},
        },
        "spec": {"finalizers": ["kubernetes"]},
    });
    let mut obj = applied(obj, rng, t, json!({}));
    obj["status"] = json!({"phase": "Active"});
    obj
}

#[allow(clippy::too_many_arguments)]
fn ingress(
    rng: &mut Rng,
    ns: &str,
    app: &str,
    labels: &Value,
    hosts: &[String],
    secret: &str,
    port: u64,
    t: i64,
) -> Value {
    let rules: Vec<Value> = hosts
        .iter()
        .map(|h| {
            let n = rng.range(2, 5);
            let mut used = Vec::new();
            let paths: Vec<Value> = (0..n)
                .filter_map(|_| {
                    let p = rng.pick(PATHS);
                    if used.contains(&p) {
                        return None;
                    }
                    used.push(p);
                    Some(json!({
                        "path": p,
                        "pathType": if p == "/" { "Prefix" } else { rng.pick(&["Prefix", "ImplementationSpecific", "Exact"]) },
                        "backend": {"service": {"name": app, "port": {"number": port}}},
                    }))
                })
                .collect();
            json!({"host": h, "http": {"paths": paths}})
        })
        .collect();
    let obj = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": app,
            "namespace": ns,
            "labels": labels,
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-body-size": format!("{}m", rng.range(1, 64)),
                "nginx.ingress.kubernetes.io/ssl-redirect": "true",
                "cert-manager.io/cluster-issuer": "letsencrypt-prod",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": hosts, "secretName": secret}],
            "rules": rules,
        },
    });
    let mut obj = applied(obj, rng, t, json!({"f:spec": {"f:ingressClassName": {}, "f:rules": {}, "f:tls": {}}}));
    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": format!("203.0.113.{}", rng.range(1, 254))}]}});
    obj
}

fn service(rng: &mut Rng, ns: &str, app: &str, labels: &Value, port: u64, t: i64) -> Value {
    let ip = format!("10.96.{}.{}", rng.range(0, 255), rng.range(1, 254));
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "namespace": ns, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": app},
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": port},
                {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100},
            ],
        },
    });
    let mut obj = applied(obj, rng, t, json!({"f:spec": {"f:ports": {}, "f:selector": {}, "f:type": {}}}));
    let spec = &mut obj["spec"];
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    spec["ipFamilies"] = json!(["IPv4"]);
    spec["ipFamilyPolicy"] = json!("SingleStack");
    spec["internalTrafficPolicy"] = json!("Cluster");
    spec["sessionAffinity"] = json!("None");
    obj["status"] = json!({"loadBalancer": {}});
    obj
}

fn endpoint_slice(rng: &mut Rng, ns: &str, app: &str, service_uid: &str, n: u64, port: u64, t: i64) -> Value {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5).map(|_| ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize] as char).collect();
    let endpoints: Vec<Value> = (0..n)
        .map(|_| {
            let pod: String =
                (0..5).map(|_| ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize] as char).collect();
            let ready = rng.range(0, 19) != 0;
            json!({
                "addresses": [format!("10.244.{}.{}", rng.range(0, 255), rng.range(1, 254))],
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
                "nodeName": format!("node-{}", rng.range(1, 40)),
                "zone": rng.pick(ZONES),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": format!("{app}-{:x}-{pod}", rng.range(0x1000_0000, 0xffff_ffff)),
                    "uid": rng.uid(),
                },
            })
        })
        .collect();
    let uid = rng.uid();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{app}-{suffix}"),
            "generateName": format!("{app}-"),
            "namespace": ns,
            "uid": uid,
            "creationTimestamp": rfc3339(t),
            "generation": 1,
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": app,
                "app.kubernetes.io/name": app,
            },
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": rfc3339(t + 30)},
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": app, "uid": service_uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
            "managedFields": [{
                "manager": "kube-controller-manager",
                "operation": "Update",
                "apiVersion": "discovery.k8s.io/v1",
                "time": rfc3339(t + 30),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:addressType": {}, "f:endpoints": {}, "f:metadata": {"f:labels": {}, "f:ownerReferences": {}}, "f:ports": {}},
            }],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn tls_secret(
    rng: &mut Rng,
    ns: &str,
    name: &str,
    labels: &Value,
    hosts: &[String],
    cert_bytes: usize,
    t: i64,
) -> Value {
    let chain =
        format!("{}{}", pem("CERTIFICATE", &rng.bytes(cert_bytes)), pem("CERTIFICATE", &rng.bytes(cert_bytes * 3 / 4)));
    let key = pem("PRIVATE KEY", &rng.bytes(1218));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {
                "cert-manager.io/alt-names": hosts.join(","),
                "cert-manager.io/issuer-name": "letsencrypt-prod",
                "cert-manager.io/issuer-kind": "ClusterIssuer",
            },
        },
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&chain), "tls.key": b64(&key)},
    });
    applied(obj, rng, t, json!({"f:data": {".": {}, "f:tls.crt": {}, "f:tls.key": {}}, "f:type": {}}))
}

fn config_map(rng: &mut Rng, ns: &str, app: &str, labels: &Value, t: i64) -> Value {
    let props: String = (0..rng.range(5, 20))
        .map(|i| format!("{}.{}.setting{i}={}\n", app, rng.pick(NOUNS), rng.next_u64() % 10_000))
        .collect();
    let obj = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{app}-config"), "namespace": ns, "labels": labels},
        "data": {
            "LOG_LEVEL": rng.pick(&["info", "debug", "warn"]),
            "UPSTREAM_URL": format!("http://{}.{ns}.svc.cluster.local:80", rng.pick(NOUNS)),
            "FEATURE_FLAGS": format!("{},{}", rng.pick(NOUNS), rng.pick(NOUNS)),
            "application.properties": props,
        },
    });
    applied(obj, rng, t, json!({"f:data": {".": {}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_realistic() {
        let a = Cluster::new(42).namespaces(2).apps_per_namespace(3).build();
        let b = Cluster::new(42).namespaces(2).apps_per_namespace(3).build();
        assert_eq!(a, b);
        let c = Cluster::new(43).namespaces(2).apps_per_namespace(3).build();
        assert_ne!(a, c);
        let of = |k: &str| a.iter().filter(|o| o["kind"] == k).collect::<Vec<_>>();
        assert_eq!(of("Namespace").len(), 2);
        assert_eq!(of("Ingress").len(), 6);
        assert_eq!(of("Service").len(), 6);
        assert_eq!(of("Secret").len(), 6);
        assert_eq!(of("ConfigMap").len(), 6);
        let eps: u64 = of("EndpointSlice").iter().map(|s| s["endpoints"].as_array().unwrap().len() as u64).sum();
        assert!((30..=300).contains(&eps), "{eps}");
        for ing in of("Ingress") {
            assert!(!ing["spec"]["tls"][0]["secretName"].as_str().unwrap().is_empty());
            let paths = ing["spec"]["rules"][0]["http"]["paths"].as_array().unwrap().len();
            assert!(paths >= 1);
            assert!(ing["metadata"]["managedFields"].is_array());
            assert!(ing["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
        }
        for s in of("Secret") {
            let crt = s["data"]["tls.crt"].as_str().unwrap();
            assert!(crt.len() > 4000, "few-KB certificate, got {}", crt.len());
            assert_eq!(s["type"], "kubernetes.io/tls");
        }
        // names are unique per kind and namespace
        let mut keys: Vec<String> = a
            .iter()
            .map(|o| format!("{}/{}/{}", o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]))
            .collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }

    #[test]
    fn only_filters_the_same_objects() {
        let full = Cluster::new(1).namespaces(2).apps_per_namespace(2).build();
        let secrets = Cluster::new(1).namespaces(2).apps_per_namespace(2).only(&[Kind::Secret]).build();
        let from_full: Vec<&Value> = full.iter().filter(|o| o["kind"] == "Secret").collect();
        assert_eq!(secrets.iter().collect::<Vec<_>>(), from_full);
    }
}
