//! What git tells a pre-push hook on stdin: one line per ref being pushed,
//! `<local ref> SP <local object> SP <remote ref> SP <remote object>`. Ref names are data here:
//! they are split on spaces (which git forbids in ref names), never interpreted.

use super::HookError;

/// One ref being pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    pub local_ref: String,
    /// The commit pushed; `None` when the ref is being deleted.
    pub local: Option<String>,
    pub remote_ref: String,
    /// What the remote has now; `None` for a ref new to it.
    pub remote: Option<String>,
}

impl PushedRef {
    pub fn is_deletion(&self) -> bool {
        self.local.is_none()
    }
}

/// Reads every line git wrote; blank lines are skipped. Anything else that is not four fields
/// with two object names is an error, not a ref to guess at.
pub fn parse_pre_push(input: &str) -> Result<Vec<PushedRef>, HookError> {
    input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [local_ref, local, remote_ref, remote] = fields[..] else {
                return Err(HookError::Input(format!(
                    "expected `<local ref> <local sha> <remote ref> <remote sha>`, got {line:?}"
                )));
            };
            Ok(PushedRef {
                local_ref: local_ref.to_string(),
                local: object(local, line)?,
                remote_ref: remote_ref.to_string(),
                remote: object(remote, line)?,
            })
        })
        .collect()
}

/// An object name (SHA-1 or SHA-256, in hex); all zeros means none.
fn object(name: &str, line: &str) -> Result<Option<String>, HookError> {
    let hex = name.chars().all(|c| c.is_ascii_hexdigit());
    if !hex || !matches!(name.len(), 40 | 64) {
        return Err(HookError::Input(format!(
            "`{name}` is not an object name, in {line:?}"
        )));
    }
    Ok((!name.chars().all(|c| c == '0')).then(|| name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn reads_updates_new_refs_and_deletions() {
        let input = format!(
            "refs/heads/main {A} refs/heads/main {B}\n\
             refs/heads/topic {B} refs/heads/topic {ZERO}\n\
             \n\
             (delete) {ZERO} refs/heads/old {A}\n"
        );
        let refs = parse_pre_push(&input).unwrap();
        assert_eq!(
            refs[0],
            PushedRef {
                local_ref: "refs/heads/main".into(),
                local: Some(A.into()),
                remote_ref: "refs/heads/main".into(),
                remote: Some(B.into()),
            }
        );
        assert_eq!(refs[1].remote, None, "new to the remote");
        assert!(refs[2].is_deletion());
        assert_eq!(refs.len(), 3);
        assert_eq!(parse_pre_push("").unwrap(), Vec::new());
    }

    #[test]
    fn hostile_ref_names_stay_strings_and_garbage_is_refused() {
        let hostile = "refs/heads/$(touch${IFS}/tmp/x);`id`";
        let refs = parse_pre_push(&format!("HEAD {A} {hostile} {ZERO}\n")).unwrap();
        assert_eq!(refs[0].remote_ref, hostile);
        for bad in [
            format!("refs/heads/a {A} refs/heads/a"),
            format!("refs/heads/a {A} refs/heads/a {B} extra"),
            format!("refs/heads/a $(id) refs/heads/a {B}"),
            format!("refs/heads/a {} refs/heads/a {B}", &A[..39]),
        ] {
            assert!(
                matches!(parse_pre_push(&bad), Err(HookError::Input(_))),
                "{bad}"
            );
        }
        let sha256 = "a".repeat(64);
        let refs = parse_pre_push(&format!("HEAD {sha256} refs/heads/x {ZERO}{ZERO}\n"));
        assert!(refs.is_err(), "80 zeros is no object name");
        let refs =
            parse_pre_push(&format!("HEAD {sha256} refs/heads/x {}\n", "0".repeat(64))).unwrap();
        assert_eq!(refs[0].local.as_deref(), Some(sha256.as_str()));
        assert_eq!(refs[0].remote, None);
    }
}
