//! What a failed run shows after its summary: the last lines of each failed job's log and the
//! command that prints the rest, for `pipe run` and for `pipe retry`.

use crate::harness::Project;

const PIPELINE: &str = "jobs:
  unit:
    script: ['i=1; while [ $i -le 14 ]; do echo out-$i; i=$((i+1)); done', echo boom, exit 101]
  fine: {script: [echo fine-output]}
  lint: {allow_failure: true, script: [echo lint-output, exit 1]}
";

/// The lines of `stdout` from the failure's heading up to the summary table.
fn failure_block<'a>(stdout: &'a str, heading: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == heading)
        .unwrap_or_else(|| panic!("no line {heading:?} in:\n{stdout}"));
    lines[at + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .copied()
        .collect()
}

#[test]
fn a_failed_job_shows_the_tail_of_its_log_and_how_to_read_the_rest() {
    let project = Project::new(PIPELINE);
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    let block = failure_block(
        &ran.stdout,
        "--- unit failed (exit code 101); the whole log: pipe logs 1 unit",
    );
    // The last 10 lines, each script line as echoed before it ran included.
    let mut tail: Vec<String> = (8..=14).map(|i| format!("    out-{i}")).collect();
    tail.extend(["    $ echo boom", "    boom", "    $ exit 101"].map(String::from));
    assert_eq!(block, tail, "{}", ran.stdout);
    // Jobs that passed or were allowed to fail show no excerpt.
    assert!(!ran.stdout.contains("    fine-output"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("    lint-output"), "{}", ran.stdout);
    // The command it names prints the whole log.
    let logs = project.pipe(&["logs", "1", "unit"]);
    assert!(logs.stdout.contains("out-1\n"), "{}", logs.all());

    // A retry in the same run names that run; a retry as a new run names the new one.
    let again = project.pipe(&["retry", "1", "--failed"]);
    assert_eq!(again.code, 1, "{}", again.all());
    failure_block(
        &again.stdout,
        "--- unit failed (exit code 101); the whole log: pipe logs 1 unit",
    );
    let new = project.pipe(&["retry", "1"]);
    failure_block(
        &new.stdout,
        "--- unit failed (exit code 101); the whole log: pipe logs 2 unit",
    );
}
