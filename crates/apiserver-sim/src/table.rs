//! Server-side printing: `meta.k8s.io/v1` `Table` responses, as `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

use serde_json::{Value, json};

use crate::resources::ResourceDef;
use crate::state::{StoredObject, now_unix};

/// What each row's `object` holds (`includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub(crate) fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` into seconds since the epoch.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some(days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

/// Kubernetes' `duration.HumanDuration`.
pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    let pair = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 { format!("{a}{ua}") } else { format!("{a}{ua}{b}{ub}") }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        pair(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        pair(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        pair(d, "d", h % 24, "h")
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        pair(y, "y", d % 365, "d")
    } else {
        format!("{y}y")
    }
}

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// Column definitions for a kind (the built-in printers' main columns; Name and Age otherwise).
pub(crate) fn columns(def: &ResourceDef) -> Value {
    let name = col("Name", "string", 0, "Name must be unique within a namespace.");
    let age = col("Age", "string", 0, "CreationTimestamp of the object.");
    let mid: Vec<Value> = match (def.group.as_str(), def.kind.as_str()) {
        ("", "Namespace") => vec![col("Status", "string", 0, "The phase of the namespace.")],
        ("", "Secret") => vec![
            col("Type", "string", 0, "The type of the secret."),
            col("Data", "integer", 0, "The number of entries in the data."),
        ],
        ("", "ConfigMap") => vec![col("Data", "integer", 0, "The number of entries in the data.")],
        ("", "Service") => vec![
            col("Type", "string", 0, "The type of the service."),
            col("Cluster-IP", "string", 0, "The cluster IP of the service."),
            col("External-IP", "string", 0, "The external IPs of the service."),
            col("Port(s)", "string", 0, "The ports of the service."),
        ],
        ("", "Pod") => vec![col("Status", "string", 0, "The phase of the pod.")],
        ("networking.k8s.io", "Ingress") => vec![
            col("Class", "string", 0, "The ingress class."),
            col("Hosts", "string", 0, "Hosts that incoming requests are matched against."),
            col("Address", "string", 0, "Address is a list of IPs of the load balancer."),
            col("Ports", "string", 0, "Ports of TLS configurations that open."),
        ],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            col("AddressType", "string", 0, "The IP protocol of the addresses."),
            col("Ports", "string", 0, "The ports of the slice."),
            col("Endpoints", "string", 0, "The addresses of the slice."),
        ],
        _ => Vec::new(),
    };
    let mut all = vec![name];
    all.extend(mid);
    all.push(age);
    Value::Array(all)
}

fn list_or_none(items: Vec<String>, more: usize) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    let mut s = items.join(",");
    if more > 0 {
        s.push_str(&format!(" + {more} more..."));
    }
    s
}

fn cells(def: &ResourceDef, v: &Value, now: i64) -> Vec<Value> {
    let name = v["metadata"]["name"].clone();
    let age = v["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
        .map(|t| human_duration(now - t))
        .unwrap_or_else(|| "<unknown>".into());
    let count = |x: &Value| json!(x.as_object().map_or(0, |m| m.len()));
    let s = |x: &Value, default: &str| json!(x.as_str().unwrap_or(default));
    let mid: Vec<Value> = match (def.group.as_str(), def.kind.as_str()) {
        ("", "Namespace") => vec![s(&v["status"]["phase"], "Active")],
        ("", "Secret") => vec![
            s(&v["type"], "Opaque"),
            json!(count(&v["data"]).as_u64().unwrap_or(0) + count(&v["stringData"]).as_u64().unwrap_or(0)),
        ],
        ("", "ConfigMap") => {
            vec![json!(count(&v["data"]).as_u64().unwrap_or(0) + count(&v["binaryData"]).as_u64().unwrap_or(0))]
        }
        ("", "Service") => {
            let ports: Vec<String> = v["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter().map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))).collect()
                })
                .unwrap_or_default();
            let external: Vec<String> = v["spec"]["externalIPs"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            vec![
                s(&v["spec"]["type"], "ClusterIP"),
                s(&v["spec"]["clusterIP"], "<none>"),
                json!(list_or_none(external, 0)),
                json!(list_or_none(ports, 0)),
            ]
        }
        ("", "Pod") => vec![s(&v["status"]["phase"], "Pending")],
        ("networking.k8s.io", "Ingress") => {
            let hosts: Vec<String> = v["spec"]["rules"]
                .as_array()
                .map(|rs| rs.iter().map(|r| r["host"].as_str().unwrap_or("*").to_owned()).collect())
                .unwrap_or_default();
            let shown: Vec<String> = hosts.iter().take(3).cloned().collect();
            let addresses: Vec<String> = v["status"]["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| {
                    a.iter().filter_map(|x| x["ip"].as_str().or(x["hostname"].as_str()).map(str::to_owned)).collect()
                })
                .unwrap_or_default();
            let tls = v["spec"]["tls"].as_array().is_some_and(|t| !t.is_empty());
            let hosts_cell =
                if hosts.is_empty() { "*".to_owned() } else { list_or_none(shown, hosts.len().saturating_sub(3)) };
            vec![
                s(&v["spec"]["ingressClassName"], "<none>"),
                json!(hosts_cell),
                json!(addresses.join(",")),
                json!(if tls { "80, 443" } else { "80" }),
            ]
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> =
                v["ports"].as_array().map(|ps| ps.iter().map(|p| p["port"].to_string()).collect()).unwrap_or_default();
            let addrs: Vec<String> = v["endpoints"]
                .as_array()
                .map(|es| {
                    es.iter()
                        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let more = addrs.len().saturating_sub(3);
            vec![
                s(&v["addressType"], "IPv4"),
                json!(list_or_none(ports, 0)),
                json!(list_or_none(addrs.into_iter().take(3).collect(), more)),
            ]
        }
        _ => Vec::new(),
    };
    let mut all = vec![name];
    all.extend(mid);
    all.push(json!(age));
    all
}

/// A `Table` of `objects` with list metadata `meta`.
pub(crate) fn table(def: &ResourceDef, objects: &[&StoredObject], include: Include, meta: Value) -> Value {
    let now = now_unix();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let v = o.value();
            let mut row = json!({"cells": cells(def, &v, now)});
            match include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = serde_json::from_slice(o.metadata_json()).unwrap_or(Value::Null);
                }
                Include::Object => row["object"] = v,
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns(def),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::rfc3339;

    #[test]
    fn human_durations_match_kubernetes() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400 + 3600), "3d1h");
        assert_eq!(human_duration(400 * 86_400), "400d");
        assert_eq!(human_duration(3 * 365 * 86_400 + 5 * 86_400), "3y5d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn parses_what_it_formats() {
        for t in [0, 951_782_400, 1_700_000_000, 1_764_100_000] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
