//! The one place where text from git, a job or a user becomes part of a page: everything the
//! pages show goes through [`Text`] (HTML text and attribute values) or [`segment`] (a path
//! segment of a link), so a branch named `<script>` is shown, never run.

use std::fmt;

/// `0` shown as HTML text or inside a double- or single-quoted attribute value.
pub struct Text<'a>(pub &'a str);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// `text` escaped for HTML.
pub fn text(text: &str) -> Text<'_> {
    Text(text)
}

/// `value` as one path segment of a URL: everything but RFC 3986's unreserved characters is
/// percent-encoded, so a job named `../x` or `a?b` cannot leave its place in a link. The result
/// contains no HTML metacharacters either.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    // `.` and `..` alone would still be read as directories.
    match out.as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_become_entities() {
        assert_eq!(
            text("<script>alert('x')</script>").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(
            text(r#"" onmouseover="x"#).to_string(),
            "&quot; onmouseover=&quot;x"
        );
        assert_eq!(
            text("<img src=x onerror=alert(1)>").to_string(),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
    }

    #[test]
    fn ampersands_are_escaped_once_and_plain_text_is_kept() {
        assert_eq!(text("a && b &amp;").to_string(), "a &amp;&amp; b &amp;amp;");
        assert_eq!(text("main ünïcode").to_string(), "main ünïcode");
        assert_eq!(text("").to_string(), "");
    }

    #[test]
    fn a_segment_cannot_leave_its_place_in_a_link() {
        assert_eq!(segment("build"), "build");
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a?b#c d"), "a%3Fb%23c%20d");
        assert_eq!(segment("\"><script>"), "%22%3E%3Cscript%3E");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
