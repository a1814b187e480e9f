//! `--output json`: one JSON object per event, each with the schema version and a UTC timestamp.

use std::io::{self, Write};

use super::Reporter;
use crate::event::{Event, EventKind};

pub struct JsonLines {
    out: Box<dyn Write + Send>,
}

impl JsonLines {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonLines { out }
    }
}

impl Reporter for JsonLines {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event).map_err(io::Error::other)?;
        self.out.write_all(b"\n")?;
        // Output lines go out in batches (see `flush`); anything else at once.
        match event.kind {
            EventKind::JobOutput { .. } => Ok(()),
            _ => self.out.flush(),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
