//! The script pipe writes as a git hook, and reading back what one says. The script holds no
//! logic beyond finding pipe: git's arguments and stdin go to `pipe hook run` untouched, so no
//! value from git (a ref name, a remote's URL) is ever part of shell text.

use std::path::{Path, PathBuf};

use super::Kind;

/// What an installed pipe hook runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub kind: Kind,
    pub stages: Vec<String>,
    /// `docker` or `local`; `None`: pipe's default.
    pub backend: Option<String>,
    /// The pipe that installed it, used when none is on PATH.
    pub pipe: PathBuf,
}

/// The line that tells pipe's hooks from any other.
const MARKER: &str = "# pipe hook: ";

impl Script {
    pub fn render(&self) -> String {
        let name = self.kind.name();
        let pipe = quote(&self.pipe.to_string_lossy());
        let mut args = format!("--stages {}", quote(&self.stages.join(",")));
        if let Some(backend) = &self.backend {
            args.push_str(&format!(" --backend {}", quote(backend)));
        }
        format!(
            r#"#!/bin/sh
{MARKER}{name}
# Written by `pipe hook install`; `pipe hook uninstall` removes it and puts back the hook that
# was here before (kept as {name}.pipe-original, and run first by pipe).
# git's arguments and stdin go to pipe untouched: nothing from git is ever shell text here.
pipe={pipe}
if [ ! -x "$pipe" ]; then
    found=$(command -v pipe) || {{
        echo "pipe hook: cannot run the {name} check: pipe is not on PATH and no longer at $pipe (where it was installed from). Install pipe, or run \`pipe hook install\` again; \`git {bypass} --no-verify\` skips the check once." >&2
        exit 1
    }}
    pipe=$found
fi
exec "$pipe" hook run {name} {args} -- "$@"
"#,
            bypass = match self.kind {
                Kind::PrePush => "push",
                Kind::PreCommit => "commit",
            },
        )
    }

    /// What a pipe hook script runs; `None` for any other file.
    pub fn parse(text: &str) -> Option<Script> {
        let name = text.lines().find_map(|l| l.strip_prefix(MARKER))?;
        let kind = Kind::ALL.into_iter().find(|k| k.name() == name.trim())?;
        let pipe = text.lines().find_map(|l| l.strip_prefix("pipe="))?;
        let run = text
            .lines()
            .find(|l| l.starts_with("exec \"$pipe\" hook run "))?;
        Some(Script {
            kind,
            stages: quoted_after(run, "--stages ")?
                .split(',')
                .map(str::to_string)
                .collect(),
            backend: quoted_after(run, "--backend "),
            pipe: PathBuf::from(unquote(pipe)?),
        })
    }
}

/// Whether the file at `path` is a hook pipe wrote.
pub fn is_pipes(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| Script::parse(&text).is_some())
}

/// `text` in single quotes for a POSIX shell: nothing inside is expanded.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace(r"'\''", "'"))
}

/// The single-quoted word after `flag` in `line` (stage and backend names hold no quotes).
fn quoted_after(line: &str, flag: &str) -> Option<String> {
    let rest = line.split_once(flag)?.1.strip_prefix('\'')?;
    Some(rest.split_once('\'')?.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_reads_back_as_what_it_runs() {
        let script = Script {
            kind: Kind::PrePush,
            stages: vec!["build".into(), "test".into()],
            backend: Some("local".into()),
            pipe: PathBuf::from("/opt/it's here/pipe"),
        };
        let text = script.render();
        assert!(text.starts_with("#!/bin/sh\n"));
        assert!(text.contains(r"pipe='/opt/it'\''s here/pipe'"), "{text}");
        assert!(text.contains(
            "exec \"$pipe\" hook run pre-push --stages 'build,test' --backend 'local' -- \"$@\"\n"
        ));
        assert_eq!(Script::parse(&text), Some(script));
        let commit = Script {
            kind: Kind::PreCommit,
            stages: vec!["test".into()],
            backend: None,
            pipe: PathBuf::from("/usr/bin/pipe"),
        };
        assert_eq!(Script::parse(&commit.render()), Some(commit));
        assert_eq!(Script::parse("#!/bin/sh\nexec make check\n"), None);
    }
}
