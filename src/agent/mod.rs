//! `pipe agent`: the self-hosted daemon. It watches repositories (polling with git2, GitHub and
//! GitLab webhooks), queues a run per new commit in its own SQLite queue, runs them through the
//! same [`crate::engine`] as `pipe run --commit` (each repository cloned under the data folder,
//! its `.pipe/` holding that repository's store and runs), and serves a JSON API with live logs
//! (Server-Sent Events), `/metrics` and `/healthz`. Nothing here reads argv or the process
//! environment, prints or exits: the CLI passes the configuration and the stop signal in.
//!
//! The data folder: `agent.db` (the queue, webhook deliveries seen, polled heads), `agent.addr`
//! (the address it listens on, once it does), `repos/NAME/` (each clone), `cache/` (jobs' caches).

mod claims;
mod config;
mod error;
mod executor;
mod hooks;
mod http;
mod lead;
mod metrics;
mod poll;
mod queue;
mod state;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::{load as load_config, Config, ConfigError, Repo, Secret, Token};
pub use error::ApiError;
pub use hooks::github_signature_holds;
pub use http::{actor, router};
pub use queue::{Item, ItemState};
pub use state::{Agent, AgentState, ApprovalView, ListedRun, LogEvent, RunFilter, RunView};

use crate::engine::{self, Interrupt};
use crate::mask::Masks;

/// The file in the data folder that holds the address the agent listens on.
pub const ADDR_FILE: &str = "agent.addr";

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot use the data folder {}: {source}", .dir.display())]
    DataDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the agent until `stop` resolves, then stops gracefully: no new run starts, running
/// jobs get the configured time to finish and are then cancelled; queued runs stay queued.
pub async fn serve(
    config: Config,
    masks: Masks,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let data = config.data_dir.clone();
    let data_dir = |source| AgentError::DataDir {
        dir: data.clone(),
        source,
    };
    std::fs::create_dir_all(data.join("repos")).map_err(data_dir)?;
    let queue = queue::Queue::open(&data)?;
    for item in queue.interrupt_started()? {
        tracing::warn!(
            repo = item.repo,
            run = item.run_id,
            commit = item.commit,
            "this run was in flight when the agent stopped: it is interrupted and can be retried"
        );
    }
    let agent = Arc::new(Agent::new(config, queue, masks));
    sweep(&agent).await;
    let listener = tokio::net::TcpListener::bind(agent.config.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: agent.config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(AgentError::Serve)?;
    let tmp = data.join(format!("{ADDR_FILE}.tmp"));
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|_| std::fs::rename(&tmp, data.join(ADDR_FILE)))
        .map_err(data_dir)?;
    tracing::info!(%addr, "listening");
    tokio::spawn(executor::dispatch(agent.clone()));
    if let Some(url) = &agent.config.store {
        lead::spawn(agent.clone(), url.expose().to_string());
        claims::spawn(
            agent.clone(),
            url.expose().to_string(),
            tokio::runtime::Handle::current(),
        );
    }
    for repo in &agent.config.repos {
        if let Some(every) = repo.poll {
            tokio::spawn(poll::poll(agent.clone(), repo.clone(), every));
        }
    }
    let draining = agent.clone();
    let shutdown = async move {
        stop.await;
        drain(&draining).await;
    };
    axum::serve(listener, router(agent.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(AgentError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// Removes what a dead agent's runs left (containers, volumes, workspaces, scratch files) in
/// each repository: only runs whose process is gone, found by pipe's labels.
async fn sweep(agent: &Agent) {
    for repo in &agent.config.repos {
        let dir = agent.config.clone_dir(&repo.name);
        if !dir.is_dir() {
            continue;
        }
        match engine::clean(&dir, false).await {
            Ok(cleaned) => {
                let (containers, volumes) = cleaned.docker.unwrap_or((0, 0));
                tracing::info!(
                    repo = repo.name,
                    containers,
                    volumes,
                    workspaces = cleaned.local_workspaces,
                    run_dirs = cleaned.run_dirs,
                    "swept what dead runs left"
                );
            }
            Err(e) => tracing::warn!(repo = repo.name, "cannot sweep: {e}"),
        }
    }
}

/// How long cancelled jobs get to tear down before the agent stops anyway.
const TEARDOWN: Duration = Duration::from_secs(30);

async fn drain(agent: &Arc<Agent>) {
    agent.stopping.store(true, Ordering::SeqCst);
    agent.wake.notify_one();
    tracing::info!(
        deadline_s = agent.config.stop_timeout.as_secs_f64(),
        "stopping: no new runs; running jobs may finish"
    );
    if !wait_idle(agent, agent.config.stop_timeout).await {
        let running = agent.cancels();
        tracing::warn!(
            runs = running.len(),
            "the deadline passed: cancelling the running jobs"
        );
        for cancel in &running {
            cancel.request(Interrupt::Terminate);
        }
        wait_idle(agent, TEARDOWN).await;
    }
}

/// Waits until no request is in flight, or `limit` passed (false).
async fn wait_idle(agent: &Agent, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !agent.idle() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}
