//! Why storage failed, by kind, so callers choose on the kind and never on message text.

/// Every kind reads "storage failed: …" in the logs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The disk is full. RocksDB then refuses every write until the database is reopened,
    /// which the store does once there is room again.
    #[error("storage failed: {0}")]
    OutOfSpace(String),
    /// The committer's queue is full: a message is refused rather than left waiting.
    #[error("storage failed: the server is too busy to store messages")]
    Busy,
    /// The committer thread is gone, so nothing more is stored.
    #[error("storage failed: the committer stopped")]
    CommitterStopped,
    /// The room is archived: read-only, so nobody's message is stored in it.
    #[error("the room is archived: read-only")]
    Archived,
    /// Anything else, with its detail for the logs.
    #[error("storage failed: {0}")]
    Database(String),
}

impl From<polodb_core::Error> for StoreError {
    /// The one place that reads a database error's text: RocksDB tells a full disk by its
    /// message only.
    fn from(e: polodb_core::Error) -> Self {
        let detail = e.to_string();
        if detail.contains("No space left on device") {
            StoreError::OutOfSpace(detail)
        } else {
            StoreError::Database(detail)
        }
    }
}
