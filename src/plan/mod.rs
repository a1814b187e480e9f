//! A checked [`Pipeline`] → an immutable [`Plan`]: the jobs to run, the edges between them and
//! why each exists, a topological order and the critical path. The only user of petgraph.

use std::collections::HashMap;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::pipeline::{Job, Pipeline, Problem};

mod select;

pub use select::{LeftOut, Refs, Stages};

/// Why one job waits for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Why {
    /// The job lists the other in `needs`.
    Needs,
    /// The job has no `needs`, so it waits for every job of every earlier stage.
    Stage,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub stages: Vec<String>,
    /// Jobs in file order; indices into this are the jobs' ids everywhere downstream.
    pub jobs: Vec<Job>,
    /// For each job: the jobs it waits for, with why.
    pub deps: Vec<Vec<(usize, Why)>>,
    /// For each job: what it needs that already finished in an earlier invocation.
    pub prior: Vec<Vec<Prior>>,
    /// For each job: a name safe for paths and Docker objects, the same in every phase of a run.
    pub slugs: Vec<String>,
    /// For each job: the jobs that wait for it.
    pub dependents: Vec<Vec<usize>>,
    /// Jobs in an order where each comes after everything it waits for.
    pub order: Vec<usize>,
    /// The longest chain of jobs (counted in jobs), first to last.
    pub critical_path: Vec<usize>,
    /// For each job: the length of the longest chain from it to the end, itself included.
    /// The scheduler starts the most-waited-on work first when the concurrency limit bites.
    pub tail: Vec<usize>,
    /// Jobs the selection would have run that `only:` left out, in file order: not part of
    /// the run, but reported with it.
    pub left_out: Vec<LeftOut>,
}

/// Which part of a pipeline a plan covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Every job (for validating, graphs, lists).
    All,
    /// The jobs before the release gate: what `pipe run` runs.
    Main,
    /// The gated jobs, run later by `pipe release`.
    Release,
}

/// What a plan is of: a phase, minus jobs already done in an earlier invocation, narrowed to
/// `jobs` (job or matrix base names; empty = all) and `stages`, and what those need; then
/// without the jobs `only:` leaves out on `refs`.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    pub phase: Phase,
    pub jobs: &'a [String],
    pub stages: Stages<'a>,
    /// The run's branch and changed files; `None`: `only:` is not judged (every job is
    /// planned, as for validating, graphs and lists).
    pub refs: Option<Refs<'a>>,
    /// Jobs that passed earlier (in the main phase, or before a retry): not run again, their
    /// artifacts handed on.
    pub done: &'a [String],
}

impl Selection<'_> {
    pub fn all() -> Selection<'static> {
        Selection::of(Phase::All)
    }

    /// Every job of `phase`, with `only:` not judged.
    pub fn of(phase: Phase) -> Selection<'static> {
        Selection {
            phase,
            jobs: &[],
            stages: Stages::default(),
            refs: None,
            done: &[],
        }
    }
}

/// A job that finished in an earlier invocation of the same run, which a planned job needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prior {
    pub name: String,
    pub slug: String,
    pub has_artifacts: bool,
}

/// Builds the plan of a selection of a pipeline's jobs. Problems: cycles, and selections that
/// name no job.
pub fn build(pipeline: &Pipeline, selection: Selection) -> Result<Plan, Vec<Problem>> {
    let jobs = &pipeline.jobs;
    let mut graph: DiGraph<usize, Why> = DiGraph::with_capacity(jobs.len(), jobs.len());
    let nodes: Vec<NodeIndex> = (0..jobs.len()).map(|i| graph.add_node(i)).collect();
    let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        by_base.entry(job.base.as_str()).or_default().push(i);
    }
    // What a `needs` entry names: every expansion of a job, or one expansion by its full name.
    let needed = |name: &str| -> Vec<usize> {
        match by_base.get(name) {
            Some(all) => all.clone(),
            None => jobs
                .iter()
                .position(|j| j.name == name)
                .into_iter()
                .collect(),
        }
    };
    // Jobs grouped by stage, so stage edges are built without scanning every pair.
    let mut by_stage: Vec<Vec<usize>> = vec![Vec::new(); pipeline.stages.len()];
    for (i, job) in jobs.iter().enumerate() {
        by_stage[job.stage_index].push(i);
    }
    // Without `needs`, a job waits for every job of every earlier stage: the dependencies grow
    // with the product of the stages' sizes. Past a budget the plan is refused rather than
    // built in unbounded memory.
    let before: Vec<usize> = by_stage
        .iter()
        .scan(0, |sum, stage| {
            let jobs_before = *sum;
            *sum += stage.len();
            Some(jobs_before)
        })
        .collect();
    let stage_edges: usize = jobs
        .iter()
        .filter(|j| j.needs.is_none())
        .map(|j| before[j.stage_index])
        .sum();
    if stage_edges > MAX_STAGE_EDGES {
        return Err(vec![Problem {
            pos: None,
            len: 1,
            message: format!(
                "jobs without `needs` wait for every job of every earlier stage, which makes {stage_edges} dependencies here; pipe plans at most {MAX_STAGE_EDGES}"
            ),
            hint: Some("give the jobs `needs:` lists of what they really wait for".into()),
        }]);
    }
    // Every job's dependencies, in file order. Only `needs` edges go into the graph searched for
    // cycles: a stage edge always leads to a later stage and a `needs` edge never to an earlier
    // one, so no cycle can hold a stage edge, and the graph stays small when stages are wide.
    let mut all_deps: Vec<Vec<(usize, Why)>> = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        match &job.needs {
            Some(needs) => {
                for need in needs {
                    for d in needed(&need.name) {
                        graph.add_edge(nodes[d], nodes[i], Why::Needs);
                        all_deps[i].push((d, Why::Needs));
                    }
                }
            }
            None => all_deps[i].extend(
                by_stage[..job.stage_index]
                    .iter()
                    .flatten()
                    .map(|&d| (d, Why::Stage)),
            ),
        }
    }
    let cycles = cycle_problems(&graph, jobs);
    if !cycles.is_empty() {
        return Err(cycles);
    }
    let select::Chosen { selected, left_out } =
        select::select(pipeline, &all_deps, &by_base, &selection)?;
    let is_left_out = {
        let mut out = vec![false; jobs.len()];
        left_out.iter().for_each(|(i, _)| out[*i] = true);
        out
    };
    let all_slugs = unique_slugs(jobs);
    // Renumber the selected jobs, keeping file order.
    let keep: Vec<usize> = (0..jobs.len()).filter(|i| selected[*i]).collect();
    let new_id: HashMap<usize, usize> = keep.iter().enumerate().map(|(n, &o)| (o, n)).collect();
    let mut deps = vec![Vec::new(); keep.len()];
    let mut dependents = vec![Vec::new(); keep.len()];
    let mut prior = vec![Vec::new(); keep.len()];
    for (t, &to) in keep.iter().enumerate() {
        for &(from, why) in &all_deps[to] {
            match new_id.get(&from) {
                Some(&f) => {
                    deps[t].push((f, why));
                    dependents[f].push(t);
                }
                // Only a stage's wait reaches a left-out job (needing one leaves a job out):
                // the job goes on without it.
                None if is_left_out[from] => {}
                None => prior[t].push(Prior {
                    name: jobs[from].name.clone(),
                    slug: all_slugs[from].clone(),
                    has_artifacts: !jobs[from].artifacts.is_empty(),
                }),
            }
        }
    }
    let order = stable_topological_order(&deps, &dependents);
    let (critical_path, tail) = longest_chain(&order, &deps, &dependents);
    Ok(Plan {
        name: pipeline.name.clone(),
        stages: pipeline.stages.clone(),
        jobs: keep.iter().map(|&i| jobs[i].clone()).collect(),
        deps,
        prior,
        slugs: keep.iter().map(|&i| all_slugs[i].clone()).collect(),
        dependents,
        order,
        critical_path,
        tail,
        left_out: left_out
            .into_iter()
            .map(|(i, reason)| LeftOut {
                name: jobs[i].name.clone(),
                stage: jobs[i].stage.clone(),
                reason,
            })
            .collect(),
    })
}

/// Dependencies through stage order that a plan may hold (each a few dozen bytes).
const MAX_STAGE_EDGES: usize = 2_000_000;

/// Slugs are unique within a run even when two job names differ only in punctuation.
fn unique_slugs(jobs: &[Job]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    jobs.iter()
        .map(|j| {
            let base = crate::workspace::slug(&j.name);
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                base
            } else {
                format!("{base}-{count}")
            }
        })
        .collect()
}

/// One problem per cycle, naming every member in the order of the loop.
fn cycle_problems(graph: &DiGraph<usize, Why>, jobs: &[Job]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for mut scc in tarjan_scc(graph) {
        // A job that needs itself is reported by the checker, in those words.
        if scc.len() < 2 {
            continue;
        }
        scc.sort_by_key(|n| graph[*n]);
        let members: Vec<&str> = {
            let mut bases: Vec<&str> = scc.iter().map(|n| jobs[graph[*n]].base.as_str()).collect();
            bases.dedup();
            bases
        };
        let loop_path = walk_cycle(graph, &scc, jobs);
        let first = &jobs[graph[scc[0]]];
        // Point at the first job's `needs` entry that leads into the cycle.
        let pos = first
            .needs
            .iter()
            .flatten()
            .find(|n| members.contains(&n.name.as_str()))
            .map(|n| (n.pos, n.name.chars().count()))
            .unwrap_or((first.pos, first.base.chars().count()));
        problems.push(
            Problem::at(
                pos.0,
                pos.1,
                format!("jobs {} form a cycle: {loop_path}", quoted(&members)),
            )
            .hint("remove one of these `needs` entries to break the cycle"),
        );
    }
    problems
}

/// `a → b → c → a`, following `needs` from the first member around the loop.
fn walk_cycle(graph: &DiGraph<usize, Why>, scc: &[NodeIndex], jobs: &[Job]) -> String {
    let start = scc[0];
    let mut path = vec![start];
    let mut current = start;
    // Follow "needs" (incoming edges) inside the component until we are back at the start.
    loop {
        let next = graph
            .neighbors_directed(current, Direction::Incoming)
            .filter(|n| scc.contains(n))
            .min_by_key(|n| {
                if *n == start {
                    0
                } else if path.contains(n) {
                    2
                } else {
                    1
                }
            });
        match next {
            Some(n) if n == start || path.contains(&n) => {
                path.push(n);
                break;
            }
            Some(n) => {
                path.push(n);
                current = n;
            }
            None => break,
        }
    }
    path.iter()
        .map(|n| jobs[graph[*n]].name.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// At most `MAX_NAMED` names: a knot of a thousand jobs is not read one by one.
fn quoted(names: &[&str]) -> String {
    const MAX_NAMED: usize = 8;
    let shown = names
        .iter()
        .take(MAX_NAMED)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().checked_sub(MAX_NAMED) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

/// A topological order that keeps file order wherever the edges allow, so that lists and graphs
/// read like the file.
fn stable_topological_order(deps: &[Vec<(usize, Why)>], dependents: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..deps.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

/// A pass over the topological order: the longest chain ending at each job, then walked back.
fn longest_chain(
    order: &[usize],
    deps: &[Vec<(usize, Why)>],
    dependents: &[Vec<usize>],
) -> (Vec<usize>, Vec<usize>) {
    let n = deps.len();
    let mut depth = vec![0usize; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    for &j in order {
        // Ties go to the job earliest in the file, so the path is stable.
        let best = deps[j]
            .iter()
            .map(|(d, _)| *d)
            .max_by_key(|d| (depth[*d], std::cmp::Reverse(*d)));
        depth[j] = 1 + best.map_or(0, |d| depth[d]);
        via[j] = best;
    }
    let mut tail = vec![0usize; n];
    for &j in order.iter().rev() {
        tail[j] = 1 + dependents[j].iter().map(|d| tail[*d]).max().unwrap_or(0);
    }
    let Some(end) = (0..n).max_by_key(|j| (depth[*j], std::cmp::Reverse(*j))) else {
        return (Vec::new(), tail);
    };
    let mut path = vec![end];
    while let Some(prev) = via[*path.last().expect("not empty")] {
        path.push(prev);
    }
    path.reverse();
    (path, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Result<Plan, Vec<Problem>> {
        let pipeline = crate::pipeline::parse(yaml, "test").expect("valid pipeline");
        build(&pipeline, Selection::all())
    }

    fn names(plan: &Plan, ids: &[usize]) -> Vec<String> {
        ids.iter().map(|&i| plan.jobs[i].name.clone()).collect()
    }

    #[test]
    fn stage_order_and_needs_make_edges() {
        let p = plan(
            "jobs:\n  a: {stage: build, script: [x]}\n  b: {stage: build, script: [x]}\n  c: {stage: test, script: [x]}\n  d: {stage: test, needs: [a], script: [x]}\n",
        )
        .unwrap();
        assert_eq!(p.deps[2], vec![(0, Why::Stage), (1, Why::Stage)]);
        assert_eq!(p.deps[3], vec![(0, Why::Needs)]);
    }

    #[test]
    fn stage_order_past_the_budget_is_refused_not_built() {
        // 1,500 jobs of `test` each waiting for 1,500 of `build`: 2.25 million dependencies.
        let mut yaml = String::from("jobs:\n");
        for stage in ["build", "test"] {
            for i in 0..1500 {
                yaml.push_str(&format!("  {stage}{i}: {{stage: {stage}, script: [x]}}\n"));
            }
        }
        let Err(problems) = plan(&yaml) else {
            panic!("a plan past the budget")
        };
        assert!(
            problems[0].message.contains("2250000 dependencies here"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_large_knot_names_its_first_members_and_counts_the_rest() {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        assert_eq!(
            quoted(&names),
            "`a`, `b`, `c`, `d`, `e`, `f`, `g`, `h` and 2 more"
        );
        assert_eq!(quoted(&names[..2]), "`a`, `b`");
    }

    #[test]
    fn cycle_names_every_member() {
        let problems = plan(
            "jobs:\n  a: {needs: [c], script: [x]}\n  b: {needs: [a], script: [x]}\n  c: {needs: [b], script: [x]}\n  d: {script: [x]}\n",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        let msg = &problems[0].message;
        assert!(msg.contains("`a`, `b`, `c`"), "{msg}");
        assert!(msg.contains("a → c → b → a"), "{msg}");
        assert_eq!(problems[0].pos, Some(crate::pipeline::Pos::new(2, 15)));
    }

    #[test]
    fn critical_path_is_the_longest_chain() {
        let p = plan(
            "jobs:\n  a: {needs: [], script: [x]}\n  b: {needs: [a], script: [x]}\n  c: {needs: [b], script: [x]}\n  d: {needs: [], script: [x]}\n  e: {needs: [d, c], script: [x]}\n",
        )
        .unwrap();
        assert_eq!(names(&p, &p.critical_path), ["a", "b", "c", "e"]);
        assert_eq!(p.tail[0], 4);
        assert_eq!(p.tail[3], 2);
    }

    #[test]
    fn release_jobs_are_planned_apart_with_what_they_need_as_prior() {
        let pipeline = crate::pipeline::parse(
            "jobs:\n  build: {stage: build, artifacts: [out], script: [x]}\n  deploy: {stage: deploy, script: [x]}\n  publish: {stage: release, needs: [build], script: [x]}\n",
            "t",
        )
        .unwrap();
        let main = build(&pipeline, Selection::of(Phase::Main)).unwrap();
        assert_eq!(names(&main, &main.order), ["build", "deploy"]);
        let release = build(&pipeline, Selection::of(Phase::Release)).unwrap();
        assert_eq!(names(&release, &release.order), ["publish"]);
        assert_eq!(
            release.prior[0],
            [Prior {
                name: "build".into(),
                slug: "build".into(),
                has_artifacts: true
            }]
        );
    }

    #[test]
    fn selecting_a_job_brings_what_it_needs() {
        let pipeline = crate::pipeline::parse(
            "jobs:\n  a: {needs: [], script: [x]}\n  b: {needs: [a], script: [x]}\n  c: {needs: [], script: [x]}\n",
            "t",
        )
        .unwrap();
        let p = build(
            &pipeline,
            Selection {
                jobs: &["b".into()],
                ..Selection::all()
            },
        )
        .unwrap();
        assert_eq!(names(&p, &p.order), ["a", "b"]);
        let err = build(
            &pipeline,
            Selection {
                jobs: &["bb".into()],
                ..Selection::all()
            },
        )
        .unwrap_err();
        assert_eq!(err[0].hint.as_deref(), Some("did you mean `b`?"));
    }
}
