//! Operations: what an operator runs beside the chat rather than in it. Their HTTP endpoints
//! (`/metrics`, backup, export) are in `routes::ops`.
//!
//! - [`archive`]: the backup archive, written from a running server's store or a stopped data
//!   directory, and restored into an empty one.
//! - [`export`]: a room's history as JSON lines.
//! - [`move_to_postgres`]: a stopped data directory's database, copied into PostgreSQL.
//! - [`cli`]: the `backup`, `restore`, `export` and `move-to-postgres` subcommands.

pub mod archive;
pub mod cli;
pub mod export;
pub mod move_to_postgres;

use crate::store::StoreError;

/// What can go wrong writing or reading a backup or an export.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The input is not what it should be: not a backup, a newer format, a room that isn't.
    #[error("{0}")]
    Invalid(String),
}

impl OpsError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OpsError {
        let context = context.into();
        move |source| OpsError::Io { context, source }
    }
}
