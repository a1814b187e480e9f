//! A job's services as a backend sees them: the containers to start beside the job, where
//! their logs go, and how often their readiness is looked at. The Docker backend runs them
//! (`docker/services.rs`); the local backend never gets a job with services, which the engine
//! refuses before the run.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::pipeline::{Ready, Service};

/// A job's services and where their logs are kept.
#[derive(Debug, Clone, Default)]
pub struct Services {
    pub list: Vec<Service>,
    /// The folder of their logs, `NAME.log` each, beside the job's log.
    pub logs: PathBuf,
}

impl Services {
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }
}

/// Between two looks at a TCP port: a refused connection costs the engine nothing, so the
/// job's script starts at most this long after the service listens.
pub const TCP_POLL: Duration = Duration::from_millis(10);
/// Between the end of one readiness command and the start of the next: each is a process the
/// engine starts in the service's container, some tens of milliseconds of its time.
pub const COMMAND_POLL: Duration = Duration::from_millis(50);
/// How many lines of a service's log a job that could not start because of it shows.
pub const TAIL_LINES: usize = 20;

/// How `ready` reads in a message.
pub fn describe(ready: Option<&Ready>) -> String {
    match ready {
        Some(Ready::Tcp(port)) => format!("accepting connections on port {port}"),
        Some(Ready::Command(command)) => format!("`{command}` succeeding"),
        None => "running".into(),
    }
}
