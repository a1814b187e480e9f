//! Consumers of the scheduler's events: what the user sees and what is kept. How output looks is
//! a pure function of (is a terminal, `CI` set, flags), chosen once in [`Mode::choose`].

mod json;
mod junit;
mod logs;
mod plain;
mod progress;
mod screen;
mod store;
mod summary;
mod tail;
mod verdict;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::backend::Backlog;
use crate::event::Event;
use crate::mask::Patterns;

pub use screen::ScreenQueue;
pub use store::{HeldRecords, StoreSink};
use summary::Summary;
pub use verdict::verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live progress lines on a terminal.
    Progress,
    /// Plain lines prefixed with the job name: logs, CI, pipes.
    Plain,
    /// One JSON object per event.
    Json,
}

impl Mode {
    pub fn choose(json: bool, stdout_is_terminal: bool, ci: bool) -> Mode {
        if json {
            Mode::Json
        } else if stdout_is_terminal && !ci {
            Mode::Progress
        } else {
            Mode::Plain
        }
    }
}

/// How a person or program watching the run sees it.
pub struct Options {
    pub mode: Mode,
    /// Stream every output line, not only the last one of each job.
    pub verbose: bool,
    pub color: bool,
    /// The output lines on their way to the screen: the same queue the recorder is given.
    pub queue: Arc<ScreenQueue>,
}

/// Something that reacts to events, in order.
trait Reporter: Send {
    fn event(&mut self, event: &Event) -> io::Result<()>;
    /// Writes out what is buffered; called whenever no event is waiting.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Records a phase of a run as its events come — each job's log file, then the store — and
/// passes every event on to `forward`, until the sender side closes, waiting while `forward`'s
/// screen is far behind (see [`screen`]); what events say in pipe's words is masked of `masks`
/// first (output lines come masked). Any failure to record
/// (a log on a full disk, the store) stops that recorder and is returned, the first one, for
/// the run to fail with.
pub fn record(
    log_files: HashMap<String, PathBuf>,
    store: StoreSink,
    forward: Option<(mpsc::UnboundedSender<Event>, Arc<ScreenQueue>)>,
    events: mpsc::UnboundedReceiver<Event>,
    masks: Arc<Patterns>,
    backlog: Arc<Backlog>,
) -> tokio::task::JoinHandle<Option<String>> {
    let mut reporters: Vec<(Box<dyn Reporter>, bool)> = Vec::new();
    if !log_files.is_empty() {
        reporters.push((Box::new(logs::LogFiles::new(log_files)), true));
    }
    reporters.push((Box::new(store), true));
    if let Some((to, queue)) = forward {
        reporters.push((Box::new(Forward { to, queue }), true));
    }
    reporters.push((Box::new(Drained(backlog)), true));
    tokio::task::spawn_blocking(move || deliver_all(reporters, events, &masks))
}

/// Writes the JUnit report of a request's runs to `file` (see [`junit`]) and passes every event
/// on to `forward`, until the sender side closes. A report that cannot be written is returned.
pub fn junit(
    file: PathBuf,
    events: mpsc::UnboundedReceiver<Event>,
    forward: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<Option<String>> {
    let reporters: Vec<(Box<dyn Reporter>, bool)> = vec![
        (Box::new(junit::JUnit::new(file)), true),
        (
            Box::new(Forward {
                to: forward,
                // The recorder before counts the lines for the screen after.
                queue: Arc::default(),
            }),
            true,
        ),
    ];
    tokio::task::spawn_blocking(move || deliver_all(reporters, events, &Patterns::default()))
}

/// How much of the jobs' output is gathered before it is written to stdout in one go.
const OUT_BUFFER: usize = 64 * 1024;

/// Shows every event of a request the way `options` say, with a summary table after each run
/// or release (but in JSON), until the sender side closes, counting the output lines shown
/// against `options.queue`. Output that can no longer be written (a closed pipe) is dropped
/// quietly; any other failure is returned.
pub fn show(
    options: Options,
    events: mpsc::UnboundedReceiver<Event>,
) -> tokio::task::JoinHandle<Option<String>> {
    let queue = options.queue;
    queue.count();
    let screen: Box<dyn Reporter> = match options.mode {
        Mode::Progress => Box::new(progress::Progress::new(
            options.verbose,
            options.color,
            queue.clone(),
        )),
        // Buffered: stdout alone writes each line as it comes, a system call per line.
        Mode::Plain => Box::new(plain::Plain::new(
            Box::new(io::BufWriter::with_capacity(OUT_BUFFER, io::stdout())),
            options.color,
        )),
        Mode::Json => Box::new(json::JsonLines::new(Box::new(
            io::BufWriter::with_capacity(OUT_BUFFER, io::stdout()),
        ))),
    };
    let mut reporters: Vec<(Box<dyn Reporter>, bool)> = vec![(screen, true)];
    if options.mode != Mode::Json {
        reporters.push((
            Box::new(SummaryTable {
                summary: Summary::default(),
                failures: tail::Failures::default(),
                color: options.color,
            }),
            true,
        ));
    }
    // Last, and never failing: a line is counted shown even when the screen has gone away.
    reporters.push((Box::new(Shown(queue)), true));
    tokio::task::spawn_blocking(move || deliver_all(reporters, events, &Patterns::default()))
}

fn deliver_all(
    mut reporters: Vec<(Box<dyn Reporter>, bool)>,
    mut events: mpsc::UnboundedReceiver<Event>,
    masks: &Patterns,
) -> Option<String> {
    let mut failure: Option<String> = None;
    let deliver = |reporters: &mut Vec<(Box<dyn Reporter>, bool)>,
                   failure: &mut Option<String>,
                   call: &dyn Fn(&mut dyn Reporter) -> io::Result<()>| {
        for (reporter, alive) in reporters.iter_mut().filter(|(_, alive)| *alive) {
            if let Err(e) = call(reporter.as_mut()) {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    tracing::warn!("stopped recording the run: {e}");
                    failure.get_or_insert_with(|| e.to_string());
                }
                *alive = false;
            }
        }
    };
    loop {
        // Buffers are written out whenever the queue runs dry: cheap under a flood of
        // output, and live (for `pipe logs --follow`, or a `kill -9`) otherwise.
        let mut event = match events.try_recv() {
            Ok(event) => event,
            Err(mpsc::error::TryRecvError::Empty) => {
                deliver(&mut reporters, &mut failure, &|r| r.flush());
                match events.blocking_recv() {
                    Some(event) => event,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        masks.event(&mut event);
        deliver(&mut reporters, &mut failure, &|r| r.event(&event));
    }
    deliver(&mut reporters, &mut failure, &|r| r.flush());
    failure
}

/// Counts each output line as recorded, once the recorders and `forward` have had it, so that
/// the jobs' output waits while the recorder falls behind.
struct Drained(Arc<Backlog>);

impl Reporter for Drained {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if let crate::event::EventKind::JobOutput { .. } = event.kind {
            self.0.recorded();
        }
        Ok(())
    }
}

/// Passes events on, after the recorders have seen them, waiting while the screen they go to
/// has too many output lines to show.
struct Forward {
    to: mpsc::UnboundedSender<Event>,
    queue: Arc<ScreenQueue>,
}

impl Reporter for Forward {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if let crate::event::EventKind::JobOutput { .. } = event.kind {
            self.queue.queue(|| self.to.is_closed());
        }
        // A watcher that went away does not stop the run.
        let _ = self.to.send(event.clone());
        Ok(())
    }
}

/// Counts each output line as shown, once the screen has had it.
struct Shown(Arc<ScreenQueue>);

impl Reporter for Shown {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if let crate::event::EventKind::JobOutput { .. } = event.kind {
            self.0.shown();
        }
        Ok(())
    }
}

/// The table of what happened to each job, printed on stdout when a run (or release) ends,
/// after the last lines of each failed job's log.
struct SummaryTable {
    summary: Summary,
    failures: tail::Failures,
    color: bool,
}

impl Reporter for SummaryTable {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.summary.event(event);
        self.failures.event(event);
        if let crate::event::EventKind::RunFinished { .. } = event.kind {
            // As before events were shown live: a table that cannot be written is no failure.
            let mut out = io::stdout().lock();
            let _ = self
                .failures
                .write(&mut out, self.color)
                .and_then(|_| self.summary.write_table(&mut out, self.color))
                .and_then(|_| out.flush());
        }
        Ok(())
    }
}

/// A notice that is no job's output, said on stderr so stdout stays the jobs' and the tables'.
fn notice(event: &Event) -> Option<String> {
    use crate::event::EventKind;
    match &event.kind {
        EventKind::PrivilegeGranted { job, what } => {
            Some(format!("pipe: --allow-privileged: job `{job}` gets {what}"))
        }
        EventKind::AwaitingRelease { next, .. } => Some(next.clone()),
        EventKind::ReleaseStep { message, .. } => Some(format!("pipe: {message}")),
        EventKind::Stopping { kill: false, .. } => {
            Some("pipe: stopping jobs (press Ctrl-C again to kill them)".into())
        }
        EventKind::Stopping { kill: true, .. } => Some("pipe: killing jobs".into()),
        EventKind::Watching {} => Some("pipe: watching for changes (Ctrl-C ends)".into()),
        EventKind::FilesChanged { paths } => Some(changed(paths)),
        _ => None,
    }
}

/// The files that start a new run of a watch session, the first few by name.
fn changed(paths: &[String]) -> String {
    const NAMED: usize = 3;
    let mut line = format!(
        "pipe: changed: {}",
        paths[..paths.len().min(NAMED)].join(", ")
    );
    if paths.len() > NAMED {
        line.push_str(&format!(" and {} more", paths.len() - NAMED));
    }
    line + "; running again"
}

/// `1.2s`, `2m03s`: short durations for tables and status lines.
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_mode_is_a_function_of_terminal_ci_and_flags() {
        assert_eq!(Mode::choose(false, true, false), Mode::Progress);
        assert_eq!(Mode::choose(false, true, true), Mode::Plain);
        assert_eq!(Mode::choose(false, false, false), Mode::Plain);
        assert_eq!(Mode::choose(true, true, false), Mode::Json);
    }

    #[test]
    fn a_watch_session_names_the_first_changed_files() {
        let paths = |n: usize| (1..=n).map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(changed(&paths(1)), "pipe: changed: f1; running again");
        assert_eq!(
            changed(&paths(5)),
            "pipe: changed: f1, f2, f3 and 2 more; running again"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(std::time::Duration::from_millis(1234)), "1.2s");
        assert_eq!(duration(std::time::Duration::from_secs(123)), "2m03s");
    }
}
