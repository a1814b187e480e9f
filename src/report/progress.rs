//! The terminal view: the run's header, one live line per running job (spinner, name, elapsed
//! time, last output line, names padded so the columns line up), and a permanent line when each
//! job ends. Drawn on stderr, so stdout stays clean. Live lines never outlive the run: they are
//! cleared when it ends, or when the reporter is dropped (an interrupted run).

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{duration, Reporter};
use crate::event::{Event, EventKind};
use crate::style::{self, paint, Tone};

pub struct Progress {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    style: ProgressStyle,
    /// The longest job name of the run: live and finished lines pad names to it.
    width: usize,
    verbose: bool,
    color: bool,
}

impl Progress {
    pub fn new(verbose: bool, color: bool) -> Self {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            style: live_style(0, color),
            width: 0,
            verbose,
            color,
        }
    }

    /// Takes every live line off the screen.
    fn clear(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

fn live_style(width: usize, color: bool) -> ProgressStyle {
    let template = if color {
        format!("{{spinner:.cyan}} {{prefix:{width}.bold}} {{elapsed:>4}} {{wide_msg:.dim}}")
    } else {
        format!("{{spinner}} {{prefix:{width}}} {{elapsed:>4}} {{wide_msg}}")
    };
    ProgressStyle::with_template(&template).expect("valid template")
}

impl Reporter for Progress {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let c = self.color;
        let w = self.width;
        match &event.kind {
            EventKind::RunStarted {
                run_id,
                pipeline,
                jobs,
            } => {
                self.width = jobs
                    .iter()
                    .map(|j| j.name.chars().count())
                    .max()
                    .unwrap_or(0);
                self.style = live_style(self.width, c);
                self.multi.println(format!(
                    "pipe: run {run_id} of {pipeline}: {} job(s)",
                    jobs.len()
                ))?;
            }
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
                reused_from,
                ..
            } => {
                if let Some(bar) = self.bars.remove(job) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(run) = reused_from {
                    return self.multi.println(format!(
                        "{} {} {}",
                        paint(c, Tone::Good, "✓"),
                        paint(c, Tone::Strong, &format!("{job:w$}")),
                        paint(c, Tone::Good, &style::reused(*run))
                    ));
                }
                let label = if *allowed {
                    style::status_word("allowed_failure")
                } else {
                    status.label().to_string()
                };
                let mark = if label == "passed" { "✓" } else { "✗" };
                self.multi.println(format!(
                    "{} {} {} in {}",
                    paint(c, style::status_tone(&label), mark),
                    paint(c, Tone::Strong, &format!("{job:w$}")),
                    style::status(c, &label),
                    duration(*d)
                ))?;
            }
            EventKind::JobSkipped { job, reason } => self.multi.println(format!(
                "- {job:w$} {}: {reason}",
                style::status(c, "skipped")
            ))?,
            EventKind::JobLeftOut { job, reason, .. } => self.multi.println(format!(
                "- {job:w$} {}: {reason}",
                style::status(c, "left out")
            ))?,
            EventKind::Stopping { .. } => {
                for bar in self.bars.values() {
                    bar.set_message("stopping");
                }
                if let Some(line) = super::notice(event) {
                    self.multi.println(line)?;
                }
            }
            EventKind::PrivilegeGranted { .. }
            | EventKind::AwaitingRelease { .. }
            | EventKind::Watching {}
            | EventKind::FilesChanged { .. } => {
                if let Some(line) = super::notice(event) {
                    self.multi.println(line)?;
                }
            }
            // The job's log says it in its own lines.
            EventKind::ImageBuilt { .. }
            | EventKind::ImagePushed { .. }
            | EventKind::JobDrift { .. } => {}
            // The summary table follows on stdout: no live line may be left above or in it.
            EventKind::RunFinished { .. } => self.clear(),
        }
        Ok(())
    }
}
