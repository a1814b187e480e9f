//! The `secrets` scanner: finds credentials committed to a tree.
//!
//! Throughput comes from a two-stage design: one case-insensitive Aho-Corasick pass over each
//! whole file looks for cheap keywords (token prefixes such as `ghp_`, or names such as
//! `secret`), and only the lines containing a keyword run the regexes of the rules that keyword
//! belongs to. Most lines of most files never see a regex. Each regex hit then goes through a
//! rule-specific check, which is where documentation examples, digests, UUIDs and placeholders
//! are told apart from real credentials.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use ignore::{WalkBuilder, WalkState};
use regex::{Captures, Regex};

use super::{fingerprint, Baseline, Finding, RuleInfo, ScanError, Severity};

/// Value of [`Finding::scanner`] for this scanner.
pub const SCANNER: &str = "secrets";
/// A line containing this marker is never reported (for intentional test credentials).
pub const ALLOW_MARKER: &str = "pipe:allow-secret";
/// Larger files are skipped: they are generated data or artefacts, not hand-written config.
pub const MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;
/// A NUL byte in this many leading bytes marks a file as binary (the same test git uses).
const BINARY_SNIFF_LEN: usize = 8 * 1024;
/// Secrets shorter than this are masked completely: showing 4 characters of a short password
/// would give away too much of it.
const MIN_PARTIAL_MASK_LEN: usize = 12;
/// Characters of context kept on each side of the secret in a preview.
const PREVIEW_CONTEXT: usize = 40;

#[derive(Clone, Debug, Default)]
pub struct SecretsOptions {
    /// Findings whose fingerprint is in the baseline are dropped.
    pub baseline: Option<Baseline>,
    /// Walker threads; 0 picks a number from the available cores.
    pub threads: usize,
    /// Whether ignore files in the directories above `root` apply, as in git and ripgrep. Not for
    /// a scan job: its workspace lies inside `.pipe`, whose ignore file is pipe's, not the project's.
    pub parent_ignores: bool,
    /// How findings name `root`: a path under it is reported as `shown_as/rel` (`src/a.env` for
    /// `pipe scan src`), so that fingerprints, and baselines, do not depend on where a scan
    /// starts. None: paths relative to `root` (a file: its name).
    pub shown_as: Option<PathBuf>,
}

/// Scans every file under `root` (or `root` itself if it is a file), honouring `.gitignore`
/// and `.ignore`, skipping `.git`, binary files and files over [`MAX_FILE_SIZE`]. Symbolic
/// links are not followed, so a scan never leaves the tree.
///
/// Findings are sorted by path, line and column. An unreadable file or directory is an error
/// rather than a silent gap in coverage.
pub fn scan_secrets(root: &Path, opts: &SecretsOptions) -> Result<Vec<Finding>, ScanError> {
    let engine = &*ENGINE;
    let meta = std::fs::metadata(root).map_err(ScanError::io(root))?;
    let mut findings = if meta.is_file() {
        let rel = match &opts.shown_as {
            Some(shown) => slashed(shown),
            None => root
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        };
        engine.scan_path(root, &rel, &mut Vec::new())?
    } else {
        walk(engine, root, opts)?
    };
    if let Some(baseline) = &opts.baseline {
        findings.retain(|f| !baseline.contains(&f.fingerprint));
    }
    findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, &a.rule_id).cmp(&(&b.path, b.line, b.column, &b.rule_id))
    });
    Ok(findings)
}

/// The rules this scanner applies, in priority order (when two rules match the same text,
/// the earlier one is reported).
pub fn rules() -> impl Iterator<Item = RuleInfo> {
    ENGINE.rules.iter().map(|r| r.info)
}

pub fn rule_info(id: &str) -> Option<RuleInfo> {
    rules().find(|r| r.id == id)
}

fn walk(engine: &Engine, root: &Path, opts: &SecretsOptions) -> Result<Vec<Finding>, ScanError> {
    let found = Mutex::new(Vec::new());
    let failure = Mutex::new(None);
    let fail = |err: ScanError| {
        failure.lock().unwrap().get_or_insert(err);
        WalkState::Quit
    };
    // The per-thread closures are `move` (each owns its read buffer), so they capture these
    // by reference.
    let (found_ref, fail) = (&found, &fail);
    WalkBuilder::new(root)
        // Dotfiles (.env, .npmrc) are prime places for secrets; only .git itself is skipped.
        .hidden(false)
        // A tree that is not (yet) a git repository still has meaningful .gitignore files.
        .require_git(false)
        .parents(opts.parent_ignores)
        .filter_entry(|entry| entry.file_name() != ".git")
        .threads(opts.threads)
        .build_parallel()
        .run(|| {
            let mut buf = Vec::new();
            // A clone per thread: each regex clone has its own match-cache pool, so threads
            // do not contend for the shared one.
            let engine = engine.clone();
            Box::new(move |entry| {
                let entry = match entry {
                    Ok(entry) => entry,
                    // A bad glob in some .gitignore should not stop the scan; I/O errors do.
                    Err(err) if err.is_partial() => return WalkState::Continue,
                    Err(err) => return fail(err.into()),
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return WalkState::Continue;
                }
                let rel = relative_path(root, entry.path(), opts.shown_as.as_deref());
                match engine.scan_path(entry.path(), &rel, &mut buf) {
                    Ok(hits) if hits.is_empty() => WalkState::Continue,
                    Ok(hits) => {
                        found_ref.lock().unwrap().extend(hits);
                        WalkState::Continue
                    }
                    Err(err) => fail(err),
                }
            })
        });
    match failure.into_inner().unwrap() {
        Some(err) => Err(err),
        None => Ok(found.into_inner().unwrap()),
    }
}

/// `path` relative to `root` (under `shown_as`, if given), with `/` separators.
fn relative_path(root: &Path, path: &Path, shown_as: Option<&Path>) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    match shown_as {
        Some(shown) => slashed(&shown.join(rel)),
        None => slashed(rel),
    }
}

fn slashed(path: &Path) -> String {
    let parts: Vec<_> = path
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// Files where a bare `password = value` is configuration, not code. In source files the same
/// text is usually a variable assignment, so only quoted literals are reported there.
fn is_config_file(path: &Path) -> bool {
    let Some(name) = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
    else {
        return false;
    };
    if name.starts_with(".env") || name.ends_with(".env") {
        return true;
    }
    const NAMES: &[&str] = &[
        ".npmrc",
        ".pypirc",
        ".netrc",
        ".pgpass",
        ".htpasswd",
        ".git-credentials",
        "credentials",
    ];
    const EXTENSIONS: &[&str] = &[
        "env",
        "ini",
        "cfg",
        "conf",
        "config",
        "cnf",
        "yaml",
        "yml",
        "json",
        "jsonc",
        "json5",
        "properties",
        "toml",
        "xml",
        "tfvars",
        "hcl",
    ];
    NAMES.contains(&name.as_str())
        || name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| EXTENSIONS.contains(&ext))
}

/// Which files a rule applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    ConfigFiles,
}

/// The rule-specific validation run after a regex matched.
#[derive(Clone, Copy)]
enum Check {
    /// A fixed-format token: must stand alone and not look like a placeholder.
    Token,
    /// 40 characters of mixed case and digits, which a hex digest never is.
    AwsSecret,
    /// The header alone is not a key (parsers and docs mention it): a body must follow.
    PemBody,
    PuttyBody,
    /// Both header and payload must decode to JSON, and the payload must not be an example.
    Jwt,
    UrlCredentials,
    Password,
    Entropy,
}

#[derive(Clone)]
struct Rule {
    info: RuleInfo,
    message: &'static str,
    scope: Scope,
    /// Lower-case literals; a line is only tried against the rule if it contains one.
    keywords: &'static [&'static str],
    /// Named groups: `secret` (or `dq`/`sq` for a quoted value) is the credential, `body` the
    /// random part tested for placeholders (defaults to `secret`), `key` an assigned name.
    patterns: Vec<Regex>,
    check: Check,
}

/// A match that passed its rule's check, positions are byte offsets in the line.
struct Candidate {
    rule: usize,
    /// The whole regex match: two rules matching overlapping text report only once.
    span: Range<usize>,
    /// Where the reported column points.
    anchor: usize,
    /// The part of the line masked in previews (may be empty when the secret is on later
    /// lines, as with a PEM body).
    redact: Range<usize>,
    secret: String,
}

/// What a check can see of a line: the text and, for multi-line keys, what follows it.
struct LineCtx<'a> {
    text: &'a str,
    /// The file's bytes after this line.
    after: &'a [u8],
    config: bool,
}

#[derive(Clone)]
struct Engine {
    rules: Vec<Rule>,
    prefilter: AhoCorasick,
    /// For each prefilter pattern, the bit set of rules it enables.
    keyword_rules: Vec<u32>,
    /// Rules restricted to configuration files.
    config_only: u32,
}

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);

impl Engine {
    fn new() -> Engine {
        let rules = builtin_rules();
        assert!(rules.len() <= 32, "rule sets are u32 bit masks");
        let mut keywords: Vec<&str> = Vec::new();
        let mut keyword_rules: Vec<u32> = Vec::new();
        let mut config_only = 0;
        for (i, rule) in rules.iter().enumerate() {
            if rule.scope == Scope::ConfigFiles {
                config_only |= 1 << i;
            }
            for &kw in rule.keywords {
                match keywords.iter().position(|&k| k == kw) {
                    Some(at) => keyword_rules[at] |= 1 << i,
                    None => {
                        keywords.push(kw);
                        keyword_rules.push(1 << i);
                    }
                }
            }
        }
        let prefilter = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            // Overlapping search needs standard semantics; it keeps one keyword from hiding
            // another that shares its bytes (`secret` inside `client_secret`).
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .expect("built-in keywords");
        Engine {
            rules,
            prefilter,
            keyword_rules,
            config_only,
        }
    }

    fn scan_path(
        &self,
        path: &Path,
        rel: &str,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Finding>, ScanError> {
        let file = match File::open(path) {
            Ok(file) => file,
            // Deleted between listing and reading: nothing left to leak.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(ScanError::io(path)(err)),
        };
        let len = file.metadata().map_err(ScanError::io(path))?.len();
        if len > MAX_FILE_SIZE {
            return Ok(Vec::new());
        }
        buf.clear();
        // `take` guards against a file that grows after the size check.
        let mut reader = file.take(MAX_FILE_SIZE + 1);
        // Sniff before reading the rest: binary files (images, archives) are common and
        // need not be read in full.
        (&mut reader)
            .take(BINARY_SNIFF_LEN as u64)
            .read_to_end(buf)
            .map_err(ScanError::io(path))?;
        if buf.contains(&0) {
            return Ok(Vec::new());
        }
        reader.read_to_end(buf).map_err(ScanError::io(path))?;
        if buf.len() as u64 > MAX_FILE_SIZE {
            return Ok(Vec::new());
        }
        Ok(self.scan_bytes(rel, is_config_file(path), buf))
    }

    /// Scans one file's contents; `rel` is the path reported in findings.
    fn scan_bytes(&self, rel: &str, config: bool, data: &[u8]) -> Vec<Finding> {
        let file = FileCtx { rel, config, data };
        let allowed = if config { u32::MAX } else { !self.config_only };
        let mut findings = Vec::new();
        // The line being collected: byte range and the rules its keywords enable.
        let mut current: Option<(Range<usize>, u32)> = None;
        let mut line_no = 1;
        let mut counted_to = 0;
        for m in self.prefilter.find_overlapping_iter(data) {
            let mask = self.keyword_rules[m.pattern().as_usize()] & allowed;
            if mask == 0 {
                continue;
            }
            if let Some((line, rules)) = &mut current {
                if m.start() < line.end {
                    *rules |= mask;
                    continue;
                }
            }
            // Keywords never contain a newline and matches come in order, so lines only move
            // forward and the newline count can be kept incrementally.
            let from = current.as_ref().map_or(0, |(line, _)| line.end);
            if let Some((line, rules)) = current.take() {
                self.scan_line(&file, line, line_no, rules, &mut findings);
            }
            let start = data[from..m.start()]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(from, |i| from + i + 1);
            let end = data[m.end()..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |i| m.end() + i);
            line_no += count_newlines(&data[counted_to..start]);
            counted_to = start;
            current = Some((start..end, mask));
        }
        if let Some((line, rules)) = current {
            self.scan_line(&file, line, line_no, rules, &mut findings);
        }
        findings
    }

    /// Runs the rules in `rules` (a bit set) on one line and reports what passes the checks.
    fn scan_line(
        &self,
        file: &FileCtx,
        line: Range<usize>,
        line_no: usize,
        rules: u32,
        findings: &mut Vec<Finding>,
    ) {
        let raw = &file.data[line.clone()];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text: Cow<str> = String::from_utf8_lossy(raw);
        if text.contains(ALLOW_MARKER) {
            return;
        }
        let ctx = LineCtx {
            text: &text,
            after: file.data.get(line.end + 1..).unwrap_or_default(),
            config: file.config,
        };
        let accepted = self.candidates(&ctx, rules);
        for cand in &accepted {
            let rule = &self.rules[cand.rule];
            findings.push(Finding {
                scanner: SCANNER,
                rule_id: rule.info.id.to_string(),
                severity: rule.info.severity,
                path: PathBuf::from(file.rel),
                line: line_no,
                column: text[..cand.anchor].chars().count() + 1,
                message: rule.message.to_string(),
                fix: rule.info.fix.to_string(),
                fingerprint: fingerprint(rule.info.id, file.rel, &cand.secret),
                preview: preview(&text, &accepted, cand),
            });
        }
    }
}

impl Engine {
    /// The secrets the rules in `rules` (a bit set) find on one line.
    fn candidates(&self, ctx: &LineCtx, rules: u32) -> Vec<Candidate> {
        let mut accepted: Vec<Candidate> = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rules & (1 << i) == 0 {
                continue;
            }
            for re in &rule.patterns {
                for caps in re.captures_iter(ctx.text) {
                    let Some(cand) = check(i, rule.check, &caps, ctx) else {
                        continue;
                    };
                    // Rules run in priority order, so the more specific rule already won.
                    if !accepted.iter().any(|a| overlaps(&a.span, &cand.span)) {
                        accepted.push(cand);
                    }
                }
            }
        }
        accepted
    }
}

/// `line` with every secret the rules find in it masked as in previews (`ghp_…`), for other
/// scanners' output: a finding about a line must not print a secret that stands on it.
pub fn redact_line(line: &str) -> String {
    let ctx = LineCtx {
        text: line,
        after: &[],
        config: true,
    };
    let mut found = ENGINE.candidates(&ctx, u32::MAX);
    found.retain(|c| !c.redact.is_empty());
    found.sort_by_key(|c| c.redact.start);
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    for c in found {
        out.push_str(&line[pos..c.redact.start]);
        out.push_str(&mask(&line[c.redact.clone()]));
        pos = c.redact.end;
    }
    out.push_str(&line[pos..]);
    // A password in a URL is masked even where the rule would call it a placeholder
    // (`example.com` hosts): a preview errs on the side of hiding.
    static URL_PASSWORD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(://[^/\s:@]+:)([^@\s/]+)@").expect("valid"));
    URL_PASSWORD
        .replace_all(&out, |c: &Captures| format!("{}{}@", &c[1], mask(&c[2])))
        .into_owned()
}

/// The file being scanned.
struct FileCtx<'a> {
    /// Reported path.
    rel: &'a str,
    config: bool,
    data: &'a [u8],
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

fn mask(secret: &str) -> String {
    if secret.chars().count() < MIN_PARTIAL_MASK_LEN {
        "****".to_string()
    } else {
        let head: String = secret.chars().take(4).collect();
        format!("{head}…")
    }
}

/// The line around `focus`, trimmed to a window, with every accepted secret of the line
/// masked (not only the focused one: a line may hold a key id and its secret).
fn preview(text: &str, accepted: &[Candidate], focus: &Candidate) -> String {
    let mut order: Vec<&Candidate> = accepted.iter().filter(|c| !c.redact.is_empty()).collect();
    order.sort_by_key(|c| c.redact.start);
    let mut out = String::with_capacity(text.len().min(256));
    let mut pos = 0;
    let mut focus_at = None;
    for c in order {
        // Earlier masked parts end before the anchor (spans never overlap), so the anchor is
        // in the text before this part or, at the latest, at its start.
        if focus_at.is_none() && focus.anchor < c.redact.end {
            focus_at = Some(out.len() + focus.anchor.min(c.redact.start) - pos);
        }
        out.push_str(&text[pos..c.redact.start]);
        out.push_str(&mask(&text[c.redact.clone()]));
        pos = c.redact.end;
    }
    let focus_at = focus_at.unwrap_or(out.len() + focus.anchor.saturating_sub(pos));
    out.push_str(&text[pos..]);

    let before: Vec<(usize, char)> = out[..focus_at].char_indices().collect();
    let (start, cut_head) = if before.len() > PREVIEW_CONTEXT {
        (before[before.len() - PREVIEW_CONTEXT].0, true)
    } else {
        (0, false)
    };
    // Room for the (masked) secret itself plus the context after it.
    let end = out[focus_at..]
        .char_indices()
        .nth(2 * PREVIEW_CONTEXT)
        .map(|(i, _)| focus_at + i);
    let body = &out[start..end.unwrap_or(out.len())];
    let mut excerpt = String::new();
    if cut_head {
        excerpt.push('…');
        excerpt.push_str(body);
    } else {
        excerpt.push_str(body.trim_start());
    }
    let mut excerpt = excerpt.trim_end().to_string();
    if end.is_some() {
        excerpt.push('…');
    }
    excerpt
}

/// Runs the rule's check on one regex match.
fn check(rule: usize, kind: Check, caps: &Captures, ctx: &LineCtx) -> Option<Candidate> {
    let whole = caps.get(0)?;
    // Key headers have no `secret` group: their secret is the body on the following lines.
    let secret = ["secret", "dq", "sq"]
        .iter()
        .find_map(|name| caps.name(name))
        .unwrap_or(whole);
    let body = caps.name("body").unwrap_or(secret).as_str();
    let text = ctx.text;
    let candidate = |secret: &str, redact: Range<usize>| Candidate {
        rule,
        span: whole.range(),
        anchor: redact.start,
        redact,
        secret: secret.to_string(),
    };
    match kind {
        Check::Token => (stands_alone(text, secret.range()) && !looks_fake(body))
            .then(|| candidate(secret.as_str(), secret.range())),
        Check::AwsSecret => {
            let value = secret.as_str();
            let mixed = value.bytes().any(|b| b.is_ascii_uppercase())
                && value.bytes().any(|b| b.is_ascii_lowercase())
                && value.bytes().any(|b| b.is_ascii_digit());
            let ends = !text[secret.end()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || "+/=".contains(c));
            (mixed && ends && !looks_fake(value)).then(|| candidate(value, secret.range()))
        }
        Check::PemBody => {
            let rest = &text[whole.end()..];
            let body = key_body(rest, ctx.after)?;
            // An inline body (JSON "\n"-escaped key) is masked along with the rest of the line.
            let redact = if rest.trim_start_matches(['"', '\'', ',']).trim().is_empty() {
                whole.end()..whole.end()
            } else {
                whole.end()..text.len()
            };
            Some(Candidate {
                rule,
                span: whole.start()..text.len(),
                anchor: whole.start(),
                redact,
                secret: body,
            })
        }
        Check::PuttyBody => {
            let after = &ctx.after[..ctx.after.len().min(16 * 1024)];
            let after = String::from_utf8_lossy(after);
            let private = after.find("Private-Lines:")?;
            let next_line = after[private..].find('\n')? + private + 1;
            let body = key_body("", after[next_line..].as_bytes())?;
            Some(Candidate {
                rule,
                span: whole.range(),
                anchor: whole.start(),
                redact: whole.end()..whole.end(),
                secret: body,
            })
        }
        Check::Jwt => (stands_alone(text, secret.range())
            && !looks_fake(body)
            && jwt_is_real(secret.as_str()))
        .then(|| candidate(secret.as_str(), secret.range())),
        Check::UrlCredentials => {
            let password = secret.as_str();
            let user = caps.name("user").map_or("", |m| m.as_str());
            let host = caps
                .name("host")
                .map_or("", |m| m.as_str())
                .to_ascii_lowercase();
            // `host:port@…` inside a URL reads like a user and password; ports are digits.
            let port_like = password.len() <= 5 && password.bytes().all(|b| b.is_ascii_digit());
            let ok = password != user
                && !port_like
                && !is_placeholder(password)
                && !is_placeholder_user(user)
                && !is_documentation_host(&host);
            ok.then(|| candidate(password, secret.range()))
        }
        Check::Password => {
            let key_match = caps.name("key")?;
            let key = key_match.as_str().to_ascii_lowercase();
            // `pass` must be a word of its own: not `bypass`, `compass`.
            let standalone_pass = !key.ends_with("pass")
                || key.len() == 4
                || key[..key.len() - 4].ends_with(['_', '.', '-']);
            let value = secret.as_str();
            // A quoted sentence describes the password ("The password of the key store").
            let prose = value.split_whitespace().count() >= 3;
            (standalone_pass
                && !prose
                && !glued_to_colon(caps, text, key_match.end(), secret.start())
                && !is_config_syntax(value)
                && !is_placeholder(value))
            .then(|| candidate(value, secret.range()))
        }
        Check::Entropy => {
            let key_match = caps.name("key")?;
            let value = secret.as_str();
            let quoted = secret_is_quoted(caps);
            // Quoted text with spaces is prose or a multi-line key, and brackets or separators
            // make it code (`Shards[-1].ShardId`): not a token either way.
            let token_like =
                !value.contains(|c: char| c.is_whitespace() || "[](){}<>,;".contains(c));
            // A value that spells out what it is (`export-token-…`) is a sample.
            let lower = value.to_ascii_lowercase();
            let self_named = ["token", "secret", "passw"]
                .iter()
                .any(|w| lower.contains(w));
            // Unquoted in source code is an expression (`token = get_token()`), not a literal.
            let literal = quoted || (ctx.config && !text[secret.end()..].starts_with(['(', '[']));
            (literal
                && token_like
                && !self_named
                && !glued_to_colon(caps, text, key_match.end(), secret.start())
                && !key_names_non_secret(key_match.as_str())
                && is_high_entropy_secret(value)
                && !looks_fake(value)
                && !is_config_syntax(value)
                && !is_placeholder(value))
            .then(|| candidate(value, secret.range()))
        }
    }
}

/// `name:value` with nothing after the colon is not an assignment in YAML (it is one plain
/// scalar: an image tag `postgres:16`, a `host:port`); only `name: value` and `name=value` are.
fn glued_to_colon(caps: &Captures, text: &str, key_end: usize, value_start: usize) -> bool {
    !secret_is_quoted(caps) && text[key_end..value_start].ends_with(':')
}

fn secret_is_quoted(caps: &Captures) -> bool {
    caps.name("dq").is_some() || caps.name("sq").is_some()
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The match is not a slice of a longer identifier or base64 blob.
fn stands_alone(text: &str, range: Range<usize>) -> bool {
    !text[..range.start].ends_with(is_token_char) && !text[range.end..].starts_with(is_token_char)
}

/// Placeholder or documentation value in the random part of a fixed-format token.
fn looks_fake(body: &str) -> bool {
    const MARKERS: &[&str] = &[
        "example",
        "dummy",
        "fake",
        "sample",
        "placeholder",
        "redacted",
        "xxxx",
        "your",
        "changeme",
        "notreal",
    ];
    let lower = body.to_ascii_lowercase();
    if MARKERS.iter().any(|m| lower.contains(m)) {
        return true;
    }
    let bytes = body.as_bytes();
    if bytes.len() < 8 {
        return false;
    }
    // Random strings use many symbols; `AAAA…` or `0000…` fillers do not.
    let mut seen = [false; 256];
    bytes.iter().for_each(|&b| seen[b as usize] = true);
    let distinct = seen.iter().filter(|&&s| s).count();
    if distinct < (bytes.len() / 3).min(8) {
        return true;
    }
    // `abcdef…`, `123456…`: sequences typed by a human writing an example.
    let ascending = bytes.windows(2).filter(|w| w[1] == w[0] + 1).count();
    ascending * 2 > bytes.len()
}

/// A whole configuration value that is syntax rather than data: YAML tags (`!vault`),
/// anchors and aliases, flow collections, Azure Key Vault references (`@Microsoft.KeyVault`).
fn is_config_syntax(value: &str) -> bool {
    value.starts_with(['!', '&', '*', '[', '(', '@'])
}

/// Values that stand for a secret rather than being one: empty, variable references,
/// template syntax, masks and stock words.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return true;
    }
    // References to a value held elsewhere (variables, templates, AWS resource names).
    if v.starts_with(['$', '%', '<', '{']) || v.starts_with("arn:") {
        return true;
    }
    if ["${", "{{", "$(", "%(", "#{", "env(", "getenv", "environ"]
        .iter()
        .any(|m| v.contains(m))
    {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "changeit",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "todo",
        "tbd",
        "string",
        "required",
        "default",
        "empty",
        "admin",
        "root",
        "user",
        "foo",
        "bar",
        "foobar",
        "opensesame",
    ];
    if WORDS.contains(&lower.as_str()) {
        return true;
    }
    const MARKERS: &[&str] = &[
        "example",
        "dummy",
        "fake",
        "sample",
        "placeholder",
        "redacted",
        "changeme",
        "change_me",
        "change-me",
        "your_",
        "your-",
        "yourpass",
        "xxx",
        "***",
        "...",
        "test",
        "secret_here",
        "password_here",
        // `MyPassword1`, `generatedpassword`: a password that names itself is an example.
        "password",
    ];
    if MARKERS.iter().any(|m| lower.contains(m)) {
        return true;
    }
    // `********`, `........`
    if v.chars().all(|c| v.starts_with(c)) {
        return true;
    }
    // An environment variable's name, as in `password: DB_PASSWORD`.
    v.contains('_')
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn is_placeholder_user(user: &str) -> bool {
    user.starts_with(['$', '<', '{', '%'])
}

/// RFC 2606/6761 names that only ever appear in examples.
fn is_documentation_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    ["example.com", "example.org", "example.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || [".example", ".test", ".invalid"]
            .iter()
            .any(|tld| host.ends_with(tld))
}

/// Names whose values are identifiers, locations, digests or pagination cursors rather than
/// secrets (`token_url`, `secretName`, `api_key_sha256`, `NextToken`, `SecretArn`). Compared
/// word by word, so `NEXTAUTH_SECRET` or `ELASTIC_API_KEY` stay secret-like.
fn key_names_non_secret(key: &str) -> bool {
    const WORDS: &[&str] = &[
        "url",
        "uri",
        "endpoint",
        "host",
        "name",
        "path",
        "file",
        "dir",
        "type",
        "kind",
        "id",
        "ids",
        "arn",
        "ref",
        "hash",
        "sha",
        "md5",
        "digest",
        "checksum",
        "integrity",
        "fingerprint",
        "public",
        "publishable",
        "length",
        "len",
        "size",
        "count",
        "ttl",
        "expiry",
        "expires",
        "expiration",
        "header",
        "prefix",
        "field",
        "version",
        "format",
        "policy",
        "hint",
        "label",
        "next",
        "continuation",
        "pagination",
        "page",
        "cursor",
        "last",
    ];
    key_words(key).iter().any(|word| {
        WORDS.contains(&word.as_str())
            || WORDS.contains(&word.trim_end_matches(|c: char| c.is_ascii_digit()))
    })
}

/// Lower-case words of an identifier, split at `_`, `-`, `.` and camel-case humps
/// (`AWSSecretKey_v2` → aws, secret, key, v2).
fn key_words(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let hump = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if hump && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    s.bytes().for_each(|b| counts[b as usize] += 1);
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// Entropy test for values assigned to key-like names. Hex gets a lower bar because its
/// alphabet is small (16 symbols cap it at 4 bits per character).
fn is_high_entropy_secret(value: &str) -> bool {
    const BASE64_THRESHOLD: f64 = 3.5;
    const HEX_THRESHOLD: f64 = 3.0;
    if value.len() < 20 || is_uuid(value) {
        return false;
    }
    // Lockfile integrity (`sha512-…`) and the like are digests of public content.
    if ["sha1-", "sha256-", "sha384-", "sha512-", "md5-"]
        .iter()
        .any(|p| value.starts_with(p))
    {
        return false;
    }
    // Paths and URLs have their own structure and rules.
    if value.starts_with(['/', '.', '~']) || value.contains("://") {
        return false;
    }
    // Random strings of this length virtually always mix letters and digits; words,
    // identifiers and dotted names do not.
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    let has_alpha = value.bytes().any(|b| b.is_ascii_alphabetic());
    if !(has_digit && has_alpha) {
        return false;
    }
    let entropy = shannon_entropy(value);
    if value.bytes().all(|b| b.is_ascii_hexdigit()) {
        value.len() >= 32 && entropy >= HEX_THRESHOLD
    } else {
        entropy >= BASE64_THRESHOLD
    }
}

fn is_uuid(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The base64 body of a key that starts right after its header: first on the header's own
/// line (JSON files hold keys with `\n` escapes), then on the following lines. Returns the
/// body, which identifies the key in fingerprints.
fn key_body(rest_of_line: &str, after: &[u8]) -> Option<String> {
    const MAX_LINES: usize = 200;
    const FIRST_LINE_MIN: usize = 40;
    let after = &after[..after.len().min(64 * 1024)];
    let after = String::from_utf8_lossy(after);
    let pieces = rest_of_line
        .split("\\n")
        .chain(after.lines().flat_map(|l| l.split("\\n")))
        .take(MAX_LINES);
    let mut body = String::new();
    for piece in pieces {
        if piece.contains("-----END") {
            break;
        }
        let run = longest_base64_run(piece);
        if body.is_empty() {
            // Before the body: blank lines and PEM headers (`Proc-Type: …`) may come first.
            // The first body line is long and mixes cases and digits, unlike an identifier.
            let mixed = run.bytes().any(|b| b.is_ascii_uppercase())
                && run.bytes().any(|b| b.is_ascii_lowercase())
                && run.bytes().any(|b| b.is_ascii_digit());
            if run.len() >= FIRST_LINE_MIN && mixed {
                body.push_str(run);
            } else if !(piece
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .is_empty()
                || is_pem_header(piece))
            {
                return None;
            }
        } else if run.len() >= 4 && !piece.contains(':') {
            body.push_str(run);
        } else {
            break;
        }
    }
    (!body.is_empty()).then_some(body)
}

/// `Proc-Type: 4,ENCRYPTED`, `DEK-Info: …`, `Comment: …` (possibly inside a quoted string).
fn is_pem_header(piece: &str) -> bool {
    let piece = piece.trim_start().trim_start_matches(['"', '\'']);
    piece.split_once(": ").is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
    })
}

fn longest_base64_run(s: &str) -> &str {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
    s.split(|c: char| !is_b64(c))
        .max_by_key(|run| run.len())
        .unwrap_or("")
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A JWT whose header and payload are JSON objects, and whose payload is not the well-known
/// jwt.io example or another obvious sample.
fn jwt_is_real(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let decode = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&base64url_decode(part)?).ok()
    };
    let (Some(header), Some(payload)) = (decode(header), decode(payload)) else {
        return false;
    };
    if header.get("alg").is_none() || !payload.is_object() {
        return false;
    }
    let text = payload.to_string().to_ascii_lowercase();
    !["john doe", "example", "dummy", "fake", "placeholder"]
        .iter()
        .any(|m| text.contains(m))
}

/// A rule as written in the table below.
struct RuleDef {
    id: &'static str,
    severity: Severity,
    title: &'static str,
    message: &'static str,
    fix: &'static str,
    keywords: &'static [&'static str],
    patterns: &'static [&'static str],
    check: Check,
    scope: Scope,
}

impl RuleDef {
    fn build(self) -> Rule {
        Rule {
            info: RuleInfo {
                id: self.id,
                severity: self.severity,
                title: self.title,
                fix: self.fix,
            },
            message: self.message,
            scope: self.scope,
            keywords: self.keywords,
            patterns: self
                .patterns
                .iter()
                .map(|p| Regex::new(p).expect("built-in pattern"))
                .collect(),
            check: self.check,
        }
    }
}

/// Shared tail of "name = value" patterns: optional type annotation (`: &str`, `: string`),
/// an assignment operator, then a double-quoted, single-quoted or bare value.
macro_rules! assignment {
    ($key:literal, $bare:literal) => {
        concat!(
            r#"(?i)(?P<key>"#,
            $key,
            r#")["']?(?:\s*:\s*&?(?:'static\s+)?[a-z_][a-z0-9_:<>]*)?\s*(?::=|=>|[:=])[ \t]*"#,
            r#"(?:"(?P<dq>[^"\r\n]*)"|'(?P<sq>[^'\r\n]*)'|(?P<secret>"#,
            $bare,
            r#"))"#
        )
    };
}

fn builtin_rules() -> Vec<Rule> {
    use Check::*;
    use Scope::*;
    use Severity::*;
    [
        RuleDef {
            id: "aws-access-key-id",
            severity: Critical,
            title: "AWS access key ID",
            message: "An AWS access key ID is committed; its secret key is usually nearby.",
            fix: "Deactivate the key in AWS IAM, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["akia", "asia", "abia", "acca"],
            patterns: &[r"(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)(?P<body>[A-Z2-7]{16}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "aws-secret-access-key",
            severity: Critical,
            title: "AWS secret access key",
            message: "An AWS secret access key is committed.",
            fix: "Deactivate the key pair in AWS IAM, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["secret"],
            patterns: &[concat!(
                r#"(?i)(?P<key>[a-z0-9_.\-]*(?:aws[_.\-]?secret|secret[_.\-]?access)[a-z0-9_.\-]*)"#,
                r#"["']?\s*(?::=|=>|[:=])\s*["']?(?P<secret>[a-z0-9/+]{40})"#
            )],
            check: AwsSecret,
            scope: All,
        },
        RuleDef {
            id: "github-token",
            severity: Critical,
            title: "GitHub token",
            message: "A GitHub token is committed.",
            fix: "Revoke the token in GitHub's developer settings, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            patterns: &[
                r"(?P<secret>gh[pousr]_(?P<body>[A-Za-z0-9]{36,251}))",
                r"(?P<secret>github_pat_(?P<body>[A-Za-z0-9]{22}_[A-Za-z0-9]{59}))",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "gitlab-token",
            severity: Critical,
            title: "GitLab token",
            message: "A GitLab access, deploy or runner token is committed.",
            fix: "Revoke the token in GitLab, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["glpat-", "gldt-", "glrt-", "glcbt-", "glft-", "glimt-", "glsoat-", "gloas-", "glptt-", "gr1348941"],
            patterns: &[
                r"(?P<secret>(?:glpat|gldt|glrt|glcbt|glft|glimt|glsoat|gloas)-(?P<body>[A-Za-z0-9_\-]{20,64}(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?))",
                r"(?P<secret>glptt-(?P<body>[0-9a-f]{40}))",
                r"(?P<secret>GR1348941(?P<body>[A-Za-z0-9_\-]{20}))",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "slack-token",
            severity: High,
            title: "Slack token",
            message: "A Slack API token is committed.",
            fix: "Revoke the token in the Slack app settings, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxo-", "xoxs-", "xoxe-", "xoxe.", "xapp-"],
            patterns: &[
                r"(?P<secret>xox[abposre]-(?P<body>(?:[0-9]{1,16}-){1,4}[0-9A-Za-z]{16,64}))",
                // Refresh tokens (`xoxe.xoxp-1-…`) and app-level tokens (`xapp-1-A…-…-…`).
                r"(?P<secret>xoxe\.xox[bp]-[0-9]-(?P<body>[0-9A-Za-z]{30,180}))",
                r"(?P<secret>xapp-[0-9]-[A-Z0-9]{8,12}-[0-9]{10,14}-(?P<body>[0-9a-f]{40,80}))",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "slack-webhook",
            severity: Medium,
            title: "Slack incoming webhook",
            message: "A Slack incoming webhook URL is committed; anyone holding it can post to the channel.",
            fix: "Regenerate the webhook in the Slack app settings and load its URL from the CI secret store or the environment instead.",
            keywords: &["hooks.slack.com"],
            patterns: &[
                r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/(?P<secret>[A-Za-z0-9]{20,32})",
                r"https://hooks\.slack\.com/(?:workflows|triggers)/T[A-Z0-9]{6,12}/[A-Z0-9]{6,14}/[0-9]{6,24}/(?P<secret>[A-Za-z0-9]{20,48})",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "stripe-secret-key",
            severity: Critical,
            title: "Stripe live secret key",
            message: "A Stripe live secret or restricted key is committed.",
            fix: "Roll the key in the Stripe dashboard and load it from the CI secret store or the environment instead.",
            keywords: &["sk_live_", "rk_live_"],
            patterns: &[r"(?P<secret>[sr]k_live_(?P<body>[0-9A-Za-z]{24,247}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "stripe-test-key",
            severity: Low,
            title: "Stripe test secret key",
            message: "A Stripe test-mode secret key is committed; it only reaches test data.",
            fix: "Roll the key in the Stripe dashboard (test mode) and load it from the environment instead.",
            keywords: &["sk_test_", "rk_test_"],
            patterns: &[r"(?P<secret>[sr]k_test_(?P<body>[0-9A-Za-z]{24,247}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "google-api-key",
            severity: High,
            title: "Google API key",
            message: "A Google API key is committed.",
            fix: "Delete or restrict the key in the Google Cloud console, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["aiza"],
            patterns: &[r"(?P<secret>AIza(?P<body>[0-9A-Za-z_\-]{35}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "npm-token",
            severity: Critical,
            title: "npm access token",
            message: "An npm access token is committed.",
            fix: "Revoke the token with `npm token revoke` and read it from NPM_TOKEN in .npmrc (`${NPM_TOKEN}`) instead.",
            keywords: &["npm_", "_authtoken"],
            patterns: &[
                r"(?P<secret>npm_(?P<body>[A-Za-z0-9]{36}))",
                r":_authToken=(?P<secret>[A-Za-z0-9_\-.+/=]{20,})",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "pypi-token",
            severity: Critical,
            title: "PyPI API token",
            message: "A PyPI upload token is committed.",
            fix: "Remove the token in the PyPI account settings, create a new one (or use trusted publishing), and load it from the CI secret store instead.",
            keywords: &["pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"],
            patterns: &[r"(?P<secret>pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)(?P<body>[A-Za-z0-9_\-]{50,}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "private-key",
            severity: Critical,
            title: "Private key",
            message: "A PEM private key is committed.",
            fix: "Treat the key as compromised: replace it, revoke what it signed, and mount it from the CI secret store at run time instead.",
            keywords: &["private key"],
            patterns: &[r"-----BEGIN (?:RSA |DSA |EC |ENCRYPTED |PGP |SSH2 ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"],
            check: PemBody,
            scope: All,
        },
        RuleDef {
            id: "openssh-private-key",
            severity: Critical,
            title: "OpenSSH private key",
            message: "An OpenSSH private key is committed.",
            fix: "Replace the key pair, remove the public key from every authorized_keys and deploy-key list, and mount the new key from the CI secret store instead.",
            keywords: &["private key"],
            patterns: &[r"-----BEGIN OPENSSH PRIVATE KEY-----"],
            check: PemBody,
            scope: All,
        },
        RuleDef {
            id: "putty-private-key",
            severity: Critical,
            title: "PuTTY private key",
            message: "A PuTTY private key file is committed.",
            fix: "Replace the key pair, remove the public key wherever it is authorised, and keep the new key out of the repository.",
            keywords: &["putty-user-key-file-"],
            patterns: &[r"PuTTY-User-Key-File-[23]: [A-Za-z0-9@.\-]+"],
            check: PuttyBody,
            scope: All,
        },
        RuleDef {
            id: "jwt",
            severity: Medium,
            title: "JSON Web Token",
            message: "A signed JSON Web Token is committed; it grants access until it expires.",
            fix: "Invalidate the token (rotate the signing key if it does not expire) and obtain tokens at run time instead.",
            keywords: &["eyj"],
            patterns: &[r"(?P<secret>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.(?P<body>[A-Za-z0-9_\-]{16,}))"],
            check: Jwt,
            scope: All,
        },
        RuleDef {
            id: "url-credentials",
            severity: High,
            title: "Credentials in a URL",
            message: "A URL embeds a user name and password.",
            fix: "Change the password and pass it separately (environment variable or secret store) instead of in the URL.",
            keywords: &["://"],
            patterns: &[concat!(
                r#"(?i)\b[a-z][a-z0-9+.\-]{1,19}://(?P<user>[^\s:/@'"<>]{0,64}):(?P<secret>[^\s@/'"<>]{3,128})"#,
                r#"@(?P<host>[a-z0-9][a-z0-9.\-]*|\[[0-9a-f:.]+\])"#
            )],
            check: UrlCredentials,
            scope: All,
        },
        RuleDef {
            id: "password-assignment",
            severity: High,
            title: "Password in a configuration file",
            message: "A configuration file sets a literal password.",
            fix: "Change the password and reference it from the environment or a secret store (e.g. `${DB_PASSWORD}`) instead.",
            keywords: &["pass", "pwd"],
            patterns: &[
                assignment!(r"[a-z0-9_.\-]*(?:pass(?:word|wd|phrase)?|pwd)", r#"[^\s"',;]*"#),
                r"(?i)<(?P<key>[a-z0-9_.\-:]*(?:password|passwd|pwd))>(?P<secret>[^<\s]{1,200})</",
            ],
            check: Password,
            scope: ConfigFiles,
        },
        RuleDef {
            id: "high-entropy-secret",
            severity: Medium,
            title: "High-entropy secret",
            message: "A random-looking value is assigned to a secret-like name.",
            fix: "If this is a credential, rotate it and load it from the CI secret store or the environment instead.",
            keywords: &[
                "apikey", "api_key", "api-key", "api.key", "accesskey", "access_key", "access-key",
                "access.key", "privatekey", "private_key", "private-key", "private.key", "authkey",
                "auth_key", "auth-key", "secret", "token", "credential", "passw",
            ],
            patterns: &[assignment!(
                r"[a-z0-9_.\-]*(?:api[_.\-]?key|access[_.\-]?key|private[_.\-]?key|auth[_.\-]?key|secret|token|credential|passw(?:or)?d)[a-z0-9_.\-]*",
                r"[A-Za-z0-9+/=_\-.~]{20,256}"
            )],
            check: Entropy,
            scope: All,
        },
    ]
    .into_iter()
    .map(RuleDef::build)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(name: &str, text: &str) -> Vec<Finding> {
        ENGINE.scan_bytes(name, is_config_file(Path::new(name)), text.as_bytes())
    }

    fn ids(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.rule_id.as_str()).collect()
    }

    #[test]
    fn rules_compile_and_fit_the_mask() {
        assert!(ENGINE.rules.len() <= 32);
        let mut seen = std::collections::HashSet::new();
        assert!(rules().all(|r| seen.insert(r.id)), "rule ids are unique");
    }

    #[test]
    fn line_and_character_column() {
        let found = scan(
            "a.txt",
            "first\nsecond ✓ line ghp_R8sQ2kLm4NvX7pT1wZ9yB3cD5fG6hJ0aE2iU x\n",
        );
        assert_eq!(ids(&found), ["github-token"]);
        assert_eq!((found[0].line, found[0].column), (2, 15));
        assert_eq!(found[0].preview, "second ✓ line ghp_… x");
    }

    #[test]
    fn crlf_lines_and_last_line_without_newline() {
        let found = scan(
            "a.txt",
            "x\r\ny\r\nnpm_Hq3vT9kLp2WzX8mN4bR7cY1dF6gJ0sA5eU3i",
        );
        assert_eq!(ids(&found), ["npm-token"]);
        assert_eq!(found[0].line, 3);
    }

    #[test]
    fn specific_rule_wins_over_generic() {
        let found = scan(
            "ci.env",
            "GITHUB_TOKEN=ghp_R8sQ2kLm4NvX7pT1wZ9yB3cD5fG6hJ0aE2iU\n",
        );
        assert_eq!(ids(&found), ["github-token"]);
    }

    #[test]
    fn every_secret_on_a_line_is_masked_in_every_preview() {
        let line = "aws_access_key_id=AKIAQ3EGRT7ZL5MXW2PA aws_secret_access_key=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";
        let found = scan("creds.ini", line);
        assert_eq!(ids(&found), ["aws-access-key-id", "aws-secret-access-key"]);
        for f in &found {
            assert!(!f.preview.contains("AKIAQ3EGRT7ZL5MXW2PA"), "{}", f.preview);
            assert!(!f.preview.contains("Tq8Wn2Lx5Rz7Kp3Vb9Mc"), "{}", f.preview);
        }
    }

    #[test]
    fn slack_refresh_and_app_tokens_are_found() {
        // Built at run time, so this file holds no token literal.
        let refresh = format!(
            "xoxe.xoxp-1-{}",
            "Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIzLTc4OTAxMjM0NTY"
        );
        let app = format!(
            "xapp-1-A0123BCDEF4-1234567890123-{}",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        let found = scan("slack.env", &format!("REFRESH={refresh}\nAPP={app}\n"));
        assert_eq!(ids(&found), ["slack-token", "slack-token"]);
    }

    #[test]
    fn short_secrets_are_fully_masked() {
        let found = scan("app.yaml", "db:\n  password: hunter22\n");
        assert_eq!(ids(&found), ["password-assignment"]);
        assert_eq!(found[0].preview, "password: ****");
    }

    #[test]
    fn long_lines_are_cut_around_the_secret() {
        let line = format!(
            "{} token ghp_R8sQ2kLm4NvX7pT1wZ9yB3cD5fG6hJ0aE2iU {}",
            "a ".repeat(500),
            "b ".repeat(500)
        );
        let found = scan("min.js", &line);
        assert_eq!(found.len(), 1);
        let preview = &found[0].preview;
        assert!(
            preview.starts_with('…') && preview.ends_with('…'),
            "{preview}"
        );
        assert!(preview.contains("token ghp_…"));
        assert!(preview.chars().count() <= 3 * PREVIEW_CONTEXT + 2);
    }

    #[test]
    fn placeholders_are_not_passwords() {
        for value in [
            "",
            "${DB_PASSWORD}",
            "<password>",
            "changeme",
            "xxxxxxxx",
            "****",
            "{{ vault_pw }}",
            "DB_PASSWORD",
            "null",
            "!vault |",
        ] {
            let text = format!("password: {value}\n");
            assert!(scan("c.yaml", &text).is_empty(), "{value:?}");
        }
        assert!(scan("c.yaml", "bypass: Zq7Lm2Xv9Kp4\n").is_empty());
        assert!(scan("c.yaml", "image: password:14.1\n").is_empty());
        assert!(scan("c.yaml", "password_file: /run/secrets/db\n").is_empty());
    }

    #[test]
    fn pem_header_without_body_is_not_a_key() {
        let code = "if line == \"-----BEGIN RSA PRIVATE KEY-----\" {\n    return parse(rest);\n}\n";
        assert!(scan("parse.rs", code).is_empty());
    }

    #[test]
    fn pem_headers_before_the_body_are_skipped() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5E4A\n\nMIIEpAIBAAKCAQEAw9LSIZRJj84G78OgicQVnrTvAfB3MWYY2vDHy1EFNC6FuXv/\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(ids(&scan("k.pem", key)), ["private-key"]);
        let code = "const HEADER: &str = \"-----BEGIN RSA PRIVATE KEY-----\";\nconst OTHER_HEADER_NAME: &str = \"AVeryLongIdentifierNameThatGoesOnAndOnForeverAndEver\";\n";
        assert!(scan("k.rs", code).is_empty());
    }

    #[test]
    fn inline_pem_body_is_found_and_masked() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDQ3x8Zc2Vq";
        let json = format!(
            "{{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{body}\\nAbC1\\n-----END PRIVATE KEY-----\\n\"}}"
        );
        let found = scan("sa.json", &json);
        assert_eq!(ids(&found), ["private-key"]);
        assert!(!found[0].preview.contains(body));
    }

    #[test]
    fn entropy_rule_needs_randomness_and_a_literal() {
        assert_eq!(
            ids(&scan("a.py", "API_KEY = \"q8Zr2LmX7vNp4TsW9bKc3Hd\"\n")),
            ["high-entropy-secret"]
        );
        assert!(scan("a.py", "API_KEY = \"aaaaaaaaaaaaaaaaaaaaaaaa1\"\n").is_empty());
        assert!(scan("a.py", "token = get_token_from_environment_2()\n").is_empty());
        assert!(scan("a.py", "token_sha = \"q8Zr2LmX7vNp4TsW9bKc3Hd\"\n").is_empty());
        assert!(scan(
            "a.py",
            "secret = \"3f1b6c0e-8d2a-4b7e-9c5f-1a2b3c4d5e6f\"\n"
        )
        .is_empty());
    }

    #[test]
    fn jwt_io_example_is_ignored() {
        let example = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert!(scan("a.md", example).is_empty());
        assert_eq!(base64url_decode("eyJhIjoxfQ").unwrap(), br#"{"a":1}"#);
    }

    #[test]
    fn key_words_split_identifiers() {
        assert_eq!(key_words("AWSSecretKey_v2"), ["aws", "secret", "key", "v2"]);
        assert_eq!(key_words("api-key.sha256"), ["api", "key", "sha256"]);
        for key in [
            "NextToken",
            "private_key_id",
            "SecretArn",
            "api_key_sha256",
            "PasswordLastUsed",
            "token_url",
        ] {
            assert!(key_names_non_secret(key), "{key}");
        }
        for key in [
            "NEXTAUTH_SECRET",
            "ELASTIC_API_KEY",
            "client_secret",
            "accessToken",
        ] {
            assert!(!key_names_non_secret(key), "{key}");
        }
    }

    #[test]
    fn fake_detection() {
        assert!(looks_fake("IOSFODNN7EXAMPLE"));
        assert!(looks_fake("XXXXXXXXXXXXXXXXXXXXXXXX"));
        assert!(looks_fake("abcdefghijklmnopqrstuvwxyz0123456789"));
        assert!(looks_fake("000000000000000000000000000000000000"));
        assert!(!looks_fake("R8sQ2kLm4NvX7pT1wZ9yB3cD5fG6hJ0aE2iU"));
    }
}
