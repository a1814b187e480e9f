//! Enqueueing a run's jobs, claiming, renewing and finishing them, and waiting for work.

use std::collections::HashMap;
use std::time::Duration;

use super::{Fleet, FleetError, JobId, CHANNEL};
use crate::pg::{Client, Error, FallibleIterator, GenericClient, Statement, Transaction};
use crate::store::RunId;

/// A job of a run, as the queue needs it.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    /// Names of jobs of the same run that must pass first.
    pub needs: Vec<String>,
    /// A deploy or release job ([`crate::pipeline::Job::deploys`]): held, never re-run, when its
    /// agent's lease runs out.
    pub deploys: bool,
    /// Labels an agent must offer to claim it (`labels:` of the job).
    pub labels: Vec<String>,
}

/// A job this agent holds, at the epoch of its claim: what every later write about it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job: JobId,
    pub epoch: i64,
    pub project: String,
    pub run: RunId,
    pub name: String,
}

/// What a finished job set moving.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// Jobs that became queued: their last need passed.
    pub queued: usize,
    /// Jobs that will not run, by name: a need of theirs (or of theirs) failed.
    pub skipped: Vec<String>,
}

impl Fleet {
    /// Expands a run's jobs into rows, in one transaction: those without needs are queued at
    /// once, the others wait for theirs. Returns the jobs' ids in the order given.
    pub fn enqueue(
        &mut self,
        project: &str,
        run: RunId,
        jobs: &[JobSpec],
    ) -> Result<Vec<JobId>, FleetError> {
        let mut tx = self.db.transaction()?;
        let mut ids = HashMap::new();
        for job in jobs {
            let state = if job.needs.is_empty() {
                "queued"
            } else {
                "waiting"
            };
            let id: JobId = tx
                .query_one(
                    "INSERT INTO fleet_jobs (project, run_id, name, deploys, labels, unfinished_needs, state, queued_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 = 'queued' THEN now() END) RETURNING id",
                    &[&project, &run, &job.name, &job.deploys, &job.labels, &(job.needs.len() as i32), &state],
                )?
                .get(0);
            ids.insert(job.name.as_str(), id);
        }
        for job in jobs {
            for need in &job.needs {
                // The plan has checked the needs: an unknown one is a bug of the caller.
                let need = ids[need.as_str()];
                tx.execute(
                    "INSERT INTO fleet_needs (job, needs) VALUES ($1, $2)",
                    &[&ids[job.name.as_str()], &need],
                )?;
            }
        }
        notify(&mut tx)?;
        tx.commit()?;
        Ok(jobs.iter().map(|j| ids[j.name.as_str()]).collect())
    }

    /// Takes the oldest queued job whose labels this agent offers, if there is one: one
    /// statement, so that a claim, its new epoch and its attempt row come together. Agents
    /// claiming at once skip each other's locked rows instead of waiting on them.
    pub fn claim(&mut self) -> Result<Option<Claim>, FleetError> {
        let row = self.db.query_opt(
            &self.statements.claim,
            &[&self.agent.labels, &self.agent.name, &self.lease_ms()],
        )?;
        Ok(row.map(|r| Claim {
            job: r.get(0),
            epoch: r.get(1),
            project: r.get(2),
            run: r.get(3),
            name: r.get(4),
        }))
    }

    /// Renews the lease of a claim; refused once the job was claimed again.
    pub fn heartbeat(&mut self, claim: &Claim) -> Result<(), FleetError> {
        let lease = self.lease_ms();
        let mut tx = self.db.transaction()?;
        let n = tx.execute(
            "UPDATE fleet_jobs SET lease_until = now() + $3 * interval '1 millisecond'
             WHERE id = $1 AND epoch = $2 AND state = 'claimed'",
            &[&claim.job, &claim.epoch, &lease],
        )?;
        if n == 0 {
            return Err(fenced(&mut tx, claim)?);
        }
        tx.execute(
            "UPDATE fleet_agents SET seen_at = now() WHERE name = $1",
            &[&self.agent.name],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records how a claimed job ended and, in the same transaction, moves what needs it: a pass
    /// queues each job whose last need this was, a failure skips everything below it.
    pub fn finish(&mut self, claim: &Claim, passed: bool) -> Result<Finished, FleetError> {
        if passed {
            let row = self
                .db
                .query_one(&self.statements.pass, &[&claim.job, &claim.epoch])?;
            if !row.get::<_, bool>(0) {
                return Err(fenced(&mut self.db, claim)?);
            }
            return Ok(Finished {
                queued: row.get::<_, i64>(1) as usize,
                skipped: Vec::new(),
            });
        }
        let mut tx = self.db.transaction()?;
        let n = tx.execute(
            "UPDATE fleet_jobs SET state = 'failed', agent = NULL, lease_until = NULL
             WHERE id = $1 AND epoch = $2 AND state = 'claimed'",
            &[&claim.job, &claim.epoch],
        )?;
        if n == 0 {
            return Err(fenced(&mut tx, claim)?);
        }
        tx.execute(
            "UPDATE fleet_attempts SET ended_at = clock_timestamp(), outcome = 'failed' WHERE job = $1 AND epoch = $2",
            &[&claim.job, &claim.epoch],
        )?;
        let skipped = tx
            .query(
                "WITH RECURSIVE below(id) AS (
                SELECT job FROM fleet_needs WHERE needs = $1
                UNION SELECT n.job FROM fleet_needs n JOIN below b ON n.needs = b.id
             )
             UPDATE fleet_jobs SET state = 'skipped', note = $2
             WHERE id IN (SELECT id FROM below) AND state = 'waiting' RETURNING name",
                &[&claim.job, &format!("needs `{}`, which failed", claim.name)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit()?;
        Ok(Finished { queued: 0, skipped })
    }

    /// Whether every job of run `run` of `project` is over — passed, failed or skipped — and
    /// if so, whether all passed: `None` while one waits, is queued, claimed or held.
    pub fn run_over(&mut self, project: &str, run: RunId) -> Result<Option<bool>, FleetError> {
        let row = self.db.query_one(
            "SELECT count(*) FILTER (WHERE state NOT IN ('passed', 'failed', 'skipped')),
                    count(*) FILTER (WHERE state <> 'passed')
             FROM fleet_jobs WHERE project = $1 AND run_id = $2",
            &[&project, &run],
        )?;
        let (going, not_passed): (i64, i64) = (row.get(0), row.get(1));
        Ok((going == 0).then_some(not_passed == 0))
    }

    /// Waits until some job may have become claimable (a `NOTIFY` from another agent) or
    /// `timeout` passes; true when woken. Listens from the first call on, so a wake-up sent
    /// between two calls is not lost.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, FleetError> {
        self.listen()?;
        let mut woken = false;
        let mut notes = self.db.notifications();
        if notes.timeout_iter(timeout).next()?.is_some() {
            woken = true;
            // Several wake-ups at once are one.
            while notes.iter().next()?.is_some() {}
        }
        Ok(woken)
    }

    /// Starts listening for wake-ups, before looking at the queue, so that none is missed
    /// between looking and waiting.
    pub fn listen(&mut self) -> Result<(), FleetError> {
        if !self.listening {
            self.db.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            self.listening = true;
        }
        Ok(())
    }
}

/// The statements of the hot path (a claim, a pass), prepared once per connection: a claim or a
/// pass is then one round trip and one commit, not a parse, a bind and several statements.
pub(super) struct Statements {
    claim: Statement,
    pass: Statement,
}

impl Statements {
    pub(super) fn prepare(db: &mut Client) -> Result<Statements, Error> {
        Ok(Statements {
            claim: db.prepare(CLAIM)?,
            pass: db.prepare(PASS)?,
        })
    }
}

/// Takes the oldest queued job whose labels the agent offers ($1), as agent $2 for $3 ms.
pub(super) const CLAIM: &str = "WITH next AS (
        SELECT id FROM fleet_jobs WHERE state = 'queued' AND labels <@ $1::text[]
        ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
     ), claimed AS (
        UPDATE fleet_jobs j SET state = 'claimed', epoch = j.epoch + 1, agent = $2,
            lease_until = now() + $3 * interval '1 millisecond'
        FROM next WHERE j.id = next.id
        RETURNING j.id, j.epoch, j.project, j.run_id, j.name
     ), attempt AS (
        INSERT INTO fleet_attempts (job, epoch, agent, claimed_at)
        SELECT id, epoch, $2, clock_timestamp() FROM claimed
     )
     SELECT id, epoch, project, run_id, name FROM claimed";

/// Records that claim ($1, epoch $2) passed and, in the same statement, queues each job whose
/// last need this was (the row lock on each job below serializes two of its needs passing at
/// once) and wakes waiting agents if any was. Gives whether the claim still held and how many
/// jobs it queued.
const PASS: &str = "WITH done AS (
        UPDATE fleet_jobs SET state = 'passed', agent = NULL, lease_until = NULL
        WHERE id = $1 AND epoch = $2 AND state = 'claimed' RETURNING id
     ), attempt AS (
        UPDATE fleet_attempts SET ended_at = clock_timestamp(), outcome = 'passed'
        WHERE job = $1 AND epoch = $2 AND EXISTS (SELECT 1 FROM done)
     ), below AS (
        UPDATE fleet_jobs j SET unfinished_needs = j.unfinished_needs - 1,
            state = CASE WHEN j.unfinished_needs = 1 AND j.state = 'waiting' THEN 'queued' ELSE j.state END,
            queued_at = CASE WHEN j.unfinished_needs = 1 AND j.state = 'waiting' THEN now() ELSE j.queued_at END
        FROM fleet_needs n, done WHERE n.needs = done.id AND j.id = n.job
        RETURNING j.state
     ), queued AS (
        SELECT count(*) AS n FROM below WHERE state = 'queued'
     ), woken AS (
        SELECT pg_notify('pipe_fleet', '') FROM queued WHERE n > 0
     )
     SELECT EXISTS (SELECT 1 FROM done), (SELECT n FROM queued), (SELECT count(*) FROM woken)";

/// Wakes waiting agents once the transaction commits.
pub(super) fn notify(tx: &mut Transaction) -> Result<(), Error> {
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
    Ok(())
}

/// The refusal of a write with a stale claim, saying where the job is now.
pub(super) fn fenced(db: &mut impl GenericClient, claim: &Claim) -> Result<FleetError, FleetError> {
    let row = db
        .query_opt(
            "SELECT epoch, state FROM fleet_jobs WHERE id = $1",
            &[&claim.job],
        )?
        .ok_or(FleetError::NoSuchJob(claim.job))?;
    Ok(FleetError::Fenced {
        job: claim.job,
        name: claim.name.clone(),
        epoch: claim.epoch,
        now: row.get(0),
        state: row.get(1),
    })
}
