//! `default:` and `extends:`: jobs built on shared settings, and mistakes in them reported
//! where they are written.

use crate::harness::Project;

const SHARED: &str = r#"default:
  env: {GREETING: hello, WHO: world}
  timeout: 5m
.shell:
  script: ['echo "$GREETING $WHO from $PIPE_JOB"']
  env: {WHO: template}
.quiet:
  extends: .shell
  env: {GREETING: hi}
jobs:
  a: {extends: .shell}
  b: {extends: .quiet, stage: test}
  c: {extends: [a, .quiet], env: {WHO: c}, stage: test}
  d: {stage: test, script: ['echo "$GREETING $WHO from $PIPE_JOB"']}
"#;

#[test]
fn jobs_inherit_defaults_and_what_they_extend_and_templates_are_not_jobs() {
    let project = Project::new(SHARED);
    let list = project.pipe(&["list"]);
    assert_eq!(list.code, 0, "{}", list.all());
    let jobs: Vec<&str> = list
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(jobs, ["a", "b", "c", "d"], "{}", list.stdout);

    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    // Env is merged key by key: default, then each base in order, then the job's own.
    for line in [
        "[a] hello template from a",
        "[b] hi template from b",
        "[c] hi c from c",
        "[d] hello world from d",
    ] {
        assert!(ran.stdout.contains(line), "{line}:\n{}", ran.stdout);
    }
}

#[test]
fn a_job_keeps_its_own_image_over_the_default_and_scan_jobs_take_none() {
    let project = Project::new(
        "default: {image: 'alpine:3'}\njobs:\n  a: {script: [echo]}\n  b: {image: 'busybox:1', script: [echo]}\n  secrets: {stage: test, scan: [secrets]}\n",
    );
    let ran = project.pipe(&["list", "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let images: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["image"].clone())
        .collect();
    assert_eq!(
        images,
        [
            serde_json::json!("alpine:3"),
            serde_json::json!("busybox:1"),
            serde_json::Value::Null
        ],
        "{}",
        ran.stdout
    );
}

#[test]
fn mistakes_in_default_and_extends_point_where_they_are_written() {
    let ran = Project::new(
        "default:
  image: alpine
  stage: test
  retyr: 2
.rust:
  retry: lots
  script: [cargo test]
jobs:
  a: {extends: .rsut}
  b: {extends: .rust}
  c: {extends: d}
  d: {extends: e}
  e: {extends: c}
  f: {extends: f}
  g: {extends: 3}
  h:
    extneds: .rust
    script: [x]
",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    insta::assert_snapshot!(ran.stderr);
}
