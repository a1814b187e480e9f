//! Jobs made ready ahead: once every job a job needs has started running (or is done) and one
//! of them still runs, the backend is asked to prepare the job's first attempt (its container,
//! its workspace), so that only starting it is left when they finish.

use futures_util::future::{BoxFuture, Shared};
use futures_util::FutureExt;

use super::{attempt_spec, job_spec, RunOptions, State};
use crate::backend::Backend;
use crate::plan::Plan;
use std::sync::Arc;

/// A job's preparation, which its task and the run's end both wait for.
pub(super) type Preparing = Shared<BoxFuture<'static, ()>>;

/// Which jobs have started running, and which are being prepared.
pub(super) struct Ahead {
    /// The job's task has begun its first attempt: it runs (not reused).
    live: Vec<bool>,
    preparing: Vec<Option<Preparing>>,
}

impl Ahead {
    pub fn new(jobs: usize) -> Self {
        Ahead {
            live: vec![false; jobs],
            preparing: vec![None; jobs],
        }
    }

    pub fn started(&mut self, job: usize) {
        self.live[job] = true;
    }

    /// Asks the backend to prepare each job whose needs all run or are done, one still
    /// running. A job that may restore a cache is left out: what it runs on is known only then.
    pub fn prepare(
        &mut self,
        plan: &Plan,
        state: &[State],
        opts: &RunOptions,
        backend: &Arc<dyn Backend>,
    ) {
        for job in 0..plan.jobs.len() {
            let needs = &plan.deps[job];
            let ready = matches!(state[job], State::Pending)
                && self.preparing[job].is_none()
                && !needs.is_empty()
                && !(plan.jobs[job].cache.is_some() && opts.cache.is_some())
                && needs.iter().all(|&(d, _)| match state[d] {
                    State::Running => self.live[d],
                    State::Done(_) => true,
                    _ => false,
                })
                && needs
                    .iter()
                    .any(|&(d, _)| matches!(state[d], State::Running));
            if !ready {
                continue;
            }
            let spec = attempt_spec(&job_spec(plan, job, opts, true), 1);
            let backend = backend.clone();
            let task = tokio::spawn(async move { backend.prepare_job(&spec).await });
            self.preparing[job] = Some(task.map(|_| ()).boxed().shared());
        }
    }

    /// Whether every running job has begun its first attempt, so has reached the backend (a
    /// job being reused never does, and is done soon).
    pub fn all_live(&self, state: &[State]) -> bool {
        state
            .iter()
            .zip(&self.live)
            .all(|(s, &live)| live || !matches!(s, State::Running))
    }

    /// The job's preparation, for its task to wait on before it runs.
    pub fn of(&self, job: usize) -> Option<Preparing> {
        self.preparing[job].clone()
    }

    /// Waits until every preparation is over, so that the backend's shutdown finds all it made.
    pub async fn finish(self) {
        for preparing in self.preparing.into_iter().flatten() {
            preparing.await;
        }
    }
}
