//! The release gate's conditions as written in a pipeline: approvals, refs and freeze windows.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc, Weekday};

use super::signals::ErrorBudget;
use crate::severity::Severity;

/// What must hold before a run's release jobs may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// Distinct approvers needed.
    pub approvals: u32,
    /// `not_author: true`: an approval by the run's author does not count.
    pub not_author: bool,
    /// Branch globs the run's ref must match (empty: any). `*` stops at `/`, `**` does not.
    pub branches: Vec<String>,
    /// Tag globs; a run whose commit carries a matching tag may release too.
    pub tags: Vec<String>,
    /// Windows (UTC) in which nothing is released.
    pub freeze: Vec<Freeze>,
    /// Release only while this service's error budget holds.
    pub error_budget: Option<ErrorBudget>,
    /// The most findings of a severity the run's scans may have; severities not named: any.
    pub findings: Vec<(Severity, usize)>,
}

/// A freeze window: weekly (`Fri 16:00 - Mon 08:00 UTC`) or between two dates
/// (`2026-12-20 00:00 - 2027-01-04 00:00 UTC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    pub text: String,
    kind: FreezeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FreezeKind {
    /// Minutes since Monday 00:00.
    Weekly { from: u32, to: u32 },
    Dates {
        from: NaiveDateTime,
        to: NaiveDateTime,
    },
}

const WEEK: u32 = 7 * 24 * 60;

impl Freeze {
    pub fn parse(text: &str) -> Result<Freeze, String> {
        let body = text
            .trim()
            .strip_suffix("UTC")
            .map(str::trim)
            .ok_or("a freeze window ends with `UTC`")?;
        let (from, to) = body
            .split_once(" - ")
            .ok_or("write a freeze window as `Fri 16:00 - Mon 08:00 UTC`")?;
        let kind = match (weekly(from.trim()), weekly(to.trim())) {
            (Some(from), Some(to)) => FreezeKind::Weekly { from, to },
            _ => {
                let date = |s: &str| NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M");
                match (date(from), date(to)) {
                    (Ok(from), Ok(to)) if from < to => FreezeKind::Dates { from, to },
                    (Ok(_), Ok(_)) => return Err("the window ends before it starts".into()),
                    _ => return Err("write a freeze window as `Fri 16:00 - Mon 08:00 UTC` or `2026-12-20 00:00 - 2027-01-04 00:00 UTC`".into()),
                }
            }
        };
        Ok(Freeze {
            text: text.trim().to_string(),
            kind,
        })
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        match self.kind {
            FreezeKind::Weekly { from, to } => {
                let now =
                    at.weekday().num_days_from_monday() * 24 * 60 + at.hour() * 60 + at.minute();
                if from <= to {
                    (from..to).contains(&now)
                } else {
                    // Wraps over the week's end, like Fri → Mon.
                    now >= from || now < to
                }
            }
            FreezeKind::Dates { from, to } => (from..to).contains(&at.naive_utc()),
        }
    }
}

/// `Fri 16:00` → minutes since Monday 00:00.
fn weekly(s: &str) -> Option<u32> {
    let (day, time) = s.split_once(' ')?;
    let day: Weekday = day.parse().ok()?;
    let (h, m) = time.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then(|| (day.num_days_from_monday() * 24 * 60 + h * 60 + m) % WEEK)
}

/// Glob matching for refs: `*` matches within one path segment, `**` across segments.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=t.len()).any(|i| go(rest, &t[i..])),
            [b'*', rest @ ..] => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(rest, &t[i..])),
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl Gate {
    /// Whether the gate names refs: then only committed content may pass it.
    pub fn limits_refs(&self) -> bool {
        !(self.branches.is_empty() && self.tags.is_empty())
    }

    /// Whether a run on `branch` whose commit carries `tags` may be released.
    pub fn allows_ref(&self, branch: Option<&str>, tags: &[String]) -> bool {
        if !self.limits_refs() {
            return true;
        }
        let branch_ok = branch.is_some_and(|b| self.branches.iter().any(|p| glob_match(p, b)));
        let tag_ok = tags
            .iter()
            .any(|t| self.tags.iter().any(|p| glob_match(p, t)));
        branch_ok || tag_ok
    }

    /// The freeze window `at` falls in, if any.
    pub fn frozen_at(&self, at: DateTime<Utc>) -> Option<&Freeze> {
        self.freeze.iter().find(|f| f.contains(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn weekly_windows_wrap_over_the_weekend() {
        let f = Freeze::parse("Fri 16:00 - Mon 08:00 UTC").unwrap();
        assert!(f.contains(at("2026-11-27T16:00:00Z"))); // Friday
        assert!(f.contains(at("2026-11-29T12:00:00Z"))); // Sunday
        assert!(!f.contains(at("2026-11-30T08:00:00Z"))); // Monday 08:00
        assert!(!f.contains(at("2026-11-25T12:00:00Z"))); // Wednesday
    }

    #[test]
    fn date_windows() {
        let f = Freeze::parse("2026-12-20 00:00 - 2027-01-04 00:00 UTC").unwrap();
        assert!(f.contains(at("2026-12-25T10:00:00Z")));
        assert!(!f.contains(at("2027-01-04T00:00:00Z")));
        assert!(Freeze::parse("Friday at five").is_err());
        assert!(Freeze::parse("Fri 25:00 - Mon 08:00 UTC").is_err());
    }

    #[test]
    fn ref_globs() {
        assert!(glob_match("release/*", "release/1.2"));
        assert!(!glob_match("release/*", "release/1.2/hotfix"));
        assert!(glob_match("release/**", "release/1.2/hotfix"));
        assert!(glob_match("main", "main") && !glob_match("main", "maintenance"));
        let gate = Gate {
            branches: vec!["main".into()],
            tags: vec!["v*".into()],
            ..Default::default()
        };
        assert!(gate.allows_ref(Some("main"), &[]));
        assert!(gate.allows_ref(Some("feature"), &["v1.0".into()]));
        assert!(!gate.allows_ref(Some("feature"), &[]));
    }
}
