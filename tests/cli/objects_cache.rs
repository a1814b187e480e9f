//! Job caches in a fleet's object store: two machines' clones of one repository (each with a
//! cache folder of its own) on one shared run store and one object store folder. What a job
//! saved on one machine is restored on the other, checked against its hash; a damaged archive
//! is said in the job's log and the job runs without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fleet::testdb;
use crate::harness::{finish, git, Ran};

/// A job that fills `deps/` when no cache gave it, and says which it was.
const PIPELINE: &str = r#"jobs:
  deps:
    reuse: false
    cache:
      key: deps-{{ hash "lock" }}
      paths: [deps]
    script:
      - 'if [ -f deps/lib ]; then echo "restored: $(cat deps/lib)"; else mkdir -p deps; echo "fetched in run $PIPE_RUN_ID" > deps/lib; echo fetched; fi'
"#;

struct Machines {
    dirs: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    objects: PathBuf,
    db: testdb::TestDb,
}

fn machines() -> Machines {
    let dirs = tempfile::tempdir().unwrap();
    let a = dirs.path().join("a/web");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("pipe.yml"), PIPELINE).unwrap();
    std::fs::write(a.join("lock"), "serde 1.0\n").unwrap();
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
    Machines {
        a,
        b,
        objects,
        db: testdb::database(),
        dirs,
    }
}

impl Machines {
    /// `pipe ARGS` on the machine whose clone is `at`, with that machine's own cache folder,
    /// against the shared stores.
    fn pipe(&self, at: &Path, args: &[&str]) -> Ran {
        let machine = at.parent().unwrap().file_name().unwrap().to_str().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
        cmd.args(args)
            .current_dir(at)
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env("XDG_CACHE_HOME", self.cache_home(machine))
            .env("PIPE_STORE", &self.db.url)
            .env("PIPE_OBJECTS", format!("file://{}", self.objects.display()))
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(cmd)
    }

    fn cache_home(&self, machine: &str) -> PathBuf {
        self.dirs.path().join(format!("{machine}-cache"))
    }

    fn run(&self, at: &Path) -> Ran {
        self.pipe(at, &["run", "--backend", "local"])
    }

    /// The one cache record the object store holds, as JSON.
    fn record(&self) -> serde_json::Value {
        let records: Vec<_> = std::fs::read_dir(self.objects.join("web/caches"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(records.len(), 1, "{records:?}");
        serde_json::from_slice(&std::fs::read(records[0].path()).unwrap()).unwrap()
    }
}

/// Whether the job printed `line` (not merely echoed its script, which holds every word).
fn printed(log: &str, line: &str) -> bool {
    log.lines().any(|l| l == line)
}

fn log(project: &Path, run: u32) -> String {
    std::fs::read_to_string(project.join(format!(".pipe/runs/{run}/logs/deps.log")))
        .unwrap_or_default()
}

#[test]
fn a_cache_saved_on_one_machine_is_restored_on_another_from_the_object_store() {
    let m = machines();
    let first = m.run(&m.a);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(printed(&log(&m.a, 1), "fetched"), "{}", log(&m.a, 1));
    assert!(
        log(&m.a, 1).contains("pipe: cache saved as `deps-"),
        "{}",
        log(&m.a, 1)
    );
    let record = m.record();
    assert_eq!(record["run"], 1);
    assert_eq!(record["job"], "deps");
    let blob = record["blob"].as_str().unwrap();
    assert!(
        m.objects
            .join("sha256")
            .join(&blob[..2])
            .join(blob)
            .is_file(),
        "the archive is a blob named by its hash"
    );

    let second = m.run(&m.b);
    assert_eq!(second.code, 0, "{}", second.all());
    let restored = log(&m.b, 2);
    assert!(
        restored.contains("pipe: cache restored from `deps-"),
        "{restored}"
    );
    // The job on the other machine read the file the first machine's job made.
    assert!(
        printed(&restored, "restored: fetched in run 1"),
        "{restored}"
    );
    for machine in ["a", "b"] {
        let folder = m.cache_home(machine).join("pipe");
        assert!(!folder.exists(), "no cache in {}", folder.display());
    }

    let listed = m.pipe(&m.b, &["cache", "list", "--output", "json"]);
    assert_eq!(listed.code, 0, "{}", listed.all());
    let entry: serde_json::Value = serde_json::from_str(listed.stdout.trim()).unwrap();
    assert_eq!(
        (entry["run"].as_i64(), entry["job"].as_str()),
        (Some(1), Some("deps"))
    );
    let cleared = m.pipe(&m.a, &["cache", "clear"]);
    assert_eq!(cleared.code, 0, "{}", cleared.all());
    assert_eq!(cleared.stdout, "removed 1 cache(s)\n");
    let third = m.run(&m.b);
    assert_eq!(third.code, 0, "{}", third.all());
    assert!(
        log(&m.b, 3).contains("pipe: no cache for `deps-"),
        "{}",
        log(&m.b, 3)
    );
}

#[test]
fn a_damaged_cache_archive_is_a_warning_and_the_job_runs_without_it_and_saves_a_sound_one() {
    let m = machines();
    let first = m.run(&m.a);
    assert_eq!(first.code, 0, "{}", first.all());
    let blob = m.record()["blob"].as_str().unwrap().to_string();
    std::fs::write(
        m.objects.join("sha256").join(&blob[..2]).join(&blob),
        "not a tar",
    )
    .unwrap();

    let second = m.run(&m.b);
    assert_eq!(second.code, 0, "{}", second.all());
    let said = log(&m.b, 2);
    assert!(said.contains("is damaged and forgotten"), "{said}");
    assert!(said.contains("does not hash to its name"), "{said}");
    assert!(printed(&said, "fetched"), "{said}");
    assert!(said.contains("pipe: cache saved as `deps-"), "{said}");
    assert_eq!(m.record()["run"], 2, "the damaged entry was replaced");

    let third = m.run(&m.a);
    assert_eq!(third.code, 0, "{}", third.all());
    assert!(
        printed(&log(&m.a, 3), "restored: fetched in run 2"),
        "{}",
        log(&m.a, 3)
    );
}
