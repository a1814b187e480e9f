//! A run's artifacts, listed or copied out of `.pipe/runs/N/artifacts/`. What a job left there
//! is never trusted: nothing is followed (a link is listed, and copied, as a link), nothing is
//! written outside the destination, and nothing already in the destination is replaced.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::load::stored_pipeline;
use super::project::normalize;
use super::record::recorded_store;
use super::{EngineError, Internal};
use crate::plan::{self, Plan};
use crate::store::{RunId, Store};
use crate::workspace::{self, RunDir};

/// How many of the paths in the way a refusal names.
const SHOWN: usize = 5;

/// One file (or link) a job handed on.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub job: String,
    /// Relative to the job's workspace, as the job declared it.
    pub path: String,
    pub size: u64,
    /// Where a link points, as the job wrote it.
    pub link: Option<String>,
}

/// The artifacts of run `run` (a number or `last`), of one job (its name, or a matrix job's
/// name for all its variants) or of all.
pub fn artifacts(
    project: &Path,
    run: &str,
    job: Option<&str>,
) -> Result<(RunId, Vec<Artifact>), EngineError> {
    let (id, dir, jobs) = chosen_jobs(project, run, job)?;
    let mut out = Vec::new();
    for (name, slug) in jobs {
        let entries = workspace::walk(&dir.artifacts(&slug))
            .map_err(Internal::io(format!("read the artifacts of job `{name}`")))?;
        out.extend(entries.into_iter().map(|e| Artifact {
            job: name.clone(),
            path: e.path.display().to_string(),
            size: e.size,
            link: e.link.map(|l| l.display().to_string()),
        }));
    }
    Ok((id, out))
}

/// Copies the chosen artifacts into `to`: one job's at `to/PATH`, all jobs' at `to/JOB/PATH`
/// (JOB as the job's file-safe name). Refuses, copying nothing, when any of them would replace
/// something in `to`. Returns what was copied.
pub fn copy_artifacts(
    project: &Path,
    run: &str,
    job: Option<&str>,
    to: &Path,
) -> Result<(RunId, Vec<Artifact>), EngineError> {
    let (id, dir, jobs) = chosen_jobs(project, run, job)?;
    let one = job.is_some();
    let mut laid = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for (name, slug) in &jobs {
        let from = dir.artifacts(slug);
        let prefix = if one {
            PathBuf::new()
        } else {
            PathBuf::from(slug)
        };
        let entries = workspace::walk(&from)
            .map_err(Internal::io(format!("read the artifacts of job `{name}`")))?;
        for e in &entries {
            let dest = prefix.join(&e.path);
            if in_the_way(to, &dest) {
                taken.push(dest.display().to_string());
            }
        }
        if !entries.is_empty() {
            laid.push((name.clone(), from, prefix, entries));
        }
    }
    if !taken.is_empty() {
        return Err(refused_in_the_way(id, to, taken));
    }
    let mut out = Vec::new();
    for (name, from, prefix, entries) in laid {
        workspace::lay(&from, &to.join(&prefix), Path::new(""))
            .map_err(Internal::io(format!("copy the artifacts of job `{name}`")))?;
        out.extend(entries.into_iter().map(|e| Artifact {
            job: name.clone(),
            path: prefix.join(&e.path).display().to_string(),
            size: e.size,
            link: e.link.map(|l| l.display().to_string()),
        }));
    }
    Ok((id, out))
}

/// The refusal of a copy whose artifacts would replace the paths `taken` in `to`.
pub(super) fn refused_in_the_way(id: RunId, to: &Path, mut taken: Vec<String>) -> EngineError {
    let more = taken.len().saturating_sub(SHOWN);
    taken.truncate(SHOWN);
    if more > 0 {
        taken.push(format!("{more} more"));
    }
    EngineError::Invalid(format!(
        "copied nothing: the artifacts of run {id} would replace what is in {} already: {} (remove those, or copy to another folder)",
        normalize(to).display(),
        taken.join(", "),
    ))
}

/// Whether laying `rel` beneath `root` would replace something: a thing at its place, or a
/// non-directory (a file, a link) where one of its folders goes. Looked at without following.
pub(super) fn in_the_way(root: &Path, rel: &Path) -> bool {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Err(_) => return false,
            Ok(meta) if i + 1 == parts.len() || !meta.is_dir() => return true,
            Ok(_) => {}
        }
    }
    false
}

/// A job's name, and the file-safe name its artifacts are stored under.
type Named = (String, String);

/// The run, its directory, and the chosen jobs, in the pipeline's order.
pub(super) fn chosen_jobs(
    project: &Path,
    run: &str,
    job: Option<&str>,
) -> Result<(RunId, RunDir, Vec<Named>), EngineError> {
    let mut store = recorded_store(project, run)?;
    let id = store.resolve(run)?;
    let record = store.run(id)?;
    let dir = RunDir::at(project, id);
    let pipeline = stored_pipeline(&dir, &record)?;
    // The slugs the run's jobs were stored under: the plan's, for the pipeline the run ran.
    let plan: Plan =
        plan::build(&pipeline, plan::Selection::all()).map_err(|problems| EngineError::Plan {
            file: dir.pipeline_file(),
            problems,
        })?;
    let all = plan
        .jobs
        .iter()
        .zip(&plan.slugs)
        .map(|(j, slug)| (j, (j.name.clone(), slug.clone())));
    let chosen: Vec<Named> = match job {
        None => all.map(|(_, pair)| pair).collect(),
        Some(name) => all
            .filter(|(j, _)| j.name == name || j.base == name)
            .map(|(_, pair)| pair)
            .collect(),
    };
    if let (Some(name), true) = (job, chosen.is_empty()) {
        let hint = crate::pipeline::suggest(name, plan.jobs.iter().map(|j| j.name.as_str()))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(EngineError::Invalid(format!(
            "run {id} has no job `{name}`{hint}"
        )));
    }
    Ok((id, dir, chosen))
}
