//! Where a watch starts: the current state as synthetic ADDED events, or a replay of the
//! event log after the requested resourceVersion; then live events from the broadcast.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{ClusterState, Event, ObjMap, parse_rv};
use crate::status::ApiError;

/// How a watch begins.
pub(crate) struct WatchStart {
    /// Current state to send as synthetic ADDED events, if requested.
    pub(crate) initial: Option<ObjMap>,
    /// Logged events after the requested RV, to replay.
    pub(crate) replay: Vec<Arc<Event>>,
    /// Live events; events with rv <= `start_rv` must be skipped.
    pub(crate) rx: broadcast::Receiver<Arc<Event>>,
    /// The RV the watch is positioned at once `initial`/`replay` are sent.
    pub(crate) start_rv: u64,
}

impl ClusterState {
    /// Position a new watch. `rv`: None/"" or "0" means "send current state first".
    pub(crate) fn watch(
        &self,
        resource: usize,
        rv: Option<&str>,
        send_initial_events: Option<bool>,
    ) -> Result<WatchStart, ApiError> {
        let st = self.state.lock();
        let rx = self.tx.subscribe();
        let rv = rv.filter(|s| !s.is_empty());
        let from = match rv {
            None | Some("0") => None,
            Some(s) => Some(parse_rv(s)?),
        };
        let want_initial = send_initial_events.unwrap_or(from.is_none());
        if want_initial {
            return Ok(WatchStart {
                initial: Some(st.objects[resource].clone()),
                replay: Vec::new(),
                rx,
                start_rv: st.rv,
            });
        }
        let from = from.unwrap_or(st.rv);
        if from < st.compacted_rv {
            return Err(ApiError::Expired {
                message: format!("too old resource version: {from} ({})", st.compacted_rv),
            });
        }
        let replay = st.log.iter().filter(|e| e.rv > from && e.resource == resource).cloned().collect();
        Ok(WatchStart { initial: None, replay, rx, start_rv: st.rv.max(from) })
    }
}
