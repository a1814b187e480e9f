//! Finding the project as cargo finds its manifest: from any subfolder, or from the folder of
//! the pipeline file given; one `.pipe` store; and habits from neighbouring tools answered.

use crate::harness::Project;

/// A project whose job proves it sees the whole project, not the folder pipe was run from.
fn nested() -> Project {
    let project =
        Project::new("jobs:\n  test:\n    script: [test -f src/deep/marker, test -f pipe.yml]\n");
    project.write("src/deep/marker", "here\n");
    project
}

#[test]
fn every_command_finds_the_project_and_its_one_store_from_a_subfolder() {
    let project = nested();
    let ran = project.pipe_in("src/deep", &["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(project.path().join(".pipe").is_dir());
    assert!(!project.path().join("src/deep/.pipe").exists());

    let runs = project.pipe_in("src", &["runs"]);
    assert_eq!(runs.code, 0, "{}", runs.all());
    assert!(
        runs.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("1 ")),
        "{}",
        runs.stdout
    );
    let show = project.pipe_in("src/deep", &["show", "1"]);
    assert!(show.stdout.contains("run 1 of "), "{}", show.all());
    let logs = project.pipe_in("src", &["logs", "1", "test"]);
    assert!(
        logs.stdout.contains("$ test -f src/deep/marker"),
        "{}",
        logs.all()
    );
    let validate = project.pipe_in("src/deep", &["validate"]);
    assert!(
        validate.stdout.starts_with("pipe.yml: valid"),
        "{}",
        validate.all()
    );
    assert!(!project.path().join("src/.pipe").exists());
}

#[test]
fn a_pipeline_file_given_is_relative_to_where_you_stand_and_makes_its_folder_the_project() {
    let project = nested();
    let ran = project.pipe_in("src", &["run", "../pipe.yml", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(project.path().join(".pipe/runs/1").is_dir());
    assert!(!project.path().join("src/.pipe").exists());

    // From a folder outside the project, a dry run plans the file given too.
    let outside = tempfile::tempdir().unwrap();
    let file = project.path().join("pipe.yml");
    let mut cmd = project.command(&["run", file.to_str().unwrap(), "--dry-run"]);
    let listed = cmd.current_dir(outside.path()).output().unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}

#[test]
fn without_a_pipeline_file_pipe_says_where_it_looked() {
    let project = Project::new("");
    std::fs::remove_file(project.path().join("pipe.yml")).unwrap();
    git2::Repository::init(project.path()).unwrap();
    let ran = project.pipe_in("sub", &["runs"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    let root = project.path().canonicalize().unwrap();
    assert_eq!(
        ran.stderr,
        format!(
            "pipe: no pipeline file found: looked for pipe.yml, pipe.yaml, .pipe.yml, .pipe.yaml, pipelines/ci.yml, pipelines/ci.yaml in {}/sub and every folder above it up to the repository's root {}\n",
            root.display(),
            root.display()
        )
    );
    assert!(!project.path().join("sub/.pipe").exists());
}

#[test]
fn run_with_a_job_name_for_a_file_suggests_the_job_flag() {
    let project = nested();
    let ran = project.pipe_in("src", &["run", "test"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert_eq!(
        ran.stderr,
        "pipe: there is no pipeline file `test`, but there is a job `test`: did you mean `pipe run --job test`?\n"
    );
    // A name that is no job stays a file that cannot be read.
    let ran = project.pipe(&["run", "nosuch"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.starts_with("pipe: cannot read nosuch"),
        "{}",
        ran.stderr
    );
}

#[test]
fn an_unknown_job_gets_a_did_you_mean() {
    let ran = nested().pipe(&["run", "--job", "tset", "--backend", "local"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(ran.stderr.contains("no job named `tset`"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("help: did you mean `test`?"),
        "{}",
        ran.stderr
    );
}
