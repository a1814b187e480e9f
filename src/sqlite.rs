//! The one file that imports rusqlite: pipe's SQLite databases (each project's run store, the
//! agent's queue) are opened here, and what their code uses of SQLite is named here, so that
//! another SQLite binding would be swapped in this file and the code that speaks SQL.

use std::path::Path;
use std::time::Duration;

pub use rusqlite::{
    params, Connection, Error, OptionalExtension, Result, Row, TransactionBehavior,
};

/// Opens (creating) the database at `path`. A writer waits up to `busy` for another one, in
/// this process or another, instead of failing at once.
pub fn open(path: &Path, busy: Duration) -> Result<Connection> {
    let db = Connection::open(path)?;
    db.busy_timeout(busy)?;
    Ok(db)
}

/// Write-ahead logging: readers (the API, `pipe show`) never wait for a writer, and a writer's
/// commit is one append.
pub fn wal(db: &Connection) -> Result<()> {
    db.pragma_update(None, "journal_mode", "WAL")
}

/// SQLite answered "busy" without waiting (switching to WAL while another process does).
pub fn busy(e: &Error) -> bool {
    matches!(e, Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DatabaseBusy)
}
