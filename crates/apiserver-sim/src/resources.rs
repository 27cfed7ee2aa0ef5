//! The resource registry: which kinds the simulator serves, under which group, version and plural.

use std::fmt;

use serde_json::{Value, json};

/// Whether objects of a resource live inside a namespace or at cluster scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Objects live in a namespace (`/namespaces/{ns}/{plural}/{name}`).
    Namespaced,
    /// Objects are cluster-wide (`/{plural}/{name}`).
    Cluster,
}

/// Description of one served resource (a built-in kind or a CRD-like registration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Lower-case plural used in paths, e.g. `secrets`.
    pub plural: String,
    /// Lower-case singular name, e.g. `secret`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// Short names advertised in discovery (e.g. `cm` for ConfigMap).
    pub short_names: Vec<String>,
    /// A built-in kind: the items of its lists carry no `apiVersion` and `kind`, as a real API
    /// server writes them (custom resources' list items keep theirs). False for
    /// [`ResourceDef::new`]; true for [`builtin_resources`].
    pub builtin: bool,
}

impl ResourceDef {
    /// Define a resource; `singular` defaults to the lower-cased kind.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, scope: Scope) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            scope,
            short_names: Vec::new(),
            builtin: false,
        }
    }

    /// Add short names advertised in discovery.
    pub fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Mark as a built-in kind (see [`builtin`](Self::builtin)).
    pub fn as_builtin(mut self) -> Self {
        self.builtin = true;
        self
    }

    /// `apiVersion` as written in objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The `status` a real API server's create strategy gives a new object of this built-in kind
    /// when it has a status subresource and resets it to its zero value (whatever the client sent);
    /// `None` where the client's `status` is kept. The zero values are as Go serializes them: the
    /// members without `omitempty` (`replicas`, …) are written as 0/false, and Service's and
    /// Ingress's `loadBalancer` struct as `{}`. Pods, Namespaces, PersistentVolumes and
    /// PersistentVolumeClaims get a computed or defaulted status (phase, QoS class) and Nodes keep
    /// theirs: not modelled (docs/apiserver-sim.md).
    pub fn status_on_create(&self) -> Option<Value> {
        if !self.builtin {
            return None;
        }
        let status = match (self.group.as_str(), self.kind.as_str()) {
            ("", "Service") | ("networking.k8s.io", "Ingress") => json!({"loadBalancer": {}}),
            ("", "ReplicationController") | ("apps", "ReplicaSet") => json!({"replicas": 0}),
            ("apps", "StatefulSet") => json!({"replicas": 0, "availableReplicas": 0}),
            ("apps", "DaemonSet") => json!({"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                            "desiredNumberScheduled": 0, "numberReady": 0}),
            ("autoscaling", "HorizontalPodAutoscaler") => json!({"desiredReplicas": 0}),
            ("policy", "PodDisruptionBudget") => json!({"disruptionsAllowed": 0, "currentHealthy": 0,
                                                       "desiredHealthy": 0, "expectedPods": 0}),
            ("storage.k8s.io", "VolumeAttachment") => json!({"attached": false}),
            ("", "ResourceQuota")
            | ("apps", "Deployment")
            | ("batch", "Job" | "CronJob")
            | ("certificates.k8s.io", "CertificateSigningRequest")
            | ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration")
            | ("networking.k8s.io", "ServiceCIDR")
            | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
            | ("resource.k8s.io", "ResourceClaim") => json!({}),
            _ => return None,
        };
        Some(status)
    }

    /// Whether objects are namespaced.
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The path prefix of the group version: `/api/v1` or `/apis/{group}/{version}`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for ResourceDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() { write!(f, "{}", self.plural) } else { write!(f, "{}.{}", self.plural, self.group) }
    }
}

/// The built-in kinds every simulator serves.
pub fn builtin_resources() -> Vec<ResourceDef> {
    use Scope::{Cluster, Namespaced};
    vec![
        ResourceDef::new("", "v1", "Namespace", "namespaces", Cluster).with_short_names(&["ns"]),
        ResourceDef::new("", "v1", "Secret", "secrets", Namespaced),
        ResourceDef::new("", "v1", "ConfigMap", "configmaps", Namespaced).with_short_names(&["cm"]),
        ResourceDef::new("", "v1", "Service", "services", Namespaced).with_short_names(&["svc"]),
        ResourceDef::new("", "v1", "Pod", "pods", Namespaced).with_short_names(&["po"]),
        ResourceDef::new("", "v1", "Node", "nodes", Cluster).with_short_names(&["no"]),
        ResourceDef::new("", "v1", "ServiceAccount", "serviceaccounts", Namespaced).with_short_names(&["sa"]),
        ResourceDef::new("networking.k8s.io", "v1", "Ingress", "ingresses", Namespaced).with_short_names(&["ing"]),
        ResourceDef::new("networking.k8s.io", "v1", "IngressClass", "ingressclasses", Cluster),
        ResourceDef::new("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", Namespaced),
        ResourceDef::new("apps", "v1", "Deployment", "deployments", Namespaced).with_short_names(&["deploy"]),
        // The other kinds a current kube-apiserver serves by default, each at its one served
        // (storage) version: no kind is registered twice (autoscaling/v1 and events.k8s.io/v1
        // would be a second, separate store of the same objects here).
        ResourceDef::new("", "v1", "Endpoints", "endpoints", Namespaced).with_short_names(&["ep"]),
        ResourceDef::new("", "v1", "Event", "events", Namespaced).with_short_names(&["ev"]),
        ResourceDef::new("", "v1", "LimitRange", "limitranges", Namespaced).with_short_names(&["limits"]),
        ResourceDef::new("", "v1", "PersistentVolume", "persistentvolumes", Cluster).with_short_names(&["pv"]),
        ResourceDef::new("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", Namespaced)
            .with_short_names(&["pvc"]),
        ResourceDef::new("", "v1", "PodTemplate", "podtemplates", Namespaced),
        ResourceDef::new("", "v1", "ReplicationController", "replicationcontrollers", Namespaced)
            .with_short_names(&["rc"]),
        ResourceDef::new("", "v1", "ResourceQuota", "resourcequotas", Namespaced).with_short_names(&["quota"]),
        ResourceDef::new(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            Cluster,
        ),
        ResourceDef::new(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            Cluster,
        ),
        ResourceDef::new(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            Cluster,
        ),
        ResourceDef::new(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            Cluster,
        ),
        ResourceDef::new("apps", "v1", "ControllerRevision", "controllerrevisions", Namespaced),
        ResourceDef::new("apps", "v1", "DaemonSet", "daemonsets", Namespaced).with_short_names(&["ds"]),
        ResourceDef::new("apps", "v1", "ReplicaSet", "replicasets", Namespaced).with_short_names(&["rs"]),
        ResourceDef::new("apps", "v1", "StatefulSet", "statefulsets", Namespaced).with_short_names(&["sts"]),
        ResourceDef::new("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", Namespaced)
            .with_short_names(&["hpa"]),
        ResourceDef::new("batch", "v1", "CronJob", "cronjobs", Namespaced).with_short_names(&["cj"]),
        ResourceDef::new("batch", "v1", "Job", "jobs", Namespaced),
        ResourceDef::new(
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            Cluster,
        )
        .with_short_names(&["csr"]),
        ResourceDef::new("coordination.k8s.io", "v1", "Lease", "leases", Namespaced),
        ResourceDef::new("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", Cluster),
        ResourceDef::new(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "PriorityLevelConfiguration",
            "prioritylevelconfigurations",
            Cluster,
        ),
        ResourceDef::new("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", Namespaced)
            .with_short_names(&["netpol"]),
        ResourceDef::new("networking.k8s.io", "v1", "IPAddress", "ipaddresses", Cluster).with_short_names(&["ip"]),
        ResourceDef::new("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", Cluster),
        ResourceDef::new("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", Cluster),
        ResourceDef::new("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", Namespaced)
            .with_short_names(&["pdb"]),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", Cluster),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", Cluster),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "Role", "roles", Namespaced),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", Namespaced),
        ResourceDef::new("resource.k8s.io", "v1", "DeviceClass", "deviceclasses", Cluster),
        ResourceDef::new("resource.k8s.io", "v1", "ResourceClaim", "resourceclaims", Namespaced),
        ResourceDef::new("resource.k8s.io", "v1", "ResourceClaimTemplate", "resourceclaimtemplates", Namespaced),
        ResourceDef::new("resource.k8s.io", "v1", "ResourceSlice", "resourceslices", Cluster),
        ResourceDef::new("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", Cluster)
            .with_short_names(&["pc"]),
        ResourceDef::new("storage.k8s.io", "v1", "CSIDriver", "csidrivers", Cluster),
        ResourceDef::new("storage.k8s.io", "v1", "CSINode", "csinodes", Cluster),
        ResourceDef::new("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", Namespaced),
        ResourceDef::new("storage.k8s.io", "v1", "StorageClass", "storageclasses", Cluster).with_short_names(&["sc"]),
        ResourceDef::new("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", Cluster),
        ResourceDef::new("storage.k8s.io", "v1", "VolumeAttributesClass", "volumeattributesclasses", Cluster)
            .with_short_names(&["vac"]),
    ]
    .into_iter()
    .map(ResourceDef::as_builtin)
    .collect()
}

/// The set of served resources, addressed by index.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    defs: Vec<ResourceDef>,
}

impl Registry {
    pub(crate) fn new(defs: Vec<ResourceDef>) -> Self {
        Self { defs }
    }

    pub(crate) fn defs(&self) -> &[ResourceDef] {
        &self.defs
    }

    pub(crate) fn def(&self, idx: usize) -> &ResourceDef {
        &self.defs[idx]
    }

    pub(crate) fn len(&self) -> usize {
        self.defs.len()
    }

    /// Find by group, version and plural (the HTTP path form).
    pub(crate) fn by_path(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// Find by `apiVersion` and `kind` as written in an object.
    pub(crate) fn by_api_version_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.defs.iter().position(|d| d.group == group && d.version == version && d.kind == kind)
    }

    /// Resolve a loose name as a test would write it: plural (`secrets`), `plural.group`
    /// (`ingresses.networking.k8s.io`), kind (`Secret`) or `Kind.group`, or a short name.
    pub(crate) fn resolve(&self, name: &str) -> Option<usize> {
        let (head, group) = match name.split_once('.') {
            Some((h, g)) => (h, Some(g)),
            None => (name, None),
        };
        self.defs.iter().position(|d| {
            let group_ok = group.is_none_or(|g| g == d.group);
            group_ok
                && (d.plural == head || d.kind == head || d.singular == head || d.short_names.iter().any(|s| s == head))
        })
    }

    /// Distinct non-core groups with their versions, in registration order.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in self.defs.iter().filter(|d| !d.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, versions)) => {
                    if !versions.contains(&d.version) {
                        versions.push(d.version.clone());
                    }
                }
                None => out.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_loose_names() {
        let r = Registry::new(builtin_resources());
        let secrets = r.by_path("", "v1", "secrets").unwrap();
        assert_eq!(r.resolve("secrets"), Some(secrets));
        assert_eq!(r.resolve("Secret"), Some(secrets));
        let ing = r.by_path("networking.k8s.io", "v1", "ingresses").unwrap();
        assert_eq!(r.resolve("ingresses.networking.k8s.io"), Some(ing));
        assert_eq!(r.resolve("Ingress"), Some(ing));
        assert_eq!(r.resolve("ing"), Some(ing));
        assert_eq!(r.resolve("ingresses.apps"), None);
        assert_eq!(r.by_api_version_kind("networking.k8s.io/v1", "Ingress"), Some(ing));
        assert_eq!(r.by_api_version_kind("v1", "Ingress"), None);
    }
}
