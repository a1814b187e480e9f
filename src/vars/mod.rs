//! Variables passed to a run (`--env NAME=VALUE`, `--env NAME`, `--env-file`): plain values, not
//! secrets. A job's environment is, later entries winning: pipe's built-ins, the passed
//! variables, the pipeline's `env`, the job's `env`, its matrix values. So the pipeline file
//! has the last word, as the issue asked; a passed variable reaches a job either under its own
//! name, where nothing in the file sets it, or through `${NAME}` in an `env` value.

pub mod dotenv;
mod expand;

use crate::pipeline::{Job, Problem};

pub use expand::expand;

/// Expands `${NAME}`/`$NAME` in the `env` values of `jobs` (not in matrix values, which are
/// names of variants), from `passed` and the entries before each one. Every reference to an
/// undefined name is a problem at the value that holds it.
pub fn apply(jobs: &mut [Job], passed: &[(String, String)]) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for job in jobs.iter_mut() {
        let own = job.env.len() - job.matrix.len();
        let mut done: Vec<(String, String)> = Vec::with_capacity(job.env.len());
        for (i, (name, value)) in job.env.iter().enumerate() {
            if i >= own {
                done.push((name.clone(), value.clone()));
                continue;
            }
            let lookup = |wanted: &str| {
                done.iter()
                    .rev()
                    .chain(passed.iter().rev())
                    .find(|(k, _)| k == wanted)
                    .map(|(_, v)| v.clone())
            };
            match expand(value, lookup) {
                Ok(v) => done.push((name.clone(), v)),
                Err(missing) => {
                    let pos = job.spans.env.iter().rev().find(|(k, _)| k == name);
                    let message = format!(
                        "`{name}` of job `{}` uses `{missing}`, which is not defined",
                        job.base
                    );
                    let hint = format!("define `{missing}` in `env`, pass it with `--env {missing}=…` (or `--env {missing}` to take yours), or write `$$` for a literal `$`");
                    let problem = match pos {
                        Some((_, pos)) => Problem::at(*pos, 1, message),
                        None => Problem {
                            pos: None,
                            len: 1,
                            message,
                            hint: None,
                        },
                    };
                    // One problem per value written, not one per matrix variant of it.
                    if seen.insert((problem.pos, name.clone())) {
                        problems.push(problem.hint(hint));
                    }
                    done.push((name.clone(), value.clone()));
                }
            }
        }
        job.env = done;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
