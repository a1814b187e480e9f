//! An `artifacts` entry: a path relative to the workspace, or a glob as in GitLab and GitHub
//! Actions (`dist/*.tar.gz`, `reports/**/*.xml`: `*` stays within one directory, `**` crosses
//! them).

use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::glob::Glob;

#[derive(Debug, Clone)]
pub struct ArtifactPath {
    text: String,
    /// The leading components without wildcards: what a backend fetches.
    base: PathBuf,
    glob: Option<Glob>,
}

impl ArtifactPath {
    /// Reads a path as written (after `$VAR` expansion); the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ArtifactPath, String> {
        let text = text.trim_end_matches('/');
        let path = Path::new(text);
        if path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "artifact path `{text}` must stay inside the workspace"
            ));
        }
        let wild = |c: &Component| {
            c.as_os_str()
                .to_string_lossy()
                .contains(['*', '?', '[', '{'])
        };
        let base: PathBuf = path
            .components()
            .take_while(|c| !wild(c))
            .filter(|c| *c != Component::CurDir)
            .collect();
        let is_glob = path.components().any(|c| wild(&c));
        if base.as_os_str().is_empty() && !is_glob {
            return Err(format!(
                "artifact path `{text}` names the whole workspace: list what to keep"
            ));
        }
        let glob = if is_glob {
            let glob = Glob::new(text.trim_start_matches("./"))
                .map_err(|e| format!("artifact path `{text}` is not a valid glob: {e}"))?;
            Some(glob)
        } else {
            None
        };
        Ok(ArtifactPath {
            text: text.to_string(),
            base,
            glob,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The file or directory to fetch: the whole path, or a glob's part before its first
    /// wildcard (empty for `*.xml`: the whole workspace).
    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }

    /// Whether a path relative to the workspace is (part of) this artifact.
    pub fn matches(&self, rel: &Path) -> bool {
        match &self.glob {
            Some(glob) => glob.is_match(rel),
            None => rel == self.base,
        }
    }
}

impl PartialEq for ArtifactPath {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_globs() {
        let plain = ArtifactPath::parse("out/app/").unwrap();
        assert_eq!(
            (plain.as_str(), plain.base()),
            ("out/app", Path::new("out/app"))
        );
        assert!(!plain.is_glob());

        let star = ArtifactPath::parse("dist/*.tar.gz").unwrap();
        assert_eq!(star.base(), Path::new("dist"));
        assert!(star.matches(Path::new("dist/app.tar.gz")));
        assert!(
            !star.matches(Path::new("dist/sub/app.tar.gz")),
            "`*` stays in one directory"
        );

        let deep = ArtifactPath::parse("reports/**/*.xml").unwrap();
        assert!(deep.matches(Path::new("reports/unit/a/junit.xml")));
        assert!(deep.matches(Path::new("reports/junit.xml")));

        let top = ArtifactPath::parse("*.log").unwrap();
        assert_eq!(top.base(), Path::new(""));
        assert!(top.matches(Path::new("build.log")));
    }

    #[test]
    fn paths_out_of_the_workspace_and_bad_globs_are_refused() {
        for bad in ["/etc/passwd", "../x", "out/../../x"] {
            let err = ArtifactPath::parse(bad).unwrap_err();
            assert!(err.contains("must stay inside the workspace"), "{err}");
        }
        let err = ArtifactPath::parse(".").unwrap_err();
        assert!(err.contains("names the whole workspace"), "{err}");
        let err = ArtifactPath::parse("out/[a-").unwrap_err();
        assert!(err.contains("is not a valid glob"), "{err}");
    }
}
