//! `pipe runs`, `pipe show` and `pipe logs`: what the store remembers.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use super::run::{open_store, project_dir, recorded_store, store_error};
use super::{exit, gate, print, table, CliError, Internal};
use crate::event::SCHEMA_VERSION;
use crate::report::duration;
use crate::store::{JobRecord, RunRecord, RunState, SqliteStore, Store};

#[derive(clap::Args)]
pub struct RunsArgs {
    /// Only runs that deployed to this environment: the newest is what is live there
    #[arg(long)]
    environment: Option<String>,
    /// How many runs to list
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long, value_enum, default_value = "human")]
    output: super::Output,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The run: its number, or `last`
    run: String,
    #[arg(long, value_enum, default_value = "human")]
    output: super::Output,
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
}

pub fn runs(args: RunsArgs) -> Result<u8, CliError> {
    let project = project_dir()?;
    // Listing creates nothing: a directory where pipe never ran has no runs.
    let runs = if SqliteStore::exists(&project) {
        open_store(&project)?
            .runs(args.environment.as_deref(), args.limit)
            .map_err(store_error)?
    } else {
        Vec::new()
    };
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
                r.state.as_str().replace('_', " "),
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
            "TOOK",
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
    let mut store = recorded_store(&project_dir()?, &args.run)?;
    let id = store.resolve(&args.run).map_err(store_error)?;
    let run = store.run(id).map_err(store_error)?;
    let jobs = store.jobs(id).map_err(store_error)?;
    let approvals = store.approvals(id).map_err(store_error)?;
    let audit = store.audit_trail(id).map_err(store_error)?;
    let waiting = matches!(
        run.state,
        RunState::AwaitingRelease | RunState::ReleaseFailed
    );
    let gate_line = if waiting {
        Some(gate::next_step(&mut store, id)?)
    } else {
        None
    };
    if matches!(args.output, super::Output::Json) {
        let mut v = record_json(&run);
        v["jobs"] = serde_json::to_value(&jobs).unwrap_or_default();
        v["approvals"] = serde_json::to_value(&approvals).unwrap_or_default();
        v["audit"] = serde_json::to_value(&audit).unwrap_or_default();
        v["gate"] = gate_line
            .clone()
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null);
        return print(&format!("{v}\n")).map(|_| exit::OK);
    }
    let mut out = format!(
        "run {id} of {} ({}): {}\n",
        run.pipeline_name,
        run.pipeline_file,
        run.state.as_str().replace('_', " ")
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
    out.push_str(&jobs_table(&jobs));
    if let Some(line) = gate_line {
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

fn jobs_table(jobs: &[JobRecord]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.name.clone(),
                j.stage.clone(),
                j.status.replace('_', " "),
                j.duration_ms
                    .map(|ms| duration(Duration::from_millis(ms)))
                    .unwrap_or_default(),
                j.environment.clone().unwrap_or_default(),
                // A scan job's findings say more than its exit code.
                j.findings
                    .map(|f| crate::scan::report::summary(&f))
                    .or_else(|| j.note.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["JOB", "STAGE", "STATUS", "TOOK", "ENVIRONMENT", "NOTE"],
        &rows,
    )
}

pub fn logs(args: LogsArgs) -> Result<u8, CliError> {
    let project = project_dir()?;
    let mut store = recorded_store(&project, &args.run)?;
    let id = store.resolve(&args.run).map_err(store_error)?;
    let jobs = store.jobs(id).map_err(store_error)?;
    let chosen: Vec<&JobRecord> = match &args.job {
        Some(name) => {
            let job = jobs.iter().find(|j| &j.name == name).ok_or_else(|| {
                let hint = crate::pipeline::suggest(name, jobs.iter().map(|j| j.name.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                CliError::Usage(format!("run {id} has no job `{name}`{hint}"))
            })?;
            vec![job]
        }
        None => jobs.iter().filter(|j| !j.log.is_empty()).collect(),
    };
    let several = chosen.len() > 1;
    for job in chosen {
        if several {
            print(&format!("==> {} <==\n", job.name))?;
        }
        let path = project.join(&job.log);
        if (job.log.is_empty() || !path.is_file()) && !args.follow {
            print(&format!(
                "(job `{}` has no log: it {})\n",
                job.name,
                job.status.replace('_', " ")
            ))?;
            continue;
        }
        follow_log(&mut store, &project, id, &job.name, args.follow)?;
    }
    Ok(exit::OK)
}

/// Prints a log; with `follow`, keeps printing what is appended until the job is over.
fn follow_log(
    store: &mut dyn Store,
    project: &std::path::Path,
    id: i64,
    job: &str,
    follow: bool,
) -> Result<(), CliError> {
    let mut offset = 0u64;
    loop {
        // The record is read each time: a pending job gets its log file when it starts.
        let record = store
            .jobs(id)
            .map_err(store_error)?
            .into_iter()
            .find(|j| j.name == job);
        let still_running = follow
            && record
                .as_ref()
                .is_some_and(|j| matches!(j.status.as_str(), "running" | "pending"))
            && store.run(id).map_err(store_error)?.state.is_active();
        let path = record
            .filter(|j| !j.log.is_empty())
            .map(|j| project.join(j.log));
        if let Some(mut f) = path.and_then(|p| std::fs::File::open(p).ok()) {
            let mut chunk = Vec::new();
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_to_end(&mut chunk))
                .map_err(Internal::io(format!("read the log of job `{job}`")))?;
            offset += chunk.len() as u64;
            print(&String::from_utf8_lossy(&chunk))?;
        }
        if !still_running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
