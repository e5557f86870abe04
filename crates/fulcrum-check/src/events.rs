//! Jepsen-style event streams: separate invocation and completion events,
//! paired per client.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::HistoryError;
use crate::history::{ClientId, History, Key, Op, OpId, Outcome, Time};

/// What an [`Event`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The client sent a request.
    Invoke,
    /// The request was acknowledged.
    Ok,
    /// The request definitely did not take effect.
    Fail,
    /// The outcome is unknown; the client gave up.
    Info,
}

/// One half of an operation. A completion pairs with its client's pending
/// invocation; a client has at most one operation pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Invocation or which kind of completion.
    pub kind: EventKind,
    /// The client.
    pub client: ClientId,
    /// The key.
    pub key: Key,
    /// The request; on a read's completion, what it observed.
    pub op: Op,
    /// When it happened.
    pub time: Time,
    /// Store-reported version, on completions (see [`crate::Operation::version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl History {
    /// Pair an event stream (in the order it was recorded) into a history.
    /// Invocations still pending at the end become `Info` operations that
    /// never returned.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Result<History, HistoryError> {
        let mut history = History::new();
        let mut pending: HashMap<ClientId, OpId> = HashMap::new();
        for event in events {
            let outcome = match event.kind {
                EventKind::Invoke => {
                    if let Some(&id) = pending.get(&event.client) {
                        return Err(HistoryError::ClientBusy {
                            client: event.client,
                            pending: id,
                            time: event.time,
                        });
                    }
                    let id = history.invoke(event.client, event.key, event.op, event.time);
                    pending.insert(event.client, id);
                    continue;
                }
                EventKind::Ok => Outcome::Ok,
                EventKind::Fail => Outcome::Fail,
                EventKind::Info => Outcome::Info,
            };
            let id = pending
                .remove(&event.client)
                .ok_or(HistoryError::UnpairedCompletion {
                    client: event.client,
                    time: event.time,
                })?;
            // `invoke` numbers operations 0, 1, 2, … so the id is the index.
            let invoked_key = history
                .ops()
                .get(id as usize)
                .map(|op| op.key.clone())
                .ok_or(HistoryError::UnknownOperation { id })?;
            if invoked_key != event.key {
                return Err(HistoryError::KeyMismatch {
                    id,
                    invoked: invoked_key,
                    completed: event.key,
                });
            }
            history.complete_with(id, event.time, outcome, event.op, event.version)?;
        }
        Ok(history)
    }
}
