//! Every job's full log, one file per job under the run's directory, kept after the run.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::path::PathBuf;

use super::Reporter;
use crate::event::{Event, EventKind};
use crate::workspace::private;

pub struct LogFiles {
    paths: HashMap<String, PathBuf>,
    open: HashMap<String, BufWriter<File>>,
}

impl LogFiles {
    /// `paths`: each job's log file. A log is appended to, so a job rerun by `pipe retry`
    /// keeps the output of its earlier attempts.
    pub fn new(paths: HashMap<String, PathBuf>) -> Self {
        LogFiles {
            paths,
            open: HashMap::new(),
        }
    }

    fn file(&mut self, job: &str) -> io::Result<&mut BufWriter<File>> {
        self.open_log(job, true)
    }

    /// The job's log, open to append; `mark`: say where a new run of the job starts in a log
    /// that holds an earlier one (not in the log a reused job took over).
    fn open_log(&mut self, job: &str, mark: bool) -> io::Result<&mut BufWriter<File>> {
        if !self.open.contains_key(job) {
            let path = self
                .paths
                .get(job)
                .ok_or_else(|| io::Error::other(format!("no log file for job `{job}`")))?;
            let path = path.clone();
            let file = path
                .parent()
                .map_or(Ok(()), private::dir)
                .and_then(|_| private::open(&path, File::options().create(true).append(true)))?;
            let earlier = file.metadata()?.len() > 0;
            let mut file = BufWriter::new(file);
            // A log that already holds a run of this job (`pipe retry --failed`, a release
            // `--again`): mark where the new one starts.
            if earlier && mark {
                writeln!(file, "--- run again ---")?;
            }
            self.open.insert(job.to_string(), file);
        }
        Ok(self.open.get_mut(job).expect("just inserted"))
    }
}

impl Reporter for LogFiles {
    /// Errors name the log that could not be written.
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.write(event).map_err(|e| {
            let job = match &event.kind {
                EventKind::JobStarted { job, .. }
                | EventKind::JobOutput { job, .. }
                | EventKind::JobRetrying { job, .. }
                | EventKind::JobFinished { job, .. } => Some(job),
                _ => None,
            };
            match job.and_then(|j| self.paths.get(j)) {
                Some(path) => cannot_write(path, e),
                None => e,
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.open
            .values_mut()
            .try_for_each(|f| f.flush())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot write the job logs: {e}")))
    }
}

impl LogFiles {
    fn write(&mut self, event: &Event) -> io::Result<()> {
        match &event.kind {
            EventKind::JobStarted { job, attempt } if *attempt > 1 => {
                writeln!(self.file(job)?, "--- attempt {attempt} ---")
            }
            EventKind::JobOutput { job, line, .. } => writeln!(self.file(job)?, "{line}"),
            EventKind::JobRetrying { job, reason, .. } => {
                writeln!(self.file(job)?, "pipe: {reason}; retrying")
            }
            EventKind::JobFinished {
                job,
                reused_from: Some(run),
                ..
            } => {
                let f = self.open_log(job, false)?;
                writeln!(f, "pipe: job {}", crate::style::reused(*run))?;
                self.open.remove(job).map_or(Ok(()), |mut f| f.flush())
            }
            EventKind::JobFinished {
                job,
                status,
                message,
                ..
            } => {
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

fn cannot_write(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
}
