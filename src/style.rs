//! How pipe's words look on a terminal: the one place that knows colours (plain ANSI SGR codes,
//! no crate) and the words each status is shown as, so that every screen says and colours the
//! same thing the same way. Whether to colour at all is the caller's: on a terminal, never with
//! `NO_COLOR` (decided in `cli`).

use crate::severity::Severity;

/// What a piece of text means to a reader, and so its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Warn,
    /// Did not happen or is not over: skipped, pending, cancelled.
    Quiet,
    /// Going on now, or waiting on a person.
    Busy,
    Strong,
}

impl Tone {
    fn sgr(self) -> &'static str {
        match self {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Warn => "33",
            Tone::Quiet => "2",
            Tone::Busy => "36",
            Tone::Strong => "1",
        }
    }
}

/// `text` in `tone`'s colour when `color` is on, else as it is.
pub fn paint(color: bool, tone: Tone, text: &str) -> String {
    if color {
        format!("\x1b[{}m{text}\x1b[0m", tone.sgr())
    } else {
        text.to_string()
    }
}

/// The word people read for a job's or a run's status as recorded and as the JSON gives it
/// (`allowed_failure`, `timed_out`, `awaiting_release`, …).
pub fn status_word(status: &str) -> String {
    match status {
        "allowed_failure" => "allowed to fail".into(),
        other => other.replace('_', " "),
    }
}

/// How every screen and the store say that a job was not run but reused from run `run`.
pub fn reused(run: crate::store::RunId) -> String {
    format!("reused (run {run})")
}

/// The tone of a status, given as [`status_word`] says it or as recorded.
pub fn status_tone(status: &str) -> Tone {
    match status.replace(' ', "_").as_str() {
        "passed" | "released" => Tone::Good,
        "failed" | "timed_out" | "errored" | "release_failed" | "interrupted" => Tone::Bad,
        "allowed_to_fail" | "allowed_failure" => Tone::Warn,
        "running" | "waiting" | "releasing" | "awaiting_release" => Tone::Busy,
        _ => Tone::Quiet,
    }
}

/// A status as its word, coloured by what it means.
pub fn status(color: bool, status: &str) -> String {
    paint(color, status_tone(status), &status_word(status))
}

pub fn severity_tone(severity: Severity) -> Tone {
    match severity {
        Severity::Critical | Severity::High => Tone::Bad,
        Severity::Medium => Tone::Warn,
        Severity::Low => Tone::Quiet,
    }
}

/// How many columns `text` takes on a terminal: its characters, less colour codes.
pub fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_code = false;
    for c in text.chars() {
        match (in_code, c) {
            (false, '\x1b') => in_code = true,
            (true, 'm') => in_code = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_statuses_read_as_the_summary_says_them() {
        assert_eq!(status_word("allowed_failure"), "allowed to fail");
        assert_eq!(status_word("timed_out"), "timed out");
        assert_eq!(status_tone("allowed to fail"), Tone::Warn);
        assert_eq!(status_tone("awaiting_release"), Tone::Busy);
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(status(false, "failed"), "failed");
        assert_eq!(status(true, "failed"), "\x1b[31mfailed\x1b[0m");
        assert_eq!(visible_width(&status(true, "timed_out")), "timed out".len());
    }
}
