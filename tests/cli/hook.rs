//! `pipe hook`: installed in a real repository and run by a real `git push` (or `git commit`)
//! to a local bare remote, each test in its own temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A repository `work/` whose `origin` is the bare `remote.git/`, beside it in one temp dir.
struct Repo {
    dir: tempfile::TempDir,
}

struct Done {
    ok: bool,
    all: String,
}

/// A job `unit` in stage test that passes when `state` says `good`, and a deploy job that
/// leaves a mark if it ever runs.
const PIPELINE: &str = "jobs:
  unit:
    stage: test
    script: [echo checking, 'test \"$(cat state)\" = good']
  ship:
    stage: deploy
    script: [touch {shipped}]
";

impl Repo {
    fn new(pipeline: &str) -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(repo.work()).unwrap();
        repo.git_in(repo.dir.path(), &["init", "-q", "--bare", "remote.git"]);
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["remote", "add", "origin", "../remote.git"]);
        let shipped = repo.shipped();
        repo.write(
            "pipe.yml",
            &pipeline.replace("{shipped}", shipped.to_str().unwrap()),
        );
        repo.write(".gitignore", ".pipe/\n");
        repo
    }

    /// What the pipeline's deploy job leaves when it runs.
    fn shipped(&self) -> PathBuf {
        self.dir.path().join("shipped")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.work().join(rel), text).unwrap();
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.work())
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env_remove("PIPE_LOG")
            // git's own settings only: no user's hooks path or templates.
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.dir.path().join("gitconfig"))
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, mut cmd: Command) -> Done {
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().expect("start");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
        assert!(!all.contains("panicked"), "pipe panicked:\n{all}");
        Done {
            ok: status.success(),
            all,
        }
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> Done {
        let mut cmd = self.command("git", args);
        cmd.current_dir(dir);
        self.run(cmd)
    }

    /// A git command that must succeed.
    fn git(&self, args: &[&str]) -> String {
        let done = self.git_in(&self.work(), args);
        assert!(done.ok, "git {args:?}: {}", done.all);
        done.all
    }

    fn pipe(&self, args: &[&str]) -> Done {
        self.run(self.command(env!("CARGO_BIN_EXE_pipe"), args))
    }

    /// A git command that may fail (a push or commit its hook blocks).
    fn try_git(&self, args: &[&str]) -> Done {
        self.git_in(&self.work(), args)
    }

    fn commit_state(&self, state: &str) {
        self.write("state", state);
        self.git(&["add", "-A"]);
        self.git(&[
            "commit",
            "-q",
            "--no-verify",
            "-m",
            &format!("state {state}"),
        ]);
    }

    fn remote_has(&self, branch: &str) -> Option<String> {
        let done = self.git_in(
            &self.dir.path().join("remote.git"),
            &[
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ],
        );
        done.ok.then(|| done.all.trim().to_string())
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// How many runs pipe recorded in the project.
    fn runs(&self) -> usize {
        let dir = self.work().join(".pipe/runs");
        std::fs::read_dir(dir).map_or(0, |d| d.count())
    }

    fn hook_path(&self, name: &str) -> PathBuf {
        self.work().join(".git/hooks").join(name)
    }
}

#[test]
fn install_status_and_uninstall_say_what_they_did() {
    let repo = Repo::new(PIPELINE);
    let installed = repo.pipe(&["hook", "install"]);
    assert!(installed.ok, "{}", installed.all);
    assert!(
        installed.all.contains("installed the pre-push hook at")
            && installed
                .all
                .contains("runs stages build, test, security-scan of each pushed commit"),
        "{}",
        installed.all
    );
    let status = repo.pipe(&["hook", "status"]);
    let pipe = Path::new(env!("CARGO_BIN_EXE_pipe"));
    assert!(
        status.all.contains(&format!(
            "pre-push: pipe's ({}): stages build, test, security-scan, backend docker, pipe {}\n",
            repo.hook_path("pre-push").display(),
            pipe.display()
        )),
        "{}",
        status.all
    );
    assert!(
        status.all.contains("pre-commit: not installed"),
        "{}",
        status.all
    );
    let again = repo.pipe(&["hook", "install", "--stages", "test", "--backend", "local"]);
    assert!(
        again.all.contains("updated the pre-push hook"),
        "{}",
        again.all
    );
    let refused = repo.pipe(&["hook", "install", "--stages", "test,deploy"]);
    assert!(!refused.ok);
    assert!(
        refused.all.contains("a hook never runs the `deploy` stage"),
        "{}",
        refused.all
    );
    let status = repo.pipe(&["hook", "status"]);
    assert!(
        status.all.contains("stages test, backend local"),
        "{}",
        status.all
    );
    let removed = repo.pipe(&["hook", "uninstall"]);
    assert!(
        removed.all.contains("removed the pre-push hook"),
        "{}",
        removed.all
    );
    assert!(
        removed.all.contains("no pre-commit hook was installed"),
        "{}",
        removed.all
    );
    assert!(!repo.hook_path("pre-push").exists());

    let outside = tempfile::tempdir().unwrap();
    let mut cmd = repo.command(env!("CARGO_BIN_EXE_pipe"), &["hook", "status"]);
    cmd.current_dir(outside.path());
    let done = repo.run(cmd);
    assert!(
        !done.ok && done.all.contains("is not in a git repository"),
        "{}",
        done.all
    );
}

/// `pipe hook install` with the local backend, which these tests run on.
fn installed(pipeline: &str, extra: &[&str]) -> Repo {
    let repo = Repo::new(pipeline);
    let mut args = vec!["hook", "install", "--backend", "local"];
    args.extend(extra);
    let done = repo.pipe(&args);
    assert!(done.ok, "{}", done.all);
    repo
}

#[test]
fn the_pushed_commit_counts_not_the_working_tree() {
    let repo = installed(PIPELINE, &[]);
    // The commit fails; the working tree around it would pass.
    repo.commit_state("bad");
    repo.write("state", "good");
    let push = repo.try_git(&["push", "-q", "origin", "main"]);
    assert!(!push.ok, "{}", push.all);
    assert_eq!(repo.remote_has("main"), None, "the push was blocked");
    let blocked = format!(
        "pipe: pre-push of main at {} blocked: run 1 failed after ",
        &repo.head()[..7]
    );
    assert!(push.all.contains(&blocked), "{}", push.all);
    assert!(
        push.all
            .contains("--- unit failed (exit code 1); the whole log: pipe logs 1 unit\n"),
        "{}",
        push.all
    );
    assert!(
        push.all.contains("    checking\n"),
        "the log's tail: {}",
        push.all
    );
    assert!(
        push.all
            .contains("pipe: to push anyway, once: git push --no-verify"),
        "{}",
        push.all
    );
    assert!(!repo.shipped().exists(), "a hook never deploys");

    // The commit passes; the working tree around it would fail.
    repo.commit_state("good");
    repo.write("state", "bad");
    let push = repo.try_git(&["push", "-q", "origin", "main"]);
    assert!(push.ok, "{}", push.all);
    assert_eq!(repo.remote_has("main"), Some(repo.head()));
    let said: Vec<&str> = push.all.lines().collect();
    assert_eq!(said.len(), 1, "one short line: {}", push.all);
    assert!(
        said[0].starts_with(&format!(
            "pipe: pre-push of main at {} passed: run 2, 1 job(s) in ",
            &repo.head()[..7]
        )),
        "{}",
        push.all
    );
    assert!(!repo.shipped().exists(), "a hook never deploys");
    let shown = repo.pipe(&["show", "2"]);
    assert!(shown.all.contains("; pre-push; started"), "{}", shown.all);
    assert!(shown.all.contains(&repo.head()), "{}", shown.all);
}

#[test]
fn pre_commit_sees_only_staged_changes() {
    let repo = installed(PIPELINE, &["--hook", "pre-commit"]);
    repo.commit_state("initial");
    let before = repo.head();
    repo.write("state", "bad");
    repo.git(&["add", "state"]);
    repo.write("state", "good");
    let commit = repo.try_git(&["commit", "-q", "-m", "staged bad"]);
    assert!(!commit.ok, "{}", commit.all);
    assert!(
        commit
            .all
            .contains("pipe: pre-commit of the staged changes blocked"),
        "{}",
        commit.all
    );
    assert!(
        commit.all.contains("git commit --no-verify"),
        "{}",
        commit.all
    );
    assert_eq!(repo.head(), before, "nothing committed");

    repo.git(&["add", "state"]);
    repo.write("state", "bad");
    let commit = repo.try_git(&["commit", "-q", "-m", "staged good"]);
    assert!(commit.ok, "{}", commit.all);
    assert_ne!(repo.head(), before);
    assert!(
        commit
            .all
            .contains("pipe: pre-commit of the staged changes passed"),
        "{}",
        commit.all
    );
    let shown = repo.pipe(&["show", "2"]);
    assert!(shown.all.contains("; pre-commit; started"), "{}", shown.all);
}

/// `git commit -a` and `git commit PATH` hand the hook a temporary index (GIT_INDEX_FILE): the
/// check runs on what that commit records, not on the repository's index, and no job sees
/// git's variables that point at the developer's repository.
#[test]
fn pre_commit_checks_what_commit_a_and_commit_paths_record() {
    let pipeline = "jobs:
  unit:
    stage: test
    script: ['grep -q good state', 'test -z \"$GIT_INDEX_FILE$GIT_DIR\"']
";
    let repo = installed(pipeline, &["--hook", "pre-commit"]);
    repo.commit_state("good");
    let before = repo.head();

    // The index holds `good`; `-a` commits the working tree's `bad`.
    repo.write("state", "bad");
    let commit = repo.try_git(&["commit", "-q", "-a", "-m", "all bad"]);
    assert!(!commit.ok, "{}", commit.all);
    let commit = repo.try_git(&["commit", "-q", "-m", "path bad", "state"]);
    assert!(!commit.ok, "{}", commit.all);
    assert_eq!(repo.head(), before, "nothing committed");

    // The index holds `bad`; committing the path records the working tree's `good again`.
    repo.git(&["add", "state"]);
    repo.write("state", "good again");
    let commit = repo.try_git(&["commit", "-q", "-m", "path good", "state"]);
    assert!(commit.ok, "{}", commit.all);
    assert!(
        commit
            .all
            .contains("pipe: pre-commit of the staged changes passed"),
        "{}",
        commit.all
    );
    assert_ne!(repo.head(), before);
}

#[test]
fn an_existing_hook_runs_first_and_comes_back() {
    let repo = Repo::new(PIPELINE);
    let theirs = "#!/bin/sh\necho \"theirs: $1 $2\" >> ../theirs.log\ncat >> ../theirs.log\n[ ! -e ../theirs-fail ]\n";
    std::fs::write(repo.hook_path("pre-push"), theirs).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(repo.hook_path("pre-push"), mode).unwrap();
    let done = repo.pipe(&["hook", "install", "--backend", "local"]);
    assert!(
        done.all.contains("it runs the hook that was there first"),
        "{}",
        done.all
    );
    repo.commit_state("good");

    // Their hook fails: the push stops, and pipe's check does not run.
    std::fs::write(repo.dir.path().join("theirs-fail"), "").unwrap();
    let push = repo.try_git(&["push", "-q", "origin", "main"]);
    assert!(!push.ok, "{}", push.all);
    assert!(
        push.all.contains(
            "pre-push.pipe-original, failed (exit status: 1), so pipe's check did not run"
        ),
        "{}",
        push.all
    );
    assert_eq!(repo.runs(), 0);

    std::fs::remove_file(repo.dir.path().join("theirs-fail")).unwrap();
    let push = repo.try_git(&["push", "-q", "origin", "main"]);
    assert!(push.ok, "{}", push.all);
    assert_eq!(repo.runs(), 1);
    // Their hook saw git's arguments and the refs on stdin, as git gives them.
    let log = std::fs::read_to_string(repo.dir.path().join("theirs.log")).unwrap();
    assert!(log.contains("theirs: origin "), "{log}");
    assert!(
        log.contains(&format!(
            "refs/heads/main {} refs/heads/main 0000000000000000000000000000000000000000",
            repo.head()
        )),
        "{log}"
    );

    let removed = repo.pipe(&["hook", "uninstall"]);
    assert!(
        removed.all.contains("put back the one it replaced"),
        "{}",
        removed.all
    );
    assert_eq!(
        std::fs::read_to_string(repo.hook_path("pre-push")).unwrap(),
        theirs
    );
}

#[test]
fn hostile_ref_names_and_messages_execute_nothing() {
    let repo = installed(PIPELINE, &[]);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        repo.dir.path().file_name().unwrap().to_string_lossy()
    );
    let marks: Vec<PathBuf> = (0..4)
        .map(|i| PathBuf::from(format!("/tmp/x-{unique}-{i}")))
        .collect();
    let message = format!(
        "$(touch {}) `touch {}`",
        marks[0].display(),
        marks[1].display()
    );
    repo.write("state", "good");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "--no-verify", "-m", &message]);
    let refs = [
        format!("HEAD:refs/heads/$(touch${{IFS}}{})", marks[2].display()),
        format!("HEAD:refs/heads/`touch${{IFS}}{}`;x", marks[3].display()),
    ];
    let push = repo.try_git(&["push", "-q", "origin", &refs[0], &refs[1]]);
    assert!(push.ok, "{}", push.all);
    for mark in &marks {
        assert!(
            !mark.exists(),
            "{} was created: {}",
            mark.display(),
            push.all
        );
    }
    assert!(
        push.all.contains("pre-push of $(touch${IFS}"),
        "the name is shown as it is: {}",
        push.all
    );
    assert_eq!(repo.runs(), 1, "one commit pushed to two refs runs once");
}

#[test]
fn two_refs_at_once_and_deleting_runs_nothing() {
    let repo = installed(PIPELINE, &[]);
    repo.commit_state("good");
    repo.git(&["branch", "passing"]);
    repo.commit_state("bad");
    repo.git(&["branch", "failing"]);
    let push = repo.try_git(&["push", "-q", "origin", "passing", "failing"]);
    assert!(!push.ok, "{}", push.all);
    assert!(
        push.all.contains("pipe: pre-push of passing at"),
        "{}",
        push.all
    );
    assert!(push.all.contains("passed: run"), "{}", push.all);
    assert!(
        push.all.contains("pipe: pre-push of failing at"),
        "{}",
        push.all
    );
    assert!(push.all.contains("blocked: run"), "{}", push.all);
    assert_eq!(repo.runs(), 2);
    assert_eq!(
        repo.remote_has("passing"),
        None,
        "git pushes all or nothing"
    );

    let push = repo.try_git(&["push", "-q", "--no-verify", "origin", "passing"]);
    assert!(push.ok, "{}", push.all);
    let delete = repo.try_git(&["push", "-q", "origin", "--delete", "passing"]);
    assert!(delete.ok, "{}", delete.all);
    assert_eq!(delete.all, "", "deleting says nothing");
    assert_eq!(repo.runs(), 2, "and runs nothing");
    assert_eq!(repo.remote_has("passing"), None);
}

#[test]
fn a_hook_without_pipe_says_so_and_stops_the_push() {
    let repo = Repo::new(PIPELINE);
    let bin = repo.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pipe = bin.join("pipe");
    // A hard link, not a copy: a copy's file is busy (ETXTBSY) to exec while another test's
    // fork still holds it open for writing.
    std::fs::hard_link(env!("CARGO_BIN_EXE_pipe"), &pipe).unwrap();
    let done = repo.run(repo.command(
        pipe.to_str().unwrap(),
        &["hook", "install", "--backend", "local"],
    ));
    assert!(done.ok, "{}", done.all);
    std::fs::remove_file(&pipe).unwrap();
    repo.commit_state("good");
    // PATH without pipe on it (git's own folder only).
    let git = Path::new("/usr/local/bin/git");
    let git_dir = if git.exists() {
        git.parent().unwrap()
    } else {
        Path::new("/usr/bin")
    };
    let mut cmd = repo.command("git", &["push", "-q", "origin", "main"]);
    cmd.env("PATH", format!("{}:/usr/bin:/bin", git_dir.display()));
    let push = repo.run(cmd);
    assert!(!push.ok, "{}", push.all);
    assert!(
        push.all.contains(&format!(
            "pipe hook: cannot run the pre-push check: pipe is not on PATH and no longer at {}",
            pipe.display()
        )),
        "{}",
        push.all
    );
    assert!(push.all.contains("git push --no-verify"), "{}", push.all);
    assert_eq!(repo.remote_has("main"), None);
}

#[test]
fn only_changes_selects_jobs_by_what_the_push_changes() {
    let repo = installed(
        "jobs:
  unit: {stage: test, script: [echo unit-ran]}
  docs: {stage: test, only: {changes: ['docs/**']}, script: [echo docs-ran]}
",
        &[],
    );
    std::fs::create_dir_all(repo.work().join("docs")).unwrap();
    std::fs::create_dir_all(repo.work().join("src")).unwrap();
    repo.write("docs/guide.md", "v1");
    repo.write("src/a.txt", "v1");
    repo.commit_state("good");
    let first = repo.try_git(&["push", "-q", "--no-verify", "origin", "main"]);
    assert!(first.ok, "{}", first.all);

    // Only src/ changes since what the remote has: the docs job is left out.
    repo.write("src/a.txt", "v2");
    repo.commit_state("good");
    let push = repo.try_git(&["push", "-q", "origin", "main"]);
    assert!(push.ok, "{}", push.all);
    let shown = repo.pipe(&["show", "1"]);
    let row = |shown: &str, job: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{job} ")))
            .unwrap_or_else(|| panic!("no {job} in {shown}"))
            .to_string()
    };
    assert!(
        row(&shown.all, "docs").contains("left out"),
        "{}",
        shown.all
    );
    assert!(row(&shown.all, "unit").contains("passed"), "{}", shown.all);

    // A push that changes docs/ runs it.
    repo.write("docs/guide.md", "v2");
    repo.commit_state("good");
    let push = repo.try_git(&["push", "-q", "origin", "main"]);
    assert!(push.ok, "{}", push.all);
    let shown = repo.pipe(&["show", "2"]);
    assert!(row(&shown.all, "docs").contains("passed"), "{}", shown.all);
}
