//! `pipe run`: the jobs before the release gate (or a dry run that lists them), and with
//! `--release` the release too when the gate allows it; with `--watch`, again after each change.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::exec::{self, ExecArgs};
use super::{exit, list, load_plan, print, render_error, CliError};
use crate::engine::{self, Source, StartRequest};
use crate::plan::{Phase, Refs, Selection, Stages};

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = super::FILE_HELP)]
    file: Option<PathBuf>,
    /// Run only this job and what it needs (repeatable; a matrix job's name runs all its variants)
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    /// Run only this stage's jobs and what they need (repeatable, or a comma-separated list)
    #[arg(long = "stage", value_name = "NAME", value_delimiter = ',')]
    stages: Vec<String>,
    /// Run only the jobs of this stage and the stages before it
    #[arg(long, value_name = "STAGE")]
    until: Option<String>,
    #[command(flatten)]
    exec: ExecArgs,
    #[command(flatten)]
    store: exec::StoreArg,
    /// Run every job, even one that passed in an earlier run with the same inputs
    #[arg(long)]
    no_reuse: bool,
    /// Show the jobs that would run, and run nothing
    #[arg(long, conflicts_with_all = ["commit", "staged"])]
    dry_run: bool,
    /// Run on this commit's content (a sha, branch, tag, `HEAD~1`), with the pipeline file as
    /// it is in that commit; the working tree and the index are not touched
    #[arg(long, value_name = "REV", conflicts_with = "staged")]
    commit: Option<String>,
    /// Run on what is staged (the index), as `git commit` would commit it now
    #[arg(long)]
    staged: bool,
    /// Count the files the run changes (PIPE_CHANGED_FILES) against this commit [default: the
    /// merge base with the default branch, or the commit's parent]
    #[arg(long, value_name = "REV")]
    changes_since: Option<String>,
    /// Go through the release gate in this invocation when it asks for no approval and every
    /// other condition holds
    #[arg(long)]
    release: bool,
    /// After the run, wait for changes to the files a run sees and run again, until Ctrl-C
    /// (not with --commit or --staged, whose content never changes, nor --release: an edit is
    /// no release)
    #[arg(long, conflicts_with_all = ["dry_run", "commit", "staged", "release"])]
    watch: bool,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    if let Some(file) = &args.file {
        file_or_job(file)?;
    }
    if args.dry_run {
        let project = exec::project(args.file.as_deref())?;
        let git = crate::git::facts(&project.dir, args.changes_since.as_deref());
        let selection = Selection {
            phase: Phase::Main,
            jobs: &args.jobs,
            stages: Stages {
                only: &args.stages,
                until: args.until.as_deref(),
                no_deploy: false,
            },
            refs: Some(Refs {
                branch: git.branch.as_deref(),
                changed_files: git.changed_files.as_deref(),
            }),
            done: &[],
        };
        let (_, _, plan) = load_plan(args.file.as_deref(), selection)?;
        print(&list::render(&plan, args.exec.output))?;
        return Ok(exit::OK);
    }
    let source = match (&args.commit, args.staged) {
        (Some(rev), _) => Source::Commit(rev.clone()),
        (None, true) => Source::Index,
        (None, false) => Source::WorkingTree,
    };
    let project = exec::project(args.file.as_deref())?;
    let options = args.exec.options()?;
    let store = args.store.at()?;
    let objects = args.store.objects()?;
    let request = |ctx: engine::Context, cancel| StartRequest {
        ctx: engine::Context {
            store: store.clone(),
            objects: objects.clone(),
            ..ctx
        },
        file: project.file.clone(),
        jobs: args.jobs.clone(),
        stages: args.stages.clone(),
        until: args.until.clone(),
        no_deploy: false,
        exec: options.clone(),
        release: args.release,
        trigger: "run".into(),
        source: source.clone(),
        changes_since: args.changes_since.clone(),
        reuse: !args.no_reuse,
        cancel,
        fleet: None,
    };
    if args.watch {
        // A run that cannot start is said as `pipe run` would say it, and the session goes on.
        let failed = |e: &CliError| {
            let _ = std::io::stderr().write_all(render_error(e).as_bytes());
        };
        return args.exec.drive_in(project.dir.clone(), |ctx, cancel| {
            engine::watch(ctx, cancel, request, failed)
        });
    }
    args.exec.drive_in(project.dir.clone(), |ctx, cancel| {
        engine::start(request(ctx, cancel))
    })
}

/// `pipe run test`, with no file `test` but a job of that name, is someone used to
/// `cargo test` or `make test`: say what pipe calls it instead of "cannot read test".
fn file_or_job(file: &Path) -> Result<(), CliError> {
    let Some(name) = file.to_str().filter(|n| !n.contains('/')) else {
        return Ok(());
    };
    if exec::current_dir()?.join(file).exists() {
        return Ok(());
    }
    let Ok((_, pipeline, _)) = load_plan(None, Selection::all()) else {
        return Ok(());
    };
    if pipeline
        .jobs
        .iter()
        .any(|j| j.name == name || j.base == name)
    {
        return Err(CliError::Invalid(format!(
            "there is no pipeline file `{name}`, but there is a job `{name}`: did you mean `pipe run --job {name}`?"
        )));
    }
    Ok(())
}
