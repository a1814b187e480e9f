//! The frame every page shares (header, who is signed in, stylesheet) and the small words
//! pages use for times and states.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::escape::text;
use crate::style::{status_tone, status_word, Tone};

/// A whole page: `body` is markup the caller built with escaped values.
pub fn page(title: &str, viewer: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · pipe</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body><header><a href=\"/\">pipe</a><span class=\"who\">",
        text(title)
    );
    match viewer {
        Some(name) => {
            let _ = write!(
                out,
                "<span id=\"viewer\">signed in as <b>{}</b></span>\
                 <form method=\"post\" action=\"/logout\"><button id=\"logout\">Sign out</button></form>",
                text(name)
            );
        }
        None => out.push_str("<a id=\"login\" href=\"/login\">Sign in</a>"),
    }
    let _ = writeln!(out, "</span></header><main>{body}</main></body></html>");
    out
}

/// A short page that says one thing: a refusal, a missing run.
pub fn message(title: &str, said: &str, viewer: Option<&str>) -> String {
    let body = format!(
        "<h1>{}</h1><p id=\"message\">{}</p><p><a href=\"/\">Recent runs</a></p>",
        text(title),
        text(said)
    );
    page(title, viewer, &body)
}

/// The CSS class of a status, as [`crate::style`] tones it on a terminal.
pub fn tone_class(status: &str) -> &'static str {
    match status_tone(status) {
        Tone::Good => "good",
        Tone::Bad => "bad",
        Tone::Warn => "warn",
        Tone::Busy => "busy",
        Tone::Quiet | Tone::Strong => "quiet",
    }
}

/// A status as a coloured word.
pub fn status(status: &str) -> String {
    format!(
        "<span class=\"state {}\">{}</span>",
        tone_class(status),
        text(&status_word(status))
    )
}

/// How long ago `then` was, in the largest whole unit.
pub fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86400),
    }
}

/// A duration in milliseconds as people read it.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
    }
}

/// The first ten characters of a commit id (ids are hex; escaped all the same).
pub fn short_commit(commit: Option<&str>) -> String {
    match commit {
        Some(c) => format!(
            "<code title=\"{}\">{}</code>",
            text(c),
            text(&c.chars().take(10).collect::<String>())
        ),
        None => "<span class=\"quiet\">working tree</span>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_in_name_is_escaped_and_the_sign_in_link_shown_to_others() {
        let signed = page("Runs", Some("<b>eve</b>"), "");
        assert!(signed.contains("&lt;b&gt;eve&lt;/b&gt;"));
        assert!(signed.contains("action=\"/logout\""));
        assert!(!signed.contains("<b>eve</b>"));
        assert!(page("Runs", None, "").contains("href=\"/login\""));
    }

    #[test]
    fn ages_and_durations_use_the_largest_whole_unit() {
        let now = Utc::now();
        assert_eq!(ago(now, now - chrono::Duration::seconds(5)), "5 s ago");
        assert_eq!(ago(now, now - chrono::Duration::seconds(125)), "2 min ago");
        assert_eq!(ago(now, now - chrono::Duration::hours(3)), "3 h ago");
        assert_eq!(ago(now, now + chrono::Duration::seconds(3)), "0 s ago");
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(1500), "1.5 s");
        assert_eq!(duration(125_000), "2 min 5 s");
    }
}
