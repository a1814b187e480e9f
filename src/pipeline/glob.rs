//! Globs over `/`-separated names (artifact paths, branch names, changed files): `*`, `?` and
//! `[…]` stop at `/`, `**` crosses it. The one file that imports globset.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    matcher: GlobMatcher,
}

impl Glob {
    /// The glob, or why it is not one (globset's words for it).
    pub fn new(text: &str) -> Result<Glob, String> {
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Glob {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_match(&self, name: impl AsRef<Path>) -> bool {
        self.matcher.is_match(name)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_stops_at_a_slash_and_two_cross_it() {
        let one = Glob::new("release/*").unwrap();
        assert!(one.is_match("release/1.2"));
        assert!(!one.is_match("release/1.2/hotfix"));
        assert!(Glob::new("src/**").unwrap().is_match("src/a/b.rs"));
        assert!(Glob::new("**/*.md").unwrap().is_match("README.md"));
        assert!(Glob::new("src/[").is_err());
    }
}
