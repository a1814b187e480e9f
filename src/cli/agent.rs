//! `pipe agent --config FILE`: the self-hosted agent (see [`crate::agent`]), logging JSON lines
//! with UTC timestamps; SIGTERM or Ctrl-C stops it gracefully. `pipe agent check-config`.

use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};

use super::exec::{current_dir, runtime};
use super::{exit, masked, print, CliError, Internal};
use crate::agent;

#[derive(clap::Args)]
pub struct Args {
    /// The agent's configuration file: TOML, or YAML when it ends in .yml or .yaml
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check the configuration file and report every problem in it
    CheckConfig,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let Some(file) = args.config else {
        return Err(CliError::Invalid(
            "pipe agent needs its configuration: `--config FILE` (see docs/agent.md)".into(),
        ));
    };
    // Read where it is, told as it was typed.
    let path = current_dir()?.join(&file);
    let mut config = agent::load_config(&path).map_err(|e| {
        let told = e.to_string();
        CliError::Invalid(told.replace(&path.display().to_string(), &file.display().to_string()))
    })?;
    if let Some(objects) = &config.objects {
        let opened =
            crate::objects::Objects::open(objects.shown(), &super::exec::cloud_credentials());
        config.objects = Some(opened.map_err(|e| CliError::Invalid(e.to_string()))?);
    }
    if let Some(Command::CheckConfig) = args.command {
        print(&format!(
            "{}: ok, {} repositories, {} tokens, listening on {}\n",
            file.display(),
            config.repos.len(),
            config.tokens.len(),
            config.listen
        ))?;
        return Ok(exit::OK);
    }
    init_json_logs();
    runtime()?.block_on(async {
        agent::serve(config, masked::masks().clone(), stop_signal())
            .await
            .map_err(|e| CliError::Internal(Internal::Backend(e.to_string())))
    })?;
    Ok(exit::OK)
}

/// The first SIGTERM or SIGINT.
async fn stop_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// JSON lines on stderr with UTC timestamps, masked of every secret; `PIPE_LOG` filters.
fn init_json_logs() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("PIPE_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(|| masked::Stderr)
        .with_target(false)
        .try_init();
}
