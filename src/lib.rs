//! pipe: a CI/CD pipeline-as-code runner. YAML → typed pipeline → plan (DAG) → scheduler →
//! backend, with everything a user sees fed by the scheduler's stream of events.

pub mod backend;
pub mod cli;
pub mod event;
pub mod git;
pub mod owner;
pub mod pipeline;
pub mod plan;
pub mod release;
pub mod report;
pub mod run;
pub mod scan;
pub mod severity;
pub mod store;
pub mod workspace;
