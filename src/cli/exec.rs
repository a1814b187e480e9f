//! What `run`, `release` and `retry` share: the flags for how jobs run, who acts and when
//! (from the environment), signals as the request's cancel handle, and the screen.

use std::future::Future;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::pull::PullArg;
use super::vars::VarsArgs;
use super::{color_on, exit, CliError, Internal, Output};
use crate::engine::{self, Cancel, Clock, Context, ExecOptions, Interrupt, Outcome, StoreAt};
use crate::event::{Event, RunStatus};
use crate::report;

/// How jobs are run: shared by `run`, `release` and `retry`.
#[derive(clap::Args, Clone)]
pub struct ExecArgs {
    /// At most N jobs at once [default: one per 256 MB of available memory, 4 to 16 × CPUs]
    #[arg(long = "jobs", short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
    /// Where jobs run [default: docker; for release and retry, where the run ran]
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// When to pull images
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullArg,
    /// At the first failure, cancel running jobs and skip the rest
    #[arg(long)]
    fail_fast: bool,
    /// Stream every line of every job's output
    #[arg(short, long)]
    verbose: bool,
    /// How to report the run: progress for people, or one JSON event per line for programs
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
    /// Let jobs run privileged and mount host paths (including the Docker socket)
    #[arg(long)]
    allow_privileged: bool,
    /// Also write the results as JUnit XML to FILE: a testcase per job, failures with the end of
    /// their log
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    vars: VarsArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// The output lines on their way to the screen, shared by the recorder and the screen.
    #[arg(skip)]
    screen: Arc<report::ScreenQueue>,
}

/// Where jobs' caches live: shared by `run`, `release`, `retry` and `pipe cache`.
#[derive(clap::Args, Clone)]
pub struct CacheArgs {
    /// Where jobs' caches are kept [default: $XDG_CACHE_HOME/pipe, else ~/.cache/pipe]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// How much the caches of all projects may take before the least recently used go (500M, 10G)
    #[arg(long, value_name = "SIZE", value_parser = crate::cache::parse_size, default_value = "10G")]
    cache_size: u64,
}

impl CacheArgs {
    /// The folder given, else the user's cache folder; `None` when the user has no home.
    pub fn dir(&self) -> Option<PathBuf> {
        let home = || {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
        };
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|x| Path::new(x).is_absolute())
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".cache")))
                .map(|base| base.join("pipe"))
        })
    }

    pub fn size(&self) -> u64 {
        self.cache_size
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    /// Each job in its own container
    Docker,
    /// Each job as processes on this machine, without an image
    Local,
}

impl ExecArgs {
    /// The options, with the passed variables and where secrets come from (which reads the
    /// files named and pipe's environment).
    pub fn options(&self) -> Result<ExecOptions, CliError> {
        Ok(ExecOptions {
            backend: self.backend.map(|kind| match kind {
                BackendKind::Docker => engine::BackendKind::Docker,
                BackendKind::Local => engine::BackendKind::Local,
            }),
            pull: self.pull.into(),
            concurrency: self.concurrency.map(|n| n as usize),
            fail_fast: self.fail_fast,
            allow_privileged: self.allow_privileged,
            // PIPE_NO_OVERLAY=1 forces copied workspaces, for engines whose overlay mounts
            // misbehave without failing outright.
            overlay: !flag_set("PIPE_NO_OVERLAY"),
            // PIPE_NO_CGROUP=1 finds local jobs' processes by their environment marker, as
            // where no cgroup can be had.
            cgroups: !flag_set("PIPE_NO_CGROUP"),
            vars: self.vars.vars()?,
            supply: self.vars.supply()?,
            cache_dir: self.cache.dir(),
            cache_size: self.cache.size(),
            screen: self.screen.clone(),
        })
    }

    /// Runs an engine request that runs jobs: the screen shows its events, Ctrl-C, SIGTERM and
    /// SIGHUP cancel it. Returns the exit code of its outcome.
    pub fn drive<F, Fut, O>(&self, request: F) -> Result<u8, CliError>
    where
        F: FnOnce(Context, Cancel) -> Fut,
        Fut: Future<Output = Result<O, CliError>>,
        O: Ended,
    {
        self.drive_in(project(None)?.dir, request)
    }

    /// [`Self::drive`] in the project at `project`.
    pub fn drive_in<F, Fut, O>(&self, project: PathBuf, request: F) -> Result<u8, CliError>
    where
        F: FnOnce(Context, Cancel) -> Fut,
        Fut: Future<Output = Result<O, CliError>>,
        O: Ended,
    {
        let mode = report::Mode::choose(
            self.output == Output::Json,
            io::stdout().is_terminal(),
            // `CI=false` or an empty CI is a developer saying "not CI".
            std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "False")),
        );
        let options = report::Options {
            mode,
            verbose: self.verbose,
            color: color_on(&io::stdout()),
            queue: self.screen.clone(),
        };
        let _controls = (mode == report::Mode::Progress).then(super::tty::QuietControls::new);
        self.drive_to(project, |shown| report::show(options, shown), request)
    }

    /// [`ExecArgs::drive`], with the request's events shown by `screen` (a git hook's verdict).
    pub fn drive_to<S, F, Fut, O>(
        &self,
        project: PathBuf,
        screen: S,
        request: F,
    ) -> Result<u8, CliError>
    where
        S: FnOnce(mpsc::UnboundedReceiver<Event>) -> JoinHandle<Option<String>>,
        F: FnOnce(Context, Cancel) -> Fut,
        Fut: Future<Output = Result<O, CliError>>,
        O: Ended,
    {
        let ctx = context_in(project, None)?;
        let junit = match &self.junit {
            Some(file) => Some(junit_file(file)?),
            None => None,
        };
        runtime()?.block_on(async {
            let (events, seen) = mpsc::unbounded_channel();
            // The JUnit report sees the events first and passes them on to the screen.
            let (junit, shown) = match junit {
                Some(file) => {
                    let (forward, shown) = mpsc::unbounded_channel();
                    (Some(report::junit(file, seen, forward)), shown)
                }
                None => (None, seen),
            };
            let screen = screen(shown);
            let cancel = Cancel::new();
            let signals = tokio::spawn(forward_signals(cancel.clone()));
            let outcome = request(
                Context {
                    events: Some(events),
                    ..ctx
                },
                cancel,
            )
            .await;
            signals.abort();
            // The request is over and its sink dropped: the screen has seen everything.
            let mut unshown = screen.await.unwrap_or_else(|e| Some(e.to_string()));
            if let Some(junit) = junit {
                let unwritten = junit.await.unwrap_or_else(|e| Some(e.to_string()));
                unshown =
                    unshown.or(unwritten.map(|e| format!("cannot write the JUnit report: {e}")));
            }
            let outcome = outcome?;
            if let Some(why) = unshown {
                return Err(CliError::Internal(Internal::Io {
                    doing: "write output".into(),
                    source: io::Error::other(why),
                }));
            }
            Ok(outcome.exit_code())
        })
    }
}

/// Where `--junit FILE` goes: refused before anything runs when its folder does not exist.
fn junit_file(file: &Path) -> Result<PathBuf, CliError> {
    let path = current_dir()?.join(file);
    match path.parent() {
        Some(dir) if dir.is_dir() => Ok(path),
        _ => Err(CliError::Invalid(format!(
            "--junit {}: its folder does not exist",
            file.display()
        ))),
    }
}

fn flag_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The project found from the current directory, who acts (`by`, else [`actor`]) and the
/// clock.
pub fn context(by: Option<&str>) -> Result<Context, CliError> {
    context_in(project(None)?.dir, by)
}

fn context_in(project: PathBuf, by: Option<&str>) -> Result<Context, CliError> {
    Ok(Context {
        project,
        actor: by.map_or_else(actor, |by| by.trim().to_string()),
        clock: clock()?,
        events: None,
        masks: super::masked::masks().clone(),
        store: StoreAt::Project,
        objects: None,
    })
}

/// `--store`: where runs are recorded.
#[derive(clap::Args)]
pub struct StoreArg {
    /// The team's shared run store, a PostgreSQL URL (postgres://user:password@host/database)
    /// [default: the project's own, .pipe/pipe.db]
    #[arg(
        long = "store",
        env = "PIPE_STORE",
        hide_env_values = true,
        value_name = "URL"
    )]
    url: Option<String>,
    /// Where runs in the shared store keep their logs and artifacts and find reused jobs, for
    /// every agent: file:///folder, s3://bucket/prefix, gs://bucket/prefix or
    /// az://container/prefix (credentials from AWS_*, GOOGLE_*, AZURE_*) [default: on this
    /// machine only]
    #[arg(
        long = "objects",
        env = "PIPE_OBJECTS",
        hide_env_values = true,
        value_name = "URL"
    )]
    objects: Option<String>,
}

impl StoreArg {
    /// The object store named, opened; refused without a shared store, whose runs it serves.
    pub fn objects(&self) -> Result<Option<crate::objects::Objects>, CliError> {
        let Some(url) = self.objects.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if self.url.as_deref().is_none_or(str::is_empty) {
            return Err(CliError::Invalid(format!(
                "--objects {url}: an object store serves a shared run store: give --store too"
            )));
        }
        crate::objects::Objects::open(url, &cloud_credentials())
            .map(Some)
            .map_err(|e| CliError::Invalid(e.to_string()))
    }

    /// The store named, refused unless it is a PostgreSQL URL.
    pub fn at(&self) -> Result<StoreAt, CliError> {
        match self.url.clone().filter(|s| !s.is_empty()) {
            None => Ok(StoreAt::Project),
            Some(url) if crate::pg::is_url(&url) => Ok(StoreAt::Shared(url)),
            Some(other) => Err(CliError::Invalid(format!(
                "--store {}: a shared store is a PostgreSQL URL, postgres://user@host/database",
                crate::pg::shown(&other)
            ))),
        }
    }
}

/// The clouds' credentials in the environment, for an object store (`AWS_*`, `GOOGLE_*`,
/// `AZURE_*`, as each cloud's own tools read them).
pub fn cloud_credentials() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .collect()
}

/// The project of pipeline `file` (as typed, relative to the current directory), else the
/// nearest one at or above the current directory.
pub fn project(file: Option<&Path>) -> Result<engine::Project, CliError> {
    engine::find_project(&current_dir()?, file)
}

/// The folder of the project found from where the user stands.
pub fn project_dir() -> Result<PathBuf, CliError> {
    Ok(project(None)?.dir)
}

/// Where the user stands: the paths they type are relative to it.
pub fn current_dir() -> Result<PathBuf, CliError> {
    std::env::current_dir().map_err(Internal::io("read the current directory"))
}

/// `PIPE_NOW` (RFC 3339) stands in for the clock, so tests and rehearsals can stand inside or
/// outside a freeze window. A `PIPE_NOW` that cannot be read is an error, never the real clock:
/// a typo in a rehearsal must not release.
fn clock() -> Result<Clock, CliError> {
    match std::env::var("PIPE_NOW") {
        Err(_) => Ok(Clock::System),
        Ok(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Clock::Fixed(t.with_timezone(&Utc)))
            .map_err(|e| {
                CliError::Invalid(format!(
                    "PIPE_NOW `{text}` is not an RFC 3339 time ({e}), e.g. 2026-11-27T17:30:00Z"
                ))
            }),
    }
}

/// Who is acting, for approvals and the audit trail: PIPE_USER, else the login name, else
/// git's user.name.
fn actor() -> String {
    let named = |name: Option<String>| name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    ["PIPE_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| named(std::env::var(v).ok()))
        .or_else(|| {
            let user = nix::unistd::User::from_uid(nix::unistd::getuid());
            named(user.ok().flatten().map(|u| u.name))
        })
        .or_else(|| named(crate::git::user_name(&std::env::current_dir().ok()?)))
        .unwrap_or_else(|| "unknown".into())
}

/// What a request that runs jobs ends with, as an exit code.
pub trait Ended {
    fn exit_code(&self) -> u8;
}

impl Ended for Outcome {
    fn exit_code(&self) -> u8 {
        exit_code(self)
    }
}

/// A watch session ends only when it is asked to stop, as an interrupted run does.
impl Ended for Interrupt {
    fn exit_code(&self) -> u8 {
        match self {
            Interrupt::Interrupt => exit::SIGINT,
            Interrupt::Terminate => exit::SIGTERM,
        }
    }
}

fn exit_code(outcome: &Outcome) -> u8 {
    let result = &outcome.result;
    match (result.status, result.interrupted_by) {
        (RunStatus::Passed, _) => exit::OK,
        (RunStatus::Failed, _) => exit::JOB_FAILED,
        (RunStatus::Interrupted, Some(Interrupt::Terminate)) => exit::SIGTERM,
        (RunStatus::Interrupted, _) => exit::SIGINT,
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Internal::io("start the runtime"))
}

/// Ctrl-C and SIGTERM become cancel requests: the first stops gracefully, the next kills.
/// SIGHUP (the terminal closed, an SSH session dropped) counts as SIGTERM: without it the run
/// would die on the spot and leave its containers running.
async fn forward_signals(cancel: Cancel) {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    loop {
        let kind = tokio::select! {
            _ = int.recv() => Interrupt::Interrupt,
            _ = term.recv() => Interrupt::Terminate,
            _ = hup.recv() => Interrupt::Terminate,
        };
        cancel.request(kind);
    }
}
