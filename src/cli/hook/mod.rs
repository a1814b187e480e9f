//! `pipe hook install|uninstall|status|run`: pipe as a git hook of the repository around the
//! current directory.

mod run;

use super::exec::{current_dir, project};
use super::{exit, print, CliError, Internal};
use crate::hook::{self, HookError, Installed, Kind, Removed, Script, State};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Install pipe as a git hook: each push (or commit) runs the pipeline on exactly what is
    /// pushed (or staged); a hook already there is kept and runs first
    Install(InstallArgs),
    /// Remove pipe's hooks and put back the hooks they replaced
    Uninstall {
        /// Only this hook [default: both]
        #[arg(long, value_enum)]
        hook: Option<HookArg>,
    },
    /// Show which hooks are installed, where, and what they run
    Status,
    /// What pipe's hook script runs: the pipeline on what git is pushing (refs on stdin) or
    /// committing
    #[command(hide = true)]
    Run(run::Args),
}

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Which git hook
    #[arg(long, value_enum, default_value = "pre-push")]
    hook: HookArg,
    /// The stages the hook runs, comma-separated (deploy and release never run in a hook)
    /// [default: those of build, test, security-scan the pipeline has]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    stages: Option<Vec<String>>,
    /// Where the hook's jobs run [default: docker]
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Replace a hook pipe kept from an earlier install (`<hook>.pipe-original`) by the one
    /// there now
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookArg {
    /// Before `git push` sends commits: runs the pipeline of each pushed commit
    PrePush,
    /// Before `git commit` records: runs the pipeline on what is being committed
    PreCommit,
}

impl From<HookArg> for Kind {
    fn from(arg: HookArg) -> Kind {
        match arg {
            HookArg::PrePush => Kind::PrePush,
            HookArg::PreCommit => Kind::PreCommit,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Jobs run in Docker containers
    Docker,
    /// Jobs run as host processes
    Local,
}

impl BackendArg {
    fn name(self) -> &'static str {
        match self {
            BackendArg::Docker => "docker",
            BackendArg::Local => "local",
        }
    }
}

pub fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::Install(args) => install(args),
        Command::Uninstall { hook } => uninstall(hook),
        Command::Status => status(),
        Command::Run(args) => run::run(args),
    }
}

fn install(args: InstallArgs) -> Result<u8, CliError> {
    let pipe = std::env::current_exe().map_err(Internal::io("find pipe's own path"))?;
    let dir = hooks_of()?;
    // The stages are checked against the pipeline as it is now, when it can be read.
    let pipeline = crate::pipeline::DEFAULT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|f| f.is_file())
        .and_then(|f| crate::pipeline::load(&f).ok());
    let stages = hook::choose_stages(args.stages, pipeline.as_ref().map(|p| &p.stages[..]))
        .map_err(error)?;
    let script = Script {
        kind: args.hook.into(),
        stages,
        backend: args.backend.map(|b| b.name().to_string()),
        pipe,
    };
    let name = script.kind.name();
    let what = match script.kind {
        Kind::PrePush => "each pushed commit",
        Kind::PreCommit => "the staged content of each commit",
    };
    let runs = format!("runs stages {} of {what}", script.stages.join(", "));
    let line = match hook::install(&dir, &script, args.force).map_err(error)? {
        Installed::New(path) => format!("pipe: installed the {name} hook at {}: it {runs}\n", path.display()),
        Installed::Updated(path) => format!("pipe: updated the {name} hook at {}: it {runs}\n", path.display()),
        Installed::Chained { path, kept } => format!(
            "pipe: installed the {name} hook at {}: it runs the hook that was there first (kept as {}), then {runs}\n",
            path.display(),
            kept.display()
        ),
    };
    print(&line)?;
    Ok(exit::OK)
}

fn uninstall(hook: Option<HookArg>) -> Result<u8, CliError> {
    let kinds: Vec<Kind> = hook.map_or(Kind::ALL.to_vec(), |h| vec![h.into()]);
    let mut out = String::new();
    for (kind, removed) in hook::uninstall(&hooks_of()?, &kinds).map_err(error)? {
        let name = kind.name();
        out.push_str(&match removed {
            Removed::Removed(path) => {
                format!("pipe: removed the {name} hook at {}\n", path.display())
            }
            Removed::Restored(path) => format!(
                "pipe: removed the {name} hook and put back the one it replaced at {}\n",
                path.display()
            ),
            Removed::NotPipes(path) => format!(
                "pipe: left the {name} hook at {} alone: it is not pipe's\n",
                path.display()
            ),
            Removed::NotInstalled => format!("pipe: no {name} hook was installed\n"),
        });
    }
    print(&out)?;
    Ok(exit::OK)
}

fn status() -> Result<u8, CliError> {
    let mut out = String::new();
    for status in hook::status(&hooks_of()?).map_err(error)? {
        let name = status.kind.name();
        let path = status.path.display();
        out.push_str(&match status.state {
            State::Absent => format!("{name}: not installed ({path})\n"),
            State::Other => format!("{name}: a hook that is not pipe's ({path})\n"),
            State::Pipes { script, chained } => {
                let mut line = format!(
                    "{name}: pipe's ({path}): stages {}, backend {}, pipe {}",
                    script.stages.join(", "),
                    script.backend.as_deref().unwrap_or("docker"),
                    found(&script.pipe),
                );
                if let Some(kept) = chained {
                    line.push_str(&format!("; runs {} first", kept.display()));
                }
                line + "\n"
            }
        });
    }
    print(&out)?;
    Ok(exit::OK)
}

/// The pipe a hook falls back on, and whether it is still there.
fn found(pipe: &std::path::Path) -> String {
    if pipe.is_file() {
        pipe.display().to_string()
    } else {
        format!("{} (gone: the hook uses pipe from PATH)", pipe.display())
    }
}

/// The hook layer's failures in the CLI's terms.
fn error(err: HookError) -> CliError {
    match err {
        HookError::NotARepository(_) | HookError::Refused(_) | HookError::Input(_) => {
            CliError::Invalid(err.to_string())
        }
        HookError::Io { doing, source } => CliError::Internal(Internal::Io { doing, source }),
    }
}

/// The folder whose repository's hooks are meant: the project's, found as every command finds
/// it, else where the user stands (status and uninstall need no pipeline file).
fn hooks_of() -> Result<std::path::PathBuf, CliError> {
    match project(None) {
        Ok(found) => Ok(found.dir),
        Err(_) => current_dir(),
    }
}
