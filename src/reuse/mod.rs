//! Content-addressed job reuse: a job whose inputs are those of a job that passed in an earlier
//! run, whose artifacts and log (and its SARIF report: a scan job's, or its `reports:`) are still there, does not run
//! again; they are copied into the new run, and it counts as passed with the findings it had.
//!
//! A job's key covers what stands for its image (the image's id on Docker, see
//! [`crate::backend::Backend::identity`]), its name, script, environment (all of it, git's
//! facts included, but the run's number), the list of changed files, matrix values,
//! declared artifacts, reports and scanners, its services as written, the files of the tree it sees (only those its `inputs:`
//! globs match, when it has them) and the content of the artifacts it receives. Keys live under
//! `.pipe/reuse/keys/`, each naming the run that holds the job's outputs.

mod index;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use index::{hex, Manifest};

use crate::backend::JobSpec;
use crate::pipeline::Job;
use crate::store::RunId;
use crate::workspace::{self, private, RunDir, STATE_DIR};

/// Bumped whenever what a key covers changes, so that no old key matches by accident.
const KEY_VERSION: &str = "pipe-reuse 1";

/// Variables of a job's environment that differ in every run: in a key, no run would ever
/// match another. (`PIPE_CHANGED_FILES` is a path into the run; the list it names is keyed.)
const PER_RUN: &[&str] = &["PIPE_RUN_ID", "PIPE_CHANGED_FILES"];

/// Reuse for one run: the files its jobs see, hashed once, and where its outputs go.
pub struct Reuse {
    project: PathBuf,
    run: RunDir,
    files: Manifest,
}

/// A job reused from an earlier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The run in which the job last ran for real.
    pub origin: RunId,
    pub findings: Option<crate::scan::Counts>,
}

/// What a key file says: where the job's outputs are.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    /// The run that ran the job.
    origin: RunId,
    /// The run whose directory holds the outputs (the origin, or a later run that reused it).
    run: RunId,
    slug: String,
    artifacts: bool,
    findings: Option<crate::scan::Counts>,
    /// The job kept a SARIF report: a scan job's, or the reports its tools wrote. Absent in
    /// keys of older versions, which had one only for scan jobs.
    #[serde(default)]
    sarif: bool,
}

/// Whether a job may be reused at all: never a deploy or release job, nor one that asked not to
/// be, nor one that mounts host paths (what it reads there is not in its key).
pub fn eligible(job: &Job) -> bool {
    job.reuse && !job.deploys() && job.volumes.is_empty()
}

impl Reuse {
    pub fn new(project: &Path, run: RunDir, files: Manifest) -> Reuse {
        Reuse {
            project: project.to_path_buf(),
            run,
            files,
        }
    }

    /// The key of `job` run as `spec`, where `identity` stands for its image.
    pub async fn key(
        self: &Arc<Self>,
        job: Job,
        spec: &JobSpec,
        identity: String,
    ) -> io::Result<String> {
        let this = self.clone();
        // Layer 0 is the tree, already in the manifest; the others are received artifacts.
        let received: Vec<PathBuf> = spec.layers.iter().skip(1).cloned().collect();
        let env: Vec<(String, String)> = spec
            .env
            .iter()
            .filter(|(name, _)| !PER_RUN.contains(&name.as_str()))
            .cloned()
            .collect();
        tokio::task::spawn_blocking(move || this.key_now(&job, &identity, &env, &received))
            .await
            .map_err(io::Error::other)?
    }

    fn key_now(
        &self,
        job: &Job,
        identity: &str,
        env: &[(String, String)],
        received: &[PathBuf],
    ) -> io::Result<String> {
        let mut h = Fields(Sha256::new());
        h.field(KEY_VERSION);
        h.field(identity);
        h.field(&job.name);
        h.list(&job.script);
        h.count(env.len());
        for (name, value) in env {
            h.field(name);
            h.field(value);
        }
        // What `PIPE_CHANGED_FILES` names: its path is the run's, its list a job may act on.
        match fs::read(self.run.changed_files()) {
            Ok(list) => h.field(&String::from_utf8_lossy(&list)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => h.field("no changed files list"),
            Err(e) => return Err(e),
        }
        h.count(job.matrix.len());
        for (name, value) in &job.matrix {
            h.field(name);
            h.field(value);
        }
        h.list(job.artifacts.iter().map(ToString::to_string));
        // Hashed only when written, so the keys of jobs without reports stay as they were.
        if !job.reports.is_empty() {
            h.list(job.reports.iter().map(ToString::to_string));
        }
        h.list(job.scan.iter().map(|s| format!("{s:?}")));
        h.field(job.fail_on.as_str());
        h.list(job.inputs.iter().map(|g| g.as_str()));
        // The names of the secrets it gets, never their values: a rotated token reuses.
        h.list(job.secrets.iter().map(|s| s.name.as_str()));
        // Its services, as written: what the job tests against.
        h.list(job.services.iter().map(|s| {
            let (env, command, ready) = (&s.env, &s.command, &s.ready);
            format!(
                "{} {} {env:?} {command:?} {ready:?} {:?}",
                s.name, s.image, s.timeout
            )
        }));
        let seen = self.files.files.iter().filter(|(path, _)| {
            job.inputs.is_empty() || job.inputs.iter().any(|g| g.is_match(path))
        });
        for (path, hash) in seen {
            h.field(path);
            h.0.update(hash);
        }
        h.field("received");
        for dir in received {
            h.field(&dir_hash(dir)?);
        }
        Ok(hex(&h.0.finalize()))
    }

    /// The earlier run whose outputs of the job with `key` are still there, now copied into this
    /// run (`spec`'s artifacts, the log); `None` when there is none.
    pub async fn restore(self: &Arc<Self>, key: String, spec: &JobSpec) -> io::Result<Option<Hit>> {
        let this = self.clone();
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || this.restore_now(&key, &spec))
            .await
            .map_err(io::Error::other)?
    }

    fn restore_now(&self, key: &str, spec: &JobSpec) -> io::Result<Option<Hit>> {
        let text = match fs::read(self.key_file(key)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // A key file from another version of pipe, or damaged: the job runs.
        let Ok(found) = serde_json::from_slice::<Recorded>(&text) else {
            return Ok(None);
        };
        // A slug is one plain path component; anything else is not pipe's.
        if found.slug.contains('/') || found.slug.starts_with('.') || found.slug.is_empty() {
            return Ok(None);
        }
        let held = RunDir::at(&self.project, found.run);
        let (log, artifacts) = (held.log(&found.slug), held.artifacts(&found.slug));
        // A scan job's outputs include its SARIF report, and so do those of a job with reports.
        let sarif = (spec.scan.is_some() || found.sarif)
            .then(|| (held.sarif(&found.slug), self.run.sarif(&spec.slug)));
        if !log.is_file()
            || (found.artifacts && !artifacts.is_dir())
            || sarif.as_ref().is_some_and(|(old, _)| !old.is_file())
        {
            return Ok(None);
        }
        if found.artifacts {
            workspace::remove(&spec.artifacts_dest)?;
            // What a job made: laid without following any link in it.
            workspace::lay(&artifacts, &spec.artifacts_dest, Path::new(""))?;
        }
        let new_log = self.run.log(&spec.slug);
        if let Some(dir) = new_log.parent() {
            private::dir(dir)?;
        }
        private::write(&new_log, as_ran(&fs::read(&log)?))?;
        if let Some((old, new)) = sarif {
            if let Some(dir) = new.parent() {
                private::dir(dir)?;
            }
            private::write(&new, fs::read(old)?)?;
        }
        let hit = Hit {
            origin: found.origin,
            findings: found.findings,
        };
        // This run holds the outputs now: older runs may be cleaned away.
        self.record_now(key, spec, found.origin, found.findings)?;
        Ok(Some(hit))
    }

    /// Remembers that the job with `key` passed in this run (its outputs are here).
    pub async fn record(
        self: &Arc<Self>,
        key: String,
        spec: &JobSpec,
        findings: Option<crate::scan::Counts>,
    ) -> io::Result<()> {
        let this = self.clone();
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || this.record_now(&key, &spec, this.run.id, findings))
            .await
            .map_err(io::Error::other)?
    }

    fn record_now(
        &self,
        key: &str,
        spec: &JobSpec,
        origin: RunId,
        findings: Option<crate::scan::Counts>,
    ) -> io::Result<()> {
        let recorded = Recorded {
            origin,
            run: self.run.id,
            slug: spec.slug.clone(),
            artifacts: spec.artifacts_dest.is_dir(),
            findings,
            sarif: self.run.sarif(&spec.slug).is_file(),
        };
        let path = self.key_file(key);
        let dir = path.parent().expect("keys/KEY has a parent");
        private::dir(dir.parent().expect("reuse/keys has a parent"))?;
        private::dir(dir)?;
        // Written whole, then renamed: two runs recording one key never leave half a file.
        let tmp = dir.join(format!(".{key}.{}", std::process::id()));
        private::write(
            &tmp,
            serde_json::to_vec(&recorded).map_err(io::Error::other)?,
        )?;
        fs::rename(&tmp, &path)
    }

    fn key_file(&self, key: &str) -> PathBuf {
        reuse_dir(&self.project).join("keys").join(key)
    }
}

/// A log as the job's run wrote it: without the line that said a later run reused it, so that a
/// log reused again and again says so once.
fn as_ran(log: &[u8]) -> &[u8] {
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if body[start..].starts_with(b"pipe: job reused (run ") {
        &log[..start]
    } else {
        log
    }
}

fn reuse_dir(project: &Path) -> PathBuf {
    project.join(STATE_DIR).join("reuse")
}

/// The manifest of the files a run of the working tree sees (as its snapshot copies them).
pub fn tree_manifest(project: &Path) -> io::Result<Manifest> {
    let files = std::sync::Mutex::new(Vec::new());
    workspace::tree_walk(project).run(|| {
        Box::new(|entry| {
            if let Ok(entry) = entry {
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                if let (false, Ok(rel)) = (is_dir, entry.path().strip_prefix(project)) {
                    files.lock().expect("no panics").push(rel.to_path_buf());
                }
            }
            ignore::WalkState::Continue
        })
    });
    let mut files = files.into_inner().expect("no panics");
    // As the snapshot does: files git tracks although an ignore rule matches them.
    files.extend(
        crate::git::tracked_files(project)
            .into_iter()
            .filter(|rel| {
                !matches!(
                    rel.components().next().and_then(|c| c.as_os_str().to_str()),
                    Some(".git" | STATE_DIR)
                )
            }),
    );
    manifest_of(project, project, files)
}

/// The manifest of an exact tree laid out at `dir` (a commit's kept checkout).
pub fn dir_manifest(project: &Path, dir: &Path) -> io::Result<Manifest> {
    let files = workspace::walk(dir)?.into_iter().map(|e| e.path).collect();
    manifest_of(project, dir, files)
}

/// One index per tree hashed, named for where the tree is.
fn manifest_of(project: &Path, root: &Path, files: Vec<PathBuf>) -> io::Result<Manifest> {
    let name = hex(&Sha256::digest(root.as_os_str().as_encoded_bytes())[..8]);
    let index = reuse_dir(project).join(format!("index-{name}"));
    private::dir(&project.join(STATE_DIR))?;
    let started = std::time::Instant::now();
    let walked = files.len();
    let (manifest, read) = index::manifest(root, files, &index)?;
    tracing::debug!(
        "hashed the files jobs see: {walked} files, {read} read, in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(manifest)
}

/// The content of a directory of artifacts: every file's path, kind and bytes, no link followed.
fn dir_hash(dir: &Path) -> io::Result<String> {
    let mut h = Fields(Sha256::new());
    for entry in workspace::walk(dir)? {
        h.field(&entry.path.to_string_lossy());
        match entry.link {
            Some(target) => h.field(&format!("link {}", target.to_string_lossy())),
            None => {
                let mut file = fs::File::open(dir.join(&entry.path))?;
                io::copy(&mut file, &mut h.0)?;
            }
        }
    }
    Ok(hex(&h.0.finalize()))
}

/// Fields hashed with their lengths, so that no two different lists of fields hash alike.
struct Fields(Sha256);

impl Fields {
    fn field(&mut self, text: &str) {
        self.count(text.len());
        self.0.update(text.as_bytes());
    }

    fn count(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }

    fn list<S: AsRef<str>>(&mut self, items: impl IntoIterator<Item = S>) {
        let items: Vec<S> = items.into_iter().collect();
        self.count(items.len());
        for item in items {
            self.field(item.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> Job {
        let pipeline = crate::pipeline::parse(yaml, "t").expect("valid");
        pipeline.jobs.into_iter().next().unwrap()
    }

    fn reuse(files: &[(&str, u8)]) -> (tempfile::TempDir, Reuse) {
        let dir = tempfile::tempdir().unwrap();
        let files = Manifest {
            files: files
                .iter()
                .map(|(p, h)| (p.to_string(), [*h; 32]))
                .collect(),
        };
        let run = RunDir::at(dir.path(), 1);
        let reuse = Reuse::new(dir.path(), run, files);
        (dir, reuse)
    }

    #[test]
    fn a_key_covers_the_files_its_inputs_match_and_nothing_else() {
        let with_inputs = job("jobs:\n  a: {inputs: ['src/**'], script: [make]}\n");
        let every_file = job("jobs:\n  a: {script: [make]}\n");
        let (_d, before) = reuse(&[("src/a.c", 1), ("README", 1)]);
        let (_d2, readme) = reuse(&[("src/a.c", 1), ("README", 2)]);
        let (_d3, source) = reuse(&[("src/a.c", 2), ("README", 1)]);
        let key = |r: &Reuse, j: &Job| r.key_now(j, "image", &[], &[]).unwrap();
        assert_eq!(key(&before, &with_inputs), key(&readme, &with_inputs));
        assert_ne!(key(&before, &with_inputs), key(&source, &with_inputs));
        assert_ne!(key(&before, &every_file), key(&readme, &every_file));
        assert_ne!(
            key(&before, &every_file),
            before.key_now(&every_file, "other", &[], &[]).unwrap()
        );
    }

    #[test]
    fn deploys_release_jobs_host_mounts_and_opted_out_jobs_are_never_reused() {
        assert!(eligible(&job("jobs:\n  a: {script: [make]}\n")));
        assert!(!eligible(&job(
            "jobs:\n  a: {stage: deploy, script: [make]}\n"
        )));
        assert!(!eligible(&job(
            "jobs:\n  a: {environment: prod, script: [make]}\n"
        )));
        assert!(!eligible(&job(
            "jobs:\n  a: {stage: release, script: [make]}\n"
        )));
        assert!(!eligible(&job(
            "jobs:\n  a: {reuse: false, script: [make]}\n"
        )));
        assert!(!eligible(&job(
            "jobs:\n  a: {volumes: ['/tmp:/tmp'], script: [make]}\n"
        )));
    }

    #[test]
    fn a_log_reused_again_says_so_once() {
        let log = b"out\npipe: job passed\npipe: job reused (run 1)\n";
        assert_eq!(as_ran(log), b"out\npipe: job passed\n");
        assert_eq!(
            as_ran(b"out\npipe: job passed\n"),
            b"out\npipe: job passed\n"
        );
        assert_eq!(as_ran(b""), b"");
    }
}
