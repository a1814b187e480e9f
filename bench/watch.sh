#!/usr/bin/env bash
# Watch mode: from saving a file to the rerun's end, in a `pipe run --watch` session on Docker
# over a 10-job pipeline where the file is one job's only input (that job runs; the other 9,
# its dependent included since it receives nothing from it, are reused). Times come from the events' own timestamps: the write, the
# `files_changed` (the debounce: 200 ms quiet), `run_started` and `run_finished` of each rerun.
#   bench/watch.sh          # needs a Docker engine (scripts/docker-up.sh) and python3
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-10}
. bench/common.sh

pipe_binary

busybox_image

work=$(mktemp -d)
events=$(mktemp) # outside the project: the session's own output is no change
session=
trap '[ -n "$session" ] && kill -INT "$session" 2>/dev/null; wait; rm -rf "$work" "$events"' EXIT

mkdir -p "$work/src"
for i in 1 2 3 4 5 6 7 8; do mkdir -p "$work/t$i"; echo "$i" > "$work/t$i/case.txt"; done
echo 'fn main() {}' > "$work/src/main.rs"
{
  echo "image: $IMAGE"
  echo "jobs:"
  echo "  build: {inputs: ['src/**'], script: ['mkdir -p out', 'cat src/main.rs > out/app'], artifacts: [out/app]}"
  for i in 1 2 3 4 5 6 7 8; do
    echo "  t$i: {stage: test, needs: [build], inputs: ['t$i/**'], script: ['cat out/app t$i/case.txt']}"
  done
  echo "  report: {stage: security-scan, needs: [t1, t2, t3, t4, t5, t6, t7, t8], inputs: [nothing], script: [echo all tested]}"
} > "$work/pipe.yml"

cd "$work"
"$PIPE" run --watch --pull never --output json > "$events" 2>/dev/null &
session=$!
watching() { grep -c '"event":"watching"' "$events" || true; }
until [ "$(watching)" -ge 1 ]; do sleep 0.1; done
writes=()
for round in $(seq 1 "$ROUNDS"); do
  writes+=("$(date +%s.%N)")
  date +%s%N > t3/case.txt
  until [ "$(watching)" -ge $((round + 1)) ]; do sleep 0.1; done
done

python3 - "$events" "${writes[@]}" <<'PY'
import json, sys, statistics
from datetime import datetime
events = [json.loads(l) for l in open(sys.argv[1])]
writes = [float(w) for w in sys.argv[2:]]
t = lambda e: datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
changed = [t(e) for e in events if e["event"] == "files_changed"]
started = [t(e) for e in events if e["event"] == "run_started"][1:]
finished = [t(e) for e in events if e["event"] == "run_finished"][1:]
ran = [e["job"] for e in events if e["event"] == "job_finished" and "reused_from" not in e]
def show(name, ends):
    ms = sorted((end - w) * 1000 for w, end in zip(writes, ends))
    print(f"{name:34} median {statistics.median(ms):6.0f} ms  min {ms[0]:6.0f}  max {ms[-1]:6.0f}")
print(f"{len(writes)} saves of t3/case.txt; jobs run per rerun: {(len(ran) - 10) / len(writes):.0f} of 10")
show("save -> files_changed (debounce)", changed)
show("save -> run_started", started)
show("save -> run_finished", finished)
PY
