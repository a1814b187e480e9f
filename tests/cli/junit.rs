//! `--junit FILE`: the results as JUnit XML, valid against the Ant schema CI servers read
//! (tests/data/junit.xsd, Apache-2.0, licence beside it).

use std::path::Path;
use std::process::Command;

use crate::harness::Project;

/// Validates `file` with xmllint. Outside CI a machine without it skips the check, saying so;
/// under CI=true (where .ci/run installs it) its absence fails the test.
fn assert_valid_junit(file: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit.xsd");
    let ran = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(file)
        .output();
    match ran {
        Ok(out) => assert!(
            out.status.success(),
            "{} is not valid JUnit: {}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(file).unwrap_or_default()
        ),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "xmllint (Debian: libxml2-utils) is needed under CI: {e}"
            );
            eprintln!("xmllint missing ({e}): the JUnit report is not validated");
        }
    }
}

#[test]
fn a_testcase_per_job_with_failures_skips_and_a_valid_document() {
    let project = Project::new(
        "jobs:
  compile: {stage: build, script: [echo built]}
  unit: {stage: test, needs: [compile], script: ['echo \"<expected> & got\"', exit 3]}
  deploy: {stage: deploy, needs: [unit], script: [echo never]}
",
    );
    let ran = project.pipe(&["run", "--backend", "local", "--junit", "results/junit.xml"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert_eq!(
        ran.stderr, "pipe: --junit results/junit.xml: its folder does not exist\n",
        "refused before anything runs"
    );

    std::fs::create_dir(project.path().join("results")).unwrap();
    let ran = project.pipe(&["run", "--backend", "local", "--junit", "results/junit.xml"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    let file = project.path().join("results/junit.xml");
    let xml = std::fs::read_to_string(&file).unwrap();
    assert_valid_junit(&file);
    assert!(
        xml.contains(r#"<testcase classname="build" name="compile" time=""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<failure type="failed" message="failed (exit code 3)">"#),
        "{xml}"
    );
    assert!(
        xml.contains("&lt;expected&gt; &amp; got"),
        "the log's tail: {xml}"
    );
    assert!(
        xml.contains(r#"<skipped message="needs `unit`, which failed"/>"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"tests="3" failures="1" errors="0" skipped="1""#),
        "{xml}"
    );

    // A retry of what failed reports what it ran.
    let retried = project.pipe(&["retry", "last", "--failed", "--junit", "retry.xml"]);
    assert_eq!(retried.code, 1, "{}", retried.all());
    let file = project.path().join("retry.xml");
    assert_valid_junit(&file);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(
        xml.contains(r#"name="unit""#) && !xml.contains(r#"name="compile""#),
        "{xml}"
    );
}
