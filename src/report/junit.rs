//! JUnit XML for CI servers and dashboards (`--junit FILE`), in the Apache Ant schema they all
//! read: a `testsuite` per run or release of the request, a `testcase` per job (classname =
//! stage, name = job). A job that failed or timed out is a `failure`, one the backend could not
//! run an `error`, both with the last lines of its log (masked like all output); a skipped or
//! cancelled job is `skipped` with the reason. Jobs `only:` left out of the run are not part of
//! it and are left out here too. The file is rewritten whole, atomically, as each run ends.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::Reporter;
use crate::event::{Event, EventKind, JobStatus};

/// How many of a failed job's last output lines go into its `failure`.
const TAIL_LINES: usize = 50;

pub struct JUnit {
    file: PathBuf,
    suites: Vec<Suite>,
    /// Each running job's last output lines (of its last attempt).
    tails: HashMap<String, VecDeque<String>>,
}

struct Suite {
    name: String,
    started: DateTime<Utc>,
    /// Each planned job's stage.
    stages: HashMap<String, String>,
    cases: Vec<Case>,
    seconds: f64,
}

struct Case {
    stage: String,
    job: String,
    seconds: f64,
    verdict: Verdict,
}

enum Verdict {
    Passed,
    Failure {
        kind: String,
        message: String,
        tail: String,
    },
    Error {
        message: String,
        tail: String,
    },
    Skipped(String),
}

impl JUnit {
    pub fn new(file: PathBuf) -> JUnit {
        JUnit {
            file,
            suites: Vec::new(),
            tails: HashMap::new(),
        }
    }

    fn case(&mut self, job: &str, seconds: f64, verdict: Verdict) {
        if let Some(suite) = self.suites.last_mut() {
            let stage = suite.stages.get(job).cloned().unwrap_or_default();
            suite.cases.push(Case {
                stage,
                job: job.to_string(),
                seconds,
                verdict,
            });
        }
    }

    fn tail(&mut self, job: &str) -> String {
        let lines = self.tails.remove(job).unwrap_or_default();
        lines.into_iter().collect::<Vec<_>>().join("\n")
    }

    fn write(&self) -> io::Result<()> {
        let xml = render(&self.suites, &hostname());
        let name = self
            .file
            .file_name()
            .map_or_else(|| "junit.xml".into(), |n| n.to_string_lossy().into_owned());
        // Beside the file, so the rename is atomic: a reader never sees half a report.
        let partial = self.file.with_file_name(format!(".{name}.partial"));
        std::fs::write(&partial, xml)
            .and_then(|()| std::fs::rename(&partial, &self.file))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.file.display())))
    }
}

impl Reporter for JUnit {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        match &event.kind {
            EventKind::RunStarted {
                run_id,
                pipeline,
                jobs,
            } => {
                self.tails.clear();
                self.suites.push(Suite {
                    name: format!("{pipeline} (run {run_id})"),
                    started: event.time,
                    stages: jobs
                        .iter()
                        .map(|j| (j.name.clone(), j.stage.clone()))
                        .collect(),
                    cases: Vec::new(),
                    seconds: 0.0,
                });
            }
            EventKind::JobStarted { job, .. } => {
                self.tails.insert(job.clone(), VecDeque::new());
            }
            EventKind::JobOutput { job, line, .. } => {
                let tail = self.tails.entry(job.clone()).or_default();
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            EventKind::JobFinished {
                job,
                status,
                exit_code,
                duration,
                message,
                ..
            } => {
                let mut what = status.label().to_string();
                if let Some(code) = exit_code.filter(|c| *c != 0) {
                    what.push_str(&format!(" (exit code {code})"));
                }
                if let Some(m) = message {
                    what.push_str(&format!(": {m}"));
                }
                let tail = self.tail(job);
                let verdict = match status {
                    JobStatus::Passed => Verdict::Passed,
                    JobStatus::Failed | JobStatus::TimedOut => Verdict::Failure {
                        kind: status.label().to_string(),
                        message: what,
                        tail,
                    },
                    JobStatus::Errored => Verdict::Error {
                        message: what,
                        tail,
                    },
                    JobStatus::Cancelled => Verdict::Skipped(what),
                };
                self.case(job, duration.as_secs_f64(), verdict);
            }
            EventKind::JobSkipped { job, reason } => {
                self.case(job, 0.0, Verdict::Skipped(reason.clone()));
            }
            EventKind::RunFinished { duration, .. } => {
                if let Some(suite) = self.suites.last_mut() {
                    suite.seconds = duration.as_secs_f64();
                }
                self.write()?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn render(suites: &[Suite], hostname: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for (id, suite) in suites.iter().enumerate() {
        let count = |f: fn(&Verdict) -> bool| suite.cases.iter().filter(|c| f(&c.verdict)).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" package=\"{}\" id=\"{id}\" timestamp=\"{}\" hostname=\"{}\" \
             tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            xml(&suite.name),
            xml(&suite.name),
            suite.started.format("%Y-%m-%dT%H:%M:%S"),
            xml(hostname),
            suite.cases.len(),
            count(|v| matches!(v, Verdict::Failure { .. })),
            count(|v| matches!(v, Verdict::Error { .. })),
            count(|v| matches!(v, Verdict::Skipped(_))),
            suite.seconds,
        );
        out.push_str("    <properties/>\n");
        for case in &suite.cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&case.stage),
                xml(&case.job),
                case.seconds
            );
            let _ = match &case.verdict {
                Verdict::Passed => writeln!(out, "/>"),
                Verdict::Failure {
                    kind,
                    message,
                    tail,
                } => writeln!(
                    out,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    xml(kind),
                    xml(message),
                    xml(tail)
                ),
                Verdict::Error { message, tail } => writeln!(
                    out,
                    ">\n      <error type=\"errored\" message=\"{}\">{}</error>\n    </testcase>",
                    xml(message),
                    xml(tail)
                ),
                Verdict::Skipped(reason) => writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml(reason)
                ),
            };
        }
        out.push_str("    <system-out/>\n    <system-err/>\n  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text safe in an attribute or element; characters XML 1.0 cannot hold at all (a job's
/// terminal escapes) become U+FFFD.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The schema wants the machine's name; `localhost` when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_jobs_cannot_break_the_document() {
        assert_eq!(
            xml("a<b & \"c\"\x1b[31m"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}[31m"
        );
    }
}
