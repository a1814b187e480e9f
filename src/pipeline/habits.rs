//! Help for values written the way other CI systems (GitLab, GitHub Actions) or YAML 1.1 write
//! them: the checker's type errors say what pipe's own form of the same setting is.

use super::yaml::{Kind, Node};

/// GitLab's `retry: {max: 2}`, or a quoted number.
pub fn retry(node: &Node) -> Option<String> {
    match &node.kind {
        Kind::Map(entries) => {
            let max = entries.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
                (Kind::Str(key), Kind::Int(n)) if key == "max" => Some(*n),
                _ => None,
            });
            Some(format!(
                "pipe's `retry` is the number of reruns itself: `retry: {}`",
                max.unwrap_or(2)
            ))
        }
        Kind::Str(s) if s.trim().parse::<u32>().is_ok() => Some(format!(
            "write the number without quotes: `retry: {}`",
            s.trim()
        )),
        _ => None,
    }
}

/// `yes`, `on`, `"true"`: YAML 1.1 booleans, which pipe reads as the text they are.
pub fn boolean(node: &Node) -> Option<String> {
    let Kind::Str(s) = &node.kind else {
        return None;
    };
    let value = match s.to_ascii_lowercase().as_str() {
        "yes" | "y" | "on" | "true" => true,
        "no" | "n" | "off" | "false" => false,
        _ => return None,
    };
    Some(format!(
        "pipe reads `{s}` as text, not as a boolean: write `{value}`"
    ))
}

/// GitLab's `environment: {name: production, url: …}`.
pub fn environment(node: &Node) -> Option<String> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    let name = entries.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
        (Kind::Str(key), Kind::Str(name)) if key == "name" => Some(name.as_str()),
        _ => None,
    });
    Some(format!(
        "pipe's `environment` is the environment's name alone: `environment: {}`",
        name.unwrap_or("production")
    ))
}
