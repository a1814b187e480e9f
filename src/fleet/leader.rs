//! One agent of a fleet does the housekeeping — sweeping expired leases, polling repositories —
//! so that it is done once rather than by every agent: the one holding a PostgreSQL advisory
//! lock on a connection of its own. The lock belongs to that connection's session, so when the
//! leader dies or loses its connection (a crash, `kill -9`, the database restarted) PostgreSQL
//! lets it go, and the next agent that asks takes it. No lease of our own, no clock to trust.

use super::FleetError;
use crate::pg::{self, Client};

/// An arbitrary key for the lock the leader holds ("pipe_lea").
const LOCK: i64 = 0x7069_7065_5f6c_6561;

/// An agent that would lead: its own connection, and whether it holds the lock on it.
pub struct Candidate {
    url: String,
    db: Option<Client>,
    leading: bool,
}

impl Candidate {
    pub fn new(url: &str) -> Candidate {
        Candidate {
            url: url.to_string(),
            db: None,
            leading: false,
        }
    }

    /// Takes the leadership if nobody holds it, or checks that this agent still does: true
    /// while it leads. A connection found broken is made again on the next call; the lock went
    /// with the old one, so leading starts over.
    pub fn lead(&mut self) -> Result<bool, FleetError> {
        if self.db.as_ref().is_none_or(Client::is_closed) {
            self.leading = false;
            self.db = Some(pg::connect(&self.url)?);
        }
        let Some(db) = self.db.as_mut() else {
            return Ok(false);
        };
        let asked = if self.leading {
            // The session answers: the lock is still its own.
            db.simple_query("SELECT 1").map(|_| true)
        } else {
            db.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK])
                .map(|r| r.get(0))
        };
        match asked {
            Ok(leading) => {
                self.leading = leading;
                Ok(leading)
            }
            Err(e) => {
                self.leading = false;
                self.db = None;
                Err(e.into())
            }
        }
    }
}
