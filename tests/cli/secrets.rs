//! `secrets:`: values from the caller's environment, a secrets file or the pipeline's command,
//! given only to the jobs that name them, never written by pipe, never in a container's
//! recorded configuration. Jobs print a value only transformed (upper-cased), so that finding
//! the value itself anywhere is a leak.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{
    assert_no_leftovers, docker, docker_image, spawn_command_until, Project, IMAGE,
};

/// Every file under `dir` that holds `value`.
fn files_holding(dir: &Path, value: &str) -> Vec<String> {
    let out = std::process::Command::new("grep")
        .args(["-rlF", value])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn assert_nowhere(project: &Project, ran_output: &str, value: &str) {
    assert!(project.path().join(".pipe").is_dir());
    let found = files_holding(&project.path().join(".pipe"), value);
    assert!(found.is_empty(), "the secret is written in {found:?}");
    assert!(
        !ran_output.contains(value),
        "the secret was printed:\n{ran_output}"
    );
}

const SHOW: &str = r#"echo "got=$(echo "$TOKEN" | tr a-z A-Z)""#;

#[test]
fn a_docker_job_gets_a_secret_from_the_callers_environment_and_no_other_job_does() {
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  with: {{secrets: [TOKEN], script: ['{SHOW}']}}\n  without: {{script: ['echo \"other=${{TOKEN:-none}}\"']}}\n"
    ));
    docker_image();
    let mut cmd = project.command(&["run", "--pull", "never"]);
    cmd.env("TOKEN", "tok-from-env-1234");
    let ran = crate::harness::finish(cmd);
    assert_no_leftovers(ran.pid);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[with] got=TOK-FROM-ENV-1234"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("[without] other=none"),
        "{}",
        ran.stdout
    );
    assert_nowhere(&project, &ran.all(), "tok-from-env-1234");
}

#[test]
fn docker_jobs_get_secrets_from_a_secrets_file_and_from_a_command_run_once() {
    // The value is outside the project, as in a vault: the pipeline holds only the command.
    let vault = tempfile::tempdir().unwrap();
    std::fs::write(vault.path().join("token"), "tok-from-cmd-1234\n").unwrap();
    let project = Project::new(&format!(
        "image: {IMAGE}\nsecrets:\n  CMD_TOKEN: {{command: 'echo run >> provider-runs; cat {}/token'}}\njobs:\n  a: {{secrets: [FILE_TOKEN, CMD_TOKEN], script: ['echo \"a=$(echo \"$FILE_TOKEN $CMD_TOKEN\" | tr a-z A-Z)\"']}}\n  b: {{secrets: [CMD_TOKEN], script: ['echo \"b=$(echo \"$CMD_TOKEN\" | tr a-z A-Z) ${{FILE_TOKEN:-none}}\"']}}\n",
        vault.path().display()
    ));
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("secrets.env");
    std::fs::write(
        &file,
        "# for the test\nexport FILE_TOKEN='tok-from-file-1234'\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ran = project.run_docker(&["--secrets-file", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout
            .contains("[a] a=TOK-FROM-FILE-1234 TOK-FROM-CMD-1234"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("[b] b=TOK-FROM-CMD-1234 none"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stderr.contains("warning"), "{}", ran.stderr);
    let runs = std::fs::read_to_string(project.path().join("provider-runs")).unwrap();
    assert_eq!(runs, "run\n", "the command runs once per run");
    assert_nowhere(&project, &ran.all(), "tok-from-file-1234");
    assert_nowhere(&project, &ran.all(), "tok-from-cmd-1234");
}

#[test]
fn a_secrets_file_others_can_read_is_warned_about() {
    let project = Project::new("jobs:\n  t: {secrets: [TOKEN], script: ['true']}\n");
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("secrets.env");
    std::fs::write(&file, "TOKEN=tok-readable-1234\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = project.pipe(&[
        "run",
        "--backend",
        "local",
        "--secrets-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stderr.contains("can be read by other users (mode 644)"),
        "{}",
        ran.stderr
    );
}

#[test]
fn the_container_s_recorded_configuration_does_not_hold_the_secret() {
    docker_image();
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  hold: {{secrets: [TOKEN], env: {{PLAIN: visible-value}}, script: ['{SHOW}', 'echo ready', 'sleep 300']}}\n"
    ));
    let mut cmd = project.command(&["run", "--pull", "never"]);
    cmd.env("TOKEN", "tok-inspected-1234");
    let (mut child, seen) = spawn_command_until(cmd, "$ sleep 300");
    let pid = child.id();
    let _guard = crate::harness::KillOnDrop(pid as i32);
    assert!(
        seen.iter().any(|l| l.contains("got=TOK-INSPECTED-1234")),
        "{seen:?}"
    );
    let ids = docker(&["ps", "-q", "--filter", &format!("label=dev.pipe.pid={pid}")]);
    let id = ids.lines().next().expect("the job's container is running");
    let inspected = docker(&["inspect", id]);
    assert!(inspected.contains("PLAIN=visible-value"), "{inspected}");
    assert!(!inspected.contains("tok-inspected-1234"), "{inspected}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    child.wait().unwrap();
    assert_no_leftovers(pid);
    let found = files_holding(&project.path().join(".pipe"), "tok-inspected-1234");
    assert!(found.is_empty(), "the secret is written in {found:?}");
}

#[test]
fn a_local_job_gets_its_secret_in_its_environment_and_no_other_job_does() {
    let project = Project::new(&format!(
        "jobs:\n  with: {{secrets: [TOKEN], script: ['{SHOW}']}}\n  without: {{script: ['echo \"other=${{TOKEN:-none}}\"']}}\n"
    ));
    let mut cmd = project.command(&["run", "--backend", "local"]);
    cmd.env("TOKEN", "tok-local-1234");
    let ran = crate::harness::finish(cmd);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[with] got=TOK-LOCAL-1234"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("[without] other=none"),
        "{}",
        ran.stdout
    );
    assert_nowhere(&project, &ran.all(), "tok-local-1234");
}

#[test]
fn a_secret_without_a_value_fails_before_anything_starts_naming_it() {
    let project = Project::new(
        "jobs:\n  first: {script: ['touch started']}\n  deploy: {secrets: [DEPLOY_TOKEN], script: ['true']}\n",
    );
    let mut cmd = project.command(&["run", "--backend", "local"]);
    cmd.env_remove("DEPLOY_TOKEN");
    let ran = crate::harness::finish(cmd);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("job `deploy` needs secret `DEPLOY_TOKEN`, which has no value"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("pipe.yml:3:22"), "{}", ran.stderr);
    assert!(
        !project.path().join(".pipe/runs/1").exists(),
        "no run is recorded"
    );
}

#[test]
fn a_value_shorter_than_four_characters_is_refused() {
    let project = Project::new("jobs:\n  t: {secrets: [PIN], script: ['true']}\n");
    let mut cmd = project.command(&["run", "--backend", "local"]);
    cmd.env("PIN", "123");
    let ran = crate::harness::finish(cmd);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("the value of secret `PIN` is shorter than 4 characters"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("123"), "{}", ran.stderr);
}

#[test]
fn a_failing_command_names_the_secret_and_never_shows_its_output() {
    let vault = tempfile::tempdir().unwrap();
    std::fs::write(vault.path().join("out"), "tok-half-printed-1234").unwrap();
    std::fs::write(vault.path().join("err"), "tok-on-stderr-1234").unwrap();
    let project = Project::new(&format!(
        "secrets:\n  TOKEN: {{command: 'cat {0}/out; cat {0}/err >&2; exit 3'}}\njobs:\n  t: {{secrets: [TOKEN], script: ['true']}}\n",
        vault.path().display()
    ));
    let mut cmd = project.command(&["run", "--backend", "local"]);
    cmd.env_remove("TOKEN");
    let ran = crate::harness::finish(cmd);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("the command for secret `TOKEN` exited with 3"),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.all().contains("tok-half-printed-1234"),
        "{}",
        ran.all()
    );
    assert!(!ran.all().contains("tok-on-stderr-1234"), "{}", ran.all());
}

#[test]
fn a_release_job_gets_its_secret_when_it_is_released() {
    let project = Project::new(
        "jobs:\n  build: {script: ['true']}\n  ship:\n    stage: release\n    gate: {approvals: 0}\n    secrets: [SHIP_TOKEN]\n    script: ['echo \"ship=$(echo \"$SHIP_TOKEN\" | tr a-z A-Z)\"']\n",
    );
    crate::harness::git(project.path(), &["init", "-q", "-b", "main"]);
    crate::harness::git(project.path(), &["add", "-A"]);
    crate::harness::git(project.path(), &["commit", "-qm", "init"]);
    let with_token = |args: &[&str], token: Option<&str>| {
        let mut cmd = project.command(args);
        match token {
            Some(t) => cmd.env("SHIP_TOKEN", t),
            None => cmd.env_remove("SHIP_TOKEN"),
        };
        crate::harness::finish(cmd)
    };
    // The run itself does not need the release job's secret.
    let ran = with_token(&["run", "--backend", "local"], None);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let refused = with_token(&["release", "1"], None);
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("job `ship` needs secret `SHIP_TOKEN`, which has no value"),
        "{}",
        refused.stderr
    );
    let released = with_token(&["release", "1"], Some("tok-at-release-1234"));
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(
        released.stdout.contains("[ship] ship=TOK-AT-RELEASE-1234"),
        "{}",
        released.stdout
    );
    assert_nowhere(&project, &released.all(), "tok-at-release-1234");
}

#[test]
fn a_command_past_its_timeout_is_killed_with_what_it_started_and_names_the_secret() {
    // The command leaves a child of its own behind it, as a vault client's helper would.
    let project = Project::new(
        "secrets:\n  TOKEN:\n    command: 'sleep 300 & echo $! > sleeper.pid; wait'\n    timeout: 2s\njobs:\n  t: {secrets: [TOKEN], script: ['true']}\n",
    );
    let mut cmd = project.command(&["run", "--backend", "local"]);
    cmd.env_remove("TOKEN");
    let ran = crate::harness::finish(cmd);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("the command for secret `TOKEN` did not finish within 2s: it was stopped"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("[pipe.yml:2:3]"), "{}", ran.stderr);
    let sleeper: i32 = std::fs::read_to_string(project.path().join("sleeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed before pipe said so; gone once the kernel has reaped what SIGKILL ended.
    let killed = (0..100).any(|_| {
        let gone = crate::harness::gone(sleeper);
        if !gone {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        gone
    });
    assert!(killed, "the command's child is killed too");
}

#[test]
fn a_secret_commands_timeout_must_be_a_duration() {
    let ran = Project::new(
        "secrets:\n  TOKEN: {command: 'echo x', timeout: soon}\njobs:\n  t: {secrets: [TOKEN], script: ['true']}\n",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("the `timeout` of secret `TOKEN` must be a duration longer than zero"),
        "{}",
        ran.stderr
    );
}
