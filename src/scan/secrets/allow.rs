//! Telling a real credential from what stands for one: documentation examples, placeholders,
//! configuration syntax, and names whose values are not secrets.

/// Placeholder or documentation value in the random part of a fixed-format token.
pub(super) fn looks_fake(body: &str) -> bool {
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
    // A marker counts where it is written as a word (`fake`, `FAKE`, `Fake`): random
    // mixed-case text spells one now and then (`…1lFaKe`).
    let written_as_word = |at: usize, len: usize| {
        let word = &body.as_bytes()[at..at + len];
        let upper = |b: &u8| b.is_ascii_uppercase();
        !word.iter().any(upper)
            || word.iter().all(upper)
            || (upper(&word[0]) && !word[1..].iter().any(upper))
    };
    if MARKERS.iter().any(|m| {
        lower
            .match_indices(m)
            .any(|(at, _)| written_as_word(at, m.len()))
    }) {
        return true;
    }
    // `…AccessTokenHere`, `RANDOMSTRINGHERE`, `your_token_here`: what to put here.
    if lower.ends_with("here") && written_as_word(body.len() - 4, 4) {
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
pub(super) fn is_config_syntax(value: &str) -> bool {
    value.starts_with(['!', '&', '*', '[', '(', '@'])
}

/// Values that stand for a secret rather than being one: empty, variable references,
/// template syntax, masks and stock words.
pub(super) fn is_placeholder(value: &str) -> bool {
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

pub(super) fn is_placeholder_user(user: &str) -> bool {
    user.starts_with(['$', '<', '{', '%'])
}

/// RFC 2606/6761 names that only ever appear in examples.
pub(super) fn is_documentation_host(host: &str) -> bool {
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
pub(super) fn key_names_non_secret(key: &str) -> bool {
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
pub(super) fn key_words(key: &str) -> Vec<String> {
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

/// Keys published in SDKs and documentation as examples, met in every vendored copy: the
/// Firebase Android SDK's Google API keys, as allow-listed by gitleaks
/// (https://github.com/gitleaks/gitleaks, MIT licence, `cmd/generate/config/rules/gcp.go`).
const PUBLISHED_EXAMPLES: &[&str] = &[
    "AIzaSyabcdefghijklmnopqrstuvwxyz1234567",
    "AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs",
    "AIzaSyCkEhVjf3pduRDt6d1yKOMitrUEke8agEM",
    "AIzaSyDMAScliyLx7F0NPDEJi1QmyCgHIAODrlU",
    "AIzaSyD3asb-2pEZVqMkmL6M9N6nHZRR_znhrh0",
    "AIzayDNSXIbFmlXbIE6mCzDLQAqITYefhixbX4A",
    "AIzaSyAdOS2zB6NCsk1pCdZ4-P6GBdi_UUPwX7c",
    "AIzaSyASWm6HmTMdYWpgMnjRBjxcQ9CKctWmLd4",
    "AIzaSyANUvH9H9BsUccjsu2pCmEkOPjjaXeDQgY",
    "AIzaSyA5_iVawFQ8ABuTZNUdcwERLJv_a_p4wtM",
    "AIzaSyA4UrcGxgwQFTfaI3no3t7Lt1sjmdnP5sQ",
    "AIzaSyDSb51JiIcB6OJpwwMicseKRhhrOq1cS7g",
    "AIzaSyBF2RrAIm4a0mO64EShQfqfd2AFnzAvvuU",
    "AIzaSyBcE-OOIbhjyR83gm4r2MFCu4MJmprNXsw",
    "AIzaSyB8qGxt4ec15vitgn44duC5ucxaOi4FmqE",
    "AIzaSyA8vmApnrHNFE0bApF4hoZ11srVL_n0nvY",
];

pub(super) fn is_published_example(secret: &str) -> bool {
    PUBLISHED_EXAMPLES.contains(&secret)
}
