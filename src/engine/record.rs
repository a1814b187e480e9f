//! A run's record: its directory, its state after each phase, and what is kept of it.

use std::path::Path;

use super::{Context, EngineError, Internal, Outcome, StoreAt};
use crate::event::RunStatus;
use crate::reuse::Manifest;
use crate::run::RunResult;
use crate::store::{
    self, PostgresStore, RunId, RunRecord, RunState, SqliteStore, Store, StoreError,
};
use crate::workspace::{self, private, shared, RunDir};

/// How many of the newest runs keep their snapshot for a retry, whatever their state.
pub const KEPT_SNAPSHOTS: usize = 10;

/// The store, for a request about the recorded run `run`: where nothing was ever recorded
/// there is no such run, and no `.pipe` is created for saying so.
pub(super) fn recorded_store(project: &Path, run: &str) -> Result<SqliteStore, EngineError> {
    if !SqliteStore::exists(project) {
        return Err(StoreError::NoSuchRun(run.to_string()).into());
    }
    Ok(SqliteStore::open(project)?)
}

/// The store the context records the project's runs in, opened (or set up) for a new run.
pub(super) fn open_store(ctx: &Context) -> Result<Box<dyn Store>, EngineError> {
    Ok(match &ctx.store {
        StoreAt::Project => Box::new(SqliteStore::open(&ctx.project)?),
        StoreAt::Shared(url) => Box::new(PostgresStore::open(
            url,
            &shared_name(&ctx.project),
            Some(ctx.project.clone()),
        )?),
    })
}

/// A project's name in what a team shares: its folder's name (an agent's clone is named as its
/// repository).
pub(super) fn shared_name(project: &Path) -> String {
    project
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The context's store, for a request about the recorded run `run`.
pub(super) fn recorded(ctx: &Context, run: &str) -> Result<Box<dyn Store>, EngineError> {
    match ctx.store {
        StoreAt::Project => Ok(Box::new(recorded_store(&ctx.project, run)?)),
        StoreAt::Shared(_) => open_store(ctx),
    }
}

/// Lists the files the run changes in its directory, one per line, read-only: what
/// `PIPE_CHANGED_FILES` names.
pub(super) fn write_changed_files(run: &RunDir, files: &[String]) -> Result<(), EngineError> {
    let mut list = files.join("\n");
    if !list.is_empty() {
        list.push('\n');
    }
    let path = run.changed_files();
    private::write(&path, list)
        .and_then(|()| read_only(&path))
        .map_err(Internal::io("list the changed files"))
}

/// Where a new run's source comes from.
pub(super) enum Snapshot {
    /// A snapshot of the project's working tree.
    Tree,
    /// The snapshot of an earlier run (of the run retried, or of one that ran the same tree),
    /// shared: nothing is copied.
    Run(RunId),
    /// A tree from git (of a commit or the index), recorded by its id: its files are in a kept
    /// checkout, not in the run's directory.
    Git(String),
}

/// The directory of new run `id`, with the pipeline file it runs, its source and the files it
/// changes. A copy of the tree is made off the async workers (a large tree takes a while, and
/// other runs go on meanwhile); a copy cut short (a full disk) is removed.
pub(super) async fn new_run_dir(
    project: &Path,
    id: RunId,
    pipeline: &[u8],
    source: Snapshot,
    changed_files: Option<&[String]>,
) -> Result<RunDir, EngineError> {
    let run = begin_run_dir(project, id, pipeline, changed_files)?;
    match source {
        Snapshot::Git(tree) => record_tree(&run, &tree)?,
        Snapshot::Run(old) => {
            let origin = shared::share(project, &run, old)
                .map_err(Internal::io(format!("share the snapshot of run {old}")))?;
            tracing::debug!("run {id} shares the snapshot of run {origin}");
        }
        Snapshot::Tree => {
            let (from, dest) = (project.to_path_buf(), run.source());
            let copied = tokio::task::spawn_blocking(move || {
                let copied = workspace::snapshot(&from, &dest).map(|_| ());
                if copied.is_err() {
                    let _ = workspace::remove(&dest);
                }
                copied
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            copied.map_err(Internal::io("snapshot the working tree"))?;
        }
    }
    Ok(run)
}

/// The directory of run `id` of git content: tree `tree`, pipeline file `pipeline`. Made where
/// it already ran elsewhere: a run of the fleet's queue on another machine.
pub(super) fn git_run_dir(
    project: &Path,
    id: RunId,
    pipeline: &[u8],
    tree: &str,
) -> Result<RunDir, EngineError> {
    let run = begin_run_dir(project, id, pipeline, None)?;
    record_tree(&run, tree)?;
    Ok(run)
}

fn begin_run_dir(
    project: &Path,
    id: RunId,
    pipeline: &[u8],
    changed_files: Option<&[String]>,
) -> Result<RunDir, EngineError> {
    let run = RunDir::create(project, id)
        .map_err(Internal::io(format!("create the directory of run {id}")))?;
    private::write(&run.pipeline_file(), pipeline)
        .map_err(Internal::io("keep the pipeline file"))?;
    if let Some(files) = changed_files {
        write_changed_files(&run, files)?;
    }
    Ok(run)
}

fn record_tree(run: &RunDir, tree: &str) -> Result<(), EngineError> {
    private::write(&run.tree_file(), tree).map_err(Internal::io("record the tree the run runs"))?;
    Ok(())
}

/// The newest of the kept runs other than `id` whose snapshot holds the files of `tree`: the
/// origin of that snapshot, for run `id` to share.
pub(super) fn same_snapshot(
    project: &Path,
    store: &mut dyn Store,
    id: RunId,
    tree: &Manifest,
) -> Result<Option<RunId>, EngineError> {
    // Among the kept runs only: a prune keeps the origin of each (see `prune_snapshots`).
    let runs = store.runs(None, KEPT_SNAPSHOTS)?;
    let earlier = runs.iter().map(|r| r.id).filter(|r| *r != id);
    Ok(shared::with_digest(project, earlier, &tree.digest()))
}

/// Jobs read the list of changed files; none may change it for the others.
fn read_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
}

/// The files a recorded run changes, as listed in its directory; `None` when git could not
/// tell.
pub(super) fn recorded_changed_files(run: &RunDir) -> Option<Vec<String>> {
    let list = std::fs::read_to_string(run.changed_files()).ok()?;
    Some(list.lines().map(str::to_string).collect())
}

/// Records a run that pipe could not carry on with as failed, with the reason, where the store
/// still takes writes (if it does not, the run shows as interrupted once its process is gone).
/// Returns the error to report.
pub(super) fn fail_run(
    ctx: &Context,
    store: &mut dyn Store,
    id: RunId,
    err: EngineError,
) -> EngineError {
    if let EngineError::Internal(why) = &err {
        let _ = store.set_state(id, RunState::Failed, true);
        let _ = store.audit(id, &ctx.actor, "failed", &format!("pipe failed: {why}"));
    }
    err
}

/// Records how a phase went (`release`: the release jobs; otherwise those before the gate) and
/// the run's new state; then, for a run that pipe itself had to stop, the error to report.
pub(super) fn finish(
    ctx: &Context,
    store: &mut dyn Store,
    id: RunId,
    result: RunResult,
    release: bool,
    gated: bool,
) -> Result<Outcome, EngineError> {
    let state = match (result.status, release) {
        (_, false) if result.pipe_failure.is_some() => RunState::Failed,
        (_, false) if result.backend_lost.is_some() => RunState::Interrupted,
        (RunStatus::Passed, false) if gated => RunState::AwaitingRelease,
        (RunStatus::Passed, false) => RunState::Passed,
        (RunStatus::Failed, false) => RunState::Failed,
        (RunStatus::Interrupted, false) => RunState::Interrupted,
        (RunStatus::Passed, true) => RunState::Released,
        (RunStatus::Failed, true) => RunState::ReleaseFailed,
        // Nothing was released: the run waits at the gate again.
        (RunStatus::Interrupted, true) => RunState::AwaitingRelease,
    };
    store.set_state(id, state, state != RunState::AwaitingRelease)?;
    let detail = match (&result.pipe_failure, &result.backend_lost) {
        (Some(why), _) => format!("pipe failed: {why}"),
        (None, Some(why)) => format!("interrupted by its environment: {why}"),
        (None, None) if release => "release jobs finished".into(),
        (None, None) => "jobs before the gate finished".into(),
    };
    store.audit(id, &ctx.actor, state.as_str(), &detail)?;
    match (&result.pipe_failure, &result.backend_lost) {
        (Some(why), _) => Err(Internal::Run {
            run: id,
            why: why.clone(),
        }
        .into()),
        (None, Some(why)) => Err(EngineError::Unavailable(format!(
            "{why}: run {id} is recorded as interrupted; what its jobs left on the engine is \
             removed by the next run of this project or by `pipe clean`"
        ))),
        (None, None) => Ok(Outcome {
            run: id,
            state,
            result,
        }),
    }
}

/// Drops the snapshots nothing can use any more, so `.pipe` does not grow by a copy of the tree
/// per run. A run that reached the gate keeps its own: its release, or a release `--again` to
/// roll back, runs on it. Any other run keeps it while it is one of the `KEPT_SNAPSHOTS` newest.
/// A snapshot that a kept run shares stays with it, and so does one a live run holds.
pub(super) fn prune_snapshots(project: &Path, store: &mut dyn Store) -> Result<(), EngineError> {
    let runs = store.runs(None, usize::MAX)?;
    let prunable = |(i, record): &(usize, &RunRecord)| {
        *i >= KEPT_SNAPSHOTS
            && matches!(
                record.state,
                RunState::Passed | RunState::Failed | RunState::Interrupted
            )
    };
    let kept = runs.iter().enumerate().filter(|r| !prunable(r));
    let shared = shared::kept_origins(project, kept.map(|(_, r)| r.id));
    for (_, record) in runs.iter().enumerate().filter(prunable) {
        if !shared.contains(&record.id) {
            // A live run that is not recorded as running yet (a retry resolving its secrets)
            // holds what it will run on.
            let _ = shared::remove_unheld(&RunDir::at(project, record.id));
        }
    }
    Ok(())
}

/// The store's rows for these jobs: name, stage, phase (gated jobs belong to the release) and
/// environment.
pub(super) fn recorded_jobs<'a>(
    jobs: impl Iterator<Item = &'a crate::pipeline::Job>,
) -> Vec<(String, String, store::Phase, Option<String>)> {
    jobs.map(|j| {
        let phase = if j.gated {
            store::Phase::Release
        } else {
            store::Phase::Main
        };
        (
            j.name.clone(),
            j.stage.clone(),
            phase,
            j.environment.clone(),
        )
    })
    .collect()
}

/// The git facts a run was recorded with: later phases run for the run's commit, not today's.
/// The commit's own facts (message, version) are read again from the repository.
pub(super) fn recorded_facts(
    project: &Path,
    record: &RunRecord,
    run: &RunDir,
) -> crate::git::Facts {
    let commit = record
        .commit
        .as_deref()
        .and_then(|c| crate::git::commit_facts(project, c))
        .unwrap_or_default();
    crate::git::Facts {
        commit: record.commit.clone(),
        short_commit: commit.short_commit,
        branch: record.branch.clone(),
        tags: record.tags.clone(),
        message: commit.message,
        version: commit.version,
        changed_paths: record.changed_paths,
        changed_files: recorded_changed_files(run),
    }
}

/// Each `--allow-privileged` grant of this phase, in the audit trail of the run it is for.
pub(super) fn audit_grants(
    ctx: &Context,
    store: &mut dyn Store,
    id: RunId,
    granted: &[String],
) -> Result<(), EngineError> {
    for grant in granted {
        store.audit(id, &ctx.actor, "allow privileged", grant)?;
    }
    Ok(())
}
