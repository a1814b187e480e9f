//! With a shared store, an agent runs jobs from the fleet's queue: claimers on threads of their
//! own (the queue's client is blocking) claim the jobs whose labels this agent offers, run each
//! through [`crate::engine::run_claimed`] on the async runtime, renew its lease by heartbeat
//! while it runs, and finish it with the claim's epoch. A finish refused because another agent
//! took the job over (fenced) drops the result and removes what the job published under the
//! claim's epoch, as does a job given back. Idle claimers wait for the queue's wake-ups.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::state::Agent;
use crate::engine::{self, Cancel, ClaimRequest, Claimed, Interrupt};
use crate::fleet::{self, Claim, Fleet, FleetError};

/// Claimers per agent unless `concurrency.jobs` says otherwise.
const SLOTS: usize = 4;
/// How long an idle claimer waits for a wake-up before it looks whether the agent stops.
const IDLE: Duration = Duration::from_secs(1);
/// How long a claimer waits before connecting again after the database went away.
const AGAIN: Duration = Duration::from_millis(500);
/// Tries at a job pipe itself cannot run before it fails, rather than go round the fleet.
const PIPE_TRIES: usize = 3;

pub fn spawn(agent: Arc<Agent>, url: String, runtime: Handle) {
    for slot in 0..agent.config.jobs.unwrap_or(SLOTS) {
        let mut claimer = Claimer {
            agent: agent.clone(),
            url: url.clone(),
            me: super::lead::member(&agent.config),
            queue: None,
            runtime: runtime.clone(),
        };
        let started = std::thread::Builder::new()
            .name(format!("pipe-claims-{slot}"))
            .spawn(move || claimer.claim_until_stopped());
        if let Err(e) = started {
            tracing::error!("cannot start claiming the fleet's jobs: {e}");
        }
    }
}

struct Claimer {
    agent: Arc<Agent>,
    url: String,
    me: fleet::Agent,
    /// The connection, made again when the database went away.
    queue: Option<Fleet>,
    runtime: Handle,
}

impl Claimer {
    fn claim_until_stopped(&mut self) {
        while !self.agent.stopping.load(Ordering::SeqCst) {
            if let Err(e) = self.claim_one() {
                tracing::warn!("the fleet's queue failed: {e}; connecting again");
                self.queue = None;
                std::thread::sleep(AGAIN);
            }
        }
    }

    fn queue(&mut self) -> Result<&mut Fleet, FleetError> {
        if self.queue.is_none() {
            self.queue = Some(Fleet::connect(&self.url, self.me.clone())?);
        }
        Ok(self.queue.as_mut().expect("connected above"))
    }

    /// Claims a job and runs it, or waits for a wake-up when there is none.
    fn claim_one(&mut self) -> Result<(), FleetError> {
        let queue = self.queue()?;
        // Listening before looking: a job queued in between wakes the wait.
        queue.listen()?;
        match queue.claim()? {
            Some(claim) => self.run(claim),
            None => queue.wait(IDLE).map(|_| ()),
        }
    }

    fn run(&mut self, claim: Claim) -> Result<(), FleetError> {
        let Some(repo) = self.agent.config.repo(&claim.project).cloned() else {
            // Left to its lease: another agent of the fleet may have the repository.
            tracing::error!(
                job = claim.name,
                run = claim.run,
                "claimed a job of `{}`, which this agent does not watch: every agent of a fleet must watch the same repositories",
                claim.project
            );
            return Ok(());
        };
        tracing::info!(
            repo = repo.name,
            run = claim.run,
            job = claim.name,
            epoch = claim.epoch,
            "claimed"
        );
        let cancel = Cancel::new();
        // Tracked until its outcome is in the queue: a stopping agent waits for that.
        self.agent.track_claim(claim.job, &cancel);
        let ran = self.see_through(&claim, &repo, &cancel);
        self.agent.untrack_claim(claim.job);
        ran
    }

    /// Runs the claimed job, renewing its lease meanwhile, and finishes it (or gives it back).
    fn see_through(
        &mut self,
        claim: &Claim,
        repo: &super::Repo,
        cancel: &Cancel,
    ) -> Result<(), FleetError> {
        let ctx = self.agent.context(&repo.name, &self.me.name, None);
        let needs = self.queue()?.passed_needs(claim.job)?;
        let mut exec = self.agent.exec_options();
        // Which agent ran a job is the job's to know (and to say in what it makes).
        exec.vars.push(("PIPE_AGENT".into(), self.me.name.clone()));
        // The job's events are counted in the agent's metrics, as a run's jobs are.
        let (events, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let agent = self.agent.clone();
        // Ends when the request's sink goes with it.
        self.runtime.spawn(async move {
            let mut follower = super::executor::Follower::default();
            while let Some(event) = seen.recv().await {
                follower.see_job(&agent.metrics, &event);
            }
        });
        let request = ClaimRequest {
            ctx: engine::Context {
                events: Some(events),
                ..ctx.clone()
            },
            run: claim.run,
            job: claim.name.clone(),
            epoch: claim.epoch,
            exec,
            cancel: cancel.clone(),
            needs,
            remote: Some((repo.url.clone(), repo.branches.clone())),
        };
        let began = Instant::now();
        let mut task = self.runtime.spawn(engine::run_claimed(request));
        // Renewed three times per lease: one heartbeat lost to a slow database does not lose
        // the job.
        let beat = self.agent.config.lease / 3;
        let joined = loop {
            // The timer is made on the runtime: it has none outside.
            let waited = async { tokio::time::timeout(beat, &mut task).await };
            match self.runtime.block_on(waited) {
                Ok(joined) => break joined,
                Err(_) => self.heartbeat(claim, cancel),
            }
        };
        let claimed = match joined {
            Ok(Ok(claimed)) => claimed,
            Ok(Err(e)) => return self.pipe_failed(&ctx, claim, &e.to_string()),
            Err(e) => return self.pipe_failed(&ctx, claim, &format!("the job's task ended: {e}")),
        };
        if let Some(why) = &claimed.unfinished {
            let back = self.queue().and_then(|q| q.release(claim, why));
            self.runtime.block_on(claimed.withdraw());
            return self.given_back(claim, back);
        }
        let finished = self.finish(claim, claimed.passed)?;
        let Some(finished) = finished else {
            self.runtime.block_on(claimed.withdraw());
            return Ok(());
        };
        tracing::info!(
            run = claim.run,
            job = claim.name,
            passed = claimed.passed,
            seconds = began.elapsed().as_secs_f64(),
            "finished"
        );
        self.recorded(&ctx, claim, &claimed, &finished.skipped)
    }

    /// Renews the claim's lease; a claim taken over meanwhile stops the job.
    fn heartbeat(&mut self, claim: &Claim, cancel: &Cancel) {
        let beat = self.queue().and_then(|q| q.heartbeat(claim));
        match beat {
            Ok(()) => {}
            Err(FleetError::Fenced { .. }) => {
                if !cancel.requested() {
                    tracing::warn!(
                        run = claim.run,
                        job = claim.name,
                        "another agent took this job over: stopping it here"
                    );
                    cancel.request(Interrupt::Terminate);
                }
            }
            Err(e) => {
                tracing::warn!(job = claim.name, "cannot renew the lease: {e}");
                // The database may have restarted: connected again for the next heartbeat.
                self.queue = None;
            }
        }
    }

    /// Finishes the claim; `None` when another agent had taken the job over (its result is
    /// dropped). A finish that failed with the connection is sent again until the lease would
    /// have run out.
    fn finish(
        &mut self,
        claim: &Claim,
        passed: bool,
    ) -> Result<Option<fleet::Finished>, FleetError> {
        // Tried again while the claim could still hold: the database may be restarting.
        let until = Instant::now() + self.agent.config.lease;
        let finished = loop {
            match self.queue().and_then(|q| q.finish(claim, passed)) {
                Err(e) if !matches!(e, FleetError::Fenced { .. }) && Instant::now() < until => {
                    tracing::warn!(job = claim.name, "cannot finish the job: {e}; trying again");
                    self.queue = None;
                    std::thread::sleep(AGAIN);
                }
                other => break other,
            }
        };
        match finished {
            Ok(finished) => Ok(Some(finished)),
            // The first finish went through after all: its answer was what was lost.
            Err(FleetError::Fenced { now, state, .. })
                if now == claim.epoch && (state == "passed" || state == "failed") =>
            {
                Ok(Some(fleet::Finished::default()))
            }
            Err(e @ FleetError::Fenced { .. }) => {
                tracing::warn!(
                    run = claim.run,
                    job = claim.name,
                    "this agent's result is dropped, not recorded: {e}"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Records the finished job in the run store, and the run's state when it was its last.
    fn recorded(
        &mut self,
        ctx: &engine::Context,
        claim: &Claim,
        claimed: &Claimed,
        skipped: &[String],
    ) -> Result<(), FleetError> {
        if let Err(e) = engine::record_claimed(ctx, claim.run, claimed, skipped) {
            tracing::error!(
                run = claim.run,
                job = claim.name,
                "cannot record the job: {e}"
            );
        }
        if let Some(passed) = self.queue()?.run_over(&claim.project, claim.run)? {
            match engine::finish_fleet_run(ctx, claim.run, passed, claimed.gated) {
                Ok(state) => tracing::info!(
                    repo = claim.project,
                    run = claim.run,
                    state = state.as_str(),
                    "run ended"
                ),
                Err(e) => tracing::error!(run = claim.run, "cannot record the run's end: {e}"),
            }
        }
        Ok(())
    }

    /// pipe could not run the job: given back for another try, or failed once tried enough.
    fn pipe_failed(
        &mut self,
        ctx: &engine::Context,
        claim: &Claim,
        why: &str,
    ) -> Result<(), FleetError> {
        let why = self.agent.masks.current().text(why);
        tracing::error!(
            run = claim.run,
            job = claim.name,
            "pipe cannot run the job: {why}"
        );
        let tries = self.queue()?.attempts(claim.job)?.len();
        if tries < PIPE_TRIES {
            let back = self.queue()?.release(claim, &format!("pipe failed: {why}"));
            return self.given_back(claim, back);
        }
        let claimed = Claimed::pipe_failed(&claim.name, &why);
        match self.finish(claim, false)? {
            Some(finished) => self.recorded(ctx, claim, &claimed, &finished.skipped),
            None => Ok(()),
        }
    }

    fn given_back(
        &self,
        claim: &Claim,
        back: Result<fleet::Expired, FleetError>,
    ) -> Result<(), FleetError> {
        match back {
            Ok(e) if e.held => tracing::warn!(
                run = claim.run,
                job = claim.name,
                "given back unfinished: a deploy or release job, held until a person resumes it"
            ),
            Ok(_) => tracing::warn!(
                run = claim.run,
                job = claim.name,
                "given back unfinished: queued again"
            ),
            Err(e @ FleetError::Fenced { .. }) => {
                tracing::warn!(job = claim.name, "{e}")
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}
