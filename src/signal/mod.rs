//! Signals a release gate reads from outside pipe: what Prometheus says of a service's error
//! budget. The engine asks; these modules know how to ask and what the answer means.

pub mod budget;
pub mod prometheus;

/// Why a signal could not be read. The gate refuses on either unless told `on_error: allow`.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("Prometheus at {server} cannot be reached: {why}")]
    Unreachable { server: String, why: String },
    #[error("Prometheus at {server} gave no usable answer: {why}")]
    BadAnswer { server: String, why: String },
}
