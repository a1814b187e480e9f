//! `default:` and `extends:`, resolved on the YAML tree before it is checked. Inherited values
//! are the very nodes where they are written, so a mistake in a template or in `default:` is
//! reported at its own line, and the checker sees plain jobs.
//!
//! As in GitLab CI: a job is built on `default:`, then on what it `extends` (a job, or a hidden
//! `.template` at the top level; a list is applied in order), then on its own keys. Under
//! `jobs:` a name starting with `.` stays a job (`..` is one), as it always was. Mappings (`env`, `gate`, `matrix`) are merged key by key, anything else is replaced.

use std::collections::HashMap;

use super::check::{suggest, JOB_KEYS};
use super::yaml::{Kind, Node};
use super::Problem;

/// What `default:` can set for every job: settings shared by almost all jobs. What only some
/// jobs share belongs in a `.template` they extend.
pub const DEFAULT_KEYS: &[&str] = &["image", "env", "retry", "timeout", "network", "drift"];

/// The tree with `default:` applied to every job and each `extends:` resolved, and the
/// problems found on the way. A job whose `extends` cannot be
/// resolved keeps its own keys and its `extends`, which tells the checker not to report what
/// the job lacks.
pub fn resolve(root: &Node) -> (Node, Vec<Problem>) {
    let mut problems = Vec::new();
    let Kind::Map(top) = &root.kind else {
        return (root.clone(), problems);
    };
    let default = top
        .iter()
        .find(|(k, _)| text(k) == Some("default"))
        .and_then(|(_, v)| default_of(v, &mut problems));
    let jobs = top.iter().find(|(k, _)| text(k) == Some("jobs"));
    let Some((
        _,
        jobs @ Node {
            kind: Kind::Map(job_entries),
            ..
        },
    )) = jobs
    else {
        // Nothing to apply `default` to: the checker says what is missing.
        return (rebuilt(root, top, None), problems);
    };

    // Jobs first, so that a job and a top-level template of one name resolve to the job.
    let mut bases: Vec<(&str, &Node)> = Vec::new();
    for (k, v) in job_entries
        .iter()
        .chain(top.iter().filter(|(k, _)| hidden(k)))
    {
        if let Some(name) = text(k).filter(|n| !bases.iter().any(|(b, _)| b == n)) {
            bases.push((name, v));
        }
    }
    let mut resolver = Resolver {
        bases: &bases,
        done: HashMap::new(),
        problems: &mut problems,
    };
    let mut resolved_jobs = Vec::new();
    for (key, value) in job_entries {
        let name = text(key).unwrap_or_default();
        let mut job = resolver
            .value(name, value, &mut vec![name.to_string()])
            .unwrap_or_else(|| value.clone());
        if let Some(default) = &default {
            job = merge(&for_job(default, &job), &job);
        }
        resolved_jobs.push((key.clone(), job));
    }

    let jobs = Node {
        kind: Kind::Map(resolved_jobs),
        ..jobs.clone()
    };
    (rebuilt(root, top, Some(jobs)), problems)
}

/// The top level without `default`, and with the resolved `jobs` if given.
fn rebuilt(root: &Node, top: &[(Node, Node)], jobs: Option<Node>) -> Node {
    let mut jobs = jobs;
    let entries = top
        .iter()
        .filter(|(k, _)| text(k) != Some("default"))
        .map(|(k, v)| match (text(k), &jobs) {
            // Only the first `jobs`: a repeated one stays, for the checker to report.
            (Some("jobs"), Some(_)) => (k.clone(), jobs.take().expect("matched Some")),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    Node {
        kind: Kind::Map(entries),
        ..root.clone()
    }
}

struct Resolver<'a> {
    bases: &'a [(&'a str, &'a Node)],
    /// Each base resolved so far: `None` if it could not be.
    done: HashMap<String, Option<Node>>,
    problems: &'a mut Vec<Problem>,
}

impl Resolver<'_> {
    /// `value` (the job or template `name`) with what it extends applied; `None` when an
    /// `extends` in its chain is wrong (reported). `chain` holds the names being resolved.
    fn value(&mut self, name: &str, value: &Node, chain: &mut Vec<String>) -> Option<Node> {
        let Kind::Map(entries) = &value.kind else {
            return Some(value.clone()); // the checker says what a job must be
        };
        let Some((_, extends)) = entries.iter().find(|(k, _)| text(k) == Some("extends")) else {
            return Some(value.clone());
        };
        let names: Vec<&Node> = match &extends.kind {
            Kind::Str(_) => vec![extends],
            Kind::Seq(items) if !items.is_empty() => items.iter().collect(),
            other => {
                self.problems.push(
                    Problem::at(
                        extends.pos,
                        1,
                        format!(
                            "`extends` of `{name}` must be a name or a list of names, found {}",
                            other.describe()
                        ),
                    )
                    .hint("e.g. `extends: .rust` or `extends: [.rust, .cached]`"),
                );
                return None;
            }
        };
        let mut inherited: Option<Node> = None;
        let mut ok = true;
        for base in names {
            let Some(base_name) = text(base) else {
                self.problems.push(Problem::at(
                    base.pos,
                    1,
                    format!(
                        "an `extends` entry must be a job or template name, found {}",
                        base.kind.describe()
                    ),
                ));
                ok = false;
                continue;
            };
            match self.base(base_name, base, chain) {
                Some(node) => {
                    inherited = Some(match inherited {
                        Some(acc) => merge(&acc, &node),
                        None => node,
                    })
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let own = Node {
            kind: Kind::Map(
                entries
                    .iter()
                    .filter(|(k, _)| text(k) != Some("extends"))
                    .cloned()
                    .collect(),
            ),
            ..value.clone()
        };
        Some(match inherited {
            Some(base) => merge(&base, &own),
            None => own,
        })
    }

    /// The base called `name`, written at `at`, resolved; `None` if it is unknown, part of a
    /// cycle or itself broken (each reported once).
    fn base(&mut self, name: &str, at: &Node, chain: &mut Vec<String>) -> Option<Node> {
        let len = name.chars().count();
        if let Some(start) = chain.iter().position(|n| n == name) {
            let mut cycle = chain[start..].to_vec();
            cycle.push(name.to_string());
            let message = if cycle.len() == 2 {
                format!("`{name}` extends itself")
            } else {
                format!("`extends` goes round in a circle: {}", cycle.join(" → "))
            };
            self.problems.push(
                Problem::at(at.pos, len, message)
                    .hint("a job or template cannot build on itself, even through others"),
            );
            return None;
        }
        if let Some(done) = self.done.get(name) {
            return done.clone();
        }
        let Some(&(_, value)) = self.bases.iter().find(|(n, _)| *n == name) else {
            let mut p = Problem::at(
                at.pos,
                len,
                format!(
                    "`{}` extends unknown `{name}`",
                    chain.last().map_or("", |s| s)
                ),
            );
            let known = self.bases.iter().map(|(n, _)| *n);
            p = p.hint(match suggest(name, known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    "name a job, or a hidden template (a top-level key starting with `.`)".into()
                }
            });
            self.problems.push(p);
            return None;
        };
        if !matches!(value.kind, Kind::Map(_)) {
            self.problems.push(Problem::at(
                at.pos,
                len,
                format!(
                    "`{name}` cannot be extended: it is {}, not a mapping of job settings",
                    value.kind.describe()
                ),
            ));
            return None;
        }
        chain.push(name.to_string());
        let resolved = self.value(name, value, chain);
        chain.pop();
        self.done.insert(name.to_string(), resolved.clone());
        resolved
    }
}

/// The `default:` mapping with its keys checked: `None` when it is not a mapping.
fn default_of(node: &Node, problems: &mut Vec<Problem>) -> Option<Node> {
    let Kind::Map(entries) = &node.kind else {
        problems.push(Problem::at(
            node.pos,
            1,
            format!(
                "`default` must be a mapping, found {}",
                node.kind.describe()
            ),
        ));
        return None;
    };
    let mut kept = Vec::new();
    for (k, v) in entries {
        match text(k) {
            Some(key) if DEFAULT_KEYS.contains(&key) => kept.push((k.clone(), v.clone())),
            Some(key) if JOB_KEYS.contains(&key) => problems.push(
                Problem::at(
                    k.pos,
                    key.chars().count(),
                    format!("`{key}` cannot be set in `default`"),
                )
                .hint(format!(
                    "`default` sets {}; share other settings through a hidden `.template` that jobs extend",
                    DEFAULT_KEYS.join(", ")
                )),
            ),
            key => {
                let key = key.unwrap_or("?");
                let p = Problem::at(
                    k.pos,
                    key.chars().count(),
                    format!("unknown key `{key}` in `default`"),
                );
                problems.push(match suggest(key, DEFAULT_KEYS.iter().copied()) {
                    Some(s) => p.hint(format!("did you mean `{s}`?")),
                    None => p.hint(format!("`default` sets {}", DEFAULT_KEYS.join(", "))),
                });
            }
        }
    }
    Some(Node {
        kind: Kind::Map(kept),
        ..node.clone()
    })
}

/// The defaults that apply to `job`: a scan job runs in pipe itself, so it takes no image and
/// no network setting.
fn for_job(default: &Node, job: &Node) -> Node {
    let is_scan =
        matches!(&job.kind, Kind::Map(e) if e.iter().any(|(k, _)| text(k) == Some("scan")));
    match &default.kind {
        Kind::Map(entries) if is_scan => Node {
            kind: Kind::Map(
                entries
                    .iter()
                    .filter(|(k, _)| !matches!(text(k), Some("image" | "network")))
                    .cloned()
                    .collect(),
            ),
            ..default.clone()
        },
        _ => default.clone(),
    }
}

/// `over` laid on `base`: mappings merged key by key, anything else replaced by `over`'s.
/// Keys `over` repeats stay repeated, for the checker to report.
fn merge(base: &Node, over: &Node) -> Node {
    let (Kind::Map(base_entries), Kind::Map(over_entries)) = (&base.kind, &over.kind) else {
        return over.clone();
    };
    let in_over = |k: &Node| over_entries.iter().any(|(o, _)| same_key(o, k));
    let mut entries: Vec<(Node, Node)> = base_entries
        .iter()
        .filter(|(k, _)| !in_over(k))
        .cloned()
        .collect();
    for (k, v) in over_entries {
        let merged = match base_entries.iter().find(|(b, _)| same_key(b, k)) {
            Some((_, b)) => merge(b, v),
            None => v.clone(),
        };
        entries.push((k.clone(), merged));
    }
    Node {
        kind: Kind::Map(entries),
        ..over.clone()
    }
}

fn same_key(a: &Node, b: &Node) -> bool {
    a.kind == b.kind
}

fn text(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Str(s) => Some(s),
        _ => None,
    }
}

fn hidden(key: &Node) -> bool {
    text(key).is_some_and(|k| k.starts_with('.'))
}
