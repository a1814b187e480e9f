//! The forms a secret value can take in output: the value itself, each line of a multi-line
//! value, and its base64, URL-encoded and JSON-escaped encodings. A job that prints
//! `echo $TOKEN | base64` (wrapped over lines or not) or a JSON body holding the token leaks
//! the value as surely as one that prints it plainly.

/// Lines of a multi-line value shorter than this are not masked alone: a PEM key's blank or
/// one-character lines would turn every such line of a log into `***`.
const MIN_LINE: usize = 4;

/// Every pattern that gives `value` away, without duplicates or empty ones; none holds a
/// newline.
pub fn forms(value: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut add = |p: Vec<u8>| {
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
    };
    let mut plain: Vec<&str> = vec![value];
    if value.contains('\n') {
        plain.extend(
            value
                .split('\n')
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| l.trim().len() >= MIN_LINE),
        );
    }
    for text in plain {
        // Output is masked line by line: a multi-line value goes as its lines.
        if !text.contains('\n') {
            add(text.as_bytes().to_vec());
        }
        for offset in 0..3 {
            for alphabet in [STANDARD, URL_SAFE] {
                let encoded = base64_inside(text.as_bytes(), offset, alphabet);
                for piece in wrapped_pieces(&encoded) {
                    add(piece.to_vec());
                }
                add(encoded);
            }
        }
        add(url_encoded(text, false));
        add(url_encoded(text, true));
        add(json_escaped(text));
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters that `value` alone decides when it starts `offset` bytes (0–2) into
/// a longer base64-encoded stream: characters that also carry bits of the bytes before or
/// after it depend on those and are left out, so the pattern matches wherever the value sits.
fn base64_inside(value: &[u8], offset: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let mut bytes = vec![0u8; offset];
    bytes.extend_from_slice(value);
    let encoded = base64(&bytes, alphabet);
    // Character i carries bits [6i, 6i + 6) of the stream; the value's are [8·offset, 8·end).
    let first = (8 * offset).div_ceil(6);
    let last = 8 * bytes.len() / 6;
    encoded
        .get(first..last)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// A wrapped line's piece of an encoded value shorter than this is not masked. 8 base64
/// characters stand for 6 bytes of the value: such a piece turns up by chance in other output
/// (hashes, other base64) about once in 64⁸ ≈ 3·10¹⁴ characters, where a 4-character one
/// would match once in 16 million characters of base64 a job prints. What stays visible, at
/// most 7 characters at one end of a line, holds at most 5 bytes of the value.
const MIN_PIECE: usize = 8;

/// The widths base64 text is commonly wrapped at: `base64` (coreutils, busybox) at 76,
/// `openssl base64` and PEM at 64. No piece on one line is longer than the widest.
const WRAP_WIDTHS: [usize; 2] = [64, 76];
const WIDEST: usize = 76;

/// Up to this length an encoding's whole lines are looked for at every position (the value
/// anywhere in a wrapped text); past it only where the value's encoding starts the text
/// (`base64 key.pem`), so that a long value costs patterns in proportion to its length, not
/// to its square.
const ANY_POSITION: usize = 256;

/// The pieces of `encoded` that a line break in a wrapped base64 text leaves on one line: each
/// head (the end of a line) and tail (the start of the next) of at least [`MIN_PIECE`]
/// characters, and, for an encoding longer than a line, its whole lines. Each line is masked
/// alone, as GitHub Actions registers each line of a multi-line secret.
fn wrapped_pieces(encoded: &[u8]) -> impl Iterator<Item = &[u8]> {
    let len = encoded.len();
    let ends =
        (MIN_PIECE..len.min(WIDEST + 1)).flat_map(move |k| [&encoded[..k], &encoded[len - k..]]);
    let lines = WRAP_WIDTHS
        .into_iter()
        .filter(move |&w| w < len)
        .flat_map(move |w| {
            let step = if len <= ANY_POSITION { 1 } else { w };
            encoded.windows(w).step_by(step)
        });
    ends.chain(lines)
}

/// Unpadded base64: every character the input determines, partial last one included.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    out
}

/// Percent-encoding of everything but the unreserved characters; `plus`: a space as `+`
/// (HTML forms).
fn url_encoded(value: &str, plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b),
            b' ' if plus => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
    out
}

/// The value as it appears inside a JSON string.
fn json_escaped(value: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted.as_bytes()[1..quoted.len() - 1].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(value: &str, pattern: &str) -> bool {
        forms(value).contains(&pattern.as_bytes().to_vec())
    }

    #[test]
    fn base64_of_the_value_alone_and_at_each_offset_of_a_stream() {
        // base64("s3cr3t-token") = czNjcjN0LXRva2Vu
        assert!(has("s3cr3t-token", "czNjcjN0LXRva2Vu"));
        // base64("x" + value) = eHMzY3IzdC10b2tlbg==: the first two characters carry "x".
        let one = String::from_utf8(base64_inside(b"s3cr3t-token", 1, STANDARD)).unwrap();
        assert!(
            "eHMzY3IzdC10b2tlbg".contains(&one) && one.len() >= 14,
            "{one}"
        );
        // base64("xy" + value) = eHlzM2NyM3QtdG9rZW4=
        let two = String::from_utf8(base64_inside(b"s3cr3t-token", 2, STANDARD)).unwrap();
        assert!(
            "eHlzM2NyM3QtdG9rZW4".contains(&two) && two.len() >= 14,
            "{two}"
        );
    }

    #[test]
    fn each_line_of_a_wrapped_base64_text() {
        // base64 of `user:VALUE` is 140 characters: at 64 a whole line falls inside the value.
        let value = "s3cr3t-token-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789-the-end-of-it";
        let encoded = base64(format!("user:{value}").as_bytes(), STANDARD);
        let masks = super::super::Masks::default();
        masks.add([value]);
        for width in WRAP_WIDTHS {
            for (i, line) in encoded.chunks(width).enumerate() {
                let line = std::str::from_utf8(line).unwrap();
                let masked = masks.text(line);
                // The first line starts with `user:`'s characters, which stay.
                let visible = masked.replace(super::super::MASK, "").len();
                assert!(
                    masked.contains(super::super::MASK) && (i == 0 || visible < MIN_PIECE),
                    "width {width}: line {i} {line} became {masked}"
                );
            }
        }
    }

    #[test]
    fn a_long_value_s_wrapped_lines_cost_patterns_in_proportion_to_its_length() {
        let key: String = (0..3000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let patterns = forms(&key);
        let bytes: usize = patterns.iter().map(Vec::len).sum();
        assert!(
            bytes < 2_000_000,
            "{} patterns, {bytes} bytes",
            patterns.len()
        );
        // `base64 key` wraps the value's own encoding from its first character.
        let encoded = base64(key.as_bytes(), STANDARD);
        assert!(patterns.contains(&encoded[76..152].to_vec()));
    }

    #[test]
    fn a_short_piece_of_a_wrapped_value_is_not_a_pattern() {
        assert!(!has("s3cr3t-token", "czNjcjN"));
        assert!(has("s3cr3t-token", "czNjcjN0"));
        assert!(has("s3cr3t-token", "cjN0LXRva2Vu"));
    }

    #[test]
    fn url_and_json_forms() {
        assert!(has("a b/c\"d", "a%20b%2Fc%22d"));
        assert!(has("a b/c\"d", "a+b%2Fc%22d"));
        assert!(has("a b/c\"d", "a b/c\\\"d"));
        assert!(has("line one\nline two", "line one\\nline two"));
    }

    #[test]
    fn each_line_of_a_multi_line_value_but_not_trivial_ones() {
        let key = "-----BEGIN KEY-----\r\nMIIEabcd\r\n\r\nx\n-----END KEY-----\n";
        assert!(has(key, "MIIEabcd"));
        assert!(has(key, "-----END KEY-----"));
        assert!(!has(key, "x"));
        assert!(!forms(key).iter().any(|p| p.is_empty() || p == b"\r"));
    }
}
