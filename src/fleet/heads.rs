//! The heads of the branches a fleet polls, as its leader last saw them: kept in the database
//! rather than in one agent's own queue, so that an agent taking over the polling does not run
//! again a commit its predecessor ran.

use super::{Fleet, FleetError};

impl Fleet {
    /// Records `commit` as the head of `branch` of `repo`: true when it is new to the fleet
    /// (the caller queues its run), false when the fleet saw it already.
    pub fn new_head(&mut self, repo: &str, branch: &str, commit: &str) -> Result<bool, FleetError> {
        let changed = self.db.execute(
            "INSERT INTO fleet_heads (repo, branch, commit_sha) VALUES ($1, $2, $3)
             ON CONFLICT (repo, branch) DO UPDATE SET commit_sha = EXCLUDED.commit_sha
             WHERE fleet_heads.commit_sha <> EXCLUDED.commit_sha",
            &[&repo, &branch, &commit],
        )?;
        Ok(changed == 1)
    }
}
