//! YAML text → a checked [`Pipeline`]. Every problem found is collected with its position, so
//! that `pipe validate` can report all of them at once. Nothing here does I/O beyond reading the
//! file, and nothing downstream has to check the pipeline again.

mod artifact;
mod build;
pub mod cache;
mod check;
mod duration;
mod extends;
pub mod gate;
pub mod glob;
mod habits;
mod model;
mod only;
mod schema;
mod secrets;
pub mod signals;
pub mod starter;
mod yaml;

use std::path::{Path, PathBuf};

pub use artifact::ArtifactPath;
pub use build::{BuildImage, DriftPolicy, PushImage};
pub use check::services::{Ready, Service};
pub use check::steps::{Step, Verify};
pub use check::suggest;
pub use model::{
    Job, Need, Pipeline, Scanner, Spans, Volume, DEFAULT_STAGES, DEPLOY_STAGE, RELEASE_STAGE,
};
pub use only::Only;
pub use schema::json_schema;
pub use secrets::{Provider, SecretName};
pub use yaml::{typed as typed_yaml, SyntaxError};

/// 1-based line and column in the pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

/// One thing wrong with a pipeline: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Option<Pos>,
    /// How many characters from `pos` the offending text spans (at least 1).
    pub len: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn at(pos: Pos, len: usize, message: impl Into<String>) -> Self {
        Problem {
            pos: Some(pos),
            len: len.max(1),
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A pipeline file that could not be loaded: its text (for snippets) and every problem in it.
#[derive(Debug)]
pub struct Invalid {
    pub file: PathBuf,
    pub source: String,
    pub problems: Vec<Problem>,
    /// What could be read despite the problems, so later checks (cycles) can add theirs.
    pub partial: Option<Pipeline>,
}

/// Pipelines larger than this are refused before parsing: a real one is a few hundred KiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// File names looked for, in order, when no pipeline file is given.
pub const DEFAULT_FILES: &[&str] = &[
    "pipe.yml",
    "pipe.yaml",
    ".pipe.yml",
    ".pipe.yaml",
    "pipelines/ci.yml",
    "pipelines/ci.yaml",
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no pipeline file found in {dir}: looked for {}", DEFAULT_FILES.join(", "))]
    NotFound { dir: PathBuf },
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is {size} bytes; pipeline files are limited to {MAX_FILE_BYTES} bytes")]
    TooLarge { file: PathBuf, size: u64 },
    #[error("{} problem(s) in {}", .0.problems.len(), .0.file.display())]
    Invalid(Box<Invalid>),
}

/// Reads and checks a pipeline file, named (unless it names itself) for its folder.
pub fn load(file: &Path) -> Result<Pipeline, LoadError> {
    load_as(file, None)
}

/// Reads and checks a pipeline file; `default_name`, else its folder's, names the pipeline when
/// the file does not.
pub fn load_as(file: &Path, default_name: Option<&str>) -> Result<Pipeline, LoadError> {
    let read_err = |source| LoadError::Read {
        file: file.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(file).map_err(read_err)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            file: file.to_path_buf(),
            size,
        });
    }
    let bytes = std::fs::read(file).map_err(read_err)?;
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let problem = Problem {
                pos: Some(pos_of_byte(e.as_bytes(), e.utf8_error().valid_up_to())),
                len: 1,
                message: "the file is not valid UTF-8".into(),
                hint: Some("save the pipeline file as UTF-8".into()),
            };
            let source = String::from_utf8_lossy(e.as_bytes()).into_owned();
            return Err(invalid(file, source, vec![problem], None));
        }
    };
    let default_name = default_name
        .map(str::to_string)
        .or_else(|| {
            let file = file.canonicalize().ok()?;
            let folder = file.parent()?.file_name()?;
            Some(folder.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pipeline".into());
    match check(&source, &default_name) {
        (Some(pipeline), problems) if problems.is_empty() => Ok(pipeline),
        (partial, problems) => Err(invalid(file, source, problems, partial)),
    }
}

/// Checks pipeline text; `default_name` names the pipeline when the file does not.
pub fn parse(source: &str, default_name: &str) -> Result<Pipeline, Vec<Problem>> {
    match check(source, default_name) {
        (Some(pipeline), problems) if problems.is_empty() => Ok(pipeline),
        (_, problems) => Err(problems),
    }
}

fn check(source: &str, default_name: &str) -> (Option<Pipeline>, Vec<Problem>) {
    match yaml::parse(source) {
        Ok(root) => {
            let (root, mut problems) = extends::resolve(&root);
            let (pipeline, more) = check::pipeline(&root, default_name);
            problems.extend(more);
            (pipeline, problems)
        }
        Err(e) => (
            None,
            vec![Problem {
                pos: e.pos,
                len: 1,
                message: format!("invalid YAML: {}", e.message),
                hint: Some(if e.message.contains("tab") {
                    "indent with spaces: YAML does not allow tabs there".into()
                } else {
                    "check the indentation, colons and quotes at and just before this spot".into()
                }),
            }],
        ),
    }
}

fn invalid(
    file: &Path,
    source: String,
    mut problems: Vec<Problem>,
    partial: Option<Pipeline>,
) -> LoadError {
    problems.sort_by_key(|p| p.pos);
    // A mistake in an anchor merged into several jobs is one mistake.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.pos, p.message.clone())));
    LoadError::Invalid(Box::new(Invalid {
        file: file.to_path_buf(),
        source,
        problems,
        partial,
    }))
}

fn pos_of_byte(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Pos::new(line as u32, col as u32)
}
