//! The embedded store: SQLite in WAL mode, every change in a transaction, so a `kill -9` at any
//! moment leaves the last committed state, and two pipe processes can share a project (writers
//! wait for each other instead of failing).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sqlite::{self as sql, params, Connection, OptionalExtension, TransactionBehavior};
use chrono::{DateTime, Utc};

use super::*;
use crate::owner::Owner;
use crate::workspace::private;
use std::fs::OpenOptions;

// SQLite's errors stay in this file: the store's error type names no database.
impl From<sql::Error> for StoreError {
    fn from(e: sql::Error) -> Self {
        StoreError::Db(Box::new(e))
    }
}

fn open_failed(e: sql::Error) -> StoreError {
    StoreError::Open(Box::new(e))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_name TEXT NOT NULL,
    pipeline_file TEXT NOT NULL,
    pipeline_sha256 TEXT NOT NULL,
    commit_sha TEXT,
    branch TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    changed_paths INTEGER,
    trigger TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    owner_pid INTEGER,
    owner_start TEXT,
    releases INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    phase TEXT NOT NULL,
    environment TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    duration_ms INTEGER,
    note TEXT,
    log TEXT NOT NULL DEFAULT '',
    artifacts TEXT NOT NULL DEFAULT '[]',
    findings TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, name)
);
-- What each run deployed to, read for every run listed: only the rows that say it are indexed.
CREATE INDEX IF NOT EXISTS jobs_deployed ON jobs (run_id, environment)
    WHERE environment IS NOT NULL AND status = 'passed';
CREATE TABLE IF NOT EXISTS approvals (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    approver TEXT NOT NULL COLLATE NOCASE,
    comment TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, approver)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS release_steps (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    name TEXT,
    percent INTEGER NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

const DB_FILE: &str = "pipe.db";

pub struct SqliteStore {
    db: Connection,
    project: PathBuf,
}

fn now() -> String {
    time(Utc::now())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

impl SqliteStore {
    /// Whether the project at `project` has recorded anything yet.
    pub fn exists(project: &Path) -> bool {
        project
            .join(crate::workspace::STATE_DIR)
            .join(DB_FILE)
            .is_file()
    }

    /// Opens (creating if needed) the store of the project at `project`.
    pub fn open(project: &Path) -> Result<SqliteStore, StoreError> {
        let dir = crate::workspace::state_dir(project)?;
        let path = dir.join(DB_FILE);
        // SQLite makes a new database 0644 and gives its -wal and -shm the database's mode:
        // the file is made (or tightened) here first, so all three are the user's alone.
        private::open(
            &path,
            OpenOptions::new().read(true).write(true).create(true),
        )?;
        for journal in ["-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(journal);
            private::file_if_exists(Path::new(&name))?;
        }
        let mut db = sql::open(&path, Duration::from_secs(30)).map_err(open_failed)?;
        // Several pipe processes may set up a new store at once. Some of SQLite's answers to
        // that (switching to WAL while another process does) are "busy" at once, without the
        // busy handler: the whole setup, which can be repeated, is tried again for a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Self::set_up(&mut db) {
                Err(e) if sql::busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                done => break done.map_err(open_failed)?,
            }
        }
        let mut store = SqliteStore {
            db,
            project: project.to_path_buf(),
        };
        store.reap()?;
        Ok(store)
    }

    /// WAL, the schema, and the upgrade of older stores, in one transaction so that two
    /// processes never both add a column.
    fn set_up(db: &mut Connection) -> sql::Result<()> {
        sql::wal(db)?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        // Stores made before jobs recorded when they finished.
        let has_finished_at: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = 'finished_at'",
            [],
            |r| r.get(0),
        )?;
        if !has_finished_at {
            tx.execute("ALTER TABLE jobs ADD COLUMN finished_at TEXT", [])?;
        }
        // Stores made before runs recorded their uncommitted changes: their runs get NULL,
        // "not counted", which no gate takes for clean.
        let has_changed_paths: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('runs') WHERE name = 'changed_paths'",
            [],
            |r| r.get(0),
        )?;
        if !has_changed_paths {
            tx.execute("ALTER TABLE runs ADD COLUMN changed_paths INTEGER", [])?;
        }
        // Stores made before jobs recorded the image they built, their drift, and the claim of
        // a fleet's queue whose outputs are the run's.
        for (column, kind) in [
            ("image", "TEXT"),
            ("drift", "TEXT"),
            ("epoch", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            let has: bool = tx.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
                [column],
                |r| r.get(0),
            )?;
            if !has {
                tx.execute(&format!("ALTER TABLE jobs ADD COLUMN {column} {kind}"), [])?;
            }
        }
        tx.commit()
    }

    /// Runs whose owning process is gone are interrupted, never running forever.
    fn reap(&mut self) -> Result<(), StoreError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let orphans: Vec<(RunId, String)> = {
            let mut q = tx.prepare("SELECT id, state, owner_pid, owner_start FROM runs WHERE state IN ('running', 'releasing')")?;
            let rows = q.query_map([], |r| {
                Ok((
                    r.get::<_, RunId>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<u32>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, state, pid, start) = row?;
                let alive = pid.is_some_and(|pid| {
                    Owner {
                        pid,
                        start: start.unwrap_or_default(),
                    }
                    .is_alive()
                });
                if !alive {
                    out.push((id, state));
                }
            }
            out
        };
        for (id, state) in orphans {
            // A release that died leaves the run as it was before: awaiting release, so it can
            // be tried again; its jobs that were cut off say so.
            let new_state = if state == "releasing" {
                RunState::AwaitingRelease
            } else {
                RunState::Interrupted
            };
            tx.execute(
                "UPDATE runs SET state = ?1, ended_at = COALESCE(ended_at, ?2) WHERE id = ?3",
                params![new_state.as_str(), now(), id],
            )?;
            // A job that had not started was not interrupted: it never ran.
            tx.execute("UPDATE jobs SET status = CASE status WHEN 'running' THEN 'interrupted' ELSE 'not_started' END
                        WHERE run_id = ?1 AND status IN ('running', 'pending', 'waiting')", params![id])?;
            tx.execute(
                "INSERT INTO audit (run_id, at, actor, action, detail) VALUES (?1, ?2, 'pipe', 'interrupted', ?3)",
                params![id, now(), format!("the pipe process working on the run ({state}) is gone")],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn run_row(r: &sql::Row) -> sql::Result<RunRecord> {
        let tags: String = r.get(6)?;
        let envs: Option<String> = r.get(13)?;
        Ok(RunRecord {
            id: r.get(0)?,
            pipeline_name: r.get(1)?,
            pipeline_file: r.get(2)?,
            pipeline_sha256: r.get(3)?,
            commit: r.get(4)?,
            branch: r.get(5)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            changed_paths: r.get(7)?,
            trigger: r.get(8)?,
            state: RunState::parse(&r.get::<_, String>(9)?),
            started_at: parse_time(&r.get::<_, String>(10)?),
            ended_at: r.get::<_, Option<String>>(11)?.map(|t| parse_time(&t)),
            releases: r.get(12)?,
            environments: envs
                .map(|e| e.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        })
    }
}

/// In [`SqliteStore::run_row`]'s order: read by position, as looking 14 names up in each of
/// 10,000 rows took a fifth of listing them.
const RUN_COLUMNS: &str = "runs.id, pipeline_name, pipeline_file, pipeline_sha256, commit_sha,
    branch, tags, changed_paths, trigger, state, started_at, ended_at, releases,
    (SELECT group_concat(DISTINCT environment) FROM jobs
    WHERE jobs.run_id = runs.id AND environment IS NOT NULL AND status = 'passed') AS environments";

impl Store for SqliteStore {
    fn create_run(
        &mut self,
        run: &NewRun,
        jobs: &[(String, String, Phase, Option<String>)],
    ) -> Result<RunId, StoreError> {
        let Owner { pid, start } = Owner::me();
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Past every number the store ever gave and every run directory on disk: a store that
        // was lost or emptied must not hand out a number whose logs are still there. Read while
        // holding the write lock, so two processes never pick one number.
        let given: RunId = tx.query_row(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0), COALESCE((SELECT MAX(id) FROM runs), 0))",
            [],
            |r| r.get(0),
        )?;
        let on_disk = crate::workspace::highest_run(&self.project).map_err(StoreError::RunDirs)?;
        let id = given.max(on_disk) + 1;
        tx.execute(
            "INSERT INTO runs (id, pipeline_name, pipeline_file, pipeline_sha256, commit_sha, branch, tags, trigger, state, started_at, owner_pid, owner_start, changed_paths)
             VALUES (?11, ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10, ?12)",
            params![
                run.pipeline_name,
                run.pipeline_file,
                run.pipeline_sha256,
                run.commit,
                run.branch,
                serde_json::to_string(&run.tags).unwrap_or_default(),
                run.trigger,
                now(),
                pid,
                start,
                id,
                run.changed_paths
            ],
        )?;
        for (position, (name, stage, phase, environment)) in jobs.iter().enumerate() {
            let phase = if *phase == Phase::Main {
                "main"
            } else {
                "release"
            };
            tx.execute(
                "INSERT INTO jobs (run_id, position, name, stage, phase, environment, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
                params![id, position as i64, name, stage, phase, environment],
            )?;
        }
        tx.execute(
            "INSERT INTO audit (run_id, at, actor, action, detail) VALUES (?1, ?2, ?3, 'started', ?4)",
            params![id, now(), run.actor, format!("{} of {}", run.trigger, run.pipeline_file)],
        )?;
        tx.commit()?;
        Ok(id)
    }

    fn claim_run(&mut self, id: RunId, from: RunState, to: RunState) -> Result<(), StoreError> {
        let Owner { pid, start } = Owner::me();
        let n = self.db.execute(
            "UPDATE runs SET state = ?1, owner_pid = ?2, owner_start = ?3, ended_at = NULL WHERE id = ?4 AND state = ?5",
            params![to.as_str(), pid, start, id, from.as_str()],
        )?;
        if n == 0 {
            let now = self.run(id)?.state;
            return Err(StoreError::TakenOver { id, now });
        }
        Ok(())
    }

    fn set_state(&mut self, id: RunId, state: RunState, ended: bool) -> Result<(), StoreError> {
        let released = i64::from(state == RunState::Released);
        self.db.execute(
            "UPDATE runs SET state = ?1, ended_at = CASE WHEN ?2 THEN ?3 ELSE ended_at END, releases = releases + ?4 WHERE id = ?5",
            params![state.as_str(), ended, now(), released, id],
        )?;
        Ok(())
    }

    fn job_started(
        &mut self,
        id: RunId,
        job: &str,
        attempt: u32,
        log: &str,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE jobs SET status = 'running', attempts = ?1, log = ?2, note = NULL WHERE run_id = ?3 AND name = ?4",
            params![attempt, log, id, job],
        )?;
        Ok(())
    }

    fn job_finished(&mut self, id: RunId, job: &JobRecord) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE jobs SET status = ?1, attempts = MAX(attempts, ?2), exit_code = ?3, duration_ms = ?4, note = ?5, artifacts = ?6,
             findings = ?9, finished_at = ?10, epoch = ?11 WHERE run_id = ?7 AND name = ?8",
            params![
                job.status,
                job.attempts,
                job.exit_code,
                job.duration_ms.map(|d| d as i64),
                job.note,
                serde_json::to_string(&job.artifacts).unwrap_or_default(),
                id,
                job.name,
                job.findings.map(|f| serde_json::to_string(&f).unwrap_or_default()),
                now(),
                job.epoch
            ],
        )?;
        Ok(())
    }

    fn job_built(
        &mut self,
        id: RunId,
        job: &str,
        image: &crate::image::BuiltImage,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE jobs SET image = ?1 WHERE run_id = ?2 AND name = ?3",
            params![serde_json::to_string(image).unwrap_or_default(), id, job],
        )?;
        Ok(())
    }

    fn job_drift(
        &mut self,
        id: RunId,
        job: &str,
        drift: &crate::drift::Drift,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE jobs SET drift = ?1 WHERE run_id = ?2 AND name = ?3",
            params![serde_json::to_string(drift).unwrap_or_default(), id, job],
        )?;
        Ok(())
    }

    fn reset_jobs(&mut self, id: RunId, jobs: &[String]) -> Result<(), StoreError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in jobs {
            tx.execute(
                "UPDATE jobs SET status = 'pending', exit_code = NULL, duration_ms = NULL, note = NULL, image = NULL, drift = NULL WHERE run_id = ?1 AND name = ?2",
                params![id, job],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn resolve(&mut self, run: &str) -> Result<RunId, StoreError> {
        let id: Option<RunId> = if run == "last" {
            self.db
                .query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0))?
        } else {
            let n: Option<RunId> = run.trim_start_matches('#').parse().ok();
            match n {
                Some(n) => self
                    .db
                    .query_row("SELECT id FROM runs WHERE id = ?1", [n], |r| r.get(0))
                    .optional()?,
                None => None,
            }
        };
        id.ok_or_else(|| StoreError::NoSuchRun(run.to_string()))
    }

    fn run(&mut self, id: RunId) -> Result<RunRecord, StoreError> {
        self.db
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                Self::run_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))
    }

    fn runs(
        &mut self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        // Without an environment, newest first by id: no per-run look into the jobs to sort by,
        // which for 10,000 runs cost more than the rest of the listing.
        if environment.is_none() {
            let mut q = self.db.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = q.query_map([limit as i64], Self::run_row)?;
            return Ok(rows.collect::<Result<_, _>>()?);
        }
        let mut q = self.db.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR EXISTS (SELECT 1 FROM jobs WHERE jobs.run_id = runs.id
             AND jobs.environment = ?1 AND jobs.status = 'passed')
             -- For an environment, the run deployed there last comes first: after a rollback
             -- (`pipe release N --again`) that is the older run, and it is what is live.
             ORDER BY (SELECT MAX(finished_at) FROM jobs WHERE jobs.run_id = runs.id
                 AND jobs.environment = ?1 AND jobs.status = 'passed') DESC, id DESC LIMIT ?2"
        ))?;
        let rows = q.query_map(params![environment, limit as i64], Self::run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn jobs(&mut self, id: RunId) -> Result<Vec<JobRecord>, StoreError> {
        let mut q = self
            .db
            .prepare("SELECT * FROM jobs WHERE run_id = ?1 ORDER BY position")?;
        let rows = q.query_map([id], |r| {
            let artifacts: String = r.get("artifacts")?;
            Ok(JobRecord {
                name: r.get("name")?,
                stage: r.get("stage")?,
                phase: if r.get::<_, String>("phase")? == "release" {
                    Phase::Release
                } else {
                    Phase::Main
                },
                environment: r.get("environment")?,
                status: r.get("status")?,
                attempts: r.get("attempts")?,
                exit_code: r.get("exit_code")?,
                duration_ms: r.get::<_, Option<i64>>("duration_ms")?.map(|d| d as u64),
                note: r.get("note")?,
                log: r.get("log")?,
                artifacts: serde_json::from_str(&artifacts).unwrap_or_default(),
                findings: r
                    .get::<_, Option<String>>("findings")?
                    .and_then(|f| serde_json::from_str(&f).ok()),
                image: r
                    .get::<_, Option<String>>("image")?
                    .and_then(|i| serde_json::from_str(&i).ok()),
                drift: r
                    .get::<_, Option<String>>("drift")?
                    .and_then(|d| serde_json::from_str(&d).ok()),
                epoch: r.get("epoch")?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn approve(
        &mut self,
        id: RunId,
        by: &str,
        comment: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO approvals (run_id, approver, comment, at) VALUES (?1, ?2, ?3, ?4)",
            params![id, by, comment, time(at)],
        )?;
        let detail = match (n, comment) {
            (0, _) => "approved again (already counted)".to_string(),
            (_, Some(c)) => format!("approved: {c}"),
            (_, None) => "approved".to_string(),
        };
        tx.execute("INSERT INTO audit (run_id, at, actor, action, detail) VALUES (?1, ?2, ?3, 'approve', ?4)", params![id, time(at), by, detail])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn approvals(&mut self, id: RunId) -> Result<Vec<Approval>, StoreError> {
        let mut q = self
            .db
            .prepare("SELECT approver, comment, at FROM approvals WHERE run_id = ?1 ORDER BY at")?;
        let rows = q.query_map([id], |r| {
            Ok(Approval {
                by: r.get(0)?,
                comment: r.get(1)?,
                at: parse_time(&r.get::<_, String>(2)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit(
        &mut self,
        id: RunId,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO audit (run_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, now(), actor, action, detail],
        )?;
        Ok(())
    }

    fn audit_trail(&mut self, id: RunId) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = self
            .db
            .prepare("SELECT at, actor, action, detail FROM audit WHERE run_id = ?1 ORDER BY id")?;
        let rows = q.query_map([id], |r| {
            Ok(AuditEntry {
                at: parse_time(&r.get::<_, String>(0)?),
                actor: r.get(1)?,
                action: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn record_step(&mut self, id: RunId, step: &StepRecord) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT OR REPLACE INTO release_steps (run_id, step, name, percent, status, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, step.step, step.name, step.percent, step.status.as_str(), step.detail, time(step.at)],
        )?;
        Ok(())
    }

    fn clear_steps(&mut self, id: RunId) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM release_steps WHERE run_id = ?1", [id])?;
        Ok(())
    }

    fn steps(&mut self, id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        let mut q = self.db.prepare(
            "SELECT step, name, percent, status, detail, at FROM release_steps WHERE run_id = ?1 ORDER BY step",
        )?;
        let rows = q.query_map([id], |r| {
            let status: String = r.get(3)?;
            Ok(StepRecord {
                step: r.get(0)?,
                name: r.get(1)?,
                percent: r.get(2)?,
                // A status this pipe does not know (a newer pipe's) blocks like a failure would.
                status: StepStatus::parse(&status).unwrap_or(StepStatus::VerifyFailed),
                detail: r.get(4)?,
                at: parse_time(&r.get::<_, String>(5)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_contract_holds_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let open = || -> Box<dyn Store> { Box::new(SqliteStore::open(dir.path()).unwrap()) };
        super::super::contract::holds(&open);
    }

    fn new_run() -> NewRun {
        NewRun {
            pipeline_name: "p".into(),
            pipeline_file: "pipe.yml".into(),
            pipeline_sha256: "00".into(),
            commit: None,
            branch: Some("main".into()),
            tags: vec![],
            changed_paths: Some(2),
            trigger: "run".into(),
            actor: "tester".into(),
        }
    }

    #[test]
    fn runs_get_short_increasing_ids_and_jobs_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let jobs = vec![
            ("b".to_string(), "build".to_string(), Phase::Main, None),
            (
                "a".into(),
                "deploy".into(),
                Phase::Main,
                Some("prod".into()),
            ),
        ];
        assert_eq!(s.create_run(&new_run(), &jobs).unwrap(), 1);
        assert_eq!(s.create_run(&new_run(), &jobs).unwrap(), 2);
        assert_eq!(s.resolve("last").unwrap(), 2);
        assert!(s.resolve("9").is_err());
        let names: Vec<String> = s.jobs(1).unwrap().into_iter().map(|j| j.name).collect();
        assert_eq!(names, ["b", "a"]);
    }

    fn one_job_run(s: &mut SqliteStore) -> RunId {
        s.create_run(
            &new_run(),
            &[("j".into(), "build".into(), Phase::Main, None)],
        )
        .unwrap()
    }

    #[test]
    fn a_lost_store_numbers_runs_past_the_run_directories_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".pipe/runs/7")).unwrap();
        std::fs::create_dir_all(dir.path().join(".pipe/runs/not-a-run")).unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(one_job_run(&mut s), 8);
        assert_eq!(one_job_run(&mut s), 9, "and past its own numbers");
        std::fs::create_dir_all(dir.path().join(".pipe/runs/20")).unwrap();
        assert_eq!(one_job_run(&mut s), 21);
    }

    #[test]
    fn a_run_whose_process_died_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let id = s
            .create_run(
                &new_run(),
                &[
                    ("j".into(), "build".into(), Phase::Main, None),
                    ("later".into(), "test".into(), Phase::Main, None),
                ],
            )
            .unwrap();
        s.job_started(id, "j", 1, "j.log").unwrap();
        // A pid that cannot be running.
        s.db.execute("UPDATE runs SET owner_pid = 4194999 WHERE id = ?1", [id])
            .unwrap();
        drop(s);
        let mut s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.run(id).unwrap().state, RunState::Interrupted);
        let status: Vec<String> = s.jobs(id).unwrap().into_iter().map(|j| j.status).collect();
        assert_eq!(status, ["interrupted", "not_started"]);
        assert_eq!(
            s.audit_trail(id).unwrap().last().unwrap().action,
            "interrupted"
        );
    }

    #[test]
    fn a_store_from_before_finish_times_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(crate::workspace::STATE_DIR);
        std::fs::create_dir_all(&state).unwrap();
        Connection::open(state.join(DB_FILE))
            .unwrap()
            .execute_batch(&SCHEMA.replace("    finished_at TEXT,\n", ""))
            .unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let id = one_job_run(&mut s);
        let mut job = s.jobs(id).unwrap().remove(0);
        job.status = "passed".into();
        s.job_finished(id, &job).unwrap();
        assert_eq!(s.jobs(id).unwrap()[0].status, "passed");
    }

    #[test]
    fn a_store_from_before_uncommitted_changes_were_counted_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(crate::workspace::STATE_DIR);
        std::fs::create_dir_all(&state).unwrap();
        let old = Connection::open(state.join(DB_FILE)).unwrap();
        old.execute_batch(&SCHEMA.replace("    changed_paths INTEGER,\n", ""))
            .unwrap();
        old.execute(
            "INSERT INTO runs (pipeline_name, pipeline_file, pipeline_sha256, commit_sha, branch, trigger, state, started_at)
             VALUES ('p', 'pipe.yml', '00', 'abc', 'main', 'run', 'awaiting_release', '2026-11-25T12:00:00Z')",
            [],
        )
        .unwrap();
        drop(old);
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let before = s.run(1).unwrap();
        assert_eq!(before.changed_paths, None);
        assert!(
            before.maybe_dirty(),
            "a run nobody counted is not taken for clean"
        );
        let id = one_job_run(&mut s);
        assert_eq!(s.run(id).unwrap().changed_paths, Some(2));
    }

    #[test]
    fn only_one_process_takes_a_run_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = SqliteStore::open(dir.path()).unwrap();
        let id = first.create_run(&new_run(), &[]).unwrap();
        first
            .set_state(id, RunState::AwaitingRelease, false)
            .unwrap();
        // Both read "awaiting release" before either takes the run over.
        let mut second = SqliteStore::open(dir.path()).unwrap();
        first
            .claim_run(id, RunState::AwaitingRelease, RunState::Releasing)
            .unwrap();
        let lost = second
            .claim_run(id, RunState::AwaitingRelease, RunState::Releasing)
            .unwrap_err();
        assert_eq!(
            lost.to_string(),
            format!("run {id} is releasing now: another pipe process took it over first")
        );
    }

    #[test]
    fn approvals_count_distinct_people_and_the_audit_trail_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let id = s.create_run(&new_run(), &[]).unwrap();
        assert!(s.approve(id, "ann", Some("lgtm"), Utc::now()).unwrap());
        assert!(!s.approve(id, "ann", None, Utc::now()).unwrap());
        assert!(s.approve(id, "bob", None, Utc::now()).unwrap());
        assert_eq!(s.approvals(id).unwrap().len(), 2);
        assert!(s.db.execute("DELETE FROM audit", []).is_err());
        assert!(s
            .db
            .execute("UPDATE audit SET actor = 'mallory'", [])
            .is_err());
        assert_eq!(s.audit_trail(id).unwrap().len(), 4);
    }
}
