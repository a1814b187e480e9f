//! A key template evaluated for one job: `hash` digests the files of the run's source as the job
//! sees them, `env` and `matrix` read the job's values.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::pipeline::cache::{HashArg, Part, Template, MAX_KEY};

/// The key, or why it cannot be had (a `hash` that selects no file).
pub fn evaluate(
    template: &Template,
    source: &Path,
    env: &[(String, String)],
    matrix: &[(String, String)],
) -> Result<String, String> {
    let mut key = String::new();
    for part in &template.parts {
        match part {
            Part::Text(text) => key.push_str(text),
            Part::Env(name) => key.push_str(value(env, name).unwrap_or_default()),
            Part::Matrix(name) => key.push_str(value(matrix, name).unwrap_or_default()),
            Part::Hash(args) => key.push_str(
                &hash(source, args)
                    .map_err(|e| format!("cannot hash the files: {e}"))?
                    .ok_or_else(|| {
                        let names: Vec<String> = args.iter().map(arg_text).collect();
                        format!("no file of the workspace matches `{}`", names.join("`, `"))
                    })?,
            ),
        }
    }
    if key.chars().count() > MAX_KEY || key.contains(['\n', '\0']) {
        return Err(format!(
            "the key `{}` is not usable: at most {MAX_KEY} characters on one line",
            key.chars().take(60).collect::<String>()
        ));
    }
    Ok(key)
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn arg_text(arg: &HashArg) -> String {
    match arg {
        HashArg::Path(p) => p.clone(),
        HashArg::Glob(g) => g.as_str().to_string(),
    }
}

/// One digest of the selected files' names and contents, in name order; `None` if none match.
fn hash(source: &Path, args: &[HashArg]) -> io::Result<Option<String>> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut all: Option<Vec<PathBuf>> = None;
    for arg in args {
        match arg {
            HashArg::Path(rel) => files.extend(beneath(source, Path::new(rel))?),
            HashArg::Glob(glob) => {
                let every = match &mut all {
                    Some(every) => every,
                    None => all.insert(beneath(source, Path::new(""))?),
                };
                files.extend(every.iter().filter(|f| glob.is_match(f)).cloned());
            }
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    files.dedup();
    let mut digest = Sha256::new();
    for rel in files {
        let full = source.join(&rel);
        let meta = fs::symlink_metadata(&full)?;
        digest.update(rel.as_os_str().as_encoded_bytes());
        digest.update([0]);
        // A link is hashed as where it points, never followed.
        if meta.file_type().is_symlink() {
            digest.update(fs::read_link(&full)?.as_os_str().as_encoded_bytes());
        } else {
            let mut file = fs::File::open(&full)?;
            let mut content = Sha256::new();
            io::copy(&mut file, &mut content)?;
            digest.update(content.finalize());
        }
        digest.update([0]);
    }
    Ok(Some(
        digest.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

/// The files and links at or beneath `rel` (relative to `root`), never following a link;
/// empty when there is nothing there.
fn beneath(root: &Path, rel: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![rel.to_path_buf()];
    while let Some(at) = stack.pop() {
        let meta = match fs::symlink_metadata(root.join(&at)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            for entry in fs::read_dir(root.join(&at))? {
                stack.push(at.join(entry?.file_name()));
            }
        } else if meta.is_file() || meta.file_type().is_symlink() {
            out.push(at);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::cache::template;

    #[test]
    fn a_key_changes_with_the_files_it_hashes_and_reads_env_and_matrix() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/Cargo.lock"), "1").unwrap();
        let t =
            template("deps-{{ hash \"**/*.lock\" }}-{{ env \"OS\" }}-{{ matrix \"V\" }}").unwrap();
        let env = [("OS".to_string(), "linux".to_string())];
        let matrix = [("V".to_string(), "3".to_string())];
        let first = evaluate(&t, dir.path(), &env, &matrix).unwrap();
        assert!(
            first.starts_with("deps-") && first.ends_with("-linux-3"),
            "{first}"
        );
        assert_eq!(first, evaluate(&t, dir.path(), &env, &matrix).unwrap());
        fs::write(dir.path().join("a/Cargo.lock"), "2").unwrap();
        assert_ne!(first, evaluate(&t, dir.path(), &env, &matrix).unwrap());
        let missing = template("{{ hash \"nope.lock\" }}").unwrap();
        let err = evaluate(&missing, dir.path(), &env, &matrix).unwrap_err();
        assert_eq!(err, "no file of the workspace matches `nope.lock`");
    }
}
