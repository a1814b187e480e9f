//! Throughput of the secrets scanner on a tree given by the environment. Ignored by default
//! (timings depend on the machine); bench/scan.sh drives it:
//!
//! PIPE_SCAN_BENCH_DIR=/tmp/tree cargo test --release --test scan_bench -- --ignored --nocapture
//!
//! PIPE_SCAN_BENCH_RUNS (default 5) timed runs follow one warm-up run (none when it is 1).
//! PIPE_SCAN_BENCH_EXTERNAL=1 scans once and prints nothing, for a caller that times the
//! process (hyperfine in bench/scan.sh); the findings can still be written, see below.
//! PIPE_SCAN_BENCH_THREADS sets the walker threads (default 0 = auto).
//! PIPE_SCAN_BENCH_SHOW=1 prints the findings, to review false positives on real trees.
//! PIPE_SCAN_BENCH_JSONL=FILE writes them as JSON lines (for bench/scan_recall.py).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use pipe::scan::{report, scan_secrets, secrets::MAX_FILE_SIZE, Finding, SecretsOptions};

/// Bytes the scanner reads: the same walk rules (gitignore, dotfiles, no .git, size cap).
fn scanned_bytes(root: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    let walk = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walk.flatten() {
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let len = entry.metadata().map_or(0, |m| m.len());
            if len <= MAX_FILE_SIZE {
                bytes += len;
                files += 1;
            }
        }
    }
    (bytes, files)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

fn write_jsonl(findings: &[Finding]) {
    if let Some(path) = std::env::var_os("PIPE_SCAN_BENCH_JSONL") {
        let mut file = std::fs::File::create(path).unwrap();
        report::json_lines(findings, &mut file).unwrap();
    }
}

#[test]
#[ignore = "benchmark: set PIPE_SCAN_BENCH_DIR and run with --ignored --nocapture"]
fn secrets_throughput() {
    let dir = std::env::var("PIPE_SCAN_BENCH_DIR").expect("PIPE_SCAN_BENCH_DIR");
    let root = Path::new(&dir);
    let runs = env_usize("PIPE_SCAN_BENCH_RUNS", 5).max(1);
    let opts = SecretsOptions {
        baseline: None,
        threads: env_usize("PIPE_SCAN_BENCH_THREADS", 0),
        parent_ignores: true,
        shown_as: None,
    };
    if std::env::var_os("PIPE_SCAN_BENCH_EXTERNAL").is_some() {
        let findings = scan_secrets(root, &opts).unwrap();
        write_jsonl(&findings);
        return;
    }
    let (bytes, files) = scanned_bytes(root);
    if runs > 1 {
        scan_secrets(root, &opts).unwrap();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut findings = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        findings = scan_secrets(root, &opts).unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    let mb = bytes as f64 / 1e6;
    let rate = |d: Duration| mb / d.as_secs_f64();
    let median = times[times.len() / 2];
    println!(
        "scanned {files} files, {mb:.1} MB: median {:.1} ms = {:.0} MB/s, best {:.1} ms = {:.0} MB/s ({runs} runs)",
        median.as_secs_f64() * 1e3,
        rate(median),
        times[0].as_secs_f64() * 1e3,
        rate(times[0]),
    );
    let mut by_rule: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in &findings {
        *by_rule
            .entry((f.severity.to_string(), f.rule_id.clone()))
            .or_default() += 1;
    }
    println!("{} findings: {by_rule:?}", findings.len());
    write_jsonl(&findings);
    if std::env::var_os("PIPE_SCAN_BENCH_SHOW").is_some() {
        report::human(&findings, &mut std::io::stdout(), false).unwrap();
    }
}
