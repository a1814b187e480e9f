//! Which claim's outputs are a finished job's: a job's row keeps the epoch of the claim that
//! finished it (a finished job is never claimed again), and that claim's log and artifacts, in
//! the object store, are the run's. An agent that lost its claim published under an epoch of
//! its own, which nothing reads.

use std::collections::HashMap;

use super::{Fleet, FleetError, JobId};

impl Fleet {
    /// The needs of job `job` that passed, by name, each with the epoch of the claim whose
    /// pass the queue accepted.
    pub fn passed_needs(&mut self, job: JobId) -> Result<HashMap<String, i64>, FleetError> {
        let rows = self.db.query(
            "SELECT j.name, j.epoch FROM fleet_needs n JOIN fleet_jobs j ON j.id = n.needs
             WHERE n.job = $1 AND j.state = 'passed'",
            &[&job],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
