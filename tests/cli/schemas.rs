//! The JSON Schemas under docs/schemas/: every `--output json` of real runs validates against
//! its published schema, and the pipeline format's schema is the one pipe generates from its
//! checker and accepts every pipeline the checker accepts.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{KillOnDrop, Project};

const FAKE_AWS_KEY: &str = "AKIAZ7Q2WXPLMN4RT6YB";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = repo().join("docs/schemas").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name} is no valid JSON Schema: {e}"))
}

/// Every document in `docs` fits `schema`; says which does not, and why.
pub fn assert_fit(schema: &str, docs: &[Value]) {
    assert!(!docs.is_empty(), "no {schema} documents to check");
    let validator = validator(schema);
    for doc in docs {
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{schema}: {doc}\n{}", errors.join("\n"));
    }
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn kinds(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_json_output_of_real_runs_fits_its_published_schema() {
    let project = Project::new(
        "jobs:
  build: {script: [echo built > app.txt], artifacts: [app.txt]}
  flaky: {retry: 1, script: [echo trying, exit 3]}
  shaky: {allow_failure: true, script: [exit 1]}
  after: {stage: test, needs: [flaky], script: [echo never]}
  secrets: {stage: security-scan, scan: [secrets], fail_on: critical}
",
    );
    project.write(
        "config/.env",
        &format!("AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"),
    );
    let failed = project.pipe(&["run", "--backend", "local", "--output", "json"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    let events = lines(&failed.stdout);
    let seen = kinds(&events);
    for kind in [
        "run_started",
        "job_started",
        "job_output",
        "job_retrying",
        "job_finished",
        "job_skipped",
        "run_finished",
    ] {
        assert!(seen.contains(kind), "no {kind} in {seen:?}");
    }
    // `privilege_granted` needs Docker: scan::a_privilege_granted_is_an_event_… checks it.
    assert_fit("events.v2.json", &events);

    // A run that stops at the release gate, and one stopped by Ctrl-C.
    project.write(
        "pipe.yml",
        "jobs:
  build: {script: [echo built]}
  ship: {stage: release, environment: production, script: [echo shipped]}
",
    );
    let gated = project.pipe(&["run", "--backend", "local", "--output", "json"]);
    assert_eq!(gated.code, 0, "{}", gated.all());
    let gated = lines(&gated.stdout);
    assert!(kinds(&gated).contains("awaiting_release"), "{gated:?}");
    assert_fit("events.v2.json", &gated);
    let stopped = interrupted_run(&project);
    assert!(kinds(&stopped).contains("stopping"), "{stopped:?}");
    assert_fit("events.v2.json", &stopped);

    let runs = project.pipe(&["runs", "--output", "json"]);
    let runs = lines(&runs.stdout);
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_fit("runs.v2.json", &runs);
    let shown: Vec<Value> = ["1", "2", "3"]
        .iter()
        .map(|run| {
            serde_json::from_str(&project.pipe(&["show", run, "--output", "json"]).stdout).unwrap()
        })
        .collect();
    assert_fit("show.v2.json", &shown);
    let list = project.pipe(&["list", "--output", "json"]);
    assert_fit("list.v2.json", &lines(&list.stdout));
    let scan = project.pipe(&["scan", "--output", "json"]);
    assert_fit("scan.v1.json", &lines(&scan.stdout));

    // One name and one type per concept, across the stream and the store.
    let started = &events[0];
    assert_eq!(started["run_id"], 1);
    assert_eq!(runs[2]["run_id"], 1);
    assert_eq!(shown[0]["run_id"], 1);
    assert_eq!(started["jobs"][0]["job"], "build");
    assert_eq!(shown[0]["jobs"][0]["job"], "build");
    assert!(shown[0]["jobs"][0]["duration_s"].is_f64(), "{}", shown[0]);
    assert!(runs[2]["duration_s"].is_f64(), "{}", runs[2]);
}

/// Events of a run interrupted (SIGINT) once its job has started.
fn interrupted_run(project: &Project) -> Vec<Value> {
    project.write(
        "pipe.yml",
        "jobs:\n  long: {script: [echo waiting, sleep 300]}\n",
    );
    let mut child = project
        .command(&["run", "--backend", "local", "--output", "json"])
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id() as i32);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        let waiting = line.contains("\"line\":\"waiting\"");
        events.push(serde_json::from_str(&line).unwrap());
        line.clear();
        if waiting {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            )
            .unwrap();
        }
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    events
}

fn pipeline_schema_text() -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(&pipe::pipeline::json_schema()).unwrap()
    )
}

/// `PIPE_WRITE_SCHEMA=1 cargo test --release --test cli -- schemas::` rewrites the file after a
/// change to the checker's keys.
#[test]
fn the_pipeline_schema_is_the_one_generated_from_the_checker() {
    let path = repo().join("docs/schemas/pipeline.json");
    let generated = pipeline_schema_text();
    if std::env::var_os("PIPE_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/schemas/pipeline.json differs from what the checker's tables give: \
         regenerate it with PIPE_WRITE_SCHEMA=1 cargo test --release --test cli -- schemas::"
    );
}

#[test]
fn the_pipeline_schema_accepts_every_pipeline_the_checker_accepts() {
    let validator = validator("pipeline.json");
    let mut checked = 0;
    for (origin, text) in pipelines() {
        if pipe::pipeline::parse(&text, "p").is_err() {
            continue;
        }
        let doc: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{origin}: the checker read it, YAML did not: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{origin}:\n{text}\n{}",
            errors.join("\n")
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} pipelines found to check");
}

#[test]
fn the_pipeline_schema_refuses_what_an_editor_can_tell_is_wrong() {
    let validator = validator("pipeline.json");
    for wrong in [
        "jobs: {a: {script: [x], retyr: 2}}",
        "jobs: {a: {script: [x], retry: {max: 2}}}",
        "jobs: {a: {script: [x], allow_failure: 'true'}}",
        "jobs: {a: {scan: [sekrets]}}",
        "jobs: {a: {script: [x], fail_on: severe}}",
        "jobs: {a: {script: [x], env: {1X: y}}}",
        "jobs: {a: {script: [x], gate: {approvers: 2}}}",
        "jobs: {a: {script: [x], volumes: [relative:/x]}}",
        "stages: []\njobs: {a: {script: [x]}}",
        "name: p",
        "jobs: {a: {script: [x]}}\nnope: 1",
    ] {
        let doc: Value = serde_saphyr::from_str(wrong).unwrap();
        assert!(!validator.is_valid(&doc), "the schema accepts {wrong:?}");
        assert!(
            pipe::pipeline::parse(wrong, "p").is_err(),
            "the checker accepts {wrong:?}"
        );
    }
}

/// The pipelines of the repository: examples, pipe's own, the YAML blocks of the docs, and the
/// pipelines written in the tests (string literals holding `jobs:`).
fn pipelines() -> Vec<(String, String)> {
    let root = repo();
    let mut out = Vec::new();
    for dir in ["examples", "pipelines"] {
        for path in files(&root.join(dir)) {
            if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                out.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    let mut docs = vec![root.join("README.md")];
    docs.extend(files(&root.join("docs")));
    for path in docs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, block) in text.split("```yaml\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap_or_default();
            out.push((
                format!("{} yaml block {}", path.display(), i + 1),
                block.into(),
            ));
        }
    }
    for path in files(&root.join("tests")) {
        if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            for (i, literal) in string_literals(&source).into_iter().enumerate() {
                if literal.contains("jobs:") {
                    out.push((format!("{} literal {i}", path.display()), literal));
                }
            }
        }
    }
    out
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The string literals of Rust source, unescaped: `"…"` and `r#"…"#`. `format!` templates keep
/// their `{{`, which the checker then refuses, so they are left out by the caller's parse.
fn string_literals(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            // A char literal, not a lifetime: `'"'`, `'\''`.
            '\'' if chars.get(i + 2) == Some(&'\'') => i += 3,
            '\'' if chars.get(i + 1) == Some(&'\\') => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            'r' if matches!(chars.get(i + 1), Some('#' | '"'))
                && !chars
                    .get(i.wrapping_sub(1))
                    .is_some_and(|c| c.is_alphanumeric()) =>
            {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                let open = i + 1 + hashes;
                if chars.get(open) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                let rest: String = chars[open + 1..].iter().collect();
                let end = rest.find(&close).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                i = open + 1 + rest[..end].chars().count() + close.chars().count();
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                        match chars.get(i) {
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some('\n') => {
                                while chars.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                                    i += 1;
                                }
                            }
                            Some(c) => text.push(*c),
                            None => {}
                        }
                    } else {
                        text.push(chars[i]);
                    }
                    i += 1;
                }
                out.push(text);
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}
