//! What a git hook says about its run: one short line when it passed; when it failed, which
//! jobs, the last lines of their logs and `pipe logs` for the rest (the summary's renderer).
//! Nothing while jobs run: a hook that passes stays out of the way.

use std::io::{self, Write};

use tokio::sync::mpsc;

use super::tail::Failures;
use super::{duration, Reporter};
use crate::event::{Event, EventKind, RunStatus};
use crate::style::{paint, Tone};

/// Says how the run of `subject` (e.g. `pre-push of main at 1a2b3c4`) went, on `out`, when it
/// ends, until the sender side closes.
pub fn verdict(
    subject: String,
    out: Box<dyn Write + Send>,
    color: bool,
    events: mpsc::UnboundedReceiver<Event>,
) -> tokio::task::JoinHandle<Option<String>> {
    let reporter = Verdict {
        subject,
        out,
        color,
        jobs: 0,
        failures: Failures::default(),
    };
    tokio::task::spawn_blocking(move || {
        super::deliver_all(
            vec![(Box::new(reporter), true)],
            events,
            &crate::mask::Patterns::default(),
        )
    })
}

struct Verdict {
    subject: String,
    out: Box<dyn Write + Send>,
    color: bool,
    jobs: usize,
    failures: Failures,
}

impl Reporter for Verdict {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.failures.event(event);
        let c = self.color;
        match &event.kind {
            EventKind::RunStarted { jobs, .. } => self.jobs = jobs.len(),
            EventKind::RunFinished {
                status,
                duration: d,
            } => {
                let run = &self.failures.run_id;
                let took = duration(*d);
                match status {
                    RunStatus::Passed => writeln!(
                        self.out,
                        "pipe: {} {}: run {run}, {} job(s) in {took}",
                        self.subject,
                        paint(c, Tone::Good, "passed"),
                        self.jobs
                    )?,
                    RunStatus::Failed | RunStatus::Interrupted => {
                        let word = if *status == RunStatus::Failed {
                            "failed"
                        } else {
                            "interrupted"
                        };
                        writeln!(
                            self.out,
                            "pipe: {} {}: run {run} {word} after {took}",
                            self.subject,
                            paint(c, Tone::Bad, "blocked"),
                        )?;
                        self.failures.write(&mut self.out, c)?;
                    }
                }
            }
            EventKind::Stopping { .. } | EventKind::PrivilegeGranted { .. } => {
                if let Some(line) = super::notice(event) {
                    writeln!(self.out, "{line}")?;
                }
            }
            _ => {}
        }
        self.out.flush()
    }
}
