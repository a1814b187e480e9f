//! Renders pipeline problems once, at the edge: file:line:col, the offending text underlined,
//! and a hint, through miette.

use std::fmt::Write as _;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

use crate::pipeline::{Invalid, Problem};

pub fn render(invalid: &Invalid, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let name = invalid.file.display().to_string();
    let mut out = String::new();
    for problem in &invalid.problems {
        let report = miette::Report::new(diagnostic(problem, &invalid.source))
            .with_source_code(NamedSource::new(name.clone(), invalid.source.clone()));
        let _ = handler.render_report(&mut out, report.as_ref());
        out.push('\n');
    }
    let n = invalid.problems.len();
    let _ = writeln!(
        out,
        "{name}: {n} problem{} found",
        if n == 1 { "" } else { "s" }
    );
    out
}

fn diagnostic(problem: &Problem, source: &str) -> MietteDiagnostic {
    let mut d = MietteDiagnostic::new(problem.message.clone());
    if let Some(hint) = &problem.hint {
        d = d.with_help(hint.clone());
    }
    if let Some(pos) = problem.pos {
        if let Some((offset, len)) = byte_span(source, pos.line, pos.col, problem.len) {
            d = d.with_label(LabeledSpan::at(offset..offset + len, "here"));
        }
    }
    d
}

/// Byte range of `len` characters starting at a 1-based line and character column.
fn byte_span(source: &str, line: u32, col: u32, len: usize) -> Option<(usize, usize)> {
    let line_start: usize = source
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let text = source.get(line_start..)?.split('\n').next()?;
    let mut chars = text.char_indices().skip(col.saturating_sub(1) as usize);
    let (start, _) = chars.next().unwrap_or((text.len(), ' '));
    let end = text[start..]
        .char_indices()
        .nth(len)
        .map_or(text.len(), |(i, _)| start + i);
    Some((
        line_start + start,
        (end - start).max(usize::from(start < text.len())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_characters_not_bytes() {
        let src = "a: 1\nnäme: x\n";
        assert_eq!(byte_span(src, 2, 7, 1), Some((12, 1)));
        assert_eq!(byte_span(src, 2, 1, 4), Some((5, 5)));
    }
}
