//! Plain lines, each prefixed with its job's name: for CI logs, pipes and files.

use std::io::{self, Write};

use super::{duration, Reporter};
use crate::event::{Event, EventKind};
use crate::style::{self, paint, Tone};

pub struct Plain {
    out: Box<dyn Write + Send>,
    color: bool,
}

impl Plain {
    pub fn new(out: Box<dyn Write + Send>, color: bool) -> Self {
        Plain { out, color }
    }
}

impl Reporter for Plain {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let c = self.color;
        match &event.kind {
            EventKind::RunStarted {
                run_id,
                pipeline,
                jobs,
            } => writeln!(
                self.out,
                "pipe: run {run_id} of {pipeline}: {} job(s)",
                jobs.len()
            )?,
            EventKind::JobStarted { job, attempt } => {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                writeln!(self.out, "[{}] started{again}", paint(c, Tone::Strong, job))?
            }
            EventKind::JobOutput { job, line, .. } => writeln!(self.out, "[{job}] {line}")?,
            EventKind::JobRetrying { job, reason, .. } => {
                writeln!(self.out, "[{job}] {reason}; retrying")?
            }
            EventKind::JobFinished {
                job,
                status,
                duration: d,
                allowed,
                message,
                exit_code,
                reused_from,
                ..
            } => {
                let label = if let Some(run) = reused_from {
                    style::reused(*run)
                } else if *allowed {
                    style::status_word("allowed_failure")
                } else {
                    status.label().to_string()
                };
                let mut line = if reused_from.is_some() {
                    format!(
                        "[{}] {}",
                        paint(c, Tone::Strong, job),
                        paint(c, Tone::Good, &label)
                    )
                } else {
                    format!(
                        "[{}] {} in {}",
                        paint(c, Tone::Strong, job),
                        style::status(c, &label),
                        duration(*d)
                    )
                };
                if let (Some(code), false) = (exit_code, *exit_code == Some(0)) {
                    line.push_str(&format!(" (exit code {code})"));
                }
                if let Some(m) = message {
                    line.push_str(&format!(": {m}"));
                }
                writeln!(self.out, "{line}")?
            }
            EventKind::JobSkipped { job, reason } => {
                writeln!(self.out, "[{job}] skipped: {reason}")?
            }
            EventKind::JobLeftOut { job, reason, .. } => {
                writeln!(self.out, "[{job}] left out: {reason}")?
            }
            EventKind::JobWaiting { job, reason, .. } => writeln!(self.out, "[{job}] {reason}")?,
            // The job's log says it in its own lines.
            EventKind::RunFinished { .. }
            | EventKind::ImageBuilt { .. }
            | EventKind::ImagePushed { .. }
            | EventKind::JobDrift { .. } => {}
            EventKind::PrivilegeGranted { .. }
            | EventKind::AwaitingRelease { .. }
            | EventKind::ReleaseStep { .. }
            | EventKind::Stopping { .. }
            | EventKind::Watching {}
            | EventKind::FilesChanged { .. } => {
                if let Some(line) = super::notice(event) {
                    // Stdout is the jobs' output: a notice there would be read as one.
                    let _ = writeln!(io::stderr().lock(), "{line}");
                }
            }
        }
        // Output lines go out in batches (see `flush`); anything else at once, so that it is
        // never held back behind what others write on stdout.
        match event.kind {
            EventKind::JobOutput { .. } => Ok(()),
            _ => self.out.flush(),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
