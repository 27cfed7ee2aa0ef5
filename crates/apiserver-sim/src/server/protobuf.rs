//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into the
//! JSON object the same client would have sent as JSON.
//!
//! kubectl's typed commands send protobuf: `kubectl create configmap|secret|namespace|
//! serviceaccount|role|clusterrole|rolebinding|clusterrolebinding|priorityclass|deployment|job|
//! cronjob|service|quota|ingress|poddisruptionbudget` and `kubectl run`. A body is the 4-byte magic `k8s\0` and a
//! `runtime.Unknown` envelope (`typeMeta` = apiVersion and kind, `raw` = the object's own
//! message). The simulator carries the schemas of the kinds in [`KINDS`] (field numbers, JSON
//! names, and Go's rules for which empty fields JSON omits) and decodes them with a small wire
//! reader; no protobuf code generator is involved (the Kubernetes `.proto` files are not
//! available to the build).
//!
//! What it does not do, on purpose: decode kinds outside [`KINDS`] (a typed client writing,
//! say, a StatefulSet in protobuf gets the 415 `Status` a real server gives a media type it
//! does not serve for a resource), or drop anything it does not understand. The workload schemas cover what those commands write (containers with
//! image, command, args, env values, ports, resources; selectors, strategies, schedules,
//! service ports); a body using a message left out — probes, volumes, security contexts,
//! affinity, tolerations, env sources, … — or any field number missing from a schema, a wrong
//! wire type or a truncated body is a 400 naming it, never a silently smaller object.
//! Responses stay JSON, which protobuf clients accept (they send `Accept:
//! application/vnd.kubernetes.protobuf, application/json` and decode by the response's media
//! type).

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::status::{ApiError, rfc3339};

/// The media type.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// What a field holds on the wire and how it is written in JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int32,
    Int64,
    /// `metav1.Time`: `{seconds, nanos}`, written as RFC 3339; an empty message is Go's zero
    /// time, written as `null`.
    Time,
    /// `metav1.FieldsV1`: `{raw}` holding JSON text, written as that JSON.
    FieldsV1,
    Msg(&'static Msg),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`, written with base64 values.
    MapBytes,
    /// `intstr.IntOrString`: `{type, intVal, strVal}`, written as a number or a string.
    IntOrString,
    /// `map<string, resource.Quantity>`: each quantity `{string}` written as its string.
    MapQuantity,
    /// A message Go embeds `json:",inline"`: its fields are written into the parent's object.
    Inline(&'static Msg),
}

/// When a decoded field appears in the JSON object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Emit {
    /// Go's `omitempty` on a plain field: left out when empty (`""`, `0`, `false`, `{}`).
    OmitEmpty,
    /// Whenever it is on the wire: Go pointers (`*bool`, `*Time`, …), structs and fields
    /// without `omitempty`.
    Present,
}

struct Field {
    tag: u32,
    json: &'static str,
    ty: Ty,
    repeated: bool,
    emit: Emit,
}

/// A message schema.
struct Msg {
    name: &'static str,
    fields: &'static [Field],
}

/// A plain field with `omitempty`.
const fn o(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field { tag, json, ty, repeated: false, emit: Emit::OmitEmpty }
}

/// A field written whenever present.
const fn p(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field { tag, json, ty, repeated: false, emit: Emit::Present }
}

/// A repeated field (written when it has elements).
const fn r(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field { tag, json, ty, repeated: true, emit: Emit::OmitEmpty }
}

use Ty::{Bool, FieldsV1, Inline, Int32, Int64, IntOrString, MapBytes, MapQuantity, MapStr, Msg as M, Str, Time};

const OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        p(5, "apiVersion", Str),
        p(1, "kind", Str),
        p(3, "name", Str),
        p(4, "uid", Str),
        p(6, "controller", Bool),
        p(7, "blockOwnerDeletion", Bool),
    ],
};

const FIELDS_V1: Msg = Msg { name: "FieldsV1", fields: &[p(1, "raw", Str)] };

const MANAGED_FIELDS_ENTRY: Msg = Msg {
    name: "ManagedFieldsEntry",
    fields: &[
        o(1, "manager", Str),
        o(2, "operation", Str),
        o(3, "apiVersion", Str),
        p(4, "time", Time),
        o(6, "fieldsType", Str),
        p(7, "fieldsV1", FieldsV1),
        o(8, "subresource", Str),
    ],
};

const OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    fields: &[
        o(1, "name", Str),
        o(2, "generateName", Str),
        o(3, "namespace", Str),
        o(4, "selfLink", Str),
        o(5, "uid", Str),
        o(6, "resourceVersion", Str),
        o(7, "generation", Int64),
        p(8, "creationTimestamp", Time),
        p(9, "deletionTimestamp", Time),
        p(10, "deletionGracePeriodSeconds", Int64),
        o(11, "labels", MapStr),
        o(12, "annotations", MapStr),
        r(13, "ownerReferences", M(&OWNER_REFERENCE)),
        r(14, "finalizers", Str),
        r(17, "managedFields", M(&MANAGED_FIELDS_ENTRY)),
    ],
};

const CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        o(2, "data", MapStr),
        o(3, "binaryData", MapBytes),
        p(4, "immutable", Bool),
    ],
};

const SECRET: Msg = Msg {
    name: "Secret",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        o(2, "data", MapBytes),
        o(3, "type", Str),
        o(4, "stringData", MapStr),
        p(5, "immutable", Bool),
    ],
};

const NAMESPACE_CONDITION: Msg = Msg {
    name: "NamespaceCondition",
    fields: &[
        p(1, "type", Str),
        p(2, "status", Str),
        p(4, "lastTransitionTime", Time),
        o(5, "reason", Str),
        o(6, "message", Str),
    ],
};

const NAMESPACE_SPEC: Msg = Msg { name: "NamespaceSpec", fields: &[r(1, "finalizers", Str)] };

const NAMESPACE_STATUS: Msg =
    Msg { name: "NamespaceStatus", fields: &[o(1, "phase", Str), r(2, "conditions", M(&NAMESPACE_CONDITION))] };

const NAMESPACE: Msg = Msg {
    name: "Namespace",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        p(2, "spec", M(&NAMESPACE_SPEC)),
        p(3, "status", M(&NAMESPACE_STATUS)),
    ],
};

const OBJECT_REFERENCE: Msg = Msg {
    name: "ObjectReference",
    fields: &[
        o(1, "kind", Str),
        o(2, "namespace", Str),
        o(3, "name", Str),
        o(4, "uid", Str),
        o(5, "apiVersion", Str),
        o(6, "resourceVersion", Str),
        o(7, "fieldPath", Str),
    ],
};

const LOCAL_OBJECT_REFERENCE: Msg = Msg { name: "LocalObjectReference", fields: &[o(1, "name", Str)] };

const SERVICE_ACCOUNT: Msg = Msg {
    name: "ServiceAccount",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        r(2, "secrets", M(&OBJECT_REFERENCE)),
        r(3, "imagePullSecrets", M(&LOCAL_OBJECT_REFERENCE)),
        p(4, "automountServiceAccountToken", Bool),
    ],
};

const POLICY_RULE: Msg = Msg {
    name: "PolicyRule",
    fields: &[
        r(1, "verbs", Str),
        r(2, "apiGroups", Str),
        r(3, "resources", Str),
        r(4, "resourceNames", Str),
        r(5, "nonResourceURLs", Str),
    ],
};

const LABEL_SELECTOR_REQUIREMENT: Msg =
    Msg { name: "LabelSelectorRequirement", fields: &[p(1, "key", Str), p(2, "operator", Str), r(3, "values", Str)] };

const LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[o(1, "matchLabels", MapStr), r(2, "matchExpressions", M(&LABEL_SELECTOR_REQUIREMENT))],
};

const AGGREGATION_RULE: Msg =
    Msg { name: "AggregationRule", fields: &[r(1, "clusterRoleSelectors", M(&LABEL_SELECTOR))] };

const ROLE: Msg = Msg { name: "Role", fields: &[p(1, "metadata", M(&OBJECT_META)), r(2, "rules", M(&POLICY_RULE))] };

const CLUSTER_ROLE: Msg = Msg {
    name: "ClusterRole",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        r(2, "rules", M(&POLICY_RULE)),
        p(3, "aggregationRule", M(&AGGREGATION_RULE)),
    ],
};

const SUBJECT: Msg = Msg {
    name: "Subject",
    fields: &[p(1, "kind", Str), o(2, "apiGroup", Str), p(3, "name", Str), o(4, "namespace", Str)],
};

const ROLE_REF: Msg = Msg { name: "RoleRef", fields: &[p(1, "apiGroup", Str), p(2, "kind", Str), p(3, "name", Str)] };

const ROLE_BINDING: Msg = Msg {
    name: "RoleBinding",
    fields: &[p(1, "metadata", M(&OBJECT_META)), r(2, "subjects", M(&SUBJECT)), p(3, "roleRef", M(&ROLE_REF))],
};

const CLUSTER_ROLE_BINDING: Msg = Msg { name: "ClusterRoleBinding", fields: ROLE_BINDING.fields };

const PRIORITY_CLASS: Msg = Msg {
    name: "PriorityClass",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        p(2, "value", Int32),
        o(3, "globalDefault", Bool),
        o(4, "description", Str),
        p(5, "preemptionPolicy", Str),
    ],
};

// Workloads, as `kubectl create deployment|job|cronjob|service` and `kubectl run` write them.
// Messages left out (probes, volumes, security contexts, affinity, env sources, …) make a body
// that uses them a 400 naming the field, never a smaller object.

const CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        o(1, "name", Str),
        o(2, "hostPort", Int32),
        p(3, "containerPort", Int32),
        o(4, "protocol", Str),
        o(5, "hostIP", Str),
    ],
};

const ENV_VAR: Msg = Msg { name: "EnvVar", fields: &[p(1, "name", Str), o(2, "value", Str)] };

const RESOURCE_CLAIM: Msg = Msg { name: "ResourceClaim", fields: &[p(1, "name", Str), o(2, "request", Str)] };

const RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[o(1, "limits", MapQuantity), o(2, "requests", MapQuantity), r(3, "claims", M(&RESOURCE_CLAIM))],
};

const CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        p(1, "name", Str),
        o(2, "image", Str),
        r(3, "command", Str),
        r(4, "args", Str),
        o(5, "workingDir", Str),
        r(6, "ports", M(&CONTAINER_PORT)),
        r(7, "env", M(&ENV_VAR)),
        p(8, "resources", M(&RESOURCE_REQUIREMENTS)),
        o(13, "terminationMessagePath", Str),
        o(14, "imagePullPolicy", Str),
        o(16, "stdin", Bool),
        o(17, "stdinOnce", Bool),
        o(18, "tty", Bool),
        o(20, "terminationMessagePolicy", Str),
        p(24, "restartPolicy", Str),
    ],
};

const POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        r(2, "containers", M(&CONTAINER)),
        o(3, "restartPolicy", Str),
        p(4, "terminationGracePeriodSeconds", Int64),
        p(5, "activeDeadlineSeconds", Int64),
        o(6, "dnsPolicy", Str),
        o(7, "nodeSelector", MapStr),
        o(8, "serviceAccountName", Str),
        o(9, "serviceAccount", Str),
        o(10, "nodeName", Str),
        o(11, "hostNetwork", Bool),
        o(12, "hostPID", Bool),
        o(13, "hostIPC", Bool),
        r(15, "imagePullSecrets", M(&LOCAL_OBJECT_REFERENCE)),
        o(16, "hostname", Str),
        o(17, "subdomain", Str),
        o(19, "schedulerName", Str),
        r(20, "initContainers", M(&CONTAINER)),
        p(21, "automountServiceAccountToken", Bool),
        o(24, "priorityClassName", Str),
        p(25, "priority", Int32),
        p(27, "shareProcessNamespace", Bool),
        p(29, "runtimeClassName", Str),
        p(30, "enableServiceLinks", Bool),
        p(31, "preemptionPolicy", Str),
        p(35, "setHostnameAsFQDN", Bool),
        p(37, "hostUsers", Bool),
        p(41, "hostnameOverride", Str),
    ],
};

const POD_TEMPLATE_SPEC: Msg =
    Msg { name: "PodTemplateSpec", fields: &[p(1, "metadata", M(&OBJECT_META)), p(2, "spec", M(&POD_SPEC))] };

const POD_STATUS: Msg = Msg {
    name: "PodStatus",
    fields: &[
        o(1, "phase", Str),
        o(3, "message", Str),
        o(4, "reason", Str),
        o(5, "hostIP", Str),
        o(6, "podIP", Str),
        p(7, "startTime", Time),
        o(9, "qosClass", Str),
        o(11, "nominatedNodeName", Str),
        o(14, "resize", Str),
        o(17, "observedGeneration", Int64),
    ],
};

const POD: Msg = Msg {
    name: "Pod",
    fields: &[p(1, "metadata", M(&OBJECT_META)), p(2, "spec", M(&POD_SPEC)), p(3, "status", M(&POD_STATUS))],
};

const ROLLING_UPDATE_DEPLOYMENT: Msg = Msg {
    name: "RollingUpdateDeployment",
    fields: &[p(1, "maxUnavailable", IntOrString), p(2, "maxSurge", IntOrString)],
};

const DEPLOYMENT_STRATEGY: Msg = Msg {
    name: "DeploymentStrategy",
    fields: &[o(1, "type", Str), p(2, "rollingUpdate", M(&ROLLING_UPDATE_DEPLOYMENT))],
};

const DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    fields: &[
        p(1, "replicas", Int32),
        p(2, "selector", M(&LABEL_SELECTOR)),
        p(3, "template", M(&POD_TEMPLATE_SPEC)),
        p(4, "strategy", M(&DEPLOYMENT_STRATEGY)),
        o(5, "minReadySeconds", Int32),
        p(6, "revisionHistoryLimit", Int32),
        o(7, "paused", Bool),
        p(9, "progressDeadlineSeconds", Int32),
    ],
};

const DEPLOYMENT_STATUS: Msg = Msg {
    name: "DeploymentStatus",
    fields: &[
        o(1, "observedGeneration", Int64),
        o(2, "replicas", Int32),
        o(3, "updatedReplicas", Int32),
        o(4, "availableReplicas", Int32),
        o(5, "unavailableReplicas", Int32),
        o(7, "readyReplicas", Int32),
        p(8, "collisionCount", Int32),
        p(9, "terminatingReplicas", Int32),
    ],
};

const DEPLOYMENT: Msg = Msg {
    name: "Deployment",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        p(2, "spec", M(&DEPLOYMENT_SPEC)),
        p(3, "status", M(&DEPLOYMENT_STATUS)),
    ],
};

const JOB_SPEC: Msg = Msg {
    name: "JobSpec",
    fields: &[
        p(1, "parallelism", Int32),
        p(2, "completions", Int32),
        p(3, "activeDeadlineSeconds", Int64),
        p(4, "selector", M(&LABEL_SELECTOR)),
        p(5, "manualSelector", Bool),
        p(6, "template", M(&POD_TEMPLATE_SPEC)),
        p(7, "backoffLimit", Int32),
        p(8, "ttlSecondsAfterFinished", Int32),
        p(9, "completionMode", Str),
        p(10, "suspend", Bool),
        p(12, "backoffLimitPerIndex", Int32),
        p(13, "maxFailedIndexes", Int32),
        p(14, "podReplacementPolicy", Str),
        p(15, "managedBy", Str),
    ],
};

const JOB_STATUS: Msg = Msg {
    name: "JobStatus",
    fields: &[
        p(2, "startTime", Time),
        p(3, "completionTime", Time),
        o(4, "active", Int32),
        o(5, "succeeded", Int32),
        o(6, "failed", Int32),
        o(7, "completedIndexes", Str),
        p(9, "ready", Int32),
        p(10, "failedIndexes", Str),
        p(11, "terminating", Int32),
    ],
};

const JOB: Msg = Msg {
    name: "Job",
    fields: &[p(1, "metadata", M(&OBJECT_META)), p(2, "spec", M(&JOB_SPEC)), p(3, "status", M(&JOB_STATUS))],
};

const JOB_TEMPLATE_SPEC: Msg =
    Msg { name: "JobTemplateSpec", fields: &[p(1, "metadata", M(&OBJECT_META)), p(2, "spec", M(&JOB_SPEC))] };

const CRON_JOB_SPEC: Msg = Msg {
    name: "CronJobSpec",
    fields: &[
        p(1, "schedule", Str),
        p(2, "startingDeadlineSeconds", Int64),
        o(3, "concurrencyPolicy", Str),
        p(4, "suspend", Bool),
        p(5, "jobTemplate", M(&JOB_TEMPLATE_SPEC)),
        p(6, "successfulJobsHistoryLimit", Int32),
        p(7, "failedJobsHistoryLimit", Int32),
        p(8, "timeZone", Str),
    ],
};

const CRON_JOB_STATUS: Msg = Msg {
    name: "CronJobStatus",
    fields: &[r(1, "active", M(&OBJECT_REFERENCE)), p(4, "lastScheduleTime", Time), p(5, "lastSuccessfulTime", Time)],
};

const CRON_JOB: Msg = Msg {
    name: "CronJob",
    fields: &[p(1, "metadata", M(&OBJECT_META)), p(2, "spec", M(&CRON_JOB_SPEC)), p(3, "status", M(&CRON_JOB_STATUS))],
};

const SERVICE_PORT: Msg = Msg {
    name: "ServicePort",
    fields: &[
        o(1, "name", Str),
        o(2, "protocol", Str),
        p(3, "port", Int32),
        p(4, "targetPort", IntOrString),
        o(5, "nodePort", Int32),
        p(6, "appProtocol", Str),
    ],
};

const SERVICE_SPEC: Msg = Msg {
    name: "ServiceSpec",
    fields: &[
        r(1, "ports", M(&SERVICE_PORT)),
        o(2, "selector", MapStr),
        o(3, "clusterIP", Str),
        o(4, "type", Str),
        r(5, "externalIPs", Str),
        o(7, "sessionAffinity", Str),
        o(8, "loadBalancerIP", Str),
        r(9, "loadBalancerSourceRanges", Str),
        o(10, "externalName", Str),
        o(11, "externalTrafficPolicy", Str),
        o(12, "healthCheckNodePort", Int32),
        o(13, "publishNotReadyAddresses", Bool),
        p(17, "ipFamilyPolicy", Str),
        r(18, "clusterIPs", Str),
        r(19, "ipFamilies", Str),
        p(20, "allocateLoadBalancerNodePorts", Bool),
        p(21, "loadBalancerClass", Str),
        p(22, "internalTrafficPolicy", Str),
        p(23, "trafficDistribution", Str),
    ],
};

const LOAD_BALANCER_STATUS: Msg = Msg { name: "LoadBalancerStatus", fields: &[] };

const SERVICE_STATUS: Msg = Msg { name: "ServiceStatus", fields: &[p(1, "loadBalancer", M(&LOAD_BALANCER_STATUS))] };

const SERVICE: Msg = Msg {
    name: "Service",
    fields: &[p(1, "metadata", M(&OBJECT_META)), p(2, "spec", M(&SERVICE_SPEC)), p(3, "status", M(&SERVICE_STATUS))],
};

// `kubectl create quota|ingress|poddisruptionbudget`.

const SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "ScopedResourceSelectorRequirement",
    fields: &[p(1, "scopeName", Str), p(2, "operator", Str), r(3, "values", Str)],
};

const SCOPE_SELECTOR: Msg =
    Msg { name: "ScopeSelector", fields: &[r(1, "matchExpressions", M(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT))] };

const RESOURCE_QUOTA_SPEC: Msg = Msg {
    name: "ResourceQuotaSpec",
    fields: &[o(1, "hard", MapQuantity), r(2, "scopes", Str), p(3, "scopeSelector", M(&SCOPE_SELECTOR))],
};

const RESOURCE_QUOTA_STATUS: Msg =
    Msg { name: "ResourceQuotaStatus", fields: &[o(1, "hard", MapQuantity), o(2, "used", MapQuantity)] };

const RESOURCE_QUOTA: Msg = Msg {
    name: "ResourceQuota",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        p(2, "spec", M(&RESOURCE_QUOTA_SPEC)),
        p(3, "status", M(&RESOURCE_QUOTA_STATUS)),
    ],
};

const SERVICE_BACKEND_PORT: Msg =
    Msg { name: "ServiceBackendPort", fields: &[o(1, "name", Str), o(2, "number", Int32)] };

const INGRESS_SERVICE_BACKEND: Msg =
    Msg { name: "IngressServiceBackend", fields: &[p(1, "name", Str), p(2, "port", M(&SERVICE_BACKEND_PORT))] };

const TYPED_LOCAL_OBJECT_REFERENCE: Msg =
    Msg { name: "TypedLocalObjectReference", fields: &[p(1, "apiGroup", Str), p(2, "kind", Str), p(3, "name", Str)] };

const INGRESS_BACKEND: Msg = Msg {
    name: "IngressBackend",
    fields: &[p(3, "resource", M(&TYPED_LOCAL_OBJECT_REFERENCE)), p(4, "service", M(&INGRESS_SERVICE_BACKEND))],
};

const HTTP_INGRESS_PATH: Msg = Msg {
    name: "HTTPIngressPath",
    fields: &[o(1, "path", Str), p(2, "backend", M(&INGRESS_BACKEND)), p(3, "pathType", Str)],
};

const HTTP_INGRESS_RULE_VALUE: Msg =
    Msg { name: "HTTPIngressRuleValue", fields: &[r(1, "paths", M(&HTTP_INGRESS_PATH))] };

const INGRESS_RULE_VALUE: Msg = Msg { name: "IngressRuleValue", fields: &[p(1, "http", M(&HTTP_INGRESS_RULE_VALUE))] };

const INGRESS_RULE: Msg =
    Msg { name: "IngressRule", fields: &[o(1, "host", Str), p(2, "ingressRuleValue", Inline(&INGRESS_RULE_VALUE))] };

const INGRESS_TLS: Msg = Msg { name: "IngressTLS", fields: &[r(1, "hosts", Str), o(2, "secretName", Str)] };

const INGRESS_SPEC: Msg = Msg {
    name: "IngressSpec",
    fields: &[
        p(1, "defaultBackend", M(&INGRESS_BACKEND)),
        r(2, "tls", M(&INGRESS_TLS)),
        r(3, "rules", M(&INGRESS_RULE)),
        p(4, "ingressClassName", Str),
    ],
};

const INGRESS_LOAD_BALANCER_STATUS: Msg = Msg { name: "IngressLoadBalancerStatus", fields: &[] };

const INGRESS_STATUS: Msg =
    Msg { name: "IngressStatus", fields: &[p(1, "loadBalancer", M(&INGRESS_LOAD_BALANCER_STATUS))] };

const INGRESS: Msg = Msg {
    name: "Ingress",
    fields: &[p(1, "metadata", M(&OBJECT_META)), p(2, "spec", M(&INGRESS_SPEC)), p(3, "status", M(&INGRESS_STATUS))],
};

const POD_DISRUPTION_BUDGET_SPEC: Msg = Msg {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        p(1, "minAvailable", IntOrString),
        p(2, "selector", M(&LABEL_SELECTOR)),
        p(3, "maxUnavailable", IntOrString),
        p(4, "unhealthyPodEvictionPolicy", Str),
    ],
};

const POD_DISRUPTION_BUDGET_STATUS: Msg = Msg {
    name: "PodDisruptionBudgetStatus",
    fields: &[
        o(1, "observedGeneration", Int64),
        p(3, "disruptionsAllowed", Int32),
        p(4, "currentHealthy", Int32),
        p(5, "desiredHealthy", Int32),
        p(6, "expectedPods", Int32),
    ],
};

const POD_DISRUPTION_BUDGET: Msg = Msg {
    name: "PodDisruptionBudget",
    fields: &[
        p(1, "metadata", M(&OBJECT_META)),
        p(2, "spec", M(&POD_DISRUPTION_BUDGET_SPEC)),
        p(3, "status", M(&POD_DISRUPTION_BUDGET_STATUS)),
    ],
};

/// The kinds whose protobuf bodies are decoded: (apiVersion, kind, schema).
const KINDS: &[(&str, &str, &Msg)] = &[
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("rbac.authorization.k8s.io/v1", "Role", &ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", &CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", &ROLE_BINDING),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &CLUSTER_ROLE_BINDING),
    ("scheduling.k8s.io/v1", "PriorityClass", &PRIORITY_CLASS),
    ("v1", "Pod", &POD),
    ("v1", "Service", &SERVICE),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("batch/v1", "Job", &JOB),
    ("batch/v1", "CronJob", &CRON_JOB),
    ("v1", "ResourceQuota", &RESOURCE_QUOTA),
    ("networking.k8s.io/v1", "Ingress", &INGRESS),
    ("policy/v1", "PodDisruptionBudget", &POD_DISRUPTION_BUDGET),
];

// The envelope: `runtime.Unknown` and its `runtime.TypeMeta`.
const TYPE_META: Msg = Msg { name: "TypeMeta", fields: &[p(1, "apiVersion", Str), p(2, "kind", Str)] };

/// Decodes a protobuf request body into the JSON object it stands for (with `apiVersion` and
/// `kind`). A kind outside [`KINDS`] is a 415; a malformed body a 400.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |message: String| ApiError::BadRequest { message: format!("couldn't decode protobuf body: {message}") };
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| bad("missing the k8s\\0 prefix".into()))?;
    let (mut type_meta, mut raw, mut encoding) = (None, None, String::new());
    let mut reader = Wire::new(envelope);
    while let Some((tag, wire)) = reader.key().map_err(bad)? {
        match (tag, wire) {
            (1, LEN) => type_meta = Some(message(&TYPE_META, reader.len_delimited().map_err(bad)?).map_err(bad)?),
            (2, LEN) => raw = Some(reader.len_delimited().map_err(bad)?),
            (3, LEN) => encoding = utf8(reader.len_delimited().map_err(bad)?).map_err(bad)?,
            (4, LEN) => {
                reader.len_delimited().map_err(bad)?;
            }
            _ => return Err(bad(format!("unexpected field {tag} (wire type {wire}) in runtime.Unknown"))),
        }
    }
    if !encoding.is_empty() {
        return Err(bad(format!("unsupported content encoding {encoding:?}")));
    }
    let type_meta = type_meta.unwrap_or_default();
    let field = |k: &str| type_meta.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let Some((_, _, schema)) = KINDS.iter().find(|(v, k, _)| *v == api_version && *k == kind) else {
        return Err(ApiError::UnsupportedMediaType { accepted: "application/json, application/yaml" });
    };
    let mut object = message(schema, raw.unwrap_or_default()).map_err(bad)?;
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(object))
}

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// A protobuf wire-format reader over one message's bytes.
struct Wire<'a> {
    buf: &'a [u8],
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Wire { buf }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err("truncated or overlong varint".into())
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    fn key(&mut self) -> Result<Option<(u32, u8)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| format!("field number {} out of range", key >> 3))?;
        Ok(Some((tag, (key & 7) as u8)))
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length out of range".to_owned())?;
        if len > self.buf.len() {
            return Err(format!("length {len} exceeds the {} bytes left", self.buf.len()));
        }
        let (bytes, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(bytes)
    }
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a string field is not UTF-8".into())
}

/// Decodes one message of `schema`.
fn message(schema: &Msg, bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut wire = Wire::new(bytes);
    while let Some((tag, wire_type)) = wire.key()? {
        let Some(field) = schema.fields.iter().find(|f| f.tag == tag) else {
            return Err(format!("{}: field {tag} is not in the simulator's schema", schema.name));
        };
        let mismatch = || format!("{}.{}: unexpected wire type {wire_type}", schema.name, field.json);
        let value = match (field.ty, wire_type) {
            (Bool, VARINT) => Value::Bool(wire.varint()? != 0),
            // Negative int32s are sign-extended to ten bytes on the wire.
            (Int32, VARINT) => Value::from(i64::from(wire.varint()? as i32)),
            (Int64, VARINT) => Value::from(wire.varint()? as i64),
            (Str, LEN) => Value::String(utf8(wire.len_delimited()?)?),
            (Time, LEN) => time(wire.len_delimited()?)?,
            (FieldsV1, LEN) => {
                let raw = message(&FIELDS_V1, wire.len_delimited()?)?;
                let text = raw.get("raw").and_then(Value::as_str).unwrap_or("{}");
                serde_json::from_str(text).map_err(|e| format!("fieldsV1 is not JSON: {e}"))?
            }
            (M(inner), LEN) => Value::Object(message(inner, wire.len_delimited()?)?),
            (IntOrString, LEN) => int_or_string(wire.len_delimited()?)?,
            (Inline(inner), LEN) => {
                out.extend(message(inner, wire.len_delimited()?)?);
                continue;
            }
            (MapStr | MapBytes | MapQuantity, LEN) => {
                let (key, value) = map_entry(wire.len_delimited()?, field.ty)?;
                let map = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, value);
                }
                continue;
            }
            _ => return Err(mismatch()),
        };
        if field.repeated {
            let list = out.entry(field.json).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(value);
            }
        } else {
            // Protobuf: the last occurrence of a singular field wins.
            out.insert(field.json.to_owned(), value);
        }
    }
    out.retain(|name, value| {
        let field = schema.fields.iter().find(|f| f.json == name);
        field.is_none_or(|f| f.emit == Emit::Present || !is_empty(value))
    });
    Ok(out)
}

/// Go's `omitempty` emptiness.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// One map entry: key 1, value 2 (a string; base64 of bytes; a quantity's string).
fn map_entry(bytes: &[u8], ty: Ty) -> Result<(String, Value), String> {
    let mut wire = Wire::new(bytes);
    let (mut key, mut value) = (String::new(), Vec::new());
    while let Some((tag, wire_type)) = wire.key()? {
        match (tag, wire_type) {
            (1, LEN) => key = utf8(wire.len_delimited()?)?,
            (2, LEN) => value = wire.len_delimited()?.to_vec(),
            _ => return Err(format!("unexpected field {tag} (wire type {wire_type}) in a map entry")),
        }
    }
    let value = match ty {
        MapBytes => base64::engine::general_purpose::STANDARD.encode(value),
        MapQuantity => {
            let quantity = message(&QUANTITY, &value)?;
            quantity.get("string").and_then(Value::as_str).unwrap_or_default().to_owned()
        }
        _ => String::from_utf8(value).map_err(|_| "a map value is not UTF-8".to_owned())?,
    };
    Ok((key, Value::String(value)))
}

const QUANTITY: Msg = Msg { name: "Quantity", fields: &[p(1, "string", Str)] };

/// `intstr.IntOrString`: type 0 (int, field 2) or 1 (string, field 3).
fn int_or_string(bytes: &[u8]) -> Result<Value, String> {
    let mut wire = Wire::new(bytes);
    let (mut kind, mut int, mut string) = (0u64, 0i64, String::new());
    while let Some((tag, wire_type)) = wire.key()? {
        match (tag, wire_type) {
            (1, VARINT) => kind = wire.varint()?,
            (2, VARINT) => int = i64::from(wire.varint()? as i32),
            (3, LEN) => string = utf8(wire.len_delimited()?)?,
            _ => return Err(format!("unexpected field {tag} (wire type {wire_type}) in an IntOrString")),
        }
    }
    match kind {
        0 => Ok(Value::from(int)),
        1 => Ok(Value::String(string)),
        other => Err(format!("IntOrString of unknown type {other}")),
    }
}

/// `metav1.Time`: `{seconds: 1, nanos: 2}`, second precision in JSON; empty is the zero time.
fn time(bytes: &[u8]) -> Result<Value, String> {
    let mut wire = Wire::new(bytes);
    let (mut seconds, mut nanos) = (0i64, 0u64);
    while let Some((tag, wire_type)) = wire.key()? {
        match (tag, wire_type) {
            (1, VARINT) => seconds = wire.varint()? as i64,
            (2, VARINT) => nanos = wire.varint()?,
            _ => return Err(format!("unexpected field {tag} (wire type {wire_type}) in a Time")),
        }
    }
    Ok(if seconds == 0 && nanos == 0 { Value::Null } else { Value::String(rfc3339(seconds)) })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A tiny protobuf writer for the tests.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn len_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
    fn varint_field(tag: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3, out);
        varint(v, out);
    }
    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        len_field(1, k.as_bytes(), &mut e);
        len_field(2, v, &mut e);
        e
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        len_field(1, api_version.as_bytes(), &mut tm);
        len_field(2, kind.as_bytes(), &mut tm);
        let mut body = MAGIC.to_vec();
        len_field(1, &tm, &mut body);
        len_field(2, raw, &mut body);
        len_field(4, b"", &mut body);
        body
    }

    fn secret() -> Vec<u8> {
        let mut meta = Vec::new();
        len_field(1, b"s1", &mut meta);
        len_field(3, b"ns", &mut meta);
        len_field(6, b"", &mut meta); // empty resourceVersion: omitted
        len_field(8, b"", &mut meta); // zero creationTimestamp: null
        len_field(11, &entry("app", b"web"), &mut meta);
        len_field(14, b"f1", &mut meta);
        len_field(14, b"f2", &mut meta);
        let mut ts = Vec::new();
        varint_field(1, 1_700_000_000, &mut ts);
        let mut mf = Vec::new();
        len_field(1, b"kubectl", &mut mf);
        len_field(4, &ts, &mut mf);
        let mut fields = Vec::new();
        len_field(1, br#"{"f:data":{}}"#, &mut fields);
        len_field(7, &fields, &mut mf);
        len_field(17, &mf, &mut meta);
        let mut raw = Vec::new();
        len_field(1, &meta, &mut raw);
        len_field(2, &entry("key", &[0, 159, 146, 150]), &mut raw);
        len_field(3, b"Opaque", &mut raw);
        varint_field(5, 0, &mut raw); // immutable: false, a pointer in Go: kept
        envelope("v1", "Secret", &raw)
    }

    #[test]
    fn a_secret_decodes_to_the_json_go_would_write() {
        assert_eq!(
            decode(&secret()).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "s1",
                    "namespace": "ns",
                    "creationTimestamp": null,
                    "labels": {"app": "web"},
                    "finalizers": ["f1", "f2"],
                    "managedFields": [{
                        "manager": "kubectl",
                        "time": "2023-11-14T22:13:20Z",
                        "fieldsV1": {"f:data": {}},
                    }],
                },
                "data": {"key": "AJ+Slg=="},
                "type": "Opaque",
                "immutable": false,
            })
        );
    }

    #[test]
    fn negative_int32_and_rbac_kinds() {
        let mut raw = Vec::new();
        len_field(1, &[], &mut raw);
        varint_field(2, (-5i64) as u64, &mut raw);
        let pc = decode(&envelope("scheduling.k8s.io/v1", "PriorityClass", &raw)).unwrap();
        assert_eq!(pc["value"], json!(-5));
        let mut role_ref = Vec::new();
        len_field(1, b"rbac.authorization.k8s.io", &mut role_ref);
        len_field(2, b"ClusterRole", &mut role_ref);
        len_field(3, b"view", &mut role_ref);
        let mut subject = Vec::new();
        len_field(1, b"User", &mut subject);
        len_field(2, b"", &mut subject);
        len_field(3, b"alice", &mut subject);
        let mut raw = Vec::new();
        len_field(2, &subject, &mut raw);
        len_field(3, &role_ref, &mut raw);
        let rb = decode(&envelope("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &raw)).unwrap();
        assert_eq!(rb["subjects"], json!([{"kind": "User", "name": "alice"}]));
        assert_eq!(
            rb["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"})
        );
    }

    #[test]
    fn bad_bodies_are_named_errors_and_unknown_kinds_a_415() {
        let message = |body: &[u8]| match decode(body) {
            Err(ApiError::BadRequest { message }) => message,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert!(message(b"{}").contains("k8s\\0"));
        let full = secret();
        for cut in [5, 20, full.len() - 3] {
            assert!(message(&full[..cut]).starts_with("couldn't decode protobuf body"), "cut at {cut}");
        }
        // A field the schema lacks is refused, never dropped.
        let mut raw = Vec::new();
        len_field(99, b"x", &mut raw);
        assert!(message(&envelope("v1", "ConfigMap", &raw)).contains("ConfigMap: field 99"));
        // A wrong wire type.
        let mut raw = Vec::new();
        varint_field(2, 1, &mut raw);
        assert!(message(&envelope("v1", "ConfigMap", &raw)).contains("ConfigMap.data: unexpected wire type 0"));
        // Not valid UTF-8 in a string.
        let mut meta = Vec::new();
        len_field(1, &[0xff, 0xfe], &mut meta);
        let mut raw = Vec::new();
        len_field(1, &meta, &mut raw);
        assert!(message(&envelope("v1", "ConfigMap", &raw)).contains("UTF-8"));
        assert!(matches!(decode(&envelope("apps/v1", "StatefulSet", &[])), Err(ApiError::UnsupportedMediaType { .. })));
    }
}
