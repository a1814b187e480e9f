//! A job's output on its way to the screen: held back, never thinned, when the screen lags.

use crate::harness::Project;

/// More lines than the queues between a job and the screen hold (the recorder's backlog and
/// the screen's queue): plain and JSON lines show every one of them, in order, as the log does.
const FLOOD: usize = 120_000;

#[test]
fn plain_and_json_lines_show_every_line_of_a_flood() {
    let project = Project::new(&format!("jobs:\n  loud: {{script: ['seq 1 {FLOOD}']}}\n"));
    let plain = project.pipe(&["run", "--backend", "local", "--no-reuse"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let shown = plain
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[loud] "));
    assert_every_line("plain lines", shown);

    let json = project.pipe(&[
        "run",
        "--backend",
        "local",
        "--no-reuse",
        "--output",
        "json",
    ]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let events = json.json_events();
    let shown = events
        .iter()
        .filter(|e| e["event"] == "job_output")
        .map(|e| e["line"].as_str().unwrap());
    assert_every_line("JSON lines", shown);

    assert_every_line("the log", project.log("2", "loud").lines());
}

/// `lines`, but pipe's own, are the numbers 1 to FLOOD in order.
fn assert_every_line<'a>(what: &str, lines: impl Iterator<Item = &'a str>) {
    let numbers: Vec<&str> = lines
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let wrong = (1..=FLOOD)
        .zip(&numbers)
        .find(|(n, line)| n.to_string() != **line);
    assert!(
        numbers.len() == FLOOD && wrong.is_none(),
        "{what}: {} numbers, first wrong: {wrong:?}",
        numbers.len()
    );
}
