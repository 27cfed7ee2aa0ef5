//! Lists: snapshots of one resource at a resourceVersion (rebuilt from the event log),
//! pagination over one snapshot, continue tokens.

use std::ops::Bound;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use super::{ClusterState, FieldSelector, Inner, Key, LabelSelector, ObjMap, StoredObject, parse_rv};
use crate::status::ApiError;

/// What the list request asks for.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListRequest {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) rv_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub(crate) rv: u64,
    pub(crate) items: Vec<Arc<StoredObject>>,
    pub(crate) continue_token: Option<String>,
    pub(crate) remaining: Option<u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
    #[serde(default)]
    served: u64,
    #[serde(default)]
    total: Option<u64>,
}

impl ClusterState {
    /// Reconstruct one resource's objects as of `rv` from the current state and the log.
    fn snapshot_at(&self, st: &Inner, resource: usize, rv: u64) -> Result<ObjMap, ApiError> {
        if rv == st.rv {
            return Ok(st.objects[resource].clone());
        }
        if let Some((_, snap)) = st.snapshots.iter().find(|(k, _)| *k == (resource, rv)) {
            return Ok(snap.clone());
        }
        if rv < st.compacted_rv {
            return Err(ApiError::Expired {
                message: format!(
                    "The resourceVersion for the provided list is too old: {rv} (compacted at {})",
                    st.compacted_rv
                ),
            });
        }
        let mut map = st.objects[resource].clone();
        for ev in st.log.iter().rev().take_while(|e| e.rv > rv) {
            if ev.resource != resource {
                continue;
            }
            let key = ev.object.key();
            match &ev.prev {
                Some(p) => {
                    map.insert(key, p.clone());
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(map)
    }

    /// Serve one list page.
    pub(crate) fn list(&self, resource: usize, req: &ListRequest) -> Result<ListPage, ApiError> {
        let def = self.registry.def(resource);
        let ns = if def.namespaced() { req.namespace.as_deref() } else { None };
        let (snap, snap_rv, start, served, total) = {
            let st = self.state.lock();
            if let Some(token) = &req.continue_token {
                if req.resource_version.as_deref().is_some_and(|s| !s.is_empty()) {
                    return Err(ApiError::BadRequest {
                        message: "specifying resource version is not allowed when using continue".into(),
                    });
                }
                let tok: ContinueToken = base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| ApiError::BadRequest {
                        message: "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
                    })?;
                if tok.rv < st.compacted_rv {
                    return Err(ApiError::Expired {
                        message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
                    });
                }
                let start = tok.start.split_once('/').map(|(a, b)| (a.to_owned(), b.to_owned()));
                let snap = self.snapshot_at(&st, resource, tok.rv)?;
                (snap, tok.rv, start, tok.served, tok.total)
            } else {
                let rv_req = req.resource_version.as_deref().filter(|s| !s.is_empty());
                let rv_match = req.rv_match.as_deref().filter(|s| !s.is_empty());
                let snap_rv = match (rv_req, rv_match) {
                    (None, Some(_)) => {
                        return Err(ApiError::BadRequest {
                            message: "resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                        });
                    }
                    (None, None) => st.rv,
                    (Some(rv), m) => {
                        let n = parse_rv(rv)?;
                        match m {
                            Some("Exact") => {
                                if n == 0 {
                                    return Err(ApiError::BadRequest {
                                        message:
                                            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\""
                                                .into(),
                                    });
                                }
                                if n > st.rv {
                                    return Err(ApiError::TooLargeResourceVersion { requested: n, current: st.rv });
                                }
                                n
                            }
                            None | Some("NotOlderThan") => {
                                if n > st.rv {
                                    return Err(ApiError::TooLargeResourceVersion { requested: n, current: st.rv });
                                }
                                st.rv
                            }
                            Some(other) => {
                                return Err(ApiError::BadRequest {
                                    message: format!(
                                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                                    ),
                                });
                            }
                        }
                    }
                };
                let snap = self.snapshot_at(&st, resource, snap_rv)?;
                (snap, snap_rv, None, 0, None)
            }
        };
        let unfiltered = req.labels.is_empty() && req.fields.is_empty();
        let lower: Bound<Key> = match (&start, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let limit = req.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut more = false;
        // With a selector, a page examines at most `limit` objects, as the storage layer reads
        // `limit` keys and filters them: a page may hold fewer items than `limit` (even none)
        // and still carry a continue token.
        let mut last_examined: Option<&Key> = None;
        for (examined, (key, obj)) in snap.range((lower, Bound::Unbounded)).enumerate() {
            if let Some(ns) = ns
                && key.0 != ns
            {
                break;
            }
            if limit.is_some_and(|l| items.len() >= l || (!unfiltered && examined >= l)) {
                more = true;
                break;
            }
            last_examined = Some(key);
            let keep = unfiltered || (req.labels.matches(&obj.labels) && req.fields.matches(&key.0, &key.1));
            if keep {
                items.push(obj.clone());
            }
        }
        let last_examined = last_examined.map(|(ns, name)| format!("{ns}/{name}"));
        let (continue_token, remaining) = if more {
            let total = match (total, unfiltered) {
                (Some(t), _) => Some(t),
                (None, true) => Some(match ns {
                    None => snap.len() as u64,
                    Some(ns) => {
                        snap.range((ns.to_owned(), String::new())..).take_while(|(k, _)| k.0 == ns).count() as u64
                    }
                }),
                (None, false) => None,
            };
            let served = served + items.len() as u64;
            let tok = ContinueToken {
                v: "meta.k8s.io/v1".into(),
                rv: snap_rv,
                start: last_examined.unwrap_or_default(),
                served,
                total,
            };
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&tok).unwrap_or_default());
            let mut st = self.state.lock();
            if !st.snapshots.iter().any(|(k, _)| *k == (resource, snap_rv)) {
                if st.snapshots.len() >= self.cfg.snapshot_cache.max(1) {
                    st.snapshots.pop_front();
                }
                st.snapshots.push_back(((resource, snap_rv), snap));
            }
            (Some(encoded), total.map(|t| t.saturating_sub(served)))
        } else {
            (None, None)
        };
        Ok(ListPage { rv: snap_rv, items, continue_token, remaining })
    }

    /// All objects of a resource (optionally one namespace) as values, for the handle API.
    pub(crate) fn list_values(&self, resource: usize, namespace: Option<&str>) -> Vec<Value> {
        let req = ListRequest { namespace: namespace.map(str::to_owned), ..Default::default() };
        self.list(resource, &req).map(|p| p.items.iter().map(|o| o.value()).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{cm, state};

    #[test]
    fn paging_is_a_consistent_snapshot() {
        let (s, r) = state(100);
        for i in 0..5 {
            s.create(r, Some("ns"), cm("ns", &format!("o{i}")), false).unwrap();
        }
        let req = ListRequest { limit: Some(2), ..Default::default() };
        let p1 = s.list(r, &req).unwrap();
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.remaining, Some(3));
        s.delete(r, Some("ns"), "o3", None, false).unwrap();
        s.create(r, Some("ns"), cm("ns", "o9"), false).unwrap();
        let mut names: Vec<String> = p1.items.iter().map(|o| o.name.clone()).collect();
        let mut tok = p1.continue_token;
        while let Some(t) = tok {
            let p = s.list(r, &ListRequest { limit: Some(2), continue_token: Some(t), ..Default::default() }).unwrap();
            assert_eq!(p.rv, 5);
            names.extend(p.items.iter().map(|o| o.name.clone()));
            tok = p.continue_token;
        }
        assert_eq!(names, ["o0", "o1", "o2", "o3", "o4"]);
        // after compaction, the snapshot's token expires
        let p = s.list(r, &req).unwrap();
        s.create(r, Some("ns"), cm("ns", "o10"), false).unwrap();
        s.compact();
        let err = s.list(r, &ListRequest { continue_token: p.continue_token, ..Default::default() }).err().unwrap();
        assert_eq!(err.code(), 410);
    }

    #[test]
    fn exact_rv_reconstructs_and_log_bounds_compaction() {
        let (s, r) = state(3);
        for i in 0..3 {
            s.create(r, Some("ns"), cm("ns", &format!("o{i}")), false).unwrap();
        }
        let exact = |rv: u64| {
            s.list(
                r,
                &ListRequest {
                    resource_version: Some(rv.to_string()),
                    rv_match: Some("Exact".into()),
                    ..Default::default()
                },
            )
        };
        assert_eq!(exact(2).unwrap().items.len(), 2);
        s.create(r, Some("ns"), cm("ns", "o3"), false).unwrap();
        assert_eq!(s.compacted_rv(), 1);
        assert_eq!(exact(1).unwrap().items.len(), 1);
        s.create(r, Some("ns"), cm("ns", "o4"), false).unwrap();
        assert_eq!(exact(1).unwrap_err().code(), 410);
        assert_eq!(exact(99).unwrap_err().code(), 504);
        assert!(s.watch(r, Some("1"), None).is_err());
        let w = s.watch(r, Some("3"), None).unwrap();
        assert_eq!(w.replay.iter().map(|e| e.rv).collect::<Vec<_>>(), [4, 5]);
    }
}
