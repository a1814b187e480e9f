//! The `pipe` binary, run for real: pipelines in, what the user sees and the exit code out.
//! Container tests use a real Docker engine and a tiny image they build themselves.

mod harness;

mod docker;
mod engine;
mod graph;
mod isolation;
mod local;
mod release;
mod scan;
mod schemas;
mod store;
mod terminal;
mod validate;
