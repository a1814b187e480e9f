//! `pipe retry RUN`: a new run of the same snapshot and pipeline; `--failed` reruns, in the same
//! run, only the jobs that did not pass, keeping the others' results and artifacts.

use super::run::{
    actor, announce, builtin_env, exit_code, fail_run, finish_main, new_run_dir, pipe_failed,
    project_dir, prune_snapshots, recorded_facts, recorded_jobs, recorded_store, runtime,
    store_error, ExecArgs, KEPT_SNAPSHOTS,
};
use super::{CliError, Internal};
use crate::plan::{self, Phase, Selection};
use crate::store::{self, NewRun, RunState, Store};
use crate::workspace::{self, RunDir};

#[derive(clap::Args)]
pub struct Args {
    /// The run: its number, or `last`
    run: String,
    /// Rerun only the jobs that failed (and those skipped because of them), in the same run
    #[arg(long)]
    failed: bool,
    #[command(flatten)]
    exec: ExecArgs,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let project = project_dir()?;
    let mut store = recorded_store(&project, &args.run)?;
    let id = store.resolve(&args.run).map_err(store_error)?;
    let record = store.run(id).map_err(store_error)?;
    if record.state.is_active() {
        return Err(CliError::Refused(format!("run {id} is still running")));
    }
    let old = RunDir::at(&project, id);
    let exec = args.exec.following(&old);
    if !old.source().is_dir() {
        return Err(CliError::Refused(format!(
            "the source snapshot of run {id} is gone: pipe keeps those of the {KEPT_SNAPSHOTS} newest runs and of runs that reached the release gate; start a new run with `pipe run`"
        )));
    }
    let pipeline = super::gate::stored_pipeline(&old, &record)?;
    let gated = pipeline.jobs.iter().any(|j| j.gated);
    let git = recorded_facts(&record);
    let jobs = store.jobs(id).map_err(store_error)?;

    let (run, plan, new_id) = if args.failed {
        if !matches!(record.state, RunState::Failed | RunState::Interrupted) {
            return Err(CliError::Refused(format!(
                "run {id} has no failed jobs to retry (it is {})",
                record.state.as_str().replace('_', " ")
            )));
        }
        let done: Vec<String> = jobs
            .iter()
            .filter(|j| j.phase == store::Phase::Main && j.succeeded())
            .map(|j| j.name.clone())
            .collect();
        let plan = plan::build(
            &pipeline,
            Selection {
                phase: Phase::Main,
                only: &[],
                done: &done,
            },
        )
        .map_err(|problems| CliError::Plan {
            file: old.pipeline_file(),
            problems,
        })?;
        exec.check_jobs(&old.pipeline_file(), &plan.jobs)?;
        let again: Vec<String> = plan.jobs.iter().map(|j| j.name.clone()).collect();
        exec.stop_orphans(&project, &mut store, id)?;
        store
            .claim_run(id, record.state, RunState::Running)
            .map_err(store_error)?;
        // Only the process that took the run over owns its directory and resets its jobs.
        let old = RunDir::open(&project, id)
            .map_err(Internal::io(format!("open the directory of run {id}")))?;
        store.reset_jobs(id, &again).map_err(store_error)?;
        store
            .audit(
                id,
                &actor(),
                "retry",
                &format!("rerunning {}", again.join(", ")),
            )
            .map_err(store_error)?;
        (old, plan, id)
    } else {
        let plan = plan::build(
            &pipeline,
            Selection {
                phase: Phase::Main,
                only: &[],
                done: &[],
            },
        )
        .map_err(|problems| CliError::Plan {
            file: old.pipeline_file(),
            problems,
        })?;
        exec.check_jobs(&old.pipeline_file(), &plan.jobs)?;
        let new = NewRun {
            pipeline_name: record.pipeline_name.clone(),
            pipeline_file: record.pipeline_file.clone(),
            pipeline_sha256: record.pipeline_sha256.clone(),
            commit: record.commit.clone(),
            branch: record.branch.clone(),
            tags: record.tags.clone(),
            // The same snapshot, so the same uncommitted changes.
            changed_paths: record.changed_paths,
            trigger: format!("retry of run {id}"),
            actor: actor(),
        };
        let jobs = recorded_jobs(pipeline.jobs.iter());
        let text = std::fs::read(old.pipeline_file())
            .map_err(Internal::io(format!("read the pipeline file of run {id}")))?;
        let new_id = store.create_run(&new, &jobs).map_err(store_error)?;
        let run = new_run_dir(&project, new_id, &text, |run| {
            workspace::lay(&old.source(), &run.source(), std::path::Path::new(""))
                .map(|_| ())
                .map_err(|e| {
                    let _ = workspace::remove(&run.source());
                    Internal::io(format!("copy the snapshot of run {id}"))(e)
                })
        })
        .map_err(|e| fail_run(&mut store, new_id, e))?;
        (run, plan, new_id)
    };
    let result = runtime()
        .and_then(|rt| {
            rt.block_on(exec.execute(
                &project,
                &plan,
                &run,
                store::Phase::Main,
                builtin_env(&run, &git),
                &record.pipeline_file,
            ))
        })
        .map_err(|e| fail_run(&mut store, new_id, e))?;
    let state = finish_main(&mut store, new_id, &result, gated)?;
    prune_snapshots(&project, &mut store)?;
    pipe_failed(new_id, &result)?;
    announce(&mut store, new_id, state, exec.output)?;
    Ok(exit_code(&result))
}
