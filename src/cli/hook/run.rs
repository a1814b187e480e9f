//! `pipe hook run pre-push|pre-commit`, what pipe's hook script runs: the hook pipe kept first,
//! then one run per pushed commit (or of the staged content), and a verdict the pusher reads.

use std::io::{self, Read};
use std::path::PathBuf;

use super::{error, HookArg};
use crate::cli::exec::{current_dir, project_dir, ExecArgs};
use crate::cli::{code, color_on, exit, render_error, CliError, Internal};
use crate::engine;
use crate::hook::{self, Check, Kind};
use crate::report;

#[derive(clap::Args)]
pub struct Args {
    /// The git hook that calls: pre-push (refs on stdin) or pre-commit
    hook: HookArg,
    /// The stages to run, comma-separated (deploy and release never run in a hook)
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values = hook::DEFAULT_STAGES)]
    stages: Vec<String>,
    #[command(flatten)]
    exec: ExecArgs,
    /// What git passes the hook (pre-push: the remote's name and URL)
    #[arg(last = true)]
    git_args: Vec<String>,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    hook::check_stages(&args.stages).map_err(error)?;
    let kind = Kind::from(args.hook);
    let dir = project_dir()?;
    // The refs being pushed come once on stdin: read them whole, for the kept hook and for us.
    let mut input = Vec::new();
    if kind == Kind::PrePush {
        io::stdin()
            .read_to_end(&mut input)
            .map_err(Internal::io("read the refs git is pushing"))?;
    }
    if let Some((kept, status)) =
        hook::run_kept(&dir, kind, &args.git_args, &input).map_err(error)?
    {
        if !status.success() {
            eprintln!(
                "pipe: the hook pipe kept, {}, failed ({status}), so pipe's check did not run\n{}",
                kept.display(),
                bypass(kind)
            );
            return Ok(exit::JOB_FAILED);
        }
    }
    let checks: Vec<Check> = match kind {
        Kind::PrePush => {
            let refs = hook::parse_pre_push(&String::from_utf8_lossy(&input)).map_err(error)?;
            hook::pushed_commits(&refs)
                .into_iter()
                .map(Check::Pushed)
                .collect()
        }
        Kind::PreCommit => vec![Check::Staged(git_index_file()?)],
    };
    scrub_git_locators();
    let options = args.exec.options()?;
    let mut worst = exit::OK;
    for check in checks {
        let subject = check.subject();
        let stages = &args.stages;
        let ran = args.exec.drive_to(
            dir.clone(),
            |events| {
                report::verdict(
                    subject,
                    Box::new(io::stderr()),
                    color_on(&io::stderr()),
                    events,
                )
            },
            |ctx, cancel| {
                engine::start(hook::start_request(
                    check,
                    stages,
                    ctx,
                    options.clone(),
                    cancel,
                ))
            },
        );
        let code = ran.unwrap_or_else(|err| {
            eprint!("{}", render_error(&err));
            code(&err)
        });
        if code == exit::SIGINT || code == exit::SIGTERM {
            return Ok(code);
        }
        if worst == exit::OK {
            worst = code;
        }
    }
    if worst != exit::OK {
        eprintln!("{}", bypass(kind));
    }
    Ok(worst)
}

fn bypass(kind: Kind) -> String {
    let (command, what) = match kind {
        Kind::PrePush => ("git push --no-verify", "push"),
        Kind::PreCommit => ("git commit --no-verify", "commit"),
    };
    format!("pipe: to {what} anyway, once: {command}")
}

/// The index git is about to commit, which it names in GIT_INDEX_FILE for a pre-commit hook: a
/// temporary one for `git commit -a` or `git commit PATH`, whose content the repository's own
/// index does not hold yet. Relative to the working tree's root, where git runs hooks.
fn git_index_file() -> Result<Option<PathBuf>, CliError> {
    match std::env::var_os("GIT_INDEX_FILE") {
        Some(file) if !file.is_empty() => Ok(Some(current_dir()?.join(file))),
        _ => Ok(None),
    }
}

/// Variables git sets for its hooks that point git at the developer's repository. A local job
/// inherits pipe's environment, and a `git` it ran would act on that repository instead of its
/// workspace; the hook's own kept hook has run with them already. Called before any thread
/// starts.
fn scrub_git_locators() {
    const LOCATORS: &[&str] = &[
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_PREFIX",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_QUARANTINE_PATH",
        "GIT_NAMESPACE",
    ];
    for name in LOCATORS {
        std::env::remove_var(name);
    }
}
