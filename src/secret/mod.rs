//! Secrets: where their values come from and which jobs get them. A job names the secrets it
//! receives (`secrets: [TOKEN]`); each value comes, first found, from the caller's secrets file
//! (`--secrets-file`), the caller's environment, or the command the pipeline gives for it
//! (top-level `secrets: {TOKEN: {command: …}}`), which runs at most once per run phase and
//! only when no caller value exists. Values live in memory only: pipe writes none to disk, and
//! [`Secrets`] never shows one in `{:?}`. Whoever writes output builds its masker from
//! [`Secrets::values`].

mod provider;

use std::fmt;
use std::path::Path;

use crate::pipeline::{Job, Problem, Provider};

/// Shorter values would mask ordinary text (`***` for every `on`), and are guessable anyway.
pub const MIN_LEN: usize = 4;

/// Resolved secrets, by name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<(String, String)>);

impl Secrets {
    /// Every value, for masking.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(_, v)| v.as_str())
    }

    /// Each name with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Only the secrets `job` names: no job gets another's.
    pub fn for_job(&self, job: &Job) -> Secrets {
        Secrets(
            self.0
                .iter()
                .filter(|(k, _)| job.secrets.iter().any(|s| s.name == *k))
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Secrets({names:?}, values hidden)")
    }
}

/// What the caller offers: its secrets file's values and its environment. Both hold values:
/// `{:?}` shows neither.
#[derive(Clone, Default)]
pub struct Supply {
    /// From `--secrets-file`, in file order.
    pub file: Vec<(String, String)>,
    /// The caller's environment, which secrets are looked up in by name.
    pub caller: Vec<(String, String)>,
}

impl fmt::Debug for Supply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Supply({} from the file, {} in the environment, values hidden)",
            self.file.len(),
            self.caller.len()
        )
    }
}

impl Supply {
    fn offered(&self, name: &str) -> Option<&str> {
        fn last<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
            list.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        last(&self.file, name).or_else(|| last(&self.caller, name))
    }
}

/// The secrets `jobs` name, each with its value. Every problem is reported at once, at where
/// the secret is named (or its command written), naming the secret and never its value: no
/// value, a value too short, a command that failed. `project` is where commands run.
pub async fn resolve(
    jobs: &[Job],
    providers: &[Provider],
    supply: &Supply,
    project: &Path,
) -> Result<Secrets, Vec<Problem>> {
    let mut resolved: Vec<(String, String)> = Vec::new();
    let mut problems = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    for job in jobs {
        for wanted in &job.secrets {
            let name = wanted.name.as_str();
            if resolved.iter().any(|(k, _)| k == name) || failed.contains(&name) {
                continue;
            }
            let from_provider = providers.iter().find(|p| p.name == name);
            let value = match (supply.offered(name), from_provider) {
                (Some(v), _) => Ok(v.to_string()),
                (None, Some(p)) => provider::run(p, project)
                    .await
                    .map_err(|why| Problem::at(p.pos, name.len(), why)),
                (None, None) => Err(Problem::at(
                    wanted.pos,
                    name.len(),
                    format!("job `{}` needs secret `{name}`, which has no value", job.name),
                )
                .hint(format!("set {name} in pipe's environment, put it in the file given with --secrets-file, or give it a `command:` under the top-level `secrets:`"))),
            };
            match value {
                Ok(v) if v.chars().count() < MIN_LEN => {
                    failed.push(name);
                    problems.push(
                        Problem::at(wanted.pos, name.len(), format!("the value of secret `{name}` is shorter than {MIN_LEN} characters, which pipe refuses as a secret"))
                            .hint("masking so short a value would hide ordinary output; if it is not secret, pass it with --env instead"),
                    );
                }
                Ok(v) => resolved.push((name.to_string(), v)),
                Err(problem) => {
                    failed.push(name);
                    problems.push(problem);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(Secrets(resolved))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_never_values() {
        let secrets = Secrets(vec![("TOKEN".into(), "hunter22".into())]);
        let shown = format!("{secrets:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("hunter22"),
            "{shown}"
        );
        let supply = Supply {
            file: vec![("A".into(), "hunter22".into())],
            caller: vec![("B".into(), "hunter33".into())],
        };
        assert!(!format!("{supply:?}").contains("hunter"));
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let supply = Supply {
            file: vec![("T".into(), "from-file".into())],
            caller: vec![
                ("T".into(), "from-env".into()),
                ("U".into(), "env-only".into()),
            ],
        };
        assert_eq!(supply.offered("T"), Some("from-file"));
        assert_eq!(supply.offered("U"), Some("env-only"));
        assert_eq!(supply.offered("V"), None);
    }
}
