//! The dashboard in a real browser: a real `pipe agent` on loopback polls a real bare
//! repository, and headless Chromium opens the run list, a run, follows a job's log while it
//! grows, signs in, approves and releases. `PIPE_WRITE_SCREENSHOTS=1` also writes the pages'
//! screenshots under docs/screenshots/.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::browser::{Browser, PATIENCE};
use crate::harness::{git, KillOnDrop};

/// A branch name that would be markup if a page forgot to escape it (git allows it).
const HOSTILE_BRANCH: &str = "<img/src=x/onerror=alert(1)>";
const TOKEN: &str = "ann-dashboard-token";

/// A bare repository whose branch holds a pipeline: `talk` prints a line, waits for `marker`,
/// prints another; `publish` waits behind a gate that asks for one approval.
fn origin(dir: &Path, marker: &Path) -> PathBuf {
    let bare = dir.join("origin.git");
    let work = dir.join("work");
    git(dir, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        work.join("pipe.yml"),
        format!(
            "jobs:
  build: {{script: [echo built]}}
  talk:
    needs: [build]
    script:
      - echo first line
      - 'while [ ! -f {marker} ]; do sleep 0.05; done'
      - echo second line
  publish:
    stage: release
    gate: {{approvals: 1}}
    script: [echo published]
",
            marker = marker.display()
        ),
    )
    .unwrap();
    git(&work, &["init", "-q", "-b", HOSTILE_BRANCH]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "a pipeline that waits"]);
    git(
        &work,
        &["push", "-q", bare.to_str().unwrap(), HOSTILE_BRANCH],
    );
    bare
}

/// Starts `pipe agent` on a free loopback port; its base URL once it listens.
fn agent(dir: &Path, origin: &Path) -> ((KillOnDrop, Child), String) {
    let data = dir.join("data");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\nopen_reads = true\nbackend = \"local\"\n\
             [[repos]]\nname = \"web\"\nurl = {origin:?}\nbranches = [{HOSTILE_BRANCH:?}]\npoll = \"200ms\"\n\
             [[tokens]]\nname = \"ann\"\ntoken = {TOKEN:?}\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args(["agent", "--config", config.to_str().unwrap()])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pipe agent");
    let running = KillOnDrop(child.id() as i32);
    // The agent writes the address it listens on once it does.
    let addr_file = data.join("agent.addr");
    let deadline = std::time::Instant::now() + PATIENCE;
    let addr = loop {
        match std::fs::read_to_string(&addr_file) {
            Ok(addr) if !addr.trim().is_empty() => break addr.trim().to_string(),
            _ if std::time::Instant::now() > deadline => panic!("the agent never listened"),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    ((running, child), format!("http://{addr}"))
}

/// Opens `url` again until `ready` holds: pages are rendered once, not updated in place.
fn reload_until(browser: &Browser, url: &str, what: &str, ready: impl Fn(&Browser) -> bool) {
    browser.wait_until(what, |b| {
        b.goto(url);
        ready(b)
    });
}

fn screenshot(browser: &Browser, name: &str) {
    if std::env::var_os("PIPE_WRITE_SCREENSHOTS").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/screenshots")
            .join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, browser.screenshot()).unwrap();
    }
}

#[test]
fn a_run_is_watched_live_approved_and_released_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("go-on");
    let bare = origin(dir.path(), &marker);
    let (_agent, base) = agent(dir.path(), &bare);
    let browser = Browser::start();

    // The run list: the polled commit's run, its branch shown as text and never as an image.
    reload_until(
        &browser,
        &format!("{base}/"),
        "the polled run in the list",
        |b| b.text("#runs tr.run").is_some(),
    );
    assert_eq!(
        browser.text("#runs .branch").as_deref(),
        Some(HOSTILE_BRANCH)
    );
    assert_eq!(browser.execute("return document.images.length"), 0);
    screenshot(&browser, "runs.png");

    // The run: its DAG, with `talk` running and waiting for the marker.
    browser.click("#runs tr.run a");
    let run_url = browser.url();
    assert!(run_url.ends_with("/repos/web/runs/1"), "{run_url}");
    reload_until(&browser, &run_url, "`talk` running", |b| {
        b.execute("var j = document.querySelector('#dag [data-job=talk]'); return j && j.getAttribute('data-status')")
            == "running"
    });
    assert_eq!(
        browser.execute(
            "return document.querySelector('#dag [data-job=build]').getAttribute('data-status')"
        ),
        "passed"
    );

    // The live log: the first line while the job runs, the second once the marker lets it go on.
    browser.goto(&format!("{run_url}/jobs/talk"));
    browser.wait_until("the first line", |b| {
        b.text("#log").is_some_and(|t| t.contains("first line"))
    });
    assert!(!browser.text("#log").unwrap().contains("second line"));
    assert_eq!(browser.text("#log-status").as_deref(), Some("following"));
    screenshot(&browser, "live-log.png");
    std::fs::write(&marker, "").unwrap();
    browser.wait_until("the second line and the log's end", |b| {
        b.text("#log").is_some_and(|t| t.contains("second line"))
            && b.text("#log-status").as_deref() == Some("ended")
    });

    // The gate, seen before signing in: no buttons.
    reload_until(&browser, &run_url, "the run at its gate", |b| {
        b.text("#run-state").as_deref() == Some("awaiting release")
    });
    assert!(browser.text("#approve").is_none() && browser.text("#release").is_none());

    // Sign in with a wrong token, then the right one.
    browser.click("#login");
    browser.type_into("#token", "not-a-token");
    browser.click("#sign-in");
    browser.wait_until("the refusal", |b| b.text("#refused").is_some());
    browser.type_into("#token", TOKEN);
    browser.click("#sign-in");
    browser.wait_until("being signed in", |b| {
        b.text("#viewer").is_some_and(|t| t.contains("ann"))
    });
    let cookie = browser.execute("return document.cookie");
    assert_eq!(cookie, "", "the session cookie is HttpOnly");

    // Approve with a comment, as the token's name.
    browser.goto(&run_url);
    browser.type_into("input[name=comment]", "looks <good> & ready");
    browser.click("#approve");
    browser.wait_until("ann's approval", |b| {
        b.text("#approvals")
            .is_some_and(|t| t.contains("ann") && t.contains("looks <good> & ready"))
    });
    assert!(
        browser.text("#approve").is_none(),
        "ann is not asked to approve twice"
    );
    screenshot(&browser, "run-gate.png");

    // Release: the release job runs and the run ends released.
    browser.click("#release");
    reload_until(&browser, &run_url, "the run released", |b| {
        b.text("#run-state").as_deref() == Some("released")
    });
    assert!(browser.text("#audit").is_some_and(|t| t.contains("ann")));

    // Signing out ends the session: no buttons again.
    browser.click("#logout");
    browser.wait_until("being signed out", |b| b.text("#login").is_some());
}
