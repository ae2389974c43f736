//! Why a stream record or a reconciliation failed. None of these messages quotes a number
//! or a body: the store and the monitor keep theirs out of their errors.

use std::time::Duration;

use crate::events::EventError;
use crate::monitor::MonitorError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// A stream image that is not the item its `entity` says it is.
    #[error("a stream image does not have its entity's shape")]
    Shape(#[from] serde_dynamo::Error),
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// Only the language push fails a record: lookups that fail leave the conversation to
    /// reconciliation instead.
    #[error("the Collections Monitor did not take the language preference")]
    Monitor(#[from] MonitorError),
    #[error("the event could not be published")]
    Publish(#[from] EventError),
    #[error("the record took longer than {} s", .0.as_secs())]
    TimedOut(Duration),
    /// The scheduled run could not list or link the unlinked conversations.
    #[error("reconciliation failed")]
    Reconcile(#[source] StoreError),
}

impl ProcessorError {
    /// A name for the kind of failure (the Lambda runtime's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Shape(_) => "StreamImageShape",
            Self::Store(_) => "StoreFailed",
            Self::Monitor(_) => "MonitorFailed",
            Self::Publish(_) => "PublishFailed",
            Self::TimedOut(_) => "RecordTimedOut",
            Self::Reconcile(_) => "ReconcileFailed",
        }
    }
}
