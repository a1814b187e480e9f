//! pipe: a CI/CD pipeline-as-code runner. YAML → typed pipeline → plan (DAG) → scheduler →
//! backend, with everything a user sees fed by the scheduler's stream of events.

// Who owns a run is read from /proc and local jobs are contained by cgroups: without Linux,
// runs could not be told alive from dead, so pipe refuses to build rather than misjudge them.
#[cfg(not(target_os = "linux"))]
compile_error!("pipe runs on Linux only: it reads /proc to tell a live run from a dead one");

pub mod agent;
pub mod backend;
pub mod cache;
pub mod cli;
pub mod drift;
pub mod engine;
pub mod event;
pub mod git;
pub mod hook;
pub mod image;
pub mod mask;
pub mod owner;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod reuse;
pub mod run;
pub mod scan;
pub mod secret;
pub mod severity;
pub mod signal;
pub mod sqlite;
pub mod store;
pub mod style;
pub mod vars;
pub mod watch;
pub mod workspace;
