//! Watch streams: where a watch starts (initial events, replay, 410), the event lines in
//! each response format, bookmarks, selector transitions and the injected faults.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use super::objects::list_request;
use super::routing::Query;
use super::{Body, Format, Shared};
use crate::faults::WatchControl;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::state::{EventType, StoredObject, WatchStart, object_matches};
use crate::status::ApiError;
use crate::table;

/// Everything a watch stream needs once the response head is sent.
struct WatchPlan {
    res: usize,
    kind: String,
    api_version: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    format: Format,
    def: ResourceDef,
    bookmarks: bool,
    initial_end_bookmark: bool,
    timeout: Option<Duration>,
}

/// One `(key, object)` entry of a snapshot.
type Entry<'a> = (&'a crate::state::Key, &'a Arc<StoredObject>);

type Tx = mpsc::Sender<Result<Frame<Bytes>, io::Error>>;

pub(crate) fn watch(
    shared: &Arc<Shared>,
    res: usize,
    def: &ResourceDef,
    ns: Option<&str>,
    query: &Query,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let lr = list_request(ns, query)?;
    let bookmarks = query.flag("allowWatchBookmarks")?.unwrap_or(false);
    let send_initial = query.flag("sendInitialEvents")?;
    let rv_match = lr.rv_match.as_deref().filter(|s| !s.is_empty());
    match (send_initial, rv_match) {
        (Some(_), Some("NotOlderThan")) | (None, None) => {}
        (Some(_), _) => {
            return Err(ApiError::Invalid {
                kind: "ListOptions".into(),
                name: String::new(),
                message: "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ApiError::Invalid {
                kind: "ListOptions".into(),
                name: String::new(),
                message: "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".into(),
            });
        }
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::Invalid {
            kind: "ListOptions".into(),
            name: String::new(),
            message: "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks=true"
                .into(),
        });
    }
    // 0 means "no timeout" (the real apiserver then picks its own, much longer one).
    let timeout = query.number("timeoutSeconds")?.filter(|s| *s > 0).map(Duration::from_secs);
    let (kind, api_version) = if format == Format::Metadata {
        ("PartialObjectMetadata".to_owned(), "meta.k8s.io/v1".to_owned())
    } else {
        (def.kind.clone(), def.api_version())
    };
    let plan = WatchPlan {
        res,
        kind,
        api_version,
        namespace: lr.namespace.clone().filter(|_| def.namespaced()),
        labels: lr.labels,
        fields: lr.fields,
        format,
        def: def.clone(),
        bookmarks,
        initial_end_bookmark: send_initial == Some(true),
        timeout,
    };
    let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(64);
    let start = match shared.state.watch(res, lr.resource_version.as_deref(), send_initial) {
        Err(e) if !matches!(e, ApiError::Expired { .. }) => return Err(e),
        other => other,
    };
    let control = shared.faults.control.subscribe();
    let shared2 = shared.clone();
    tokio::spawn(async move {
        match start {
            Ok(start) => run_watch(&shared2, plan, start, control, tx).await,
            Err(e) => {
                // Too old RV: HTTP 200 with one ERROR event, then end of stream.
                let line = error_line(&e);
                let _ = tx.send(Ok(Frame::data(line))).await;
            }
        }
    });
    let body = StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = Response::new(BodyExt::boxed(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn error_line(e: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

struct WatchGuard<'a>(&'a watch::Sender<usize>);

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

enum Flow {
    Continue,
    Stop,
}

struct Writer<'a> {
    shared: &'a Shared,
    plan: &'a WatchPlan,
    tx: Tx,
    control: broadcast::Receiver<WatchControl>,
    paused: watch::Receiver<bool>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Writer<'_> {
    fn event_line(&self, ty: &str, obj: &StoredObject) -> Bytes {
        let table_json;
        let payload: &[u8] = match self.plan.format {
            Format::Metadata => obj.metadata_json(),
            Format::Full => &obj.json,
            Format::Table(include) => {
                let meta = json!({"resourceVersion": obj.rv.to_string()});
                table_json =
                    serde_json::to_vec(&table::table(&self.plan.def, &[obj], include, meta)).unwrap_or_default();
                &table_json
            }
        };
        let mut buf = BytesMut::with_capacity(payload.len() + 32);
        buf.put_slice(b"{\"type\":\"");
        buf.put_slice(ty.as_bytes());
        buf.put_slice(b"\",\"object\":");
        buf.put_slice(payload);
        buf.put_slice(b"}\n");
        buf.freeze()
    }

    fn bookmark_line(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let v = json!({"type": "BOOKMARK", "object": {
            "kind": self.plan.kind, "apiVersion": self.plan.api_version, "metadata": meta,
        }});
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    /// React to a control message; `Stop` ends the stream.
    async fn on_control(
        &mut self,
        ctl: Result<WatchControl, broadcast::error::RecvError>,
        next: Option<&Bytes>,
    ) -> Flow {
        match ctl {
            Ok(WatchControl::End) => Flow::Stop,
            Ok(WatchControl::Expire) => {
                let e = ApiError::Expired { message: "The resourceVersion for the provided watch is too old.".into() };
                let _ = self.tx.send(Ok(Frame::data(error_line(&e)))).await;
                Flow::Stop
            }
            Ok(WatchControl::Abort) => {
                let partial = match next {
                    Some(line) if line.len() > 2 => line.slice(..line.len() / 2),
                    _ => Bytes::from_static(b"{\"type\":\"MODIFIED\",\"object\":{\"kind\""),
                };
                let _ = self.tx.send(Ok(Frame::data(partial))).await;
                let _ = self.tx.send(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "injected abort"))).await;
                Flow::Stop
            }
            Err(broadcast::error::RecvError::Lagged(_)) => Flow::Continue,
            Err(broadcast::error::RecvError::Closed) => Flow::Stop,
        }
    }

    /// Send one line, honouring pause, end/abort and the deadline.
    async fn emit(&mut self, line: Bytes, is_event: bool) -> Flow {
        loop {
            let paused = *self.paused.borrow_and_update();
            if !paused {
                break;
            }
            tokio::select! {
                ctl = self.control.recv() => {
                    if let Flow::Stop = self.on_control(ctl, Some(&line)).await {
                        return Flow::Stop;
                    }
                }
                changed = self.paused.changed() => if changed.is_err() { return Flow::Stop },
                _ = &mut self.deadline => return Flow::Stop,
                _ = self.tx.closed() => return Flow::Stop,
            }
        }
        if let Ok(ctl) = self.control.try_recv()
            && let Flow::Stop = self.on_control(Ok(ctl), Some(&line)).await
        {
            return Flow::Stop;
        }
        if is_event && self.shared.faults.take_lost() {
            return Flow::Continue;
        }
        if is_event && self.shared.faults.take_malformed() {
            let bad = Bytes::from_static(b"{\"type\":\"MODIFIED\",\"object\":}not-json\n");
            if self.tx.send(Ok(Frame::data(bad))).await.is_err() {
                return Flow::Stop;
            }
        }
        if self.tx.send(Ok(Frame::data(line))).await.is_err() {
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn matches(&self, obj: &StoredObject) -> bool {
        object_matches(obj, self.plan.namespace.as_deref(), &self.plan.labels, &self.plan.fields)
    }

    /// The event a watch with selectors sees for a change, if any.
    fn translate(&self, ty: EventType, obj: &StoredObject, prev: Option<&StoredObject>) -> Option<&'static str> {
        let now = self.matches(obj);
        match ty {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = prev.is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

async fn run_watch(
    shared: &Shared,
    plan: WatchPlan,
    start: WatchStart,
    control: broadcast::Receiver<WatchControl>,
    tx: Tx,
) {
    shared.active_watches.send_modify(|n| *n += 1);
    let _guard = WatchGuard(&shared.active_watches);
    let deadline = match plan.timeout {
        Some(t) => tokio::time::sleep(t),
        None => tokio::time::sleep(Duration::from_secs(60 * 60 * 24 * 365)),
    };
    let mut w = Writer {
        shared,
        plan: &plan,
        tx,
        control,
        paused: shared.faults.paused.subscribe(),
        deadline: Box::pin(deadline),
    };
    let WatchStart { initial, replay, mut rx, start_rv } = start;
    if let Some(snap) = initial {
        let iter: Box<dyn Iterator<Item = Entry<'_>> + Send> = match plan.namespace.as_deref() {
            Some(ns) => Box::new(snap.range((ns.to_owned(), String::new())..).take_while(move |(k, _)| k.0 == ns)),
            None => Box::new(snap.iter()),
        };
        for (_, obj) in iter {
            if !w.matches(obj) {
                continue;
            }
            let line = w.event_line("ADDED", obj);
            if let Flow::Stop = w.emit(line, true).await {
                return;
            }
        }
    }
    if plan.initial_end_bookmark {
        let line = w.bookmark_line(start_rv, true);
        if let Flow::Stop = w.emit(line, false).await {
            return;
        }
    }
    let mut last_rv = start_rv;
    for ev in replay {
        last_rv = last_rv.max(ev.rv);
        if let Some(ty) = w.translate(ev.kind, &ev.object, ev.prev.as_deref()) {
            let line = w.event_line(ty, &ev.object);
            if let Flow::Stop = w.emit(line, true).await {
                return;
            }
        }
    }
    let mut ticker = tokio::time::interval(shared.bookmark_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let paused = *w.paused.borrow_and_update();
        tokio::select! {
            biased;
            ctl = w.control.recv() => {
                if let Flow::Stop = w.on_control(ctl, None).await { return; }
            }
            _ = &mut w.deadline => return,
            // The client went away (or the connection was dropped): stop at once.
            _ = w.tx.closed() => return,
            changed = w.paused.changed() => if changed.is_err() { return },
            ev = rx.recv(), if !paused => match ev {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if ev.resource != plan.res {
                        continue;
                    }
                    if let Some(ty) = w.translate(ev.kind, &ev.object, ev.prev.as_deref()) {
                        let line = w.event_line(ty, &ev.object);
                        if let Flow::Stop = w.emit(line, true).await { return; }
                    }
                }
                // Too slow a reader: close the stream, the client re-watches from its last RV.
                Err(_) => return,
            },
            _ = ticker.tick(), if plan.bookmarks && !paused => {
                let line = w.bookmark_line(last_rv, false);
                if let Flow::Stop = w.emit(line, false).await { return; }
            }
        }
    }
}
