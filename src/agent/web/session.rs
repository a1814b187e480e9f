//! Signed-in browsers: a random session id in an HttpOnly, SameSite=Strict cookie maps to the
//! name of the token that signed in. The token itself never reaches the cookie, so a leaked
//! cookie dies with the agent's process or a sign-out. Sessions live in memory: an agent's
//! restart signs everyone out.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

/// The session cookie's name.
pub const COOKIE: &str = "pipe_session";

#[derive(Default)]
pub struct Sessions {
    names: Mutex<HashMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot draw a session id from /dev/urandom: {0}")]
pub struct SessionError(#[from] std::io::Error);

impl Sessions {
    /// A new session for `name`; returns its id.
    pub fn open(&self, name: &str) -> Result<String, SessionError> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.lock().insert(id.clone(), name.to_string());
        Ok(id)
    }

    /// Who is signed in with the session id `id`.
    pub fn name(&self, id: &str) -> Option<String> {
        self.lock().get(id).cloned()
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding the map cannot leave it half-changed: every change is one call.
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `Set-Cookie` value that signs a browser in with session `id`.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that signs a browser out.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id in a `Cookie` request header, if any.
pub fn from_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_maps_a_random_id_to_a_name_until_closed() {
        let sessions = Sessions::default();
        let a = sessions.open("ann").unwrap();
        let b = sessions.open("ann").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(sessions.name(&a).as_deref(), Some("ann"));
        sessions.close(&a);
        assert_eq!(sessions.name(&a), None);
        assert_eq!(sessions.name(&b).as_deref(), Some("ann"));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict_and_read_back_among_others() {
        let set = set_cookie("abc");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert_eq!(from_header("x=1; pipe_session=abc; y=2"), Some("abc"));
        assert_eq!(from_header("pipe_session="), None);
        assert_eq!(from_header("other=abc"), None);
    }
}
