//! What happened to each job, gathered from the events, and the table printed at the end.

use std::io::{self, Write};
use std::time::Duration;

use super::duration;
use crate::event::{Event, EventKind, RunStatus};
use crate::style;

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub run_id: crate::store::RunId,
    pub rows: Vec<SummaryRow>,
    pub status: Option<RunStatus>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub job: String,
    pub stage: String,
    /// `passed`, `failed`, `skipped`, … or `pending` if the job never ended.
    pub status: String,
    pub duration: Option<Duration>,
    pub note: String,
}

impl Summary {
    pub fn event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::RunStarted { run_id, jobs, .. } => {
                self.run_id = *run_id;
                self.rows = jobs
                    .iter()
                    .map(|j| SummaryRow {
                        job: j.name.clone(),
                        stage: j.stage.clone(),
                        status: "pending".into(),
                        duration: None,
                        note: String::new(),
                    })
                    .collect();
            }
            EventKind::JobFinished {
                job,
                status,
                exit_code,
                duration,
                attempts,
                allowed,
                message,
                findings,
                reused_from,
            } => {
                if let Some(row) = self.row(job) {
                    row.status = if *allowed {
                        style::status_word("allowed_failure")
                    } else {
                        status.label().into()
                    };
                    row.duration = Some(*duration);
                    let mut notes = Vec::new();
                    if let Some(code) = exit_code.filter(|c| *c != 0) {
                        notes.push(format!("exit code {code}"));
                    }
                    if let Some(m) = message {
                        notes.push(m.clone());
                    }
                    if let Some(run) = reused_from {
                        notes.push(style::reused(*run));
                    }
                    if *attempts > 1 {
                        notes.push(format!("{attempts} attempts"));
                    }
                    if let Some(counts) = findings {
                        notes.push(crate::scan::report::summary(counts));
                    }
                    row.note = notes.join("; ");
                }
            }
            EventKind::JobSkipped { job, reason } => {
                if let Some(row) = self.row(job) {
                    row.status = "skipped".into();
                    row.note = reason.clone();
                }
            }
            // Not part of the run, but listed with it: a job does not silently go missing.
            EventKind::JobLeftOut { job, stage, reason } => self.rows.push(SummaryRow {
                job: job.clone(),
                stage: stage.clone(),
                status: "left out".into(),
                duration: None,
                note: reason.clone(),
            }),
            EventKind::RunFinished { status, duration } => {
                self.status = Some(*status);
                self.duration = *duration;
            }
            _ => {}
        }
    }

    fn row(&mut self, job: &str) -> Option<&mut SummaryRow> {
        self.rows.iter_mut().find(|r| r.job == job)
    }

    pub fn write_table(&self, out: &mut dyn Write, color: bool) -> io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let w_job = self
            .rows
            .iter()
            .map(|r| r.job.chars().count())
            .max()
            .unwrap_or(0)
            .max(3);
        let w_stage = self
            .rows
            .iter()
            .map(|r| r.stage.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let w_status = self
            .rows
            .iter()
            .map(|r| r.status.len())
            .max()
            .unwrap_or(0)
            .max(6);
        writeln!(out)?;
        writeln!(
            out,
            "{:w_job$}  {:w_stage$}  {:w_status$}  {:>8}  NOTE",
            "JOB", "STAGE", "STATUS", "DURATION"
        )?;
        for r in &self.rows {
            let status = format!("{:w_status$}", r.status);
            let d = r.duration.map(duration).unwrap_or_default();
            let line = format!(
                "{:w_job$}  {:w_stage$}  {}  {:>8}  {}",
                r.job,
                r.stage,
                style::paint(color, style::status_tone(&r.status), &status),
                d,
                r.note
            );
            writeln!(out, "{}", line.trim_end())?;
        }
        if let Some(status) = self.status {
            let word = match status {
                RunStatus::Passed => "passed",
                RunStatus::Failed => "failed",
                RunStatus::Interrupted => "interrupted",
            };
            writeln!(
                out,
                "\nrun {} {} in {}",
                self.run_id,
                style::status(color, word),
                duration(self.duration)
            )?;
        }
        Ok(())
    }
}
