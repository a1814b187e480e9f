//! What the shell and the manual get: help on every argument, completions, manual pages.

use crate::harness::Project;

/// Every subcommand says what it does and every argument (and each of its values) what it
/// means: a user reading `--help`, a completion menu or the man page never meets a bare name.
#[test]
fn every_subcommand_argument_and_value_has_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            // clap's own --help and --version describe themselves.
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} <{id}>"));
            }
            for value in arg.get_possible_values() {
                if value.get_help().is_none() && !value.is_hide_set() {
                    missing.push(format!("{path} <{id}> value `{}`", value.get_name()));
                }
            }
        }
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(path.clone());
            }
            walk(sub, &path, missing);
        }
    }
    let mut cmd = pipe::cli::command();
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, "pipe", &mut missing);
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_help_of_run_and_approve_explains_output_and_comment() {
    let project = Project::new("jobs:\n  a: {script: [echo]}\n");
    let run = project.pipe(&["run", "--help"]);
    assert!(
        run.stdout.contains("one JSON event per line for programs"),
        "{}",
        run.stdout
    );
    let approve = project.pipe(&["approve", "--help"]);
    assert!(
        approve
            .stdout
            .contains("recorded with the approval in the audit trail"),
        "{}",
        approve.stdout
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let project = Project::new("jobs:\n  a: {script: [echo]}\n");
    // What each shell's script starts with, and a flag only pipe has, completed.
    for (shell, marker) in [
        ("bash", "_pipe()"),
        ("zsh", "#compdef pipe"),
        ("fish", "complete -c pipe"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let ran = project.pipe(&["completions", shell]);
        assert_eq!(ran.code, 0, "{shell}: {}", ran.all());
        assert!(ran.stdout.contains(marker), "{shell}: {}", ran.stdout);
        assert!(
            ran.stdout.contains("allow-privileged"),
            "{shell}: {}",
            ran.stdout
        );
    }
    let ran = project.pipe(&["completions", "tcsh"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("possible values: bash, zsh, fish, powershell"),
        "{}",
        ran.stderr
    );
}

#[test]
fn the_manual_page_is_printed_or_written() {
    let project = Project::new("jobs:\n  a: {script: [echo]}\n");
    let top = project.pipe(&["man"]);
    assert_eq!(top.code, 0, "{}", top.all());
    assert!(top.stdout.starts_with(".ie"), "{}", top.stdout);
    assert!(top.stdout.contains(".TH pipe 1"), "{}", top.stdout);
    assert!(top.stdout.contains("pipe\\-run(1)"), "{}", top.stdout);

    let run = project.pipe(&["man", "run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains(".TH pipe-run 1"), "{}", run.stdout);
    assert!(run.stdout.contains("allow\\-privileged"), "{}", run.stdout);

    let typo = project.pipe(&["man", "rnu"]);
    assert_eq!(typo.code, 2, "{}", typo.all());
    assert_eq!(
        typo.stderr,
        "pipe: no subcommand `rnu`: did you mean `run`?\n"
    );

    let dir = project.path().join("man1");
    std::fs::create_dir(&dir).unwrap();
    let to = project.pipe(&["man", "--to", dir.to_str().unwrap()]);
    assert_eq!(to.code, 0, "{}", to.all());
    for page in ["pipe.1", "pipe-run.1", "pipe-approve.1", "pipe-man.1"] {
        assert!(
            dir.join(page).is_file(),
            "{page} missing in {:?}",
            std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
        );
    }
}
