//! Dotenv files (`--env-file`, `--secrets-file`): `NAME=value` lines, `#` comments, an optional
//! `export ` prefix, and values bare, in single quotes (literal) or in double quotes (with
//! `\n`, `\t`, `\"`, `\\` and `\$` escapes). Quoted values may span lines (a private key). No
//! `$NAME` is expanded: what is written is the value.

/// A mistake in a dotenv file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct DotenvError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// The variables of a dotenv text, in file order (a name given twice: the later wins for
/// whoever reads them in order).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    let mut out = Vec::new();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let body = line.trim_start();
        let mut col = line.len() - body.len() + 1;
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let err = |col: usize, message: String| DotenvError {
            line: i + 1,
            col,
            message,
        };
        let body = match body.strip_prefix("export ") {
            Some(rest) => {
                let trimmed = rest.trim_start();
                col += body.len() - trimmed.len();
                trimmed
            }
            None => body,
        };
        let Some(eq) = body.find('=') else {
            return Err(err(col, "expected `NAME=value`".into()));
        };
        let name = body[..eq].trim_end();
        if !is_name(name) {
            return Err(err(
                col,
                format!("`{name}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"),
            ));
        }
        let after = &body[eq + 1..];
        let value_col = col + eq + 1;
        let value = match after.chars().next() {
            Some(q @ ('\'' | '"')) => {
                // A quoted value runs to its closing quote, over as many lines as it takes.
                let mut text = after[1..].to_string();
                let mut at_line = i;
                let (value, rest) = loop {
                    if let Some((value, rest)) = closing(&text, q) {
                        break (value, rest);
                    }
                    match lines.next() {
                        Some((j, next)) => {
                            text.push('\n');
                            text.push_str(next.strip_suffix('\r').unwrap_or(next));
                            at_line = j;
                        }
                        None => {
                            return Err(err(value_col, format!("the quote {q} is never closed")))
                        }
                    }
                };
                let rest = rest.trim_start();
                if !(rest.is_empty() || rest.starts_with('#')) {
                    return Err(DotenvError {
                        line: at_line + 1,
                        col: 1,
                        message: format!("unexpected `{rest}` after the closing quote"),
                    });
                }
                if q == '"' {
                    unescape(&value)
                } else {
                    value
                }
            }
            // A bare value ends at a ` #` comment; surrounding blanks are not part of it.
            _ => match after.find(" #") {
                Some(c) => after[..c].trim().to_string(),
                None => after.trim().to_string(),
            },
        };
        if value.contains('\0') {
            return Err(err(value_col, "a value cannot hold a NUL character".into()));
        }
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// The text up to the closing quote `q` (not escaped, in double quotes) and what follows it.
fn closing(text: &str, q: char) -> Option<(String, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if q == '"' => escaped = true,
            c if c == q => return Some((text[..i].to_string(), &text[i + 1..])),
            _ => {}
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

pub(crate) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_comments_quotes_and_export() {
        let text = "# a comment\n\nA=1\nexport B = two words  # note\nC='it # is'\r\nD=\"x\\ny \\\"q\\\"\"\nE='$NOT expanded'\nF=\n";
        assert_eq!(
            pairs(text),
            owned(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "it # is"),
                ("D", "x\ny \"q\""),
                ("E", "$NOT expanded"),
                ("F", ""),
            ])
        );
    }

    #[test]
    fn quoted_values_span_lines() {
        let text = "KEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nNEXT=1\n";
        assert_eq!(
            pairs(text),
            owned(&[
                ("KEY", "-----BEGIN KEY-----\nabc\n-----END KEY-----"),
                ("NEXT", "1")
            ])
        );
    }

    #[test]
    fn mistakes_have_a_line_and_column() {
        let e = parse("A=1\n  not a line\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 3));
        assert_eq!(e.to_string(), "2:3: expected `NAME=value`");
        let e = parse("A=1\n1X=2\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 1));
        let e = parse("export  K='open\nstill\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 11));
        assert!(e.message.contains("never closed"), "{e}");
        let e = parse("K='v' trailing\n").unwrap_err();
        assert!(e.message.contains("trailing"), "{e}");
    }
}
