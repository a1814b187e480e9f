//! With a shared store, the agents sharing it are a fleet, and one of them leads its
//! housekeeping ([`crate::fleet::Candidate`]): only the leader polls the repositories, so that
//! the fleet runs a pushed commit once rather than once per agent, and only it sweeps the
//! queue's expired leases. Every agent says it is present with the labels it offers; the leader
//! logs the queued jobs that none of them can claim. A thread of its own: the client is
//! blocking.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::config::Config;
use super::state::Agent;
use crate::fleet::{self, Candidate, Fleet, JobId};

/// How often leadership is asked for (or checked) and the housekeeping done: how long the
/// fleet goes without a leader, at most, after one dies.
const TICK: Duration = Duration::from_millis(500);
/// Agents seen within this long count as present when a job's labels are looked for.
const RECENT: Duration = Duration::from_secs(60);

pub fn spawn(agent: Arc<Agent>, url: String) {
    let started = std::thread::Builder::new()
        .name("pipe-leader".into())
        .spawn(move || lead(&agent, &url));
    if let Err(e) = started {
        tracing::error!("cannot start the fleet's housekeeping: {e}");
    }
}

fn lead(agent: &Agent, url: &str) {
    let mut keeper = Housekeeper {
        url: url.to_string(),
        me: member(&agent.config),
        queue: None,
        told: HashSet::new(),
    };
    let mut candidate = Candidate::new(url);
    while !agent.stopping.load(Ordering::SeqCst) {
        let leads = candidate.lead().unwrap_or_else(|e| {
            tracing::warn!("the fleet's leadership cannot be asked for: {e}");
            false
        });
        if agent.leading.swap(leads, Ordering::SeqCst) != leads {
            match leads {
                true => tracing::info!(agent = keeper.me.name, "leading the fleet's housekeeping"),
                false => tracing::warn!(agent = keeper.me.name, "no longer leading the fleet"),
            }
        }
        if let Err(e) = keeper.tick(leads) {
            tracing::warn!("the fleet's housekeeping failed: {e}");
            // Connected again on the next tick.
            keeper.queue = None;
        }
        std::thread::sleep(TICK);
    }
}

/// This agent as the fleet knows it: its host and process, and the labels it offers.
pub(super) fn member(config: &Config) -> fleet::Agent {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    fleet::Agent {
        name: format!("{}:{}", host.trim(), std::process::id()),
        labels: config.labels.clone(),
        lease: config.lease,
    }
}

struct Housekeeper {
    url: String,
    me: fleet::Agent,
    queue: Option<Fleet>,
    /// Jobs already said to wait for a label: said once, not every tick.
    told: HashSet<JobId>,
}

impl Housekeeper {
    fn tick(&mut self, leads: bool) -> Result<(), fleet::FleetError> {
        let queue = match &mut self.queue {
            Some(q) => q,
            None => self
                .queue
                .insert(Fleet::connect(&self.url, self.me.clone())?),
        };
        queue.present()?;
        if !leads {
            return Ok(());
        }
        for e in queue.sweep()? {
            match e.held {
                true => {
                    tracing::warn!(job = e.job, job_name = e.name, agent = e.agent,
                    "the lease ran out on a deploy or release job: held until a person resumes it")
                }
                false => tracing::warn!(
                    job = e.job,
                    job_name = e.name,
                    agent = e.agent,
                    "the lease ran out: the job is queued again"
                ),
            }
        }
        let waiting = queue.unclaimable(RECENT)?;
        for w in &waiting {
            if self.told.insert(w.job) {
                tracing::warn!(job = w.job, "{}", w.why);
            }
        }
        self.told
            .retain(|job| waiting.iter().any(|w| w.job == *job));
        Ok(())
    }
}
