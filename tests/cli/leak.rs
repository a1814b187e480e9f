//! Tests that try to leak a secret (issue 11): each job gives its secret away in one more way,
//! and afterwards no output pipe made holds the value — not the terminal, not `--output json`,
//! not a `--junit` report, not a byte under `.pipe/` (`grep -rF`).

use std::process::Command;

use crate::harness::{docker_image, finish, Project, Ran};

/// A value no other test uses, of the shape of a token.
fn secret(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("tok-{test}-{}-{nanos:x}", std::process::id())
}

/// Runs `pipe run` with the job's secrets in pipe's environment, first for a person (plain
/// lines, every line shown, a JUnit report), then for a program (`--output json`).
fn run_leaking(project: &Project, args: &[&str], secrets: &[(&str, &str)]) -> (Ran, Ran) {
    let run = |extra: &[&str]| {
        let mut all = vec!["run", "-v", "--pull", "never"];
        all.extend(args);
        all.extend(extra);
        let mut cmd = project.command(&all);
        for (name, value) in secrets {
            cmd.env(name, value);
        }
        finish(cmd)
    };
    (run(&["--junit", "junit.xml"]), run(&["--output", "json"]))
}

/// What must never be found: the value, and each line of a multi-line one.
fn assert_hidden(project: &Project, runs: &(Ran, Ran), value: &str) {
    assert_hidden_but_in(project, runs, value, &[]);
}

/// [`assert_hidden`], but for files under `.pipe/` named in `copies` (pipe's copies of the
/// user's own files, where a test had to write the value itself).
fn assert_hidden_but_in(project: &Project, runs: &(Ran, Ran), value: &str, copies: &[&str]) {
    let (shown, json) = runs;
    let junit = std::fs::read_to_string(project.path().join("junit.xml")).unwrap_or_default();
    for needle in value.split('\n').filter(|l| l.len() >= 4) {
        for (what, text) in [
            ("the terminal", shown.all()),
            ("--output json", json.all()),
            ("the JUnit report", junit.clone()),
        ] {
            assert!(
                !text.contains(needle),
                "`{needle}` leaked in {what}:\n{text}"
            );
        }
        let grep = Command::new("grep")
            .args(["-rF", "-e", needle, ".pipe"])
            .args(copies.iter().map(|c| format!("--exclude={c}")))
            .current_dir(project.path())
            .output()
            .unwrap();
        assert_eq!(
            grep.status.code(),
            Some(1),
            "`{needle}` leaked under .pipe/:\n{}",
            String::from_utf8_lossy(&grep.stdout)
        );
    }
}

fn pipeline(script: &str) -> String {
    format!(
        "image: {}\njobs:\n  leak:\n    secrets: [LEAK]\n    script:\n{script}",
        docker_image()
    )
}

/// Each way of printing the value, in one job: echo, two writes, a byte at a time with pauses
/// (so the engine hands pipe the value in pieces), stderr.
#[test]
fn echo_split_writes_bytes_with_pauses_and_stderr_are_masked() {
    let value = secret("stream");
    let project = Project::new(&pipeline(
        r#"      - echo "plain $LEAK."
      - printf '%s' "$(printf '%s' "$LEAK" | cut -c1-7)"; sleep 0.2; printf '%s\n' "$(printf '%s' "$LEAK" | cut -c8-)"
      - i=1; while [ $i -le ${#LEAK} ]; do printf '%s' "$(printf '%s' "$LEAK" | cut -c$i)"; sleep 0.01; i=$((i+1)); done; echo
      - echo "on stderr $LEAK" >&2
"#,
    ));
    for backend in ["docker", "local"] {
        let runs = run_leaking(&project, &["--backend", backend], &[("LEAK", &value)]);
        assert_eq!(runs.0.code, 0, "{}", runs.0.all());
        assert!(
            runs.0.stdout.contains("[leak] plain ***."),
            "{}",
            runs.0.stdout
        );
        assert!(
            runs.0.stdout.contains("[leak] on stderr ***"),
            "{}",
            runs.0.stdout
        );
        assert_eq!(
            runs.0.stdout.matches("[leak] ***\n").count(),
            2,
            "split and byte-wise writes: {}",
            runs.0.stdout
        );
        assert_hidden(&project, &runs, &value);
    }
}

/// `value` in base64 on one line, as the host's `base64 -w0` writes it.
fn base64_unwrapped(value: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(value.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// `base64` wraps at 76 columns: the value's encoding is cut over three lines, and each line's
/// piece of it is hidden.
#[test]
fn base64_wrapped_over_lines_is_masked_line_by_line() {
    let value = format!(
        "{}-{}",
        secret("wrapped"),
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".repeat(2)
    );
    let project = Project::new(&pipeline(
        r#"      - printf 'user:%s' "$LEAK" | base64
"#,
    ));
    let runs = run_leaking(&project, &[], &[("LEAK", &value)]);
    assert_eq!(runs.0.code, 0, "{}", runs.0.all());
    let encoded = base64_unwrapped(&format!("user:{value}"));
    // The characters only the value decides: after `user:`'s own, before the last group.
    let (from, to) = (8, encoded.len() - 4);
    let lines: Vec<(usize, usize)> = (0..encoded.len())
        .step_by(76)
        .map(|start| (start.max(from), (start + 76).min(to)))
        .collect();
    assert!(lines.len() >= 3, "{encoded}");
    for (start, end) in lines {
        if end >= start + 8 {
            assert_hidden(&project, &runs, &encoded[start..end]);
        }
    }
    assert_hidden(&project, &runs, &value);
}

#[test]
fn base64_and_json_forms_are_masked() {
    let value = secret("forms") + "\"/+ x";
    let project = Project::new(&pipeline(
        r#"      - printf '%s' "$LEAK" | base64
      - printf 'user:%s' "$LEAK" | base64
      - printf '{"token":"%s"}\n' "$(printf '%s' "$LEAK" | sed 's/"/\\"/g')"
"#,
    ));
    let runs = run_leaking(&project, &[], &[("LEAK", &value)]);
    assert_eq!(runs.0.code, 0, "{}", runs.0.all());
    let encoded: Vec<String> = [value.clone(), format!("user:{value}")]
        .iter()
        .map(|v| base64_unwrapped(v))
        .collect();
    // The whole encoding of the value alone, and the part after `user:`'s own characters.
    assert_hidden(&project, &runs, &encoded[0][..encoded[0].len() - 4]);
    assert_hidden(&project, &runs, &encoded[1][8..encoded[1].len() - 4]);
    assert_hidden(&project, &runs, &value);
    assert!(
        runs.0.stdout.contains(r#"[leak] {"token":"***"}"#),
        "{}",
        runs.0.stdout
    );
}

#[test]
fn a_multi_line_private_key_is_masked_line_by_line() {
    let tag = secret("key");
    let key = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ{tag}\nQyNTUxOQAAACBHk0Vb6n1vK3nq5mXlqfQkWmM0l1Zp{tag}\n-----END OPENSSH PRIVATE KEY-----"
    );
    let project = Project::new(&pipeline("      - echo \"$LEAK\"\n"));
    let runs = run_leaking(&project, &[], &[("LEAK", &key)]);
    assert_eq!(runs.0.code, 0, "{}", runs.0.all());
    assert_eq!(
        runs.0.stdout.matches("[leak] ***\n").count(),
        4,
        "{}",
        runs.0.stdout
    );
    assert_hidden(&project, &runs, &key);
}

#[test]
fn a_failing_command_that_prints_the_secret_in_its_error_is_masked() {
    let value = secret("error");
    let project = Project::new(&pipeline("      - cat \"/no/such/$LEAK\"\n"));
    let runs = run_leaking(&project, &[], &[("LEAK", &value)]);
    assert_eq!(runs.0.code, 1, "{}", runs.0.all());
    assert!(runs.0.stdout.contains("/no/such/***"), "{}", runs.0.stdout);
    assert_hidden(&project, &runs, &value);
}

#[test]
fn a_secret_in_an_artifact_file_name_is_masked_where_pipe_says_it() {
    let value = secret("artifact");
    let project = Project::new(&format!(
        "image: {}
jobs:
  make:
    secrets: [LEAK]
    script: [mkdir -p out, 'touch \"out/$LEAK.txt\"', ls out]
    artifacts: [out/]
  use: {{stage: test, secrets: [LEAK], script: [ls out]}}
",
        docker_image()
    ));
    let runs = run_leaking(&project, &[], &[("LEAK", &value)]);
    assert!(runs.0.stdout.contains("[use] ***.txt"), "{}", runs.0.all());
    assert_hidden(&project, &runs, &value);
}

/// The one place a test must write the value itself: an image named after it, which the engine
/// cannot find. What pipe says of it (the job's error, the summary, events, the store) hides it.
#[test]
fn a_secret_in_an_image_name_that_cannot_be_found_is_masked() {
    let value = format!("pipe-test/{}:1", secret("image"));
    let project = Project::new(&format!(
        "jobs:\n  leak: {{image: '{value}', secrets: [LEAK], script: [echo never]}}\n"
    ));
    let runs = run_leaking(&project, &[], &[("LEAK", &value)]);
    assert_eq!(runs.0.code, 1, "{}", runs.0.all());
    assert!(runs.0.all().contains("***"), "{}", runs.0.all());
    assert_hidden_but_in(&project, &runs, &value, &["pipe.yml", "pipeline.yml"]);
}

/// A job that names files (and a link's target) after its secret: `pipe artifacts`, its JSON
/// and copies show them masked, and no name under `.pipe/` holds the value.
#[test]
fn artifact_names_and_link_targets_are_masked() {
    let value = secret("names");
    let project = Project::new(&format!(
        "image: {}\njobs:\n  leak:\n    secrets: [LEAK]\n    artifacts: [out]\n    script:\n      - mkdir -p \"out/dir-$LEAK\"\n      - echo hi > \"out/report-$LEAK.txt\"\n      - echo x > \"out/dir-$LEAK/f\"\n      - ln -s \"/tmp/$LEAK\" out/link\n",
        docker_image()
    ));
    for backend in ["docker", "local"] {
        let runs = run_leaking(&project, &["--backend", backend], &[("LEAK", &value)]);
        assert_eq!(runs.0.code, 0, "{}", runs.0.all());
        let listed = project.pipe(&["artifacts", "last"]);
        assert_eq!(listed.code, 0, "{}", listed.all());
        for shown in [
            "out/dir-***/f",
            "out/link -> /tmp/***",
            "out/report-***.txt",
        ] {
            assert!(
                listed.stdout.contains(shown),
                "{backend}: {}",
                listed.stdout
            );
        }
        let json = project.pipe(&["artifacts", "last", "--output", "json"]);
        let copied = project.pipe(&["artifacts", "last", "--to", backend, "--output", "json"]);
        for text in [&listed.stdout, &json.stdout, &copied.stdout] {
            assert!(!text.contains(&value), "{backend}: {text}");
        }
        assert!(
            json.stdout.contains("out/report-***.txt"),
            "{}",
            json.stdout
        );
        assert_eq!(
            std::fs::read_to_string(project.path().join(backend).join("leak/out/report-***.txt"))
                .unwrap(),
            "hi\n"
        );
        let names = Command::new("find")
            .args([".pipe", "-name", &format!("*{value}*")])
            .current_dir(project.path())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&names.stdout), "", "{backend}");
        assert_hidden(&project, &runs, &value);
    }
}
