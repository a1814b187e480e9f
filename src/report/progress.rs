//! The terminal view: one live line per running job (spinner, name, elapsed time, last output
//! line), and a permanent line when each job ends. Drawn on stderr, so stdout stays clean.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{duration, paint, status_color, Reporter};
use crate::event::{Event, EventKind};

pub struct Progress {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    style: ProgressStyle,
    verbose: bool,
    color: bool,
}

impl Progress {
    pub fn new(verbose: bool, color: bool) -> Self {
        let template = if color {
            "{spinner:.cyan} {prefix:.bold} {elapsed:>4} {wide_msg:.dim}"
        } else {
            "{spinner} {prefix} {elapsed:>4} {wide_msg}"
        };
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            style: ProgressStyle::with_template(template).expect("valid template"),
            verbose,
            color,
        }
    }
}

impl Reporter for Progress {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let c = self.color;
        match &event.kind {
            EventKind::JobStarted { job, .. } => {
                let bar = self.bars.entry(job.clone()).or_insert_with(|| {
                    let bar = self
                        .multi
                        .add(ProgressBar::new_spinner().with_style(self.style.clone()));
                    bar.set_prefix(job.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message("");
            }
            EventKind::JobOutput { job, line, .. } => {
                if self.verbose {
                    self.multi.println(format!("[{job}] {line}"))?;
                }
                if let Some(bar) = self.bars.get(job) {
                    bar.set_message(line.clone());
                }
            }
            EventKind::JobRetrying { job, reason, .. } => {
                self.multi.println(format!("↻ {job}: {reason}; retrying"))?
            }
            EventKind::JobFinished {
                job,
                status,
                duration: d,
                allowed,
                ..
            } => {
                if let Some(bar) = self.bars.remove(job) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let label = if *allowed {
                    "allowed to fail"
                } else {
                    status.label()
                };
                let mark = if label == "passed" { "✓" } else { "✗" };
                self.multi.println(format!(
                    "{} {} {} in {}",
                    paint(c, status_color(label), mark),
                    paint(c, "1", job),
                    label,
                    duration(*d)
                ))?;
            }
            EventKind::JobSkipped { job, reason } => {
                self.multi.println(format!("- {job} skipped: {reason}"))?
            }
            EventKind::JobLeftOut { job, reason, .. } => {
                self.multi.println(format!("- {job} left out: {reason}"))?
            }
            EventKind::PrivilegeGranted { .. }
            | EventKind::AwaitingRelease { .. }
            | EventKind::Stopping { .. } => {
                if let Some(line) = super::notice(event) {
                    self.multi.println(line)?;
                }
            }
            EventKind::RunStarted { .. } | EventKind::RunFinished { .. } => {}
        }
        Ok(())
    }
}
