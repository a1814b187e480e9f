#!/usr/bin/env bash
# Job reuse: (1) rerunning an unchanged 10-job pipeline on Docker (every job reused; target
# < 0.2 s wall), (2) a change to one file that only one job's `inputs` cover (only that job and
# its dependent run), (3) the warm key computation over a 10,000-file tree (target < 50 ms),
# as pipe reports it itself (PIPE_LOG=pipe=debug: "hashed the files jobs see"), (4) rerunning
# that unchanged tree whole (its job reused; the run shares the earlier run's snapshot).
#   bench/reuse.sh          # needs a Docker engine (scripts/docker-up.sh) and hyperfine
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
. bench/common.sh

need hyperfine
pipe_binary

busybox_image

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Ten jobs: a build, eight tests on their own inputs, a report that needs them all.
mkdir -p "$work/ten/src"
for i in 1 2 3 4 5 6 7 8; do mkdir -p "$work/ten/t$i"; echo "$i" > "$work/ten/t$i/case.txt"; done
echo 'fn main() {}' > "$work/ten/src/main.rs"
{
  echo "image: $IMAGE"
  echo "jobs:"
  echo "  build: {inputs: ['src/**'], script: ['mkdir -p out', 'cat src/main.rs > out/app'], artifacts: [out/app]}"
  for i in 1 2 3 4 5 6 7 8; do
    echo "  t$i: {stage: test, needs: [build], inputs: ['t$i/**'], script: ['cat out/app t$i/case.txt']}"
  done
  echo "  report: {stage: security-scan, needs: [t1, t2, t3, t4, t5, t6, t7, t8], inputs: [nothing], script: [echo all tested]}"
} > "$work/ten/pipe.yml"
cd "$work/ten"
"$PIPE" run --pull never >/dev/null

echo "== rerun of an unchanged 10-job pipeline (every job reused)"
hyperfine --runs "$RUNS" --warmup 1 -N "$PIPE run --pull never"
"$PIPE" run --pull never --output json | grep -c '"reused_from"' | sed 's/^/jobs reused: /'

echo "== one file under t3's inputs changed: t3 runs; report, which receives nothing from it, is reused with the other 8"

hyperfine --runs "$RUNS" --warmup 1 -N \
  --prepare "sh -c 'date +%s%N > t3/case.txt'" \
  "$PIPE run --pull never"
date +%s%N > t3/case.txt
"$PIPE" run --pull never --output json \
  | grep '"job_finished"' | grep -v '"reused_from"' | sed 's/.*"job":"\([^"]*\)".*/ran: \1/'

echo "== the same rerun with --no-reuse (every job runs)"
hyperfine --runs "$RUNS" --warmup 1 -N "$PIPE run --pull never --no-reuse"

echo "== warm key computation over 10,000 files"
mkdir -p "$work/big"
cd "$work/big"
for d in $(seq 0 99); do
  mkdir -p "src/d$d"
  for f in $(seq 0 99); do echo "file $d $f" > "src/d$d/f$f.txt"; done
done
printf 'jobs:\n  one: {script: ["echo one"]}\n' > pipe.yml
"$PIPE" run --backend local >/dev/null
sleep 3 # past the index's racy window, as an edit-and-rerun session would be
for i in 1 2 3 4 5 6; do
  PIPE_LOG=pipe=debug "$PIPE" run --backend local 2>&1 >/dev/null | grep -o 'hashed the files.*'
done

echo "== rerun of the unchanged 10,000-file tree (its job reused, no snapshot copied)"
hyperfine --runs "$RUNS" --warmup 1 -N "$PIPE run --backend local"
