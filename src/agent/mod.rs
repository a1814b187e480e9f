//! The self-hosted agent; for now its dashboard pages, rendered from the run store's records.

pub mod web;
