//! The security-scan stage: scan jobs in a run, `pipe scan`, and dangerous containers refused.

use crate::harness::{docker, Project, IMAGE};

/// A credential of the real AWS format (base32 body), invented for this test.
const FAKE_AWS_KEY: &str = "AKIAZ7Q2WXPLMN4RT6YB";

#[test]
fn a_scan_job_fails_the_run_on_findings_at_fail_on_and_writes_sarif() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  build: {{script: [echo built]}}
  secrets:
    stage: security-scan
    scan: [secrets]
  deploy: {{stage: deploy, script: [echo deployed]}}
"
    ));
    project.write(
        "config/.env",
        &format!("AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"),
    );
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(
        ran.stdout
            .contains("[secrets] config/.env:1:19: critical aws-access-key-id"),
        "{}",
        ran.stdout
    );
    assert!(
        !ran.stdout.contains(FAKE_AWS_KEY),
        "the secret is never printed whole"
    );
    assert!(
        ran.row("secrets")
            .contains("1 finding: 1 critical, 0 high, 0 medium, 0 low"),
        "{}",
        ran.stdout
    );
    assert!(ran.row("deploy").contains("skipped"), "{}", ran.stdout);
    let sarif: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.path().join(".pipe/runs/1/scan/secrets.sarif")).unwrap(),
    )
    .unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["runs"][0]["results"][0]["ruleId"],
        "aws-access-key-id"
    );
    assert!(project
        .pipe(&["show", "1"])
        .row("secrets")
        .contains("1 finding: 1 critical"));
    let show = project.pipe(&["show", "1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(show.stdout.trim()).unwrap();
    let job = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "secrets")
        .unwrap()
        .clone();
    assert_eq!(
        job["findings"]["critical"], 1,
        "the counts are recorded with the run: {job}"
    );

    // The same finding below `fail_on` lets the run pass.
    let relaxed = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  secrets: {{stage: security-scan, scan: [secrets, pipeline], fail_on: critical}}\n"
    ));
    relaxed.write("notes.txt", "password = \"hunter2-but-longer\"\n");
    let ran = relaxed.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
}

#[test]
fn pipe_scan_reports_pipeline_settings_and_decides_the_exit_code() {
    let project = Project::new(
        "image: alpine
jobs:
  build:
    privileged: true
    script: [curl -fsSL https://get.example.com | sh]
",
    );
    let ran = project.pipe(&["scan", "--sarif", "out.sarif"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(
        ran.stdout
            .contains("pipe.yml:4:5: high privileged-container"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("pipe.yml:5:14: high curl-pipe-shell"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("pipe.yml:1:8: medium unpinned-image"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("fix: "), "{}", ran.stdout);
    assert!(project.path().join("out.sarif").is_file());
    assert_eq!(project.pipe(&["scan", "--fail-on", "critical"]).code, 0);
    let json = project.pipe(&["scan", "--output", "json", "--scanner", "pipeline"]);
    assert!(json
        .json_events()
        .iter()
        .all(|f| f["schema"] == 1 && f["scanner"] == "pipeline"));
    // A baseline silences what is already known.
    assert_eq!(
        project
            .pipe(&[
                "scan",
                "--write-baseline",
                "baseline.json",
                "--fail-on",
                "critical"
            ])
            .code,
        0
    );
    assert_eq!(
        project.pipe(&["scan", "--baseline", "baseline.json"]).code,
        0
    );
    // Paths, and so fingerprints, are named from where pipe runs: the same baseline holds for a
    // scan of part of the tree.
    project.write(
        "src/keys.env",
        &format!("AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"),
    );
    let part = project.pipe(&["scan", "src"]);
    assert!(
        part.stdout.contains("src/keys.env:1:19: critical"),
        "{}",
        part.stdout
    );
    project.pipe(&["scan", "--write-baseline", "baseline.json"]);
    for args in [
        &["scan", "src"][..],
        &["scan", "src/keys.env"],
        &["scan", "./src"],
    ] {
        let mut with = args.to_vec();
        with.extend(["--baseline", "baseline.json"]);
        let ran = project.pipe(&with);
        assert!(
            ran.stdout.contains("no findings"),
            "{args:?}: {}",
            ran.all()
        );
    }
    let missing = project.pipe(&["scan", "--baseline", "nope.json"]);
    assert_eq!(missing.code, 2, "a bad argument: {}", missing.all());
}

#[test]
fn privileged_jobs_and_host_mounts_are_refused_unless_allowed() {
    let privileged = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  risky:\n    privileged: true\n    script: [echo]\n"
    ));
    let refused = privileged.pipe(&["run", "--pull", "never"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert_eq!(
        refused.stderr.trim(),
        "pipe: pipe.yml:4:5: job `risky` asks for `privileged: true`, which pipe refuses unless you pass --allow-privileged"
    );
    assert!(docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.pipe.pid={}", refused.pid)
    ])
    .trim()
    .is_empty());

    let socket = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  risky:\n    volumes: [/var/run/docker.sock:/var/run/docker.sock:ro]\n    script: [test -S /var/run/docker.sock]\n"
    ));
    let refused = socket.pipe(&["run", "--pull", "never"]);
    assert_eq!(refused.code, 4);
    assert!(
        refused
            .stderr
            .contains("job `risky` asks for the Docker socket `/var/run/docker.sock` as a volume"),
        "{}",
        refused.stderr
    );
    let allowed = socket.run_docker(&["--allow-privileged"]);
    assert_eq!(
        allowed.code,
        0,
        "the allowed mount is there: {}",
        allowed.all()
    );
    assert!(
        allowed
            .stderr
            .contains("--allow-privileged: job `risky` gets the Docker socket"),
        "{}",
        allowed.stderr
    );

    // Only the jobs that run are judged: not one left out by --job, nor a release job while
    // the run stops at the gate (it is judged by `pipe release`).
    let later = Project::new(&format!(
        "image: {IMAGE}
jobs:
  ok: {{script: [echo ok]}}
  risky: {{privileged: true, script: [echo]}}
  ship: {{stage: release, gate: {{approvals: 0}}, volumes: ['/tmp:/host-tmp'], script: [echo]}}
"
    ));
    assert_eq!(later.run_docker(&["--job", "ok"]).code, 0);
    let whole = later.pipe(&["run", "--pull", "never"]);
    assert!(
        whole.stderr.contains("job `risky` asks for") && !whole.stderr.contains("`ship`"),
        "{}",
        whole.stderr
    );
}

#[test]
fn pipeline_findings_never_print_a_secret_on_their_line() {
    let token = format!("ghp_{}", "Hq7Wm3Kx8Lp2Nv5Bc9Hd4Jf6Rt1Ys0Ue3Gi8");
    let password = "Sup3rS3cretPw9";
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  a:
    privileged: true   # token {token}
    script:
      - curl -fsSL \"https://deploy:{password}@get.example.net/i.sh\" | sh
"
    ));
    for args in [
        &["scan", "--scanner", "pipeline"][..],
        &["scan", "--output", "json"],
    ] {
        let out = project.pipe(args);
        assert_eq!(out.code, 1, "{}", out.all());
        assert!(out.all().contains("privileged-container"), "{}", out.all());
        assert!(
            !out.all().contains(&token) && !out.all().contains(password),
            "{}",
            out.all()
        );
    }
}

#[test]
fn a_scan_job_audits_its_own_pipeline_whatever_its_name() {
    let project = Project::new("jobs:\n  placeholder: {script: [echo]}\n");
    project.write(
        "deploy/prod.yml",
        "jobs:\n  audit: {stage: security-scan, needs: [], scan: [pipeline], fail_on: high}\n  risky: {stage: build, script: ['true || curl -fsSL https://get.example.net/i.sh | sh']}\n",
    );
    let ran = project.pipe(&[
        "run",
        "deploy/prod.yml",
        "--backend",
        "local",
        "--job",
        "audit",
    ]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(!ran.stdout.contains("[risky]"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("[audit] prod.yml:3:34: high curl-pipe-shell"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_privilege_granted_is_an_event_and_in_the_audit_trail() {
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  risky:\n    volumes: [/var/run/docker.sock:/var/run/docker.sock:ro]\n    script: [test -S /var/run/docker.sock]\n"
    ));
    let ran = project.run_docker(&["--allow-privileged", "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let events = ran.json_events();
    let granted: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "privilege_granted")
        .collect();
    assert_eq!(granted.len(), 1, "{}", ran.stdout);
    assert_eq!(granted[0]["job"], "risky");
    assert_eq!(
        granted[0]["what"],
        "the Docker socket `/var/run/docker.sock` as a volume"
    );
    crate::schemas::assert_fit("events.v2.json", &events);
    // Said before anything runs.
    assert_eq!(events[0]["event"], "privilege_granted", "{}", ran.stdout);

    let show = project.pipe(&["show", "1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(show.stdout.trim()).unwrap();
    let audit = v["audit"].as_array().unwrap();
    assert!(
        audit.iter().any(|a| a["action"] == "allow privileged"
            && a["detail"]
                == "job `risky` gets the Docker socket `/var/run/docker.sock` as a volume"),
        "{}",
        show.stdout
    );
}

#[test]
fn a_scan_job_is_not_reported_for_the_image_it_never_starts() {
    // The top-level image reaches the scan job too, but a scan job runs in pipe's own scanners.
    let only_scans =
        Project::new("image: alpine\njobs:\n  audit: {stage: security-scan, scan: [pipeline]}\n");
    let ran = only_scans.pipe(&["scan", "--scanner", "pipeline"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(!ran.stdout.contains("unpinned-image"), "{}", ran.stdout);
    // A job that does start it is still told.
    only_scans.write(
        "pipe.yml",
        "image: alpine\njobs:\n  audit: {stage: security-scan, scan: [pipeline]}\n  build: {script: [make]}\n",
    );
    let ran = only_scans.pipe(&["scan", "--scanner", "pipeline"]);
    assert!(
        ran.stdout.contains("pipe.yml:1:8: medium unpinned-image"),
        "{}",
        ran.stdout
    );
}
