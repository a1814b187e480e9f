//! `pipe artifacts`: a run's artifacts listed, or copied out without following what a job left
//! and without replacing anything.

use std::path::Path;

use crate::harness::Project;

fn built() -> Project {
    let project = Project::new(
        "jobs:\n  build:\n    script:\n      - mkdir -p out/sub\n      - echo hi > out/a.txt\n      - echo there > out/sub/b.txt\n      - ln -s /etc out/escape\n    artifacts: [out]\n  test:\n    needs: [build]\n    script: [echo]\n",
    );
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    project
}

#[test]
fn lists_each_jobs_artifacts_with_sizes_and_links_as_links() {
    let project = built();
    let ran = project.pipe_in("out-of-the-way", &["artifacts", "last"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(
        ran.stdout,
        "JOB    PATH                SIZE\nbuild  out/a.txt           3\nbuild  out/escape -> /etc  link\nbuild  out/sub/b.txt       6\n"
    );
    let json = project.pipe(&["artifacts", "1", "build", "--output", "json"]);
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["job"], "build");
    assert_eq!(first["path"], "out/a.txt");
    assert_eq!(first["size"], 3);
    assert_eq!(first["run"], 1);
    let none = project.pipe(&["artifacts", "1", "test"]);
    assert_eq!(none.stdout, "run 1 has no artifacts of job `test`\n");
    let typo = project.pipe(&["artifacts", "1", "biuld"]);
    assert_eq!(typo.code, 2);
    assert_eq!(
        typo.stderr,
        "pipe: run 1 has no job `biuld` (did you mean `build`?)\n"
    );
}

#[test]
fn copies_into_the_folder_given_never_following_a_link_and_never_replacing() {
    let project = built();
    let ran = project.pipe_in("sub", &["artifacts", "1", "build", "--to", "../got"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(
        ran.stdout,
        "copied 3 artifact(s) of job `build` of run 1, 9 bytes, to ../got\n"
    );
    let got = project.path().join("got");
    assert_eq!(
        std::fs::read_to_string(got.join("out/sub/b.txt")).unwrap(),
        "there\n"
    );
    let link = std::fs::symlink_metadata(got.join("out/escape")).unwrap();
    assert!(link.file_type().is_symlink(), "a link stays a link");

    // Again: everything would be replaced, so nothing is.
    std::fs::write(got.join("out/a.txt"), "mine\n").unwrap();
    std::fs::remove_file(got.join("out/sub/b.txt")).unwrap();
    let again = project.pipe(&["artifacts", "1", "build", "--to", "got"]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again
            .stderr
            .starts_with("pipe: copied nothing: the artifacts of run 1 would replace what is in "),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("out/a.txt, out/escape"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(got.join("out/a.txt")).unwrap(),
        "mine\n"
    );
    assert!(!got.join("out/sub/b.txt").exists());
}

#[test]
fn a_link_in_the_destination_is_never_written_through() {
    let project = built();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("all")).unwrap();
    // Every job's artifacts go to all/JOB/…: a link there must not take them elsewhere.
    std::os::unix::fs::symlink(outside.path(), project.path().join("all/build")).unwrap();
    let ran = project.pipe(&["artifacts", "1", "--to", "all"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(ran.stderr.contains("build/out/a.txt"), "{}", ran.stderr);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    std::fs::remove_file(project.path().join("all/build")).unwrap();
    let ran = project.pipe(&["artifacts", "1", "--to", "all"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(Path::new(&project.path().join("all/build/out/a.txt")).is_file());
}
