//! Fault injection: rejected requests, latency, ended/aborted watch streams, malformed event
//! lines, compaction, paused event delivery and restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::requests::Verb;
use crate::state::ClusterState;
use crate::status::ApiError;

/// Which requests a fault applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    verbs: Vec<Verb>,
    resource: Option<String>,
}

impl Matcher {
    /// Every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Requests of one verb.
    pub fn verb(verb: Verb) -> Self {
        Self { verbs: vec![verb], resource: None }
    }

    /// Requests of any of these verbs.
    pub fn verbs(verbs: &[Verb]) -> Self {
        Self { verbs: verbs.to_vec(), resource: None }
    }

    /// Restrict to one resource, written `plural` (core) or `plural.group`.
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    pub(crate) fn matches(&self, verb: Verb, resource: Option<&str>) -> bool {
        (self.verbs.is_empty() || self.verbs.contains(&verb))
            && self.resource.as_deref().is_none_or(|r| Some(r) == resource)
    }
}

/// The response a rejected request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status code, e.g. 500, 503 or 429.
    pub code: u16,
    /// Seconds for the `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl Rejection {
    /// Reject with this status code and no `Retry-After`.
    pub fn status(code: u16) -> Self {
        Self { code, retry_after: None }
    }

    /// `429 Too Many Requests` with `Retry-After: secs`.
    pub fn too_many_requests(retry_after_secs: u32) -> Self {
        Self { code: 429, retry_after: Some(retry_after_secs) }
    }
}

#[derive(Debug)]
struct Rule {
    matcher: Matcher,
    rejection: Rejection,
    remaining: Option<usize>,
    until: Option<Instant>,
}

/// A canned answer for the next matching requests.
#[derive(Debug)]
struct CannedAnswer {
    matcher: Matcher,
    body: bytes::Bytes,
    remaining: usize,
}

/// What to do to open watch streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchControl {
    /// End the stream cleanly (terminating chunk).
    End,
    /// Send half an event line, then drop the connection.
    Abort,
    /// Send an ERROR event (410 Expired), then end the stream.
    Expire,
}

pub(crate) struct FaultState {
    rules: Mutex<Vec<Rule>>,
    answers: Mutex<Vec<CannedAnswer>>,
    latency: Mutex<Option<(Matcher, Duration)>>,
    malformed: AtomicBool,
    lose: AtomicBool,
    pub(crate) paused: watch::Sender<bool>,
    pub(crate) control: broadcast::Sender<WatchControl>,
    pub(crate) restart: watch::Sender<u64>,
    cluster: Arc<ClusterState>,
}

impl FaultState {
    pub(crate) fn new(cluster: Arc<ClusterState>) -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
            latency: Mutex::new(None),
            malformed: AtomicBool::new(false),
            lose: AtomicBool::new(false),
            paused: watch::Sender::new(false),
            control: broadcast::channel(16).0,
            restart: watch::Sender::new(0),
            cluster,
        }
    }

    /// The injected error for this request, if a rule fires (consuming one use).
    pub(crate) fn check(&self, verb: Verb, resource: Option<&str>) -> Option<ApiError> {
        let now = Instant::now();
        let mut rules = self.rules.lock();
        rules.retain(|r| r.remaining != Some(0) && r.until.is_none_or(|u| u > now));
        let rule = rules.iter_mut().find(|r| r.matcher.matches(verb, resource))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        Some(ApiError::Injected {
            code: rule.rejection.code,
            retry_after: rule.rejection.retry_after,
            message: format!("{verb} rejected with {}", rule.rejection.code),
        })
    }

    /// The canned `200` body for this request, if one is set (consuming one use).
    pub(crate) fn answer(&self, verb: Verb, resource: Option<&str>) -> Option<bytes::Bytes> {
        let mut answers = self.answers.lock();
        answers.retain(|a| a.remaining > 0);
        let answer = answers.iter_mut().find(|a| a.matcher.matches(verb, resource))?;
        answer.remaining -= 1;
        Some(answer.body.clone())
    }

    pub(crate) fn latency(&self, verb: Verb, resource: Option<&str>) -> Option<Duration> {
        self.latency.lock().as_ref().filter(|(m, _)| m.matches(verb, resource)).map(|(_, d)| *d)
    }

    pub(crate) fn take_malformed(&self) -> bool {
        self.malformed.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn take_lost(&self) -> bool {
        self.lose.swap(false, Ordering::SeqCst)
    }
}

/// Handle for injecting faults into a running simulator. Cheap to clone.
#[derive(Clone)]
pub struct Faults {
    pub(crate) state: Arc<FaultState>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

impl Faults {
    /// Reject the next `n` requests matching `matcher` with `rejection`.
    pub fn reject_next(&self, matcher: Matcher, n: usize, rejection: Rejection) {
        self.state.rules.lock().push(Rule { matcher, rejection, remaining: Some(n), until: None });
    }

    /// Reject every request matching `matcher` for the next `duration`.
    pub fn reject_for(&self, matcher: Matcher, duration: Duration, rejection: Rejection) {
        self.state.rules.lock().push(Rule {
            matcher,
            rejection,
            remaining: None,
            until: Some(Instant::now() + duration),
        });
    }

    /// Remove all rejection rules and canned answers.
    pub fn clear_rejections(&self) {
        self.state.rules.lock().clear();
        self.state.answers.lock().clear();
    }

    /// Answer the next `n` requests matching `matcher` with `200 OK` and `body` as
    /// `application/json`, verbatim, instead of handling them: a malformed or unexpected
    /// response (truncated JSON, an array where an object belongs) for clients to cope with.
    /// Rejections take precedence.
    pub fn answer_next(&self, matcher: Matcher, n: usize, body: impl Into<bytes::Bytes>) {
        self.state.answers.lock().push(CannedAnswer { matcher, body: body.into(), remaining: n });
    }

    /// Delay every matching request by `delay` before it is handled (replaces earlier latency).
    pub fn set_latency(&self, matcher: Matcher, delay: Duration) {
        *self.state.latency.lock() = Some((matcher, delay));
    }

    /// Remove injected latency.
    pub fn clear_latency(&self) {
        *self.state.latency.lock() = None;
    }

    /// End every open watch stream cleanly; returns how many streams were told.
    pub fn end_watches(&self) -> usize {
        self.state.control.send(WatchControl::End).unwrap_or(0)
    }

    /// Abort every open watch stream in the middle of an event line (connection dropped without
    /// the terminating chunk); returns how many streams were told.
    pub fn abort_watches(&self) -> usize {
        self.state.control.send(WatchControl::Abort).unwrap_or(0)
    }

    /// End every open watch stream with an ERROR event carrying a 410 `Expired` Status (what a
    /// real server sends when a running watch falls behind its history), then the terminating
    /// chunk; returns how many streams were told. Clients must relist.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let sim = kstore_apiserver_sim::ApiServerSim::builder().start().await.unwrap();
    /// assert_eq!(sim.faults().expire_watches(), 0, "no watch is open yet");
    /// # }
    /// ```
    pub fn expire_watches(&self) -> usize {
        self.state.control.send(WatchControl::Expire).unwrap_or(0)
    }

    /// Make the next event written by any watch stream be preceded by one malformed JSON line.
    pub fn malformed_event(&self) {
        self.state.malformed.store(true, Ordering::SeqCst);
    }

    /// Make the next event written by any watch stream be lost: never sent, while the stream
    /// goes on (and later bookmarks move the client's resourceVersion past it). A client that
    /// only watches never learns of that change; a relist repairs it.
    pub fn lose_next_event(&self) {
        self.state.lose.store(true, Ordering::SeqCst);
    }

    /// Compact the event log at the current resourceVersion: watches and continue tokens from
    /// older versions get 410 Expired.
    pub fn compact(&self) {
        self.state.cluster.compact();
    }

    /// Stop delivering watch events (writes still succeed and are buffered per watch).
    pub fn pause_events(&self) {
        self.state.paused.send_replace(true);
    }

    /// Resume delivering watch events, in order.
    pub fn resume_events(&self) {
        self.state.paused.send_replace(false);
    }

    /// Simulate an apiserver restart: every open connection is dropped; objects and
    /// resourceVersions are kept, and the listener keeps its port.
    pub fn restart(&self) {
        self.state.restart.send_modify(|g| *g += 1);
    }

    /// Remove all rejections and latency and resume event delivery.
    pub fn reset(&self) {
        self.clear_rejections();
        self.clear_latency();
        self.state.malformed.store(false, Ordering::SeqCst);
        self.state.lose.store(false, Ordering::SeqCst);
        self.resume_events();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Registry, builtin_resources};
    use crate::state::StoreConfig;

    fn faults() -> Faults {
        let reg = Arc::new(Registry::new(builtin_resources()));
        let cfg = StoreConfig { event_log_capacity: 10, broadcast_capacity: 16, snapshot_cache: 2 };
        Faults { state: Arc::new(FaultState::new(Arc::new(ClusterState::new(reg, cfg)))) }
    }

    #[tokio::test]
    async fn reject_next_n_then_pass() {
        let f = faults();
        f.reject_next(Matcher::verb(Verb::List).resource("secrets"), 2, Rejection::status(503));
        assert!(f.state.check(Verb::List, Some("configmaps")).is_none());
        assert!(f.state.check(Verb::Get, Some("secrets")).is_none());
        assert_eq!(f.state.check(Verb::List, Some("secrets")).unwrap().code(), 503);
        assert_eq!(f.state.check(Verb::List, Some("secrets")).unwrap().code(), 503);
        assert!(f.state.check(Verb::List, Some("secrets")).is_none());
    }

    #[tokio::test]
    async fn answer_next_n_then_pass() {
        let f = faults();
        f.answer_next(Matcher::verb(Verb::Get).resource("secrets"), 2, "[1]");
        assert!(f.state.answer(Verb::Get, Some("configmaps")).is_none());
        assert!(f.state.answer(Verb::List, Some("secrets")).is_none());
        assert_eq!(f.state.answer(Verb::Get, Some("secrets")).as_deref(), Some(&b"[1]"[..]));
        assert_eq!(f.state.answer(Verb::Get, Some("secrets")).as_deref(), Some(&b"[1]"[..]));
        assert!(f.state.answer(Verb::Get, Some("secrets")).is_none());
        f.answer_next(Matcher::any(), 1, "{");
        f.clear_rejections();
        assert!(f.state.answer(Verb::Get, Some("secrets")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn reject_for_duration() {
        let f = faults();
        f.reject_for(Matcher::any(), Duration::from_secs(5), Rejection::too_many_requests(1));
        let e = f.state.check(Verb::Watch, Some("pods")).unwrap();
        assert_eq!((e.code(), e.retry_after()), (429, Some(1)));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(f.state.check(Verb::Watch, Some("pods")).is_none());
    }
}
