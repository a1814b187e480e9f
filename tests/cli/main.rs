//! The `pipe` binary, run for real: pipelines in, what the user sees and the exit code out.
//! Container tests use a real Docker engine and a tiny image they build themselves.

mod harness;

mod agent;
mod agent_concurrency;
mod agent_hooks;
mod agent_queue;
mod ahead;
mod artifacts;
mod browser;
mod cache;
mod commit;
mod dashboard;
mod docker;
mod engine;
mod extends;
mod failures;
mod graph;
mod help;
mod hook;
mod images;
mod init;
mod isolation;
mod junit;
mod leak;
mod local;
mod network;
mod not_author;
mod output;
mod project;
mod prometheus;
mod release;
mod retry;
mod reuse;
mod scan;
mod schemas;
mod secrets;
mod select;
mod services;
mod signals;
mod steps;
mod store;
mod terminal;
mod validate;
mod vars;
mod watch;
