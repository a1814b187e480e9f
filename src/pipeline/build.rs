//! `build_image:` (a job that pipe carries out by building an image through the engine, the
//! job never holding the socket) and `drift:` (what becomes of a job that wrote outside its
//! workspace), as written in a pipeline.

use std::path::{Component, Path};

use super::model::Job;
use super::yaml::{Kind, Node};
use super::Problem;

pub(super) const BUILD_KEYS: &[&str] = &["context", "dockerfile", "args", "target", "tags"];
pub(super) const PUSH_KEYS: &[&str] = &["image", "to", "username", "password"];

/// A push of the image a `build_image` job built in the same run, by its id: released as the
/// very image that was built and tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushImage {
    /// The `build_image` job, by its name as written.
    pub image: String,
    pub image_pos: super::Pos,
    /// Registry tags (`registry.example/app:$PIPE_VERSION`), expanded when the job runs.
    pub to: Vec<String>,
    /// The registry user, expanded when the job runs.
    pub username: Option<String>,
    /// The secret holding the registry password or token; the job names it in `secrets`.
    pub password: Option<String>,
    pub password_pos: Option<super::Pos>,
}

/// An image build, as written: values may still hold `$NAME`, expanded when the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildImage {
    /// A folder of the workspace (`.`: all of it).
    pub context: String,
    /// Relative to the context.
    pub dockerfile: String,
    /// `--build-arg`s, in file order.
    pub args: Vec<(String, String)>,
    /// The stage of a multi-stage Dockerfile to build.
    pub target: Option<String>,
    /// At least one: later jobs use the image by one of them as their `image:`.
    pub tags: Vec<String>,
}

/// What a job that changed files outside `/workspace` and `/tmp` comes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DriftPolicy {
    /// Said in the job's log and recorded with the run.
    #[default]
    Report,
    /// As `report`, and a job that wrote into system paths (`/usr`, `/etc`, …) fails.
    Fail,
}

pub(super) fn drift(node: &Node) -> (DriftPolicy, Vec<Problem>) {
    match &node.kind {
        Kind::Str(s) if s == "report" => (DriftPolicy::Report, vec![]),
        Kind::Str(s) if s == "fail" => (DriftPolicy::Fail, vec![]),
        _ => (
            DriftPolicy::Report,
            vec![
                Problem::at(node.pos, 1, "`drift` must be `report` or `fail`")
                    .hint("`fail` fails a job that writes into system paths (/usr, /etc, …)"),
            ],
        ),
    }
}

pub(super) fn build_image(node: &Node) -> (Option<BuildImage>, Vec<Problem>) {
    let mut problems = Vec::new();
    let Kind::Map(entries) = &node.kind else {
        problems.push(at(
            node,
            format!(
                "`build_image` must be a mapping (context, dockerfile, args, target, tags), found {}",
                node.kind.describe()
            ),
        ));
        return (None, problems);
    };
    let mut build = BuildImage {
        context: ".".into(),
        dockerfile: "Dockerfile".into(),
        args: Vec::new(),
        target: None,
        tags: Vec::new(),
    };
    let mut has_tags = false;
    for (k, v) in entries {
        let key = match &k.kind {
            Kind::Str(s) => s.as_str(),
            other => {
                problems.push(at(
                    k,
                    format!(
                        "keys in `build_image` must be strings, found {}",
                        other.describe()
                    ),
                ));
                continue;
            }
        };
        match key {
            "context" | "dockerfile" => match text(v) {
                Some(path) if inside(&path) => {
                    if key == "context" {
                        build.context = path;
                    } else {
                        build.dockerfile = path;
                    }
                }
                Some(path) => problems.push(
                    at(
                        v,
                        format!("`{key}` `{path}` must stay inside the workspace"),
                    )
                    .hint("write a path relative to the workspace, without `..`"),
                ),
                None => problems.push(at(v, format!("`{key}` must be a path"))),
            },
            "target" => match text(v) {
                Some(t) => build.target = Some(t),
                None => problems.push(at(v, "`target` must be a stage name")),
            },
            "args" => match &v.kind {
                Kind::Map(args) => {
                    for (name, value) in args {
                        match (text(name), scalar(value)) {
                            (Some(n), Some(value)) => build.args.push((n, value)),
                            _ => problems.push(at(
                                name,
                                "each build arg is `NAME: value`, a string, number or boolean",
                            )),
                        }
                    }
                }
                other => problems.push(at(
                    v,
                    format!("`args` must be a mapping, found {}", other.describe()),
                )),
            },
            "tags" => {
                has_tags = true;
                match &v.kind {
                    Kind::Seq(items) => {
                        for item in items {
                            match text(item) {
                                Some(tag) => build.tags.push(tag),
                                None => problems.push(at(item, "a tag must be a string")),
                            }
                        }
                    }
                    other => problems.push(at(
                        v,
                        format!("`tags` must be a list, found {}", other.describe()),
                    )),
                }
            }
            other => {
                let p = at(k, format!("unknown key `{other}` in `build_image`"));
                problems.push(p.hint(format!("expected one of: {}", BUILD_KEYS.join(", "))));
            }
        }
    }
    if build.tags.is_empty() && (has_tags || problems.is_empty()) {
        problems.push(
            at(node, "`build_image` needs at least one tag")
                .hint("add `tags: [myapp:$PIPE_VERSION]`: later jobs use the image by its tag"),
        );
    }
    (Some(build).filter(|_| problems.is_empty()), problems)
}

/// A non-empty string.
fn text(node: &Node) -> Option<String> {
    match &node.kind {
        Kind::Str(s) if !s.trim().is_empty() && !s.contains('\0') => Some(s.clone()),
        _ => None,
    }
}

/// Scalars as build arg values: `VERSION: 3.10` means its text.
fn scalar(node: &Node) -> Option<String> {
    match &node.kind {
        Kind::Str(s) => Some(s.clone()),
        Kind::Int(_) | Kind::Float(_) if node.written.is_some() => node.written.clone(),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Relative, and never climbing out with `..`.
fn inside(path: &str) -> bool {
    let path = Path::new(path);
    !path.is_absolute() && !path.components().any(|c| c == Component::ParentDir)
}

/// Each `push` names a `build_image` job of the pipeline, and a password secret the job names.
pub(super) fn check_pushes(jobs: &[Job]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for job in jobs {
        let Some(push) = &job.push else { continue };
        if !jobs
            .iter()
            .any(|j| j.base == push.image && j.build.is_some())
        {
            let builds: Vec<&str> = jobs
                .iter()
                .filter(|j| j.build.is_some())
                .map(|j| j.base.as_str())
                .collect();
            let mut p = Problem::at(
                push.image_pos,
                push.image.chars().count(),
                format!(
                    "job `{}` pushes the image of `{}`, which is no `build_image` job",
                    job.name, push.image
                ),
            );
            if let Some(s) = super::check::suggest(&push.image, builds.iter().copied()) {
                p = p.hint(format!("did you mean `{s}`?"));
            }
            problems.push(p);
        }
        if let (Some(secret), Some(pos)) = (&push.password, push.password_pos) {
            if !job.secrets.iter().any(|s| s.name == *secret) {
                problems.push(
                    Problem::at(
                        pos,
                        secret.chars().count(),
                        format!(
                            "job `{}` pushes with the secret `{secret}`, which it does not name",
                            job.name
                        ),
                    )
                    .hint(format!("add `secrets: [{secret}]` to the job")),
                );
            }
        }
    }
    problems
}

fn at(node: &Node, message: impl Into<String>) -> Problem {
    Problem::at(node.pos, 1, message)
}

pub(super) fn push(node: &Node) -> (Option<PushImage>, Vec<Problem>) {
    let mut problems = Vec::new();
    let Kind::Map(entries) = &node.kind else {
        problems.push(at(
            node,
            format!(
                "`push` must be a mapping (image, to, username, password), found {}",
                node.kind.describe()
            ),
        ));
        return (None, problems);
    };
    let mut push = PushImage {
        image: String::new(),
        image_pos: node.pos,
        to: Vec::new(),
        username: None,
        password: None,
        password_pos: None,
    };
    for (k, v) in entries {
        let key = match &k.kind {
            Kind::Str(s) => s.as_str(),
            _ => {
                problems.push(at(k, "keys in `push` must be strings"));
                continue;
            }
        };
        match (key, text(v)) {
            ("image", Some(job)) => {
                push.image = job;
                push.image_pos = v.pos;
            }
            ("username", Some(user)) => push.username = Some(user),
            ("password", Some(secret)) => {
                push.password = Some(secret);
                push.password_pos = Some(v.pos);
            }
            ("to", _) => match &v.kind {
                Kind::Seq(items) => {
                    for item in items {
                        match text(item) {
                            Some(tag) => push.to.push(tag),
                            None => problems.push(at(item, "a tag must be a string")),
                        }
                    }
                }
                other => problems.push(at(
                    v,
                    format!("`to` must be a list of tags, found {}", other.describe()),
                )),
            },
            ("image" | "username" | "password", None) => {
                problems.push(at(v, format!("`{key}` must be a string")))
            }
            (other, _) => {
                let p = at(k, format!("unknown key `{other}` in `push`"));
                problems.push(p.hint(format!("expected one of: {}", PUSH_KEYS.join(", "))));
            }
        }
    }
    if push.image.is_empty() {
        problems.push(
            at(
                node,
                "`push` needs `image`: the `build_image` job whose image it pushes",
            )
            .hint("pipe pushes the very image that job built in this run, by its id"),
        );
    }
    if push.to.is_empty() {
        problems.push(
            at(node, "`push` needs `to`: the registry tags to push")
                .hint("e.g. `to: [registry.example/app:$PIPE_VERSION]`"),
        );
    }
    (Some(push).filter(|_| problems.is_empty()), problems)
}
