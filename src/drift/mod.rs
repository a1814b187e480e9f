//! Drift: what a job changed on its container's system, outside `/workspace` and `/tmp`, from
//! the engine's container diff. A build that installs things at run time, or a compromised
//! dependency, shows up here: summarised in the job's log, recorded with the run, listed by
//! the scan job's report, and with `drift: fail` a job that wrote into system paths fails.

use serde::{Deserialize, Serialize};

/// Paths a job may change freely: its workspace and scratch space.
const FREE: &[&str] = &["/workspace", "/tmp"];
/// Where the engine mounts what it gives every container, or what is not files.
const ENGINE: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/.dockerenv",
    "/sbin/docker-init",
];
/// System paths: a job writing here changed the system it runs on.
pub const SYSTEM: &[&str] = &[
    "/bin", "/boot", "/etc", "/lib", "/lib32", "/lib64", "/opt", "/sbin", "/usr",
];
/// At most this many paths of each kind are kept and shown; the counts stay exact.
const SHOWN: usize = 5;

/// One change the engine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Changed,
    Deleted,
}

/// Paths of one kind of change: how many, and the first few.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    pub count: usize,
    pub paths: Vec<String>,
}

impl Paths {
    fn push(&mut self, path: &str) {
        self.count += 1;
        if self.paths.len() < SHOWN {
            self.paths.push(path.to_string());
        }
    }
}

/// What a job changed outside its workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub added: Paths,
    pub changed: Paths,
    pub deleted: Paths,
    /// The changes (of any kind) under system paths.
    pub system: Paths,
}

impl Drift {
    /// Summarises the engine's diff. `mounts` are where the job's binds were mounted: the
    /// engine made those paths (and their parents) itself.
    pub fn of(changes: &[(Change, String)], mounts: &[String]) -> Drift {
        let mut drift = Drift::default();
        let under = |path: &str, root: &str| {
            path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
        };
        for (change, path) in changes {
            let path = path.as_str();
            if FREE.iter().chain(ENGINE).any(|root| under(path, root))
                || mounts.iter().any(|m| under(m, path))
            {
                continue;
            }
            // A folder is listed when something in it changed, which is listed too.
            if changes
                .iter()
                .any(|(_, other)| other != path && under(other, path))
            {
                continue;
            }
            match change {
                Change::Added => drift.added.push(path),
                Change::Changed => drift.changed.push(path),
                Change::Deleted => drift.deleted.push(path),
            }
            if SYSTEM.iter().any(|root| under(path, root)) {
                drift.system.push(path);
            }
        }
        drift
    }

    pub fn is_empty(&self) -> bool {
        self.added.count + self.changed.count + self.deleted.count == 0
    }

    /// What the job's log says: a line per kind of change, the first paths of each.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (what, paths) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("deleted", &self.deleted),
        ] {
            if paths.count > 0 {
                lines.push(format!(
                    "pipe: drift: {} {what} outside /workspace and /tmp: {}",
                    paths.count,
                    shown(paths)
                ));
            }
        }
        if self.system.count > 0 {
            lines.push(format!(
                "pipe: drift: {} in system paths: {}",
                self.system.count,
                shown(&self.system)
            ));
        }
        lines
    }

    /// One line for tables and reports: `2 added, 1 changed (1 in system paths)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (what, paths) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("deleted", &self.deleted),
        ] {
            if paths.count > 0 {
                parts.push(format!("{} {what}", paths.count));
            }
        }
        let mut line = parts.join(", ");
        if self.system.count > 0 {
            line.push_str(&format!(" ({} in system paths)", self.system.count));
        }
        line
    }
}

fn shown(paths: &Paths) -> String {
    let mut text = paths.paths.join(", ");
    if paths.count > paths.paths.len() {
        text.push_str(&format!(" and {} more", paths.count - paths.paths.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(items: &[(Change, &str)]) -> Vec<(Change, String)> {
        items.iter().map(|(c, p)| (*c, p.to_string())).collect()
    }

    #[test]
    fn the_workspace_tmp_and_what_the_engine_mounts_are_not_drift() {
        let changes = diff(&[
            (Change::Changed, "/workspace"),
            (Change::Added, "/workspace/out"),
            (Change::Added, "/tmp/x"),
            (Change::Changed, "/tmp"),
            (Change::Added, "/run"),
            (Change::Added, "/run/pipe"),
            (Change::Added, "/run/pipe/changed-files"),
            (Change::Changed, "/etc"),
            (Change::Added, "/etc/resolv.conf"),
            (Change::Added, "/workspacex"),
        ]);
        let drift = Drift::of(&changes, &["/run/pipe/changed-files".into()]);
        assert_eq!(drift.added.paths, ["/workspacex"]);
        assert_eq!(
            drift.changed.count, 0,
            "/etc changed only by the engine's mount"
        );
        assert_eq!(drift.system.count, 0);
    }

    #[test]
    fn writes_into_system_paths_are_counted_and_shown_capped() {
        let mut items = vec![(Change::Changed, "/etc".to_string())];
        items.extend((0..8).map(|i| (Change::Added, format!("/etc/evil{i}"))));
        items.push((Change::Deleted, "/usr/bin/wget".into()));
        items.push((Change::Added, "/root/.cache".into()));
        let drift = Drift::of(&items, &[]);
        assert_eq!(drift.added.count, 9);
        assert_eq!(drift.added.paths.len(), SHOWN);
        assert_eq!(drift.changed.count, 0, "/etc is listed through its files");
        assert_eq!(drift.system.count, 9);
        let lines = drift.lines();
        assert!(
            lines[0].contains("9 added") && lines[0].ends_with("and 4 more"),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("9 in system paths")),
            "{lines:?}"
        );
        assert_eq!(drift.summary(), "9 added, 1 deleted (9 in system paths)");
    }
}
