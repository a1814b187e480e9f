//! A shared run's logs and artifacts read back from the object store, on any machine: each
//! job's under the epoch its record in the run store names (the claim of the fleet's queue
//! whose finish was accepted, or [`crate::store::UNCLAIMED`]), so a reader gets what the jobs
//! below read, never what an agent that lost its claim published.

use std::path::Path;

use super::artifacts::{in_the_way, refused_in_the_way, Artifact};
use super::publish::{refs, shared_outputs};
use super::record::recorded;
use super::runs::LogChunk;
use super::{Context, EngineError, Internal};
use crate::objects::{Kind, ObjectsError, Tree};
use crate::reuse::SharedOutputs;
use crate::store::{JobRecord, RunId};
use crate::workspace;

/// The context's object store; refused when it names none.
fn outputs(ctx: &Context) -> Result<SharedOutputs, EngineError> {
    shared_outputs(ctx).ok_or_else(|| {
        EngineError::Invalid("reading from an object store needs a shared store and an object store (--store and --objects)".into())
    })
}

/// The name a job's outputs are stored under: its log file's, `logs/SLUG.log`, as recorded when
/// it started; `None` for a job that never started.
fn slug(job: &JobRecord) -> Option<&str> {
    Path::new(&job.log).file_stem()?.to_str()
}

fn failed(e: ObjectsError) -> EngineError {
    Internal::Backend(e.to_string()).into()
}

/// Reads run `run`'s log of `job` (default: every job's that has one, one after the other) from
/// the object store into `out`. A job whose log is not there (it never ran, or is running: a
/// log is published when its job ends) has none.
pub async fn shared_job_log(
    ctx: &Context,
    run: &str,
    job: Option<&str>,
    out: &mut dyn FnMut(LogChunk) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let shared = outputs(ctx)?;
    let mut store = recorded(ctx, run)?;
    let id = store.resolve(run)?;
    let jobs = store.jobs(id)?;
    let chosen = super::runs::chosen_logs(id, &jobs, job)?;
    let several = chosen.len() > 1;
    for job in chosen {
        if several {
            out(LogChunk::Job(&job.name))?;
        }
        let read = match slug(job) {
            Some(slug) => {
                let name = shared.log_name(id, slug, job.epoch);
                Some(shared.objects.read_log(&refs(&name)).await)
            }
            None => None,
        };
        match read {
            Some(Ok(text)) => out(LogChunk::Text(&text))?,
            None | Some(Err(ObjectsError::LogOpen { .. })) => out(LogChunk::NoLog {
                job: &job.name,
                status: &job.status,
            })?,
            Some(Err(e)) => return Err(failed(e)),
        }
    }
    Ok(())
}

/// The artifacts of run `run` (a number or `last`) in the object store, of one job (its name,
/// or a matrix job's name for all its variants) or of all.
pub async fn shared_artifacts(
    ctx: &Context,
    run: &str,
    job: Option<&str>,
) -> Result<(RunId, Vec<Artifact>), EngineError> {
    let (id, _, chosen) = manifests(ctx, run, job).await?;
    let mut out = Vec::new();
    for (name, _, tree) in chosen {
        out.extend(tree.entries.into_iter().map(|e| listed(&name, "", e)));
    }
    Ok((id, out))
}

/// Copies the chosen artifacts from the object store into `to`, as
/// [`super::copy_artifacts`] does from a run's folder: nothing in `to` is replaced, and
/// nothing is laid unless every file checks against its hash.
pub async fn copy_shared_artifacts(
    ctx: &Context,
    run: &str,
    job: Option<&str>,
    to: &Path,
) -> Result<(RunId, Vec<Artifact>), EngineError> {
    let (id, shared, chosen) = manifests(ctx, run, job).await?;
    let one = job.is_some();
    let prefix = |slug: &str| if one { String::new() } else { slug.to_string() };
    let taken: Vec<String> = (chosen.iter())
        .flat_map(|(_, slug, tree)| {
            let prefix = prefix(slug);
            tree.entries
                .iter()
                .map(move |e| Path::new(&prefix).join(&e.path))
        })
        .filter(|dest| in_the_way(to, dest))
        .map(|dest| dest.display().to_string())
        .collect();
    if !taken.is_empty() {
        return Err(refused_in_the_way(id, to, taken));
    }
    let scratch = workspace::state_dir(&ctx.project)
        .map_err(Internal::io("make the project's .pipe folder"))?
        .join(format!("copying-{}", std::process::id()));
    let mut out = Vec::new();
    for (name, slug, tree) in chosen {
        let prefix = prefix(&slug);
        (shared
            .objects
            .get_tree(&tree, &to.join(&prefix), &scratch)
            .await)
            .map_err(failed)?;
        out.extend(tree.entries.into_iter().map(|e| listed(&name, &prefix, e)));
    }
    Ok((id, out))
}

fn listed(job: &str, prefix: &str, entry: crate::objects::Entry) -> Artifact {
    let (size, link) = match entry.kind {
        Kind::File { size, .. } => (size, None),
        Kind::Link { target } => (0, Some(target)),
    };
    Artifact {
        job: job.to_string(),
        path: Path::new(prefix).join(&entry.path).display().to_string(),
        size,
        link,
    }
}

/// The run, the object store, and the artifacts' manifests of the chosen jobs that have one,
/// each with the job's name and slug, in the order the run store keeps its jobs.
async fn manifests(
    ctx: &Context,
    run: &str,
    job: Option<&str>,
) -> Result<(RunId, SharedOutputs, Vec<(String, String, Tree)>), EngineError> {
    let shared = outputs(ctx)?;
    let mut store = recorded(ctx, run)?;
    let id = store.resolve(run)?;
    let jobs = store.jobs(id)?;
    let matrix = job.map(|j| format!("{j} ["));
    let chosen: Vec<&JobRecord> = match (job, &matrix) {
        (Some(name), Some(variant)) => (jobs.iter())
            .filter(|j| j.name == name || j.name.starts_with(variant.as_str()))
            .collect(),
        _ => jobs.iter().collect(),
    };
    if let (Some(name), true) = (job, chosen.is_empty()) {
        let hint = crate::pipeline::suggest(name, jobs.iter().map(|j| j.name.as_str()))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(EngineError::Invalid(format!(
            "run {id} has no job `{name}`{hint}"
        )));
    }
    let mut found = Vec::new();
    for job in chosen {
        let Some(slug) = slug(job) else { continue };
        let name = shared.artifacts_name(id, slug, job.epoch);
        // A job that published nothing (it never ran, or runs still) has no artifacts.
        let Some(json) = (shared.objects.get_record(&refs(&name)).await).map_err(failed)? else {
            continue;
        };
        let tree: Tree = serde_json::from_slice(&json).map_err(|e| {
            failed(ObjectsError::Record {
                name: name.join("/"),
                why: e.to_string(),
            })
        })?;
        found.push((job.name.clone(), slug.to_string(), tree));
    }
    Ok((id, shared, found))
}
