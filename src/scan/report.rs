//! Renderings of findings for people (compiler-style lines) and machines (JSON lines).

use std::io::{self, Write};

use super::{Counts, Finding};
use crate::style;

/// Version of the JSON-lines record; bumped on incompatible changes.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// `path:line:col: severity rule-id: message`, then the redacted preview and the fix,
/// indented, then a one-line count summary. The location prefix is the format editors and
/// terminals turn into links. `color`: severities in their colours.
pub fn human(findings: &[Finding], out: &mut dyn Write, color: bool) -> io::Result<()> {
    for f in findings {
        writeln!(
            out,
            "{}:{}:{}: {} {}: {}",
            f.path.display(),
            f.line,
            f.column,
            style::paint(color, style::severity_tone(f.severity), f.severity.as_str()),
            f.rule_id,
            f.message
        )?;
        writeln!(out, "    {}", f.preview)?;
        writeln!(out, "    fix: {}", f.fix)?;
    }
    writeln!(out, "{}", summary(&Counts::from_findings(findings)))
}

/// "no findings" or "3 findings: 1 critical, 2 high, 0 medium, 0 low".
pub fn summary(counts: &Counts) -> String {
    match counts.total() {
        0 => "no findings".to_string(),
        total => format!(
            "{total} finding{}: {} critical, {} high, {} medium, {} low",
            if total == 1 { "" } else { "s" },
            counts.critical,
            counts.high,
            counts.medium,
            counts.low
        ),
    }
}

#[derive(serde::Serialize)]
struct Record<'a> {
    schema: u32,
    #[serde(flatten)]
    finding: &'a Finding,
}

/// One JSON object per finding and line, each with `"schema": 1`.
pub fn json_lines(findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    for finding in findings {
        let record = Record {
            schema: JSON_SCHEMA_VERSION,
            finding,
        };
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
