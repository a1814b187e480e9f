//! `pipe cache list` and `pipe cache clear [KEY]`: the project's job caches in the user's cache
//! folder, or with `--objects` in a fleet's object store.

use chrono::{DateTime, Utc};

use super::exec::{context, runtime, CacheArgs, StoreArg};
use super::{exit, print, table, CliError, Output};
use crate::cache::{human_size, Caches};
use crate::engine::{self, Context, EngineError, Internal};

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
    #[command(flatten)]
    store: StoreArg,
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
    #[command(flatten)]
    store: StoreArg,
}

pub fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::List(args) => list(args),
        Command::Clear(args) => clear(args),
    }
}

/// The project's caches: in the object store when one is given (with its shared store), else
/// in the cache folder.
fn caches(cache: &CacheArgs, store: &StoreArg) -> Result<Caches, CliError> {
    let ctx = Context {
        store: store.at()?,
        objects: store.objects()?,
        ..context(None)?
    };
    let dir = cache.dir();
    engine::caches(&ctx, dir.as_ref(), cache.size()).ok_or_else(|| {
        EngineError::Invalid(
            "no cache folder: HOME and XDG_CACHE_HOME are unset; pass --cache-dir".into(),
        )
    })
}

/// One cache as listed: key, size, last use (the object store's: when it was saved), and the
/// run and job that saved it.
struct Listed {
    key: String,
    size: u64,
    used: DateTime<Utc>,
    created: DateTime<Utc>,
    run: i64,
    job: String,
}

fn listed(caches: &Caches) -> Result<Vec<Listed>, CliError> {
    Ok(match caches {
        Caches::Folder(store) => (store.list().map_err(Internal::Cache)?)
            .into_iter()
            .map(|e| Listed {
                used: e.last_used.into(),
                created: e.meta.created,
                size: e.size,
                key: e.meta.key,
                run: e.meta.run,
                job: e.meta.job,
            })
            .collect(),
        Caches::Objects(shared) => (runtime()?.block_on(shared.list()))
            .map_err(|e| Internal::Cache(crate::cache::CacheError::Objects(e)))?
            .into_iter()
            .map(|r| Listed {
                used: r.meta.created,
                created: r.meta.created,
                size: r.size,
                key: r.meta.key,
                run: r.meta.run,
                job: r.meta.job,
            })
            .collect(),
    })
}

fn list(args: ListArgs) -> Result<u8, CliError> {
    let entries = listed(&caches(&args.cache, &args.store)?)?;
    if args.output == Output::Json {
        let lines: String = entries
            .iter()
            .map(|e| {
                format!(
                    "{}\n",
                    serde_json::json!({
                        "key": e.key,
                        "size": e.size,
                        "last_used": e.used.to_rfc3339(),
                        "created": e.created.to_rfc3339(),
                        "run": e.run,
                        "job": e.job,
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
            vec![
                e.key.clone(),
                human_size(e.size),
                e.used.format("%Y-%m-%d %H:%M").to_string(),
                format!("run {} job {}", e.run, e.job),
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
    let removed = match caches(&args.cache, &args.store)? {
        Caches::Folder(store) => store.clear(args.key.as_deref()).map_err(Internal::Cache)?,
        Caches::Objects(shared) => (runtime()?.block_on(shared.clear(args.key.as_deref())))
            .map_err(|e| Internal::Cache(crate::cache::CacheError::Objects(e)))?,
    };
    match (&args.key, removed) {
        (Some(key), 0) => Err(EngineError::Invalid(format!(
            "this project has no cache `{key}`: `pipe cache list` shows its caches"
        ))),
        (Some(key), _) => print(&format!("removed cache `{key}`\n")).map(|_| exit::OK),
        (None, n) => print(&format!("removed {n} cache(s)\n")).map(|_| exit::OK),
    }
}
