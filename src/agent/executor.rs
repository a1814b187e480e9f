//! Runs from the queue: as many at once as the configuration allows, oldest first, each through
//! [`crate::engine::start`] on its commit, exactly as `pipe run --commit` runs it.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::queue::{Item, ItemState};
use super::state::Agent;
use crate::engine::{self, Cancel, Source, StartRequest};
use crate::event::{Event, EventKind};
use crate::store::RunId;

/// How often the queue is looked at without being woken: a run queued by another process.
const IDLE: Duration = Duration::from_secs(2);

/// Starts queued runs while there is room, until the agent stops.
pub async fn dispatch(agent: Arc<Agent>) {
    loop {
        if agent.stopping.load(Ordering::SeqCst) {
            return;
        }
        let room = agent
            .config
            .runs
            .saturating_sub(agent.in_flight.load(Ordering::SeqCst));
        if room > 0 {
            match agent.queue.queued() {
                Ok(items) => {
                    for item in items.into_iter().take(room) {
                        start(&agent, item);
                    }
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
        tokio::select! {
            _ = agent.wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
        }
    }
}

fn start(agent: &Arc<Agent>, item: Item) {
    match agent.queue.leave_queue(item.id, ItemState::Started) {
        Ok(true) => {}
        // Cancelled since the queue was read.
        Ok(false) => return,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    }
    agent.in_flight.fetch_add(1, Ordering::SeqCst);
    tracing::info!(
        repo = item.repo,
        commit = item.commit,
        trigger = item.trigger,
        "run starting"
    );
    tokio::spawn(run(agent.clone(), item));
}

async fn run(agent: Arc<Agent>, item: Item) {
    match fetched(&agent, &item).await {
        Ok(()) => execute(&agent, &item).await,
        Err(why) => tracing::error!(
            repo = item.repo,
            commit = item.commit,
            "the run cannot start: {why}"
        ),
    }
    if let Err(e) = agent.queue.set_state(item.id, ItemState::Done) {
        tracing::error!("{e}");
    }
    agent.in_flight.fetch_sub(1, Ordering::SeqCst);
    agent.wake.notify_one();
}

/// Fetches the repository unless its clone has the item's commit already (a webhook's is new).
async fn fetched(agent: &Agent, item: &Item) -> Result<(), String> {
    let repo = agent
        .config
        .repo(&item.repo)
        .ok_or_else(|| {
            format!(
                "the repository `{}` is no longer in the configuration",
                item.repo
            )
        })?
        .clone();
    let dir = agent.config.clone_dir(&repo.name);
    let commit = item.commit.clone();
    tokio::task::spawn_blocking(move || {
        if crate::git::has_commit(&dir, &commit) {
            return Ok(());
        }
        crate::git::fetch(&dir, &repo.url, &repo.branches).map_err(|e| e.to_string())?;
        match crate::git::has_commit(&dir, &commit) {
            true => Ok(()),
            false => Err(format!(
                "no watched branch of {} has commit {commit}",
                repo.url
            )),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn execute(agent: &Arc<Agent>, item: &Item) {
    let (events, mut seen) = mpsc::unbounded_channel();
    let cancel = Cancel::new();
    let file = agent
        .config
        .repo(&item.repo)
        .and_then(|r| r.pipeline.clone());
    let request = StartRequest {
        ctx: agent.context(&item.repo, &item.actor, Some(events)),
        file,
        jobs: Vec::new(),
        stages: Vec::new(),
        until: None,
        no_deploy: false,
        exec: agent.exec_options(),
        release: false,
        trigger: item.trigger.clone(),
        source: Source::Commit(item.commit.clone()),
        changes_since: None,
        reuse: true,
        cancel: cancel.clone(),
        // With a shared store, the fleet's agents (this one too) claim the run's jobs.
        fleet: agent
            .config
            .store
            .is_some()
            .then(|| super::lead::member(&agent.config)),
    };
    let watcher = {
        let agent = agent.clone();
        let item = item.clone();
        tokio::spawn(async move {
            let mut follower = Follower::default();
            while let Some(event) = seen.recv().await {
                if let Some(id) = follower.see(&agent.metrics, &event) {
                    if let Err(e) = agent.queue.set_run(item.id, id) {
                        tracing::error!("{e}");
                    }
                    agent.track(&item.repo, id, &cancel);
                }
            }
            follower.untrack(&agent, &item.repo);
        })
    };
    let began = Instant::now();
    match engine::start(request).await {
        Ok(outcome) if outcome.state == crate::store::RunState::Running => {
            // No job ran here, so no event named the run.
            if let Err(e) = agent.queue.set_run(item.id, outcome.run) {
                tracing::error!("{e}");
            }
            tracing::info!(
                repo = item.repo,
                run = outcome.run,
                "run queued: the fleet's agents claim its jobs"
            )
        }
        Ok(outcome) => tracing::info!(
            repo = item.repo,
            run = outcome.run,
            state = outcome.state.as_str(),
            seconds = began.elapsed().as_secs_f64(),
            "run ended"
        ),
        Err(e) => tracing::error!(
            repo = item.repo,
            commit = item.commit,
            "the run could not go on: {}",
            agent.masks.current().text(&e.to_string())
        ),
    }
    let _ = watcher.await;
}

/// What a request's events say that the agent keeps: its run id, and the metrics.
#[derive(Default)]
pub struct Follower {
    run: Option<RunId>,
    started: HashSet<String>,
}

impl Follower {
    /// Counts `event`; returns the run's id when it is first known.
    pub fn see(&mut self, metrics: &super::metrics::Metrics, event: &Event) -> Option<RunId> {
        match &event.kind {
            EventKind::RunStarted { run_id, .. } if self.run.is_none() => {
                self.run = Some(*run_id);
                return Some(*run_id);
            }
            EventKind::RunFinished { status, duration } => {
                metrics.run_ended(&word(status), duration.as_secs_f64());
            }
            _ => self.see_job(metrics, event),
        }
        None
    }

    /// Counts `event` if it is a job's: alone for a job claimed from a fleet's queue, whose run
    /// is the fleet's, not this agent's.
    pub fn see_job(&mut self, metrics: &super::metrics::Metrics, event: &Event) {
        match &event.kind {
            EventKind::JobStarted { job, .. } => {
                self.started.insert(job.clone());
                metrics.job_started();
            }
            EventKind::JobRetrying { job, .. } if self.started.remove(job) => {
                metrics.job_retrying();
            }
            EventKind::JobFinished {
                job,
                status,
                duration,
                ..
            } => {
                let ran = self.started.remove(job);
                metrics.job_ended(&word(status), duration.as_secs_f64(), ran);
            }
            _ => {}
        }
    }

    /// The request is over: its run is no longer one to cancel.
    pub fn untrack(&self, agent: &Agent, repo: &str) {
        if let Some(id) = self.run {
            agent.untrack(repo, id);
        }
    }
}

/// A status as events and the store spell it (`timed_out`).
fn word(status: &impl serde::Serialize) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
