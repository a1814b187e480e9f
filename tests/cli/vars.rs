//! `--env`, `--env-file`, `${NAME}` in `env` values, and a local job's environment: what the
//! pipeline's `env` says wins, passed variables fill in, pipe's own environment stays out.

use crate::harness::{finish, Project, IMAGE};

#[test]
fn passed_variables_sit_under_the_pipeline_s_env_and_expand_in_it() {
    let project = Project::new(
        "env: {URL: 'https://${HOST}:$PORT/x', MODE: from-pipeline, PRICE: '5$$'}\njobs:\n  t:\n    env: {PATHS: '${URL}/more'}\n    script: ['echo \"$URL|$MODE|$EXTRA|$FROM_FILE|$MINE|$PRICE|$PATHS\"']\n",
    );
    project.write(
        "vars.env",
        "# passed in a file\nHOST=from-file\nexport FROM_FILE=\"two words\"\nMODE=from-file\nPORT=1\n",
    );
    let mut cmd = project.command(&[
        "run",
        "--backend",
        "local",
        "--env-file",
        "vars.env",
        "--env",
        "HOST=example.org",
        "--env",
        "EXTRA=2",
        "--env",
        "MODE=from-flag",
        "--env",
        "MINE",
    ]);
    cmd.env("MINE", "the caller's");
    let ran = finish(cmd);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains(
            "[t] https://example.org:1/x|from-pipeline|2|two words|the caller's|5$|https://example.org:1/x/more"
        ),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_docker_job_gets_passed_variables() {
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  t: {{script: ['echo \"greeting=$GREETING\"']}}\n"
    ));
    let ran = project.run_docker(&["--env", "GREETING=hello there"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[t] greeting=hello there"),
        "{}",
        ran.stdout
    );
}

#[test]
fn an_undefined_name_in_env_is_an_error_at_its_value() {
    let project = Project::new("env:\n  URL: https://${NOPE}/\njobs:\n  t: {script: ['true']}\n");
    let mut cmd = project.command(&["run", "--backend", "local"]);
    cmd.env("NOPE", "pipe's environment is never read for it");
    let ran = finish(cmd);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("`URL` of job `t` uses `NOPE`, which is not defined"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("pipe.yml:2:8"), "{}", ran.stderr);
    assert!(!project.path().join(".pipe/runs/1").exists());
}

#[test]
fn a_mistake_in_an_env_file_names_its_line_and_column() {
    let project = Project::new("jobs:\n  t: {script: ['true']}\n");
    project.write("bad.env", "A=1\nB='never closed\n");
    let ran = project.pipe(&["run", "--backend", "local", "--env-file", "bad.env"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("bad.env:2:3: the quote ' is never closed"),
        "{}",
        ran.stderr
    );
    let ran = project.pipe(&["run", "--backend", "local", "--env", "UNSET_FOR_PIPE_TEST"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr.contains("`UNSET_FOR_PIPE_TEST` is not set"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_local_job_gets_the_host_allow_list_and_nothing_else_of_pipe_s_environment() {
    let project = Project::new("jobs:\n  t: {script: ['env']}\n");
    let mut cmd = project.command(&["run", "--backend", "local"]);
    cmd.env("PIPE_TEST_LEAK", "leaked-to-the-job")
        .env("AWS_SECRET_ACCESS_KEY", "leaked-credential")
        .env("LC_TIME", "C")
        .env("HOME", "/home/for-the-test");
    let ran = finish(cmd);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(!ran.stdout.contains("leaked"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("[t] HOME=/home/for-the-test"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("[t] LC_TIME=C"), "{}", ran.stdout);
    assert!(ran.stdout.contains("[t] PATH="), "{}", ran.stdout);
    assert!(ran.stdout.contains("[t] PIPE_JOB=t"), "{}", ran.stdout);
}
