//! A job's `services:`: containers started beside the job on a network private to it, each
//! reached by its name, which the job waits for before its script runs.
//!
//! ```yaml
//! services:
//!   - name: db
//!     image: postgres:16
//!     env: {POSTGRES_PASSWORD: test}
//!     ready: {command: pg_isready -U postgres}
//!     timeout: 60s
//! ```

use std::time::Duration;

use super::{duration_of, env_map, list, mapping, non_empty_string, suggest, Problems};
use crate::pipeline::yaml::{Kind, Node};
use crate::pipeline::Pos;

const KEYS: &[&str] = &["name", "image", "env", "command", "ready", "timeout"];
/// How long a service may take to become ready when its `timeout` is not written.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// A service's name is a host name on the job's network, and a file name for its log.
pub(in crate::pipeline) const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The host name the job reaches it by.
    pub name: String,
    pub image: String,
    pub env: Vec<(String, String)>,
    /// Replaces the image's command; `None`: the image's own.
    pub command: Option<Vec<String>>,
    /// `None`: ready as soon as its container runs.
    pub ready: Option<Ready>,
    /// How long it may take to become ready.
    pub timeout: Duration,
    pub pos: Pos,
}

/// How pipe tells that a service is ready for the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Run by `sh -c` in the service's container until it exits 0.
    Command(String),
    /// Accepts a TCP connection on this port.
    Tcp(u16),
}

/// A job's `services:` list.
pub(super) fn services_of(node: &Node, probs: &mut Problems) -> Vec<Service> {
    let Some(items) = list(node, "`services`", probs) else {
        return Vec::new();
    };
    let mut out: Vec<Service> = Vec::new();
    for item in items {
        if let Kind::Str(image) = &item.kind {
            probs
                .at(item, "a service must be a mapping with `name` and `image`")
                .hint = Some(format!(
                "write `- {{name: NAME, image: {image}}}`: the job reaches it by NAME"
            ));
            continue;
        }
        let Some(service) = service(item, probs) else {
            continue;
        };
        if out.iter().any(|s| s.name == service.name) {
            probs.at(item, format!("service `{}` is listed twice", service.name));
            continue;
        }
        out.push(service);
    }
    out
}

fn service(node: &Node, probs: &mut Problems) -> Option<Service> {
    let entries = mapping(node, "a service", probs)?;
    let (mut name, mut image, mut env, mut command, mut ready) = (None, None, vec![], None, None);
    let mut timeout = DEFAULT_TIMEOUT;
    let mut ok = true;
    for (k, v) in &entries {
        match k.as_str() {
            "name" => name = service_name(v, probs),
            "image" => image = non_empty_string(v, "a service's `image`", probs),
            "env" => env = env_map(v, probs),
            "command" => command = command_of(v, probs),
            "ready" => ready = ready_of(v, probs),
            "timeout" => match duration_of(v, probs) {
                Some(t) => timeout = t,
                None => ok = false,
            },
            other => {
                ok = false;
                let hint = match other {
                    "alias" => Some("the service is reached by its `name`".to_string()),
                    "variables" => Some("use `env`".to_string()),
                    "ports" | "options" => Some(
                        "services are reached by name on the job's own network: nothing is published".into(),
                    ),
                    _ => suggest(other, KEYS.iter().copied()).map(|s| format!("did you mean `{s}`?")),
                };
                probs
                    .at(k.node, format!("unknown key `{other}` in a service"))
                    .hint = hint.or(Some(format!("a service takes {}", KEYS.join(", "))));
            }
        }
    }
    if name.is_none() && !entries.iter().any(|(k, _)| k.as_str() == "name") {
        probs.at(node, "a service needs a `name`").hint =
            Some("the job reaches the service by this name".into());
    }
    if image.is_none() && !entries.iter().any(|(k, _)| k.as_str() == "image") {
        probs.at(node, "a service needs an `image`");
    }
    Some(Service {
        name: name?,
        image: image?,
        env,
        command,
        ready,
        timeout,
        pos: node.pos,
    })
    .filter(|_| ok)
}

fn service_name(node: &Node, probs: &mut Problems) -> Option<String> {
    let name = non_empty_string(node, "a service's `name`", probs)?;
    let valid = name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        probs
            .at(node, format!("`{name}` is not a valid service name"))
            .hint = Some(
            "it is the service's host name: lowercase letters, digits and `-`, at most 63".into(),
        );
        return None;
    }
    Some(name)
}

/// A list is the command as it is; a string is run by `sh -c`.
fn command_of(node: &Node, probs: &mut Problems) -> Option<Vec<String>> {
    match &node.kind {
        Kind::Str(s) if !s.trim().is_empty() => Some(vec!["sh".into(), "-c".into(), s.clone()]),
        Kind::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|i| match &i.kind {
                Kind::Str(s) => Some(s.clone()),
                Kind::Int(n) => Some(i.written.clone().unwrap_or(n.to_string())),
                other => {
                    probs.at(
                        i,
                        format!(
                            "a service's `command` holds strings, found {}",
                            other.describe()
                        ),
                    );
                    None
                }
            })
            .collect(),
        _ => {
            probs.at(
                node,
                "a service's `command` must be a string or a non-empty list of strings",
            );
            None
        }
    }
}

fn ready_of(node: &Node, probs: &mut Problems) -> Option<Ready> {
    let entries = mapping(node, "`ready`", probs)?;
    let [(k, v)] = entries.as_slice() else {
        probs
            .at(node, "`ready` takes one of `command` or `tcp`")
            .hint = Some("e.g. `ready: {tcp: 5432}` or `ready: {command: pg_isready}`".into());
        return None;
    };
    match (k.as_str(), &v.kind) {
        ("command", _) => non_empty_string(v, "`ready: command`", probs).map(Ready::Command),
        ("tcp", Kind::Int(port)) if (1..=65535).contains(port) => Some(Ready::Tcp(*port as u16)),
        ("tcp", _) => {
            probs.at(v, "`ready: tcp` must be a port number, 1 to 65535");
            None
        }
        (other, _) => {
            probs
                .at(k.node, format!("unknown key `{other}` in `ready`"))
                .hint = Some("`ready` takes `command` or `tcp`".into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse;

    fn services(yaml: &str) -> Result<Vec<Service>, Vec<String>> {
        let text = format!("jobs:\n  t:\n    script: [x]\n    services:\n{yaml}");
        match parse(&text, "p") {
            Ok(p) => Ok(p.jobs[0].services.clone()),
            Err(problems) => Err(problems.into_iter().map(|p| p.message).collect()),
        }
    }

    #[test]
    fn the_shapes_users_write() {
        let got = services(
            "      - name: db\n        image: postgres:16\n        env: {PGPORT: 5432}\n        command: [postgres, -c, fsync=off]\n        ready: {tcp: 5432}\n        timeout: 90s\n      - {name: cache, image: redis, command: redis-server --save '', ready: {command: redis-cli ping}}\n",
        )
        .unwrap();
        assert_eq!(got[0].name, "db");
        assert_eq!(got[0].env, [("PGPORT".to_string(), "5432".to_string())]);
        assert_eq!(
            got[0].command.as_deref().unwrap(),
            ["postgres", "-c", "fsync=off"]
        );
        assert_eq!(got[0].ready, Some(Ready::Tcp(5432)));
        assert_eq!(got[0].timeout, Duration::from_secs(90));
        assert_eq!(
            got[1].command.as_deref().unwrap(),
            ["sh", "-c", "redis-server --save ''"]
        );
        assert_eq!(got[1].ready, Some(Ready::Command("redis-cli ping".into())));
        assert_eq!(got[1].timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn mistakes_are_named() {
        let problems = services(
            "      - postgres\n      - {name: Db_1, image: x}\n      - {name: a, image: x, ready: {tcp: 0}}\n      - {name: b, image: x, ready: {http: /}}\n      - {name: c, image: x, alias: d}\n      - {image: x}\n      - {name: e, image: x}\n      - {name: e, image: y}\n",
        )
        .unwrap_err();
        for expected in [
            "a service must be a mapping with `name` and `image`",
            "`Db_1` is not a valid service name",
            "`ready: tcp` must be a port number, 1 to 65535",
            "unknown key `http` in `ready`",
            "unknown key `alias` in a service",
            "a service needs a `name`",
            "service `e` is listed twice",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected}: {problems:?}"
            );
        }
    }
}
