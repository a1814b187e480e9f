//! `${NAME}` and `$NAME` in `env` values, from the variables defined before it (passed ones
//! first, then the pipeline's `env`, then the job's): `$$` is a literal `$`, and a `$` before
//! anything that cannot start a name stays as written. A name defined nowhere is a mistake,
//! never an empty string: `https://${HOST}/` must not quietly become `https:///`.

/// `value` with every reference replaced by what `lookup` gives; `Err(name)` for the first
/// name it does not know.
pub fn expand(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let braced = after
            .strip_prefix('{')
            .and_then(|a| a.find('}').map(|end| (&a[..end], end + 2)))
            .filter(|(name, _)| super::dotenv::is_name(name));
        let (name, len) = match braced {
            Some(found) => found,
            None => {
                let end = after
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if !super::dotenv::is_name(name) {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> Result<String, String> {
        expand(value, |name| {
            [("HOST", "example.org"), ("A", "1")]
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn braced_and_bare_names_expand() {
        assert_eq!(with("https://${HOST}/x").unwrap(), "https://example.org/x");
        assert_eq!(with("$HOST:$A").unwrap(), "example.org:1");
        assert_eq!(with("${A}b").unwrap(), "1b");
    }

    #[test]
    fn dollars_escape_and_other_dollars_stay() {
        assert_eq!(with("$${HOST} $$A").unwrap(), "${HOST} $A");
        assert_eq!(
            with("cost: 5$ or $1, ${ x}").unwrap(),
            "cost: 5$ or $1, ${ x}"
        );
    }

    #[test]
    fn an_unknown_name_is_an_error() {
        assert_eq!(with("${MISSING}/x"), Err("MISSING".to_string()));
        assert_eq!(with("$MISSING"), Err("MISSING".to_string()));
    }
}
