//! How one job runs somewhere. The scheduler hands a backend a [`JobSpec`] and gets back the
//! job's exit code; output goes to a [`LogSink`] line by line. Backends know nothing of YAML,
//! plans or reporters.

pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod inprocess;
pub mod local;
mod output;
pub mod route;
pub mod services;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch, Notify};

use crate::event::{Event, EventKind, Stream};
use crate::mask::Patterns;
use crate::pipeline::ArtifactPath;
pub use output::Output;

/// Everything a backend needs to run one attempt of one job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub run_id: String,
    /// The job's name as users see it.
    pub job: String,
    /// A name safe for paths and Docker objects, unique within the run.
    pub slug: String,
    pub image: Option<String>,
    pub script: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The secrets the job names, set in its environment after `env`. Never part of the
    /// container's recorded configuration.
    pub secrets: crate::secret::Secrets,
    /// What the job's workspace is made of, bottom first: the run's source snapshot, then the
    /// artifacts of each job it needs. Never written to.
    pub layers: Vec<PathBuf>,
    /// A directory private to this attempt, for its writable workspace. The backend removes it
    /// when it tears the attempt down.
    pub scratch: PathBuf,
    /// Workspace-relative paths or globs to keep when the job passes, copied under
    /// `artifacts_dest`.
    pub artifacts: Vec<ArtifactPath>,
    pub artifacts_dest: PathBuf,
    /// Dangerous settings the user allowed explicitly (`--allow-privileged`).
    pub privileged: bool,
    /// The job gets a network; `false`: none at all (Docker's `none` network mode).
    pub network: bool,
    pub binds: Vec<Bind>,
    /// Set for scan jobs, which run in-process instead of a script.
    pub scan: Option<inprocess::ScanSpec>,
    /// The job's `cache: paths`, copied like artifacts when it passes, for the cache to save.
    pub cache: Option<CachePaths>,
    /// Containers started beside the job on a network of its own; none for most jobs.
    pub services: services::Services,
    /// Set for a `build_image` job, which the engine carries out instead of a script: the
    /// build with its variables expanded, or why they could not be.
    pub build: Option<Result<crate::image::BuildSpec, String>>,
    /// Set for a `push` job, which the engine carries out instead of a script.
    pub push: Option<Result<crate::image::PushSpec, String>>,
    /// What is done with what the job changes outside its workspace.
    pub drift: DriftSpec,
}

/// What a backend that can tell a job's drift does with it.
#[derive(Debug, Clone, Default)]
pub struct DriftSpec {
    /// A job that wrote into system paths fails (`drift: fail`).
    pub fail: bool,
    /// Where the drift is kept for the run's scan jobs to report.
    pub record: Option<PathBuf>,
}

/// What a job's cache keeps, and where the backend copies it (never following a link).
#[derive(Debug, Clone)]
pub struct CachePaths {
    pub paths: Vec<ArtifactPath>,
    pub dest: PathBuf,
}

/// A host path mounted into the job's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

/// How hard the scheduler wants a running job to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    No,
    /// SIGTERM, then SIGKILL after the grace period.
    Graceful,
    /// SIGKILL now.
    Kill,
}

/// What came of an attempt that the backend managed to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: i64,
    /// Artifact paths the job declared but did not produce.
    pub missing_artifacts: Vec<String>,
    /// What a scan job found, per severity.
    pub findings: Option<crate::scan::Counts>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No engine answers: nothing can run.
    #[error("{0}")]
    Unavailable(String),
    /// This job could not be run (image missing, engine refused): the job errors, others go on.
    #[error("{0}")]
    Job(String),
    /// pipe's own work for the job failed, through no fault of the job: its workspace or its
    /// artifacts could not be written (a full disk). The run stops; pipe exits 5.
    #[error("{0}")]
    Internal(String),
}

/// What a backend is told of a run before its first job, to get ready for it (pull images,
/// start what later jobs will use) and size itself.
#[derive(Debug, Clone)]
pub struct RunShape {
    pub run_id: String,
    /// Each job of the run, as far as where it runs goes.
    pub jobs: Vec<JobShape>,
    /// At most this many jobs run at once.
    pub concurrency: usize,
    /// How many jobs are likely to run at once after the first wave (the jobs that wait for
    /// nothing): the most jobs at one later depth of the graph.
    pub widest_later_level: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobShape {
    pub image: Option<String>,
    /// The job's spec will carry a [`inprocess::ScanSpec`].
    pub scan: bool,
    /// The tags a `build_image` job gives the image it builds: jobs that use one must not
    /// have it pulled before it is built.
    pub builds: Vec<String>,
}

pub trait Backend: Send + Sync {
    /// Gets ready to run the jobs of a run (checks and pulls images).
    fn prepare<'a>(&'a self, _run: &'a RunShape) -> BoxFuture<'a, Result<(), BackendError>> {
        async { Ok(()) }.boxed()
    }
    /// Makes ready what running the first attempt of `spec` needs while the jobs it needs still
    /// run (a container, its workspace), so that `run` with that spec only has to start it.
    /// The spec's layers may not exist yet: they are the needed jobs' artifacts to come. What
    /// `run` does not use (a job skipped, reused or cancelled, a workspace that turned out
    /// otherwise) goes at `shutdown`. A backend with nothing to make ahead does nothing.
    fn prepare_job<'a>(&'a self, _spec: &'a JobSpec) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }
    /// Runs one attempt. Returns as soon as the job's process has exited and its artifacts are
    /// kept; tearing down what the attempt used may go on in the background.
    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        log: &'a LogSink,
        stop: watch::Receiver<Stop>,
    ) -> BoxFuture<'a, Result<Outcome, BackendError>>;
    /// What stands for the job's image in its reuse key: what the job runs on, so that a
    /// change to it (an image rebuilt under the same tag) means the job runs again.
    fn identity<'a>(&'a self, spec: &'a JobSpec) -> BoxFuture<'a, Result<String, BackendError>>;
    /// Every job of the run has started or will never run (only a running job's retries may
    /// start after): what was kept ready for later jobs can go now, beside the last ones.
    fn all_started(&self) {}
    /// Waits until everything every attempt used is torn down.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

/// Teardown work that runs beside the scheduler and is awaited before the run ends, so that
/// removing a finished job's container never delays the jobs waiting for it.
#[derive(Default)]
pub struct Teardowns {
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Teardowns {
    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks
            .lock()
            .expect("not poisoned")
            .push(tokio::spawn(work));
    }

    pub async fn wait(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("not poisoned"));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// An attempt that failed keeps no artifacts: a copy cut short (a full disk) must not be left
/// behind, nor handed to a later attempt or a dependent. One that ran keeps them under masked
/// names: a name or link the job made is shown (`pipe artifacts`) as its output is.
pub async fn keep_artifacts(
    spec: &JobSpec,
    log: &LogSink,
    result: Result<Outcome, BackendError>,
) -> Result<Outcome, BackendError> {
    let dest = spec.artifacts_dest.clone();
    if result.is_err() {
        remove_dir(dest).await;
        return result;
    }
    let (log, at) = (log.clone(), dest.clone());
    let masked = tokio::task::spawn_blocking(move || {
        crate::workspace::mask_names(&at, &|name| match log.masked(name) {
            std::borrow::Cow::Owned(masked) => Some(masked),
            std::borrow::Cow::Borrowed(_) => None,
        })
    })
    .await
    .map_err(|e| BackendError::Internal(e.to_string()))
    .and_then(|done| {
        done.map_err(|e| {
            BackendError::Internal(format!("cannot mask the names of the artifacts: {e}"))
        })
    });
    match masked {
        Ok(()) => result,
        // Names left half masked are not kept either.
        Err(e) => {
            remove_dir(dest).await;
            Err(e)
        }
    }
}

/// Removes a directory tree off the async threads.
pub async fn remove_dir(path: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || crate::workspace::remove(&path)).await;
}

/// Where a job's output goes: whole lines, as events, with the run's secrets masked.
/// [`LogSink::output`] is where every byte of every job's output enters pipe.
#[derive(Clone)]
pub struct LogSink {
    job: String,
    events: mpsc::UnboundedSender<Event>,
    masks: Arc<Patterns>,
    backlog: Option<Arc<Backlog>>,
}

impl LogSink {
    pub fn new(job: String, events: mpsc::UnboundedSender<Event>) -> Self {
        LogSink {
            job,
            events,
            masks: Arc::default(),
            backlog: None,
        }
    }

    /// Counts the lines sent against `backlog`, for [`LogSink::room`] to wait on.
    pub fn with_backlog(self, backlog: Arc<Backlog>) -> Self {
        LogSink {
            backlog: Some(backlog),
            ..self
        }
    }

    /// Masks these values in everything the job's output says.
    pub fn masking(self, masks: Arc<Patterns>) -> Self {
        LogSink { masks, ..self }
    }

    /// One of the job's output streams, as bytes come.
    pub fn output(&self, stream: Stream) -> Output {
        Output::new(self.clone(), stream, self.masks.stream())
    }

    /// A whole line that pipe itself says of the job (a scan's report).
    pub fn line(&self, stream: Stream, line: String) {
        let line = match self.masks.text(&line) {
            std::borrow::Cow::Owned(masked) => masked,
            std::borrow::Cow::Borrowed(_) => line,
        };
        self.send(stream, line);
    }

    /// Something pipe says of the job besides its output (an image it built, its drift).
    pub fn event(&self, kind: EventKind) {
        let _ = self.events.send(Event::now(kind));
    }

    /// `bytes` masked, for what pipe writes of the job elsewhere (a scan's SARIF report).
    pub fn masked<'a>(&self, bytes: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        self.masks.bytes(bytes)
    }

    /// A line already masked.
    fn send(&self, stream: Stream, line: String) {
        if let Some(backlog) = &self.backlog {
            backlog.queued.fetch_add(1, Ordering::AcqRel);
        }
        // A closed receiver means the run is being torn down; the output has nowhere to go.
        let _ = self.events.send(Event::now(EventKind::JobOutput {
            job: self.job.clone(),
            stream,
            line,
        }));
    }

    /// Waits while too many lines wait to be recorded: a backend calls it before reading more
    /// of a job's output, so a job printing faster than pipe records holds pipe's memory to
    /// the backlog's, whatever the size of the log.
    pub async fn room(&self) {
        let Some(backlog) = &self.backlog else {
            return;
        };
        loop {
            let drained = backlog.drained.notified();
            tokio::pin!(drained);
            // Registered before looking, so a drain in between is not missed.
            drained.as_mut().enable();
            if backlog.queued.load(Ordering::Acquire) <= BACKLOG_LINES {
                return;
            }
            drained.await;
        }
    }
}

/// At most about this many output lines wait to be recorded (some MB) before the backends stop
/// reading jobs' output for a moment.
pub const BACKLOG_LINES: usize = 32 * 1024;

/// The output lines of a run sent but not yet recorded. The recorder calls
/// [`Backlog::recorded`] for each one.
#[derive(Default)]
pub struct Backlog {
    queued: AtomicUsize,
    drained: Notify,
}

impl Backlog {
    pub fn recorded(&self) {
        // Wakes the waiting backends once half the backlog is gone, not at every line.
        if self.queued.fetch_sub(1, Ordering::AcqRel) == BACKLOG_LINES / 2 {
            self.drained.notify_waiters();
        }
    }
}

/// Cuts a byte stream into lines; a trailing partial line is kept until more comes or `finish`.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

/// A line longer than this is cut, so one runaway line cannot exhaust memory.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(String)) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.pending.len();
            match bytes.iter().take(room + 1).position(|&b| b == b'\n') {
                // A whole line in the chunk needs no copy into `pending`.
                Some(end) if self.pending.is_empty() => {
                    emit(line_of(&bytes[..end]));
                    bytes = &bytes[end + 1..];
                }
                Some(end) => {
                    self.pending.extend_from_slice(&bytes[..end]);
                    emit(self.take());
                    bytes = &bytes[end + 1..];
                }
                None if bytes.len() <= room => {
                    self.pending.extend_from_slice(bytes);
                    return;
                }
                None => {
                    self.pending.extend_from_slice(&bytes[..room]);
                    emit(self.take());
                    bytes = &bytes[room..];
                }
            }
        }
    }

    pub fn finish(&mut self, mut emit: impl FnMut(String)) {
        if !self.pending.is_empty() {
            emit(self.take());
        }
    }

    fn take(&mut self) -> String {
        let line = line_of(&self.pending);
        self.pending.clear();
        line
    }
}

fn line_of(bytes: &[u8]) -> String {
    let mut line = String::from_utf8_lossy(bytes).into_owned();
    if line.ends_with('\r') {
        line.pop();
    }
    line
}

/// The job's script as one `sh -e` program that echoes each line before it runs it.
pub fn shell_script(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str("printf '%s\\n' ");
        out.push_str(&shell_quote(&format!("$ {line}")));
        out.push('\n');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The first line of a script that gets its secrets on stdin ([`shell_exports`]): the
/// shell reads them all, then runs the script with its stdin at an end.
pub const READ_SECRETS: &str = r#"eval "$(cat)""#;

/// `export NAME='value'` for each secret, quoted so that any value (several lines, quotes) is
/// taken as it is.
pub fn shell_exports(secrets: &crate::secret::Secrets) -> String {
    secrets
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut s = LineSplitter::default();
        let mut lines = Vec::new();
        s.push(b"one\ntw", |l| lines.push(l));
        s.push(b"o\r\nthree", |l| lines.push(l));
        s.finish(|l| lines.push(l));
        assert_eq!(lines, ["one", "two", "three"]);
    }

    #[test]
    fn a_runaway_line_is_cut_wherever_the_chunks_end() {
        let mut lines = Vec::new();
        for chunk in [1, 7, MAX_LINE, MAX_LINE + 1, 3 * MAX_LINE] {
            let mut s = LineSplitter::default();
            let text = [
                vec![b'x'; MAX_LINE * 2 + 5],
                b"\nshort\n".to_vec(),
                vec![b'y'; MAX_LINE],
                b"\n".to_vec(),
            ]
            .concat();
            let mut got = Vec::new();
            text.chunks(chunk)
                .for_each(|c| s.push(c, |l| got.push(l.len())));
            s.finish(|l| got.push(l.len()));
            lines.push(got);
        }
        for got in lines {
            assert_eq!(got, [MAX_LINE, MAX_LINE, 5, 5, MAX_LINE]);
        }
    }

    #[tokio::test]
    async fn a_full_backlog_holds_the_output_until_half_of_it_is_recorded() {
        let (events, _received) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let log = LogSink::new("loud".into(), events).with_backlog(backlog.clone());
        for _ in 0..BACKLOG_LINES {
            log.line(Stream::Stdout, "x".into());
        }
        assert!(log.room().now_or_never().is_some(), "room up to the limit");
        log.line(Stream::Stdout, "x".into());
        assert!(log.room().now_or_never().is_none(), "no room past it");
        let waiting = tokio::spawn({
            let log = log.clone();
            async move { log.room().await }
        });
        tokio::task::yield_now().await;
        // The recorder's part: the waiting backend is woken once half the lines are recorded.
        for _ in 0..=BACKLOG_LINES / 2 + 1 {
            backlog.recorded();
        }
        waiting.await.unwrap();
    }

    #[test]
    fn script_echoes_each_line_quoted() {
        let script = shell_script(&["echo 'hi'".into()]);
        assert_eq!(script, "printf '%s\\n' '$ echo '\\''hi'\\'''\necho 'hi'\n");
    }
}
