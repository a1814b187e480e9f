//! `pipe init`: a starter pipeline for the project in the current folder, written where no
//! pipeline file is, never over one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pipeline::starter::{self, Toolchain};
use crate::pipeline::DEFAULT_FILES;

use super::{print, CliError, Internal};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the pipeline [default: pipe.yml]
    file: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let dir = std::env::current_dir().map_err(Internal::io("read the current directory"))?;
    let file = args.file.unwrap_or_else(|| PathBuf::from(DEFAULT_FILES[0]));
    // A pipeline pipe would find first stays the one it runs: a second would go unnoticed.
    if let Some(existing) = DEFAULT_FILES.iter().find(|f| dir.join(f).exists()) {
        if Path::new(existing) != file {
            return Err(CliError::Invalid(format!(
                "{existing} already holds this project's pipeline; pipe init writes one only where there is none"
            )));
        }
    }
    let (toolchain, marker) = detect(&dir);
    let text = starter::pipeline(toolchain, marker);
    let mut out = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(&file))
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::Invalid(format!(
                "{} already exists; pipe init never overwrites a file: remove it, or name another (`pipe init FILE`)",
                file.display()
            )))
        }
        Err(e) => {
            return Err(CliError::Invalid(format!(
                "cannot create {}: {e}",
                file.display()
            )))
        }
    };
    out.write_all(text.as_bytes())
        .map_err(Internal::io(format!("write {}", file.display())))?;
    let run_file = if DEFAULT_FILES.iter().any(|f| Path::new(f) == file) {
        String::new()
    } else {
        format!(" {}", file.display())
    };
    print(&format!(
        "pipe: wrote {} for {}: build, test, security-scan, deploy and a gated release\n\
         next: pipe validate{run_file}, then pipe run{run_file} (--backend local uses this machine's tools)\n",
        file.display(),
        match marker {
            Some(m) => format!("{} (found {m})", toolchain.describe()),
            None => toolchain.describe().to_string(),
        },
    ))?;
    Ok(super::exit::OK)
}

/// The first toolchain whose marker file the folder holds.
fn detect(dir: &Path) -> (Toolchain, Option<&'static str>) {
    for (file, toolchain) in Toolchain::MARKERS {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let toolchain = match toolchain {
            Toolchain::Make { .. } => Toolchain::Make {
                test_target: std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| Toolchain::make_test_target(&text)),
            },
            other => *other,
        };
        return (toolchain, Some(*file));
    }
    (Toolchain::Plain, None)
}
