//! A fleet's run on a machine other than the agent that started it. Its jobs ran on whichever
//! agents claimed them, so its directory (the pipeline file, the tree it ran) is on the agent
//! that started it only, and its jobs' artifacts are in the object store only. A release from a
//! laptop, or from another agent once the first is gone, makes here what it needs from the
//! run's commit and from the object store.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::publish::{refs, shared_outputs};
use super::record::git_run_dir;
use super::{Context, EngineError, Internal};
use crate::git::{self, Rev};
use crate::objects::Tree;
use crate::plan::Plan;
use crate::reuse::SharedOutputs;
use crate::store::{self, JobRecord, RunId, RunRecord, UNCLAIMED};
use crate::workspace::{checkout, RunDir};

/// Makes run `id`'s directory on this machine, when it has none here and its jobs ran from the
/// fleet's queue: the pipeline file at the run's commit, refused unless it is the one the run
/// started with, and the commit's tree as what the run ran. Blocking: it checks the commit out.
pub(super) fn directory(
    ctx: &Context,
    id: RunId,
    record: &RunRecord,
    jobs: &[JobRecord],
) -> Result<(), EngineError> {
    let project = &ctx.project;
    if RunDir::at(project, id).root.exists() || !jobs.iter().any(|j| j.epoch != UNCLAIMED) {
        return Ok(());
    }
    let Some(commit) = &record.commit else {
        return Err(Internal::Backend(format!("run {id} of the fleet has no commit")).into());
    };
    let resolved = git::resolve(project, Rev::Commit(commit), None).map_err(|e| {
        EngineError::Invalid(format!(
            "run {id} ran commit {commit}, which is not in this clone ({e}): fetch it first"
        ))
    })?;
    let checkout = checkout::take(project, &resolved.tree).map_err(Internal::Checkout)?;
    let file = Path::new(&record.pipeline_file);
    let text = std::fs::read(checkout.files().join(file))
        .map_err(Internal::io(format!("read {}", file.display())))?;
    if format!("{:x}", Sha256::digest(&text)) != record.pipeline_sha256 {
        return Err(EngineError::Invalid(format!(
            "{} at commit {commit} is not the pipeline run {id} started with",
            file.display()
        )));
    }
    git_run_dir(project, id, &text, &resolved.tree)?;
    Ok(())
}

/// Lays into `run`'s directory the artifacts of the jobs `plan` needs that ran from the fleet's
/// queue, from the object store, as published by the claim whose finish the queue accepted (the
/// epoch their records name). Those of jobs run here are in the directory already.
pub(super) async fn artifacts(
    ctx: &Context,
    plan: &Plan,
    jobs: &[JobRecord],
    run: &RunDir,
) -> Result<(), EngineError> {
    let Some(shared) = shared_outputs(ctx) else {
        return Ok(());
    };
    let needs = plan.prior.iter().flatten().filter(|p| p.has_artifacts);
    for need in needs {
        let ran = jobs
            .iter()
            .find(|j| j.name == need.name && j.phase == store::Phase::Main && j.epoch != UNCLAIMED);
        let Some(ran) = ran else { continue };
        if run.artifacts(&need.slug).exists() {
            continue;
        }
        lay(&shared, run, &need.name, &need.slug, ran.epoch).await?;
    }
    Ok(())
}

/// Lays the artifacts that job `name` (`slug`) of `run` published at claim `epoch` into the
/// run's directory, each file checked against its hash.
pub(super) async fn lay(
    shared: &SharedOutputs,
    run: &RunDir,
    name: &str,
    slug: &str,
    epoch: i64,
) -> Result<(), EngineError> {
    let manifest = shared.artifacts_name(run.id, slug, epoch);
    let tree: Tree = match shared.objects.get_record(&refs(&manifest)).await {
        Ok(Some(json)) => serde_json::from_slice(&json).map_err(|e| {
            Internal::Backend(format!("the artifacts of `{name}` do not read: {e}"))
        })?,
        Ok(None) => {
            return Err(Internal::Backend(format!(
                "the artifacts of `{name}` are not in the object store {}",
                shared.objects.shown()
            ))
            .into())
        }
        Err(e) => return Err(Internal::Backend(e.to_string()).into()),
    };
    let (dest, scratch) = (run.artifacts(slug), run.root.join("laying"));
    (shared.objects.get_tree(&tree, &dest, &scratch).await)
        .map_err(|e| Internal::Backend(e.to_string()))?;
    Ok(())
}
