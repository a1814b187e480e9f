//! The starter pipeline `pipe init` writes: build, test, a security scan, a deploy placeholder
//! and a gated release, with the image and commands of the project's toolchain. Text only; what
//! the project holds is looked at by the caller.

/// The toolchains `pipe init` knows, in the order it looks for them: a project with a
/// Cargo.toml and a Makefile is a Rust project whose Makefile wraps cargo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    Rust,
    Go,
    Node,
    Python,
    /// `make` and, when the Makefile has such a target, `make test` (or `make check`).
    Make {
        test_target: Option<&'static str>,
    },
    /// Nothing recognised: placeholders that run anywhere.
    Plain,
}

impl Toolchain {
    /// The file that tells this toolchain apart, for the user's and the file's information.
    pub const MARKERS: &[(&'static str, Toolchain)] = &[
        ("Cargo.toml", Toolchain::Rust),
        ("go.mod", Toolchain::Go),
        ("package.json", Toolchain::Node),
        ("pyproject.toml", Toolchain::Python),
        ("Makefile", Toolchain::Make { test_target: None }),
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Toolchain::Rust => "a Rust project",
            Toolchain::Go => "a Go module",
            Toolchain::Node => "a Node.js project",
            Toolchain::Python => "a Python project",
            Toolchain::Make { .. } => "a project built with make",
            Toolchain::Plain => "a project of no toolchain pipe knows",
        }
    }

    /// The Makefile target that runs the tests, among the ones its text defines.
    pub fn make_test_target(makefile: &str) -> Option<&'static str> {
        ["test", "check"].into_iter().find(|target| {
            makefile
                .lines()
                .any(|l| l.strip_prefix(target).is_some_and(|r| r.starts_with(':')))
        })
    }

    /// The image, the build lines and the test lines.
    fn recipe(self) -> (&'static str, &'static [&'static str], Vec<&'static str>) {
        match self {
            Toolchain::Rust => ("rust:1", &["cargo build --locked"], vec!["cargo test --locked"]),
            Toolchain::Go => ("golang:1", &["go build ./..."], vec!["go vet ./...", "go test ./..."]),
            Toolchain::Node => (
                "node:lts",
                &["npm ci", "npm run build --if-present"],
                vec!["npm ci", "npm test"],
            ),
            Toolchain::Python => (
                "python:3",
                &["python -m pip install ."],
                vec!["python -m pip install . pytest", "python -m pytest"],
            ),
            Toolchain::Make { test_target } => (
                "gcc:14",
                &["make"],
                vec![match test_target {
                    Some("check") => "make check",
                    Some(_) => "make test",
                    None => "echo 'no test or check target in the Makefile yet, add one and call it here'",
                }],
            ),
            Toolchain::Plain => (
                "alpine:3",
                &["echo 'build placeholder, put your build commands here'"],
                vec!["echo 'test placeholder, put your test commands here'"],
            ),
        }
    }
}

/// The pipeline file's text for `toolchain`, found by its `marker` file (if any).
pub fn pipeline(toolchain: Toolchain, marker: Option<&str>) -> String {
    let (image, build, test) = toolchain.recipe();
    let found = match marker {
        Some(file) => format!("{} (found {file})", toolchain.describe()),
        None => toolchain.describe().to_string(),
    };
    let lines = |lines: &[&str]| -> String {
        lines
            .iter()
            .map(|l| format!("      - {}\n", quoted(l)))
            .collect()
    };
    format!(
        "# Written by `pipe init` for {found}.
# Check it with `pipe validate`, run it with `pipe run` (in containers) or
# `pipe run --backend local` (with this machine's tools). Every key is described in
# pipe's docs/pipeline-format.md.
default:
  image: {image}        # every job's image, unless it names its own
  timeout: 30m
jobs:
  build:
    stage: build
    script:
{build}  test:
    stage: test
    needs: [build]
    script:
{test}  security-scan:
    stage: security-scan
    needs: []
    scan: [secrets, pipeline]   # pipe's own scanners: committed credentials, risky settings
  deploy:
    stage: deploy
    needs: [test, security-scan]
    environment: staging
    script:
      - echo 'deploy placeholder, put the commands that deploy to staging here'
  # Release jobs never run with the rest: `pipe run` stops at the gate, then
  # `pipe approve last` and `pipe release last` run them (see docs/releases.md).
  release:
    stage: release
    environment: production
    gate:
      approvals: 1
      # branches: [main]   # release only what a branch holds, committed
    script:
      - echo 'release placeholder, put the commands that release to production here'
",
        build = lines(build),
        test = lines(&test),
    )
}

/// A script line as a YAML scalar: quoted when YAML would read it as anything but text.
fn quoted(line: &str) -> String {
    if line.contains(": ")
        || line.contains(" #")
        || line.starts_with(['\'', '"', '*', '&', '!', '[', '{'])
    {
        format!("'{}'", line.replace('\'', "''"))
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_starter_pipeline_is_valid_with_the_five_jobs() {
        let toolchains = Toolchain::MARKERS
            .iter()
            .map(|(file, t)| (*t, Some(*file)))
            .chain([
                (
                    Toolchain::Make {
                        test_target: Some("check"),
                    },
                    Some("Makefile"),
                ),
                (Toolchain::Plain, None),
            ]);
        for (toolchain, marker) in toolchains {
            let text = pipeline(toolchain, marker);
            let parsed = crate::pipeline::parse(&text, "starter")
                .unwrap_or_else(|p| panic!("{toolchain:?}: {p:?}\n{text}"));
            let jobs: Vec<&str> = parsed.jobs.iter().map(|j| j.name.as_str()).collect();
            assert_eq!(
                jobs,
                ["build", "test", "security-scan", "deploy", "release"]
            );
            assert!(parsed.jobs[4].gated && parsed.jobs[4].gate.is_some());
            assert!(parsed.jobs[2].scan.len() == 2 && parsed.jobs[2].image.is_none());
        }
    }

    #[test]
    fn the_makefile_target_that_tests_is_found() {
        assert_eq!(
            Toolchain::make_test_target("all:\n\tcc x.c\ntest: all\n\t./t\n"),
            Some("test")
        );
        assert_eq!(
            Toolchain::make_test_target("check:\n\t./t\n"),
            Some("check")
        );
        assert_eq!(Toolchain::make_test_target("tests:\n\t./t\n"), None);
    }
}
