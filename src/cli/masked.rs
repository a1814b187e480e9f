//! What the CLI says in its own words — errors, pipe's tracing — masked of the secret values the
//! engine resolved for this process's requests.

use std::io::{self, Write};
use std::sync::OnceLock;

use crate::mask::Masks;

/// The handle every request of this process carries (see [`crate::engine::Context`]).
pub fn masks() -> &'static Masks {
    static MASKS: OnceLock<Masks> = OnceLock::new();
    MASKS.get_or_init(Masks::default)
}

/// Standard error for tracing: each record is written whole, so it is masked whole.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().write_all(&masks().current().bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
