//! The agent's queue, in its own SQLite file (`agent.db` in the data folder) rather than in a
//! repository's run store: a queued run has no run id yet (the engine gives one when it reads
//! the pipeline from the commit), and one queue serves every repository under one limit of runs
//! at once. Also remembered here: the webhook deliveries already seen, and each polled branch's
//! last head. A trigger is answered only once its row is committed, so a restart loses nothing.

use std::path::Path;
use std::sync::Mutex;

use crate::sqlite::{self as sql, params, Connection, OptionalExtension};
use chrono::Utc;

#[derive(Debug, thiserror::Error)]
#[error("the agent's queue (agent.db) failed: {0}")]
pub struct QueueError(#[from] sql::Error);

/// Where a queued run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Queued,
    Started,
    Done,
    /// Cancelled while it was queued: it never started, and never will.
    Cancelled,
    /// It was started by an agent that stopped before the run ended: the run itself shows as
    /// interrupted in its repository's store, and can be retried.
    Interrupted,
}

impl ItemState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ItemState::Queued => "queued",
            ItemState::Started => "started",
            ItemState::Done => "done",
            ItemState::Cancelled => "cancelled",
            ItemState::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> ItemState {
        match s {
            "queued" => ItemState::Queued,
            "started" => ItemState::Started,
            "done" => ItemState::Done,
            "cancelled" => ItemState::Cancelled,
            _ => ItemState::Interrupted,
        }
    }
}

/// A run asked for: of a commit of a repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    pub id: i64,
    pub repo: String,
    pub commit: String,
    pub branch: Option<String>,
    /// `poll`, `github`, `gitlab`, `api`.
    pub trigger: String,
    pub actor: String,
    pub state: ItemState,
    /// The repository's run, once started.
    pub run_id: Option<i64>,
    pub queued_at: String,
}

pub struct Queue(Mutex<Connection>);

impl Queue {
    pub fn open(dir: &Path) -> Result<Queue, QueueError> {
        let db = sql::open(&dir.join("agent.db"), std::time::Duration::from_secs(5))?;
        sql::wal(&db)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS queue (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, repo TEXT NOT NULL, commit_sha TEXT NOT NULL,
                 branch TEXT, trigger_name TEXT NOT NULL, actor TEXT NOT NULL, state TEXT NOT NULL,
                 run_id INTEGER, queued_at TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS queue_state ON queue (state, id);
             CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS heads (
                 repo TEXT NOT NULL, branch TEXT NOT NULL, commit_sha TEXT NOT NULL,
                 PRIMARY KEY (repo, branch));",
        )?;
        Ok(Queue(Mutex::new(db)))
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent: its transaction rolled back.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(
        &self,
        repo: &str,
        commit: &str,
        branch: Option<&str>,
        trigger: &str,
        actor: &str,
    ) -> Result<Item, QueueError> {
        let db = self.db();
        let at = Utc::now().to_rfc3339();
        db.execute(
            "INSERT INTO queue (repo, commit_sha, branch, trigger_name, actor, state, queued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
            params![repo, commit, branch, trigger, actor, at],
        )?;
        let id = db.last_insert_rowid();
        drop(db);
        Ok(self.item(id)?.expect("the row just inserted"))
    }

    /// Queues the run of a polled branch's head unless that head was queued before, in one
    /// transaction: a restart between the two can neither lose nor repeat it.
    pub fn push_new_head(
        &self,
        repo: &str,
        branch: &str,
        commit: &str,
    ) -> Result<Option<Item>, QueueError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let seen: Option<String> = tx
            .query_row(
                "SELECT commit_sha FROM heads WHERE repo = ?1 AND branch = ?2",
                params![repo, branch],
                |r| r.get(0),
            )
            .optional()?;
        if seen.as_deref() == Some(commit) {
            return Ok(None);
        }
        tx.execute(
            "INSERT OR REPLACE INTO heads (repo, branch, commit_sha) VALUES (?1, ?2, ?3)",
            params![repo, branch, commit],
        )?;
        tx.execute(
            "INSERT INTO queue (repo, commit_sha, branch, trigger_name, actor, state, queued_at)
             VALUES (?1, ?2, ?3, 'poll', 'agent', 'queued', ?4)",
            params![repo, commit, branch, Utc::now().to_rfc3339()],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        drop(db);
        self.item(id)
    }

    /// Queues the run a webhook delivery asks for, unless delivery `id` was seen before (then
    /// `None`), in one transaction: a delivery is either queued and remembered, or neither.
    pub fn push_delivery(
        &self,
        delivery: Option<&str>,
        repo: &str,
        commit: &str,
        branch: &str,
        trigger: &str,
    ) -> Result<Option<Item>, QueueError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let at = Utc::now().to_rfc3339();
        if let Some(delivery) = delivery {
            let added = tx.execute(
                "INSERT OR IGNORE INTO deliveries (id, at) VALUES (?1, ?2)",
                params![format!("{trigger}:{delivery}"), at],
            )?;
            if added == 0 {
                return Ok(None);
            }
        }
        tx.execute(
            "INSERT INTO queue (repo, commit_sha, branch, trigger_name, actor, state, queued_at)
             VALUES (?1, ?2, ?3, ?4, ?4, 'queued', ?5)",
            params![repo, commit, branch, trigger, at],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        drop(db);
        self.item(id)
    }

    pub fn item(&self, id: i64) -> Result<Option<Item>, QueueError> {
        Ok(self
            .db()
            .query_row(&format!("{SELECT} WHERE id = ?1"), [id], row)
            .optional()?)
    }

    /// The queued runs, oldest first.
    pub fn queued(&self) -> Result<Vec<Item>, QueueError> {
        let db = self.db();
        let mut q = db.prepare(&format!("{SELECT} WHERE state = 'queued' ORDER BY id"))?;
        let items = q.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(items)
    }

    pub fn depth(&self) -> Result<i64, QueueError> {
        Ok(self.db().query_row(
            "SELECT count(*) FROM queue WHERE state = 'queued'",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn set_state(&self, id: i64, state: ItemState) -> Result<(), QueueError> {
        self.db().execute(
            "UPDATE queue SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    }

    /// Moves queued item `id` to `to` (started, or cancelled), in one statement: of a start
    /// and a cancel of the same item only one happens. False when it was no longer queued.
    pub fn leave_queue(&self, id: i64, to: ItemState) -> Result<bool, QueueError> {
        let changed = self.db().execute(
            "UPDATE queue SET state = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id, to.as_str()],
        )?;
        Ok(changed == 1)
    }

    pub fn set_run(&self, id: i64, run: i64) -> Result<(), QueueError> {
        self.db().execute(
            "UPDATE queue SET run_id = ?2 WHERE id = ?1",
            params![id, run],
        )?;
        Ok(())
    }

    /// What an agent that stopped without finishing had started: marked interrupted (their
    /// runs' stores say the same once their process is gone) and returned.
    pub fn interrupt_started(&self) -> Result<Vec<Item>, QueueError> {
        let db = self.db();
        let mut q = db.prepare(&format!("{SELECT} WHERE state = 'started' ORDER BY id"))?;
        let items = q.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        db.execute(
            "UPDATE queue SET state = 'interrupted' WHERE state = 'started'",
            [],
        )?;
        Ok(items)
    }
}

const SELECT: &str =
    "SELECT id, repo, commit_sha, branch, trigger_name, actor, state, run_id, queued_at FROM queue";

fn row(r: &sql::Row) -> sql::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        repo: r.get(1)?,
        commit: r.get(2)?,
        branch: r.get(3)?,
        trigger: r.get(4)?,
        actor: r.get(5)?,
        state: ItemState::parse(&r.get::<_, String>(6)?),
        run_id: r.get(7)?,
        queued_at: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_queue_keeps_its_runs_and_knows_what_was_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let a = q.push("web", "abc", Some("main"), "api", "alice").unwrap();
        let b = q.push("web", "def", None, "api", "alice").unwrap();
        q.set_state(a.id, ItemState::Started).unwrap();
        drop(q);
        let q = Queue::open(dir.path()).unwrap();
        let interrupted = q.interrupt_started().unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].id, a.id);
        let queued = q.queued().unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].id, b.id);
        assert_eq!(q.item(a.id).unwrap().unwrap().state, ItemState::Interrupted);
    }

    #[test]
    fn a_queued_run_leaves_the_queue_once_started_or_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let a = q.push("web", "abc", None, "api", "alice").unwrap();
        assert!(q.leave_queue(a.id, ItemState::Cancelled).unwrap());
        assert!(!q.leave_queue(a.id, ItemState::Started).unwrap());
        assert_eq!(q.item(a.id).unwrap().unwrap().state, ItemState::Cancelled);
        assert!(q.queued().unwrap().is_empty());
    }

    #[test]
    fn a_head_and_a_delivery_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        assert!(q.push_new_head("web", "main", "abc").unwrap().is_some());
        assert!(q.push_new_head("web", "main", "abc").unwrap().is_none());
        assert!(q.push_new_head("web", "main", "def").unwrap().is_some());
        let first = q.push_delivery(Some("d-1"), "web", "abc", "main", "github");
        assert!(first.unwrap().is_some());
        let again = q.push_delivery(Some("d-1"), "web", "abc", "main", "github");
        assert!(again.unwrap().is_none());
        assert_eq!(q.depth().unwrap(), 3);
    }
}
