//! The command line: argv (clap) → an engine request → rendering → exit code. One file per
//! subcommand, none importing another's; what a run's life needs lives in [`crate::engine`],
//! so a hook and the agent do exactly what the CLI does.

mod agent;
mod artifacts;
mod cache;
mod clean;
mod completions;
mod diagnostic;
mod exec;
mod gate;
mod graph;
mod hook;
mod init;
mod list;
mod man;
mod masked;
mod pull;
mod resume;
mod retry;
mod run;
mod runs;
mod scan;
mod tty;
mod validate;
mod vars;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::pipeline::{self, LoadError, Pipeline};
use crate::plan::{Plan, Selection};

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const JOB_FAILED: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const BACKEND_UNAVAILABLE: u8 = 3;
    pub const REFUSED: u8 = 4;
    /// pipe itself failed: its own files, the run store, a bug. Never a job's result.
    pub const INTERNAL: u8 = 5;
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
}

const FILE_HELP: &str =
    "The pipeline file [default: the first of pipe.yml, pipe.yaml, .pipe.yml, .pipe.yaml, pipelines/ci.yml, pipelines/ci.yaml]";

#[derive(Parser)]
#[command(
    name = "pipe",
    version,
    about = "Run CI/CD pipelines: the same pipeline on a laptop, in a git hook and on an agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a starter pipeline for the project in this folder (never over an existing file)
    Init(init::Args),
    /// Run a pipeline's jobs in parallel containers (or host processes)
    Run(run::Args),
    /// Check a pipeline file and report every problem in it
    Validate {
        #[arg(help = FILE_HELP)]
        file: Option<PathBuf>,
    },
    /// Print the pipeline's job graph with the critical path
    Graph(graph::Args),
    /// List the jobs a run would start, with their stage and needs
    List(list::Args),
    /// Remove containers, volumes and scratch files left behind by this project's runs that are
    /// gone
    Clean(clean::Args),
    /// List recorded runs, newest first
    Runs(runs::RunsArgs),
    /// Show a run: its jobs, the release gate's state and the audit trail
    Show(runs::ShowArgs),
    /// Print a run's job logs
    Logs(runs::LogsArgs),
    /// List a run's artifacts, or copy them out (`--to DIR`)
    Artifacts(artifacts::Args),
    /// Approve a run's release
    Approve(gate::ApproveArgs),
    /// Run a run's release jobs, on its own snapshot and artifacts, if its gate holds
    Release(gate::ReleaseArgs),
    /// Rerun a run (as a new run), or only its failed jobs (`--failed`, in the same run)
    Retry(retry::Args),
    /// Run again a fleet's deploy or release job held after its agent's claim ended
    Resume(resume::Args),
    /// List or remove this project's job caches
    #[command(subcommand)]
    Cache(cache::Command),
    /// Look for committed secrets and dangerous pipeline settings (exit 1 at or above --fail-on)
    Scan(scan::Args),
    /// Print a completion script for your shell (see the README's install section)
    Completions(completions::Args),
    /// Print the manual page (`pipe man > ~/.local/share/man/man1/pipe.1`), or write all of them
    Man(man::Args),
    /// Run the pipeline as a git hook on what is pushed or committed
    #[command(subcommand)]
    Hook(hook::Command),
    /// Run the self-hosted agent: watch repositories, queue and run their commits, serve the API
    Agent(agent::Args),
}

/// The whole command line as clap sees it: for completions, manual pages and tests of the help.
pub fn command() -> clap::Command {
    Cli::command()
}

/// The CLI's failures are the engine's kinds: the user's input, no backend, a refusal, pipe's
/// own failure.
pub type CliError = crate::engine::EngineError;
pub use crate::engine::Internal;

/// The one place failures become exit codes.
fn code(err: &CliError) -> u8 {
    match err {
        CliError::Internal(_) => exit::INTERNAL,
        // A pipeline file that cannot be read is a bad argument as much as a bad file.
        CliError::Load(_) | CliError::Plan { .. } | CliError::Invalid(_) => exit::INVALID,
        CliError::Unavailable(_) => exit::BACKEND_UNAVAILABLE,
        CliError::Refused(_) => exit::REFUSED,
    }
}

/// How a command prints: for people, or one JSON object per line for programs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Text for people
    Human,
    /// JSON for programs
    Json,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The agent logs JSON lines of its own.
    if !matches!(cli.command, Command::Agent(_)) {
        init_tracing();
    }
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate { file } => validate::run(file.as_deref()),
        Command::Graph(args) => graph::run(args),
        Command::List(args) => list::run(args),
        Command::Clean(args) => clean::run(args),
        Command::Runs(args) => runs::runs(args),
        Command::Show(args) => runs::show(args),
        Command::Logs(args) => runs::logs(args),
        Command::Artifacts(args) => artifacts::run(args),
        Command::Approve(args) => gate::approve(args),
        Command::Release(args) => gate::release(args),
        Command::Retry(args) => retry::run(args),
        Command::Resume(args) => resume::run(args),
        Command::Cache(command) => cache::run(command),
        Command::Scan(args) => scan::run(args),
        Command::Init(args) => init::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::Hook(command) => hook::run(command),
        Command::Agent(args) => agent::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let _ = io::stderr().write_all(masked::masks().text(&render_error(&err)).as_bytes());
            ExitCode::from(code(&err))
        }
    }
}

fn render_error(err: &CliError) -> String {
    let color = color_on(&io::stderr());
    match err {
        CliError::Load(LoadError::Invalid(invalid)) => diagnostic::render(invalid, color),
        CliError::Plan { file, problems } => {
            let source = std::fs::read_to_string(file).unwrap_or_default();
            let invalid = pipeline::Invalid {
                file: file.clone(),
                source,
                problems: problems.clone(),
                partial: None,
            };
            diagnostic::render(&invalid, color)
        }
        other => format!("pipe: {other}\n"),
    }
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("PIPE_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| masked::Stderr)
        // Warnings go to logs and CI as often as to a terminal: colours only where they show.
        .with_ansi(color_on(&io::stderr()))
        .with_target(false)
        .try_init();
}

/// Colors only on a terminal, and never when NO_COLOR is set (https://no-color.org).
fn color_on(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Finds (see [`exec::project`]), loads and plans a pipeline.
fn load_plan(
    file: Option<&Path>,
    selection: Selection,
) -> Result<(PathBuf, Pipeline, Plan), CliError> {
    let project = exec::project(file)?;
    crate::engine::load_plan(&project.dir, project.file.as_deref(), selection)
}

/// Writes to stdout; a reader that went away (`pipe list | head -1`) ends output quietly.
fn print(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Internal::io("write output")(e)),
        _ => Ok(()),
    }
}

/// Columns padded to their widest cell, two spaces apart; cells may be coloured.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = crate::style::visible_width;
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - width(c))))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
