//! The shared store: the same runs, jobs, approvals and audit trail as the embedded one, in a
//! PostgreSQL database that several agents and people's laptops reach, each project's runs
//! apart. Every change that touches several rows is one transaction.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::*;
use crate::owner::Owner;
use crate::pg::{self, Client, GenericClient, Row, Worker};

pub struct PostgresStore {
    db: Worker,
    /// The URL without its password, for messages.
    shown: String,
    project: String,
    /// The project's folder on this machine, when there is one: new runs are numbered past its
    /// run directories, as in the embedded store.
    local: Option<PathBuf>,
}

/// The columns of a run as [`run_row`] reads them.
const RUN_COLUMNS: &str = "id, pipeline_name, pipeline_file, pipeline_sha256, commit_sha, branch,
    tags::text, changed_paths, trigger, state, started_at, ended_at, releases,
    (SELECT string_agg(DISTINCT environment, ',') FROM jobs
        WHERE jobs.project = runs.project AND jobs.run_id = runs.id
        AND environment IS NOT NULL AND status = 'passed') AS environments";

fn run_row(r: &Row) -> RunRecord {
    let tags: String = r.get(6);
    let envs: Option<String> = r.get(13);
    RunRecord {
        id: r.get(0),
        pipeline_name: r.get(1),
        pipeline_file: r.get(2),
        pipeline_sha256: r.get(3),
        commit: r.get(4),
        branch: r.get(5),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        changed_paths: r.get::<_, Option<i32>>(7).map(|n| n as u32),
        trigger: r.get(8),
        state: RunState::parse(r.get(9)),
        started_at: r.get(10),
        ended_at: r.get(11),
        environments: envs
            .map(|e| e.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        releases: r.get::<_, i32>(12) as u32,
    }
}

fn job_row(r: &Row) -> JobRecord {
    let json = |i: usize| r.get::<_, Option<String>>(i);
    JobRecord {
        name: r.get(0),
        stage: r.get(1),
        phase: if r.get::<_, &str>(2) == "release" {
            Phase::Release
        } else {
            Phase::Main
        },
        environment: r.get(3),
        status: r.get(4),
        attempts: r.get::<_, i32>(5) as u32,
        exit_code: r.get(6),
        duration_ms: r.get::<_, Option<i64>>(7).map(|d| d as u64),
        note: r.get(8),
        log: r.get(9),
        artifacts: json(10)
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
        findings: json(11).and_then(|f| serde_json::from_str(&f).ok()),
        image: json(12).and_then(|i| serde_json::from_str(&i).ok()),
        drift: json(13).and_then(|d| serde_json::from_str(&d).ok()),
        epoch: r.get(14),
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Main => "main",
        Phase::Release => "release",
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (bringing its schema up to date) for the runs of
    /// `project`, a name the team's agents and people share (the pipeline's `name:`).
    pub fn open(url: &str, project: &str, local: Option<PathBuf>) -> Result<Self, StoreError> {
        let shown = pg::shown(url);
        let db = Worker::start(url).map_err(|e| StoreError::Shared(shown.clone(), Box::new(e)))?;
        Ok(PostgresStore {
            db,
            shown,
            project: project.to_string(),
            local,
        })
    }

    /// Runs `f` with the project's name on the connection.
    fn with<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Client, &str) -> Result<T, pg::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let project = self.project.clone();
        let failed = |e: DbError| StoreError::Shared(self.shown.clone(), e);
        self.db
            .call(move |c| f(c, &project))
            .map_err(|e| failed(Box::new(e)))?
            .map_err(|e| failed(Box::new(e)))
    }
}

fn audit_row(
    c: &mut impl GenericClient,
    project: &str,
    id: RunId,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<u64, pg::Error> {
    c.execute(
        "INSERT INTO audit (project, run_id, at, actor, action, detail) VALUES ($1, $2, now(), $3, $4, $5)",
        &[&project, &id, &actor, &action, &detail],
    )
}

impl Store for PostgresStore {
    fn create_run(
        &mut self,
        run: &NewRun,
        jobs: &[(String, String, Phase, Option<String>)],
    ) -> Result<RunId, StoreError> {
        let on_disk = match &self.local {
            Some(dir) => crate::workspace::highest_run(dir).map_err(StoreError::RunDirs)?,
            None => 0,
        };
        let owner = format!("{}", Owner::me());
        let (run, jobs) = (run.clone(), jobs.to_vec());
        self.with(move |c, project| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO projects (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&project],
            )?;
            // The row lock on the project makes two processes take two numbers.
            let id: RunId = tx
                .query_one(
                    "UPDATE projects SET last_run = GREATEST(last_run, $2) + 1 WHERE name = $1 RETURNING last_run",
                    &[&project, &on_disk],
                )?
                .get(0);
            let changed = run.changed_paths.map(|n| n as i32);
            tx.execute(
                "INSERT INTO runs (project, id, pipeline_name, pipeline_file, pipeline_sha256, commit_sha, branch, tags,
                    changed_paths, trigger, state, started_at, owner)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9, $10, 'running', now(), $11)",
                &[&project, &id, &run.pipeline_name, &run.pipeline_file, &run.pipeline_sha256, &run.commit,
                  &run.branch, &json(&run.tags), &changed, &run.trigger, &owner],
            )?;
            for (position, (name, stage, phase, environment)) in jobs.iter().enumerate() {
                tx.execute(
                    "INSERT INTO jobs (project, run_id, position, name, stage, phase, environment, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')",
                    &[&project, &id, &(position as i32), name, stage, &phase_name(*phase), environment],
                )?;
            }
            let detail = format!("{} of {}", run.trigger, run.pipeline_file);
            audit_row(&mut tx, project, id, &run.actor, "started", &detail)?;
            tx.commit()?;
            Ok(id)
        })
    }

    fn claim_run(&mut self, id: RunId, from: RunState, to: RunState) -> Result<(), StoreError> {
        let owner = format!("{}", Owner::me());
        let n = self.with(move |c, project| {
            c.execute(
                "UPDATE runs SET state = $1, owner = $2, ended_at = NULL WHERE project = $3 AND id = $4 AND state = $5",
                &[&to.as_str(), &owner, &project, &id, &from.as_str()],
            )
        })?;
        if n == 0 {
            let now = self.run(id)?.state;
            return Err(StoreError::TakenOver { id, now });
        }
        Ok(())
    }

    fn set_state(&mut self, id: RunId, state: RunState, ended: bool) -> Result<(), StoreError> {
        let released = i32::from(state == RunState::Released);
        self.with(move |c, project| {
            c.execute(
                "UPDATE runs SET state = $1, ended_at = CASE WHEN $2 THEN now() ELSE ended_at END,
                 releases = releases + $3 WHERE project = $4 AND id = $5",
                &[&state.as_str(), &ended, &released, &project, &id],
            )
        })?;
        Ok(())
    }

    fn job_started(
        &mut self,
        id: RunId,
        job: &str,
        attempt: u32,
        log: &str,
    ) -> Result<(), StoreError> {
        let (job, log) = (job.to_string(), log.to_string());
        self.with(move |c, project| {
            c.execute(
                "UPDATE jobs SET status = 'running', attempts = $1, log = $2 WHERE project = $3 AND run_id = $4 AND name = $5",
                &[&(attempt as i32), &log, &project, &id, &job],
            )
        })?;
        Ok(())
    }

    fn job_finished(&mut self, id: RunId, job: &JobRecord) -> Result<(), StoreError> {
        let job = job.clone();
        self.with(move |c, project| {
            c.execute(
                "UPDATE jobs SET status = $1, attempts = GREATEST(attempts, $2), exit_code = $3, duration_ms = $4,
                 note = $5, artifacts = $6::text::jsonb, findings = $7::text::jsonb, finished_at = now(), epoch = $11
                 WHERE project = $8 AND run_id = $9 AND name = $10",
                &[&job.status, &(job.attempts as i32), &job.exit_code, &job.duration_ms.map(|d| d as i64),
                  &job.note, &json(&job.artifacts), &job.findings.map(|f| json(&f)), &project, &id, &job.name, &job.epoch],
            )
        })?;
        Ok(())
    }

    fn job_built(
        &mut self,
        id: RunId,
        job: &str,
        image: &crate::image::BuiltImage,
    ) -> Result<(), StoreError> {
        let (job, image) = (job.to_string(), json(image));
        self.with(move |c, project| {
            c.execute(
                "UPDATE jobs SET image = $1::text::jsonb WHERE project = $2 AND run_id = $3 AND name = $4",
                &[&image, &project, &id, &job],
            )
        })?;
        Ok(())
    }

    fn job_drift(
        &mut self,
        id: RunId,
        job: &str,
        drift: &crate::drift::Drift,
    ) -> Result<(), StoreError> {
        let (job, drift) = (job.to_string(), json(drift));
        self.with(move |c, project| {
            c.execute(
                "UPDATE jobs SET drift = $1::text::jsonb WHERE project = $2 AND run_id = $3 AND name = $4",
                &[&drift, &project, &id, &job],
            )
        })?;
        Ok(())
    }

    fn reset_jobs(&mut self, id: RunId, jobs: &[String]) -> Result<(), StoreError> {
        let jobs = jobs.to_vec();
        self.with(move |c, project| {
            c.execute(
                "UPDATE jobs SET status = 'pending', exit_code = NULL, duration_ms = NULL, note = NULL, image = NULL,
                 drift = NULL WHERE project = $1 AND run_id = $2 AND name = ANY($3)",
                &[&project, &id, &jobs],
            )
        })?;
        Ok(())
    }

    fn resolve(&mut self, run: &str) -> Result<RunId, StoreError> {
        let wanted: Option<RunId> = match run {
            "last" => None,
            n => Some(
                n.trim_start_matches('#')
                    .parse()
                    .map_err(|_| StoreError::NoSuchRun(run.to_string()))?,
            ),
        };
        let found = self.with(move |c, project| {
            let row = c.query_one(
                "SELECT MAX(id) FROM runs WHERE project = $1 AND ($2::bigint IS NULL OR id = $2)",
                &[&project, &wanted],
            )?;
            Ok(row.get::<_, Option<RunId>>(0))
        })?;
        found.ok_or_else(|| StoreError::NoSuchRun(run.to_string()))
    }

    fn run(&mut self, id: RunId) -> Result<RunRecord, StoreError> {
        let found = self.with(move |c, project| {
            let q = format!("SELECT {RUN_COLUMNS} FROM runs WHERE project = $1 AND id = $2");
            Ok(c.query_opt(&q, &[&project, &id])?.as_ref().map(run_row))
        })?;
        found.ok_or_else(|| StoreError::NoSuchRun(id.to_string()))
    }

    fn runs(
        &mut self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let environment = environment.map(str::to_string);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c, project| {
            // As in the embedded store: for an environment, the run deployed there last first.
            let q = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE project = $1 AND ($2::text IS NULL OR EXISTS (
                    SELECT 1 FROM jobs WHERE jobs.project = runs.project AND jobs.run_id = runs.id
                    AND jobs.environment = $2 AND jobs.status = 'passed'))
                 ORDER BY (SELECT MAX(finished_at) FROM jobs WHERE jobs.project = runs.project
                    AND jobs.run_id = runs.id AND jobs.environment = $2 AND jobs.status = 'passed')
                    DESC NULLS LAST, id DESC
                 LIMIT $3"
            );
            Ok(c.query(&q, &[&project, &environment, &limit])?
                .iter()
                .map(run_row)
                .collect())
        })
    }

    fn jobs(&mut self, id: RunId) -> Result<Vec<JobRecord>, StoreError> {
        self.with(move |c, project| {
            let rows = c.query(
                "SELECT name, stage, phase, environment, status, attempts, exit_code, duration_ms, note, log,
                    artifacts::text, findings::text, image::text, drift::text, epoch
                 FROM jobs WHERE project = $1 AND run_id = $2 ORDER BY position",
                &[&project, &id],
            )?;
            Ok(rows.iter().map(job_row).collect())
        })
    }

    fn approve(
        &mut self,
        id: RunId,
        by: &str,
        comment: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (by, comment) = (by.to_string(), comment.map(str::to_string));
        self.with(move |c, project| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO approvals (project, run_id, approver, comment, at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[&project, &id, &by, &comment, &at],
            )?;
            let detail = match (n, &comment) {
                (0, _) => "approved again (already counted)".to_string(),
                (_, Some(c)) => format!("approved: {c}"),
                (_, None) => "approved".to_string(),
            };
            tx.execute(
                "INSERT INTO audit (project, run_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, 'approve', $5)",
                &[&project, &id, &at, &by, &detail],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn approvals(&mut self, id: RunId) -> Result<Vec<Approval>, StoreError> {
        self.with(move |c, project| {
            let rows = c.query(
                "SELECT approver, comment, at FROM approvals WHERE project = $1 AND run_id = $2 ORDER BY at",
                &[&project, &id],
            )?;
            Ok(rows
                .iter()
                .map(|r| Approval {
                    by: r.get(0),
                    comment: r.get(1),
                    at: r.get(2),
                })
                .collect())
        })
    }

    fn audit(
        &mut self,
        id: RunId,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let (actor, action, detail) = (actor.to_string(), action.to_string(), detail.to_string());
        self.with(move |c, project| audit_row(c, project, id, &actor, &action, &detail))?;
        Ok(())
    }

    fn audit_trail(&mut self, id: RunId) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(move |c, project| {
            let rows = c.query(
                "SELECT at, actor, action, detail FROM audit WHERE project = $1 AND run_id = $2 ORDER BY id",
                &[&project, &id],
            )?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    at: r.get(0),
                    actor: r.get(1),
                    action: r.get(2),
                    detail: r.get(3),
                })
                .collect())
        })
    }

    fn record_step(&mut self, id: RunId, step: &StepRecord) -> Result<(), StoreError> {
        let step = step.clone();
        self.with(move |c, project| {
            c.execute(
                "INSERT INTO release_steps (project, run_id, step, name, percent, status, detail, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (project, run_id, step) DO UPDATE SET name = EXCLUDED.name,
                    percent = EXCLUDED.percent, status = EXCLUDED.status, detail = EXCLUDED.detail,
                    at = EXCLUDED.at",
                &[&project, &id, &(step.step as i32), &step.name, &(step.percent as i32),
                  &step.status.as_str(), &step.detail, &step.at],
            )
        })?;
        Ok(())
    }

    fn clear_steps(&mut self, id: RunId) -> Result<(), StoreError> {
        self.with(move |c, project| {
            c.execute(
                "DELETE FROM release_steps WHERE project = $1 AND run_id = $2",
                &[&project, &id],
            )
        })?;
        Ok(())
    }

    fn steps(&mut self, id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.with(move |c, project| {
            let rows = c.query(
                "SELECT step, name, percent, status, detail, at FROM release_steps
                 WHERE project = $1 AND run_id = $2 ORDER BY step",
                &[&project, &id],
            )?;
            Ok(rows
                .iter()
                .map(|r| StepRecord {
                    step: r.get::<_, i32>(0) as u32,
                    name: r.get(1),
                    percent: r.get::<_, i32>(2) as u32,
                    // A status this pipe does not know (a newer pipe's) blocks like a failure
                    // would, as in the embedded store.
                    status: StepStatus::parse(r.get(3)).unwrap_or(StepStatus::VerifyFailed),
                    detail: r.get(4),
                    at: r.get(5),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::testdb;

    #[test]
    fn the_store_contract_holds_on_postgres() {
        let db = testdb::database();
        let open =
            || -> Box<dyn Store> { Box::new(PostgresStore::open(&db.url, "p", None).unwrap()) };
        super::super::contract::holds(&open);
    }

    #[test]
    fn projects_number_their_runs_apart_and_past_their_run_directories() {
        let db = testdb::database();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".pipe/runs/7")).unwrap();
        let mut web = PostgresStore::open(&db.url, "web", Some(dir.path().into())).unwrap();
        let mut api = PostgresStore::open(&db.url, "api", None).unwrap();
        let run = super::super::contract::new_run();
        assert_eq!(web.create_run(&run, &[]).unwrap(), 8);
        assert_eq!(api.create_run(&run, &[]).unwrap(), 1);
        assert_eq!(web.create_run(&run, &[]).unwrap(), 9);
        assert_eq!(
            api.runs(None, 10).unwrap().len(),
            1,
            "api sees only its own"
        );
        assert!(matches!(api.resolve("8"), Err(StoreError::NoSuchRun(_))));
    }

    #[test]
    fn the_audit_trail_is_append_only_in_postgres() {
        let db = testdb::database();
        let mut s = PostgresStore::open(&db.url, "p", None).unwrap();
        let id = s
            .create_run(&super::super::contract::new_run(), &[])
            .unwrap();
        let mut raw = pg::connect(&db.url).unwrap();
        assert!(raw.execute("DELETE FROM audit", &[]).is_err());
        assert!(raw
            .execute("UPDATE audit SET actor = 'mallory'", &[])
            .is_err());
        assert_eq!(s.audit_trail(id).unwrap().len(), 1);
    }

    #[test]
    fn a_store_whose_database_is_unreachable_says_where_without_the_password() {
        let err = PostgresStore::open("postgres://ci:s3cret@127.0.0.1:1/pipe", "p", None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(
                "the run store at postgres://ci@127.0.0.1:1/pipe failed: cannot connect"
            ),
            "{err}"
        );
        assert!(!err.contains("s3cret"));
    }
}
