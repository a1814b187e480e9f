//! Runs of a commit (`--commit`) and of the index (`--staged`) in real repositories: the run
//! sees exactly that content with that commit's pipeline, the developer's tree and index stay
//! as they were, runs of two commits at once keep their own files, and jobs know the commit.

use crate::harness::{self, docker_image, Project};

/// `git` in the project, with no user or system configuration to depend on.
fn git(project: &Project, args: &[&str]) -> String {
    harness::git(project.path(), args)
}

/// A repository on `main` whose first commit holds `pipeline` and `files`.
fn repo(pipeline: &str, files: &[(&str, &str)]) -> Project {
    let project = Project::new(pipeline);
    git(&project, &["init", "-q", "-b", "main"]);
    for (rel, text) in files {
        project.write(rel, text);
    }
    commit_all(&project, "first");
    project
}

fn commit_all(project: &Project, message: &str) -> String {
    git(project, &["add", "-A"]);
    git(project, &["commit", "-q", "-m", message]);
    git(project, &["rev-parse", "HEAD"])
}

/// What the developer has: `git status`, the bytes of `files` and of the index.
fn developer_state(project: &Project, files: &[&str]) -> (String, Vec<Vec<u8>>, Vec<u8>) {
    (
        git(project, &["status", "--porcelain"]),
        files
            .iter()
            .map(|f| std::fs::read(project.path().join(f)).unwrap())
            .collect(),
        std::fs::read(project.path().join(".git/index")).unwrap(),
    )
}

#[test]
fn a_commit_run_sees_the_commit_and_its_pipeline_not_the_dirty_tree() {
    let project = repo(
        "jobs:\n  show: {script: [cat f.txt, echo pipeline-of-the-commit]}\n",
        &[("f.txt", "committed\n")],
    );
    project.write("f.txt", "dirty\n");
    project.write(
        "pipe.yml",
        "jobs:\n  show: {script: [cat f.txt, echo pipeline-of-the-tree]}\n",
    );
    let before = developer_state(&project, &["f.txt", "pipe.yml"]);

    let ran = project.pipe(&["run", "--backend", "local", "--commit", "HEAD"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("[show] committed"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("[show] pipeline-of-the-commit"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("dirty"), "{}", ran.stdout);
    assert_eq!(developer_state(&project, &["f.txt", "pipe.yml"]), before);
    assert!(
        ran.all().contains(&format!(
            "run 1 of {}",
            project.path().file_name().unwrap().to_string_lossy()
        )),
        "named for the project, not for pipe's checkout: {}",
        ran.stdout
    );
    let shown = project.pipe(&["show", "1"]);
    assert!(
        shown
            .stdout
            .contains(&git(&project, &["rev-parse", "HEAD"])),
        "{}",
        shown.stdout
    );

    // The reverse: a run of the working tree sees the tree.
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("[show] dirty"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("[show] pipeline-of-the-tree"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_staged_run_sees_only_what_is_staged() {
    let project = repo(
        "jobs:\n  show: {script: [cat f.txt, test ! -e untracked.txt]}\n",
        &[("f.txt", "v1\n")],
    );
    project.write("f.txt", "v2\n");
    git(&project, &["add", "f.txt"]);
    project.write("f.txt", "v3\n");
    project.write("untracked.txt", "not staged\n");
    let before = developer_state(&project, &["f.txt", "untracked.txt"]);

    let ran = project.pipe(&["run", "--backend", "local", "--staged"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("[show] v2"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("v3"), "{}", ran.stdout);
    assert_eq!(
        developer_state(&project, &["f.txt", "untracked.txt"]),
        before
    );
}

#[test]
fn runs_of_two_commits_at_once_each_see_their_own_files() {
    let sync = tempfile::tempdir().unwrap();
    // Each job says it started, then waits until both have, so both runs hold their files at
    // once; then it looks again.
    let pipeline = format!(
        "jobs:
  look:
    script:
      - x=$(cat f.txt); touch '{sync}/'$x
      - i=0; until [ -e '{sync}/a' ] && [ -e '{sync}/b' ]; do i=$((i+1)); [ $i -lt 2400 ] || exit 9; sleep 0.05; done
      - echo saw $(cat f.txt) $(ls)
",
        sync = sync.path().display()
    );
    let project = repo(&pipeline, &[("f.txt", "a\n"), ("only-a", "")]);
    let a = git(&project, &["rev-parse", "HEAD"]);
    std::fs::remove_file(project.path().join("only-a")).unwrap();
    project.write("f.txt", "b\n").write("only-b", "");
    let b = commit_all(&project, "second");

    let run = |rev: &str| {
        project
            .command(&["run", "--backend", "local", "--commit", rev])
            .spawn()
            .unwrap()
    };
    let (run_a, run_b) = (run(&a), run(&b));
    let out = |child: std::process::Child| {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let (seen_a, seen_b) = (out(run_a), out(run_b));
    assert!(
        seen_a.contains("[look] saw a f.txt only-a pipe.yml"),
        "{seen_a}"
    );
    assert!(
        seen_b.contains("[look] saw b f.txt only-b pipe.yml"),
        "{seen_b}"
    );
}

#[test]
fn a_kept_checkout_follows_commits_by_their_difference() {
    let project = repo(
        "jobs:\n  one: {script: [cat f.txt, cat dir/x, readlink l, test -x run.sh]}\n",
        &[
            ("f.txt", "1\n"),
            ("dir/x", "x\n"),
            ("run.sh", "#!/bin/sh\n"),
        ],
    );
    std::os::unix::fs::symlink("f.txt", project.path().join("l")).unwrap();
    std::fs::set_permissions(
        project.path().join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let first = commit_all(&project, "link and script");
    // A folder becomes a file, a link a file, a file goes.
    std::fs::remove_dir_all(project.path().join("dir")).unwrap();
    std::fs::remove_file(project.path().join("l")).unwrap();
    std::fs::remove_file(project.path().join("run.sh")).unwrap();
    project
        .write("dir", "now a file\n")
        .write("l", "now a file\n")
        .write("f.txt", "2\n")
        .write(
            "pipe.yml",
            "jobs:\n  two: {script: [cat f.txt, cat dir, test ! -L l, test ! -e run.sh]}\n",
        );
    let second = commit_all(&project, "second");

    for (rev, job, says) in [
        (&first, "one", "1"),
        (&second, "two", "2"),
        (&first, "one", "1"),
    ] {
        // The job must run on the checkout each time, never be reused from the first.
        let ran = project.pipe(&["run", "--backend", "local", "--no-reuse", "--commit", rev]);
        assert_eq!(ran.code, 0, "{}", ran.all());
        assert!(
            ran.stdout.contains(&format!("[{job}] {says}")),
            "{}",
            ran.stdout
        );
    }
    let kept: Vec<_> = std::fs::read_dir(project.path().join(".pipe/checkouts"))
        .unwrap()
        .collect();
    assert_eq!(kept.len(), 1, "one checkout, updated in place: {kept:?}");
}

const SHOW_ENV: &str = "jobs:
  env:
    image: pipe-test/busybox:1
    script:
      - 'echo \"commit=$PIPE_COMMIT short=$PIPE_SHORT_COMMIT branch=$PIPE_BRANCH tag=$PIPE_TAG\"'
      - 'echo \"version=$PIPE_VERSION message=$PIPE_COMMIT_MESSAGE\"'
      - 'echo changed: $(cat \"$PIPE_CHANGED_FILES\")'
";

fn jobs_know_the_commit(backend: &str) {
    let project = repo(SHOW_ENV, &[("a.txt", "a\n")]);
    git(&project, &["tag", "v1.4.0"]);
    project.write("b.txt", "b\n");
    let since = commit_all(&project, "second");
    project.write("c.txt", "c\n");
    commit_all(&project, "third");
    project.write("d.txt", "d\n");
    let head = commit_all(&project, "fourth");
    let short = git(&project, &["rev-parse", "--short", "HEAD"]);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--pull", "never", "--backend", backend];
        args.extend(extra);
        let ran = project.pipe(&args);
        assert_eq!(ran.code, 0, "{}", ran.all());
        ran.stdout
    };

    let out = run(&["--commit", "HEAD"]);
    assert!(
        out.contains(&format!("commit={head} short={short} branch=main tag=\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("version=v1.4.0-3-g{short} message=fourth\n")),
        "{out}"
    );
    assert!(
        out.contains("changed: d.txt\n"),
        "against the parent: {out}"
    );
    let out = run(&["--commit", "HEAD", "--changes-since", &since]);
    assert!(out.contains("changed: c.txt d.txt\n"), "{out}");
    let out = run(&["--commit", "v1.4.0"]);
    assert!(out.contains("tag=v1.4.0\n"), "{out}");
    assert!(out.contains("version=v1.4.0 message=first\n"), "{out}");
    // A run of the working tree: HEAD, and what the tree changes besides.
    project.write("e.txt", "e\n");
    let out = run(&[]);
    assert!(out.contains(&format!("commit={head} ")), "{out}");
    assert!(out.contains("changed: d.txt e.txt\n"), "{out}");
}

#[test]
fn local_jobs_know_the_commit() {
    jobs_know_the_commit("local");
}

#[test]
fn docker_jobs_know_the_commit() {
    docker_image();
    jobs_know_the_commit("docker");
}

/// A branch and a commit message that are shell code stay strings: in a job's workspace, a
/// substitution that ran would leave a file.
fn hostile_names_execute_nothing(backend: &str) {
    let project = repo(
        "jobs:
  names:
    image: pipe-test/busybox:1
    script:
      - 'echo \"branch=$PIPE_BRANCH\"'
      - 'echo message=$PIPE_COMMIT_MESSAGE $PIPE_BRANCH'
      - 'echo \"version=$PIPE_VERSION short=$PIPE_SHORT_COMMIT\"'
      - test ! -e pwned-branch && test ! -e pwned-message && test ! -e pwned-tick
",
        &[],
    );
    let branch = "$(touch${IFS}pwned-branch)";
    git(&project, &["checkout", "-q", "-b", branch]);
    project.write("f.txt", "x\n");
    let message = "$(touch pwned-message) `touch pwned-tick`";
    commit_all(&project, message);
    for source in [&["--commit", "HEAD"][..], &[]] {
        // The tree is the commit's: the second run must run the job, not reuse the first's.
        let mut args = vec!["run", "--pull", "never", "--no-reuse", "--backend", backend];
        args.extend(source);
        let ran = project.pipe(&args);
        assert_eq!(ran.code, 0, "{}", ran.all());
        assert!(
            ran.stdout.contains(&format!("branch={branch}\n")),
            "{}",
            ran.stdout
        );
        assert!(
            ran.stdout
                .contains(&format!("message={message} {branch}\n")),
            "{}",
            ran.stdout
        );
        let short = git(&project, &["rev-parse", "--short", "HEAD"]);
        assert!(
            ran.stdout
                .contains(&format!("version=0.0.0-{short} short={short}")),
            "no tags: {}",
            ran.stdout
        );
    }
    for marker in ["pwned-branch", "pwned-message", "pwned-tick"] {
        assert!(!project.path().join(marker).exists());
    }
}

#[test]
fn hostile_branch_names_and_messages_execute_nothing_locally() {
    hostile_names_execute_nothing("local");
}

#[test]
fn hostile_branch_names_and_messages_execute_nothing_on_docker() {
    docker_image();
    hostile_names_execute_nothing("docker");
}

#[test]
fn a_retry_of_a_commit_run_reruns_its_tree() {
    let project = repo(
        "jobs:\n  show: {script: [cat f.txt, 'test -e \"$PIPE_CHANGED_FILES\"']}\n",
        &[("f.txt", "committed\n")],
    );
    let ran = project.pipe(&["run", "--backend", "local", "--commit", "HEAD"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    project.write("f.txt", "changed since\n");
    commit_all(&project, "second");
    let ran = project.pipe(&["retry", "1"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("[show] committed"), "{}", ran.stdout);
}

#[test]
fn a_rev_that_names_no_commit_is_the_users_mistake() {
    let project = repo("jobs:\n  show: {script: [true]}\n", &[]);
    let ran = project.pipe(&["run", "--backend", "local", "--commit", "nosuch"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr.contains("`nosuch` names no commit"),
        "{}",
        ran.stderr
    );
}

#[test]
fn clean_empties_the_checkouts_no_run_holds_and_the_next_run_writes_its_own() {
    let project = repo(
        "jobs:\n  show: {script: [cat f.txt]}\n",
        &[("f.txt", "committed\n")],
    );
    let run = |says: &str| {
        let ran = project.pipe(&[
            "run",
            "--backend",
            "local",
            "--no-reuse",
            "--commit",
            "HEAD",
        ]);
        assert_eq!(ran.code, 0, "{}", ran.all());
        assert!(ran.stdout.contains(says), "{}", ran.stdout);
    };
    run("[show] committed");
    // A second checkout, held as a run going on holds it (its lock), stays as it is.
    let held = project.path().join(".pipe/checkouts/7");
    std::fs::create_dir_all(held.join("files")).unwrap();
    std::fs::write(held.join("tree"), "a tree").unwrap();
    let lock = std::fs::File::create(held.join("lock")).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();

    let clean = project.pipe(&["clean"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(
        clean
            .stdout
            .contains("; emptied 1 kept checkout(s) of commits"),
        "{}",
        clean.stdout
    );
    let free = project.path().join(".pipe/checkouts/0");
    assert!(!free.join("files").exists() && !free.join("tree").exists());
    assert!(held.join("files").is_dir() && held.join("tree").is_file());
    run("[show] committed");
    assert!(free.join("files/f.txt").is_file(), "written afresh");
}
