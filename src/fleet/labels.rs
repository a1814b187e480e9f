//! The labels agents offer (`gpu`, `arm64`), and the queued jobs that no present agent can
//! claim: those wait, and say for what, rather than look merely slow.

use std::time::Duration;

use super::{Fleet, FleetError, JobId};

/// A queued job that no agent seen lately offers the labels of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub job: JobId,
    pub name: String,
    pub labels: Vec<String>,
    /// Why it waits, as a person reads it.
    pub why: String,
}

impl Fleet {
    /// Says that this agent is here, with its labels.
    pub fn present(&mut self) -> Result<(), FleetError> {
        self.db.execute(
            "INSERT INTO fleet_agents (name, labels, seen_at) VALUES ($1, $2, now())
             ON CONFLICT (name) DO UPDATE SET labels = EXCLUDED.labels, seen_at = now()",
            &[&self.agent.name, &self.agent.labels],
        )?;
        Ok(())
    }

    /// Queued jobs that no agent seen within `recent` can claim, for lack of a label.
    pub fn unclaimable(&mut self, recent: Duration) -> Result<Vec<Waiting>, FleetError> {
        let recent_ms = recent.as_secs_f64() * 1000.0;
        let agents: Vec<(String, Vec<String>)> = self
            .db
            .query(
                "SELECT name, labels FROM fleet_agents
                 WHERE seen_at > now() - $1 * interval '1 millisecond' ORDER BY name",
                &[&recent_ms],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let rows = self.db.query(
            "SELECT id, name, labels FROM fleet_jobs j WHERE state = 'queued' AND NOT EXISTS (
                SELECT 1 FROM fleet_agents a WHERE a.seen_at > now() - $1 * interval '1 millisecond'
                AND j.labels <@ a.labels)
             ORDER BY id",
            &[&recent_ms],
        )?;
        let present = if agents.is_empty() {
            "no agent was seen".to_string()
        } else {
            let each: Vec<String> = agents
                .iter()
                .map(|(name, labels)| format!("{name} [{}]", labels.join(", ")))
                .collect();
            format!("agents seen: {}", each.join(", "))
        };
        Ok(rows
            .iter()
            .map(|r| {
                let (job, name, labels): (JobId, String, Vec<String>) =
                    (r.get(0), r.get(1), r.get(2));
                let why = format!(
                    "job `{name}` waits for an agent offering labels {}; none seen in the last {} does ({present})",
                    labels.join(", "),
                    humantime::format_duration(recent),
                );
                Waiting {
                    job,
                    name,
                    labels,
                    why,
                }
            })
            .collect())
    }
}
