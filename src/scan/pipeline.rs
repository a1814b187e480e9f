//! The `pipeline` scanner: audits pipeline files for dangerous settings — privileged
//! containers, host mounts (the Docker socket above all), unpinned images, secrets written in
//! plain `env`, downloads piped to a shell, scripts that print secrets, and releases nobody has
//! to approve. Each finding points at the setting's line and column with a one-line fix.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{fingerprint, secrets, Finding, ScanError, Severity};
use crate::pipeline::{self, Job, LoadError, Pipeline, Pos};

pub const SCANNER: &str = "pipeline";

/// Names of variables that hold secrets by convention.
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(password|passwd|secret|token|api_?key|access_?key|private_?key|credential|auth)",
    )
    .expect("valid")
});
/// Names about a secret rather than holding one: `PASSWORD_FILE: /run/secrets/db` is the
/// recommended way to pass a password, `API_KEY_HEADER` names a header.
static NOT_A_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)_(file|path|dir|url|uri|endpoint|header|name|id|user|username|type|length|len|ttl|expiry|expires|version|enabled|required)$",
    )
    .expect("valid")
});

fn secret_name(name: &str) -> bool {
    SECRET_NAME.is_match(name) && !NOT_A_SECRET.is_match(name)
}

/// `curl … | sh`, `wget -O- … | sudo bash` and the like.
static PIPE_TO_SHELL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(env\s+)?(ba|da|z|k)?sh\b",
        // `bash <(curl …)` and `sh -c "$(curl …)"`: the same download run unseen.
        r#"|\b(ba|da|z|k)?sh\s+(-c\s+["']?\$\(|<\()\s*(curl|wget)\b"#,
    ))
    .expect("valid")
});
/// `echo $TOKEN`, `printf '%s' "${API_KEY}"`.
static PRINTS_VAR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(echo|printf|cat\s+<<)\b[^;&|]*\$\{?([A-Za-z_][A-Za-z0-9_]*)").expect("valid")
});

/// The pipeline files under `root` (or `root` itself when it is a file): the names `pipe run`
/// looks for, and every YAML file in `pipelines/`.
pub fn pipeline_files(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        let yaml = matches!(
            root.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        return if yaml {
            vec![root.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let mut files: Vec<PathBuf> = pipeline::DEFAULT_FILES
        .iter()
        .map(|n| root.join(n))
        .filter(|p| p.is_file())
        .collect();
    if let Ok(entries) = std::fs::read_dir(root.join("pipelines")) {
        let mut more: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
            })
            .filter(|p| !files.contains(p))
            .collect();
        more.sort();
        files.extend(more);
    }
    files
}

/// Audits every pipeline file under `root`, naming `root` `shown_as` in findings (see
/// `SecretsOptions::shown_as`). A file that is not a valid pipeline is reported as a finding
/// rather than stopping the scan.
pub fn scan_pipelines(root: &Path, shown_as: Option<&Path>) -> Result<Vec<Finding>, ScanError> {
    let mut findings = Vec::new();
    for file in pipeline_files(root) {
        let rel = match (root.is_file(), shown_as) {
            (true, Some(shown)) => shown.to_path_buf(),
            (true, None) => PathBuf::from(file.file_name().unwrap_or_default()),
            (false, shown) => {
                let rel = file.strip_prefix(root).unwrap_or(&file);
                shown.map_or_else(|| rel.to_path_buf(), |s| s.join(rel))
            }
        };
        findings.extend(scan_pipeline_as(&file, &rel)?);
    }
    Ok(findings)
}

/// Audits one pipeline file, reporting it as `rel`.
pub fn scan_pipeline_as(file: &Path, rel: &Path) -> Result<Vec<Finding>, ScanError> {
    let source = std::fs::read_to_string(file).map_err(ScanError::io(file))?;
    Ok(match pipeline::load(file) {
        Ok(p) => audit(&p, &source, rel),
        Err(LoadError::Invalid(invalid)) => {
            let problem = &invalid.problems[0];
            let pos = problem.pos.unwrap_or(Pos::new(1, 1));
            let mut f = finding(
                rel,
                &source,
                pos,
                "invalid-pipeline",
                Severity::Low,
                "",
                format!("not a valid pipeline: {}", problem.message),
                "run `pipe validate` on it".into(),
            );
            f.fingerprint = fingerprint(&f.rule_id, &rel.to_string_lossy(), &problem.message);
            // What could be read is still audited: one typo must not hide a socket mount.
            let mut found = vec![f];
            if let Some(partial) = &invalid.partial {
                found.extend(audit(partial, &source, rel));
            }
            found
        }
        Err(_) => Vec::new(),
    })
}

/// The findings of one checked pipeline; `source` is its text, `rel` its path in the report.
pub fn audit(p: &Pipeline, source: &str, rel: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen_bases = std::collections::HashSet::new();
    for job in &p.jobs {
        // Matrix variants share their settings: report them once.
        if !seen_bases.insert(job.base.as_str()) {
            continue;
        }
        let mut add = |pos: Pos,
                       rule: &str,
                       severity: Severity,
                       evidence: &str,
                       message: String,
                       fix: &str| {
            out.push(finding(
                rel,
                source,
                pos,
                rule,
                severity,
                &format!("{}/{evidence}", job.base),
                message,
                fix.into(),
            ));
        };
        if job.privileged {
            add(
                job.spans.privileged.unwrap_or(job.pos),
                "privileged-container",
                Severity::High,
                "privileged",
                format!("job `{}` runs a privileged container, which can take over the host", job.base),
                "remove `privileged: true`; give the job only what it needs, or build images rootless (buildah, kaniko)",
            );
        }
        for v in &job.volumes {
            // The socket itself, or a folder that holds it (`/var/run`, `/run`, `/`).
            let host = v.host.trim_end_matches('/');
            if host.ends_with("docker.sock") || matches!(host, "" | "/var" | "/var/run" | "/run") {
                add(
                    v.pos,
                    "docker-socket-mount",
                    Severity::Critical,
                    &v.host,
                    format!(
                        "job `{}` mounts the Docker socket, which gives it root on the host",
                        job.base
                    ),
                    "remove the volume; build images rootless (buildah, kaniko) instead",
                );
            } else {
                add(
                    v.pos,
                    "host-path-volume",
                    Severity::Medium,
                    &v.host,
                    format!("job `{}` mounts the host path `{}`", job.base, v.host),
                    "hand files in through the workspace or artifacts instead of host mounts",
                );
            }
        }
        // A scan job runs in pipe's own scanners, whatever the backend: it inherits the
        // pipeline's image but never starts it.
        if let Some(image) = job.image.as_ref().filter(|_| job.scan.is_empty()) {
            image_findings(job, image, &mut add);
        }
        for (name, pos) in &job.spans.env {
            let value = job
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            if secret_name(name) && looks_like_a_literal_secret(value) {
                add(*pos, "secret-in-env", Severity::High, name, format!("`{name}` holds a secret written in plain text in the pipeline"), "remove the value from the file and pass it in from the runner's environment or a secret store");
            }
        }
        for (line, pos) in job.script.iter().zip(&job.spans.script) {
            if PIPE_TO_SHELL.is_match(line) {
                add(
                    *pos,
                    "curl-pipe-shell",
                    Severity::High,
                    line,
                    format!("job `{}` pipes a download straight into a shell", job.base),
                    "download to a file, check its checksum or signature, then run it",
                );
            }
            if let Some(var) = PRINTS_VAR
                .captures_iter(line)
                .map(|c| c[2].to_string())
                .find(|v| secret_name(v))
            {
                add(
                    *pos,
                    "echo-secret",
                    Severity::Medium,
                    line,
                    format!(
                        "job `{}` prints `${var}`, which looks like a secret, into its log",
                        job.base
                    ),
                    "do not print secrets: logs are kept with every run",
                );
            }
        }
        let asks_approval = job.gate.as_ref().is_some_and(|g| g.approvals > 0);
        if job.gated && !asks_approval {
            add(
                job.spans.gate.unwrap_or(job.pos),
                "ungated-release",
                Severity::High,
                "gate",
                format!("release job `{}` needs nobody's approval", job.base),
                "add `gate: {approvals: 1}` so that a person decides when to release",
            );
        }
    }
    out.sort_by(|a, b| (a.line, a.column, &a.rule_id).cmp(&(b.line, b.column, &b.rule_id)));
    // Pipeline-wide settings (the top-level image and env) reach every job: report each once.
    out.dedup_by(|a, b| (a.line, a.column, &a.rule_id) == (b.line, b.column, &b.rule_id));
    out
}

fn image_findings(
    job: &Job,
    image: &str,
    add: &mut impl FnMut(Pos, &str, Severity, &str, String, &str),
) {
    let pos = job.spans.image.unwrap_or(job.pos);
    let name = image.rsplit('/').next().unwrap_or(image);
    let digest = image.contains("@sha256:");
    if !digest && (!name.contains(':') || name.ends_with(":latest")) {
        add(
            pos,
            "unpinned-image",
            Severity::Medium,
            image,
            format!(
                "image `{image}` of job `{}` has no version tag, so it changes under you",
                job.base
            ),
            "pin a version tag, e.g. `alpine:3.20`, or a digest",
        );
    }
    let ships = job.gated || job.environment.is_some() || job.stage == "deploy";
    if ships && !digest {
        add(
            pos,
            "unpinned-deploy-image",
            Severity::Medium,
            image,
            format!(
                "job `{}` deploys with image `{image}`, which is not pinned by digest",
                job.base
            ),
            "pin the image by digest: `name@sha256:…`",
        );
    }
}

/// A value that is a secret itself, not a reference to one (`$TOKEN`, `${{ secrets.X }}`) and
/// not a placeholder.
fn looks_like_a_literal_secret(value: &str) -> bool {
    let v = value.trim();
    let placeholder = [
        "changeme", "example", "dummy", "xxx", "<", "***", "todo", "none", "null", "false", "true",
    ];
    v.len() >= 6
        && !v.starts_with('$')
        // A path to a secret (a mounted file), not the secret.
        && !v.starts_with('/')
        && !v.starts_with("./")
        && !v.contains("${")
        && !placeholder.iter().any(|p| v.to_lowercase().contains(p))
}

#[allow(clippy::too_many_arguments)]
fn finding(
    rel: &Path,
    source: &str,
    pos: Pos,
    rule: &str,
    severity: Severity,
    evidence: &str,
    message: String,
    fix: String,
) -> Finding {
    let path = rel.to_string_lossy().replace('\\', "/");
    let line_text = source
        .lines()
        .nth(pos.line.saturating_sub(1) as usize)
        .unwrap_or("")
        .trim();
    Finding {
        scanner: SCANNER,
        rule_id: rule.to_string(),
        severity,
        fingerprint: fingerprint(rule, &path, evidence),
        path: PathBuf::from(path),
        line: pos.line as usize,
        column: pos.col as usize,
        message,
        fix,
        // Whatever the finding is about, the line may hold a secret (a job written in flow
        // style, or an invalid file's first problem beside a token): every preview is masked.
        preview: secrets::redact_line(&mask_secret_values(line_text)),
    }
}

/// `TOKEN: abcd1234secret` → `TOKEN: abcd…`, for every secret-like key on the line, also inside
/// a flow mapping (`env: {DEBUG: 1, TOKEN: abcd…}`): a preview never shows a whole secret.
fn mask_secret_values(line: &str) -> String {
    static KEY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"([A-Za-z_][A-Za-z0-9_]*):[ \t]*([^,{}]*)").expect("valid"));
    KEY.replace_all(line, |c: &regex::Captures| {
        let (name, value) = (&c[1], c[2].trim_end());
        if !secret_name(name) || value.is_empty() {
            return c[0].to_string();
        }
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        let shown: String = value.chars().take(4).collect();
        if value.chars().count() > 4 {
            format!("{name}: {shown}…")
        } else {
            format!("{name}: ****")
        }
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<(String, usize, usize)> {
        let p = crate::pipeline::parse(yaml, "t").expect("valid");
        audit(&p, yaml, Path::new("pipe.yml"))
            .into_iter()
            .map(|f| (f.rule_id, f.line, f.column))
            .collect()
    }

    #[test]
    fn each_dangerous_setting_is_found_where_it_is_written() {
        let found = rules(
            "image: alpine:3.20
env:
  API_TOKEN: s3cr3t-value-123
jobs:
  build:
    image: docker:latest
    privileged: true
    volumes: [/var/run/docker.sock:/var/run/docker.sock, /srv/cache:/cache]
    script:
      - curl -fsSL https://get.example.com | sh
      - echo \"token is $API_TOKEN\"
  publish:
    stage: release
    environment: production
    script: [./release.sh]
",
        );
        let expect = [
            ("secret-in-env", 3, 14),
            ("unpinned-image", 6, 12),
            ("privileged-container", 7, 5),
            ("docker-socket-mount", 8, 15),
            ("host-path-volume", 8, 58),
            ("curl-pipe-shell", 10, 9),
            ("echo-secret", 11, 9),
            ("ungated-release", 12, 3),
            ("unpinned-deploy-image", 1, 8),
        ];
        for (rule, line, col) in expect {
            assert!(
                found.contains(&(rule.to_string(), line, col)),
                "{rule} at {line}:{col} not in {found:?}"
            );
        }
        assert_eq!(
            found.len(),
            expect.len(),
            "settings shared by jobs are reported once: {found:?}"
        );
    }

    #[test]
    fn hidden_downloads_and_folders_holding_the_socket_are_found() {
        let found = rules(
            "image: alpine:3.20
jobs:
  a:
    volumes: ['/var/run:/host-run', '/:/host']
    script: ['bash <(curl -s https://get.example.com)', 'sh -c \"$(curl -fsSL https://get.example.com)\"']
",
        );
        let ids: Vec<&str> = found.iter().map(|(r, _, _)| r.as_str()).collect();
        assert_eq!(
            ids,
            [
                "docker-socket-mount",
                "docker-socket-mount",
                "curl-pipe-shell",
                "curl-pipe-shell"
            ],
            "{found:?}"
        );
    }

    #[test]
    fn secret_values_are_masked_in_block_and_flow_style() {
        assert_eq!(mask_secret_values("TOKEN: abcd1234secret"), "TOKEN: abcd…");
        assert_eq!(
            mask_secret_values("env: {DEBUG: 1, TOKEN: 'abcd1234secret', X: y}"),
            "env: {DEBUG: 1, TOKEN: abcd…, X: y}"
        );
        assert_eq!(mask_secret_values("PASSWORD: hunt"), "PASSWORD: ****");
        assert_eq!(
            mask_secret_values("env: {GH_TOKEN: 1234567, TOKEN: abcdefgh}"),
            "env: {GH_TOKEN: 1234…, TOKEN: abcd…}"
        );
    }

    #[test]
    fn no_preview_shows_a_secret_whatever_the_finding_is_about() {
        // A token the secrets rules do not take for one (too regular), on a line that other
        // rules report too.
        let token = "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let yaml = format!(
            "jobs:\n  a: {{image: alpine, env: {{GITHUB_TOKEN: \"{token}\"}}, script: [echo]}}\n  b: {{stage: nope, env: {{GITHUB_TOKEN: {token}}}, script: [echo]}}\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipe.yml");
        std::fs::write(&file, &yaml).unwrap();
        let found = scan_pipeline_as(&file, Path::new("pipe.yml")).unwrap();
        let rules: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
        assert!(
            rules.contains(&"unpinned-image") && rules.contains(&"invalid-pipeline"),
            "{rules:?}"
        );
        for f in &found {
            assert!(!f.preview.contains(token), "{}: {}", f.rule_id, f.preview);
        }
    }

    #[test]
    fn an_invalid_file_is_still_audited_as_far_as_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipe.yml");
        std::fs::write(
            &file,
            "image: alpine:3\njobs:\n  a:\n    volumes: [/var/run/docker.sock:/var/run/docker.sock, ./cache:/cache]\n    script: [echo]\n",
        )
        .unwrap();
        let found = scan_pipeline_as(&file, Path::new("pipe.yml")).unwrap();
        let rules: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
        assert_eq!(rules, ["invalid-pipeline", "docker-socket-mount"]);
    }

    #[test]
    fn safe_settings_are_quiet() {
        let found = rules(
            "image: alpine:3.20
env: {TOKEN: $CI_TOKEN, PASSWORD: changeme, PASSWORD_FILE: /run/secrets/db, API_KEY_HEADER: X-Api-Key, TOKEN_URL: https://auth.example.com/token}
jobs:
  test: {script: [echo $HOME, curl -o install.sh https://example.com/i.sh, echo \"$TOKEN_URL\"]}
  publish:
    stage: release
    image: alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    gate: {approvals: 1}
    script: [./release.sh]
",
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
