//! `pipe cache list` and `pipe cache clear [KEY]`: the project's job caches in the user's cache
//! folder.

use chrono::{DateTime, Utc};

use super::exec::{project, CacheArgs};
use super::{exit, print, table, CliError, Output};
use crate::cache::{human_size, Store};
use crate::engine::{EngineError, Internal};
use crate::owner::project_key;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List this project's caches: key, size, last use, and the run and job that saved each
    List(ListArgs),
    /// Remove this project's caches, or only the one with KEY
    Clear(ClearArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    cache: CacheArgs,
    /// How to print: a table for people, or one JSON object per line for programs
    #[arg(long, value_enum, default_value = "human")]
    output: Output,
}

#[derive(clap::Args)]
pub struct ClearArgs {
    /// The key of the cache to remove (as `pipe cache list` shows it); none: all of them
    key: Option<String>,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::List(args) => list(args),
        Command::Clear(args) => clear(args),
    }
}

fn store(args: &CacheArgs) -> Result<Store, CliError> {
    let dir = args.dir().ok_or_else(|| {
        EngineError::Invalid(
            "no cache folder: HOME and XDG_CACHE_HOME are unset; pass --cache-dir".into(),
        )
    })?;
    let project = project(None)?.dir;
    Ok(Store::new(dir, project_key(&project), args.size()))
}

fn list(args: ListArgs) -> Result<u8, CliError> {
    let entries = store(&args.cache)?.list().map_err(Internal::Cache)?;
    if args.output == Output::Json {
        let lines: String = entries
            .iter()
            .map(|e| {
                let used: DateTime<Utc> = e.last_used.into();
                format!(
                    "{}\n",
                    serde_json::json!({
                        "key": e.meta.key,
                        "size": e.size,
                        "last_used": used.to_rfc3339(),
                        "created": e.meta.created.to_rfc3339(),
                        "run": e.meta.run,
                        "job": e.meta.job,
                    })
                )
            })
            .collect();
        return print(&lines).map(|_| exit::OK);
    }
    if entries.is_empty() {
        print("no caches for this project\n")?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let used: DateTime<Utc> = e.last_used.into();
            vec![
                e.meta.key.clone(),
                human_size(e.size),
                used.format("%Y-%m-%d %H:%M").to_string(),
                format!("run {} job {}", e.meta.run, e.meta.job),
            ]
        })
        .collect();
    print(&table(
        &["KEY", "SIZE", "LAST USED (UTC)", "SAVED BY"],
        &rows,
    ))?;
    Ok(exit::OK)
}

fn clear(args: ClearArgs) -> Result<u8, CliError> {
    let removed = store(&args.cache)?
        .clear(args.key.as_deref())
        .map_err(Internal::Cache)?;
    match (&args.key, removed) {
        (Some(key), 0) => Err(EngineError::Invalid(format!(
            "this project has no cache `{key}`: `pipe cache list` shows its caches"
        ))),
        (Some(key), _) => print(&format!("removed cache `{key}`\n")).map(|_| exit::OK),
        (None, n) => print(&format!("removed {n} cache(s)\n")).map(|_| exit::OK),
    }
}
