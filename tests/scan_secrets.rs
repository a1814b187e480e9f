//! The `secrets` scanner against the fake-credential corpus (tests/fixtures/secrets) and
//! against small trees built per test.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use pipe::scan::{self, baseline, report, Finding, ScanError, SecretsOptions, Severity};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/secrets")
}

fn corpus() -> PathBuf {
    fixtures().join("fake-corpus")
}

#[derive(serde::Deserialize)]
struct Expectations {
    expected: Vec<Expected>,
    decoys: Vec<Decoy>,
}

#[derive(serde::Deserialize)]
struct Expected {
    path: String,
    line: usize,
    rule: String,
}

#[derive(serde::Deserialize)]
struct Decoy {
    path: String,
    line: usize,
    what: String,
}

fn expectations() -> Expectations {
    read_expectations("EXPECTED.json")
}

fn read_expectations(name: &str) -> Expectations {
    let text = fs::read_to_string(fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn scan(root: &Path) -> Vec<Finding> {
    scan::scan_secrets(root, &SecretsOptions::default()).unwrap()
}

fn key(f: &Finding) -> (String, usize) {
    (f.path.to_string_lossy().into_owned(), f.line)
}

/// A valid-looking token built at run time, so this file holds no credential literal.
fn github_token(seed: char) -> String {
    format!(
        "ghp_{}",
        "R8sQ2kLm4NvX7pT1wZ9yB3cD5fG6hJ0aE2i".to_string() + &seed.to_string()
    )
}

#[test]
fn corpus_recall_and_false_positives() {
    let exp = expectations();
    let findings = scan(&corpus());
    let mut by_line: BTreeMap<(String, usize), Vec<&Finding>> = BTreeMap::new();
    for f in &findings {
        by_line.entry(key(f)).or_default().push(f);
    }

    let mut missed = Vec::new();
    for e in &exp.expected {
        let hits = by_line.get(&(e.path.clone(), e.line));
        if !hits.is_some_and(|h| h.iter().any(|f| f.rule_id == e.rule)) {
            missed.push(format!(
                "{}:{} {} (got {:?})",
                e.path,
                e.line,
                e.rule,
                hits.map(|h| h.iter().map(|f| &f.rule_id).collect::<Vec<_>>())
            ));
        }
    }
    let expected_keys: BTreeSet<(String, usize, String)> = exp
        .expected
        .iter()
        .map(|e| (e.path.clone(), e.line, e.rule.clone()))
        .collect();
    // Anything reported at medium or above that the corpus does not plant is a false positive.
    let false_positives: Vec<String> = findings
        .iter()
        .filter(|f| f.severity >= Severity::Medium)
        .filter(|f| {
            let (path, line) = key(f);
            !expected_keys.contains(&(path, line, f.rule_id.clone()))
        })
        .map(|f| {
            format!(
                "{}:{} {} {}",
                f.path.display(),
                f.line,
                f.rule_id,
                f.preview
            )
        })
        .collect();
    let decoys_hit: Vec<String> = exp
        .decoys
        .iter()
        .filter(|d| {
            by_line
                .get(&(d.path.clone(), d.line))
                .is_some_and(|h| h.iter().any(|f| f.severity >= Severity::Medium))
        })
        .map(|d| format!("{}:{} ({})", d.path, d.line, d.what))
        .collect();

    let found = exp.expected.len() - missed.len();
    println!(
        "secrets corpus: recall {found}/{} = {:.1}%, false positives (medium+) {}, decoys reported {}/{}",
        exp.expected.len(),
        100.0 * found as f64 / exp.expected.len() as f64,
        false_positives.len(),
        decoys_hit.len(),
        exp.decoys.len()
    );
    for line in missed.iter().chain(&false_positives).chain(&decoys_hit) {
        println!("  {line}");
    }
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
    assert!(
        false_positives.is_empty(),
        "false positives:\n{}",
        false_positives.join("\n")
    );
    assert!(
        decoys_hit.is_empty(),
        "decoys reported:\n{}",
        decoys_hit.join("\n")
    );
}

#[test]
fn every_rule_has_a_planted_credential() {
    let planted: BTreeSet<String> = expectations()
        .expected
        .into_iter()
        .map(|e| e.rule)
        .collect();
    let rules: BTreeSet<String> = scan::secrets::rules().map(|r| r.id.to_string()).collect();
    let unplanted: Vec<_> = rules.difference(&planted).collect();
    assert!(
        unplanted.is_empty(),
        "rules without a fixture: {unplanted:?}"
    );
    let unknown: Vec<_> = planted.difference(&rules).collect();
    assert!(
        unknown.is_empty(),
        "fixtures for unknown rules: {unknown:?}"
    );
}

#[test]
fn findings_are_sorted_and_well_formed() {
    let findings = scan(&corpus());
    let order: Vec<_> = findings
        .iter()
        .map(|f| (f.path.clone(), f.line, f.column))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    for f in &findings {
        assert_eq!(f.scanner, "secrets");
        assert!(!f.path.to_string_lossy().contains('\\'));
        assert!(f.path.is_relative());
        assert!(f.line >= 1 && f.column >= 1);
        assert_eq!(f.fingerprint.len(), 64);
        assert!(f.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!f.message.is_empty() && !f.fix.is_empty() && !f.message.contains('\n'));
    }
}

/// Runs of secret-looking characters (with a digit, at least 12 long) on a line. The PuTTY
/// header names a format version, not a secret.
fn secret_like_runs(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || "\"'=:;,<>@&?\\".contains(c))
        .filter(|run| run.len() >= 12 && run.bytes().any(|b| b.is_ascii_digit()))
        .filter(|run| !run.starts_with("PuTTY-User-Key-File-"))
        .collect()
}

#[test]
fn previews_never_contain_a_whole_secret() {
    let findings = scan(&corpus());
    assert!(!findings.is_empty());
    for f in &findings {
        let text = fs::read_to_string(corpus().join(&f.path)).unwrap();
        let line = text.lines().nth(f.line - 1).unwrap();
        for run in secret_like_runs(line) {
            assert!(
                !f.preview.contains(run),
                "{}:{}: preview {:?} shows {run:?}",
                f.path.display(),
                f.line,
                f.preview
            );
        }
        // Key headers hold no secret; every other finding shows its mask.
        if !f.rule_id.ends_with("private-key") {
            assert!(
                f.preview.contains('…') || f.preview.contains("****"),
                "{}",
                f.preview
            );
        }
    }
}

#[test]
fn gitignored_binary_oversized_and_git_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let token = github_token('A');
    let line = format!("TOKEN={token}\n");
    fs::write(root.join(".gitignore"), "ignored.txt\nbuild/\n").unwrap();
    fs::write(root.join("ignored.txt"), &line).unwrap();
    fs::create_dir(root.join("build")).unwrap();
    fs::write(root.join("build/out.txt"), &line).unwrap();
    fs::create_dir(root.join(".git")).unwrap();
    fs::write(root.join(".git/config"), &line).unwrap();
    let mut binary = b"\x7fELF\0\0\0".to_vec();
    binary.extend_from_slice(line.as_bytes());
    fs::write(root.join("tool.bin"), binary).unwrap();
    let mut big = line.clone().into_bytes();
    big.resize(scan::secrets::MAX_FILE_SIZE as usize + 1, b'x');
    fs::write(root.join("huge.txt"), big).unwrap();
    // Hidden files are scanned: .env is where secrets live.
    fs::write(root.join(".env"), &line).unwrap();
    fs::create_dir(root.join("src")).unwrap();
    fs::write(root.join("src/visible.txt"), &line).unwrap();

    let paths: Vec<String> = scan(root)
        .iter()
        .map(|f| f.path.to_string_lossy().into_owned())
        .collect();
    assert_eq!(paths, [".env", "src/visible.txt"]);
}

#[test]
fn ignore_files_above_the_root_apply_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    // Like a scan job's workspace inside `.pipe`, whose own .gitignore says `*`.
    fs::write(dir.path().join(".gitignore"), "*\n").unwrap();
    let root = dir.path().join("workspace");
    fs::create_dir(&root).unwrap();
    fs::write(
        root.join("app.env"),
        format!("TOKEN={}\n", github_token('B')),
    )
    .unwrap();
    let with = |parent_ignores| {
        scan::scan_secrets(
            &root,
            &SecretsOptions {
                parent_ignores,
                ..SecretsOptions::default()
            },
        )
        .unwrap()
        .len()
    };
    assert_eq!(with(false), 1, "a scan job sees its whole workspace");
    assert_eq!(
        with(true),
        0,
        "`pipe scan DIR` honours the repository's ignores, as git does"
    );
}

#[test]
fn allow_marker_skips_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "a = \"{}\"  # pipe:allow-secret\nb = \"{}\"\n",
        github_token('B'),
        github_token('C')
    );
    fs::write(dir.path().join("fixture.py"), text).unwrap();
    let findings = scan(dir.path());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].line, 2);
}

#[test]
fn fingerprint_is_stable_when_the_line_moves() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ci.sh");
    let token = github_token('D');
    fs::write(&file, format!("export GITHUB_TOKEN={token}\n")).unwrap();
    let before = scan(dir.path());
    fs::write(
        &file,
        format!("#!/bin/sh\nset -eu\n\n  export GITHUB_TOKEN={token} # moved\n"),
    )
    .unwrap();
    let after = scan(dir.path());
    assert_eq!((before.len(), after.len()), (1, 1));
    assert_eq!((before[0].line, after[0].line), (1, 4));
    assert_ne!(before[0].column, after[0].column);
    assert_eq!(before[0].fingerprint, after[0].fingerprint);

    // Another secret, or the same secret in another file, is another finding.
    fs::write(
        &file,
        format!("export GITHUB_TOKEN={}\n", github_token('E')),
    )
    .unwrap();
    assert_ne!(scan(dir.path())[0].fingerprint, before[0].fingerprint);
    fs::rename(&file, dir.path().join("other.sh")).unwrap();
    fs::write(
        dir.path().join("other.sh"),
        format!("export GITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    assert_ne!(scan(dir.path())[0].fingerprint, before[0].fingerprint);
}

#[test]
fn baseline_drops_known_findings_only() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a.env"), format!("T={}\n", github_token('F'))).unwrap();
    let first = scan(&tree);
    assert_eq!(first.len(), 1);

    let file = dir.path().join("baseline.json");
    baseline::save(&file, &first).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["findings"][0]["rule_id"], "github-token");
    assert_eq!(saved["findings"][0]["path"], "a.env");
    assert_eq!(
        saved["findings"][0]["fingerprint"],
        first[0].fingerprint.as_str()
    );

    let loaded = baseline::load(&file).unwrap();
    assert!(loaded.contains(&first[0].fingerprint));
    let opts = SecretsOptions {
        baseline: Some(loaded),
        threads: 0,
        parent_ignores: true,
        shown_as: None,
    };
    // Moving the known secret does not resurface it; a new secret is still reported.
    fs::write(
        tree.join("a.env"),
        format!(
            "# moved\nT={}\nU={}\n",
            github_token('F'),
            github_token('G')
        ),
    )
    .unwrap();
    let second = scan::scan_secrets(&tree, &opts).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].line, 3);
}

#[test]
fn invalid_baseline_and_missing_root_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baseline.json");
    fs::write(&file, "{\"version\": 1").unwrap();
    let err = baseline::load(&file).unwrap_err();
    assert!(matches!(err, ScanError::Baseline { .. }));
    assert!(err.to_string().contains("baseline.json"), "{err}");
    fs::write(&file, "{\"version\": 99, \"findings\": []}").unwrap();
    assert!(baseline::load(&file)
        .unwrap_err()
        .to_string()
        .contains("99"));

    let missing = dir.path().join("nope");
    let err = scan::scan_secrets(&missing, &SecretsOptions::default()).unwrap_err();
    assert!(matches!(err, ScanError::Io { .. }));
    assert!(err.to_string().contains("nope"), "{err}");
}

/// The contexts corpus (bench/scan_contexts.py): every kind of credential pipe claims, in the
/// 26 assignment contexts of gitleaks' rule tests, and look-alikes in the same contexts.
#[test]
fn contexts_corpus_recall_and_no_false_alarm_at_high() {
    let exp = read_expectations("contexts.json");
    let findings = scan(&fixtures().join("contexts"));
    let mut by_line: BTreeMap<(String, usize), Vec<&Finding>> = BTreeMap::new();
    for f in &findings {
        by_line.entry(key(f)).or_default().push(f);
    }
    let missed: Vec<String> = exp
        .expected
        .iter()
        .filter(|e| {
            !by_line
                .get(&(e.path.clone(), e.line))
                .is_some_and(|h| h.iter().any(|f| f.rule_id == e.rule))
        })
        .map(|e| format!("{}:{} {}", e.path, e.line, e.rule))
        .collect();
    let decoys_at = |at: Severity| -> Vec<String> {
        exp.decoys
            .iter()
            .filter(|d| {
                by_line
                    .get(&(d.path.clone(), d.line))
                    .is_some_and(|h| h.iter().any(|f| f.severity >= at))
            })
            .map(|d| format!("{}:{} ({})", d.path, d.line, d.what))
            .collect()
    };
    let (high, medium) = (decoys_at(Severity::High), decoys_at(Severity::Medium));
    println!(
        "contexts corpus: recall {}/{}, decoys at high or critical {}/{}, at medium {}",
        exp.expected.len() - missed.len(),
        exp.expected.len(),
        high.len(),
        exp.decoys.len(),
        medium.len() - high.len()
    );
    assert_eq!(exp.expected.len(), 832);
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
    assert!(high.is_empty(), "decoys at high:\n{}", high.join("\n"));
    // Random-looking look-alikes under token names (`xoxp-1234-…`, an upper-cased key) are
    // worth a look; the level reached, which must not grow.
    assert!(
        medium.len() <= 52,
        "decoys at medium:\n{}",
        medium.join("\n")
    );
}

#[test]
fn a_file_given_by_absolute_path_is_named_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.env");
    fs::write(&file, format!("GITHUB_TOKEN={}\n", github_token('q'))).unwrap();
    let opts = SecretsOptions {
        shown_as: Some(file.clone()),
        ..SecretsOptions::default()
    };
    let findings = scan::scan_secrets(&file, &opts).unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].path, file, "not //tmp/…");
    assert!(!findings[0].path.to_string_lossy().starts_with("//"));
}

#[test]
fn a_single_file_can_be_scanned() {
    let file = corpus().join("config/ci.env");
    let findings = scan(&file);
    assert_eq!(findings.len(), 2);
    assert!(findings.iter().all(|f| f.path == Path::new("ci.env")));
}

#[test]
fn thread_count_does_not_change_results() {
    let one = scan::scan_secrets(
        &corpus(),
        &SecretsOptions {
            baseline: None,
            threads: 1,
            parent_ignores: true,
            shown_as: None,
        },
    )
    .unwrap();
    let auto = scan(&corpus());
    let ids = |v: &[Finding]| -> Vec<String> { v.iter().map(|f| f.fingerprint.clone()).collect() };
    assert_eq!(ids(&one), ids(&auto));
}

fn sample_findings() -> Vec<Finding> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("app.yaml"),
        format!("db:\n  password: hunter22\ngithub: {}\n", github_token('H')),
    )
    .unwrap();
    scan(dir.path())
}

#[test]
fn human_report() {
    let findings = sample_findings();
    let mut out = Vec::new();
    report::human(&findings, &mut out, false).unwrap();
    let text = String::from_utf8(out).unwrap();
    let github = scan::secrets::rule_info("github-token").unwrap();
    let password = scan::secrets::rule_info("password-assignment").unwrap();
    let expected = format!(
        "app.yaml:2:13: high password-assignment: {}\n    password: ****\n    fix: {}\n\
         app.yaml:3:9: critical github-token: {}\n    github: ghp_…\n    fix: {}\n\
         2 findings: 1 critical, 1 high, 0 medium, 0 low\n",
        findings[0].message, password.fix, findings[1].message, github.fix
    );
    assert_eq!(text, expected);

    let mut out = Vec::new();
    report::human(&[], &mut out, false).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "no findings\n");
}

#[test]
fn json_lines_report() {
    let findings = sample_findings();
    let mut out = Vec::new();
    report::json_lines(&findings, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["schema"], 1);
    assert_eq!(records[0]["scanner"], "secrets");
    assert_eq!(records[0]["rule_id"], "password-assignment");
    assert_eq!(records[0]["severity"], "high");
    assert_eq!(records[0]["path"], "app.yaml");
    assert_eq!(records[0]["line"], 2);
    assert_eq!(records[0]["column"], 13);
    assert_eq!(records[1]["severity"], "critical");
    assert!(!text.contains(&github_token('H')));
}

#[test]
fn counts_for_fail_on() {
    let counts = scan::Counts::from_findings(&sample_findings());
    assert_eq!((counts.critical, counts.high), (1, 1));
    assert_eq!(counts.at_or_above(Severity::High), 2);
    assert_eq!(counts.at_or_above(Severity::Critical), 1);
}
