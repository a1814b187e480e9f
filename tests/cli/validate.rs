//! `pipe validate`: every problem at once, each at file:line:col with a hint; exit code 2.

use crate::harness::Project;

fn invalid(pipeline: &str) -> String {
    let ran = Project::new(pipeline).pipe(&["validate"]);
    assert_eq!(
        ran.code,
        2,
        "expected exit 2 for an invalid pipeline:\n{}",
        ran.all()
    );
    assert!(ran.stdout.is_empty(), "errors go to stderr");
    ran.stderr
}

#[test]
fn a_valid_pipeline_says_so() {
    let ran = Project::new(
        "image: x\njobs:\n  a: {script: [echo]}\n  b: {stage: test, script: [echo]}\n",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.starts_with("pipe.yml: valid: pipeline `"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("2 job(s)"), "{}", ran.stdout);
}

#[test]
fn every_problem_is_reported_at_once_with_positions_and_hints() {
    let stderr = invalid(
        "jobs:\n  build:\n    stage: biuld\n    script: [make]\n  test:\n    needs: [buld]\n    scrpt: [x]\n    timeout: 5 parsecs\n  a: {needs: [b], script: [x]}\n  b: {needs: [a], script: [x]}\n  build:\n    script: [y]\n",
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn yaml_syntax_errors_point_at_the_spot() {
    let stderr = invalid("jobs:\n  a:\n    script: [echo, \"unclosed\n");
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    assert!(stderr.contains("pipe.yml:"), "{stderr}");
}

#[test]
fn wrong_types_say_what_was_expected() {
    let stderr = invalid(
        "jobs:\n  a:\n    script: echo\n    retry: lots\n    allow_failure: maybe\n    needs: a\n",
    );
    assert!(
        stderr.contains("`retry` must be a whole number from 0 to 10, found a string"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`allow_failure` must be true or false, found a string"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`needs` of job `a` must be a list, found a string"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:4:12]"), "{stderr}");
}

#[test]
fn a_script_line_yaml_reads_as_a_boolean_gets_one_error_with_a_fix() {
    let stderr = invalid("jobs:\n  a: {script: [true]}\n");
    assert!(
        stderr.contains("a script line must be a string, found a boolean"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:2:16]"), "{stderr}");
    assert!(
        stderr.contains("quote it to mean the text: 'true'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 problem found") && !stderr.contains("empty `script`"),
        "the line is not also called empty: {stderr}"
    );
}

#[test]
fn a_need_on_a_later_stage_is_refused() {
    let stderr = invalid(
        "jobs:\n  a: {stage: build, needs: [b], script: [x]}\n  b: {stage: test, script: [x]}\n",
    );
    assert!(
        stderr.contains("job `a` (stage `build`) needs `b`, which is in the later stage `test`"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:2:29]"), "{stderr}");
}

#[test]
fn empty_scripts_and_bad_durations_are_refused() {
    let stderr =
        invalid("jobs:\n  a: {script: [], timeout: soon}\n  b: {script: [x], timeout: 0s}\n");
    assert!(stderr.contains("job `a` has an empty `script`"), "{stderr}");
    assert!(stderr.contains("bad duration `soon`"), "{stderr}");
    assert!(
        stderr.contains("`timeout` must be longer than zero"),
        "{stderr}"
    );
}

#[test]
fn a_concurrency_group_must_be_a_name_and_a_service_a_mapping() {
    let stderr =
        invalid("jobs:\n  a:\n    script: [x]\n    concurrency: ../prod\n    services: [db]\n");
    assert!(
        stderr.contains("`concurrency` group `../prod` is not a name"),
        "{stderr}"
    );
    // Supported now, and a bare image is not a service.
    assert!(
        stderr.contains("a service must be a mapping with `name` and `image`"),
        "{stderr}"
    );
}

#[test]
fn job_labels_are_names_a_fleet_agent_could_offer() {
    let stderr = invalid("jobs:\n  a:\n    script: [x]\n    labels: [gpu, 'arm 64']\n");
    assert!(stderr.contains("label `arm 64` is not a label"), "{stderr}");
}

#[test]
fn only_globs_are_checked_where_they_are_written() {
    let stderr = invalid(
        "jobs:\n  docs:\n    only:\n      branches: [main]\n      changes: ['docs/**', 'src/[']\n    script: [x]\n  app:\n    only: {chnages: ['src/**']}\n    script: [x]\n",
    );
    assert!(
        stderr.contains("`src/[` in `only.changes` is not a valid glob"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:5:28]"), "{stderr}");
    assert!(
        stderr.contains("unknown key `chnages` in `only`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `changes`?"), "{stderr}");
    let ok = Project::new("jobs:\n  docs: {only: {branches: ['release/*']}, script: [x]}\n")
        .pipe(&["validate"]);
    assert_eq!(ok.code, 0, "{}", ok.all());
}

#[test]
fn gates_are_checked() {
    let stderr = invalid(
        "jobs:\n  deploy: {stage: deploy, gate: {approvals: 1}, script: [x]}\n  publish:\n    stage: release\n    gate: {approvals: lots, freeze: [Friday evening], brnaches: [main]}\n    script: [x]\n",
    );
    assert!(
        stderr.contains(
            "job `deploy` has a `gate`, but only jobs of the `release` stage wait for one"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`approvals` must be a whole number from 0 to 100, found a string"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad freeze window `Friday evening`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `branches`?"), "{stderr}");
}

#[test]
fn an_alias_bomb_fails_fast() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("jobs:\n  a: {script: [*a9]}\n");
    let stderr = invalid(&text);
    assert!(
        stderr.contains("invalid YAML: the document expands beyond pipe's limits"),
        "{stderr}"
    );
}

#[test]
fn deep_nesting_fails_cleanly() {
    let text = format!(
        "jobs:\n  a: {{script: [x], env: {}{}}}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let stderr = invalid(&text);
    assert!(
        stderr.contains("invalid YAML: the document nests deeper than 64 levels"),
        "{stderr}"
    );
    let mut block = String::from("jobs:\n");
    for depth in 1..200 {
        block.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
    }
    let stderr = invalid(&block);
    assert!(
        stderr.contains("invalid YAML: the document nests deeper than 64 levels"),
        "block style too: {stderr}"
    );
}

#[test]
fn a_mistake_in_an_anchor_is_reported_once_where_it_is_written() {
    let stderr = invalid(
        "x-defaults: &defaults {timeout: 20m, retyr: 2}\njobs:\n  a: {<<: *defaults, script: [x]}\n  b: {<<: *defaults, script: [x]}\n",
    );
    assert!(stderr.contains("[pipe.yml:1:38]"), "{stderr}");
    assert!(stderr.contains("1 problem found"), "{stderr}");
}

#[test]
fn a_huge_file_is_refused_before_parsing() {
    let project = Project::new("");
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    std::fs::write(
        project.path().join("pipe.yml"),
        line.repeat(50 * 1024 * 1024 / line.len()),
    )
    .unwrap();
    let ran = project.pipe(&["validate"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("pipeline files are limited to"),
        "{}",
        ran.stderr
    );
}

#[test]
fn an_empty_file_and_a_missing_file_are_explained() {
    assert!(invalid("").contains("the pipeline file is empty"));
    let project = Project::new("");
    std::fs::remove_file(project.path().join("pipe.yml")).unwrap();
    let ran = project.pipe(&["validate"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("no pipeline file found"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("pipe.yml, pipe.yaml"), "{}", ran.stderr);
    for args in [&["validate", "nope.yml"][..], &["run", "nope.yml"]] {
        let named = project.pipe(args);
        assert_eq!(named.code, 2, "a file named but missing: {}", named.all());
        assert!(
            named.stderr.contains("cannot read nope.yml"),
            "{}",
            named.stderr
        );
    }
}

#[test]
fn a_large_generated_pipeline_is_valid() {
    let mut text = String::from("image: x\njobs:\n");
    for i in 0..2000 {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("needs: [j{}], ", i / 2)
        };
        text.push_str(&format!("  j{i}: {{{needs}script: [echo {i}]}}\n"));
    }
    let ran = Project::new(&text).pipe(&["validate"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("2000 job(s)"), "{}", ran.stdout);
}

#[test]
fn a_second_yaml_document_is_explained() {
    let stderr = invalid("jobs: {a: {script: [x]}}\n---\nfoo: 1\n");
    assert!(
        stderr.contains("a pipeline file holds one YAML document"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:3:1]"), "{stderr}");
}

#[test]
fn anchors_in_extension_fields_merge_into_many_jobs() {
    let mut text = String::from(
        "x-defaults: &defaults\n  image: alpine:3.20\n  timeout: 5m\n  env: {A: '1'}\njobs:\n",
    );
    for i in 0..2000 {
        text.push_str(&format!(
            "  j{i}:\n    <<: *defaults\n    script: [echo {i}]\n"
        ));
    }
    let project = Project::new(&text);
    let ran = project.pipe(&["validate"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let list = project.pipe(&["list"]);
    assert!(
        list.row("j1999").ends_with("alpine:3.20"),
        "{}",
        list.stdout
    );
}

#[test]
fn a_job_name_that_is_a_list_is_one_problem() {
    let stderr = invalid("jobs:\n  ? [a, b]\n  : {script: [x]}\n");
    assert!(
        stderr.contains("keys in `jobs` must be strings, found a list"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 problem found") && !stderr.contains("is empty"),
        "{stderr}"
    );
}

#[test]
fn artifact_paths_stay_inside_the_workspace_even_after_expansion() {
    let stderr = invalid(
        "jobs:\n  a:\n    matrix: {T: [ok, ../up]}\n    script: [x]\n    artifacts: ['out/$T', 'logs/[a-', /etc]\n",
    );
    assert!(
        stderr.contains("with T=../up: artifact path `out/../up` must stay inside the workspace"),
        "{stderr}"
    );
    assert!(
        stderr.contains("artifact path `logs/[a-` is not a valid glob"),
        "{stderr}"
    );
    assert!(
        stderr.contains("artifact path `/etc` must stay inside the workspace"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:5:17]"), "at the path: {stderr}");
    assert!(stderr.contains("3 problems found"), "{stderr}");
}

#[test]
fn two_jobs_of_one_name_are_refused() {
    let stderr = invalid(
        "jobs:\n  u: {matrix: {A: [x, x]}, script: [echo]}\n  t: {matrix: {P: [1]}, script: [echo]}\n  \"t [P=1]\": {script: [echo]}\n",
    );
    assert!(
        stderr.contains("two jobs would be named `u [A=x]`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("two jobs would be named `t [P=1]`"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:4:3]"), "{stderr}");
}

#[test]
fn keys_that_mean_nothing_for_the_kind_of_job_are_refused() {
    let stderr = invalid(
        "jobs:\n  build: {script: [x], fail_on: low}\n  audit: {stage: security-scan, scan: [secrets], image: alpine:3, artifacts: [out]}\n",
    );
    assert!(
        stderr.contains("`fail_on` has no effect on a job without `scan`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`image` has no effect on a scan job"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`artifacts` has no effect on a scan job"),
        "{stderr}"
    );
}

#[test]
fn keys_from_gitlab_and_github_actions_point_at_pipes_names() {
    let stderr = invalid(
        "variables: {A: b}\njobs:\n  a:\n    steps: [x]\n    dependencies: [b]\n    continue-on-error: true\n",
    );
    // `steps` is pipe's own key now (a progressive release), refused outside a release job.
    assert!(
        stderr.contains(
            "job `a` has `steps`, but only release jobs with a `script` release in steps"
        ),
        "{stderr}"
    );
    for (theirs, ours) in [
        ("variables", "env"),
        ("dependencies", "needs"),
        ("continue-on-error", "allow_failure"),
    ] {
        assert!(
            stderr.contains(&format!("unknown key `{theirs}`")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("did you mean `{ours}`?")),
            "{stderr}"
        );
    }
}

#[test]
fn nul_characters_and_a_zero_timeout_are_refused_before_anything_runs() {
    let stderr = invalid(
        "jobs:\n  e:\n    env: {A: \"x\\0y\"}\n    matrix: {B: [\"1\\0\", \"2\"]}\n    timeout: 0\n    script: [\"echo \\0\"]\n",
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn job_names_too_long_for_file_names_are_refused_also_after_matrix_expansion() {
    let stderr = invalid(&format!(
        // An explicit key (`? …`): YAML allows implicit keys of up to 1024 characters only.
        "jobs:\n  ? {}\n  : {{script: [echo]}}\n  m:\n    matrix: {{V: [short, \"{}\"]}}\n    script: [echo]\n  fine:\n    matrix: {{V: [\"{}\"]}}\n    script: [echo]\n",
        "x".repeat(5000),
        "v".repeat(300),
        "v".repeat(150),
    ));
    assert!(
        stderr.contains("the job name `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…` has 5000 characters; at most 200 are allowed")
            && stderr.contains("[pipe.yml:2:5]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("with its matrix values, the job name `m [V=vvv")
            && stderr.contains("has 306 characters")
            && stderr.contains("[pipe.yml:4:3]"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems found"), "{stderr}");
}

#[test]
fn type_errors_written_as_other_ci_systems_write_them_say_pipes_form() {
    let stderr = invalid(
        "jobs:\n  a:\n    script: [x]\n    retry: {max: 2, when: always}\n    allow_failure: yes\n    environment: {name: staging, url: https://staging.example.com}\n",
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn privileged_jobs_and_host_mounts_are_valid_with_a_warning() {
    let ran = Project::new(
        "image: x\njobs:\n  dind:\n    matrix: {N: [1, 2]}\n    privileged: true\n    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n    script: [docker ps]\n",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(
        ran.stderr,
        "pipe.yml:5:5: warning: job `dind` asks for `privileged: true`: `pipe run` refuses it on Docker unless you pass --allow-privileged\n\
         pipe.yml:6:15: warning: job `dind` asks for the Docker socket `/var/run/docker.sock` as a volume: `pipe run` refuses it on Docker unless you pass --allow-privileged\n"
    );
    assert!(
        ran.stdout
            .starts_with("pipe.yml: valid with 2 warnings: pipeline `"),
        "{}",
        ran.stdout
    );
}
