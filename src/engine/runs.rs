//! What the store remembers — runs, one run in full, a job's log as it grows — and cleaning up
//! what runs whose process is gone left behind.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::record::{open_store, recorded, recorded_store};
use super::release::next_step;
use super::{Context, EngineError, Internal, Pull, StoreAt};
use crate::backend::docker::{self, DockerBackend};
use crate::backend::{local, BackendError};
use crate::owner::project_key;
use crate::store::{Approval, AuditEntry, JobRecord, RunRecord, RunState, SqliteStore, Store};
use crate::workspace;

/// The project's runs, newest first; only those that deployed to `environment` when given.
/// Where pipe never ran there are none, and nothing is created for saying so.
pub fn list_runs(
    ctx: &Context,
    environment: Option<&str>,
    limit: usize,
) -> Result<Vec<RunRecord>, EngineError> {
    if ctx.store == StoreAt::Project && !SqliteStore::exists(&ctx.project) {
        return Ok(Vec::new());
    }
    Ok(open_store(ctx)?.runs(environment, limit)?)
}

/// A run in full.
#[derive(Debug)]
pub struct Shown {
    pub run: RunRecord,
    pub jobs: Vec<JobRecord>,
    pub approvals: Vec<Approval>,
    pub audit: Vec<AuditEntry>,
    /// What the gate waits for, for a run waiting at it.
    pub gate: Option<String>,
}

pub fn show(ctx: &Context, run: &str) -> Result<Shown, EngineError> {
    let mut store = recorded(ctx, run)?;
    let id = store.resolve(run)?;
    let record = store.run(id)?;
    let waiting = matches!(
        record.state,
        RunState::AwaitingRelease | RunState::ReleaseFailed
    );
    let gate = if waiting {
        Some(next_step(ctx, store.as_mut(), id)?)
    } else {
        None
    };
    Ok(Shown {
        run: record,
        jobs: store.jobs(id)?,
        approvals: store.approvals(id)?,
        audit: store.audit_trail(id)?,
        gate,
    })
}

/// A piece of what [`job_log`] reads.
pub enum LogChunk<'a> {
    /// The next job's log begins (said only when several are read).
    Job(&'a str),
    /// The job has no log: it never ran (its status says why).
    NoLog {
        job: &'a str,
        status: &'a str,
    },
    Text(&'a [u8]),
}

/// Reads run `run`'s log of `job` (default: every job's that has one, one after the other) into
/// `out`; with `follow`, keeps reading what is appended until the job is over.
pub fn job_log(
    project: &Path,
    run: &str,
    job: Option<&str>,
    follow: bool,
    out: &mut dyn FnMut(LogChunk) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut store = recorded_store(project, run)?;
    let id = store.resolve(run)?;
    let jobs = store.jobs(id)?;
    let chosen = chosen_logs(id, &jobs, job)?;
    let several = chosen.len() > 1;
    for job in chosen {
        if several {
            out(LogChunk::Job(&job.name))?;
        }
        let path = project.join(&job.log);
        if (job.log.is_empty() || !path.is_file()) && !follow {
            out(LogChunk::NoLog {
                job: &job.name,
                status: &job.status,
            })?;
            continue;
        }
        read_log(&mut store, project, id, &job.name, follow, out)?;
        for (service, path) in service_logs(project, job) {
            out(LogChunk::Job(&format!("{} · service {service}", job.name)))?;
            let text = std::fs::read(&path).map_err(Internal::io(format!(
                "read the log of service `{service}` of job `{}`",
                job.name
            )))?;
            out(LogChunk::Text(&text))?;
        }
    }
    Ok(())
}

/// Of run `id`'s `jobs`, the one named `job`, or every one that has a log.
pub(super) fn chosen_logs<'a>(
    id: i64,
    jobs: &'a [JobRecord],
    job: Option<&str>,
) -> Result<Vec<&'a JobRecord>, EngineError> {
    Ok(match job {
        Some(name) => {
            let job = jobs.iter().find(|j| j.name == name).ok_or_else(|| {
                let hint = crate::pipeline::suggest(name, jobs.iter().map(|j| j.name.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                EngineError::Invalid(format!("run {id} has no job `{name}`{hint}"))
            })?;
            vec![job]
        }
        None => jobs.iter().filter(|j| !j.log.is_empty()).collect(),
    })
}

/// The logs of a job's services (`NAME.log` in a folder beside the job's log), by service
/// name, sorted.
pub fn service_logs(project: &Path, job: &JobRecord) -> Vec<(String, PathBuf)> {
    if job.log.is_empty() {
        return Vec::new();
    }
    let dir = project.join(&job.log).with_extension("services");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut logs: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".log")?.to_string();
            Some((name, e.path()))
        })
        .collect();
    logs.sort();
    logs
}

fn read_log(
    store: &mut dyn Store,
    project: &Path,
    id: i64,
    job: &str,
    follow: bool,
    out: &mut dyn FnMut(LogChunk) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut offset = 0u64;
    // Woken by a write to the run's logs or to the store (a job's status); the slow timer is
    // for a change the watch cannot see (a folder made after it began).
    let wakeups = follow
        .then(|| {
            let dirs = [
                project.join(crate::workspace::STATE_DIR),
                crate::workspace::RunDir::at(project, id).logs(),
            ];
            crate::watch::Wakeups::watch(&dirs)
        })
        .transpose()
        .map_err(|e| EngineError::Internal(Internal::Watch(e)))?;
    loop {
        // The record is read each time: a pending job gets its log file when it starts.
        let record = store.jobs(id)?.into_iter().find(|j| j.name == job);
        let still_running = follow
            && record
                .as_ref()
                .is_some_and(|j| matches!(j.status.as_str(), "running" | "pending" | "waiting"))
            && store.run(id)?.state.is_active();
        let path = record
            .filter(|j| !j.log.is_empty())
            .map(|j| project.join(j.log));
        if let Some(mut f) = path.and_then(|p| std::fs::File::open(p).ok()) {
            let mut chunk = Vec::new();
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_to_end(&mut chunk))
                .map_err(Internal::io(format!("read the log of job `{job}`")))?;
            offset += chunk.len() as u64;
            out(LogChunk::Text(&chunk))?;
        }
        if !still_running {
            return Ok(());
        }
        if let Some(wakeups) = &wakeups {
            wakeups.wait(Duration::from_secs(2));
        }
    }
}

/// Empties the project's kept checkouts of commits that no run holds (see
/// `workspace::checkout`); how many. Apart from [`clean`], which the agent runs at every start:
/// emptied, a checkout costs the next run of a commit its whole tree.
pub fn empty_checkouts(project: &Path) -> Result<usize, EngineError> {
    workspace::checkout::clean(project).map_err(Internal::io("empty the kept checkouts"))
}

/// What [`clean`] removed.
#[derive(Debug)]
pub struct Cleaned {
    /// Containers and volumes; `None` when no Docker engine answers (none were looked for).
    pub docker: Option<(usize, usize)>,
    pub local_workspaces: usize,
    pub run_dirs: usize,
}

/// Removes what runs whose pipe process is gone left behind: containers and volumes found by
/// label, local job workspaces and cgroups, and per-job scratch space under the project's
/// `.pipe/runs`. Only the project's own leftovers unless `all`.
pub async fn clean(project: &Path, all: bool) -> Result<Cleaned, EngineError> {
    let key = project_key(project);
    let scope = (!all).then_some(key.as_str());
    let run_dirs = workspace::clean_dead_runs(project).map_err(Internal::io("clean .pipe/runs"))?;
    let local_workspaces =
        local::clean(scope).map_err(Internal::io("clean local job workspaces"))?;
    let docker = async {
        let docker = docker::connect().await?;
        DockerBackend::new(docker, Pull::Never, Duration::ZERO)
            .clean(scope)
            .await
    };
    let docker = match docker.await {
        Ok(removed) => Some(removed),
        // Without an engine there are no containers to look for; the files are done.
        Err(BackendError::Unavailable(_)) => None,
        Err(e) => return Err(Internal::Backend(e.to_string()).into()),
    };
    Ok(Cleaned {
        docker,
        local_workspaces,
        run_dirs,
    })
}
