//! The one file that imports serde-saphyr. YAML text becomes a tree of [`Node`]s that remember
//! where they stand, so that every later check can point at a line and column. We read a tree
//! rather than derive the pipeline structs directly because derived structs stop at the first
//! error, and `pipe validate` must report every problem at once.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Options, Spanned};

use super::Pos;

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
    /// A number as written (`3.10`, `0755`): in `env` and `matrix` it is text to the user, and
    /// YAML would turn `3.10` into 3.1.
    pub written: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; duplicates are kept so that the checker can report them.
    Map(Vec<(Node, Node)>),
}

impl Kind {
    /// How a user would call this kind of value in an error message.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "nothing (null)",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error or a breached parse budget.
#[derive(Debug)]
pub struct SyntaxError {
    pub pos: Option<Pos>,
    pub message: String,
}

/// Nesting deeper than this is hostile or a mistake; a pipeline needs about six levels.
const MAX_DEPTH: usize = 64;
/// Bounds the work and memory an alias bomb can cause: a 2,000-job pipeline is about 60,000
/// parser events, and `<<: *defaults` in each of its jobs replays about 20,000.
const MAX_EVENTS: usize = 500_000;
const MAX_REPLAYED_EVENTS: usize = 200_000;

/// serde-saphyr's options as pipe reads any YAML: YAML 1.1 reads `y`, `on` and `no` as
/// booleans (the Norway problem in a CI file), and the limits stop alias bombs.
fn options() -> Options {
    let mut options = Options::default();
    options.strict_booleans = true;
    if let Some(budget) = options.budget.as_mut() {
        budget.max_depth = MAX_DEPTH;
        budget.max_events = MAX_EVENTS;
        // One `defaults` anchor merged into every job is the normal use; the limits on events
        // are what stop alias bombs.
        budget.enforce_alias_anchor_ratio = false;
    }
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options
}

pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut options = options();
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    match serde_saphyr::from_str_with_options::<Option<Spanned<Kind>>>(text, options) {
        Ok(Some(root)) => {
            let mut root = node(root);
            keep_written_numbers(&mut root, &text.lines().collect::<Vec<_>>());
            Ok(root)
        }
        Ok(None) => Ok(Node {
            pos: Pos::new(1, 1),
            kind: Kind::Null,
            written: None,
        }),
        Err(err) => Err(syntax_error(err)),
    }
}

/// Typed values straight from YAML text, read as a pipeline is (for files that are no pipeline:
/// the agent's configuration); stops at the first error.
pub fn typed<T: de::DeserializeOwned>(text: &str) -> Result<T, SyntaxError> {
    serde_saphyr::from_str_with_options(text, options()).map_err(syntax_error)
}

fn syntax_error(err: serde_saphyr::Error) -> SyntaxError {
    SyntaxError {
        pos: err
            .location()
            .map(|l| Pos::new(l.line() as u32, l.column() as u32)),
        message: first_line(&err.to_string()),
    }
}

/// serde-saphyr's message carries its own snippet and position; we render ours, so keep the
/// sentence only, in words for a pipeline's author.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or("invalid YAML").trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // "line 2 column 2: tabs disallowed …": the position is shown by the renderer.
    let line = match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
        _ => line,
    };
    if line.starts_with("budget breached: Depth") || line.contains("recursion limit") {
        return format!(
            "the document nests deeper than {MAX_DEPTH} levels, far deeper than a pipeline does"
        );
    }
    if line.starts_with("budget breached") || line.contains("replay limit") {
        return format!(
            "the document expands beyond pipe's limits ({MAX_EVENTS} values, {MAX_REPLAYED_EVENTS} repeated through aliases): aliases that multiply, or a file that is not a pipeline"
        );
    }
    if line.starts_with("multiple YAML documents detected") {
        return "a pipeline file holds one YAML document, and a `---` here starts another".into();
    }
    match line.find(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

fn node(spanned: Spanned<Kind>) -> Node {
    // Where the value is written: for a value reached through an alias (`<<: *defaults`), the
    // anchor's definition, which is where a mistake in it is fixed.
    let loc = spanned.defined;
    Node {
        pos: Pos::new(loc.line() as u32, loc.column() as u32),
        kind: spanned.value,
        written: None,
    }
}

/// Reads each number's text back from the file at its position. A number reached through an
/// alias points at the alias, whose text is no number: it keeps YAML's reading.
fn keep_written_numbers(node: &mut Node, lines: &[&str]) {
    match &mut node.kind {
        Kind::Int(_) | Kind::Float(_) => {
            let token: String = lines
                .get(node.pos.line.saturating_sub(1) as usize)
                .into_iter()
                .flat_map(|l| l.chars().skip(node.pos.col.saturating_sub(1) as usize))
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
                .collect();
            if token.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))
                && token.contains(|c: char| c.is_ascii_digit())
            {
                node.written = Some(token);
            }
        }
        Kind::Seq(items) => items
            .iter_mut()
            .for_each(|n| keep_written_numbers(n, lines)),
        Kind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            keep_written_numbers(k, lines);
            keep_written_numbers(v, lines);
        }),
        _ => {}
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(i64::try_from(v)
            .map(Kind::Int)
            .unwrap_or(Kind::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Kind, E> {
        Ok(i64::try_from(v)
            .map(Kind::Int)
            .unwrap_or(Kind::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Kind, E> {
        Ok(i64::try_from(v)
            .map(Kind::Int)
            .unwrap_or(Kind::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Kind>>()? {
            items.push(node(item));
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Kind>>()? {
            let value = map.next_value::<Spanned<Kind>>()?;
            entries.push((node(key), node(value)));
        }
        Ok(Kind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_duplicates() {
        let root = parse("a: 1\nb:\n  - x\n  - y\na: 2\n").unwrap();
        let Kind::Map(entries) = root.kind else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].0.pos, Pos::new(5, 1));
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!("not a seq")
        };
        assert_eq!(items[1].pos, Pos::new(4, 5));
        assert_eq!(items[1].kind, Kind::Str("y".into()));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.is_some(), "{err:?}");
    }

    #[test]
    fn alias_bomb_fails_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&text).is_err());
    }

    #[test]
    fn deep_nesting_fails() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(&text).is_err());
    }
}
