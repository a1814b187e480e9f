//! What a release and its rollback both do before their jobs run: take the files the run ran
//! on, plan the release phase, check its jobs and resolve their secrets.

use super::source::Files;
use super::{Context, EngineError, ExecOptions, Refusal};
use crate::pipeline::Pipeline;
use crate::plan::{self, Phase, Plan, Selection};
use crate::secret::Secrets;
use crate::store::RunId;
use crate::workspace::RunDir;

/// A release phase ready to run.
pub(super) struct Setup {
    pub files: Files,
    pub plan: Plan,
    /// What the checks granted, for the audit trail.
    pub granted: Vec<String>,
    pub secrets: Secrets,
}

/// Readies run `id`'s release jobs of `pipeline`, those in `done` counted as done. Secrets come
/// from whoever releases (or rolls back), not from who ran.
pub(super) async fn release_setup(
    ctx: &Context,
    exec: &ExecOptions,
    id: RunId,
    run: &RunDir,
    pipeline: &Pipeline,
    done: &[String],
) -> Result<Setup, EngineError> {
    // Held from before the run is taken over: a checkout that cannot be had leaves it as it was.
    let Some(files) = super::source::recorded(&ctx.project, run).await? else {
        return Err(Refusal::ReleaseSnapshotGone(id).into());
    };
    let file = run.pipeline_file();
    let mut plan = plan::build(
        pipeline,
        Selection {
            done,
            ..Selection::of(Phase::Release)
        },
    )
    .map_err(|problems| EngineError::Plan {
        file: file.clone(),
        problems,
    })?;
    let granted = exec.check_jobs(ctx, &file, &plan.jobs).await?;
    let secrets = exec.prepare_env(ctx, &file, pipeline, &mut plan).await?;
    Ok(Setup {
        files,
        plan,
        granted,
        secrets,
    })
}
