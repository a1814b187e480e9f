//! The shape of a value: entropy, UUIDs, PEM bodies, JWT parts.

pub(super) fn shannon_entropy(s: &str) -> f64 {
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
pub(super) fn is_high_entropy_secret(value: &str) -> bool {
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

pub(super) fn is_uuid(value: &str) -> bool {
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
pub(super) fn key_body(rest_of_line: &str, after: &[u8]) -> Option<String> {
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
pub(super) fn is_pem_header(piece: &str) -> bool {
    let piece = piece.trim_start().trim_start_matches(['"', '\'']);
    piece.split_once(": ").is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
    })
}

pub(super) fn longest_base64_run(s: &str) -> &str {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
    s.split(|c: char| !is_b64(c))
        .max_by_key(|run| run.len())
        .unwrap_or("")
}

pub(super) fn base64url_decode(s: &str) -> Option<Vec<u8>> {
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
pub(super) fn jwt_is_real(token: &str) -> bool {
    jwt_payload(token).is_some_and(|payload| !is_sample_payload(&payload))
}

/// A well-formed JWT whose payload is a sample (the jwt.io example): not a secret under any
/// rule. A token that does not decode is not judged here.
pub(super) fn is_sample_jwt(token: &str) -> bool {
    jwt_payload(token).is_some_and(|payload| is_sample_payload(&payload))
}

/// The payload of a token whose header and payload decode to JSON objects, lower-cased.
fn jwt_payload(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (header, payload) = (parts.next()?, parts.next()?);
    let decode = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&base64url_decode(part)?).ok()
    };
    let (header, payload) = (decode(header)?, decode(payload)?);
    (header.get("alg").is_some() && payload.is_object())
        .then(|| payload.to_string().to_ascii_lowercase())
}

/// The jwt.io example's "John Doe", or a claim naming itself a sample. Not `example`: tokens
/// of real test environments carry `user@example.com` addresses and `example-app` audiences.
fn is_sample_payload(payload: &str) -> bool {
    ["john doe", "dummy", "fake", "placeholder"]
        .iter()
        .any(|m| payload.contains(m))
}
