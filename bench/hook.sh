#!/usr/bin/env bash
# What a hook's run of a commit costs before its job starts, on a repository of 5,000 files:
# `pipe run --commit` of a one-job pipeline (`true`) on the local backend, alternating between
# two commits that differ by one file (so every run brings the kept checkout to the other by
# their difference), against writing the commit out with `git archive | tar -x`. A first run
# (the full checkout) happens before timing. Two figures for pipe: the whole run (hyperfine;
# on the local backend it includes the job's own copy of the workspace), and pipe's own
# overhead up to the job's start (its `job_started` event: start, resolving the commit, updating
# the checkout, planning, recording). With BACKEND=docker (needs the test image) the job runs
# in a container on an overlay of the checkout instead of a copy.
#   bench/hook.sh           # needs hyperfine and git; FILES (default 5000), RUNS (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-5000}
RUNS=${RUNS:-20}
BACKEND=${BACKEND:-local}
cargo build --release --quiet
PIPE=${CARGO_TARGET_DIR:-$PWD/target}/release/pipe

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo=$work/repo
mkdir -p "$repo"
python3 - "$repo" "$FILES" <<'PY'
import os, sys
root, files = sys.argv[1], int(sys.argv[2])
for i in range(files):
    d = f"{root}/src/d{i // 100}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i % 100}.txt", "w") as fh:
        fh.write(f"file {i}\n" * 20)
PY
printf 'image: pipe-test/busybox:1\njobs:\n  test: {script: ["true"]}\n' > "$repo/pipe.yml"
g() { git -C "$repo" -c user.name=bench -c user.email=bench@example.com "$@"; }
g init -q -b main
g add -A && g commit -q -m first
one=$(g rev-parse HEAD)
echo changed > "$repo/src/d0/f0.txt"
g commit -q -am second
two=$(g rev-parse HEAD)
echo "$one" > "$work/rev"

# The first run writes the whole checkout; the timed ones only what differs.
(cd "$repo" && "$PIPE" run --pull never --no-reuse --backend "$BACKEND" --commit "$one" >/dev/null)
# Each timed run is of the other commit than the run before.
flip="if [ \"\$(cat $work/rev)\" = $one ]; then echo $two; else echo $one; fi > $work/rev.next && mv $work/rev.next $work/rev"

hyperfine --style basic --warmup 2 --runs "$RUNS" --export-json "$work/hook.json" \
  -n pipe --prepare "$flip" \
  "cd $repo && $PIPE run --pull never --no-reuse --backend $BACKEND --commit \$(cat $work/rev) >/dev/null" \
  -n archive --prepare "rm -rf $work/out && mkdir $work/out" \
  "git -C $repo archive $two | tar -x -C $work/out" >/dev/null
python3 - "$work/hook.json" "$FILES" "$BACKEND" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"{sys.argv[2]} files, medians: pipe run --commit (one job `true`, {sys.argv[3]} backend) "
      f"{r['pipe'] * 1000:.0f} ms; git archive | tar -x {r['archive'] * 1000:.0f} ms")
PY
python3 - "$PIPE" "$repo" "$one" "$two" "$BACKEND" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
pipe, repo, one, two, backend, runs = sys.argv[1:7]
rev, took = one, []
for _ in range(int(runs)):
    rev = two if rev == one else one
    start = time.monotonic()
    run = subprocess.Popen(
        [pipe, "run", "--pull", "never", "--no-reuse", "--backend", backend, "--output", "json", "--commit", rev],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in run.stdout:
        if '"event":"job_started"' in line:
            took.append(time.monotonic() - start)
            break
    run.stdout.read()
    run.wait()
print(f"pipe's overhead to the first job start (median of {len(took)}): "
      f"{statistics.median(took) * 1000:.0f} ms")
PY
