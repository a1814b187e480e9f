//! `--env`, `--env-file` and `--secrets-file`, shared by the commands that start jobs: the
//! only place pipe's own environment is read for jobs' sake. Secrets are never taken from argv:
//! every user of the machine can read a process's arguments.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::secret::Supply;
use crate::vars::dotenv;

#[derive(clap::Args, Clone)]
pub struct VarsArgs {
    /// Give every job this variable, under the pipeline's own `env` (repeatable): `NAME=VALUE`,
    /// or `NAME` to pass on your own value of it. Not for secrets: argv is visible to all users
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Read variables from this dotenv file (repeatable; `--env` wins over it)
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Read the values of the secrets jobs name from this dotenv file (before pipe's
    /// environment and the pipeline's commands)
    #[arg(long = "secrets-file", value_name = "FILE")]
    secrets_file: Option<PathBuf>,
}

impl VarsArgs {
    /// The passed variables, files first and then `--env` in order (later ones win).
    pub fn vars(&self) -> Result<Vec<(String, String)>, CliError> {
        let mut vars = Vec::new();
        for file in &self.env_files {
            vars.extend(read_dotenv(file)?);
        }
        for arg in &self.env {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, value.to_string()),
                None => {
                    let value = std::env::var(arg).map_err(|_| {
                        CliError::Invalid(format!(
                            "--env {arg}: `{arg}` is not set in your environment (write --env {arg}=VALUE to give a value)"
                        ))
                    })?;
                    (arg.as_str(), value)
                }
            };
            if !dotenv::is_name(name) {
                return Err(CliError::Invalid(format!(
                    "--env {arg}: `{name}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
                )));
            }
            vars.push((name.to_string(), value));
        }
        Ok(vars)
    }

    /// Where secrets may come from: the secrets file (with a warning when other users may read
    /// it) and pipe's environment.
    pub fn supply(&self) -> Result<Supply, CliError> {
        let file = match &self.secrets_file {
            Some(path) => {
                warn_if_readable(path);
                read_dotenv(path)?
            }
            None => Vec::new(),
        };
        Ok(Supply {
            file,
            caller: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        })
    }
}

fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    dotenv::parse(&text).map_err(|e| CliError::Invalid(format!("{}:{e}", path.display())))
}

fn warn_if_readable(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "pipe: warning: {} can be read by other users (mode {mode:03o}): `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}
