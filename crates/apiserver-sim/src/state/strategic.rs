//! Strategic merge patch for the built-in kinds the simulator serves.
//!
//! Maps merge as in a JSON merge patch (`null` deletes). Lists follow their field's patch
//! strategy in the Kubernetes API types: merged by a merge key (`containers`, `env`,
//! `volumes`… by `name`, container `ports` by `containerPort`, Service `ports` by `port`,
//! `volumeMounts` by `mountPath`, `ownerReferences` by `uid`, `conditions` by `type`…),
//! merged as a set (`finalizers`), or replaced (every other list). The directives `$patch`
//! (`replace`, `delete`, `merge`), `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>` are applied; any other `$`-key or a malformed directive
//! is a 400 `Status`. No directive is ever left in the result.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// The patch's list replaces the object's (`patchStrategy` unset: atomic).
    Replace,
    /// Elements are objects merged by this key (`patchStrategy: merge`, `patchMergeKey`).
    MergeByKey(&'static str),
    /// Elements are scalars merged as a set (`patchStrategy: merge` on a scalar list).
    MergeSet,
}

/// The strategy of the list at `path` (field names from the root, array levels omitted) in
/// an object of `kind`, after the Kubernetes API types' `patchStrategy`/`patchMergeKey` tags.
fn strategy(kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::{MergeByKey, MergeSet, Replace};
    let Some((&field, parents)) = path.split_last() else { return Replace };
    let parent = parents.last().copied().unwrap_or_default();
    let pod_spec = pod_spec_path(kind);
    let in_pod_spec = pod_spec.is_some_and(|p| parents == p);
    let in_container = parents.len() >= 2
        && matches!(parent, "containers" | "initContainers" | "ephemeralContainers")
        && pod_spec.is_some_and(|p| &parents[..parents.len() - 1] == p);
    match (field, parent) {
        ("finalizers", "metadata") if parents.len() == 1 => MergeSet,
        ("ownerReferences", "metadata") if parents.len() == 1 => MergeByKey("uid"),
        ("containers" | "initContainers" | "ephemeralContainers" | "volumes" | "imagePullSecrets", _)
            if in_pod_spec =>
        {
            MergeByKey("name")
        }
        ("resourceClaims" | "schedulingGates", _) if in_pod_spec => MergeByKey("name"),
        ("hostAliases", _) if in_pod_spec => MergeByKey("ip"),
        ("ports", _) if in_container => MergeByKey("containerPort"),
        ("env", _) if in_container => MergeByKey("name"),
        ("volumeMounts", _) if in_container => MergeByKey("mountPath"),
        ("volumeDevices", _) if in_container => MergeByKey("devicePath"),
        ("ports", "spec") if kind == "Service" && parents.len() == 1 => MergeByKey("port"),
        ("secrets", _) if kind == "ServiceAccount" && parents.is_empty() => MergeByKey("name"),
        ("conditions", "status")
            if parents.len() == 1
                && matches!(
                    kind,
                    "Pod"
                        | "Node"
                        | "Namespace"
                        | "PersistentVolumeClaim"
                        | "ReplicationController"
                        | "Deployment"
                        | "DaemonSet"
                        | "ReplicaSet"
                        | "StatefulSet"
                        | "Job"
                ) =>
        {
            MergeByKey("type")
        }
        ("addresses", "status") if kind == "Node" && parents.len() == 1 => MergeByKey("type"),
        _ => Replace,
    }
}

/// Where the pod spec sits in an object of `kind` (field names from the root), for the kinds
/// that hold one.
fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "PodTemplate" => Some(&["template", "spec"]),
        "Deployment" | "DaemonSet" | "ReplicaSet" | "StatefulSet" | "Job" | "ReplicationController" => {
            Some(&["spec", "template", "spec"])
        }
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest { message }
}

/// What became of a map the patch addressed.
enum Outcome {
    Keep,
    Delete,
}

/// Apply a strategic merge patch to `target`, an object of `kind`.
pub(crate) fn apply(kind: &str, target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Some(patch) = patch.as_object() else {
        return Err(bad("a strategic merge patch must be a JSON object".into()));
    };
    let mut map = match std::mem::take(target) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let outcome = merge_map(kind, &mut Vec::new(), &mut map, patch);
    *target = Value::Object(map);
    match outcome? {
        Outcome::Keep => Ok(()),
        Outcome::Delete => Err(bad("a strategic merge patch may not delete the whole object".into())),
    }
}

/// A patch value applied to nothing (a new member or list element): directives are applied
/// to an empty container, so none survives.
fn fresh(kind: &str, path: &mut Vec<String>, patch: &Value) -> Result<Option<Value>, ApiError> {
    match patch {
        Value::Object(p) => {
            let mut m = Map::new();
            Ok(match merge_map(kind, path, &mut m, p)? {
                Outcome::Keep => Some(Value::Object(m)),
                Outcome::Delete => None,
            })
        }
        Value::Array(items) => {
            let mut out = Value::Array(Vec::new());
            merge_list(kind, path, &mut out, items)?;
            Ok(Some(out))
        }
        other => Ok(Some(other.clone())),
    }
}

fn merge_map(
    kind: &str,
    path: &mut Vec<String>,
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Outcome, ApiError> {
    match patch.get("$patch") {
        None => {}
        Some(Value::String(s)) if s == "merge" => {}
        Some(Value::String(s)) if s == "delete" => return Ok(Outcome::Delete),
        Some(Value::String(s)) if s == "replace" => {
            target.clear();
            let rest: Map<String, Value> =
                patch.iter().filter(|(k, _)| *k != "$patch").map(|(k, v)| (k.clone(), v.clone())).collect();
            merge_map(kind, path, target, &rest)?;
            return Ok(Outcome::Keep);
        }
        Some(other) => return Err(bad(format!("Unknown patch type: {other}"))),
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let keys = retain
            .as_array()
            .filter(|a| a.iter().all(Value::is_string))
            .ok_or_else(|| bad("$retainKeys must be a list of strings".into()))?;
        target.retain(|k, _| keys.iter().any(|r| r.as_str() == Some(k)));
    }
    let mut orders = Vec::new();
    let mut deletions = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            let order = value.as_array().ok_or_else(|| bad(format!("{key} must be a list")))?;
            orders.push((field, order));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let values = value.as_array().ok_or_else(|| bad(format!("{key} must be a list")))?;
            deletions.push((field, values));
            continue;
        }
        if key == "$patch" || key == "$retainKeys" {
            continue;
        }
        if key.starts_with('$') {
            return Err(bad(format!("unknown strategic merge patch directive {key:?}")));
        }
        path.push(key.clone());
        let result = merge_member(kind, path, target, key, value);
        path.pop();
        result?;
    }
    for (field, values) in deletions {
        if let Some(Value::Array(items)) = target.get_mut(field) {
            items.retain(|v| !values.contains(v));
        }
    }
    for (field, order) in orders {
        path.push(field.to_owned());
        let strategy = strategy(kind, &path.iter().map(String::as_str).collect::<Vec<_>>());
        path.pop();
        if let Some(Value::Array(items)) = target.get_mut(field) {
            reorder(items, order, strategy);
        }
    }
    Ok(Outcome::Keep)
}

fn merge_member(
    kind: &str,
    path: &mut Vec<String>,
    target: &mut Map<String, Value>,
    key: &str,
    value: &Value,
) -> Result<(), ApiError> {
    match value {
        Value::Null => {
            target.remove(key);
        }
        Value::Object(p) => match target.get_mut(key) {
            Some(Value::Object(existing)) => {
                if let Outcome::Delete = merge_map(kind, path, existing, p)? {
                    target.remove(key);
                }
            }
            _ => match fresh(kind, path, value)? {
                Some(v) => {
                    target.insert(key.to_owned(), v);
                }
                None => {
                    target.remove(key);
                }
            },
        },
        Value::Array(items) => {
            let slot = target.entry(key.to_owned()).or_insert(Value::Null);
            merge_list(kind, path, slot, items)?;
        }
        scalar => {
            target.insert(key.to_owned(), scalar.clone());
        }
    }
    Ok(())
}

fn merge_list(kind: &str, path: &mut Vec<String>, target: &mut Value, patch: &[Value]) -> Result<(), ApiError> {
    let strategy = strategy(kind, &path.iter().map(String::as_str).collect::<Vec<_>>());
    let names = path.join(".");
    let replace_marker = |v: &Value| v.get("$patch").and_then(Value::as_str) == Some("replace");
    let replace = strategy == ListStrategy::Replace || patch.iter().any(replace_marker);
    if replace {
        let mut out = Vec::with_capacity(patch.len());
        for item in patch.iter().filter(|v| !replace_marker(v)) {
            if item.get("$patch").is_some() {
                return Err(bad(format!("a $patch directive is not allowed in the list {}", names)));
            }
            if let Some(v) = fresh(kind, path, item)? {
                out.push(v);
            }
        }
        *target = Value::Array(out);
        return Ok(());
    }
    let mut items = match std::mem::take(target) {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let result = merge_into(kind, path, &mut items, patch, strategy, &names);
    *target = Value::Array(items);
    result
}

fn merge_into(
    kind: &str,
    path: &mut Vec<String>,
    items: &mut Vec<Value>,
    patch: &[Value],
    strategy: ListStrategy,
    names: &str,
) -> Result<(), ApiError> {
    match strategy {
        ListStrategy::MergeSet => {
            for v in patch {
                if v.is_object() || v.is_array() {
                    return Err(bad(format!("the list {} holds only scalars", names)));
                }
                if !items.contains(v) {
                    items.push(v.clone());
                }
            }
        }
        ListStrategy::MergeByKey(merge_key) => {
            for p in patch {
                let Some(obj) = p.as_object() else {
                    return Err(bad(format!("the elements of {} must be objects", names)));
                };
                let Some(id) = obj.get(merge_key) else {
                    return Err(bad(format!("map: {p} does not contain declared merge key: {merge_key}")));
                };
                let at = items.iter().position(|e| e.get(merge_key) == Some(id));
                match (obj.get("$patch").and_then(Value::as_str), at) {
                    (Some("delete"), Some(i)) => {
                        items.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => {
                        if let Value::Object(existing) = &mut items[i]
                            && let Outcome::Delete = merge_map(kind, path, existing, obj)?
                        {
                            items.remove(i);
                        }
                    }
                    (_, None) => {
                        if let Some(v) = fresh(kind, path, p)? {
                            items.push(v);
                        }
                    }
                }
            }
        }
        ListStrategy::Replace => {}
    }
    Ok(())
}

/// Order `items` as `order` lists them (by merge key for lists of objects); items it does not
/// name follow in their current order.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let rank = |item: &Value| {
        order.iter().position(|o| match strategy {
            ListStrategy::MergeByKey(key) => o.get(key).is_some() && o.get(key) == item.get(key),
            _ => o == item,
        })
    };
    let mut ranked: Vec<(usize, usize, Value)> =
        items.drain(..).enumerate().map(|(i, v)| (rank(&v).unwrap_or(usize::MAX), i, v)).collect();
    ranked.sort_by_key(|(r, i, _)| (*r, *i));
    items.extend(ranked.into_iter().map(|(_, _, v)| v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, mut target: Value, patch: Value) -> Result<Value, ApiError> {
        apply(kind, &mut target, &patch).map(|()| target)
    }

    #[test]
    fn service_ports_by_port_with_element_order_and_deletes() {
        // What `kubectl apply` sends when ports 80/443 become one port 8080 named web.
        let svc = json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                                   "selector": {"app": "web"}}});
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 8080}],
            "ports": [{"name": "web", "port": 8080}, {"$patch": "delete", "port": 80}, {"$patch": "delete", "port": 443}]
        }});
        let out = smp("Service", svc.clone(), patch).unwrap();
        assert_eq!(out, json!({"spec": {"ports": [{"name": "web", "port": 8080}], "selector": {"app": "web"}}}));
        // A rename keeps the element and merges it.
        let out = smp("Service", svc, json!({"spec": {"ports": [{"port": 443, "name": "tls"}]}})).unwrap();
        assert_eq!(out["spec"]["ports"], json!([{"name": "http", "port": 80}, {"name": "tls", "port": 443}]));
    }

    #[test]
    fn every_pod_template_kind_merges_containers_by_name() {
        let nest = |path: &[&str], v: Value| path.iter().rev().fold(v, |v, field| json!({ *field: v }));
        for (kind, path) in [
            ("Pod", &["spec"][..]),
            ("PodTemplate", &["template", "spec"]),
            ("DaemonSet", &["spec", "template", "spec"]),
            ("StatefulSet", &["spec", "template", "spec"]),
            ("Job", &["spec", "template", "spec"]),
            ("CronJob", &["spec", "jobTemplate", "spec", "template", "spec"]),
        ] {
            let target =
                nest(path, json!({"containers": [{"name": "app", "image": "a:1"}, {"name": "b", "image": "b:1"}]}));
            let out = smp(kind, target, nest(path, json!({"containers": [{"name": "app", "image": "a:2"}]}))).unwrap();
            let containers = &path.iter().fold(&out, |v, f| &v[*f])["containers"];
            assert_eq!(*containers, json!([{"name": "app", "image": "a:2"}, {"name": "b", "image": "b:1"}]), "{kind}");
        }
        // A kind without a pod template replaces the list.
        let target = json!({"spec": {"containers": [{"name": "app"}]}});
        let out = smp("ConfigMap", target, json!({"spec": {"containers": []}})).unwrap();
        assert_eq!(out, json!({"spec": {"containers": []}}));
    }

    #[test]
    fn containers_env_and_mounts_merge_by_their_keys() {
        let dep = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80}], "volumeMounts": [{"mountPath": "/data", "name": "d"}]},
            {"name": "sidecar", "image": "s:1"}
        ], "volumes": [{"name": "d", "emptyDir": {}}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "a:2", "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}],
                            "ports": [{"containerPort": 81}], "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}],
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "volumes": [{"name": "d", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}]
        }}}});
        let out = smp("Deployment", dep, patch).unwrap();
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0], json!({"name": "sidecar", "image": "s:1"}));
        let app = &spec["containers"][1];
        assert_eq!(app["image"], "a:2");
        assert_eq!(app["env"], json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]));
        assert_eq!(app["ports"], json!([{"containerPort": 80}, {"containerPort": 81}]));
        assert_eq!(app["volumeMounts"], json!([{"mountPath": "/data", "name": "d", "readOnly": true}]));
        assert_eq!(spec["volumes"], json!([{"name": "d", "configMap": {"name": "cm"}}]));
    }

    #[test]
    fn replace_delete_and_primitive_lists() {
        let o = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
                       "data": {"k": "v"}, "spec": {"rules": [1, 2]}});
        let out = smp(
            "ConfigMap",
            o,
            json!({"metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"],
                                "labels": {"$patch": "replace", "z": "3"}},
                   "data": {"$patch": "delete"}, "spec": {"rules": [3]}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["a", "c"], "labels": {"z": "3"}}, "spec": {"rules": [3]}}));
        // A list-level replace marker replaces a merge list.
        let svc = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
        let out = smp("Service", svc, json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 9}]}})).unwrap();
        assert_eq!(out["spec"]["ports"], json!([{"port": 9}]));
    }

    #[test]
    fn directives_are_never_stored_and_bad_ones_are_errors() {
        let svc = json!({"spec": {"ports": [{"port": 80}]}});
        // New members and elements are cleaned of directives.
        let out = smp(
            "Service",
            svc.clone(),
            json!({"spec": {"extra": {"$patch": "merge", "a": {"$retainKeys": ["b"], "b": 1}}}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["extra"], json!({"a": {"b": 1}}));
        for bad in [
            json!({"spec": {"$unknown": 1}}),
            json!({"spec": {"$patch": "explode"}}),
            json!({"spec": {"ports": [{"name": "no-key"}]}}),
            json!({"spec": {"ports": [7]}}),
            json!({"spec": {"$retainKeys": "ports"}}),
            json!({"spec": {"$setElementOrder/ports": 1}}),
            json!({"spec": {"selector": [{"$patch": "delete", "a": 1}]}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            json!({"$patch": "delete"}),
        ] {
            let err = smp("Service", svc.clone(), bad.clone()).unwrap_err();
            assert_eq!(err.code(), 400, "{bad}");
        }
        fn no_dollar(v: &Value) -> bool {
            match v {
                Value::Object(m) => m.iter().all(|(k, v)| !k.starts_with('$') && no_dollar(v)),
                Value::Array(a) => a.iter().all(no_dollar),
                _ => true,
            }
        }
        let out = smp(
            "Service",
            svc,
            json!({"spec": {"$setElementOrder/ports": [{"port": 1}], "ports": [{"port": 1, "$patch": "merge"}],
                            "new": [{"$patch": "replace"}, {"a": {"$patch": "replace", "b": 2}}]}}),
        )
        .unwrap();
        assert!(no_dollar(&out), "{out}");
    }
}
