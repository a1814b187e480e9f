//! The terminal view: the run's header, one live line per running job (spinner, name, elapsed
//! time, last output line, names padded so the columns line up), and a permanent line when each
//! job ends. Drawn on stderr, so stdout stays clean. Live lines never outlive the run: they are
//! cleared when it ends, or when the reporter is dropped (an interrupted run).
//!
//! A terminal can be slower than a job's output. Rather than hold the run back, the view leaves
//! lines out while it is [`LAGGING`] lines behind: a live line shows the newest line it had
//! time for, and `--verbose` says how many lines it left out where it left them out. The log
//! file, the store and plain or JSON lines have every line.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use std::sync::Arc;

use super::{duration, Reporter, ScreenQueue};
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
    /// How far behind the view is.
    queue: Arc<ScreenQueue>,
    /// Per job, the lines `--verbose` left out since the last one it printed.
    left_out: HashMap<String, usize>,
}

/// Output lines waiting for the view past which it leaves lines out.
const LAGGING: usize = super::screen::SCREEN_LINES / 4;

impl Progress {
    pub fn new(verbose: bool, color: bool, queue: Arc<ScreenQueue>) -> Self {
        Self::drawing(ProgressDrawTarget::stderr(), verbose, color, queue)
    }

    fn drawing(
        target: ProgressDrawTarget,
        verbose: bool,
        color: bool,
        queue: Arc<ScreenQueue>,
    ) -> Self {
        Progress {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
            style: live_style(0, color),
            width: 0,
            verbose,
            color,
            queue,
            left_out: HashMap::new(),
        }
    }

    /// Says how many of `job`'s lines were left out, if any were.
    fn say_left_out(&mut self, job: &str) -> io::Result<()> {
        match self.left_out.remove(job) {
            Some(n) => self.multi.println(format!(
                "[{job}] … {n} line(s) left out here, the terminal lagging (`pipe logs last {job}` has them)"
            )),
            None => Ok(()),
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
                // The line still waiting for the view tells it whether it keeps up.
                let lagging = self.queue.behind() > LAGGING;
                if self.verbose && lagging {
                    *self.left_out.entry(job.clone()).or_default() += 1;
                } else if self.verbose {
                    self.say_left_out(job)?;
                    self.multi.println(format!("[{job}] {line}"))?;
                }
                if let Some(bar) = self.bars.get(job).filter(|_| !lagging) {
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
                self.say_left_out(job)?;
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
            EventKind::JobWaiting { job, reason, .. } => self.multi.println(format!(
                "… {job:w$} {}: {reason}",
                style::status(c, "waiting")
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
            | EventKind::ReleaseStep { .. }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Stream;

    fn output(line: &str) -> Event {
        Event::now(EventKind::JobOutput {
            job: "loud".into(),
            stream: Stream::Stdout,
            line: line.into(),
        })
    }

    #[test]
    fn a_lagging_view_leaves_lines_out_and_says_how_many_once_it_keeps_up() {
        let queue = Arc::new(ScreenQueue::default());
        queue.count();
        let mut view = Progress::drawing(ProgressDrawTarget::hidden(), true, false, queue.clone());
        view.event(&Event::now(EventKind::JobStarted {
            job: "loud".into(),
            attempt: 1,
        }))
        .unwrap();
        view.event(&output("kept up")).unwrap();
        assert!(view.left_out.is_empty());
        for _ in 0..=LAGGING {
            queue.queue(|| false);
        }
        for line in ["a", "b", "c"] {
            view.event(&output(line)).unwrap();
        }
        assert_eq!(view.left_out.get("loud"), Some(&3));
        for _ in 0..=LAGGING {
            queue.shown();
        }
        view.event(&output("caught up")).unwrap();
        assert!(view.left_out.is_empty(), "said, and counted afresh");
        assert_eq!(view.bars["loud"].message(), "caught up");
    }
}
