//! Every job's full log, one file per job under the run's directory, kept after the run.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::Reporter;
use crate::event::{Event, EventKind};

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
        if !self.open.contains_key(job) {
            let path = self
                .paths
                .get(job)
                .ok_or_else(|| io::Error::other(format!("no log file for job `{job}`")))?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let file = File::options().create(true).append(true).open(path)?;
            let earlier = file.metadata()?.len() > 0;
            let mut file = BufWriter::new(file);
            // A log that already holds a run of this job (`pipe retry --failed`, a release
            // `--again`): mark where the new one starts.
            if earlier {
                writeln!(file, "--- run again ---")?;
            }
            self.open.insert(job.to_string(), file);
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
            EventKind::JobRetrying { job, reason, .. } => {
                writeln!(self.file(job)?, "pipe: {reason}; retrying")
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

    fn flush(&mut self) -> io::Result<()> {
        self.open.values_mut().try_for_each(|f| f.flush())
    }
}
