//! Which jobs a plan holds: the phase's jobs, narrowed to the jobs and stages asked for and
//! what those need, never a deploy or release job when the request rules them out, minus what
//! `only:` leaves out on the run's branch and changed files (and what needs that).

use std::collections::HashMap;

use super::{Phase, Selection, Why};
use crate::pipeline::{suggest, Job, Pipeline, Problem};

/// Which stages a request runs. The default: every stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stages<'a> {
    /// Only jobs of these stages, and what they need; empty: every stage.
    pub only: &'a [String],
    /// Only jobs of this stage and the stages before it.
    pub until: Option<&'a str>,
    /// Never a deploy or release job (one of the `deploy` stage, of the release stage or
    /// after, or with an `environment`): the git hook's guarantee, whatever else it asks.
    pub no_deploy: bool,
}

/// What `only:` is judged against: the run's branch and the files it changed, project-relative
/// and `/`-separated (`None`: git cannot tell, and `changes` keeps the job).
#[derive(Debug, Clone, Copy, Default)]
pub struct Refs<'a> {
    pub branch: Option<&'a str>,
    pub changed_files: Option<&'a [String]>,
}

/// A job the selection would have run but `only:` left out (itself, or a job it needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub name: String,
    pub stage: String,
    pub reason: String,
}

pub(super) struct Chosen {
    pub selected: Vec<bool>,
    /// Indices of the jobs left out, with why, in file order.
    pub left_out: Vec<(usize, String)>,
}

/// A job that deploys or releases, which a request with `no_deploy` never runs.
fn deploys(job: &Job) -> bool {
    job.deploys()
}

/// The selected jobs: those asked for (by name or stage) and everything they wait for, then
/// without what `only:` leaves out. A job is left out with a job it lists in `needs`; one that
/// only waits for a stage goes on without the stage's left-out jobs.
pub(super) fn select(
    pipeline: &Pipeline,
    all_deps: &[Vec<(usize, Why)>],
    by_base: &HashMap<&str, Vec<usize>>,
    selection: &Selection,
) -> Result<Chosen, Vec<Problem>> {
    let jobs = &pipeline.jobs;
    let stages = selection.stages;
    let mut problems = Vec::new();
    let included: Vec<bool> = jobs
        .iter()
        .map(|j| {
            let in_phase = match selection.phase {
                Phase::All => true,
                Phase::Main => !j.gated,
                Phase::Release => j.gated,
            };
            in_phase && !selection.done.contains(&j.name)
        })
        .collect();
    for name in stages.only.iter().map(String::as_str).chain(stages.until) {
        if !pipeline.stages.iter().any(|s| s == name) {
            problems.push(unknown_stage(name, &pipeline.stages));
        }
    }
    for name in stages.only {
        let of_stage: Vec<&Job> = jobs.iter().filter(|j| j.stage == *name).collect();
        if selection.phase == Phase::Main
            && !of_stage.is_empty()
            && of_stage.iter().all(|j| j.gated)
        {
            problems.push(unpositioned(
                format!("stage `{name}` is behind the release gate"),
                "`pipe run` stops at the gate; `pipe release RUN` runs the release jobs",
            ));
        } else if stages.no_deploy && !of_stage.is_empty() && of_stage.iter().all(|j| deploys(j)) {
            problems.push(unpositioned(
                format!("stage `{name}` deploys, and this run never deploys or releases"),
                "run it with `pipe run`, outside the hook",
            ));
        }
    }
    let until = stages
        .until
        .and_then(|u| pipeline.stages.iter().position(|s| s == u));
    let in_stages = |j: &Job| {
        (stages.only.is_empty() || stages.only.contains(&j.stage))
            && until.is_none_or(|u| j.stage_index <= u)
    };
    // Whether a job waits, directly or not, for a deploy job: only asked-for jobs may.
    let mut reaches_deploy: Vec<Option<bool>> = vec![None; jobs.len()];
    let mut waits_for_deploy =
        |i: usize| stages.no_deploy && reaches(i, jobs, all_deps, &included, &mut reaches_deploy);
    let named = !selection.jobs.is_empty();
    let explicit = named || !stages.only.is_empty();
    let mut roots = Vec::new();
    if named {
        for name in selection.jobs {
            let found: Vec<usize> = match jobs.iter().position(|j| j.name == *name) {
                Some(i) => vec![i],
                None => by_base.get(name.as_str()).cloned().unwrap_or_default(),
            };
            let Some(&first) = found.first() else {
                let hint = suggest(name, jobs.iter().map(|j| j.name.as_str()))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "`pipe list` shows the jobs".into());
                problems.push(unpositioned(format!("no job named `{name}`"), hint));
                continue;
            };
            let at = |message: String, hint: &str| {
                Problem::at(jobs[first].pos, jobs[first].base.chars().count(), message).hint(hint)
            };
            if found.iter().all(|&r| !included[r] && jobs[r].gated) {
                problems.push(at(
                    format!("job `{name}` is behind the release gate"),
                    "`pipe run` stops at the gate; `pipe release RUN` runs the release jobs",
                ));
            } else if !found.iter().any(|&r| in_stages(&jobs[r])) {
                problems.push(at(
                    format!(
                        "job `{name}` is of stage `{}`, which the stages asked for leave out",
                        jobs[first].stage
                    ),
                    "ask for its stage too, or leave the job out",
                ));
            } else if stages.no_deploy && found.iter().any(|&r| deploys(&jobs[r])) {
                problems.push(at(
                    format!("job `{name}` deploys or releases, and this run never does"),
                    "run it with `pipe run`, outside the hook",
                ));
            }
            roots.extend(found.into_iter().filter(|&r| in_stages(&jobs[r])));
        }
    } else {
        roots.extend((0..jobs.len()).filter(|&i| {
            included[i] && in_stages(&jobs[i]) && !(stages.no_deploy && deploys(&jobs[i]))
        }));
    }
    // Jobs chosen by a range (everything, `until`) that would wait for a deploy job are not
    // run; jobs asked for by name or stage are refused, saying which deploy job they need.
    let mut refused = Vec::new();
    roots.retain(|&r| {
        let wait = waits_for_deploy(r);
        if wait && explicit {
            refused.push(r);
        }
        !wait
    });
    for r in refused {
        let via = deploy_dep(r, jobs, all_deps, &included);
        problems.push(
            Problem::at(
                jobs[r].pos,
                jobs[r].base.chars().count(),
                format!(
                    "job `{}` waits for `{via}`, which deploys, and this run never deploys or releases",
                    jobs[r].name
                ),
            )
            .hint("run it with `pipe run`, outside the hook"),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut selected = vec![false; jobs.len()];
    let mut stack = roots;
    while let Some(i) = stack.pop() {
        if included[i] && !std::mem::replace(&mut selected[i], true) {
            stack.extend(all_deps[i].iter().map(|&(d, _)| d));
        }
    }
    let left_out = match selection.refs {
        Some(refs) => leave_out(jobs, all_deps, &mut selected, refs),
        None => Vec::new(),
    };
    Ok(Chosen { selected, left_out })
}

/// Takes out of `selected` the jobs `only:` leaves out and the jobs that need them. Every job
/// is judged, so that a release job needing a job before the gate that is left out is left
/// out too.
fn leave_out(
    jobs: &[Job],
    all_deps: &[Vec<(usize, Why)>],
    selected: &mut [bool],
    refs: Refs,
) -> Vec<(usize, String)> {
    let mut reason: Vec<Option<String>> = jobs
        .iter()
        .map(|j| j.only.as_ref()?.leaves_out(refs.branch, refs.changed_files))
        .collect();
    // `needs` never points to a later stage, so stage by stage, then file order within a
    // stage repeated until nothing changes, reaches every job that needs a left-out one.
    let mut changed = reason.iter().any(Option::is_some);
    while changed {
        changed = false;
        for i in 0..jobs.len() {
            if reason[i].is_some() {
                continue;
            }
            let gone = all_deps[i]
                .iter()
                .find(|&&(d, why)| why == Why::Needs && reason[d].is_some());
            if let Some(&(d, _)) = gone {
                reason[i] = Some(format!("needs `{}`, which is left out", jobs[d].name));
                changed = true;
            }
        }
    }
    reason
        .into_iter()
        .enumerate()
        .filter_map(|(i, why)| {
            let why = why.filter(|_| selected[i])?;
            selected[i] = false;
            Some((i, why))
        })
        .collect()
}

/// Whether job `i` waits, directly or through others of the phase, for a deploy job.
fn reaches(
    i: usize,
    jobs: &[Job],
    all_deps: &[Vec<(usize, Why)>],
    included: &[bool],
    memo: &mut [Option<bool>],
) -> bool {
    if let Some(known) = memo[i] {
        return known;
    }
    // Dependencies form no cycle (checked before), so the recursion ends; it is as deep as
    // the longest chain of jobs.
    let found = all_deps[i].iter().any(|&(d, _)| {
        included[d] && (deploys(&jobs[d]) || reaches(d, jobs, all_deps, included, memo))
    });
    memo[i] = Some(found);
    found
}

/// The first deploy job job `i` waits for, directly or not.
fn deploy_dep<'a>(
    i: usize,
    jobs: &'a [Job],
    all_deps: &[Vec<(usize, Why)>],
    included: &[bool],
) -> &'a str {
    let mut seen = vec![false; jobs.len()];
    let mut stack = vec![i];
    while let Some(j) = stack.pop() {
        for &(d, _) in &all_deps[j] {
            if !included[d] || std::mem::replace(&mut seen[d], true) {
                continue;
            }
            if deploys(&jobs[d]) {
                return &jobs[d].name;
            }
            stack.push(d);
        }
    }
    &jobs[i].name
}

fn unknown_stage(name: &str, stages: &[String]) -> Problem {
    let hint = match suggest(name, stages.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("the stages are: {}", stages.join(", ")),
    };
    unpositioned(format!("no stage named `{name}`"), hint)
}

fn unpositioned(message: String, hint: impl Into<String>) -> Problem {
    Problem {
        pos: None,
        len: 1,
        message,
        hint: Some(hint.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{build, Plan};

    const PIPELINE: &str = "jobs:
  compile: {stage: build, artifacts: [out], script: [x]}
  lint: {stage: build, script: [x]}
  unit: {stage: test, needs: [compile], script: [x]}
  e2e: {stage: test, script: [x]}
  staging: {stage: deploy, needs: [unit], script: [x]}
  ship: {stage: release, script: [x]}
";

    fn plan(yaml: &str, selection: Selection) -> Result<Plan, Vec<Problem>> {
        build(&crate::pipeline::parse(yaml, "t").unwrap(), selection)
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.order
            .iter()
            .map(|&i| plan.jobs[i].name.as_str())
            .collect()
    }

    fn stages(only: &[String], until: Option<&str>, no_deploy: bool) -> Selection<'static> {
        // Leaked: a few bytes per test, so that the selection can borrow for 'static.
        let only: &'static [String] = Box::leak(only.to_vec().into_boxed_slice());
        let until = until.map(|u| &*Box::leak(u.to_string().into_boxed_str()));
        Selection {
            stages: Stages {
                only,
                until,
                no_deploy,
            },
            ..Selection::of(Phase::Main)
        }
    }

    #[test]
    fn a_stage_brings_what_its_jobs_wait_for() {
        // `unit` needs `compile` only; `e2e` has no `needs`, so it waits for all of `build`.
        let p = plan(PIPELINE, stages(&["test".into()], None, false)).unwrap();
        assert_eq!(names(&p), ["compile", "lint", "unit", "e2e"]);
        let only_unit = "jobs:\n  compile: {stage: build, script: [x]}\n  lint: {stage: build, script: [x]}\n  unit: {stage: test, needs: [compile], script: [x]}\n";
        let p = plan(only_unit, stages(&["test".into()], None, false)).unwrap();
        assert_eq!(names(&p), ["compile", "unit"], "lint is not needed");
        let p = plan(
            PIPELINE,
            stages(&["build".into(), "deploy".into()], None, false),
        )
        .unwrap();
        assert_eq!(names(&p), ["compile", "lint", "unit", "staging"]);
    }

    #[test]
    fn until_takes_every_stage_up_to_it() {
        let p = plan(PIPELINE, stages(&[], Some("test"), false)).unwrap();
        assert_eq!(names(&p), ["compile", "lint", "unit", "e2e"]);
        let p = plan(PIPELINE, stages(&[], Some("build"), false)).unwrap();
        assert_eq!(names(&p), ["compile", "lint"]);
        // Both: the listed stages, no later than `until`.
        let p = plan(
            PIPELINE,
            stages(&["build".into(), "deploy".into()], Some("test"), false),
        )
        .unwrap();
        assert_eq!(names(&p), ["compile", "lint"]);
    }

    #[test]
    fn unknown_and_gated_stages_are_problems() {
        let err = plan(PIPELINE, stages(&["tset".into()], None, false)).unwrap_err();
        assert_eq!(err[0].message, "no stage named `tset`");
        assert_eq!(err[0].hint.as_deref(), Some("did you mean `test`?"));
        let err = plan(PIPELINE, stages(&[], Some("nope"), false)).unwrap_err();
        assert!(err[0]
            .hint
            .as_deref()
            .unwrap()
            .starts_with("the stages are: build, test"));
        let err = plan(PIPELINE, stages(&["release".into()], None, false)).unwrap_err();
        assert!(
            err[0].message.contains("behind the release gate"),
            "{err:?}"
        );
        let err = plan(
            PIPELINE,
            Selection {
                jobs: &["staging".into()],
                ..stages(&[], Some("test"), false)
            },
        )
        .unwrap_err();
        assert!(err[0].message.contains("of stage `deploy`"), "{err:?}");
    }

    #[test]
    fn never_deploying_drops_deploy_jobs_and_refuses_asking_for_them() {
        let with_smoke = format!(
            "stages: [build, test, deploy, smoke, release]\n{}  smoke: {{stage: smoke, script: [x]}}\n  preview: {{stage: test, environment: pr, script: [x]}}\n",
            PIPELINE.replace("stages: [build, test, deploy, release]\n", "")
        );
        let p = plan(&with_smoke, stages(&[], None, true)).unwrap();
        // `smoke` waits for the deploy stage, so it goes too; `preview` deploys.
        assert_eq!(names(&p), ["compile", "lint", "unit", "e2e"]);
        let err = plan(&with_smoke, stages(&["smoke".into()], None, true)).unwrap_err();
        assert_eq!(
            err[0].message,
            "job `smoke` waits for `preview`, which deploys, and this run never deploys or releases"
        );
        let err = plan(&with_smoke, stages(&["deploy".into()], None, true)).unwrap_err();
        assert!(err[0].message.contains("stage `deploy` deploys"), "{err:?}");
    }

    fn on<'a>(branch: Option<&'a str>, changed: Option<&'a [String]>) -> Selection<'a> {
        Selection {
            refs: Some(Refs {
                branch,
                changed_files: changed,
            }),
            ..Selection::of(Phase::Main)
        }
    }

    const ONLY: &str = "jobs:
  compile: {stage: build, script: [x]}
  docs: {stage: build, only: {changes: ['docs/**']}, script: [x]}
  publish-docs: {stage: test, needs: [docs], script: [x]}
  check-docs: {stage: test, needs: [publish-docs], script: [x]}
  unit: {stage: test, script: [x]}
  nightly: {stage: test, only: {branches: [main]}, needs: [], script: [x]}
";

    #[test]
    fn only_leaves_out_a_job_and_what_needs_it_with_the_reason() {
        let changed = vec!["src/lib.rs".to_string()];
        let p = plan(ONLY, on(Some("feature/x"), Some(&changed))).unwrap();
        assert_eq!(names(&p), ["compile", "unit"]);
        let left: Vec<(&str, &str)> = p
            .left_out
            .iter()
            .map(|l| (l.name.as_str(), l.reason.as_str()))
            .collect();
        assert_eq!(
            left,
            [
                (
                    "docs",
                    "only: changes `docs/**` — none of the 1 changed file(s) match"
                ),
                ("publish-docs", "needs `docs`, which is left out"),
                ("check-docs", "needs `publish-docs`, which is left out"),
                (
                    "nightly",
                    "only: branches `main` — the run is on `feature/x`"
                ),
            ]
        );
        // `unit` only waits for the build stage: it runs, without the left-out job.
        let unit = p.jobs.iter().position(|j| j.name == "unit").unwrap();
        assert_eq!(p.deps[unit], [(0, Why::Stage)]);
        assert!(p.prior[unit].is_empty());
    }

    #[test]
    fn only_keeps_jobs_when_it_holds_or_git_cannot_tell() {
        let changed = vec!["docs/guide.md".to_string()];
        let p = plan(ONLY, on(Some("main"), Some(&changed))).unwrap();
        assert!(p.left_out.is_empty(), "{:?}", p.left_out);
        assert_eq!(p.jobs.len(), 6);
        let p = plan(ONLY, on(Some("main"), None)).unwrap();
        assert!(p.left_out.is_empty(), "unknown changes keep `docs`");
        // Without refs (validate, graph, list) nothing is judged.
        assert_eq!(plan(ONLY, Selection::all()).unwrap().jobs.len(), 6);
    }

    #[test]
    fn only_reports_just_the_jobs_the_selection_would_have_run() {
        let p = plan(
            ONLY,
            Selection {
                jobs: &["unit".into()],
                ..on(Some("dev"), Some(&[]))
            },
        )
        .unwrap();
        assert_eq!(names(&p), ["compile", "unit"]);
        assert_eq!(p.left_out.len(), 1, "{:?}", p.left_out);
        assert_eq!(p.left_out[0].name, "docs");
    }
}
