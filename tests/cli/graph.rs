//! `pipe graph` and `pipe list`: the plan as the user reads it.

use crate::harness::Project;

const PIPELINE: &str = "image: x
jobs:
  compile: {stage: build, script: [make]}
  unit: {stage: test, needs: [compile], script: [make test]}
  lint: {stage: test, script: [make lint]}
  deploy: {stage: deploy, needs: [unit], script: [make deploy]}
";

#[test]
fn text_graph_marks_the_critical_path_and_why_each_edge_exists() {
    let ran = Project::new(PIPELINE).pipe(&["graph"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    insta::assert_snapshot!(ran.stdout);
}

#[test]
fn dot_and_mermaid_formats() {
    let project = Project::new(PIPELINE);
    let dot = project.pipe(&["graph", "--format", "dot"]).stdout;
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("\"compile\" -> \"unit\" [label=\"needs\", penwidth=2, color=red]"),
        "{dot}"
    );
    assert!(
        dot.contains("\"compile\" -> \"lint\" [label=\"stage order\", style=dashed]"),
        "{dot}"
    );
    let mermaid = project.pipe(&["graph", "--format", "mermaid"]).stdout;
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(mermaid.contains("j0 -->|needs| j1"), "{mermaid}");
    assert!(mermaid.contains("class j0,j1,j3 critical"), "{mermaid}");
    let odd = Project::new("jobs:\n  'a<b> & \"c\"': {script: [x]}\n");
    let label = odd.pipe(&["graph", "--format", "mermaid"]).stdout;
    assert!(
        label.contains("j0[\"a#lt;b#gt; #amp; #quot;c#quot;<br/>build\"]"),
        "markup in a name is escaped: {label}"
    );
}

#[test]
fn list_and_dry_run_show_jobs_with_stage_and_needs() {
    let project = Project::new(PIPELINE);
    let list = project.pipe(&["list"]);
    insta::assert_snapshot!(list.stdout);
    let dry = project.pipe(&["run", "--dry-run", "--job", "deploy"]);
    assert_eq!(dry.code, 0);
    assert!(
        dry.stdout.contains("deploy")
            && dry.stdout.contains("unit")
            && !dry.stdout.contains("lint"),
        "{}",
        dry.stdout
    );
    let json = project.pipe(&["list", "--output", "json"]);
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["schema"], 2);
    assert_eq!(first["job"], "compile");
}

#[test]
fn an_unknown_job_selection_suggests_a_name() {
    let ran = Project::new(PIPELINE).pipe(&["run", "--job", "deplyo"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("no job named `deplyo`")
            && ran.stderr.contains("did you mean `deploy`?"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let project = Project::new(PIPELINE);
    let mut child = project
        .command(&["graph"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_release_job_cannot_be_run_around_the_gate() {
    let project = Project::new("image: x\njobs:\n  build: {script: [make]}\n  publish: {stage: release, script: [make release]}\n");
    let ran = project.pipe(&["run", "--job", "publish"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr
            .contains("job `publish` is behind the release gate"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("pipe.yml:4:3"), "{}", ran.stderr);
}
