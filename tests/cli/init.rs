//! `pipe init`: a starter pipeline that validates and runs, never written over a file.

use crate::harness::Project;

/// A project folder without a pipeline file.
fn empty() -> Project {
    let project = Project::new("");
    std::fs::remove_file(project.path().join("pipe.yml")).unwrap();
    project
}

#[test]
fn each_toolchain_gets_a_starter_with_its_image_that_validates() {
    for (marker, image, test_line) in [
        ("Cargo.toml", "rust:1", "cargo test --locked"),
        ("go.mod", "golang:1", "go test ./..."),
        ("package.json", "node:lts", "npm test"),
        ("pyproject.toml", "python:3", "python -m pytest"),
        ("Makefile", "gcc:14", "make check"),
    ] {
        let project = empty();
        project.write(marker, "check:\n\ttrue\n");
        let init = project.pipe(&["init"]);
        assert_eq!(init.code, 0, "{marker}: {}", init.all());
        assert!(
            init.stdout.contains(&format!("(found {marker})")),
            "{}",
            init.stdout
        );
        let written = std::fs::read_to_string(project.path().join("pipe.yml")).unwrap();
        assert!(
            written.contains(&format!("image: {image} ")),
            "{marker}:\n{written}"
        );
        assert!(written.contains(test_line), "{marker}:\n{written}");
        let validate = project.pipe(&["validate"]);
        assert_eq!(validate.code, 0, "{marker}: {}", validate.all());
        assert!(validate.stdout.contains("5 job(s)"), "{}", validate.stdout);
    }
}

#[test]
fn what_init_says_it_wrote_and_what_to_do_next() {
    let project = empty();
    project.write("Cargo.toml", "[package]\nname = \"x\"\n");
    let init = project.pipe(&["init"]);
    assert_eq!(init.code, 0, "{}", init.all());
    insta::assert_snapshot!(init.stdout, @r"
    pipe: wrote pipe.yml for a Rust project (found Cargo.toml): build, test, security-scan, deploy and a gated release
    next: pipe validate, then pipe run (--backend local uses this machine's tools)
    ");
}

#[test]
fn init_never_overwrites_a_file() {
    let project = Project::new("jobs:\n  mine: {script: [echo]}\n");
    let again = project.pipe(&["init"]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert_eq!(
        again.stderr,
        "pipe: pipe.yml already exists; pipe init never overwrites a file: remove it, or name another (`pipe init FILE`)\n"
    );
    assert_eq!(
        std::fs::read_to_string(project.path().join("pipe.yml")).unwrap(),
        "jobs:\n  mine: {script: [echo]}\n"
    );

    // Another file pipe would find first keeps being the project's pipeline.
    let project = empty();
    project.write(".pipe.yml", "jobs:\n  mine: {script: [echo]}\n");
    let shadowed = project.pipe(&["init"]);
    assert_eq!(shadowed.code, 2, "{}", shadowed.all());
    assert_eq!(
        shadowed.stderr,
        "pipe: .pipe.yml already holds this project's pipeline; pipe init writes one only where there is none\n"
    );
    assert!(!project.path().join("pipe.yml").exists());
}

/// The starter of a make project, run for real with the host's make: green up to the gate,
/// then approved and released.
#[test]
fn a_starter_pipeline_runs_green_and_releases_after_approval() {
    let project = empty();
    project.write(
        "Makefile",
        "all:\n\techo built > app.txt\ntest: all\n\tgrep -q built app.txt\n",
    );
    assert_eq!(project.pipe(&["init"]).code, 0);
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    for job in ["build", "test", "security-scan", "deploy"] {
        assert!(ran.row(job).contains("passed"), "{job}: {}", ran.stdout);
    }
    assert!(
        ran.all()
            .contains("release 1 awaits 1 approval: pipe approve 1, then pipe release 1"),
        "{}",
        ran.all()
    );
    let approved = project.pipe(&["approve", "1", "--by", "ann"]);
    assert_eq!(approved.code, 0, "{}", approved.all());
    let released = project.pipe(&["release", "1"]);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(
        released.row("release").contains("passed"),
        "{}",
        released.stdout
    );
    assert!(
        released.stdout.contains("release placeholder"),
        "{}",
        released.stdout
    );
}
