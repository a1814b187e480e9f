//! The agent's configuration file, TOML or YAML by its extension: the repositories to watch,
//! triggers, concurrency, the data folder, the listen address and the tokens. Every mistake is
//! told with its place (`agent.toml:3:9: …`), and no secret it holds is ever shown.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", .file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the configuration must be a .toml, .yml or .yaml file", .0.display())]
    Format(PathBuf),
    /// The file does not parse, or a value has the wrong type: where and why.
    #[error("{}:{line}:{col}: {message}", .file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    /// Values that parse but cannot work together, each naming what it is about.
    #[error("{}: {}", .file.display(), .problems.join(&format!("\n{}: ", .file.display())))]
    Invalid {
        file: PathBuf,
        problems: Vec<String>,
    },
}

/// A value that is never shown: tokens and webhook secrets.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Each repository's clone (with its `.pipe/` store and runs) and the agent's queue.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Runs at once, over all repositories.
    pub runs: usize,
    /// Jobs at once in each run; `None`: the engine's default.
    pub jobs: Option<usize>,
    /// Reading (runs, logs) without a token; every change needs one anyway.
    pub open_reads: bool,
    /// Where jobs run: `docker` (default) or `local`.
    pub local: bool,
    /// How long a graceful stop lets running jobs go on before cancelling them.
    pub stop_timeout: Duration,
    /// Bigger webhook bodies are refused with 413.
    pub max_body: usize,
    pub repos: Vec<Repo>,
    pub tokens: Vec<Token>,
    /// A team's shared run store (`postgres://…`); `None`: each clone's own `.pipe/pipe.db`.
    pub store: Option<Secret>,
    /// Where the shared store's runs keep their logs and artifacts (`file:///…`, `s3://…`):
    /// opened here without credentials; the command line opens it again with its
    /// environment's.
    pub objects: Option<crate::objects::Objects>,
    /// The labels this agent offers the fleet's queue (`gpu`, `arm64`): a job is claimed only
    /// by an agent offering all of its labels.
    pub labels: Vec<String>,
    /// How long a claim of a fleet's job holds unless renewed: an agent that dies or stalls
    /// loses its jobs to others this long after its last heartbeat.
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct Repo {
    /// How the API, the pages and the data folder name it: letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// A remote URL or a path.
    pub url: String,
    pub branches: Vec<String>,
    /// The pipeline file, relative to the repository; `None`: the default names.
    pub pipeline: Option<PathBuf>,
    /// Fetch at this interval and run each branch's new head; `None`: webhooks only.
    pub poll: Option<Duration>,
    pub github_secret: Option<Secret>,
    pub gitlab_token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Token {
    /// Who acts with it: the approver in the audit trail.
    pub name: String,
    pub token: Secret,
}

impl Config {
    pub fn repo(&self, name: &str) -> Option<&Repo> {
        self.repos.iter().find(|r| r.name == name)
    }

    /// Where repository `name` is cloned: the project the engine runs it in.
    pub fn clone_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("repos").join(name)
    }

    /// Every secret the file holds, to be masked wherever the agent writes.
    pub fn secrets(&self) -> Vec<String> {
        let repos = self.repos.iter().flat_map(|r| {
            [&r.github_secret, &r.gitlab_token]
                .into_iter()
                .flatten()
                .map(|s| s.expose().to_string())
        });
        self.tokens
            .iter()
            .map(|t| t.token.expose().to_string())
            .chain(repos)
            .chain(self.store.iter().map(|s| s.expose().to_string()))
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    data_dir: PathBuf,
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    concurrency: RawConcurrency,
    #[serde(default)]
    open_reads: bool,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    stop_timeout: Option<String>,
    #[serde(default)]
    max_body: Option<usize>,
    #[serde(default)]
    repos: Vec<RawRepo>,
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    store: Option<Secret>,
    #[serde(default)]
    objects: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    lease: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConcurrency {
    runs: Option<usize>,
    jobs: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    name: String,
    url: String,
    #[serde(default)]
    branches: Vec<String>,
    pipeline: Option<PathBuf>,
    poll: Option<String>,
    github_secret: Option<Secret>,
    gitlab_token: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    token: Secret,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// Reads and checks the configuration at `file`; relative paths in it are relative to its folder.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let raw = parse(file, &text)?;
    let base = file.parent().unwrap_or(Path::new("."));
    check(file, base, raw)
}

fn parse(file: &Path, text: &str) -> Result<Raw, ConfigError> {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    let syntax = |(line, col), message: String| ConfigError::Syntax {
        file: file.to_path_buf(),
        line,
        col,
        message,
    };
    match ext {
        "toml" => toml::from_str(text).map_err(|e| {
            let at = e.span().map_or((1, 1), |s| line_col(text, s.start));
            syntax(at, e.message().to_string())
        }),
        "yml" | "yaml" => crate::pipeline::typed_yaml(text).map_err(|e| {
            let at = e.pos.map_or((1, 1), |p| (p.line as usize, p.col as usize));
            syntax(at, e.message)
        }),
        _ => Err(ConfigError::Format(file.to_path_buf())),
    }
}

/// 1-based line and column of byte `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn check(file: &Path, base: &Path, raw: Raw) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(format!(
            "listen `{}` is not an address and port, e.g. 127.0.0.1:8080 (port 0: any free port)",
            raw.listen
        ));
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let local = match raw.backend.as_deref() {
        None | Some("docker") => false,
        Some("local") => true,
        Some(other) => {
            problems.push(format!("backend `{other}` is neither `docker` nor `local`"));
            false
        }
    };
    let stop_timeout = raw
        .stop_timeout
        .as_deref()
        .and_then(|t| duration(&mut problems, "stop_timeout", t))
        .unwrap_or(Duration::from_secs(60));
    let mut repos = Vec::new();
    for (i, r) in raw.repos.into_iter().enumerate() {
        let poll = r
            .poll
            .as_deref()
            .and_then(|t| duration(&mut problems, &format!("repos[{i}] ({}): poll", r.name), t));
        repos.push(Repo {
            url: local_url(base, &r.url),
            branches: if r.branches.is_empty() {
                vec!["main".into()]
            } else {
                r.branches
            },
            pipeline: r.pipeline,
            poll,
            github_secret: r.github_secret,
            gitlab_token: r.gitlab_token,
            name: r.name,
        });
    }
    for (i, r) in repos.iter().enumerate() {
        let what = format!("repos[{i}] ({})", r.name);
        let named = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if r.name.is_empty() || !r.name.chars().all(named) || r.name.starts_with('.') {
            problems.push(format!(
                "{what}: a repository's name is letters, digits, `.`, `_` and `-`, not starting with `.`"
            ));
        }
        if repos[..i].iter().any(|o| o.name == r.name) {
            problems.push(format!("{what}: another repository has this name"));
        }
        if r.pipeline.as_deref().is_some_and(|p| {
            p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir)
        }) {
            problems.push(format!(
                "{what}: pipeline must be a path inside the repository"
            ));
        }
        if r.branches.iter().any(|b| git_ref_invalid(b)) {
            problems.push(format!(
                "{what}: a branch name is empty or not a valid git branch name"
            ));
        }
    }
    for (i, t) in raw.tokens.iter().enumerate() {
        if t.name.trim().is_empty() {
            problems.push(format!(
                "tokens[{i}]: a token needs the name of who acts with it"
            ));
        }
        if t.token.expose().len() < 16 {
            problems.push(format!(
                "tokens[{i}] ({}): a token must be at least 16 characters",
                t.name
            ));
        }
        if raw.tokens[..i].iter().any(|o| o.token == t.token) {
            problems.push(format!(
                "tokens[{i}] ({}): another token has the same value",
                t.name
            ));
        }
    }
    if let Some(url) = raw
        .store
        .as_ref()
        .filter(|s| !crate::pg::is_url(s.expose()))
    {
        let shown = crate::pg::shown(url.expose());
        problems.push(format!(
            "store `{shown}` is not a PostgreSQL URL (postgres://user:password@host/database)"
        ));
    }
    let objects = match (&raw.objects, &raw.store) {
        (None, _) => None,
        (Some(url), None) => {
            problems.push(format!(
                "objects `{url}`: an object store serves a shared run store: set `store` too"
            ));
            None
        }
        (Some(url), Some(_)) => crate::objects::Objects::open(url, &[])
            .map_err(|e| problems.push(format!("objects: {e}")))
            .ok(),
    };
    for label in &raw.labels {
        let named = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if label.is_empty() || !label.chars().all(named) {
            problems.push(format!(
                "labels: `{label}` is not a label: letters, digits, `.`, `_` and `-`"
            ));
        }
    }
    if raw.store.is_some() && raw.objects.is_none() {
        problems.push(
            "store: the agents sharing a store run each other's jobs and hand on their logs and artifacts through an object store: set `objects = \"file:///…\"` (or s3://, gs://, az://) too"
                .into(),
        );
    }
    let lease = raw
        .lease
        .as_deref()
        .and_then(|t| duration(&mut problems, "lease", t))
        .unwrap_or(DEFAULT_LEASE);
    if lease < MIN_LEASE {
        problems.push(format!(
            "lease: at least {} (it is renewed three times in each)",
            humantime::format_duration(MIN_LEASE)
        ));
    }
    if raw.lease.is_some() && raw.store.is_none() {
        problems.push(
            "lease: a lease holds a job of a fleet's queue, which needs a shared `store = \"postgres://…\"`"
                .into(),
        );
    }
    if !raw.labels.is_empty() && raw.store.is_none() {
        problems.push(
            "labels are offered to a fleet's queue, which needs a shared `store = \"postgres://…\"`"
                .into(),
        );
    }
    if raw.concurrency.runs == Some(0) || raw.concurrency.jobs == Some(0) {
        problems.push("concurrency: runs and jobs must be at least 1".into());
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            problems,
        });
    }
    Ok(Config {
        data_dir: base.join(raw.data_dir),
        listen,
        runs: raw.concurrency.runs.unwrap_or(2),
        jobs: raw.concurrency.jobs,
        open_reads: raw.open_reads,
        local,
        stop_timeout,
        max_body: raw.max_body.unwrap_or(1 << 20),
        repos,
        tokens: raw
            .tokens
            .into_iter()
            .map(|t| Token {
                name: t.name.trim().to_string(),
                token: t.token,
            })
            .collect(),
        store: raw.store,
        objects,
        labels: raw.labels,
        lease,
    })
}

/// A claim's lease unless `lease` says otherwise.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Shorter leases would be renewed more often than a busy database answers.
const MIN_LEASE: Duration = Duration::from_secs(1);

fn duration(problems: &mut Vec<String>, what: &str, text: &str) -> Option<Duration> {
    humantime::parse_duration(text)
        .map_err(|e| {
            problems.push(format!(
                "{what} `{text}` is not a duration like 30s or 5m: {e}"
            ))
        })
        .ok()
}

/// A relative path is relative to the configuration's folder; URLs are left as they are.
fn local_url(base: &Path, url: &str) -> String {
    if url.contains("://") || url.contains('@') || Path::new(url).is_absolute() {
        url.to_string()
    } else {
        base.join(url).display().to_string()
    }
}

fn git_ref_invalid(branch: &str) -> bool {
    branch.is_empty()
        || branch.starts_with(['-', '/'])
        || branch.ends_with(['/', '.'])
        || branch.contains("..")
        || branch
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(name: &str, text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        load(&file).map_err(|e| match e {
            ConfigError::Syntax {
                line, col, message, ..
            } => ConfigError::Syntax {
                file: PathBuf::from(name),
                line,
                col,
                message,
            },
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
                file: PathBuf::from(name),
                problems,
            },
            other => other,
        })
    }

    const TOML: &str = "data_dir = \"data\"\nlisten = \"127.0.0.1:0\"\n[[repos]]\nname = \"web\"\nurl = \"repo.git\"\npoll = \"5s\"\n[[tokens]]\nname = \"alice\"\ntoken = \"0123456789abcdef0\"\n";

    #[test]
    fn toml_and_yaml_say_the_same() {
        let yaml = "data_dir: data\nlisten: 127.0.0.1:0\nrepos:\n  - name: web\n    url: repo.git\n    poll: 5s\ntokens:\n  - name: alice\n    token: \"0123456789abcdef0\"\n";
        let a = load_text("agent.toml", TOML).unwrap();
        let b = load_text("agent.yaml", yaml).unwrap();
        assert_eq!(a.repos[0].name, b.repos[0].name);
        assert_eq!(a.repos[0].poll, Some(Duration::from_secs(5)));
        assert_eq!(b.repos[0].poll, Some(Duration::from_secs(5)));
        assert_eq!(a.repos[0].branches, ["main"]);
        assert_eq!(a.tokens[0].name, "alice");
        assert_eq!(b.tokens[0].token.expose(), "0123456789abcdef0");
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let e = load_text(
            "agent.toml",
            "data_dir = \"d\"\n[[repos]]\nname = 3\nurl = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("agent.toml:3:8: "), "{e}");
        let e = load_text(
            "agent.yml",
            "data_dir: d\nrepos:\n  - name: web\n    colour: red\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("agent.yml:"), "{e}");
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn problems_are_told_together_and_secrets_never() {
        let text = TOML
            .replace("5s", "soon")
            .replace("0123456789abcdef0", "short")
            + "[[repos]]\nname = \"web\"\nurl = \"x\"\n";
        let e = load_text("agent.toml", &text).unwrap_err().to_string();
        assert!(e.contains("poll `soon`"), "{e}");
        assert!(e.contains("at least 16 characters"), "{e}");
        assert!(e.contains("another repository has this name"), "{e}");
        assert!(!e.contains("short"), "{e}");
        let ok = load_text("agent.toml", TOML).unwrap();
        assert!(!format!("{ok:?}").contains("0123456789abcdef0"));
    }

    #[test]
    fn an_object_store_needs_a_shared_store_and_a_url_pipe_knows() {
        let alone = format!("objects = \"file:///\"\n{TOML}");
        let e = load_text("agent.toml", &alone).unwrap_err().to_string();
        assert!(
            e.contains("an object store serves a shared run store"),
            "{e}"
        );
        let unknown = format!("store = \"postgres://db/pipe\"\nobjects = \"ftp://x\"\n{TOML}");
        let e = load_text("agent.toml", &unknown).unwrap_err().to_string();
        assert!(e.contains("not an object store pipe knows"), "{e}");
        let both = format!("store = \"postgres://db/pipe\"\nobjects = \"file:///\"\n{TOML}");
        let ok = load_text("agent.toml", &both).unwrap();
        assert_eq!(
            ok.objects.map(|o| o.shown().to_string()).as_deref(),
            Some("file:///")
        );
    }

    #[test]
    fn labels_are_names_and_need_a_shared_store() {
        let e = load_text(
            "agent.toml",
            &format!("labels = [\"gpu\", \"a b\"]\n{TOML}"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("labels: `a b` is not a label"), "{e}");
        assert!(e.contains("which needs a shared `store"), "{e}");
        let ok = load_text(
            "agent.toml",
            &format!("labels = [\"gpu\", \"arm64\"]\nstore = \"postgres://db/pipe\"\nobjects = \"file:///\"\n{TOML}"),
        )
        .unwrap();
        assert_eq!(ok.labels, ["gpu", "arm64"]);
        assert_eq!(ok.lease, Duration::from_secs(30));
    }

    #[test]
    fn a_shared_store_needs_an_object_store_and_a_lease_needs_a_store() {
        let e = load_text(
            "agent.toml",
            &format!("store = \"postgres://db/pipe\"\nlease = \"100ms\"\n{TOML}"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("set `objects"), "{e}");
        assert!(e.contains("lease: at least 1s"), "{e}");
        let e = load_text("agent.toml", &format!("lease = \"5s\"\n{TOML}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lease: a lease holds a job"), "{e}");
        let ok = load_text(
            "agent.toml",
            &format!(
                "store = \"postgres://db/pipe\"\nobjects = \"file:///\"\nlease = \"5s\"\n{TOML}"
            ),
        )
        .unwrap();
        assert_eq!(ok.lease, Duration::from_secs(5));
    }
}
