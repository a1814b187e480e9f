//! A release job's progressive release: `steps:` (each a share of traffic, with its own gate and
//! a `verify:` check after it) and the `rollback:` script that undoes the steps taken.
//!
//! ```yaml
//! steps:
//!   - {name: canary, percent: 10, verify: {prometheus: http://prom:9090, query: …, below: 0.01, after: 5m}}
//!   - {percent: 50, gate: {approvals: 1}}
//!   - 100%
//! rollback: [./rollback.sh]
//! ```

use std::time::Duration;

use super::{gate_of, list, mapping, non_empty_string, string, unknown_key, Problems};
use crate::pipeline::duration;
use crate::pipeline::gate::Gate;
use crate::pipeline::signals::check_prometheus_url;
use crate::pipeline::yaml::{Kind, Node};

pub(in crate::pipeline) const STEP_KEYS: &[&str] = &["name", "percent", "gate", "verify"];
pub(in crate::pipeline) const VERIFY_KEYS: &[&str] = &["prometheus", "query", "below", "after"];
/// A step's name is what `PIPE_RELEASE_STEP` says and what messages name it by.
pub(in crate::pipeline) const STEP_NAME_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]{0,62}$";
/// More steps than this is a mistake: each is a `pipe release` of its own.
const MAX_STEPS: usize = 20;

/// One step of a progressive release: the share of traffic the release jobs move to.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `None`: the step is called by its 1-based number.
    pub name: Option<String>,
    /// 1 to 100, larger than the step before.
    pub percent: u32,
    /// Conditions of its own, judged before the step runs, beside the job's own gate.
    pub gate: Option<Gate>,
    /// What must hold once the step's jobs passed, before the next step may run.
    pub verify: Option<Verify>,
}

impl Step {
    /// What `PIPE_RELEASE_STEP` says for the step at 0-based `index`: its name, else `index + 1`.
    pub fn label(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| (index + 1).to_string())
    }

    /// `step 1 (canary, 10%)` or `step 2 (50%)`.
    pub fn describe(&self, index: usize) -> String {
        match &self.name {
            Some(name) => format!("step {} ({name}, {}%)", index + 1, self.percent),
            None => format!("step {} ({}%)", index + 1, self.percent),
        }
    }
}

/// `verify:`: a Prometheus query whose value, `after` the step's jobs passed, must be below a
/// threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verify {
    pub prometheus: String,
    pub query: String,
    pub below: f64,
    /// The bake time: how long `pipe release` waits after the step before it asks.
    pub after: Duration,
    pub after_text: String,
}

/// A job's `steps:` list; empty when it has problems (reported).
pub(super) fn steps_of(node: &Node, probs: &mut Problems) -> Vec<Step> {
    let Some(items) = list(node, "`steps`", probs) else {
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_STEPS {
        probs.at(
            node,
            format!(
                "`steps` must list 1 to {MAX_STEPS} steps, found {}",
                items.len()
            ),
        );
        return Vec::new();
    }
    let before = probs.0.len();
    let mut out: Vec<Step> = Vec::new();
    for item in items {
        let Some(step) = step_of(item, probs) else {
            continue;
        };
        if let Some(last) = out.last() {
            if step.percent <= last.percent {
                probs.at(
                    item,
                    format!(
                        "each step must reach more than the one before: {}% after {}%",
                        step.percent, last.percent
                    ),
                );
            }
        }
        if let Some(name) = &step.name {
            if out.iter().any(|s| s.name.as_ref() == Some(name)) {
                probs.at(item, format!("two steps are named `{name}`"));
            }
        }
        out.push(step);
    }
    if probs.0.len() > before {
        return Vec::new();
    }
    out
}

fn step_of(node: &Node, probs: &mut Problems) -> Option<Step> {
    let Kind::Map(_) = node.kind else {
        return Some(Step {
            name: None,
            percent: percent_of(node, probs)?,
            gate: None,
            verify: None,
        });
    };
    let entries = mapping(node, "a step", probs)?;
    let (mut name, mut percent, mut gate, mut verify) = (None, None, None, None);
    for (k, v) in entries {
        match k.as_str() {
            "name" => name = step_name(v, probs),
            "percent" => percent = percent_of(v, probs),
            "gate" => gate = gate_of(v, probs),
            "verify" => verify = verify_of(v, probs),
            other => unknown_key(k.node, other, STEP_KEYS, &[], probs),
        }
    }
    let Some(percent) = percent else {
        probs.at(node, "a step needs `percent`").hint =
            Some("for example: {name: canary, percent: 10}".into());
        return None;
    };
    Some(Step {
        name,
        percent,
        gate,
        verify,
    })
}

fn step_name(node: &Node, probs: &mut Problems) -> Option<String> {
    let name = non_empty_string(node, "a step's `name`", probs)?;
    let re = regex::Regex::new(STEP_NAME_PATTERN).expect("a valid pattern");
    if !re.is_match(&name) {
        probs.at(
            node,
            format!("a step's name is a letter, then letters, digits, `-` or `_` (at most 63), found `{name}`"),
        );
        return None;
    }
    Some(name)
}

/// `10%`, `10` or `'10%'`: a whole percentage from 1 to 100.
fn percent_of(node: &Node, probs: &mut Problems) -> Option<u32> {
    let n = match &node.kind {
        Kind::Int(n) => Some(*n),
        Kind::Str(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse().ok()),
        _ => None,
    };
    match n {
        Some(n @ 1..=100) => Some(n as u32),
        _ => {
            probs.at(
                node,
                format!(
                    "a step is a whole percentage from 1% to 100%, like `10%`, found {}",
                    super::scalar_text(node)
                        .map(|t| format!("`{t}`"))
                        .unwrap_or_else(|| node.kind.describe().to_string())
                ),
            );
            None
        }
    }
}

fn verify_of(node: &Node, probs: &mut Problems) -> Option<Verify> {
    let entries = mapping(node, "`verify`", probs)?;
    let (mut prometheus, mut query, mut below) = (None, None, None);
    let mut after = Some((Duration::ZERO, "0s".to_string()));
    for (k, v) in entries {
        match k.as_str() {
            "prometheus" => {
                prometheus = string(v, "`prometheus`", probs).and_then(|url| {
                    match check_prometheus_url(&url) {
                        Ok(()) => Some(url),
                        Err(e) => {
                            probs.at(v, e);
                            None
                        }
                    }
                })
            }
            "query" => query = non_empty_string(v, "`query`", probs),
            "below" => match v.kind {
                Kind::Int(n) => below = Some(n as f64),
                Kind::Float(f) if f.is_finite() => below = Some(f),
                _ => {
                    probs.at(
                        v,
                        format!(
                            "`below` must be a number, like 0.01, found {}",
                            v.kind.describe()
                        ),
                    );
                }
            },
            "after" => {
                let text = super::scalar_text(v).unwrap_or_default();
                after = duration::parse(&text).ok().map(|d| (d, text.clone()));
                if after.is_none() {
                    probs.at(
                        v,
                        format!("`after` must be a duration, like `5m` or `30s`, found `{text}`"),
                    );
                }
            }
            other => unknown_key(k.node, other, VERIFY_KEYS, &[], probs),
        }
    }
    let missing: Vec<&str> = [
        ("prometheus", prometheus.is_none()),
        ("query", query.is_none()),
        ("below", below.is_none()),
    ]
    .into_iter()
    .filter_map(|(k, gone)| gone.then_some(k))
    .collect();
    if !missing.is_empty() {
        probs
            .at(node, format!("`verify` needs `{}`", missing.join("`, `")))
            .hint = Some("for example: {prometheus: http://127.0.0.1:9090, query: 'sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))', below: 0.01, after: 5m}".into());
    }
    let (after, after_text) = after?;
    Some(Verify {
        prometheus: prometheus?,
        query: query?,
        below: below?,
        after,
        after_text,
    })
}

#[cfg(test)]
mod tests {
    use crate::pipeline::parse;

    fn problems(steps: &str) -> Vec<String> {
        let yaml = format!(
            "jobs:\n  deploy:\n    stage: release\n    script: [echo]\n    steps: {steps}\n"
        );
        match parse(&yaml, "p") {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.message).collect(),
        }
    }

    #[test]
    fn steps_as_people_write_them() {
        assert!(problems("[10%, 50%, 100%]").is_empty());
        assert!(problems("[{name: canary, percent: 10, verify: {prometheus: 'http://p:9090', query: up, below: 0.5, after: 1m}}, 100]").is_empty());
        assert_eq!(
            problems("[50%, 10%]"),
            ["each step must reach more than the one before: 10% after 50%"]
        );
        assert_eq!(
            problems("[0%]"),
            ["a step is a whole percentage from 1% to 100%, like `10%`, found `0%`"]
        );
        assert_eq!(
            problems("[{percent: 10, verify: {query: up}}]"),
            ["`verify` needs `prometheus`, `below`"]
        );
    }
}
