//! A job's `cache:`: which workspace paths are kept between runs, under which key. The key is a
//! small template, checked here and evaluated when the job runs (it reads files):
//!
//! ```yaml
//! cache:
//!   key: cargo-{{ hash "Cargo.lock" }}-{{ matrix "TARGET" }}
//!   fallback_keys: [cargo-]
//!   paths: [target, .cargo-home]
//! ```
//!
//! Text is kept as written; `{{ FUNCTION "ARG" … }}` is replaced: `hash` (files or globs of the
//! workspace), `env` (a variable of the job), `matrix` (a matrix value of the job).

use std::fmt;

use super::artifact::ArtifactPath;
use super::check::suggest;
use super::glob::Glob;
use super::yaml::{Kind, Node};
use super::Problem;

const KEYS: &[&str] = &["key", "fallback_keys", "paths"];
const FUNCTIONS: &[&str] = &["hash", "env", "matrix"];
/// Keys are names users read in `pipe cache list`; a longer one is a mistake.
pub const MAX_KEY: usize = 512;

#[derive(Debug, Clone)]
pub struct Cache {
    pub key: Template,
    /// Prefixes tried in order when no entry has the key: the newest entry whose key starts
    /// with the first prefix that has one is restored, as GitHub's `restore-keys`.
    pub fallback_keys: Vec<Template>,
    /// Workspace-relative paths or globs saved after the job passes.
    pub paths: Vec<ArtifactPath>,
}

/// A key template, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// The contents of the workspace files these paths or globs select, as one digest.
    Hash(Vec<HashArg>),
    /// A variable of the job's environment (empty when unset).
    Env(String),
    /// A matrix value of the job.
    Matrix(String),
}

/// A `hash` argument: a plain path or a glob, relative to the workspace.
#[derive(Debug, Clone, PartialEq)]
pub enum HashArg {
    Path(String),
    Glob(Glob),
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a template; the error says what is wrong and where in the text (a char offset).
pub fn template(text: &str) -> Result<Template, (usize, String)> {
    let mut parts = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            if let Some(close) = rest.find("}}") {
                return Err((offset + close, "`}}` without a `{{` before it".into()));
            }
            parts.push(Part::Text(rest.to_string()));
            break;
        };
        if let Some(close) = rest[..open].find("}}") {
            return Err((offset + close, "`}}` without a `{{` before it".into()));
        }
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let inner_start = open + 2;
        let Some(len) = rest[inner_start..].find("}}") else {
            return Err((offset + open, "`{{` is never closed with `}}`".into()));
        };
        let inner = &rest[inner_start..inner_start + len];
        parts.push(call(inner).map_err(|why| (offset + open, why))?);
        let used = inner_start + len + 2;
        offset += rest[..used].chars().count();
        rest = &rest[used..];
    }
    Ok(Template {
        parts,
        text: text.to_string(),
    })
}

/// `FUNCTION "ARG" …` between the braces.
fn call(inner: &str) -> Result<Part, String> {
    let inner = inner.trim();
    let (name, mut args_text) = inner
        .split_once(char::is_whitespace)
        .map_or((inner, ""), |(n, a)| (n, a.trim_start()));
    if name.is_empty() {
        return Err("`{{ }}` is empty: write `{{ hash \"FILE\" }}`, `{{ env \"NAME\" }}` or `{{ matrix \"NAME\" }}`".into());
    }
    let mut args = Vec::new();
    while !args_text.is_empty() {
        let Some(quoted) = args_text.strip_prefix('"') else {
            return Err(format!(
                "the arguments of `{name}` are double-quoted strings, found `{args_text}`"
            ));
        };
        let Some(end) = quoted.find('"') else {
            return Err(format!("a string after `{name}` is never closed with `\"`"));
        };
        args.push(quoted[..end].to_string());
        args_text = quoted[end + 1..].trim_start();
    }
    let one = |args: Vec<String>| -> Result<String, String> {
        match <[String; 1]>::try_from(args) {
            Ok([arg]) if !arg.is_empty() => Ok(arg),
            _ => Err(format!(
                "`{name}` takes one name, e.g. `{{{{ {name} \"TARGET\" }}}}`"
            )),
        }
    };
    match name {
        "hash" if args.is_empty() => {
            Err("`hash` takes one or more files or globs, e.g. `{{ hash \"Cargo.lock\" }}`".into())
        }
        "hash" => args
            .iter()
            .map(|a| hash_arg(a))
            .collect::<Result<_, _>>()
            .map(Part::Hash),
        "env" => one(args).map(Part::Env),
        "matrix" => one(args).map(Part::Matrix),
        other => Err(match suggest(other, FUNCTIONS.iter().copied()) {
            Some(s) => format!("unknown function `{other}` (did you mean `{s}`?)"),
            None => format!("unknown function `{other}`: use {}", FUNCTIONS.join(", ")),
        }),
    }
}

fn hash_arg(text: &str) -> Result<HashArg, String> {
    let parsed =
        ArtifactPath::parse(text).map_err(|e| e.replacen("artifact path", "`hash` path", 1))?;
    if parsed.is_glob() {
        Glob::new(text.trim_start_matches("./"))
            .map(HashArg::Glob)
            .map_err(|e| format!("`hash` path `{text}` is not a valid glob: {e}"))
    } else {
        Ok(HashArg::Path(parsed.base().display().to_string()))
    }
}

/// A job's `cache:` mapping, with a problem (and its position) for each thing wrong in it.
pub(super) fn parse(node: &Node, matrix: &[String]) -> (Option<Cache>, Vec<Problem>) {
    let mut problems = Vec::new();
    let Kind::Map(entries) = &node.kind else {
        problems.push(
            Problem::at(
                node.pos,
                1,
                format!("`cache` must be a mapping, found {}", node.kind.describe()),
            )
            .hint("for example `cache: {key: 'deps-{{ hash \"Cargo.lock\" }}', paths: [target]}`"),
        );
        return (None, problems);
    };
    let (mut key, mut fallback_keys, mut paths) = (None, Vec::new(), None);
    for (k, v) in entries {
        let name = match &k.kind {
            Kind::Str(s) => s.as_str(),
            _ => "?",
        };
        match name {
            "key" => key = key_template(v, "`cache.key`", matrix, &mut problems),
            "fallback_keys" => {
                fallback_keys = strings(v, "`cache.fallback_keys`", &mut problems)
                    .into_iter()
                    .filter_map(|n| key_template(n, "a fallback key", matrix, &mut problems))
                    .collect()
            }
            "paths" => paths = Some(cache_paths(v, &mut problems)),
            other => {
                let p = Problem::at(
                    k.pos,
                    other.chars().count(),
                    format!("unknown key `{other}` in `cache`"),
                );
                problems.push(match suggest(other, KEYS.iter().copied()) {
                    Some(s) => p.hint(format!("did you mean `{s}`?")),
                    None => p.hint(format!("`cache` takes {}", KEYS.join(", "))),
                });
            }
        }
    }
    if !entries
        .iter()
        .any(|(k, _)| k.kind == Kind::Str("key".into()))
    {
        problems.push(
            Problem::at(node.pos, 1, "`cache` has no `key`")
                .hint("e.g. `key: deps-{{ hash \"Cargo.lock\" }}`: the cache is restored when the key matches"),
        );
    }
    match &paths {
        Some(p) if p.is_empty() => problems.push(
            Problem::at(node.pos, 1, "`cache.paths` is empty")
                .hint("list what to keep, e.g. `paths: [target]`"),
        ),
        None => problems.push(
            Problem::at(node.pos, 1, "`cache` has no `paths`")
                .hint("list what to keep, e.g. `paths: [target]`"),
        ),
        _ => {}
    }
    match (key, paths) {
        (Some(key), Some(paths)) if problems.is_empty() => (
            Some(Cache {
                key,
                fallback_keys,
                paths,
            }),
            problems,
        ),
        _ => (None, problems),
    }
}

fn key_template(
    node: &Node,
    what: &str,
    matrix: &[String],
    problems: &mut Vec<Problem>,
) -> Option<Template> {
    let Kind::Str(text) = &node.kind else {
        problems.push(Problem::at(
            node.pos,
            1,
            format!("{what} must be a string, found {}", node.kind.describe()),
        ));
        return None;
    };
    if text.trim().is_empty() {
        problems.push(Problem::at(node.pos, 1, format!("{what} is empty")));
        return None;
    }
    if text.chars().count() > MAX_KEY {
        problems.push(Problem::at(
            node.pos,
            1,
            format!("{what} is longer than {MAX_KEY} characters"),
        ));
        return None;
    }
    match template(text) {
        Ok(t) => {
            // A matrix value the job does not have would make every expansion share one key.
            for part in &t.parts {
                if let Part::Matrix(name) = part {
                    if !matrix.contains(name) {
                        problems.push(
                            Problem::at(node.pos, text.chars().count(), format!("{what} uses matrix value `{name}`, which the job's `matrix` does not set"))
                                .hint("use a variable of the job's `matrix`, or `{{ env \"NAME\" }}`"),
                        );
                        return None;
                    }
                }
            }
            Some(t)
        }
        Err((at, why)) => {
            let shown: String = text.chars().skip(at).take(20).collect();
            problems.push(
                Problem::at(node.pos, text.chars().count(), format!("{what}: {why} (at `{shown}`)"))
                    .hint("a key is text with `{{ hash \"FILE\" }}`, `{{ env \"NAME\" }}` or `{{ matrix \"NAME\" }}` in it"),
            );
            None
        }
    }
}

fn strings<'a>(node: &'a Node, what: &str, problems: &mut Vec<Problem>) -> Vec<&'a Node> {
    match &node.kind {
        Kind::Seq(items) => items.iter().collect(),
        Kind::Str(_) => vec![node],
        other => {
            problems.push(Problem::at(
                node.pos,
                1,
                format!(
                    "{what} must be a list of strings, found {}",
                    other.describe()
                ),
            ));
            Vec::new()
        }
    }
}

fn cache_paths(node: &Node, problems: &mut Vec<Problem>) -> Vec<ArtifactPath> {
    let mut out = Vec::new();
    for item in strings(node, "`cache.paths`", problems) {
        let Kind::Str(text) = &item.kind else {
            problems.push(Problem::at(
                item.pos,
                1,
                format!(
                    "a cache path must be a string, found {}",
                    item.kind.describe()
                ),
            ));
            continue;
        };
        match ArtifactPath::parse(text) {
            Ok(path) => out.push(path),
            Err(why) => problems.push(
                Problem::at(item.pos, text.chars().count().max(1), why.replacen("artifact path", "cache path", 1))
                    .hint("use a path relative to the workspace, without `..`; `*` and `**` select several files"),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_text_and_calls() {
        let t = template("cargo-{{ hash \"Cargo.lock\" \"**/*.toml\" }}-{{env \"OS\"}}").unwrap();
        assert_eq!(t.parts.len(), 4);
        assert_eq!(t.parts[0], Part::Text("cargo-".into()));
        assert!(
            matches!(&t.parts[1], Part::Hash(a) if a.len() == 2 && matches!(a[1], HashArg::Glob(_)))
        );
        assert_eq!(t.parts[3], Part::Env("OS".into()));
    }

    #[test]
    fn bad_templates_say_what_and_where() {
        assert_eq!(template("a-{{ hash \"x\"").unwrap_err().0, 2);
        assert!(template("a}}").unwrap_err().1.contains("without a `{{`"));
        assert!(template("{{ hsh \"x\" }}")
            .unwrap_err()
            .1
            .contains("did you mean `hash`?"));
        assert!(template("{{ hash x }}")
            .unwrap_err()
            .1
            .contains("double-quoted"));
        assert!(template("{{ hash \"../x\" }}")
            .unwrap_err()
            .1
            .contains("inside the workspace"));
        assert!(template("{{ env \"A\" \"B\" }}")
            .unwrap_err()
            .1
            .contains("one name"));
        assert!(template("ok-{{ matrix \"OS\" }}").is_ok());
    }
}
