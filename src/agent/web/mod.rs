//! The dashboard: server-rendered pages over the agent's state — recent runs, a run with its
//! DAG, gate and findings, a job's live log — and sign-in with a session cookie. Every value
//! from git, a job or a user is escaped in [`escape`]; no JavaScript build step, one small
//! script follows a log.

mod dag;
mod escape;
mod layout;
mod log;
mod login;
mod routes;
mod run;
mod runs;
mod session;

pub use routes::routes;
