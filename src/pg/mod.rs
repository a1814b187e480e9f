//! PostgreSQL, for a store and a job queue that several agents share: connecting, the versioned
//! schema, and a connection that lives on a thread of its own. The only file that imports the
//! `postgres` crate; the store and the fleet use what it re-exports.

mod migrations;
#[cfg(test)]
pub(crate) mod testdb;

use std::sync::mpsc;
use std::thread;

pub use postgres::fallible_iterator::FallibleIterator;
pub use postgres::{Client, Error, GenericClient, Row, Statement, Transaction};

/// A connection that could not be made or set up. `url` never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("`{0}` is not a PostgreSQL URL (postgres://user@host:port/database)")]
    Url(String),
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect { url: String, source: Error },
    #[error("cannot set up the schema in PostgreSQL at {url}: {source}")]
    Migrate { url: String, source: Error },
    #[error("the connection to PostgreSQL is gone")]
    Gone,
}

/// The URL without its password, as messages show it.
pub fn shown(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if at > scheme.len() + 3 => {
            let creds = &rest[..at - scheme.len() - 3];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{}", &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Whether `url` names a PostgreSQL database rather than a path.
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects and brings the schema up to date (each migration once, whichever agent comes
/// first). The sync client runs a runtime of its own: it must not be used on the async
/// workers of another (see [`Worker`]).
pub fn connect(url: &str) -> Result<Client, PgError> {
    if !is_url(url) {
        return Err(PgError::Url(shown(url)));
    }
    let mut client = Client::connect(url, postgres::NoTls).map_err(|source| PgError::Connect {
        url: shown(url),
        source,
    })?;
    migrations::run(&mut client).map_err(|source| PgError::Migrate {
        url: shown(url),
        source,
    })?;
    Ok(client)
}

type Call = Box<dyn FnOnce(&mut Option<Client>, &str) + Send>;

/// A connection on a thread of its own, so that sync callers on an async runtime's workers (the
/// engine's recorder is one) can use it: each call is sent there and waited for. A call that
/// fails because the connection closed (the database restarted) is made once more on a new
/// connection, so that a run in flight goes on across a restart.
pub struct Worker {
    calls: mpsc::Sender<Call>,
}

impl Worker {
    pub fn start(url: &str) -> Result<Worker, PgError> {
        let (calls, rx) = mpsc::channel::<Call>();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let url = url.to_string();
        thread::Builder::new()
            .name("pipe-postgres".into())
            .spawn(move || {
                // Connected here too: the client's runtime may not be entered from a caller's.
                let mut client = match connect(&url) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // Ends when the worker is dropped: the sender goes, and the connection with it.
                for call in rx {
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = connect(&url).ok();
                    }
                    call(&mut client, &url);
                }
            })
            .map_err(|_| PgError::Gone)?;
        ready.recv().map_err(|_| PgError::Gone)??;
        Ok(Worker { calls })
    }

    /// Runs `f` on the connection and returns what it returned. `f` may run twice: when the
    /// connection was found closed by the first, on a new one (a statement whose connection
    /// closed under it did not commit, or its answer was lost with it).
    pub fn call<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, Error> + Send + 'static,
    ) -> Result<Result<T, Error>, PgError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let call: Call = Box::new(move |client, url| {
            let mut result = client.as_mut().map(&f);
            if matches!(&result, Some(Err(e)) if lost(e, client)) {
                *client = connect(url).ok();
                result = client.as_mut().map(&f);
            }
            let _ = tx.send(result);
        });
        self.calls.send(call).map_err(|_| PgError::Gone)?;
        rx.recv().ok().flatten().ok_or(PgError::Gone)
    }
}

/// Whether `e` came of the connection going away rather than of the call itself: the database
/// shut down or restarted under it.
fn lost(e: &Error, client: &Option<Client>) -> bool {
    let shutdown = e.code().is_some_and(|c| {
        [
            &postgres::error::SqlState::ADMIN_SHUTDOWN,
            &postgres::error::SqlState::CRASH_SHUTDOWN,
            &postgres::error::SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(&c)
    });
    shutdown || e.is_closed() || client.as_ref().is_none_or(Client::is_closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            shown("postgres://ci:s3cret@db.example:5432/pipe"),
            "postgres://ci@db.example:5432/pipe"
        );
        assert_eq!(shown("postgres://db/pipe"), "postgres://db/pipe");
    }

    #[test]
    fn a_call_after_the_database_restarted_is_made_again_on_a_new_connection() {
        let mut server = testdb::Server::start();
        let worker = Worker::start(&server.url).unwrap();
        let one = |c: &mut Client| c.query_one("SELECT 1", &[]).map(|r| r.get::<_, i32>(0));
        assert_eq!(worker.call(one).unwrap().unwrap(), 1);
        server.down();
        server.up();
        assert_eq!(worker.call(one).unwrap().unwrap(), 1);
    }

    #[test]
    fn migrations_run_once_whoever_comes_first() {
        let db = testdb::database();
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                thread::spawn(move || connect(&url).map(|_| ()))
            })
            .collect();
        for c in clients {
            c.join().unwrap().unwrap();
        }
        let mut client = connect(&db.url).unwrap();
        let versions: Vec<i32> = client
            .query("SELECT version FROM pipe_schema ORDER BY version", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, (1..=migrations::LATEST).collect::<Vec<_>>());
    }
}
