//! Image builds as a job kind: a `build_image:` job's settings with its variables expanded, the
//! build context tarred from the job's workspace (the snapshot and the artifacts it needs,
//! never following a link out of it), and what a build made, recorded with the run. The
//! engine does the building (see `backend::docker::build`); the job never holds its socket.

use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::{BuildImage, PushImage};

/// A build as the engine is asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Relative to the workspace, checked to stay inside it.
    pub context: PathBuf,
    /// Relative to the context.
    pub dockerfile: String,
    pub args: Vec<(String, String)>,
    pub target: Option<String>,
    /// At least one.
    pub tags: Vec<String>,
    /// Where the built image is kept in the run's folder, for the run's `push` jobs.
    pub record: Option<PathBuf>,
}

/// A push as the engine is asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSpec {
    /// The `build_image` job whose image is pushed.
    pub job: String,
    /// Where that job kept what it built ([`BuildSpec::record`]).
    pub record: PathBuf,
    /// Registry tags, expanded.
    pub to: Vec<String>,
    /// The registry login: the user and the value of the password secret.
    pub login: Option<(String, String)>,
}

/// What a build made: the image's id (`sha256:…`) and the tags it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    pub id: String,
    pub tags: Vec<String>,
}

/// Where the `build_image` job `job` (its name as written) keeps what it built, under the
/// run's `images` folder: found there by the run's `push` jobs, in whatever phase they run.
/// The name is hex-encoded: any job name makes one plain file name.
pub fn record(images: &Path, job: &str) -> PathBuf {
    let hex: String = job.bytes().map(|b| format!("{b:02x}")).collect();
    images.join(format!("{hex}.json"))
}

/// `value` with `$NAME`/`${NAME}` expanded from `env` (later entries win).
fn expand_in(env: &[(String, String)], what: &str, value: &str) -> Result<String, String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    crate::vars::expand(value, lookup)
        .map_err(|missing| format!("{what} `{value}` uses `{missing}`, which is not defined"))
}

impl PushSpec {
    /// `push` with its tags and user expanded from the job's environment; the password is the
    /// value of the secret it names, from `secrets`.
    pub fn expand(
        push: &PushImage,
        record: PathBuf,
        env: &[(String, String)],
        secrets: &crate::secret::Secrets,
    ) -> Result<PushSpec, String> {
        let password = push.password.as_ref().map(|name| {
            secrets
                .iter()
                .find(|(k, _)| *k == name.as_str())
                .map(|(_, v)| v.to_string())
                .ok_or_else(|| format!("the secret `{name}` has no value"))
        });
        let login = match (&push.username, password) {
            (Some(user), Some(password)) => {
                Some((expand_in(env, "the username", user)?, password?))
            }
            (None, Some(password)) => Some((String::new(), password?)),
            (Some(_), None) => return Err("`push` has a `username` but no `password`".into()),
            (None, None) => None,
        };
        Ok(PushSpec {
            job: push.image.clone(),
            record,
            to: push
                .to
                .iter()
                .map(|t| expand_in(env, "the tag", t))
                .collect::<Result<_, _>>()?,
            login,
        })
    }
}

impl BuildSpec {
    /// `build`'s values with `$NAME`/`${NAME}` expanded from the job's environment (later
    /// entries win), as `env` values are; `Err` names the first undefined variable.
    pub fn expand(build: &BuildImage, env: &[(String, String)]) -> Result<BuildSpec, String> {
        let one = |what: &str, value: &str| expand_in(env, what, value);
        Ok(BuildSpec {
            context: PathBuf::from(one("the context", &build.context)?),
            dockerfile: one("the dockerfile", &build.dockerfile)?,
            args: build
                .args
                .iter()
                .map(|(k, v)| Ok((k.clone(), one(&format!("build arg `{k}`"), v)?)))
                .collect::<Result<_, String>>()?,
            target: build
                .target
                .as_deref()
                .map(|t| one("the target", t))
                .transpose()?,
            tags: build
                .tags
                .iter()
                .map(|t| one("the tag", t))
                .collect::<Result<_, _>>()?,
            record: None,
        })
    }
}

/// The build context as a tar archive: `context` under `workspace` (a folder laid from the
/// job's layers), every link stored as a link and none followed, so nothing outside the
/// workspace reaches the engine. `context` must be a real folder of the workspace: a link on
/// its way is refused.
pub fn context_tar(workspace: &Path, context: &Path) -> io::Result<Vec<u8>> {
    let mut dir = workspace.to_path_buf();
    for part in context.components() {
        match part {
            Component::CurDir => continue,
            Component::Normal(name) => dir.push(name),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the context `{}` leaves the workspace", context.display()),
                ))
            }
        }
        let meta = std::fs::symlink_metadata(&dir)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the context `{}` is not a folder of the workspace",
                    context.display()
                ),
            ));
        }
    }
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    archive.append_dir_all(".", &dir)?;
    archive.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(tags: &[&str]) -> BuildImage {
        BuildImage {
            context: ".".into(),
            dockerfile: "Dockerfile".into(),
            args: vec![("V".into(), "${PIPE_VERSION}-x".into())],
            target: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn tags_and_args_expand_from_the_environment_later_entries_winning() {
        let env = [
            ("PIPE_VERSION".to_string(), "v0".to_string()),
            ("PIPE_VERSION".to_string(), "v1.2".to_string()),
        ];
        let spec = BuildSpec::expand(&build(&["app:$PIPE_VERSION", "app:latest"]), &env).unwrap();
        assert_eq!(spec.tags, ["app:v1.2", "app:latest"]);
        assert_eq!(spec.args, [("V".to_string(), "v1.2-x".to_string())]);
        let err = BuildSpec::expand(&build(&["app:$NOPE"]), &env).unwrap_err();
        assert!(err.contains("`NOPE`"), "{err}");
    }

    #[test]
    fn the_context_keeps_links_as_links_and_refuses_one_on_its_way() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("app")).unwrap();
        std::fs::write(ws.join("app/Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(tmp.path().join("secret"), "host file").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), ws.join("app/escape")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), ws.join("out")).unwrap();

        let bytes = context_tar(&ws, Path::new("app")).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            if path.ends_with("escape") {
                assert!(entry.header().entry_type().is_symlink(), "stored as a link");
            }
            seen.push(path);
        }
        assert!(seen.iter().any(|p| p.ends_with("Dockerfile")), "{seen:?}");
        assert!(
            !String::from_utf8_lossy(&bytes).contains("host file"),
            "the link's target is not read"
        );
        // A context reached through a link would send what lies outside.
        assert!(context_tar(&ws, Path::new("out")).is_err());
        assert!(context_tar(&ws, Path::new("../ws")).is_err());
    }
}
