//! The pipeline format as a JSON Schema, for editors (yaml-language-server's
//! `# yaml-language-server: $schema=` line): built from the checker's own key tables and limits,
//! so a key the checker learns is a key the schema offers. docs/schemas/pipeline.json is this
//! function's output, kept equal to it by a test. The checker stays the judge: the schema
//! catches what an editor can (unknown keys, wrong types), not what needs the whole file
//! (unknown stages or needs, cycles).

use serde_json::{json, Map, Value};

use super::check::services;
use super::check::steps::STEP_NAME_PATTERN;
use super::check::{
    ERROR_BUDGET_KEYS, GATE_KEYS, JOB_KEYS, MAX_APPROVALS, MAX_JOB_NAME, MAX_RETRY, SCANNERS,
    TOP_KEYS,
};
use super::extends::DEFAULT_KEYS;
use crate::severity::Severity;

pub fn json_schema() -> Value {
    json!({
        // Draft 7: what editors' YAML language servers read everywhere.
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "pipe pipeline",
        "description": "A pipe pipeline file (pipe.yml). Generated from pipe's checker; `pipe validate` says more.",
        "type": "object",
        "properties": top_keys(),
        // Extension fields hold YAML anchors (`x-…` as in Docker Compose, `.hidden` as in
        // GitLab CI), as the checker allows.
        "patternProperties": { "^(x-|\\.)": true },
        "additionalProperties": false,
        "required": ["jobs"],
        "definitions": {
            "job": {
                "type": "object",
                "properties": keys(JOB_KEYS),
                "additionalProperties": false,
            },
            "env": env(),
        },
    })
}

/// The top-level keys: there `secrets` says how values are got, not which a job receives.
fn top_keys() -> Value {
    let mut top = keys(TOP_KEYS);
    top["secrets"] = with_description(
        json!({
            "type": "object",
            "propertyNames": { "$ref": "#/definitions/env/propertyNames" },
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "command": with_description(
                        json!({ "type": "string", "minLength": 1 }),
                        "A shell command that prints the secret's value, run once per run on the machine pipe runs on.",
                    ),
                    "timeout": with_description(
                        json!({ "anyOf": [{ "type": "integer", "minimum": 1 }, { "type": "string", "minLength": 1 }] }),
                        "How long the command may take before it is stopped and the run refused [default: 30s].",
                    ),
                },
                "required": ["command"],
                "additionalProperties": false,
            },
        }),
        "Commands that print secrets' values, by name (used when the caller supplies none).",
    );
    top
}

fn keys(table: &[&str]) -> Value {
    Value::Object(
        table
            .iter()
            .map(|k| (k.to_string(), shape(k)))
            .collect::<Map<_, _>>(),
    )
}

/// What each key of the tables holds, as the checker's conversion of it accepts. A key the
/// tables gain without an entry here is offered to editors with any value.
fn shape(key: &str) -> Value {
    let string = json!({ "type": "string", "minLength": 1 });
    let strings = json!({ "type": "array", "items": string });
    let (described, doc) = match key {
        "name" => (json!({ "type": "string" }), "The pipeline's name [default: the file's folder]."),
        "stages" => (
            json!({ "type": "array", "items": string, "minItems": 1, "uniqueItems": true }),
            "The stages, in order; jobs of the `release` stage and later wait for the release gate.",
        ),
        "image" => (string, "The container image jobs run in (the Docker backend)."),
        "env" => (json!({ "$ref": "#/definitions/env" }), "Environment variables."),
        "jobs" => (
            json!({
                "type": "object",
                "propertyNames": { "minLength": 1, "maxLength": MAX_JOB_NAME },
                "additionalProperties": { "$ref": "#/definitions/job" },
            }),
            "The jobs, by name.",
        ),
        "stage" => (json!({ "type": "string" }), "The job's stage [default: the first]."),
        "needs" => (
            json!({ "type": "array", "items": string, "uniqueItems": true }),
            "Jobs that must finish first; the job starts as soon as they have.",
        ),
        "script" => (
            json!({ "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }] }),
            "The commands the job runs, in one shell.",
        ),
        "matrix" => (
            json!({
                "type": "object",
                "minProperties": 1,
                "propertyNames": { "$ref": "#/definitions/env/propertyNames" },
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "items": { "type": ["string", "number", "boolean"] },
                },
            }),
            "One job per combination of the values, each variable set in its environment.",
        ),
        "timeout" => (
            json!({ "anyOf": [{ "type": "integer", "minimum": 1 }, { "type": "string", "minLength": 1 }] }),
            "How long the job may run: seconds, or a duration like `90s`, `10m`, `1h30m`.",
        ),
        "retry" => (
            json!({ "type": "integer", "minimum": 0, "maximum": MAX_RETRY }),
            "How many times a failed job is run again.",
        ),
        "allow_failure" => (json!({ "type": "boolean" }), "A failure of this job does not fail the run."),
        "artifacts" => (
            strings,
            "Files kept after the job (relative paths, `*` and `**` allowed), given to the jobs that need it.",
        ),
        "reports" => (
            json!({
                "type": "object",
                "properties": {
                    "sarif": with_description(
                        strings.clone(),
                        "SARIF 2.1.0 files the job writes (relative paths, `*` and `**` allowed): validated, kept with the run and counted with the scan findings.",
                    ),
                },
                "additionalProperties": false,
            }),
            "Reports the job's tools write, read by pipe when the job passes.",
        ),
        "environment" => (string, "The environment the job deploys to."),
        "concurrency" => (
            json!({ "type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$" }),
            "A group: of the project's jobs in it, one runs at a time; a later run's waits.",
        ),
        "labels" => (
            json!({ "type": "array", "items": { "type": "string", "pattern": "^[A-Za-z0-9._-]+$" } }),
            "Labels an agent of a fleet must offer to claim this job (`gpu`, `arm64`); `pipe run` on one machine ignores them.",
        ),
        "gate" => (
            json!({
                "type": "object",
                "properties": gate_keys(),
                "additionalProperties": false,
            }),
            "What the release gate requires before this release job runs.",
        ),
        "privileged" => (
            json!({ "type": "boolean" }),
            "Run the container privileged (refused without `--allow-privileged`).",
        ),
        "volumes" => (
            json!({
                "type": "array",
                "items": { "type": "string", "pattern": "^/[^:]*:/[^:]*(:(ro|rw))?$" },
            }),
            "Host paths mounted in the container, `/host:/container[:ro]` (refused without `--allow-privileged`).",
        ),
        "network" => (
            json!({ "type": "boolean" }),
            "`false`: the job's container gets no network at all, and starts faster [default: true].",
        ),
        "scan" => (
            json!({ "type": "array", "minItems": 1, "items": { "enum": SCANNERS } }),
            "pipe's built-in scanners this job runs instead of a script.",
        ),
        "fail_on" => (
            json!({ "enum": Severity::ALL.map(Severity::as_str) }),
            "A scan job fails at findings of this severity or above [default: high].",
        ),
        "default" => (
            json!({
                "type": "object",
                "properties": keys(DEFAULT_KEYS),
                "additionalProperties": false,
            }),
            "Settings every job inherits unless it sets its own.",
        ),
        "extends" => (
            json!({ "anyOf": [string.clone(), { "type": "array", "minItems": 1, "items": string }] }),
            "Jobs or hidden `.templates` this job is built on, in order.",
        ),
        "only" => (
            json!({
                "type": "object",
                "minProperties": 1,
                "properties": {
                    "branches": with_description(strings.clone(), "Branch globs the run's branch must match."),
                    "changes": with_description(strings.clone(), "Globs over the files the run changed; one must match."),
                },
                "additionalProperties": false,
            }),
            "Run the job only on these branches or when these files changed; otherwise it is left out.",
        ),
        "secrets" => (
            json!({
                "type": "array",
                "uniqueItems": true,
                "items": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            }),
            "Secrets this job receives as environment variables; no other job sees them.",
        ),
        "cache" => (
            json!({
                "type": "object",
                "properties": {
                    "key": with_description(string.clone(), "The cache's key: text with `{{ hash \"FILE\" }}`, `{{ env \"NAME\" }}`, `{{ matrix \"NAME\" }}`."),
                    "fallback_keys": with_description(
                        json!({ "anyOf": [string.clone(), strings.clone()] }),
                        "Key prefixes tried in order when no cache has the key: the newest match is restored.",
                    ),
                    "paths": with_description(
                        json!({ "anyOf": [string.clone(), { "type": "array", "minItems": 1, "items": string }] }),
                        "Workspace paths (`*` and `**` allowed) restored before the script and saved after it passes.",
                    ),
                },
                "required": ["key", "paths"],
                "additionalProperties": false,
            }),
            "Paths kept between runs under a key (see docs/caching.md).",
        ),
        "inputs" => (
            strings,
            "Globs of the project's files the job reads: only they count for its reuse key [default: every file].",
        ),
        "reuse" => (
            json!({ "type": "boolean" }),
            "Skip the job when an earlier passing run had the same inputs, restoring its artifacts and log [default: true].",
        ),
        "services" => (
            json!({
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": with_description(json!({ "type": "string", "pattern": services::NAME_PATTERN }), "The host name the job reaches the service by."),
                        "image": with_description(string.clone(), "The service's image."),
                        "env": with_description(json!({ "$ref": "#/definitions/env" }), "The service's environment variables."),
                        "command": with_description(
                            json!({ "anyOf": [string.clone(), { "type": "array", "minItems": 1, "items": { "type": ["string", "integer"] } }] }),
                            "Replaces the image's command: a list as it is, a string run by `sh -c`.",
                        ),
                        "ready": with_description(
                            json!({
                                "type": "object",
                                "properties": {
                                    "command": with_description(string.clone(), "Run by `sh -c` in the service's container until it exits 0."),
                                    "tcp": with_description(json!({ "type": "integer", "minimum": 1, "maximum": 65535 }), "A port the service accepts connections on."),
                                },
                                "minProperties": 1,
                                "maxProperties": 1,
                                "additionalProperties": false,
                            }),
                            "How pipe tells the service is ready [default: once its container runs].",
                        ),
                        "timeout": with_description(
                            json!({ "anyOf": [{ "type": "integer", "minimum": 1 }, { "type": "string", "minLength": 1 }] }),
                            "How long the service may take to become ready [default: 60s].",
                        ),
                    },
                    "required": ["name", "image"],
                    "additionalProperties": false,
                },
            }),
            "Containers started beside the job on a network private to it, reached by name (see docs/services.md).",
        ),
        "build_image" => (
            json!({
                "type": "object",
                "properties": {
                    "context": { "type": "string", "minLength": 1 },
                    "dockerfile": { "type": "string", "minLength": 1 },
                    "args": { "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } },
                    "target": { "type": "string", "minLength": 1 },
                    "tags": { "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 } },
                },
                "required": ["tags"],
                "additionalProperties": false,
            }),
            "pipe builds an image from the job's workspace through the engine (see docs/images.md); tags may use `$PIPE_VERSION`.",
        ),
        "push" => (
            json!({
                "type": "object",
                "properties": {
                    "image": { "type": "string", "minLength": 1 },
                    "to": { "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 } },
                    "username": { "type": "string", "minLength": 1 },
                    "password": { "type": "string", "minLength": 1 },
                },
                "required": ["image", "to"],
                "additionalProperties": false,
            }),
            "Pushes the image a `build_image` job built in this run, by its id, to registry tags; `password` names a secret of the job (see docs/images.md).",
        ),
        "steps" => (
            steps(),
            "A progressive release: each `pipe release` runs the next step (`10%`, or `{name, percent, gate, verify}`), exported as PIPE_RELEASE_STEP and PIPE_RELEASE_PERCENT.",
        ),
        "rollback" => (
            json!({ "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }] }),
            "The commands `pipe release RUN --rollback` runs for each step taken, newest first.",
        ),
        "drift" => (
            json!({ "enum": ["report", "fail"] }),
            "`fail`: the job fails when it wrote into system paths (/usr, /etc, …) [default: report].",
        ),
        _ => (json!({}), "See docs/pipeline-format.md."),
    };
    with_description(described, doc)
}

fn gate_keys() -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string", "minLength": 1 } });
    Value::Object(
        GATE_KEYS
            .iter()
            .map(|k| {
                let (shape, doc) = match *k {
                    "approvals" => (
                        json!({ "type": "integer", "minimum": 0, "maximum": MAX_APPROVALS }),
                        "How many people must approve (`pipe approve`).",
                    ),
                    "not_author" => (
                        json!({ "type": "boolean" }),
                        "Approvals must come from people other than the run's author.",
                    ),
                    "branches" => (strings.clone(), "Branch patterns a release may come from."),
                    "tags" => (strings.clone(), "Tag patterns a released commit must carry."),
                    "freeze" => (
                        json!({ "type": "array", "items": { "type": "string" } }),
                        "Windows in which nothing is released: `Fri 16:00 - Mon 08:00 UTC`, or `2026-12-20 00:00 - 2027-01-04 00:00 UTC`.",
                    ),
                    "findings" => (
                        json!({
                            "type": "object",
                            "properties": Severity::ALL
                                .iter()
                                .map(|s| (s.as_str().to_string(), json!({ "type": "integer", "minimum": 0 })))
                                .collect::<Map<_, _>>(),
                            "additionalProperties": false,
                        }),
                        "The most findings of each severity the run's scans may have: `{critical: 0, high: 0}`.",
                    ),
                    "error_budget" => (
                        error_budget(),
                        "Release only while a service's error budget, as Prometheus counts it, holds.",
                    ),
                    _ => (json!({}), "See docs/releases.md."),
                };
                (k.to_string(), with_description(shape, doc))
            })
            .collect::<Map<_, _>>(),
    )
}

fn error_budget() -> Value {
    let string = json!({ "type": "string", "minLength": 1 });
    let described = |key: &str| {
        match key {
        "prometheus" => (string.clone(), "The Prometheus server: `http://host:port`."),
        "query" => (
            string.clone(),
            "PromQL for the share of events that failed over the window (0.001 is 0.1%); `$window` stands for the window.",
        ),
        "objective" => (
            json!({ "type": "string", "pattern": "^[0-9.]+%$" }),
            "The share of events that must succeed, like `99.9%`.",
        ),
        "window" => (string.clone(), "The period the objective is over, like `28d`."),
        "on_error" => (
            json!({ "enum": ["refuse", "allow"] }),
            "When Prometheus cannot be asked: refuse the release (the default) or allow it.",
        ),
        _ => (json!({}), "See docs/releases.md."),
    }
    };
    json!({
        "type": "object",
        "properties": ERROR_BUDGET_KEYS
            .iter()
            .map(|k| {
                let (shape, doc) = described(k);
                (k.to_string(), with_description(shape, doc))
            })
            .collect::<Map<_, _>>(),
        "required": ["prometheus", "query", "objective", "window"],
        "additionalProperties": false,
    })
}

fn steps() -> Value {
    let percent = json!({ "anyOf": [
        { "type": "integer", "minimum": 1, "maximum": 100 },
        { "type": "string", "pattern": "^[0-9]{1,3}%$" },
    ] });
    let string = json!({ "type": "string", "minLength": 1 });
    let verify = json!({
        "type": "object",
        "properties": {
            "prometheus": with_description(string.clone(), "The Prometheus server: `http://host:port`."),
            "query": with_description(string.clone(), "PromQL whose value must stay below `below`, like an error ratio."),
            "below": with_description(json!({ "type": "number" }), "The step fails its verification at this value or above."),
            "after": with_description(json!({ "type": ["string", "integer"] }), "The bake time: how long to wait after the step before asking [default: 0s]."),
        },
        "required": ["prometheus", "query", "below"],
        "additionalProperties": false,
    });
    json!({
        "type": "array",
        "minItems": 1,
        "items": { "anyOf": [
            percent.clone(),
            {
                "type": "object",
                "properties": {
                    "name": with_description(json!({ "type": "string", "pattern": STEP_NAME_PATTERN }), "What PIPE_RELEASE_STEP says for the step [default: its number]."),
                    "percent": percent,
                    "gate": with_description(json!({
                        "type": "object",
                        "properties": gate_keys(),
                        "additionalProperties": false,
                    }), "Conditions of this step's own, judged before it runs."),
                    "verify": with_description(verify, "A Prometheus check after the step; failing it stops the release at this step."),
                },
                "required": ["percent"],
                "additionalProperties": false,
            },
        ] },
    })
}

fn env() -> Value {
    json!({
        "type": "object",
        "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
        "additionalProperties": { "type": ["string", "number", "boolean"] },
    })
}

fn with_description(mut shape: Value, doc: &str) -> Value {
    if let Value::Object(map) = &mut shape {
        map.insert("description".into(), doc.into());
    }
    shape
}
