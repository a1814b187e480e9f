//! `secrets:` in a pipeline: the names a job asks for (`secrets: [TOKEN]` on a job) and the
//! commands that print a value (`secrets: {TOKEN: {command: …}}` at the top). Names only:
//! values are never written in a pipeline, and are resolved when jobs are about to run.

use std::time::Duration;

use super::yaml::{Kind, Node};
use super::{Pos, Problem};

/// A secret a job names, where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName {
    pub name: String,
    pub pos: Pos,
}

/// A command whose standard output is the value of secret `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    /// Run by `sh -c` on the machine pipe runs on, in the project's folder.
    pub command: String,
    /// How long the command may take before it is stopped and the run refused: a vault that
    /// hangs must not hold the run forever.
    pub timeout: Duration,
    pub pos: Pos,
}

/// A provider's `timeout` when it sets none.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(30);

/// A job's `secrets:` list.
pub(super) fn job_secrets(node: &Node) -> (Vec<SecretName>, Vec<Problem>) {
    let mut problems = Vec::new();
    let Kind::Seq(items) = &node.kind else {
        problems.push(at(
            node,
            format!(
                "`secrets` must be a list of names, found {}",
                node.kind.describe()
            ),
        ));
        return (Vec::new(), problems);
    };
    let mut names: Vec<SecretName> = Vec::new();
    for item in items {
        match &item.kind {
            Kind::Str(s) if is_name(s) => {
                if names.iter().any(|n| n.name == *s) {
                    problems.push(at(item, format!("secret `{s}` is listed twice")));
                } else {
                    names.push(SecretName {
                        name: s.clone(),
                        pos: item.pos,
                    });
                }
            }
            Kind::Str(s) => problems.push(
                at(item, format!("`{s}` is not a valid secret name"))
                    .hint("a secret is given to the job as an environment variable: use letters, digits and `_`, not starting with a digit"),
            ),
            other => problems.push(at(
                item,
                format!("a secret must be named by a string, found {}", other.describe()),
            )),
        }
    }
    (names, problems)
}

/// The top-level `secrets:` mapping: each name with a `command:` that prints its value.
pub(super) fn providers(node: &Node) -> (Vec<Provider>, Vec<Problem>) {
    let mut problems = Vec::new();
    let Kind::Map(entries) = &node.kind else {
        problems.push(
            at(
                node,
                format!(
                    "the top-level `secrets` must be a mapping, found {}",
                    node.kind.describe()
                ),
            )
            .hint("e.g. `secrets: { TOKEN: { command: pass show ci/token } }`"),
        );
        return (Vec::new(), problems);
    };
    let mut out: Vec<Provider> = Vec::new();
    for (k, v) in entries {
        let Kind::Str(name) = &k.kind else {
            problems.push(at(k, "a secret's name must be a string"));
            continue;
        };
        if !is_name(name) {
            problems.push(at(k, format!("`{name}` is not a valid secret name")));
            continue;
        }
        if out.iter().any(|p| p.name == *name) {
            problems.push(at(k, format!("secret `{name}` is defined twice")));
            continue;
        }
        let mut timeout = DEFAULT_PROVIDER_TIMEOUT;
        let command = match &v.kind {
            Kind::Map(fields) => {
                let mut command = None;
                for (fk, fv) in fields {
                    match (&fk.kind, &fv.kind) {
                        (Kind::Str(f), _) if f == "timeout" => match duration(fv) {
                            Some(t) => timeout = t,
                            None => problems.push(
                                at(fv, format!("the `timeout` of secret `{name}` must be a duration longer than zero, found {}", fv.kind.describe()))
                                    .hint("a number is seconds; or write a duration like `10s` or `2m`"),
                            ),
                        },
                        (Kind::Str(f), Kind::Str(c)) if f == "command" && !c.trim().is_empty() => {
                            command = Some(c.clone())
                        }
                        (Kind::Str(f), _) if f == "command" => problems.push(at(
                            fv,
                            format!("the `command` of secret `{name}` must be a non-empty string"),
                        )),
                        (Kind::Str(f), _) => problems.push(
                            at(fk, format!("unknown key `{f}` in secret `{name}`"))
                                .hint("a secret has a `command` and may have a `timeout`"),
                        ),
                        _ => problems.push(at(fk, "a key must be a string")),
                    }
                }
                command
            }
            other => {
                problems.push(
                    at(
                        v,
                        format!("secret `{name}` must be a mapping with `command`, found {}", other.describe()),
                    )
                    .hint("values never belong in a pipeline file: give a command that prints it, e.g. `{ command: pass show ci/token }`"),
                );
                continue;
            }
        };
        match command {
            Some(command) => out.push(Provider {
                name: name.clone(),
                command,
                timeout,
                pos: k.pos,
            }),
            None => problems.push(at(k, format!("secret `{name}` has no `command`"))),
        }
    }
    (out, problems)
}

/// A positive duration: seconds, or `10s`, `2m`…
fn duration(node: &Node) -> Option<Duration> {
    let parsed = match &node.kind {
        Kind::Str(s) => super::duration::parse(s).ok(),
        Kind::Int(i) => u64::try_from(*i).ok().map(Duration::from_secs),
        _ => None,
    };
    parsed.filter(|d| !d.is_zero())
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn at(node: &Node, message: impl Into<String>) -> Problem {
    Problem::at(node.pos, 1, message)
}

#[cfg(test)]
mod tests {
    use crate::pipeline::parse;

    fn problems(yaml: &str) -> Vec<String> {
        parse(yaml, "p")
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn jobs_name_secrets_and_the_top_level_says_how_to_get_them() {
        let p = parse(
            "secrets: {TOKEN: {command: pass show ci}}\njobs:\n  t: {secrets: [TOKEN, OTHER], script: [x]}\n",
            "p",
        )
        .unwrap();
        let names: Vec<_> = p.jobs[0].secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["TOKEN", "OTHER"]);
        assert_eq!(p.secrets[0].name, "TOKEN");
        assert_eq!(p.secrets[0].command, "pass show ci");
    }

    #[test]
    fn values_and_bad_names_are_refused() {
        let found = problems(
            "secrets: {TOKEN: hunter22}\njobs:\n  t: {secrets: [1X, A, A], script: [x]}\n",
        );
        assert!(
            found
                .iter()
                .any(|m| m.contains("secret `TOKEN` must be a mapping with `command`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|m| m.contains("`1X` is not a valid secret name")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|m| m.contains("secret `A` is listed twice")),
            "{found:?}"
        );
        let found = problems("secrets: {T: {cmd: x}}\njobs:\n  t: {script: [x]}\n");
        assert!(
            found.iter().any(|m| m.contains("unknown key `cmd`")),
            "{found:?}"
        );
    }
}
