//! `pipe run`: load, plan, snapshot the tree, run the jobs and report.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::{color_on, exit, list, load_plan, CliError};
use crate::backend::docker::{self, DockerBackend, Pull};
use crate::backend::local::LocalBackend;
use crate::backend::{Backend, BackendError};
use crate::event::RunStatus;
use crate::pipeline::Problem;
use crate::report::{self, Mode};
use crate::run::{self as scheduler, Interrupt, RunOptions};
use crate::workspace::{self, RunDir};

/// How long a job has to exit after SIGTERM (first Ctrl-C, `--fail-fast`) before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = super::FILE_HELP)]
    file: Option<PathBuf>,
    /// Run only this job and what it needs (repeatable; a matrix job's name runs all its variants)
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    /// At most N jobs at once [default: 4 × CPUs]
    #[arg(long = "jobs", short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
    /// Where jobs run
    #[arg(long, value_enum, default_value = "docker")]
    backend: BackendKind,
    /// When to pull images
    #[arg(long, value_enum, default_value = "missing")]
    pull: Pull,
    /// At the first failure, cancel running jobs and skip the rest
    #[arg(long)]
    fail_fast: bool,
    /// Stream every line of every job's output
    #[arg(short, long)]
    verbose: bool,
    #[arg(long, value_enum, default_value = "human")]
    output: Output,
    /// Show the jobs that would run, and run nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    Docker,
    Local,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Human,
    Json,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let (file, _, plan) = load_plan(args.file.as_deref(), &args.jobs)?;
    if args.dry_run {
        let output = if args.output == Output::Json { list::Output::Json } else { list::Output::Human };
        super::print(&list::render(&plan, output))?;
        return Ok(exit::OK);
    }
    if args.backend == BackendKind::Docker {
        let missing: Vec<Problem> = plan
            .jobs
            .iter()
            .filter(|j| j.image.is_none())
            .map(|j| {
                Problem::at(j.pos, j.base.chars().count(), format!("job `{}` has no image", j.name))
                    .hint("set `image:` on the job or at the top of the pipeline, or run with `--backend local`")
            })
            .collect();
        if !missing.is_empty() {
            return Err(CliError::Plan { file, problems: missing });
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(execute(args, plan))
}

async fn execute(args: Args, plan: crate::plan::Plan) -> Result<u8, CliError> {
    let backend: Arc<dyn Backend> = match args.backend {
        BackendKind::Docker => {
            let docker = docker::connect().await.map_err(|e| CliError::Unavailable(e.to_string()))?;
            Arc::new(DockerBackend::new(docker, args.pull, GRACE))
        }
        BackendKind::Local => Arc::new(LocalBackend::new(GRACE)),
    };
    let project = std::env::current_dir().map_err(|e| CliError::Other(format!("cannot read the current directory: {e}")))?;
    let run = RunDir::create(&project).map_err(|e| CliError::Other(format!("cannot create the run directory under .pipe: {e}")))?;
    let source = run.source();
    let snapshot = {
        let (project, source) = (project.clone(), source.clone());
        tokio::task::spawn_blocking(move || workspace::snapshot(&project, &source))
    };
    snapshot
        .await
        .map_err(|e| CliError::Other(e.to_string()))?
        .map_err(|e| CliError::Other(format!("cannot snapshot the working tree: {e}")))?;

    let git = crate::git::facts(&project);
    let mut env = vec![("CI".to_string(), "true".to_string()), ("PIPE_RUN_ID".to_string(), run.id.clone())];
    env.extend(git.commit.map(|c| ("PIPE_COMMIT".to_string(), c)));
    env.extend(git.branch.map(|b| ("PIPE_BRANCH".to_string(), b)));
    let concurrency = args.concurrency.map(|n| n as usize).unwrap_or_else(default_concurrency);

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mode = Mode::choose(args.output == Output::Json, io::stdout().is_terminal(), std::env::var_os("CI").is_some());
    let reporter = report::spawn(
        report::Options { mode, verbose: args.verbose, color: color_on(&io::stdout()), log_dir: Some(run.root.join("logs")) },
        events_rx,
    );
    let (interrupt_tx, interrupt_rx) = mpsc::unbounded_channel();
    let signals = tokio::spawn(forward_signals(interrupt_tx));

    let opts = RunOptions { run: run.clone(), concurrency, fail_fast: args.fail_fast, env };
    let result = scheduler::run(&plan, backend, opts, events_tx, interrupt_rx).await;
    signals.abort();
    // The snapshot and scratch space are only for the run itself; logs and artifacts stay.
    let _ = tokio::task::spawn_blocking(move || {
        let _ = workspace::remove(&run.source());
        let _ = workspace::remove(&run.root.join("jobs"));
    })
    .await;
    let _ = reporter.await;
    let result = result.map_err(|e| match e {
        BackendError::Unavailable(m) => CliError::Unavailable(m),
        BackendError::Job(m) => CliError::Other(m),
    })?;
    Ok(match (result.status, result.interrupted_by) {
        (RunStatus::Passed, _) => exit::OK,
        (RunStatus::Failed, _) => exit::JOB_FAILED,
        (RunStatus::Interrupted, Some(Interrupt::Terminate)) => exit::SIGTERM,
        (RunStatus::Interrupted, _) => exit::SIGINT,
    })
}

/// Container starts are bound by the engine's latency more than by CPU, so a few jobs per core
/// keep it busy; many more would only make every job slower.
fn default_concurrency() -> usize {
    4 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Ctrl-C and SIGTERM become requests to the scheduler: the first stops gracefully, the next kills.
async fn forward_signals(tx: mpsc::UnboundedSender<Interrupt>) {
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return;
    };
    loop {
        let kind = tokio::select! {
            _ = int.recv() => Interrupt::Interrupt,
            _ = term.recv() => Interrupt::Terminate,
        };
        if tx.send(kind).is_err() {
            return;
        }
        eprintln!("pipe: stopping jobs (press Ctrl-C again to kill them)");
    }
}
