//! `pipe runs`, `pipe show` and `pipe logs`: what the store remembers.

use std::time::Duration;

use super::exec::{context, project, runtime, StoreArg};
use super::{color_on, exit, print, table, CliError};
use crate::engine::{self, Context, LogChunk, StoreAt};
use crate::event::SCHEMA_VERSION;
use crate::report::duration;
use crate::store::{JobRecord, RunRecord};
use crate::style;

#[derive(clap::Args)]
pub struct RunsArgs {
    /// Only runs that deployed to this environment: the newest is what is live there
    #[arg(long)]
    environment: Option<String>,
    /// How many runs to list
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// How to print the runs: a table for people, or one JSON object per line for programs
    #[arg(long, value_enum, default_value = "human")]
    output: super::Output,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The run: its number, or `last`
    run: String,
    /// How to print the run: for people, or one JSON object for programs
    #[arg(long, value_enum, default_value = "human")]
    output: super::Output,
    /// Print the run's SARIF 2.1.0 instead: the runs of every scan job's report and of every
    /// job's `reports:`, in one document
    #[arg(long, conflicts_with = "output")]
    sarif: bool,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// The run: its number, or `last`
    run: String,
    /// One job's log [default: every job's, one after the other]
    job: Option<String>,
    /// Keep printing as the log grows, until the job ends
    #[arg(long, short)]
    follow: bool,
    // With --objects: the log as published to the object store, wherever the job ran.
    #[command(flatten)]
    store: StoreArg,
}

pub fn runs(args: RunsArgs) -> Result<u8, CliError> {
    let color = color_on(&std::io::stdout());
    let ctx = Context {
        store: args.store.at()?,
        ..context(None)?
    };
    let runs = engine::list_runs(&ctx, args.environment.as_deref(), args.limit)?;
    if matches!(args.output, super::Output::Json) {
        let lines: String = runs
            .iter()
            .map(|r| format!("{}\n", record_json(r)))
            .collect();
        return print(&lines).map(|_| exit::OK);
    }
    if runs.is_empty() {
        let what = args
            .environment
            .map(|e| format!(" that deployed to {e}"))
            .unwrap_or_default();
        print(&format!("no runs{what} yet\n"))?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                style::status(color, r.state.as_str()),
                r.pipeline_name.clone(),
                r.branch.clone().unwrap_or_else(|| "-".into()),
                r.commit
                    .as_deref()
                    .map(|c| format!("{}{}", &c[..c.len().min(8)], uncommitted(r, false)))
                    .unwrap_or_else(|| "-".into()),
                r.started_at.format("%Y-%m-%d %H:%M").to_string(),
                r.ended_at
                    .map(|e| duration((e - r.started_at).to_std().unwrap_or_default()))
                    .unwrap_or_default(),
                if r.environments.is_empty() {
                    "-".into()
                } else {
                    r.environments.join(",")
                },
                r.trigger.clone(),
            ]
        })
        .collect();
    print(&table(
        &[
            "RUN",
            "STATE",
            "PIPELINE",
            "BRANCH",
            "COMMIT",
            "STARTED (UTC)",
            "DURATION",
            "DEPLOYED TO",
            "TRIGGER",
        ],
        &rows,
    ))?;
    Ok(exit::OK)
}

fn record_json(r: &RunRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["schema"] = SCHEMA_VERSION.into();
    v["duration_s"] = r.ended_at.map_or(serde_json::Value::Null, |e| {
        ((e - r.started_at).num_milliseconds() as f64 / 1000.0).into()
    });
    // `null` where nothing was counted: no commit, or a run from before pipe counted.
    v["dirty"] = r
        .changed_paths
        .map_or(serde_json::Value::Null, |n| (n > 0).into());
    v
}

/// What a run's snapshot holds besides its commit, said after the commit: nothing for a clean
/// one. `long` for `pipe show`, short for the table of `pipe runs`.
fn uncommitted(r: &RunRecord, long: bool) -> String {
    match (r.changed_paths, long) {
        (Some(0), _) => String::new(),
        (Some(n), true) => format!(
            " plus uncommitted changes to {n} path{}",
            if n == 1 { "" } else { "s" }
        ),
        (Some(n), false) => format!(" (+{n} uncommitted)"),
        (None, true) => " (its uncommitted changes were not counted)".into(),
        (None, false) => " (not counted)".into(),
    }
}

pub fn show(args: ShowArgs) -> Result<u8, CliError> {
    let store = args.store.at()?;
    if args.sarif {
        if store != StoreAt::Project {
            // A shared store's run may have run on another machine, which holds its reports.
            return Err(CliError::Invalid(
                "--sarif reads the reports in this project's own .pipe/: not with a shared store"
                    .into(),
            ));
        }
        let (_, sarif) = engine::run_sarif(&project(None)?.dir, &args.run)?;
        let text = serde_json::to_string_pretty(&sarif).unwrap_or_default();
        return print(&format!("{text}\n")).map(|_| exit::OK);
    }
    let steps;
    let engine::Shown {
        run,
        jobs,
        approvals,
        audit,
        gate,
    } = {
        let ctx = Context {
            store,
            ..context(None)?
        };
        let shown = engine::show(&ctx, &args.run)?;
        steps = engine::release_steps(&ctx, &args.run)?;
        shown
    };
    let id = run.id;
    let dir = project(None)?.dir;
    let tools: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| match j.findings {
            Some(_) => engine::finding_tools(&dir, id, j),
            None => Vec::new(),
        })
        .collect();
    if matches!(args.output, super::Output::Json) {
        let mut v = record_json(&run);
        v["jobs"] = serde_json::to_value(&jobs).unwrap_or_default();
        for (job, tools) in v["jobs"].as_array_mut().into_iter().flatten().zip(&tools) {
            if !tools.is_empty() {
                job["tools"] = serde_json::json!(tools);
            }
        }
        v["approvals"] = serde_json::to_value(&approvals).unwrap_or_default();
        v["audit"] = serde_json::to_value(&audit).unwrap_or_default();
        v["steps"] = serde_json::to_value(&steps).unwrap_or_default();
        v["gate"] = gate
            .clone()
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null);
        return print(&format!("{v}\n")).map(|_| exit::OK);
    }
    let color = color_on(&std::io::stdout());
    let mut out = format!(
        "run {id} of {} ({}): {}\n",
        run.pipeline_name,
        run.pipeline_file,
        style::status(color, run.state.as_str())
    );
    let on = run.branch.as_deref().unwrap_or("-");
    let commit = match &run.commit {
        Some(c) => format!("{c} on {on}{}", uncommitted(&run, true)),
        None => format!("- on {on}"),
    };
    out.push_str(&format!(
        "  commit {commit}; {}; started {} UTC\n",
        run.trigger,
        run.started_at.format("%Y-%m-%d %H:%M:%S")
    ));
    out.push('\n');
    out.push_str(&jobs_table(&jobs, &tools, color));
    for job in &jobs {
        let services: Vec<String> = engine::service_logs(&dir, job)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if !services.is_empty() {
            out.push_str(&format!(
                "services of `{}`: {} (`pipe logs {id} '{}'` shows their logs)\n",
                job.name,
                services.join(", "),
                job.name
            ));
        }
    }
    if !steps.is_empty() {
        out.push_str(&format!("\nrelease steps:\n{}", steps_drawn(&steps, color)));
    }
    if let Some(line) = gate {
        out.push_str(&format!("\ngate: {line}\n"));
    }
    if !approvals.is_empty() {
        let who: Vec<String> = approvals.iter().map(|a| a.by.clone()).collect();
        out.push_str(&format!("approved by: {}\n", who.join(", ")));
    }
    out.push_str("\naudit trail:\n");
    for a in &audit {
        out.push_str(&format!(
            "  {} {} {}: {}\n",
            a.at.format("%Y-%m-%d %H:%M:%S"),
            a.actor,
            a.action,
            a.detail
        ));
    }
    print(&out)?;
    Ok(exit::OK)
}

/// One line per step of a progressive release: `✓` done, `✗` failed, `↩` rolled back, `→` the
/// next one, `·` later ones; with what its verification measured.
fn steps_drawn(steps: &[engine::StepView], color: bool) -> String {
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            let mark = match s.status.as_str() {
                "passed" => "\u{2713}",
                "failed" | "verify_failed" => "\u{2717}",
                "rolled_back" => "\u{21a9}",
                "next" => "\u{2192}",
                _ => "\u{b7}",
            };
            vec![
                format!("  {mark} {}", s.step),
                s.name.clone().unwrap_or_default(),
                format!("{}%", s.percent),
                style::status(color, &s.status),
                s.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["  STEP", "NAME", "PERCENT", "STATUS", "NOTE"], &rows)
}

/// `tools`: for each job, the tools whose findings it kept.
fn jobs_table(jobs: &[JobRecord], tools: &[Vec<String>], color: bool) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .zip(tools)
        .map(|(j, tools)| {
            vec![
                j.name.clone(),
                j.stage.clone(),
                style::status(color, &j.status),
                j.duration_ms
                    .map(|ms| duration(Duration::from_millis(ms)))
                    .unwrap_or_default(),
                j.environment.clone().unwrap_or_default(),
                // A scan job's findings say more than its exit code; the tools that found them
                // are named (`pipe` for the built-in scanners).
                j.findings
                    .map(|f| match tools.is_empty() {
                        true => crate::scan::report::summary(&f),
                        false => {
                            format!("{}: {}", tools.join(", "), crate::scan::report::summary(&f))
                        }
                    })
                    .or_else(|| j.note.clone())
                    .into_iter()
                    .chain(
                        j.image
                            .as_ref()
                            .map(|i| format!("image {} ({})", short_id(&i.id), i.tags.join(", "))),
                    )
                    .chain(j.drift.as_ref().map(|d| format!("drift: {}", d.summary())))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    table(
        &["JOB", "STAGE", "STATUS", "DURATION", "ENVIRONMENT", "NOTE"],
        &rows,
    )
}

pub fn logs(args: LogsArgs) -> Result<u8, CliError> {
    let mut out = |chunk: LogChunk| match chunk {
        LogChunk::Job(name) => print(&format!("==> {name} <==\n")),
        LogChunk::NoLog { job, status } => print(&format!(
            "(job `{job}` has no log; its status: {})\n",
            style::status_word(status)
        )),
        LogChunk::Text(text) => print(&String::from_utf8_lossy(text)),
    };
    let Some(objects) = args.store.objects()? else {
        engine::job_log(
            &project(None)?.dir,
            &args.run,
            args.job.as_deref(),
            args.follow,
            &mut out,
        )?;
        return Ok(exit::OK);
    };
    if args.follow {
        return Err(CliError::Invalid(
            "--follow reads a log as it is written on this machine: one in the object store is there once its job ended"
                .into(),
        ));
    }
    let ctx = Context {
        store: args.store.at()?,
        objects: Some(objects),
        ..context(None)?
    };
    let job = args.job.as_deref();
    runtime()?.block_on(engine::shared_job_log(&ctx, &args.run, job, &mut out))?;
    Ok(exit::OK)
}

/// `sha256:0123456789ab…` as `docker images` shows it: the first 12 hex digits.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}
