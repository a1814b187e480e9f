//! Consumers of the scheduler's events: what the user sees and what is kept. How output looks is
//! a pure function of (is a terminal, `CI` set, flags), chosen once in [`Mode::choose`].

mod json;
mod logs;
mod plain;
mod progress;
mod store;
mod summary;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::event::Event;

pub use store::StoreSink;
use summary::Summary;

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

pub struct Options {
    pub mode: Mode,
    /// Stream every output line, not only the last one of each job.
    pub verbose: bool,
    pub color: bool,
    /// Where each job's full log is written.
    pub log_files: HashMap<String, PathBuf>,
    /// Where job results are recorded.
    pub store: Option<StoreSink>,
}

/// Something that reacts to events, in order.
trait Reporter: Send {
    fn event(&mut self, event: &Event) -> io::Result<()>;
    /// Writes out what is buffered; called whenever no event is waiting.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds every event to the chosen reporters until the sender side closes, then prints the
/// summary table. Output that can no longer be written (a closed pipe) is dropped quietly; any
/// other failure to record or show the run (a log on a full disk, the store) stops that reporter
/// and is returned, the first one, for the run to fail with.
pub fn spawn(
    options: Options,
    mut events: mpsc::UnboundedReceiver<Event>,
) -> tokio::task::JoinHandle<Option<String>> {
    tokio::task::spawn_blocking(move || {
        let mut failure: Option<String> = None;
        let mut summary = Summary::default();
        let mut reporters: Vec<(Box<dyn Reporter>, bool)> = Vec::new();
        if !options.log_files.is_empty() {
            reporters.push((Box::new(logs::LogFiles::new(options.log_files)), true));
        }
        if let Some(sink) = options.store {
            reporters.push((Box::new(sink), true));
        }
        let screen: Box<dyn Reporter> = match options.mode {
            Mode::Progress => Box::new(progress::Progress::new(options.verbose, options.color)),
            Mode::Plain => Box::new(plain::Plain::new(Box::new(io::stdout()), options.color)),
            Mode::Json => Box::new(json::JsonLines::new(Box::new(io::stdout()))),
        };
        reporters.push((screen, true));
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
            let event = match events.try_recv() {
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
            summary.event(&event);
            deliver(&mut reporters, &mut failure, &|r| r.event(&event));
        }
        if options.mode != Mode::Json {
            let mut out = io::stdout().lock();
            let _ = summary
                .write_table(&mut out, options.color)
                .and_then(|_| out.flush());
        }
        failure
    })
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

/// ANSI styling, applied only when color is on.
pub(crate) fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn status_color(status: &str) -> &'static str {
    match status {
        "passed" => "32",
        "failed" | "timed out" | "error" => "31",
        "allowed to fail" => "33",
        _ => "2",
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
    fn durations_are_short() {
        assert_eq!(duration(std::time::Duration::from_millis(1234)), "1.2s");
        assert_eq!(duration(std::time::Duration::from_secs(123)), "2m03s");
    }
}
