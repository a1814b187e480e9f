//! The `pipe` binary, run for real: pipelines in, what the user sees and the exit code out.
//! Container tests use a real Docker engine and a tiny image they build themselves.

mod harness;

mod commit;
mod docker;
mod engine;
mod graph;
mod isolation;
mod local;
mod release;
mod scan;
mod select;
mod store;
mod validate;
