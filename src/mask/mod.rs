//! Masking of secret values in everything pipe writes. A [`Masks`] handle holds the values to
//! hide (it grows as a run's secrets are resolved); [`Patterns`] is a snapshot of it, which
//! masks whole texts and hands out [`Masker`]s for byte streams whose chunks may split a value
//! anywhere. Every value, each line of a multi-line one and their base64, URL-encoded and
//! JSON-escaped forms (see [`forms`]) become `***`.

mod event;
mod forms;
mod stream;

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};

pub use stream::Masker;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// The values to hide, shared: clones are one handle, so what the engine adds once a run's
/// secrets are known is hidden wherever the handle went (the screen, errors, tracing).
#[derive(Clone, Default)]
pub struct Masks(Arc<RwLock<Arc<Patterns>>>);

impl Masks {
    /// Hides these values too from now on.
    pub fn add<I, S>(&self, values: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut current = self.0.write().expect("not poisoned");
        let mut all = current.values.clone();
        for value in values {
            let value = value.as_ref();
            if !value.is_empty() && !all.iter().any(|v| v == value) {
                all.push(value.to_string());
            }
        }
        if all.len() != current.values.len() {
            *current = Arc::new(Patterns::new(all));
        }
    }

    /// The values as they are now.
    pub fn current(&self) -> Arc<Patterns> {
        self.0.read().expect("not poisoned").clone()
    }

    /// `text` with every value hidden.
    pub fn text(&self, text: &str) -> String {
        self.current().text(text).into_owned()
    }
}

/// A fixed set of values to hide, compiled into one automaton.
#[derive(Default)]
pub struct Patterns {
    values: Vec<String>,
    /// `None` when there is nothing to hide: output passes through untouched.
    matcher: Option<AhoCorasick>,
    /// The longest pattern's length: a stream holds back at most this less one byte.
    longest: usize,
}

impl Patterns {
    fn new(values: Vec<String>) -> Patterns {
        let patterns: Vec<Vec<u8>> = values.iter().flat_map(|v| forms::forms(v)).collect();
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(0);
        // Leftmost-longest: where a value and its first line both match, all of it goes.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()
            .filter(|_| !patterns.is_empty());
        Patterns {
            values,
            matcher,
            longest,
        }
    }

    /// Whether there is anything to hide.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every value hidden.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                m.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str(MASK);
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// `bytes` with every value hidden.
    pub fn bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.matcher {
            Some(m) if m.is_match(bytes) => {
                let mut out = Vec::with_capacity(bytes.len());
                m.replace_all_with_bytes(bytes, &mut out, |_, _, out| {
                    out.extend_from_slice(MASK.as_bytes());
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(bytes),
        }
    }

    /// A masker for one byte stream (a job's stdout or stderr).
    pub fn stream(self: &Arc<Self>) -> Masker {
        Masker::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_their_forms_become_stars() {
        let masks = Masks::default();
        assert_eq!(masks.text("token s3cr3t-token"), "token s3cr3t-token");
        masks.add(["s3cr3t-token"]);
        assert_eq!(masks.text("token s3cr3t-token!"), "token ***!");
        assert_eq!(masks.text("b64 czNjcjN0LXRva2Vu"), "b64 ***");
        assert_eq!(masks.text(r#"{"t":"s3cr3t-token"}"#), r#"{"t":"***"}"#);
        assert_eq!(
            String::from_utf8(masks.current().bytes(b"x s3cr3t-token").into_owned()).unwrap(),
            "x ***"
        );
    }

    #[test]
    fn a_handle_shared_before_values_are_added_hides_them_after() {
        let masks = Masks::default();
        let shared = masks.clone();
        masks.add(["later-value"]);
        assert_eq!(shared.text("a later-value"), "a ***");
    }
}
