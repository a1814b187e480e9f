//! What pipe keeps of runs, and pipe's own failures: private files, numbers never reused, a
//! corrupt store or a full disk told apart from a failed job (exit 5). Local backend: Docker
//! does not matter here.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{spawn_until, Project};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn recorded_runs_are_the_users_alone() {
    let marker = tempfile::tempdir().unwrap();
    let go = marker.path().join("go");
    let project = Project::new(&format!(
        "jobs:
  build:
    script: [printf x > tool, chmod 755 tool, echo waiting, 'while [ ! -e {} ]; do sleep 0.05; done']
    artifacts: [tool]
",
        go.display()
    ));
    // What an earlier version of pipe left: readable by everyone.
    let state = project.path().join(".pipe");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("pipe.db"), "").unwrap();
    for (path, m) in [(&state, 0o755), (&state.join("pipe.db"), 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
    }

    let (mut child, _) = spawn_until(&project, &["run", "--backend", "local"], "[build] waiting");
    // While the run goes on, the store has its journal files open too.
    let run = state.join("runs/1");
    assert_eq!(mode(&state), 0o700, ".pipe");
    for dir in [state.join("runs"), run.clone(), run.join("logs")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [
        "pipe.db",
        "pipe.db-wal",
        "pipe.db-shm",
        ".gitignore",
        "runs/1/owner",
        "runs/1/pipeline.yml",
        "runs/1/backend",
        "runs/1/logs/build.log",
    ] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    std::fs::write(&go, "").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(mode(&run.join("logs/build.log")), 0o600);
    assert_eq!(
        mode(&run.join("artifacts/build/tool")),
        0o755,
        "what a job made keeps its mode"
    );
}

#[test]
fn a_lost_store_never_reuses_a_run_directory() {
    let project = Project::new("jobs:\n  a: {script: ['echo \"run $PIPE_RUN_ID\"']}\n");
    let first = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(first.code, 0, "{}", first.all());
    for file in ["pipe.db", "pipe.db-wal", "pipe.db-shm"] {
        let _ = std::fs::remove_file(project.path().join(".pipe").join(file));
    }
    // The job's output names its run: it must run again, not be reused.
    let second = project.pipe(&["run", "--backend", "local", "--no-reuse"]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert!(
        second.stdout.starts_with("pipe: run 2 of"),
        "{}",
        second.stdout
    );
    assert!(
        project.log("1", "a").contains("run 1") && !project.log("1", "a").contains("run 2"),
        "run 1's log is intact: {}",
        project.log("1", "a")
    );
    assert!(project.log("2", "a").contains("run 2"));
    let runs = project.pipe(&["runs", "--output", "json"]);
    let ids: Vec<i64> = runs
        .json_events()
        .iter()
        .map(|r| r["run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2]);

    // Lost again, and three processes start runs at once: each gets a number of its own.
    for file in ["pipe.db", "pipe.db-wal", "pipe.db-shm"] {
        let _ = std::fs::remove_file(project.path().join(".pipe").join(file));
    }
    let children: Vec<_> = (0..3)
        .map(|_| {
            project
                .command(&["run", "--backend", "local", "--no-reuse"])
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for run in ["3", "4", "5"] {
        let log = project.log(run, "a");
        let said: Vec<&str> = log.lines().filter(|l| l.starts_with("run ")).collect();
        assert_eq!(said, [format!("run {run}")], "{log}");
    }
    assert!(project.log("1", "a").contains("run 1"));
}

#[test]
fn a_corrupt_store_is_pipes_failure_not_a_job_s() {
    let project = Project::new("jobs:\n  a: {script: [echo hi]}\n");
    std::fs::create_dir(project.path().join(".pipe")).unwrap();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let db = project.path().join(".pipe/pipe.db");
    std::fs::write(&db, &garbage).unwrap();
    for args in [
        &["run", "--backend", "local"][..],
        &["runs"],
        &["show", "1"],
    ] {
        let ran = project.pipe(args);
        assert_eq!(ran.code, 5, "{args:?}: {}", ran.all());
        assert_eq!(
            ran.stderr, "pipe: cannot open the run store .pipe/pipe.db: file is not a database\n",
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "left as it was");
    assert!(!project.path().join(".pipe/runs").exists(), "no job ran");
}

/// A small tmpfs of the test's own, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None, said loudly, when not root (CI runs as root).
    fn mount(size: &str) -> Option<Tmpfs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "!!! SKIPPED: mounting a tmpfs to fill needs root; CI runs the tests as root"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "mount -t tmpfs failed as root");
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_the_run_on_pipes_side_and_leaves_no_partial_artifact() {
    let Some(disk) = Tmpfs::mount("2m") else {
        return;
    };
    let project = Project::new_in(
        disk.dir.path(),
        "jobs:
  big: {script: ['head -c 4000000 /dev/zero > big.bin'], artifacts: [big.bin]}
  after: {stage: test, script: [echo never]}
",
    );
    // Off a terminal, without NO_COLOR: nothing may carry colours anyway.
    let plain = |args: &[&str]| {
        let mut cmd = project.command(args);
        cmd.env_remove("NO_COLOR");
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !stdout.contains('\x1b') && !stderr.contains('\x1b'),
            "ANSI escapes off a terminal:\n{stdout}{stderr}"
        );
        (out.status.code(), stdout, stderr)
    };

    let (code, stdout, stderr) = plain(&["run", "--backend", "local"]);
    assert_eq!(code, Some(5), "{stdout}{stderr}");
    assert!(
        stderr.contains("pipe: run 1 failed because pipe could not go on: job `big`: cannot keep the artifacts in")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(
        !project.path().join(".pipe/runs/1/artifacts/big").exists(),
        "the artifact cut short is removed"
    );
    let show = project.pipe(&["show", "1", "--output", "json"]);
    let run: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["jobs"][0]["status"], "errored", "{run}");
    assert_eq!(run["jobs"][1]["status"], "skipped", "{run}");
    let audit = run["audit"].as_array().unwrap();
    assert!(
        audit.iter().any(|a| a["action"] == "failed"
            && a["detail"]
                .as_str()
                .unwrap()
                .starts_with("pipe failed: job `big`: cannot keep the artifacts")),
        "{run}"
    );

    // A log that fills the disk: the warning and the error are plain, and it is exit 5 again.
    project.write(
        "pipe.yml",
        "jobs:\n  noisy: {script: ['yes 0123456789012345678901234567890123456789 | head -c 4000000']}\n",
    );
    let (code, stdout, stderr) = plain(&["run", "--backend", "local"]);
    assert_eq!(
        code,
        Some(5),
        "{}{stderr}",
        &stdout[stdout.len().saturating_sub(2000)..]
    );
    assert!(stderr.contains("stopped recording the run"), "{stderr}");
    assert!(
        stderr.contains("No space left on device") || stderr.contains("disk is full"),
        "{stderr}"
    );
    drop(project);
}

#[test]
fn jobs_that_never_started_before_a_kill_9_show_as_not_started() {
    let project = Project::new(
        "jobs:\n  first: {script: [sleep 300]}\n  second: {stage: test, script: [echo never]}\n",
    );
    let (mut child, _) = spawn_until(&project, &["run", "--backend", "local"], "$ sleep 300");
    child.kill().unwrap();
    child.wait().unwrap();
    let show = project.pipe(&["show", "1"]);
    assert!(show.row("first").contains("interrupted"), "{}", show.stdout);
    assert!(
        show.row("second").contains("not started"),
        "{}",
        show.stdout
    );
    let json = project.pipe(&["show", "1", "--output", "json"]);
    let run: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(run["jobs"][1]["status"], "not_started", "{run}");
    // The killed pipe's job is still sleeping in its workspace.
    assert_eq!(project.pipe(&["clean"]).code, 0);
}
