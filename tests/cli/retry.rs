//! `pipe retry` says what it reruns: the run's own snapshot of its commit, not today's tree.

use crate::harness::Project;

#[test]
fn retry_says_it_reruns_the_runs_snapshot_of_its_commit() {
    let project = Project::new("jobs:\n  check: {script: [cat state.txt, test -f fixed]}\n");
    project.write("state.txt", "committed\n");
    let repo = git2::Repository::init(project.path()).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(std::path::Path::new("pipe.yml")).unwrap();
    index.add_path(std::path::Path::new("state.txt")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let commit = repo
        .commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
        .unwrap()
        .to_string();
    assert_eq!(project.pipe(&["run", "--backend", "local"]).code, 1);
    // The fix made now is not in run 1's snapshot, and retry says so before it runs.
    project.write("fixed", "");
    let ran = project.pipe(&["retry", "1", "--backend", "local"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(
        ran.stderr.starts_with(&format!(
            "pipe: retrying run 1 as a new run, on run 1's snapshot of commit {}, not on the working tree as it is now\n",
            &commit[..12]
        )),
        "{}",
        ran.stderr
    );
    let ran = project.pipe(&["retry", "1", "--failed", "--backend", "local"]);
    assert!(
        ran.stderr.starts_with(&format!(
            "pipe: rerunning the jobs of run 1 that did not pass, in run 1, on run 1's snapshot of commit {}, not on the working tree as it is now\n",
            &commit[..12]
        )),
        "{}",
        ran.stderr
    );
}
