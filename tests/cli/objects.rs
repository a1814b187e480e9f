//! Two agents' machines on one shared run store and one object store (a folder here): what one
//! ran, the other reuses, each file checked against its hash on the way back; a damaged object
//! or a lost log chunk is refused, and the job runs again instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fleet::testdb;
use crate::harness::{finish, git, Ran};

const PIPELINE: &str = "jobs:
  build:
    script:
      - mkdir -p out
      - echo built in run $PIPE_RUN_ID > out/app
      - echo building
    artifacts: [out/app]
  test:
    needs: [build]
    reuse: false
    script: [cat out/app]
";

/// Two machines' clones of one repository (both folders named `web`, as agents name a clone
/// for its repository), one database, one object store.
struct Fleet {
    _dirs: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    objects: PathBuf,
    db: testdb::TestDb,
}

fn fleet() -> Fleet {
    let dirs = tempfile::tempdir().unwrap();
    let a = dirs.path().join("a/web");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("pipe.yml"), PIPELINE).unwrap();
    git(&a, &["init", "-q", "-b", "main"]);
    git(&a, &["add", "-A"]);
    git(&a, &["commit", "-qm", "init"]);
    let b = dirs.path().join("b/web");
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    git(
        dirs.path(),
        &["clone", "-q", a.to_str().unwrap(), b.to_str().unwrap()],
    );
    let objects = dirs.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    Fleet {
        a,
        b,
        objects,
        db: testdb::database(),
        _dirs: dirs,
    }
}

impl Fleet {
    /// `pipe run` on the machine whose clone is `at`, against the shared stores.
    fn run(&self, at: &Path) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
        cmd.args(["run", "--backend", "local", "--output", "json"])
            .current_dir(at)
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env("PIPE_STORE", &self.db.url)
            .env("PIPE_OBJECTS", format!("file://{}", self.objects.display()))
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(cmd)
    }

    /// `pipe ARGS` on the machine whose clone is `at`, reading the shared stores.
    fn pipe(&self, at: &Path, args: &[&str]) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
        cmd.args(args)
            .current_dir(at)
            .env("NO_COLOR", "1")
            .env("PIPE_STORE", &self.db.url)
            .env("PIPE_OBJECTS", format!("file://{}", self.objects.display()))
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(cmd)
    }

    /// Every file the object store holds beneath `rel`.
    fn stored(&self, rel: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.objects.join(rel)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(entry.path());
                } else {
                    out.push(entry.path());
                }
            }
        }
        out.sort();
        out
    }
}

/// The run's `job_finished` event of `job`.
fn finished(ran: &Ran, job: &str) -> serde_json::Value {
    ran.json_events()
        .into_iter()
        .find(|e| e["event"] == "job_finished" && e["job"] == job)
        .unwrap_or_else(|| panic!("no job_finished for `{job}`: {}", ran.all()))
}

fn log(project: &Path, run: u32, job: &str) -> String {
    std::fs::read_to_string(project.join(format!(".pipe/runs/{run}/logs/{job}.log")))
        .unwrap_or_default()
}

#[test]
fn a_job_run_on_one_machine_is_reused_on_another_with_its_artifact_and_log_from_the_object_store() {
    let fleet = fleet();
    let first = fleet.run(&fleet.a);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stdout.contains("built in run 1"), "{}", first.all());
    // Stored by content: the artifact's bytes are a blob named by their hash.
    let blobs = fleet.stored("sha256");
    assert!(
        blobs
            .iter()
            .any(|b| std::fs::read(b).unwrap() == b"built in run 1\n"),
        "{blobs:?}"
    );
    assert!(fleet.objects.join("web/runs/1/build/0/log/end").is_file());

    let second = fleet.run(&fleet.b);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(
        finished(&second, "build")["reused_from"],
        1,
        "{}",
        second.all()
    );
    // The other machine's test job read the artifact run 1 made, laid from the object store.
    assert!(second.stdout.contains("built in run 1"), "{}", second.all());
    assert!(
        !second.stdout.contains("built in run 2"),
        "{}",
        second.all()
    );
    assert!(log(&fleet.b, 2, "build").contains("building"));
    assert!(
        !fleet.a.join(".pipe/runs/2").exists() && !fleet.b.join(".pipe/runs/1").exists(),
        "each machine holds only its own run"
    );
}

#[test]
fn a_damaged_artifact_in_the_object_store_is_refused_by_its_hash_and_the_job_runs_again() {
    let fleet = fleet();
    let first = fleet.run(&fleet.a);
    assert_eq!(first.code, 0, "{}", first.all());
    for blob in fleet.stored("sha256") {
        if std::fs::read(&blob).unwrap() == b"built in run 1\n" {
            std::fs::write(&blob, "built by someone else\n").unwrap();
        }
    }
    let second = fleet.run(&fleet.b);
    assert_eq!(second.code, 0, "{}", second.all());
    assert!(
        second.stderr.contains("does not hash to its name"),
        "{}",
        second.all()
    );
    assert!(finished(&second, "build")["reused_from"].is_null());
    assert!(second.stdout.contains("built in run 2"), "{}", second.all());
    assert!(!second.stdout.contains("someone else"), "{}", second.all());
}

#[test]
fn a_lost_log_chunk_in_the_object_store_is_told_and_the_job_runs_again() {
    let fleet = fleet();
    let first = fleet.run(&fleet.a);
    assert_eq!(first.code, 0, "{}", first.all());
    // The log is short: one chunk, at byte 0.
    let chunk = fleet
        .objects
        .join(format!("web/runs/1/build/0/log/{:020}", 0));
    std::fs::remove_file(&chunk).unwrap();
    let second = fleet.run(&fleet.b);
    assert_eq!(second.code, 0, "{}", second.all());
    assert!(
        second
            .stderr
            .contains("log web/runs/1/build/0/log ends at byte 0 but its end record says"),
        "{}",
        second.all()
    );
    assert!(finished(&second, "build")["reused_from"].is_null());
    assert!(second.stdout.contains("built in run 2"), "{}", second.all());
}

#[test]
fn an_object_store_without_a_shared_run_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipe.yml"), PIPELINE).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
    cmd.args(["run", "--backend", "local", "--objects"])
        .arg(format!("file://{}", dir.path().display()))
        .current_dir(dir.path())
        .env_remove("PIPE_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let ran = finish(cmd);
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr
            .contains("an object store serves a shared run store"),
        "{}",
        ran.all()
    );
}

#[test]
fn a_shared_runs_logs_and_artifacts_are_read_from_the_object_store_on_a_machine_that_did_not_run_it(
) {
    let fleet = fleet();
    let ran = fleet.run(&fleet.a);
    assert_eq!(ran.code, 0, "{}", ran.all());
    // Machine b has no folder of run 1: all it reads comes from the stores.
    assert!(!fleet.b.join(".pipe/runs/1").exists());
    let one = fleet.pipe(&fleet.b, &["logs", "1", "build"]);
    assert_eq!(one.code, 0, "{}", one.all());
    assert!(one.stdout.contains("building"), "{}", one.all());
    let all = fleet.pipe(&fleet.b, &["logs", "1"]);
    assert_eq!(all.code, 0, "{}", all.all());
    for text in ["==> build <==", "==> test <==", "built in run 1"] {
        assert!(all.stdout.contains(text), "no {text:?} in {}", all.all());
    }
    let followed = fleet.pipe(&fleet.b, &["logs", "1", "build", "--follow"]);
    assert_ne!(followed.code, 0);
    assert!(followed.stderr.contains("--follow"), "{}", followed.all());

    let listed = fleet.pipe(&fleet.b, &["artifacts", "1", "--output", "json"]);
    assert_eq!(listed.code, 0, "{}", listed.all());
    let items: Vec<serde_json::Value> = (listed.stdout.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 1, "{}", listed.all());
    assert_eq!(
        (items[0]["job"].as_str(), items[0]["path"].as_str()),
        (Some("build"), Some("out/app"))
    );
    assert_eq!(items[0]["size"], 15);
    let copied = fleet.pipe(&fleet.b, &["artifacts", "1", "build", "--to", "got"]);
    assert_eq!(copied.code, 0, "{}", copied.all());
    let got = std::fs::read_to_string(fleet.b.join("got/out/app")).unwrap();
    assert_eq!(got, "built in run 1\n");
    let again = fleet.pipe(&fleet.b, &["artifacts", "1", "build", "--to", "got"]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("would replace"), "{}", again.all());
    let unknown = fleet.pipe(&fleet.b, &["artifacts", "1", "biuld"]);
    assert!(
        unknown.stderr.contains("did you mean `build`?"),
        "{}",
        unknown.all()
    );
    // What was copied is the user's; pipe's scratch folder is gone.
    let left: Vec<_> = std::fs::read_dir(fleet.b.join(".pipe"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("copying"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
