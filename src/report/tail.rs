//! Why a run failed, where a person reads it: the last lines of each failed job's output and
//! the command that prints the rest. The summary after `pipe run`, `release` and `retry` and a
//! git hook's verdict show failures through this one renderer.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};

use crate::event::{Event, EventKind, JobStatus};
use crate::style::{paint, Tone};

/// How many of a failed job's last output lines are shown.
pub const TAIL_LINES: usize = 10;
/// A line longer than this is cut: one runaway line must not fill the screen.
const LINE_CHARS: usize = 240;

/// A job that failed the run, with the last lines of its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub job: String,
    /// `failed (exit code 1)`, `timed out`, `error: image not found`, …
    pub what: String,
    pub tail: Vec<String>,
}

/// Gathers the failures of a run from its events.
#[derive(Debug, Default)]
pub struct Failures {
    pub run_id: String,
    tails: HashMap<String, VecDeque<String>>,
    pub failed: Vec<Failure>,
}

impl Failures {
    pub fn event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::RunStarted { run_id, .. } => {
                self.run_id = run_id.to_string();
                self.tails.clear();
                self.failed.clear();
            }
            // Each attempt's output stands alone: the tail is the last attempt's.
            EventKind::JobStarted { job, .. } => {
                self.tails.insert(job.clone(), VecDeque::new());
            }
            EventKind::JobOutput { job, line, .. } => {
                // Looked up before inserting: a name copied per line of output adds up.
                let tail = match self.tails.get_mut(job) {
                    Some(tail) => tail,
                    None => self.tails.entry(job.clone()).or_default(),
                };
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(cut(line));
            }
            EventKind::JobFinished {
                job,
                status,
                exit_code,
                allowed,
                message,
                ..
            } if !*allowed
                && matches!(
                    status,
                    JobStatus::Failed | JobStatus::TimedOut | JobStatus::Errored
                ) =>
            {
                let mut what = status.label().to_string();
                if let Some(code) = exit_code.filter(|c| *c != 0) {
                    what.push_str(&format!(" (exit code {code})"));
                }
                if let Some(m) = message {
                    what.push_str(&format!(": {m}"));
                }
                self.failed.push(Failure {
                    job: job.clone(),
                    what,
                    tail: self.tails.remove(job).unwrap_or_default().into(),
                });
            }
            _ => {}
        }
    }

    /// Each failed job: a line saying how it failed and where its whole log is (led by `---`, so
    /// it is never read as the summary table's row of that job), then the last lines of its
    /// output, indented. Nothing when no job failed.
    pub fn write(&self, out: &mut dyn Write, color: bool) -> io::Result<()> {
        for f in &self.failed {
            writeln!(
                out,
                "\n--- {} {}; the whole log: {}",
                paint(color, Tone::Bad, &f.job),
                f.what,
                logs_command(&self.run_id, &f.job)
            )?;
            if f.tail.is_empty() {
                writeln!(out, "    (no output)")?;
            }
            for line in &f.tail {
                writeln!(out, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// `pipe logs 12 unit`, with the job's name quoted for a POSIX shell when it needs it (a matrix
/// variant's `unit [TARGET=x86_64]`).
pub fn logs_command(run_id: &str, job: &str) -> String {
    let plain = job
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/+@%=,".contains(c));
    if plain && !job.is_empty() {
        format!("pipe logs {run_id} {job}")
    } else {
        format!("pipe logs {run_id} '{}'", job.replace('\'', r"'\''"))
    }
}

fn cut(line: &str) -> String {
    match line.char_indices().nth(LINE_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{PlannedJob, Stream};
    use std::time::Duration;

    fn started(job: &str, attempt: u32) -> Event {
        Event::now(EventKind::JobStarted {
            job: job.into(),
            attempt,
        })
    }

    fn output(job: &str, line: &str) -> Event {
        Event::now(EventKind::JobOutput {
            job: job.into(),
            stream: Stream::Stdout,
            line: line.into(),
        })
    }

    fn finished(job: &str, status: JobStatus, code: i64, allowed: bool) -> Event {
        Event::now(EventKind::JobFinished {
            job: job.into(),
            status,
            exit_code: Some(code),
            duration: Duration::from_secs(1),
            attempts: 1,
            allowed,
            message: None,
            findings: None,
            reused_from: None,
        })
    }

    fn gathered(events: &[Event]) -> Failures {
        let mut failures = Failures::default();
        let jobs = ["unit", "lint", "ok"].map(|name| PlannedJob {
            name: name.into(),
            stage: "test".into(),
            needs: Vec::new(),
        });
        failures.event(&Event::now(EventKind::RunStarted {
            run_id: 12,
            pipeline: "p".into(),
            jobs: jobs.to_vec(),
        }));
        events.iter().for_each(|e| failures.event(e));
        failures
    }

    #[test]
    fn a_failed_job_shows_its_last_lines_and_how_to_see_the_rest() {
        let mut events = vec![started("unit", 1), started("ok", 1), started("lint", 1)];
        events.extend((1..=15).map(|i| output("unit", &format!("line {i}"))));
        events.push(output("ok", "fine"));
        events.push(output("lint", "warning"));
        events.push(finished("ok", JobStatus::Passed, 0, false));
        events.push(finished("lint", JobStatus::Failed, 1, true));
        events.push(finished("unit", JobStatus::Failed, 101, false));
        let mut out = Vec::new();
        gathered(&events).write(&mut out, false).unwrap();
        let mut expected =
            String::from("\n--- unit failed (exit code 101); the whole log: pipe logs 12 unit\n");
        for i in 6..=15 {
            expected.push_str(&format!("    line {i}\n"));
        }
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn the_tail_is_the_last_attempts_and_a_silent_job_says_so() {
        let events = [
            started("unit", 1),
            output("unit", "first attempt"),
            started("unit", 2),
            finished("unit", JobStatus::TimedOut, 0, false),
        ];
        let failures = gathered(&events);
        assert_eq!(failures.failed[0].tail, Vec::<String>::new());
        let mut out = Vec::new();
        failures.write(&mut out, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n--- unit timed out; the whole log: pipe logs 12 unit\n    (no output)\n"
        );
    }

    #[test]
    fn job_names_are_quoted_for_the_shell_when_they_need_it() {
        assert_eq!(logs_command("3", "unit"), "pipe logs 3 unit");
        assert_eq!(
            logs_command("3", "unit [TARGET=x86_64]"),
            "pipe logs 3 'unit [TARGET=x86_64]'"
        );
        assert_eq!(logs_command("3", "it's"), r"pipe logs 3 'it'\''s'");
        assert_eq!(cut(&"x".repeat(300)).chars().count(), LINE_CHARS + 1);
    }
}
