//! Every job's full log, one file per job under the run's directory, kept after the run.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::Reporter;
use crate::event::{Event, EventKind};
use crate::workspace::slug;

pub struct LogFiles {
    dir: PathBuf,
    open: HashMap<String, BufWriter<File>>,
}

impl LogFiles {
    pub fn new(dir: PathBuf) -> Self {
        LogFiles { dir, open: HashMap::new() }
    }

    fn file(&mut self, job: &str) -> io::Result<&mut BufWriter<File>> {
        if !self.open.contains_key(job) {
            fs::create_dir_all(&self.dir)?;
            let file = File::create(self.dir.join(format!("{}.log", slug(job))))?;
            self.open.insert(job.to_string(), BufWriter::new(file));
        }
        Ok(self.open.get_mut(job).expect("just inserted"))
    }
}

impl Reporter for LogFiles {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        match &event.kind {
            EventKind::JobStarted { job, attempt } if *attempt > 1 => {
                writeln!(self.file(job)?, "--- attempt {attempt} ---")
            }
            EventKind::JobOutput { job, line, .. } => writeln!(self.file(job)?, "{line}"),
            EventKind::JobRetrying { job, reason, .. } => writeln!(self.file(job)?, "pipe: {reason}; retrying"),
            EventKind::JobFinished { job, status, message, .. } => {
                let f = self.file(job)?;
                if let Some(m) = message {
                    writeln!(f, "pipe: {m}")?;
                }
                writeln!(f, "pipe: job {}", status.label())?;
                // Closing flushes: the log is complete as soon as the job is.
                self.open.remove(job).map_or(Ok(()), |mut f| f.flush())
            }
            _ => Ok(()),
        }
    }
}
