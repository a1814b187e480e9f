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

mod allow;
mod rules;
mod shape;

use allow::{
    is_config_syntax, is_documentation_host, is_placeholder, is_placeholder_user,
    is_published_example, key_names_non_secret, key_words, looks_fake,
};
use rules::builtin_rules;
use shape::{is_high_entropy_secret, is_sample_jwt, jwt_is_real, key_body};

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
    use std::path::Component;
    let parts: Vec<_> = path
        .components()
        .filter(|c| *c != Component::CurDir)
        // The root is the empty name before the first `/`: `/tmp/a.env`, not `//tmp/a.env`.
        .map(|c| match c {
            Component::RootDir => Cow::Borrowed(""),
            c => c.as_os_str().to_string_lossy(),
        })
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
    /// A token whose random part always holds a digit (Slack's carry team and user ids), so
    /// that words after its prefix (`xoxa-something`) are not taken for one.
    DigitToken,
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
    /// Lines below this one where the secret stands (an XML element's value on its own line);
    /// `anchor` and `redact` are then positions in that line.
    below: usize,
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
        // Secrets found from the line above theirs (an XML element's value).
        let mut below = Vec::new();
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
                self.scan_line(&file, line, line_no, rules, &mut findings, &mut below);
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
            self.scan_line(&file, line, line_no, rules, &mut findings, &mut below);
        }
        // A rule that matched the value's own line (a token format) is the better report.
        below.retain(|b: &Finding| !findings.iter().any(|f| f.line == b.line));
        findings.append(&mut below);
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
        below: &mut Vec<Finding>,
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
            let (text, preview, to) = match cand.below {
                0 => (&*text, preview(&text, &accepted, cand), &mut *findings),
                n => {
                    let line = ctx
                        .after
                        .split(|&b| b == b'\n')
                        .nth(n - 1)
                        .unwrap_or_default();
                    // The check read this line as UTF-8 without its `\r`.
                    let line = std::str::from_utf8(line).unwrap_or_default();
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    (
                        line,
                        preview(line, std::slice::from_ref(cand), cand),
                        &mut *below,
                    )
                }
            };
            to.push(Finding {
                scanner: SCANNER,
                rule_id: rule.info.id.to_string(),
                severity: rule.info.severity,
                path: PathBuf::from(file.rel),
                line: line_no + cand.below,
                column: text[..cand.anchor].chars().count() + 1,
                message: rule.message.to_string(),
                fix: rule.info.fix.to_string(),
                fingerprint: fingerprint(rule.info.id, file.rel, &cand.secret),
                preview,
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
                // Most lines a keyword sends here match nothing: `is_match` tells so without
                // the capture slots `captures_iter` sets up.
                if !re.is_match(ctx.text) {
                    continue;
                }
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
    let secret = ["secret", "dq", "sq", "bq"]
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
        below: 0,
    };
    match kind {
        Check::Token | Check::DigitToken => (stands_alone(text, secret.range())
            && !looks_fake(body)
            && (matches!(kind, Check::Token) || body.bytes().any(|b| b.is_ascii_digit()))
            && !is_published_example(secret.as_str()))
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
                below: 0,
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
                below: 0,
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
            if !names_a_secret(key_match.as_str()) {
                return None;
            }
            if let Some(tag) = caps.name("xml") {
                return xml_element_value(rule, tag.range(), key_match.as_str(), ctx);
            }
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
                && !is_published_example(value)
                && !is_sample_jwt(value)
                && !looks_fake(value)
                && !is_config_syntax(value)
                && !is_placeholder(value))
            .then(|| candidate(value, secret.range()))
        }
    }
}

/// An entropy-rule name: `auth` and `creds` only count as words of their own (not `author`).
fn names_a_secret(key: &str) -> bool {
    const STRONG: &[&str] = &["key", "secret", "token", "credential", "passw"];
    let lower = key.to_ascii_lowercase();
    STRONG.iter().any(|w| lower.contains(w))
        || key_words(key)
            .iter()
            .any(|w| ["auth", "cred", "creds"].contains(&w.as_str()))
}

/// `<apiToken>` alone on its line, the value alone on the next and `</apiToken>` on the one
/// after: the value is checked as if assigned, and reported where it stands.
fn xml_element_value(
    rule: usize,
    tag: Range<usize>,
    key: &str,
    ctx: &LineCtx,
) -> Option<Candidate> {
    let mut lines = ctx.after.split(|&b| b == b'\n');
    let value_line = std::str::from_utf8(lines.next()?).ok()?;
    let value_line = value_line.strip_suffix('\r').unwrap_or(value_line);
    let closing = std::str::from_utf8(lines.next()?).ok()?.trim();
    if closing.strip_prefix("</")?.strip_suffix('>')? != key {
        return None;
    }
    let value = value_line.trim();
    let start = value_line.find(value)?;
    let ok = !value.contains(char::is_whitespace)
        && !key_names_non_secret(key)
        && is_high_entropy_secret(value)
        && !is_published_example(value)
        && !is_sample_jwt(value)
        && !looks_fake(value)
        && !is_config_syntax(value)
        && !is_placeholder(value);
    ok.then(|| Candidate {
        rule,
        span: tag,
        anchor: start,
        redact: start..start + value.len(),
        secret: value.to_string(),
        below: 1,
    })
}

/// `name:value` with nothing after the colon is not an assignment in YAML (it is one plain
/// scalar: an image tag `postgres:16`, a `host:port`); only `name: value` and `name=value` are.
fn glued_to_colon(caps: &Captures, text: &str, key_end: usize, value_start: usize) -> bool {
    !secret_is_quoted(caps) && text[key_end..value_start].ends_with(':')
}

fn secret_is_quoted(caps: &Captures) -> bool {
    ["dq", "sq", "bq"].iter().any(|q| caps.name(q).is_some())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The match is not a slice of a longer identifier or base64 blob.
fn stands_alone(text: &str, range: Range<usize>) -> bool {
    !text[..range.start].ends_with(is_token_char) && !text[range.end..].starts_with(is_token_char)
}

#[cfg(test)]
mod tests {
    use super::shape::base64url_decode;
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
        // A marker counts written as a word, not spelled by chance in random mixed case.
        assert!(looks_fake("Xw937qtWSXJssFakeKey"));
        assert!(!looks_fake("Xw937qtWSXJss1lFaKe"));
        // What to put here.
        assert!(looks_fake("SlackAppConfigurationAccessTokenHere"));
        assert!(looks_fake("RANDOMSTRINGHERE"));
    }

    /// A random-looking value built at run time, so this file holds no secret literal.
    fn random_value() -> String {
        "R8sQ2kLm4NvX7pT1wZ9yB3cD5fG6hJ0a".chars().rev().collect()
    }

    #[test]
    fn assignments_of_many_languages_are_read() {
        let v = random_value();
        for (file, line) in [
            ("main.go", format!("var apiToken string = \"{v}\"")),
            ("main.go", format!("apiToken := `{v}`")),
            ("index.php", format!("$apiToken .= \"{v}\";")),
            ("index.php", format!("$apiToken ??= \"{v}\";")),
            (
                "Main.java",
                format!("System.setProperty(\"API_TOKEN\", \"{v}\");"),
            ),
            ("Makefile", format!("API_TOKEN ::= \"{v}\"")),
            ("Makefile", format!("API_TOKEN :::= \"{v}\"")),
            ("Makefile", format!("API_TOKEN ?= \"{v}\"")),
            ("app.kt", format!("val apiToken: String = \"{v}\"")),
            ("app.py", format!("auth = \"{v}\"")),
            ("app.py", format!("db_creds = \"{v}\"")),
        ] {
            let found = scan(file, &format!("{line}\n"));
            assert_eq!(ids(&found), ["high-entropy-secret"], "{file}: {line}");
            assert_eq!(found[0].column, line.find(&v).unwrap() + 1, "{line}");
            assert!(!found[0].preview.contains(&v), "{}", found[0].preview);
        }
        // `auth` must be a word of the name: an author is not a secret.
        assert!(scan("app.py", &format!("author = \"{v}\"\n")).is_empty());
    }

    #[test]
    fn xml_element_value_on_its_own_line_is_reported_where_it_stands() {
        let v = random_value();
        let text = format!("<config>\n  <apiToken>\n      {v}\n  </apiToken>\n</config>\n");
        let found = scan("app.xml", &text);
        assert_eq!(ids(&found), ["high-entropy-secret"]);
        assert_eq!((found[0].line, found[0].column), (3, 7));
        assert_eq!(found[0].preview, format!("{}…", &v[..4]));
        // The closing tag must name the same element, and a placeholder is not a secret.
        let other = format!("<apiToken>\n{v}\n</other>\n");
        assert!(scan("app.xml", &other).is_empty());
        assert!(scan("app.xml", "<apiToken>\n  ${API_TOKEN}\n</apiToken>\n").is_empty());
        // A token format on the value's line is the report, not the generic rule.
        let token = format!("ghp_{}", &(v.clone() + "abcd")[..36]);
        let found = scan(
            "app.xml",
            &format!("<githubToken>\n  {token}\n</githubToken>\n"),
        );
        assert_eq!(ids(&found), ["github-token"]);
        assert_eq!(found[0].line, 2);
    }

    #[test]
    fn published_examples_and_out_of_format_ids_are_not_high() {
        // The Firebase SDK's example key (allow-listed by gitleaks), under a key name.
        let found = scan(
            "app.py",
            "key = \"AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs\"\n",
        );
        assert!(found.is_empty(), "{:?}", ids(&found));
        // Slack ids are 8 to 14 digits.
        let tail = "4ddbc191d40ee098cbaae6f3523ada2d";
        let found = scan("a.txt", &format!("xoxp-1234-1234-1234-{tail}\n"));
        assert!(found.is_empty(), "{:?}", ids(&found));
        let found = scan(
            "a.txt",
            &format!("xoxp-123456789012-123456789012-1234567890123-{tail}\n"),
        );
        assert_eq!(ids(&found), ["slack-token"]);
    }
}
