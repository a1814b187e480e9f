//! A job's `reports:`: SARIF 2.1.0 files that tools running in the job (Trivy, Grype, Semgrep…)
//! write into its workspace, read by pipe after the job and counted with the built-in scanners'
//! findings.
//!
//! ```yaml
//! reports:
//!   sarif: [trivy.sarif, "semgrep/*.sarif"]
//! ```

use super::{list, mapping, non_empty_string, Problems, ARTIFACT_HINT};
use crate::pipeline::artifact::ArtifactPath;
use crate::pipeline::yaml::Node;

/// The report paths as written (`$VAR` still in them), each checked on its own; they are
/// expanded per matrix expansion as artifact paths are.
pub(in crate::pipeline) fn sarif_paths<'a>(
    node: &'a Node,
    probs: &mut Problems,
) -> Vec<(String, &'a Node)> {
    let Some(entries) = mapping(node, "`reports`", probs) else {
        return vec![];
    };
    let mut out = Vec::new();
    for (k, v) in &entries {
        if k.as_str() != "sarif" {
            probs
                .at(k.node, format!("unknown key `{}` in `reports`", k.as_str()))
                .hint = Some("`reports` takes `sarif`: a list of SARIF 2.1.0 files".into());
            continue;
        }
        let Some(items) = list(v, "`sarif`", probs) else {
            continue;
        };
        for item in items {
            let Some(path) = non_empty_string(item, "a report path", probs) else {
                continue;
            };
            match ArtifactPath::parse(&path) {
                Ok(_) => out.push((path, item)),
                Err(why) => {
                    probs
                        .at(item, why.replacen("artifact path", "report", 1))
                        .hint = Some(ARTIFACT_HINT.into());
                }
            }
        }
    }
    out
}
