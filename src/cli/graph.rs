//! `pipe graph`: the DAG as text, Graphviz dot or Mermaid, with the critical path marked and
//! every edge labelled with why it exists.

use std::path::PathBuf;

use super::{exit, load_plan, print, CliError};
use crate::plan::{Plan, Why};

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = super::FILE_HELP)]
    file: Option<PathBuf>,
    /// How to draw the graph
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// Stages and jobs as indented text, the critical path marked
    Text,
    /// Graphviz, for `dot -Tsvg`
    Dot,
    /// A Mermaid flowchart, for Markdown pages
    Mermaid,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let (_, _, plan) = load_plan(args.file.as_deref(), crate::plan::Selection::all())?;
    let text = match args.format {
        Format::Text => text(&plan),
        Format::Dot => dot(&plan),
        Format::Mermaid => mermaid(&plan),
    };
    print(&text)?;
    Ok(exit::OK)
}

fn why(w: Why) -> &'static str {
    match w {
        Why::Needs => "needs",
        Why::Stage => "stage order",
    }
}

fn text(plan: &Plan) -> String {
    let critical = |i: usize| plan.critical_path.contains(&i);
    let mut out = String::new();
    for &i in &plan.order {
        let job = &plan.jobs[i];
        let mark = if critical(i) { "*" } else { " " };
        out.push_str(&format!("{mark} {} [{}]\n", job.name, job.stage));
        for (d, w) in &plan.deps[i] {
            out.push_str(&format!("    ← {} ({})\n", plan.jobs[*d].name, why(*w)));
        }
    }
    let path: Vec<&str> = plan
        .critical_path
        .iter()
        .map(|&i| plan.jobs[i].name.as_str())
        .collect();
    out.push_str(&format!(
        "\n* critical path ({} jobs): {}\n",
        path.len(),
        path.join(" → ")
    ));
    out
}

fn on_critical_path(plan: &Plan, from: usize, to: usize) -> bool {
    plan.critical_path
        .windows(2)
        .any(|w| w[0] == from && w[1] == to)
}

fn dot(plan: &Plan) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n",
        q(&plan.name)
    );
    for (i, job) in plan.jobs.iter().enumerate() {
        let style = if plan.critical_path.contains(&i) {
            ", penwidth=2, color=red"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} [label={}{style}];\n",
            q(&job.name),
            q(&format!("{}\n{}", job.name, job.stage))
        ));
    }
    for (i, deps) in plan.deps.iter().enumerate() {
        for (d, w) in deps {
            let mut attrs = format!("label={}", q(why(*w)));
            if *w == Why::Stage {
                attrs.push_str(", style=dashed");
            }
            if on_critical_path(plan, *d, i) {
                attrs.push_str(", penwidth=2, color=red");
            }
            out.push_str(&format!(
                "  {} -> {} [{attrs}];\n",
                q(&plan.jobs[*d].name),
                q(&plan.jobs[i].name)
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// Text inside a quoted Mermaid label, where `"`, `<`, `>` and `&` would be markup.
fn mermaid_text(text: &str) -> String {
    text.replace('&', "#amp;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, job) in plan.jobs.iter().enumerate() {
        out.push_str(&format!(
            "  j{i}[\"{}<br/>{}\"]\n",
            mermaid_text(&job.name),
            mermaid_text(&job.stage)
        ));
    }
    for (i, deps) in plan.deps.iter().enumerate() {
        for (d, w) in deps {
            let arrow = if *w == Why::Stage { "-.->" } else { "-->" };
            out.push_str(&format!("  j{d} {arrow}|{}| j{i}\n", why(*w)));
        }
    }
    if !plan.critical_path.is_empty() {
        let ids: Vec<String> = plan.critical_path.iter().map(|i| format!("j{i}")).collect();
        out.push_str(&format!(
            "  classDef critical stroke:#d00,stroke-width:3px\n  class {} critical\n",
            ids.join(",")
        ));
    }
    out
}
