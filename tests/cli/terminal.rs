//! What a person sees on a terminal: colours there (through a pseudo-terminal made by
//! util-linux `script`), none through a pipe or with `NO_COLOR`, the run's header, and no live
//! line left on the screen when a run ends or is interrupted.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use crate::harness::{KillOnDrop, Project};

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";

fn project() -> Project {
    let project = Project::new(
        "jobs:
  build: {script: [echo built]}
  lint-everything: {script: [exit 1]}
  shaky: {allow_failure: true, script: [exit 1]}
  secrets: {stage: security-scan, scan: [secrets], fail_on: critical}
",
    );
    project.write("config/.env", "AWS_ACCESS_KEY_ID=AKIAZ7Q2WXPLMN4RT6YB\n");
    project
}

/// `pipe ARGS` on a pseudo-terminal, as a person at a terminal (no `CI`) runs it; stdout and
/// stderr both land in the returned transcript, as on a screen.
fn on_terminal(project: &Project, args: &str, no_color: bool) -> Command {
    let mut cmd = Command::new("script");
    cmd.args([
        "-qefc",
        &format!("{} {args}", env!("CARGO_BIN_EXE_pipe")),
        "/dev/null",
    ])
    .current_dir(project.path())
    .env_remove("CI")
    .env_remove("NO_COLOR")
    .env_remove("PIPE_LOG")
    .env("TERM", "xterm-256color")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    cmd
}

fn transcript(project: &Project, args: &str, no_color: bool) -> String {
    let out = on_terminal(project, args, no_color)
        .output()
        .expect("run script(1)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Colour codes (SGR), as opposed to the cursor moves a live display makes.
fn has_colour(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|code| {
        code.strip_prefix('[')
            .and_then(|c| c.split_once('m'))
            .is_some_and(|(params, _)| {
                !params.is_empty() && params.chars().all(|c| c.is_ascii_digit() || c == ';')
            })
    })
}

#[test]
fn a_terminal_gets_the_header_and_colours_and_no_color_takes_them_away() {
    let project = project();
    let run = transcript(&project, "run --backend local", false);
    assert!(run.contains("pipe: run 1 of "), "{run:?}");
    assert!(run.contains(&format!("{GREEN}passed")), "{run:?}");
    assert!(run.contains(&format!("{RED}failed")), "{run:?}");
    assert!(run.contains(&format!("{YELLOW}allowed to fail")), "{run:?}");
    let runs = transcript(&project, "runs", false);
    assert!(runs.contains(&format!("{RED}failed")), "{runs:?}");
    let show = transcript(&project, "show 1", false);
    assert!(show.contains(&format!("{GREEN}passed")), "{show:?}");
    assert!(
        show.contains(&format!("{YELLOW}allowed to fail")),
        "{show:?}"
    );
    let scan = transcript(&project, "scan", false);
    assert!(scan.contains(&format!("{RED}critical")), "{scan:?}");

    for args in ["run --backend local", "runs", "show 1", "scan"] {
        let plain = transcript(&project, args, true);
        assert!(!plain.is_empty(), "{args}");
        assert!(!has_colour(&plain), "NO_COLOR, {args}: {plain:?}");
    }
}

#[test]
fn output_through_a_pipe_has_no_escape_codes() {
    let project = project();
    let mut outputs = Vec::new();
    for args in [
        &["run", "--backend", "local"][..],
        &["runs"],
        &["show", "1"],
        &["scan"],
    ] {
        let ran = project
            .command(args)
            .env_remove("CI")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        outputs.push(format!(
            "{}{}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        ));
    }
    assert!(outputs[0].contains("pipe: run 1 of "), "{}", outputs[0]);
    for out in outputs {
        assert!(!out.contains('\x1b'), "{out:?}");
    }
}

#[test]
fn the_live_lines_are_aligned_and_gone_when_the_run_ends() {
    let project = project();
    let screen = screen(&transcript(&project, "run --backend local", true));
    let finished: Vec<&String> = screen
        .iter()
        .filter(|l| l.starts_with(['✓', '✗', '-']) && !l.starts_with("---"))
        .collect();
    assert_eq!(finished.len(), 4, "{screen:#?}");
    // Names padded to the longest (`lint-everything`), so statuses start in one column.
    let column = 2 + "lint-everything".len() + 1;
    for line in &finished {
        let chars: Vec<char> = line.chars().collect();
        assert!(
            chars[column - 1] == ' ' && chars[column] != ' ',
            "not aligned: {line:?} in {screen:#?}"
        );
    }
    assert_no_live_line(&screen);
    // What stays on the screen, with the finished lines in plan order (they come in the order
    // the jobs end) and times and the project's name redacted.
    let mut pinned: Vec<String> = finished.iter().map(|l| l.to_string()).collect();
    let order = ["build", "lint-everything", "shaky", "secrets"];
    pinned.sort_by_key(|l| {
        order
            .iter()
            .position(|j| l.split_whitespace().nth(1) == Some(*j))
    });
    pinned.insert(0, screen[0].clone());
    pinned.extend(screen.iter().skip_while(|l| !l.starts_with("JOB")).cloned());
    insta::with_settings!({filters => vec![(r"\d+\.\ds", "[t]"), (r"\.tmp\w+", "[project]")]}, {
        insta::assert_snapshot!(pinned.join("\n"));
    });
}

#[test]
fn ctrl_c_leaves_no_live_line_on_the_screen() {
    let project = Project::new(
        "jobs:\n  long: {script: [echo waiting, sleep 300]}\n  other: {script: [sleep 300]}\n",
    );
    let mut child = on_terminal(&project, "run --backend local", true)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id() as i32);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    // The live line shows the job's last output: the job is running.
    while !String::from_utf8_lossy(&seen).contains("waiting") {
        let got = out.fill_buf().unwrap();
        assert!(
            !got.is_empty(),
            "pipe ended: {:?}",
            String::from_utf8_lossy(&seen)
        );
        let n = got.len();
        seen.extend_from_slice(got);
        out.consume(n);
    }
    // Ctrl-C as a terminal sends it: the pty turns it into SIGINT for pipe's process group.
    child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    out.read_to_end(&mut seen).unwrap();
    child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen);
    let screen = screen(&text);
    assert!(
        screen.iter().any(|l| l.contains("stopping jobs")),
        "{screen:#?}"
    );
    assert!(
        screen.iter().any(|l| l.contains("run 1 interrupted")),
        "{screen:#?}"
    );
    assert_no_live_line(&screen);
}

#[test]
fn a_watch_session_on_a_terminal_shows_each_run_and_ends_at_ctrl_c() {
    let project = Project::new("jobs:\n  show: {script: [cat src.txt]}\n");
    project.write("src.txt", "one\n");
    let mut child = on_terminal(&project, "run --watch --backend local", true)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id() as i32);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut read_until = |seen: &mut Vec<u8>, text: &str, n: usize| {
        while String::from_utf8_lossy(seen).matches(text).count() < n {
            let got = out.fill_buf().unwrap();
            assert!(
                !got.is_empty(),
                "pipe ended: {:?}",
                String::from_utf8_lossy(seen)
            );
            let n = got.len();
            seen.extend_from_slice(got);
            out.consume(n);
        }
    };
    read_until(&mut seen, "watching for changes", 1);
    project.write("src.txt", "two\n");
    read_until(&mut seen, "watching for changes", 2);
    child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    out.read_to_end(&mut seen).unwrap();
    child.wait().unwrap();
    let screen = screen(&String::from_utf8_lossy(&seen));
    for line in [
        "pipe: run 1 of",
        "pipe: changed: src.txt; running again",
        "pipe: run 2 of",
    ] {
        assert!(
            screen.iter().any(|l| l.starts_with(line)),
            "{line:?} in {screen:#?}"
        );
    }
    assert_no_live_line(&screen);
}

/// No spinner line is left: each line left starts with what a finished line, a notice, the
/// header or the summary starts with.
fn assert_no_live_line(screen: &[String]) {
    for line in screen {
        assert!(
            !line.contains("waiting") || line.starts_with('['),
            "a live line is left: {line:?} in {screen:#?}"
        );
        let first = line.chars().next();
        assert!(
            !matches!(first, Some(c) if "⠁⠂⠄⡀⢀⠠⠐⠈⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏".contains(c)),
            "a spinner is left: {line:?} in {screen:#?}"
        );
    }
}

/// The columns of the pseudo-terminal: `script` gives it no size, and pipe (indicatif) falls
/// back to 80.
const WIDTH: usize = 80;

/// The lines an 80-column terminal shows at the end of `text`: carriage returns, wrapping, line
/// erasing and cursor moves (what indicatif draws with) applied; other escape codes dropped.
fn screen(text: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut command = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        command = c;
                        break;
                    }
                    params.push(c);
                }
                let n: usize = params.trim_start_matches('?').parse().unwrap_or(1);
                match command {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'K' => {
                        let line = &mut lines[row];
                        match params.as_str() {
                            "2" => line.clear(),
                            "1" => line.iter_mut().take(col).for_each(|c| *c = ' '),
                            _ => line.truncate(col),
                        }
                    }
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    'G' => col = n.saturating_sub(1),
                    _ => {}
                }
            }
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
            }
            // Bell, backspace, and a Ctrl-C the terminal echoes as itself (invisible).
            '\x07' | '\x08' | '\x03' => {}
            c => {
                // The terminal wraps a full line; indicatif pads its lines to the width and
                // counts on that.
                if col == WIDTH {
                    row += 1;
                    col = 0;
                    while lines.len() <= row {
                        lines.push(Vec::new());
                    }
                }
                let line = &mut lines[row];
                if line.len() <= col {
                    line.resize(col, ' ');
                    line.push(c);
                } else {
                    line[col] = c;
                }
                col += 1;
            }
        }
        while lines.len() <= row {
            lines.push(Vec::new());
        }
    }
    lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}
