//! The YAML tree → [`Pipeline`], collecting every problem with its position on the way.

use std::collections::{HashMap, HashSet};

use super::artifact::ArtifactPath;
use super::duration;
use super::gate::{Freeze, Gate};
use super::glob::Glob;
use super::habits;
use super::model::{Job, Need, Pipeline, Scanner, Spans, Volume, DEFAULT_STAGES, RELEASE_STAGE};
use super::signals::{ErrorBudget, OnError};
use super::yaml::{Kind, Node};
use super::{Pos, Problem};
use crate::severity::Severity;

mod reports;
pub(super) mod services;
pub(super) mod steps;

// The key tables are what the checker accepts and what `schema` describes to editors: a key
// added here appears in docs/schemas/pipeline.json once it is regenerated.
pub(super) const TOP_KEYS: &[&str] = &[
    "name", "stages", "image", "env", "secrets", "default", "jobs",
];
pub(super) const JOB_KEYS: &[&str] = &[
    "stage",
    "needs",
    "image",
    "script",
    "env",
    "matrix",
    "timeout",
    "retry",
    "allow_failure",
    "artifacts",
    "environment",
    "gate",
    "privileged",
    "volumes",
    "network",
    "scan",
    "fail_on",
    "extends",
    "only",
    "secrets",
    "cache",
    "inputs",
    "reuse",
    "services",
    "build_image",
    "drift",
    "push",
    "reports",
    "concurrency",
    "steps",
    "rollback",
    "labels",
];
/// Keys of the design that this version does not act on yet: refused rather than ignored, so a
/// pipeline never silently means less than it says.
const LATER_JOB_KEYS: &[&str] = &[];
pub(super) const GATE_KEYS: &[&str] = &[
    "approvals",
    "not_author",
    "branches",
    "tags",
    "freeze",
    "error_budget",
    "findings",
];
pub(super) const ERROR_BUDGET_KEYS: &[&str] =
    &["prometheus", "query", "objective", "window", "on_error"];
pub(super) const SCANNERS: &[&str] = &["secrets", "pipeline"];
pub(super) const MAX_RETRY: i64 = 10;
pub(super) const MAX_APPROVALS: i64 = 100;
/// Job names (matrix values included) become file names and Docker object names: a longer one
/// is a mistake (or an attack) that would only fail at run time.
pub(super) const MAX_JOB_NAME: usize = 200;
/// A matrix larger than this is almost certainly a mistake, and would flood the scheduler.
const MAX_MATRIX: usize = 256;

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, p: Problem) {
        self.0.push(p);
    }
    fn at(&mut self, node: &Node, message: impl Into<String>) -> &mut Problem {
        self.0.push(Problem::at(node.pos, width(node), message));
        self.0.last_mut().expect("just pushed")
    }
    /// Gives the problems found since there were `before` a hint, where there is one.
    fn hint_new(&mut self, before: usize, hint: Option<String>) {
        if let (Some(p), Some(hint)) = (self.0[before..].last_mut(), hint) {
            p.hint = Some(hint);
        }
    }
}

/// How many characters of the source the node's text covers, for underlining.
fn width(node: &Node) -> usize {
    match &node.kind {
        Kind::Str(s) => s.chars().count().max(1),
        Kind::Int(i) => i.to_string().len(),
        Kind::Bool(b) => b.to_string().len(),
        _ => 1,
    }
}

/// The pipeline as far as it could be read, and every problem found. Jobs with problems are
/// left out or partly filled, so the planner can still look for cycles among the rest.
pub fn pipeline(root: &Node, default_name: &str) -> (Option<Pipeline>, Vec<Problem>) {
    let mut probs = Problems::default();
    let pipeline = top(root, default_name, &mut probs);
    (pipeline, probs.0)
}

fn top(root: &Node, default_name: &str, probs: &mut Problems) -> Option<Pipeline> {
    if root.kind == Kind::Null {
        probs.at(root, "the pipeline file is empty").hint = Some("add a `jobs:` mapping".into());
        return None;
    }
    let entries = mapping(root, "the pipeline", probs)?;
    let mut name = default_name.to_string();
    let mut stages: Vec<String> = DEFAULT_STAGES.iter().map(|s| s.to_string()).collect();
    let mut image = None;
    let mut image_pos = None;
    let mut env = Vec::new();
    let mut env_pos = Vec::new();
    let mut jobs_node = None;
    let mut providers = Vec::new();
    for (key, value) in &entries {
        match key.as_str() {
            "name" => name = string(value, "`name`", probs).unwrap_or(name),
            "stages" => {
                if let Some(list) = stage_list(value, probs) {
                    stages = list;
                }
            }
            "image" => {
                image = non_empty_string(value, "`image`", probs);
                image_pos = Some(value.pos);
            }
            "env" => {
                env = env_map(value, probs);
                env_pos = value_positions(value);
            }
            "secrets" => {
                let (parsed, problems) = super::secrets::providers(value);
                problems.into_iter().for_each(|p| probs.add(p));
                providers = parsed;
            }
            "jobs" => jobs_node = Some(*value),
            // Extension fields hold YAML anchors for jobs to merge (`<<: *defaults`), as in
            // Docker Compose (`x-…`) and GitLab CI (`.hidden`).
            other if other.starts_with("x-") || other.starts_with('.') => {}
            other => unknown_key(key.node, other, TOP_KEYS, &[], probs),
        }
    }
    let Some(jobs_node) = jobs_node else {
        probs.add(Problem::at(root.pos, 1, "the pipeline has no `jobs`").hint(
            "add a `jobs:` mapping of job names to jobs, e.g. `jobs: { hello: { image: alpine, script: [echo hi] } }`",
        ));
        return None;
    };
    let job_entries = mapping(jobs_node, "`jobs`", probs)?;
    // Entries with bad keys are reported already; "empty" is only for a mapping with none.
    if matches!(&jobs_node.kind, Kind::Map(entries) if entries.is_empty()) {
        probs.at(jobs_node, "`jobs` is empty").hint = Some("define at least one job".into());
    }
    let ctx = JobContext {
        stages: &stages,
        image: image.as_deref(),
        env: &env,
        env_pos: &env_pos,
        image_pos,
    };
    let mut jobs: Vec<Job> = Vec::new();
    let mut names = HashSet::new();
    for (key, value) in &job_entries {
        for new in job(key.as_str(), key.node, value, &ctx, probs) {
            // `t [P=1]` written out next to `t` with `matrix: {P: [1]}`, or a matrix value
            // listed twice: two jobs of one name cannot be told apart in the run.
            if !names.insert(new.name.clone()) {
                probs.add(
                    Problem::at(
                        key.node.pos,
                        key.as_str().chars().count(),
                        format!("two jobs would be named `{}`", new.name),
                    )
                    .hint("rename one of them, or drop the repeated matrix value"),
                );
                continue;
            }
            jobs.push(new);
        }
    }
    super::build::check_pushes(&jobs)
        .into_iter()
        .for_each(|p| probs.add(p));
    one_stepped_job(&jobs, probs);
    check_needs(
        &jobs,
        &job_entries
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        probs,
    );
    Some(Pipeline {
        name,
        stages,
        jobs,
        secrets: providers,
    })
}

/// A release is one sequence of steps: two release jobs stepping on their own would leave no
/// answer to "which step is the release at".
fn one_stepped_job(jobs: &[Job], probs: &mut Problems) {
    let mut stepped = jobs.iter().filter(|j| !j.steps.is_empty());
    let Some(first) = stepped.next() else { return };
    if let Some(other) = stepped.find(|j| j.base != first.base) {
        probs
            .add(Problem::at(other.pos, other.base.chars().count(), format!(
                "jobs `{}` and `{}` both have `steps`, and a release goes through one sequence of steps",
                first.base, other.base
            ))
            .hint("keep `steps` on one release job: every release job runs at each step and sees PIPE_RELEASE_STEP"));
    }
}

struct JobContext<'a> {
    stages: &'a [String],
    image: Option<&'a str>,
    env: &'a [(String, String)],
    env_pos: &'a [(String, Pos)],
    image_pos: Option<Pos>,
}

fn job(name: &str, key: &Node, value: &Node, ctx: &JobContext, probs: &mut Problems) -> Vec<Job> {
    if name.trim().is_empty() {
        probs.at(key, "a job name cannot be empty");
        return vec![];
    }
    if let Some(problem) = too_long(name, None, key) {
        probs.add(problem);
        return vec![];
    }
    if value.kind == Kind::Null {
        probs.add(
            Problem::at(
                key.pos,
                name.chars().count(),
                format!("job `{name}` is empty"),
            )
            .hint("give it a `script:` list of commands"),
        );
        return vec![];
    }
    let Some(entries) = mapping(value, &format!("job `{name}`"), probs) else {
        return vec![];
    };
    let mut stage = None;
    let mut needs = None;
    let mut image = ctx.image.map(str::to_string);
    let mut script = None;
    let mut has_script = false;
    let mut env = ctx.env.to_vec();
    let mut matrix = vec![Vec::new()];
    let mut timeout = None;
    let mut retry = 0;
    let mut allow_failure = false;
    let mut artifacts = Vec::new();
    let mut reports = Vec::new();
    let mut environment = None;
    let mut only = None;
    let mut gate = None;
    let mut gate_node = None;
    let mut privileged = false;
    let mut volumes = Vec::new();
    let mut network = true;
    let mut scan = Vec::new();
    let mut scan_node = None;
    let mut fail_on = Severity::High;
    let mut secrets = Vec::new();
    let mut cache_node = None;
    let mut inputs = Vec::new();
    let mut reuse = true;
    let mut services = Vec::new();
    let mut build = None;
    let mut build_node = None;
    let mut drift = super::build::DriftPolicy::default();
    let mut push = None;
    let mut push_node = None;
    let mut concurrency = None;
    let mut labels = Vec::new();
    let mut steps = Vec::new();
    let mut steps_node = None;
    let mut rollback = Vec::new();
    let mut rollback_node = None;
    let mut spans = Spans {
        env: ctx.env_pos.to_vec(),
        image: ctx.image_pos,
        ..Spans::default()
    };
    for (k, v) in &entries {
        match k.as_str() {
            "stage" => stage = stage_of(v, ctx.stages, probs),
            "needs" => needs = needs_list(v, name, probs),
            "image" => {
                image = non_empty_string(v, "`image`", probs).or(image);
                spans.image = Some(v.pos);
            }
            "script" => {
                has_script = true;
                script = script_lines(v, name, probs);
                spans.script = match &v.kind {
                    Kind::Seq(items) => items.iter().map(|i| i.pos).collect(),
                    _ => vec![v.pos],
                };
            }
            "env" => {
                env.extend(env_map(v, probs));
                spans.env.extend(value_positions(v));
            }
            "matrix" => matrix = matrix_of(v, probs),
            "timeout" => timeout = duration_of(v, probs),
            "retry" => retry = retry_of(v, probs),
            "allow_failure" => {
                allow_failure = boolean(v, "`allow_failure`", probs).unwrap_or(false)
            }
            "artifacts" => artifacts = artifact_paths(v, probs),
            "reports" => reports = reports::sarif_paths(v, probs),
            "environment" => {
                let before = probs.0.len();
                environment = non_empty_string(v, "`environment`", probs);
                probs.hint_new(before, habits::environment(v));
            }
            "only" => {
                let (parsed, problems) = super::only::parse(v);
                problems.into_iter().for_each(|p| probs.add(p));
                only = parsed;
            }
            "gate" => {
                gate_node = Some(k.node);
                spans.gate = Some(k.node.pos);
                gate = gate_of(v, probs);
            }
            "privileged" => {
                privileged = boolean(v, "`privileged`", probs).unwrap_or(false);
                spans.privileged = Some(k.node.pos);
            }
            "volumes" => volumes = volumes_of(v, probs),
            "network" => {
                network = boolean(v, "`network`", probs).unwrap_or(true);
                if !network {
                    spans.network = Some(k.node.pos);
                }
            }
            "scan" => {
                scan_node = Some(k.node);
                scan = scanners_of(v, probs);
            }
            "fail_on" => match string(v, "`fail_on`", probs).map(|s| s.parse::<Severity>()) {
                Some(Ok(severity)) => fail_on = severity,
                Some(Err(_)) => {
                    probs.at(v, "`fail_on` must be one of low, medium, high, critical");
                }
                None => {}
            },
            "secrets" => {
                let (parsed, problems) = super::secrets::job_secrets(v);
                problems.into_iter().for_each(|p| probs.add(p));
                secrets = parsed;
            }
            // Read once the matrix is known: a key may use its values.
            "cache" => cache_node = Some(v),
            "inputs" => inputs = input_globs(v, probs),
            "reuse" => reuse = boolean(v, "`reuse`", probs).unwrap_or(true),
            "services" => services = services::services_of(v, probs),
            "build_image" => {
                build_node = Some(k.node);
                let (parsed, problems) = super::build::build_image(v);
                problems.into_iter().for_each(|p| probs.add(p));
                build = parsed;
            }
            "push" => {
                push_node = Some(k.node);
                let (parsed, problems) = super::build::push(v);
                problems.into_iter().for_each(|p| probs.add(p));
                push = parsed;
            }
            "drift" => {
                let (parsed, problems) = super::build::drift(v);
                problems.into_iter().for_each(|p| probs.add(p));
                drift = parsed;
            }
            "concurrency" => concurrency = group_name(v, probs),
            "labels" => labels = labels_of(v, probs),
            "steps" => {
                steps_node = Some(k.node);
                steps = steps::steps_of(v, probs);
            }
            "rollback" => {
                rollback_node = Some(k.node);
                rollback = script_lines(v, name, probs).unwrap_or_default();
            }
            // Left only where it could not be resolved, which extends.rs reported.
            "extends" => {}
            other => unknown_key(k.node, other, JOB_KEYS, LATER_JOB_KEYS, probs),
        }
    }
    if let (Some(node), true) = (scan_node, has_script) {
        probs
            .at(node, format!("job `{name}` has both `scan` and `script`"))
            .hint = Some(
            "a scan job runs pipe's built-in scanners; put commands in a job of their own".into(),
        );
    }
    let kinds = [
        has_script,
        scan_node.is_some(),
        build_node.is_some(),
        push_node.is_some(),
    ];
    if let (Some(node), true) = (
        build_node.or(push_node),
        kinds.iter().filter(|k| **k).count() > 1,
    ) {
        probs
            .at(
                node,
                format!(
                    "job `{name}` has more than one of `script`, `scan`, `build_image`, `push`"
                ),
            )
            .hint = Some("pipe builds and pushes images itself; give each its own job".into());
    }
    // Even a matrix of one cell renames the job, which a `push` names.
    let has_matrix = entries.iter().any(|(k, _)| k.as_str() == "matrix");
    if let (Some(node), true) = (build_node, has_matrix) {
        probs
            .at(
                node,
                format!("job `{name}` has `build_image` and a `matrix`"),
            )
            .hint = Some(
            "a `push` finds the image by the job's name: give each build a job of its own".into(),
        );
    }
    // An image build or push runs in no container, and its product is an image on the engine
    // or a registry, not files an earlier run could hand over.
    if build_node.is_some() || push_node.is_some() {
        image = None;
        reuse = false;
    }
    // Services are reached over the job's network: a job without one could not use them.
    if let (false, Some((k, _))) = (
        network,
        entries.iter().find(|(k, _)| k.as_str() == "services"),
    ) {
        probs
            .at(
                k.node,
                format!("job `{name}` has `services` and `network: false`"),
            )
            .hint =
            Some("services are reached over the job's network: drop `network: false`".into());
    }
    // Keys that mean nothing for this kind of job would be silently ignored: say so.
    let meaningless: &[&str] = if scan_node.is_some() {
        &[
            "image",
            "artifacts",
            "privileged",
            "volumes",
            "cache",
            "network",
            "services",
            "reports",
        ]
    } else {
        &["fail_on"]
    };
    for (k, _) in entries
        .iter()
        .filter(|(k, _)| meaningless.contains(&k.as_str()))
    {
        let (what, hint) = if scan_node.is_some() {
            (
                "a scan job",
                "scan jobs run in pipe itself, on the job's workspace",
            )
        } else {
            (
                "a job without `scan`",
                "`fail_on` sets when a scan job fails",
            )
        };
        probs
            .at(k.node, format!("`{}` has no effect on {what}", k.as_str()))
            .hint = Some(hint.into());
    }
    if !has_script
        && scan_node.is_none()
        && build_node.is_none()
        && push_node.is_none()
        && !entries
            .iter()
            .any(|(k, _)| LATER_JOB_KEYS.contains(&k.as_str()) || k.as_str() == "extends")
    {
        probs.add(
            Problem::at(
                key.pos,
                name.chars().count(),
                format!("job `{name}` has no `script`"),
            )
            .hint("add `script:` with the commands the job runs"),
        );
    }
    let cache = cache_node.and_then(|node| {
        let names: Vec<String> = matrix
            .first()
            .map(|m| m.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        let (parsed, problems) = super::cache::parse(node, &names);
        problems.into_iter().for_each(|p| probs.add(p));
        parsed
    });
    let stage = stage.unwrap_or_else(|| ctx.stages.first().cloned().unwrap_or_default());
    let stage_index = ctx.stages.iter().position(|s| *s == stage).unwrap_or(0);
    // The release stage and any stage after it wait for the gate.
    let gated = ctx
        .stages
        .iter()
        .position(|s| s == RELEASE_STAGE)
        .is_some_and(|r| stage_index >= r);
    if let (Some(node), false) = (gate_node, gated) {
        probs.at(node, format!("job `{name}` has a `gate`, but only jobs of the `{RELEASE_STAGE}` stage wait for one")).hint =
            Some(format!("move the job to `stage: {RELEASE_STAGE}`, or remove `gate`"));
    }
    for (node, key) in [(steps_node, "steps"), (rollback_node, "rollback")] {
        if let (Some(node), false) = (node, gated && has_script) {
            probs.at(node, format!("job `{name}` has `{key}`, but only release jobs with a `script` release in steps or roll back")).hint =
                Some(format!("move the job to `stage: {RELEASE_STAGE}` with a `script`, or remove `{key}`"));
        }
    }
    // Each expansion's environment, and its artifact paths checked with `$VAR` expanded.
    let expansions: Vec<_> = matrix
        .into_iter()
        .map(|values| {
            let mut env = env.clone();
            env.extend(values.iter().cloned());
            let artifacts = artifact_paths_for(&artifacts, &env, &values, "artifact path", probs);
            let reports = artifact_paths_for(&reports, &env, &values, "report", probs);
            (values, env, (artifacts, reports))
        })
        .collect();
    let named: Vec<_> = expansions
        .into_iter()
        .map(|(values, env, artifacts)| {
            let full = if values.is_empty() {
                name.to_string()
            } else {
                let inner: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{name} [{}]", inner.join(", "))
            };
            (full, values, env, artifacts)
        })
        .collect();
    // Matrix values lengthen the name: one problem for the first expansion that is too long.
    if let Some(problem) = named
        .iter()
        .find_map(|(full, ..)| too_long(full, Some(name), key))
    {
        probs.add(problem);
        return vec![];
    }
    named
        .into_iter()
        .map(|(full, values, env, (artifacts, reports))| Job {
            name: full,
            base: name.to_string(),
            pos: key.pos,
            stage: stage.clone(),
            stage_index,
            needs: needs.clone(),
            image: image.clone(),
            script: script.clone().unwrap_or_default(),
            matrix: values,
            timeout,
            retry,
            allow_failure,
            artifacts,
            reports,
            env,
            environment: environment.clone(),
            only: only.clone(),
            gated,
            gate: gate.clone(),
            privileged,
            volumes: volumes.clone(),
            network,
            scan: scan.clone(),
            fail_on,
            secrets: secrets.clone(),
            cache: cache.clone(),
            inputs: inputs.clone(),
            reuse,
            services: services.clone(),
            build: build.clone(),
            push: push.clone(),
            drift,
            concurrency: concurrency.clone(),
            labels: labels.clone(),
            steps: steps.clone(),
            rollback: rollback.clone(),
            spans: spans.clone(),
        })
        .collect()
}

/// A problem if the job name `full` (the expansion of `base` by its matrix values, if given)
/// is longer than names may be. The message shows only the start of it.
fn too_long(full: &str, base: Option<&str>, key: &Node) -> Option<Problem> {
    let n = full.chars().count();
    if n <= MAX_JOB_NAME {
        return None;
    }
    let start: String = full.chars().take(40).collect();
    let message = match base {
        None => format!("the job name `{start}…` has {n} characters; at most {MAX_JOB_NAME} are allowed"),
        Some(_) => format!("with its matrix values, the job name `{start}…` has {n} characters; at most {MAX_JOB_NAME} are allowed"),
    };
    let width = base.unwrap_or(full).chars().count().min(40);
    Some(
        Problem::at(key.pos, width, message)
            .hint("shorten it: job names become file names and container names"),
    )
}

/// A problem if `text`, which ends up in a process's arguments or environment, holds a NUL
/// character: no process can be given one, so the job would fail to start.
fn has_nul(text: &str, node: &Node, what: &str, probs: &mut Problems) -> bool {
    if !text.contains('\0') {
        return false;
    }
    probs
        .at(node, format!("{what} contains a NUL character"))
        .hint = Some("remove it: no environment variable or command line can hold one".into());
    true
}

/// `$NAME` and `${NAME}` in an artifact path, from the job's environment (matrix values
/// included), as GitLab does: `sum-$SHARD` names each matrix job's own file.
fn expand(path: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after
            .strip_prefix('{')
            .and_then(|a| a.find('}').map(|e| (&a[..e], e + 2)))
        {
            Some(braced) => braced,
            None => {
                let end = after
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match lookup(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[i..i + 1 + len]),
        }
        rest = &rest[i + 1 + len..];
    }
    out.push_str(rest);
    out
}

/// Unknown `needs`, needs on itself or on a later stage. Cycles are the plan's to find.
fn check_needs(jobs: &[Job], names: &[&str], probs: &mut Problems) {
    // A need names a job as written, or one expansion of a matrix job (`build [OS=linux]`).
    let stage_of: HashMap<&str, (usize, &str)> = jobs
        .iter()
        .flat_map(|j| {
            let at = (j.stage_index, j.stage.as_str());
            [(j.base.as_str(), at), (j.name.as_str(), at)]
        })
        .collect();
    let mut seen = HashSet::new();
    for job in jobs {
        if !seen.insert(job.base.as_str()) {
            continue; // matrix expansions share their needs: report once
        }
        for need in job.needs.iter().flatten() {
            let len = need.name.chars().count();
            if need.name == job.base || need.name == job.name {
                probs.add(
                    Problem::at(need.pos, len, format!("job `{}` needs itself", job.base))
                        .hint(format!("remove `{}` from its own `needs`", job.base)),
                );
            } else if let Some((index, stage)) = stage_of.get(need.name.as_str()) {
                if *index > job.stage_index {
                    probs.add(
                        Problem::at(
                            need.pos,
                            len,
                            format!(
                                "job `{}` (stage `{}`) needs `{}`, which is in the later stage `{stage}`",
                                job.base, job.stage, need.name
                            ),
                        )
                        .hint("a job can only need jobs of its own or an earlier stage"),
                    );
                }
            } else if names.contains(&need.name.as_str()) {
                // A job that had its own errors: already reported there.
            } else {
                let mut p = Problem::at(
                    need.pos,
                    len,
                    format!("job `{}` needs unknown job `{}`", job.base, need.name),
                );
                if let Some(s) = suggest(&need.name, names.iter().copied()) {
                    p = p.hint(format!("did you mean `{s}`?"));
                }
                probs.add(p);
            }
        }
    }
}

/// A mapping key as written, with its node for positions.
struct Key<'a> {
    text: String,
    node: &'a Node,
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        &self.text
    }
}

/// A mapping's entries with string keys; reports duplicates and non-string keys.
fn mapping<'a>(
    node: &'a Node,
    what: &str,
    probs: &mut Problems,
) -> Option<Vec<(Key<'a>, &'a Node)>> {
    let Kind::Map(entries) = &node.kind else {
        probs.at(
            node,
            format!("{what} must be a mapping, found {}", node.kind.describe()),
        );
        return None;
    };
    let mut out: Vec<(Key<'a>, &'a Node)> = Vec::with_capacity(entries.len());
    let mut first: HashMap<String, Pos> = HashMap::new();
    for (k, v) in entries {
        let text = match &k.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(i) => i.to_string(),
            Kind::Bool(b) => b.to_string(),
            other => {
                probs.at(
                    k,
                    format!("keys in {what} must be strings, found {}", other.describe()),
                );
                continue;
            }
        };
        if let Some(at) = first.get(&text) {
            probs
                .at(k, format!("duplicate key `{text}` in {what}"))
                .hint = Some(format!(
                "it is first defined at line {}, column {}",
                at.line, at.col
            ));
            continue;
        }
        first.insert(text.clone(), k.pos);
        out.push((Key { text, node: k }, v));
    }
    Some(out)
}

fn unknown_key(node: &Node, key: &str, known: &[&str], later: &[&str], probs: &mut Problems) {
    if later.contains(&key) {
        probs
            .at(
                node,
                format!("`{key}` is not supported yet by this version of pipe"),
            )
            .hint =
            Some("remove it: pipe refuses keys it would not act on rather than ignore them".into());
        return;
    }
    let p = probs.at(node, format!("unknown key `{key}`"));
    // What GitLab CI and GitHub Actions call it, where pipe has it under another name.
    let other_tools = [
        ("variables", "env"),
        ("steps", "script"),
        ("run", "script"),
        ("dependencies", "needs"),
        ("container", "image"),
        ("strategy", "matrix"),
        ("timeout-minutes", "timeout"),
        ("continue-on-error", "allow_failure"),
    ];
    let renamed = other_tools
        .iter()
        .find(|(theirs, ours)| *theirs == key && known.contains(ours))
        .map(|(_, ours)| *ours);
    p.hint = Some(
        match renamed.or_else(|| suggest(key, known.iter().chain(later).copied())) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", known.join(", ")),
        },
    );
}

/// The closest candidate, if it is close enough to be what the user meant.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn string(node: &Node, what: &str, probs: &mut Problems) -> Option<String> {
    match &node.kind {
        Kind::Str(s) => Some(s.clone()),
        other => {
            let problem = probs.at(
                node,
                format!("{what} must be a string, found {}", other.describe()),
            );
            // `- true` or `- 8080` is a string to the user but not to YAML.
            if let Some(text) = scalar_text(node) {
                problem.hint = Some(format!("quote it to mean the text: '{text}'"));
            }
            None
        }
    }
}

/// A `concurrency:` group: it names a lock file, so only letters, digits, `.`, `_` and `-`.
fn group_name(node: &Node, probs: &mut Problems) -> Option<String> {
    let name = non_empty_string(node, "`concurrency`", probs)?;
    let fits = name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !fits {
        probs
            .at(node, format!("`concurrency` group `{name}` is not a name"))
            .hint = Some(
            "use letters, digits, `.`, `_` and `-` (not first), up to 100: `production`".into(),
        );
        return None;
    }
    Some(name)
}

/// `labels:`: names an agent of a fleet must offer to claim the job, each as an agent's
/// configuration spells its own (letters, digits, `.`, `_`, `-`), each once.
fn labels_of(node: &Node, probs: &mut Problems) -> Vec<String> {
    let Some(items) = list(node, "`labels`", probs) else {
        return vec![];
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let Some(label) = non_empty_string(item, "a label", probs) else {
            continue;
        };
        let named = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !label.chars().all(named) {
            probs
                .at(item, format!("label `{label}` is not a label"))
                .hint = Some(
                "use letters, digits, `.`, `_` and `-`, as an agent's `labels` do: `gpu`".into(),
            );
        } else if !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

fn non_empty_string(node: &Node, what: &str, probs: &mut Problems) -> Option<String> {
    let s = string(node, what, probs)?;
    if s.trim().is_empty() {
        probs.at(node, format!("{what} cannot be empty"));
        return None;
    }
    Some(s)
}

/// Scalars as environment values: `PORT: 8080` and `DEBUG: true` mean their text.
fn scalar_text(node: &Node) -> Option<String> {
    match &node.kind {
        Kind::Str(s) => Some(s.clone()),
        Kind::Int(_) | Kind::Float(_) if node.written.is_some() => node.written.clone(),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Float(f) => Some(f.to_string()),
        Kind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn boolean(node: &Node, what: &str, probs: &mut Problems) -> Option<bool> {
    match node.kind {
        Kind::Bool(b) => Some(b),
        ref other => {
            probs
                .at(
                    node,
                    format!("{what} must be true or false, found {}", other.describe()),
                )
                .hint = habits::boolean(node);
            None
        }
    }
}

fn list<'a>(node: &'a Node, what: &str, probs: &mut Problems) -> Option<&'a [Node]> {
    match &node.kind {
        Kind::Seq(items) => Some(items),
        other => {
            probs.at(
                node,
                format!("{what} must be a list, found {}", other.describe()),
            );
            None
        }
    }
}

fn stage_list(node: &Node, probs: &mut Problems) -> Option<Vec<String>> {
    let items = list(node, "`stages`", probs)?;
    if items.is_empty() {
        probs.at(node, "`stages` cannot be empty");
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let s = non_empty_string(item, "a stage name", probs)?;
        if out.contains(&s) {
            probs.at(item, format!("stage `{s}` is listed twice"));
            continue;
        }
        out.push(s);
    }
    Some(out)
}

fn stage_of(node: &Node, stages: &[String], probs: &mut Problems) -> Option<String> {
    let s = string(node, "`stage`", probs)?;
    if stages.contains(&s) {
        return Some(s);
    }
    let p = probs.at(node, format!("unknown stage `{s}`"));
    p.hint = Some(match suggest(&s, stages.iter().map(String::as_str)) {
        Some(m) => format!("did you mean `{m}`?"),
        None => format!("the stages are: {}", stages.join(", ")),
    });
    None
}

fn needs_list(node: &Node, job: &str, probs: &mut Problems) -> Option<Vec<Need>> {
    let items = list(node, &format!("`needs` of job `{job}`"), probs)?;
    let mut out: Vec<Need> = Vec::new();
    for item in items {
        let Some(name) = non_empty_string(item, "a `needs` entry", probs) else {
            continue;
        };
        if out.iter().any(|n| n.name == name) {
            probs.at(item, format!("`{name}` is listed twice in `needs`"));
            continue;
        }
        out.push(Need {
            name,
            pos: item.pos,
        });
    }
    Some(out)
}

fn script_lines(node: &Node, job: &str, probs: &mut Problems) -> Option<Vec<String>> {
    let lines: Vec<String> = match &node.kind {
        Kind::Str(s) if has_nul(s, node, "the script", probs) => return None,
        Kind::Str(s) => vec![s.clone()],
        Kind::Seq(items) => {
            let lines: Vec<String> = items
                .iter()
                .filter_map(|i| {
                    string(i, "a script line", probs)
                        .filter(|l| !has_nul(l, i, "a script line", probs))
                })
                .collect();
            // A line of the wrong type is reported already; "empty" would only add noise.
            if lines.len() < items.len() {
                return None;
            }
            lines
        }
        Kind::Null => vec![],
        other => {
            probs.at(
                node,
                format!(
                    "`script` must be a list of commands, found {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    if lines.iter().all(|l| l.trim().is_empty()) {
        probs
            .at(node, format!("job `{job}` has an empty `script`"))
            .hint = Some("list the commands the job runs, e.g. `script: [make test]`".into());
        return None;
    }
    Some(lines)
}

fn env_map(node: &Node, probs: &mut Problems) -> Vec<(String, String)> {
    let Some(entries) = mapping(node, "`env`", probs) else {
        return vec![];
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        if !is_env_name(k.as_str()) {
            probs
                .at(
                    k.node,
                    format!("`{}` is not a valid environment variable name", k.as_str()),
                )
                .hint = Some("use letters, digits and `_`, not starting with a digit".into());
            continue;
        }
        match scalar_text(v) {
            Some(text) => {
                let what = format!("the value of `{}`", k.as_str());
                if !has_nul(&text, v, &what, probs) {
                    out.push((k.text, text));
                }
            }
            None => {
                probs.at(
                    v,
                    format!(
                        "the value of `{}` must be a string, number or boolean, found {}",
                        k.as_str(),
                        v.kind.describe()
                    ),
                );
            }
        }
    }
    out
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Every combination of the matrix values, in the order the variables are written.
fn matrix_of(node: &Node, probs: &mut Problems) -> Vec<Vec<(String, String)>> {
    let mut combos = vec![Vec::new()];
    let Some(entries) = mapping(node, "`matrix`", probs) else {
        return combos;
    };
    if entries.is_empty() {
        probs.at(node, "`matrix` cannot be empty");
    }
    for (k, v) in entries {
        if !is_env_name(k.as_str()) {
            probs.at(
                k.node,
                format!("`{}` is not a valid environment variable name", k.as_str()),
            );
            continue;
        }
        let Some(items) = list(v, &format!("matrix variable `{}`", k.as_str()), probs) else {
            continue;
        };
        if items.is_empty() {
            probs.at(v, format!("matrix variable `{}` has no values", k.as_str()));
            continue;
        }
        let values: Vec<String> = items
            .iter()
            .filter_map(|i| {
                let t = scalar_text(i);
                if t.is_none() {
                    probs.at(
                        i,
                        format!(
                            "matrix values must be strings or numbers, found {}",
                            i.kind.describe()
                        ),
                    );
                }
                t.filter(|t| !has_nul(t, i, "a matrix value", probs))
            })
            .collect();
        if combos.len() * values.len() > MAX_MATRIX {
            probs.at(
                node,
                format!("the matrix expands to more than {MAX_MATRIX} jobs"),
            );
            return vec![Vec::new()];
        }
        combos = combos
            .into_iter()
            .flat_map(|c| {
                let var = &k.text;
                values.iter().map(move |val| {
                    let mut c = c.clone();
                    c.push((var.clone(), val.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

fn duration_of(node: &Node, probs: &mut Problems) -> Option<std::time::Duration> {
    let text = match &node.kind {
        Kind::Str(s) => s.clone(),
        Kind::Int(i) if *i > 0 => i.to_string(),
        Kind::Int(i) => {
            probs
                .at(
                    node,
                    format!("`timeout` must be longer than zero, found {i}"),
                )
                .hint = Some("a number is seconds; or write a duration like `90s` or `10m`".into());
            return None;
        }
        _ => {
            probs.at(
                node,
                format!(
                    "`timeout` must be a duration like `10m` or `1h30m`, found {}",
                    node.kind.describe()
                ),
            );
            return None;
        }
    };
    match duration::parse(&text) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            probs.at(node, "`timeout` must be longer than zero");
            None
        }
        Err(e) => {
            probs.at(node, format!("bad duration `{text}`: {e}")).hint =
                Some("write a duration like `90s`, `10m` or `1h30m`".into());
            None
        }
    }
}

/// Where each entry's value of a mapping stands.
fn value_positions(node: &Node) -> Vec<(String, Pos)> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| match &k.kind {
                Kind::Str(s) => Some((s.clone(), v.pos)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn volumes_of(node: &Node, probs: &mut Problems) -> Vec<Volume> {
    let Some(items) = list(node, "`volumes`", probs) else {
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        let Some(text) = non_empty_string(item, "a volume", probs) else {
            continue;
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [h, c] => (*h, *c, false),
            [h, c, "ro"] => (*h, *c, true),
            [h, c, "rw"] => (*h, *c, false),
            _ => ("", "", false),
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            probs.at(item, format!("bad volume `{text}`")).hint = Some(
                "write `/host/path:/container/path` (absolute paths), optionally followed by `:ro`"
                    .into(),
            );
            continue;
        }
        out.push(Volume {
            host: host.into(),
            container: container.into(),
            read_only,
            pos: item.pos,
        });
    }
    out
}

fn scanners_of(node: &Node, probs: &mut Problems) -> Vec<Scanner> {
    let Some(items) = list(node, "`scan`", probs) else {
        return vec![];
    };
    if items.is_empty() {
        probs.at(node, "`scan` cannot be empty").hint =
            Some("name the scanners: `scan: [secrets, pipeline]`".into());
    }
    let mut out = Vec::new();
    for item in items {
        match string(item, "a scanner", probs).as_deref() {
            Some("secrets") => out.push(Scanner::Secrets),
            Some("pipeline") => out.push(Scanner::Pipeline),
            Some(other) => {
                let p = probs.at(item, format!("unknown scanner `{other}`"));
                p.hint = Some(match suggest(other, SCANNERS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "the scanners are `secrets` and `pipeline`".into(),
                });
            }
            None => {}
        }
    }
    out
}

fn gate_of(node: &Node, probs: &mut Problems) -> Option<Gate> {
    let entries = mapping(node, "`gate`", probs)?;
    let mut gate = Gate::default();
    for (k, v) in entries {
        match k.as_str() {
            "approvals" => match v.kind {
                Kind::Int(n) if (0..=MAX_APPROVALS).contains(&n) => gate.approvals = n as u32,
                _ => {
                    probs.at(
                        v,
                        format!(
                            "`approvals` must be a whole number from 0 to {MAX_APPROVALS}, found {}",
                            v.kind.describe()
                        ),
                    );
                }
            },
            "not_author" => gate.not_author = boolean(v, "`not_author`", probs).unwrap_or(false),
            "branches" | "tags" => {
                let Some(items) = list(v, &format!("`{}`", k.as_str()), probs) else {
                    continue;
                };
                let globs: Vec<String> = items
                    .iter()
                    .filter_map(|i| non_empty_string(i, "a ref pattern", probs))
                    .collect();
                if k.as_str() == "branches" {
                    gate.branches = globs;
                } else {
                    gate.tags = globs;
                }
            }
            "freeze" => {
                let Some(items) = list(v, "`freeze`", probs) else {
                    continue;
                };
                for item in items {
                    let Some(text) = string(item, "a freeze window", probs) else {
                        continue;
                    };
                    match Freeze::parse(&text) {
                        Ok(f) => gate.freeze.push(f),
                        Err(e) => {
                            probs.at(item, format!("bad freeze window `{text}`")).hint = Some(e);
                        }
                    }
                }
            }
            "error_budget" => gate.error_budget = error_budget_of(v, probs),
            "findings" => gate.findings = finding_limits(v, probs),
            other => unknown_key(k.node, other, GATE_KEYS, &[], probs),
        }
    }
    if gate.not_author && gate.approvals == 0 {
        probs
            .at(node, "`not_author` has no effect without `approvals`")
            .hint = Some(
            "add `approvals: 1` (or more): the approvals that must not be the author's".into(),
        );
    }
    Some(gate)
}

fn finding_limits(node: &Node, probs: &mut Problems) -> Vec<(Severity, usize)> {
    let Some(entries) = mapping(node, "`findings`", probs) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(severity) = Severity::ALL.into_iter().find(|s| s.as_str() == k.as_str()) else {
            let known: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
            unknown_key(k.node, k.as_str(), &known, &[], probs);
            continue;
        };
        match v.kind {
            Kind::Int(n) if n >= 0 => out.push((severity, n as usize)),
            _ => {
                probs.at(
                    v,
                    format!(
                        "`{}` is the most {} findings a release allows: a whole number from 0, found {}",
                        k.as_str(),
                        k.as_str(),
                        v.kind.describe()
                    ),
                );
            }
        }
    }
    out
}

fn error_budget_of(node: &Node, probs: &mut Problems) -> Option<ErrorBudget> {
    let entries = mapping(node, "`error_budget`", probs)?;
    let mut text = HashMap::new();
    let mut on_error = OnError::Refuse;
    for (k, v) in entries {
        match k.as_str() {
            "on_error" => match string(v, "`on_error`", probs).as_deref() {
                Some("refuse") => on_error = OnError::Refuse,
                Some("allow") => on_error = OnError::Allow,
                Some(other) => {
                    probs.at(
                        v,
                        format!("`on_error` is `refuse` or `allow`, found `{other}`"),
                    );
                }
                None => {}
            },
            key @ ("prometheus" | "query" | "objective" | "window") => {
                if let Some(s) = string(v, &format!("`{key}`"), probs) {
                    text.insert(key.to_string(), s);
                }
            }
            other => unknown_key(k.node, other, ERROR_BUDGET_KEYS, &[], probs),
        }
    }
    let missing: Vec<&str> = ["prometheus", "query", "objective", "window"]
        .into_iter()
        .filter(|k| !text.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        probs
            .at(node, format!("`error_budget` needs `{}`", missing.join("`, `")))
            .hint = Some("for example: {prometheus: http://127.0.0.1:9090, query: 'sum(rate(errors_total[$window])) / sum(rate(requests_total[$window]))', objective: 99.9%, window: 28d}".into());
        return None;
    }
    match ErrorBudget::new(
        text["prometheus"].clone(),
        text["query"].clone(),
        &text["objective"],
        &text["window"],
        on_error,
    ) {
        Ok(budget) => Some(budget),
        Err(e) => {
            probs.at(node, e);
            None
        }
    }
}

fn retry_of(node: &Node, probs: &mut Problems) -> u32 {
    match node.kind {
        Kind::Int(n) if (0..=MAX_RETRY).contains(&n) => n as u32,
        _ => {
            probs
                .at(
                    node,
                    format!(
                        "`retry` must be a whole number from 0 to {MAX_RETRY}, found {}",
                        node.kind.describe()
                    ),
                )
                .hint = habits::retry(node);
            0
        }
    }
}

/// The `artifacts` entries as written, each checked on its own.
fn artifact_paths<'a>(node: &'a Node, probs: &mut Problems) -> Vec<(String, &'a Node)> {
    let Some(items) = list(node, "`artifacts`", probs) else {
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        let Some(path) = non_empty_string(item, "an artifact path", probs) else {
            continue;
        };
        if let Err(why) = ArtifactPath::parse(&path) {
            probs.at(item, why).hint = Some(ARTIFACT_HINT.into());
            continue;
        }
        out.push((path, item));
    }
    out
}

/// The `inputs` globs, each checked on its own: relative to the project, never leading out.
fn input_globs(node: &Node, probs: &mut Problems) -> Vec<Glob> {
    let Some(items) = list(node, "`inputs`", probs) else {
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        let Some(text) = non_empty_string(item, "an input glob", probs) else {
            continue;
        };
        let outward = text.starts_with('/') || text.split('/').any(|part| part == "..");
        match Glob::new(&text) {
            _ if outward => {
                probs
                    .at(item, format!("input `{text}` leads out of the project"))
                    .hint = Some("use a glob relative to the project, without `..`".into());
            }
            Ok(glob) => out.push(glob),
            Err(why) => {
                probs.at(item, format!("input `{text}` is not a glob: {why}"));
            }
        }
    }
    out
}

const ARTIFACT_HINT: &str =
    "use a path relative to the project, without `..`; `*` and `**` select several files";

/// One job's (or matrix expansion's) artifacts (or reports: `what`) with `$VAR` expanded: a
/// value may still lead the path out of the workspace, which is reported where the path is
/// written.
fn artifact_paths_for(
    written: &[(String, &Node)],
    env: &[(String, String)],
    values: &[(String, String)],
    what: &str,
    probs: &mut Problems,
) -> Vec<ArtifactPath> {
    let mut out = Vec::new();
    for (path, node) in written {
        let full = expand(path, env);
        match ArtifactPath::parse(&full) {
            Ok(artifact) => out.push(artifact),
            Err(why) => {
                let why = why.replacen("artifact path", what, 1);
                let with: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let message = if with.is_empty() {
                    why
                } else {
                    format!("with {}: {why}", with.join(", "))
                };
                probs.at(node, message).hint = Some(ARTIFACT_HINT.into());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_expand_job_variables() {
        let env = vec![
            ("SHARD".to_string(), "3".to_string()),
            ("OS".to_string(), "linux".to_string()),
        ];
        assert_eq!(expand("sum-$SHARD", &env), "sum-3");
        assert_eq!(
            expand("out/${OS}_bin/$MISSING", &env),
            "out/linux_bin/$MISSING"
        );
        assert_eq!(expand("price$", &env), "price$");
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(suggest("scrpt", JOB_KEYS.iter().copied()), Some("script"));
        assert_eq!(suggest("zzzzzz", JOB_KEYS.iter().copied()), None);
    }
}
