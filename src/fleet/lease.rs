//! Leases that ran out: a build, test or scan job goes back to the queue for another agent; a
//! deploy or release job is held until a person says what to do, since it may have deployed.
//! Each claim is an attempt, kept with how it ended.

use chrono::{DateTime, Utc};

use super::queue::{fenced, notify};
use super::{Claim, Fleet, FleetError, JobId};
use crate::store::RunId;

/// A claim whose lease ran out, and what became of its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub job: JobId,
    pub name: String,
    /// The claim that expired.
    pub epoch: i64,
    pub agent: String,
    /// Held for a person (a deploy or release job) rather than queued again.
    pub held: bool,
}

/// A job held for a person after its agent's claim ended while it may have deployed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    pub job: JobId,
    pub name: String,
    /// Why it is held, as a person reads it.
    pub note: Option<String>,
}

/// One claim of a job.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub epoch: i64,
    pub agent: String,
    pub claimed_at: DateTime<Utc>,
    /// `passed`, `failed` or `lease expired`; `None` while it goes on.
    pub outcome: Option<String>,
}

impl Fleet {
    /// Moves every job whose lease has run out, in one transaction; agents sweeping at once
    /// skip each other's rows.
    pub fn sweep(&mut self) -> Result<Vec<Expired>, FleetError> {
        let mut tx = self.db.transaction()?;
        let rows = tx.query(
            "WITH expired AS (
                SELECT id, epoch, agent, deploys FROM fleet_jobs
                WHERE state = 'claimed' AND lease_until <= now() FOR UPDATE SKIP LOCKED
             ), moved AS (
                UPDATE fleet_jobs j SET
                    state = CASE WHEN e.deploys THEN 'held' ELSE 'queued' END,
                    queued_at = now(), agent = NULL, lease_until = NULL,
                    note = CASE WHEN e.deploys
                        THEN 'the lease of agent ' || e.agent || ' ran out while it ran this job, which may have deployed: held until a person resumes it'
                        ELSE 'queued again: the lease of agent ' || e.agent || ' ran out' END
                FROM expired e WHERE j.id = e.id
                RETURNING j.id, j.name, e.epoch, e.agent, e.deploys
             ), ended AS (
                UPDATE fleet_attempts a SET ended_at = clock_timestamp(), outcome = 'lease expired'
                FROM moved m WHERE a.job = m.id AND a.epoch = m.epoch
             )
             SELECT id, name, epoch, agent, deploys FROM moved ORDER BY id",
            &[],
        )?;
        let expired: Vec<Expired> = rows
            .iter()
            .map(|r| Expired {
                job: r.get(0),
                name: r.get(1),
                epoch: r.get(2),
                agent: r.get(3),
                held: r.get(4),
            })
            .collect();
        if expired.iter().any(|e| !e.held) {
            notify(&mut tx)?;
        }
        tx.commit()?;
        Ok(expired)
    }

    /// Gives back a claim this agent cannot see through (it is stopping, or pipe itself failed
    /// before the job ended), at once rather than when its lease runs out: a build, test or scan
    /// job is queued again, a deploy or release job held, as [`Fleet::sweep`] does. `why` ends
    /// the attempt. Refused (fenced) when the job was claimed again since.
    pub fn release(&mut self, claim: &Claim, why: &str) -> Result<Expired, FleetError> {
        let mut tx = self.db.transaction()?;
        let row = tx.query_opt(
            "UPDATE fleet_jobs SET
                state = CASE WHEN deploys THEN 'held' ELSE 'queued' END,
                queued_at = now(), agent = NULL, lease_until = NULL,
                note = CASE WHEN deploys
                    THEN 'agent ' || $3 || ' gave it back (' || $4 || ') while it ran this job, which may have deployed: held until a person resumes it'
                    ELSE 'queued again: agent ' || $3 || ' gave it back (' || $4 || ')' END
             WHERE id = $1 AND epoch = $2 AND state = 'claimed' RETURNING deploys",
            &[&claim.job, &claim.epoch, &self.agent.name, &why],
        )?;
        let Some(row) = row else {
            return Err(fenced(&mut tx, claim)?);
        };
        let held: bool = row.get(0);
        tx.execute(
            "UPDATE fleet_attempts SET ended_at = clock_timestamp(), outcome = $3
             WHERE job = $1 AND epoch = $2",
            &[&claim.job, &claim.epoch, &format!("given back: {why}")],
        )?;
        if !held {
            notify(&mut tx)?;
        }
        tx.commit()?;
        Ok(Expired {
            job: claim.job,
            name: claim.name.clone(),
            epoch: claim.epoch,
            agent: self.agent.name.clone(),
            held,
        })
    }

    /// The job `name` of run `run` of `project`, if the run's jobs went through the queue.
    pub fn job_named(
        &mut self,
        project: &str,
        run: RunId,
        name: &str,
    ) -> Result<Option<JobId>, FleetError> {
        let row = self.db.query_opt(
            "SELECT id FROM fleet_jobs WHERE project = $1 AND run_id = $2 AND name = $3",
            &[&project, &run, &name],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The jobs of run `run` of `project` held for a person, in the order they were queued.
    pub fn held(&mut self, project: &str, run: RunId) -> Result<Vec<Held>, FleetError> {
        let rows = self.db.query(
            "SELECT id, name, note FROM fleet_jobs
             WHERE project = $1 AND run_id = $2 AND state = 'held' ORDER BY id",
            &[&project, &run],
        )?;
        Ok(rows
            .iter()
            .map(|r| Held {
                job: r.get(0),
                name: r.get(1),
                note: r.get(2),
            })
            .collect())
    }

    /// A person's decision to run a held job again: it is queued for any agent.
    pub fn resume(&mut self, job: JobId, by: &str) -> Result<(), FleetError> {
        let mut tx = self.db.transaction()?;
        let n = tx.execute(
            "UPDATE fleet_jobs SET state = 'queued', queued_at = now(), note = 'resumed by ' || $2
             WHERE id = $1 AND state = 'held'",
            &[&job, &by],
        )?;
        if n == 0 {
            let state = tx
                .query_opt("SELECT state FROM fleet_jobs WHERE id = $1", &[&job])?
                .ok_or(FleetError::NoSuchJob(job))?
                .get(0);
            return Err(FleetError::NotHeld { job, state });
        }
        notify(&mut tx)?;
        tx.commit()?;
        Ok(())
    }

    /// The job's state (`waiting`, `queued`, `claimed`, `passed`, `failed`, `skipped`, `held`)
    /// and the note that says why, when there is one.
    pub fn state(&mut self, job: JobId) -> Result<(String, Option<String>), FleetError> {
        let row = self
            .db
            .query_opt("SELECT state, note FROM fleet_jobs WHERE id = $1", &[&job])?
            .ok_or(FleetError::NoSuchJob(job))?;
        Ok((row.get(0), row.get(1)))
    }

    /// Every claim of the job, first first.
    pub fn attempts(&mut self, job: JobId) -> Result<Vec<Attempt>, FleetError> {
        let rows = self.db.query(
            "SELECT epoch, agent, claimed_at, outcome FROM fleet_attempts WHERE job = $1 ORDER BY epoch",
            &[&job],
        )?;
        Ok(rows
            .iter()
            .map(|r| Attempt {
                epoch: r.get(0),
                agent: r.get(1),
                claimed_at: r.get(2),
                outcome: r.get(3),
            })
            .collect())
    }
}
