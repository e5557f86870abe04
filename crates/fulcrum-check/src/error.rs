//! Errors for malformed histories.

use crate::history::{ClientId, Op, OpId, Outcome, Time};

/// A history that cannot be checked because it does not describe a possible
/// execution, or a recording call that does not fit the history so far.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// An operation completes before it was invoked.
    #[error("operation {id} completes at {complete}, before its invocation at {invoke}")]
    CompletionBeforeInvocation {
        /// The operation.
        id: OpId,
        /// Its invocation time.
        invoke: Time,
        /// Its (earlier) completion time.
        complete: Time,
    },
    /// An `Ok` or `Fail` operation without a completion time.
    #[error("operation {id} has outcome {outcome:?} but no completion time")]
    MissingCompletion {
        /// The operation.
        id: OpId,
        /// Its outcome.
        outcome: Outcome,
    },
    /// Operation ids are not strictly increasing.
    #[error("operation ids must be unique and increasing: {id} follows {previous}")]
    UnorderedIds {
        /// The id before.
        previous: OpId,
        /// The id that is not greater.
        id: OpId,
    },
    /// A completion for an id the history does not have.
    #[error("no operation with id {id}")]
    UnknownOperation {
        /// The id asked for.
        id: OpId,
    },
    /// A second completion for the same operation.
    #[error("operation {id} has already completed")]
    AlreadyCompleted {
        /// The operation.
        id: OpId,
    },
    /// A completion that reports a different request than was invoked.
    #[error("operation {id} was invoked as {invoked} but completed as {completed}")]
    CompletionMismatch {
        /// The operation.
        id: OpId,
        /// The request as invoked.
        invoked: Op,
        /// The request as completed.
        completed: Op,
    },
    /// An event stream in which a client invokes while it has an operation
    /// pending.
    #[error(
        "client {client} invoked a new operation at {time} while operation {pending} is pending"
    )]
    ClientBusy {
        /// The client.
        client: ClientId,
        /// Its pending operation.
        pending: OpId,
        /// When it invoked the new one.
        time: Time,
    },
    /// An event stream in which a client completes an operation it never
    /// invoked.
    #[error("client {client} completed an operation at {time} but had none pending")]
    UnpairedCompletion {
        /// The client.
        client: ClientId,
        /// When the completion happened.
        time: Time,
    },
    /// A completion event for a different key than the pending invocation.
    #[error("operation {id} was invoked on key {invoked:?} but completed on key {completed:?}")]
    KeyMismatch {
        /// The operation.
        id: OpId,
        /// The key at invocation.
        invoked: String,
        /// The key at completion.
        completed: String,
    },
    /// A saved history in a format this build does not read.
    #[error("unsupported history format {0}; this build reads format {v}", v = crate::history::FORMAT_VERSION)]
    UnsupportedFormat(u32),
    /// The JSON text could not be parsed or produced.
    #[error("history JSON: {0}")]
    Json(#[from] serde_json::Error),
}
