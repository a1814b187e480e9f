//! `pipe approve` and `pipe release`: the gate between deploying and releasing.

use std::path::Path;

use super::run::{
    actor, announce, builtin_env, exit_code, pipe_failed, privileges_asked, project_dir,
    recorded_facts, recorded_store, runs_on_docker, runtime, store_error, ExecArgs,
};
use super::{exit, print, CliError, Internal};
use crate::plan::{self, Phase, Selection};
use crate::release;
use crate::store::{self, RunId, RunRecord, RunState, Store};
use crate::workspace::RunDir;

#[derive(clap::Args)]
pub struct ApproveArgs {
    /// The run: its number, or `last`
    run: String,
    /// Who approves [default: $PIPE_USER, else the login name]; names differing only in case
    /// are one person
    #[arg(long)]
    by: Option<String>,
    #[arg(long)]
    comment: Option<String>,
}

#[derive(clap::Args)]
pub struct ReleaseArgs {
    /// The run: its number, or `last`
    run: String,
    /// Release a run that was released before (recorded in the audit trail)
    #[arg(long)]
    again: bool,
    #[command(flatten)]
    exec: ExecArgs,
}

pub fn approve(args: ApproveArgs) -> Result<u8, CliError> {
    let project = project_dir()?;
    let mut store = recorded_store(&project, &args.run)?;
    let id = store.resolve(&args.run).map_err(store_error)?;
    let record = store.run(id).map_err(store_error)?;
    let by = args.by.map_or_else(actor, |by| by.trim().to_string());
    if by.is_empty() {
        return Err(CliError::Usage(
            "an approval needs the approver's name: `--by NAME`".into(),
        ));
    }
    refuse_unless_releasable(&mut store, &record, false, &by, "approve refused")?;
    let new = store
        .approve(id, &by, args.comment.as_deref(), clock()?)
        .map_err(store_error)?;
    let needed = approvals_needed(&project, &record)?;
    let count = store.approvals(id).map_err(store_error)?.len();
    let again = if new { "" } else { " (already counted)" };
    print(&format!(
        "run {id} approved by {by}{again}: {count} of {needed} approval(s)\n"
    ))?;
    eprintln!("{}", next_step(&mut store, id)?);
    Ok(exit::OK)
}

pub fn release(args: ReleaseArgs) -> Result<u8, CliError> {
    let project = project_dir()?;
    let mut store = recorded_store(&project, &args.run)?;
    let id = store.resolve(&args.run).map_err(store_error)?;
    release_now(&project, &mut store, id, &args.exec, args.again, false)
}

/// Runs the release jobs of run `id` if the gate holds. `automatic` (from `pipe run --release`)
/// goes through only when the gate asks for no approval; otherwise the run stays at the gate.
pub fn release_now(
    project: &Path,
    store: &mut dyn Store,
    id: RunId,
    exec: &ExecArgs,
    again: bool,
    automatic: bool,
) -> Result<u8, CliError> {
    let record = store.run(id).map_err(store_error)?;
    refuse_unless_releasable(store, &record, again, &actor(), "release refused")?;
    let run = RunDir::at(project, id);
    let exec = &exec.following(&run);
    let pipeline = stored_pipeline(&run, &record)?;
    let gates = pipeline.gates();
    let jobs = store.jobs(id).map_err(store_error)?;
    let approvals = store.approvals(id).map_err(store_error)?;
    if let Some(first) = release::unmet(&gates, &record, &jobs, &approvals, clock()?)
        .into_iter()
        .next()
    {
        if automatic {
            announce(store, id, RunState::AwaitingRelease, exec.output)?;
            return Ok(exit::OK);
        }
        let why = first.to_string();
        store
            .audit(id, &actor(), "release refused", &why)
            .map_err(store_error)?;
        return Err(CliError::Refused(format!(
            "run {id} cannot be released: {why}"
        )));
    }
    if !run.source().is_dir() {
        return Err(CliError::Refused(format!(
            "the source snapshot of run {id} is gone, so it cannot be released"
        )));
    }
    let plan = plan::build(
        &pipeline,
        Selection {
            phase: Phase::Release,
            only: &[],
            done: &[],
        },
    )
    .map_err(|problems| CliError::Plan {
        file: run.pipeline_file(),
        problems,
    })?;
    exec.check_jobs(&run.pipeline_file(), &plan.jobs)?;
    exec.stop_orphans(project, store, id)?;
    store
        .claim_run(id, record.state, RunState::Releasing)
        .map_err(store_error)?;
    // Only the process that took the run over owns its directory.
    let run = RunDir::open(project, id)
        .map_err(Internal::io(format!("open the directory of run {id}")))?;
    let how = if record.state == RunState::Released {
        "released again (--again)"
    } else {
        "release started"
    };
    store
        .audit(id, &actor(), "release", how)
        .map_err(store_error)?;

    // The release runs for the run's own commit, on its own snapshot and artifacts.
    let git = recorded_facts(&record);
    let result = runtime()?.block_on(exec.execute(
        project,
        &plan,
        &run,
        store::Phase::Release,
        builtin_env(&run, &git),
        &record.pipeline_file,
    ))?;
    let state = match result.status {
        crate::event::RunStatus::Passed => RunState::Released,
        crate::event::RunStatus::Failed => RunState::ReleaseFailed,
        // Nothing was released: the run waits at the gate again.
        crate::event::RunStatus::Interrupted => RunState::AwaitingRelease,
    };
    store
        .set_state(id, state, state != RunState::AwaitingRelease)
        .map_err(store_error)?;
    let detail = match (&result.pipe_failure, &result.backend_lost) {
        (Some(why), _) => format!("pipe failed: {why}"),
        (None, Some(why)) => format!("interrupted by its environment: {why}"),
        (None, None) => "release jobs finished".into(),
    };
    store
        .audit(id, &actor(), state.as_str(), &detail)
        .map_err(store_error)?;
    pipe_failed(id, &result)?;
    Ok(exit_code(&result))
}

/// Refuses, in one sentence and in the audit trail, a run that is not waiting at its gate.
fn refuse_unless_releasable(
    store: &mut dyn Store,
    record: &RunRecord,
    again: bool,
    actor: &str,
    action: &str,
) -> Result<(), CliError> {
    let Err(why) = releasable(record, again) else {
        return Ok(());
    };
    store
        .audit(record.id, actor, action, &why)
        .map_err(store_error)?;
    Err(CliError::Refused(why))
}

/// Why a run cannot be approved or released now, if it cannot.
fn releasable(record: &RunRecord, again: bool) -> Result<(), String> {
    let id = record.id;
    let why = match record.state {
        RunState::AwaitingRelease | RunState::ReleaseFailed => return Ok(()),
        RunState::Released if again => return Ok(()),
        RunState::Released => format!("run {id} is already released; `pipe release {id} --again` releases it once more"),
        RunState::Running => format!("run {id} is still running"),
        RunState::Releasing => format!("run {id} is being released by another pipe process"),
        RunState::Failed => format!("run {id} failed, and only a run whose jobs before the gate all passed can be released"),
        RunState::Interrupted => format!("run {id} was interrupted before its jobs finished; `pipe retry {id} --failed` finishes it"),
        RunState::Passed => format!("run {id} has no release stage: there is nothing to release"),
    };
    Err(why)
}

/// The pipeline as the run was started with it, under the run's own name.
pub fn stored_pipeline(
    run: &RunDir,
    record: &RunRecord,
) -> Result<crate::pipeline::Pipeline, CliError> {
    let mut pipeline = crate::pipeline::load(&run.pipeline_file())?;
    pipeline.name = record.pipeline_name.clone();
    Ok(pipeline)
}

/// The approvals the run's release needs: the most any of its release jobs asks for.
fn approvals_needed(project: &Path, record: &RunRecord) -> Result<u32, CliError> {
    let pipeline = stored_pipeline(&RunDir::at(project, record.id), record)?;
    Ok(release::approvals_needed(&pipeline.gates()))
}

fn clock() -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    release::now().map_err(CliError::Usage)
}

/// One line that says what the gate waits for and what to type next.
pub fn next_step(store: &mut dyn Store, id: RunId) -> Result<String, CliError> {
    let project = project_dir()?;
    let record = store.run(id).map_err(store_error)?;
    let run = RunDir::at(&project, id);
    let pipeline = stored_pipeline(&run, &record)?;
    let gates = pipeline.gates();
    let approvals = store.approvals(id).map_err(store_error)?;
    let jobs = store.jobs(id).map_err(store_error)?;
    let missing = (release::approvals_needed(&gates) as usize).saturating_sub(approvals.len());
    let unmet = release::unmet(&gates, &record, &jobs, &approvals, clock()?);
    // A release job that Docker would refuse as privileged: the command to type says so.
    let asks = privileges_asked(pipeline.jobs.iter().filter(|j| j.gated));
    let (flag, why) = match asks.first().filter(|_| runs_on_docker(&run)) {
        Some((job, _, what)) => (
            " --allow-privileged",
            format!(
                " (release job `{}` asks for {what}, which pipe refuses without --allow-privileged)",
                job.name
            ),
        ),
        None => ("", String::new()),
    };
    Ok(if unmet.is_empty() {
        format!("release {id} is ready: pipe release {id}{flag}{why}")
    } else if unmet
        .iter()
        .all(|u| u.condition == release::Condition::Approvals)
    {
        format!(
            "release {id} awaits {missing} approval{}: pipe approve {id}, then pipe release {id}{flag}{why}",
            if missing == 1 { "" } else { "s" }
        )
    } else {
        let reasons: Vec<String> = unmet.iter().map(ToString::to_string).collect();
        format!(
            "release {id} waits at the gate: {}{why}",
            reasons.join("; ")
        )
    })
}
