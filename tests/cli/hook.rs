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
    script: [touch ../../../../shipped]
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
        repo.write("pipe.yml", pipeline);
        repo.write(".gitignore", ".pipe/\n");
        repo
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
