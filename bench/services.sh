#!/usr/bin/env bash
# How soon a job's script starts once its service is ready: a one-job pipeline whose service
# (`ready: {tcp: 5432}`) starts listening a second after it starts, run RUNS times. Three
# figures per run, medians printed:
#   listen->script   the service's clock just before it listens to the script's first command
#                    (both read the host's /proc/uptime, so 10 ms resolution);
#   ready->script    pipe's `pipe: services ready` line to the script's first line (the events'
#                    times): what starting the job's container costs;
#   listen->ready    the difference: what the readiness polling itself adds.
#   bench/services.sh       # needs docker and python3; RUNS (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
need python3
RUNS=${RUNS:-10}
pipe_binary
busybox_image

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/pipe.yml" <<YAML
image: $IMAGE
jobs:
  job:
    services:
      - name: db
        image: $IMAGE
        command: sleep 1; cut -d' ' -f1 /proc/uptime; exec nc -ll -p 5432 -e echo hi
        ready: {tcp: 5432}
    script:
      - cut -d' ' -f1 /proc/uptime
YAML
for i in $(seq "$RUNS"); do
  (cd "$work" && "$PIPE" run --pull never --no-reuse --output json > "$work/events-$i.json")
  cp "$work/.pipe/runs/$i/logs/job.services/db.log" "$work/db-$i.log"
done
python3 - "$work" "$RUNS" <<'PY'
import json, statistics, sys
from datetime import datetime
work, runs = sys.argv[1], int(sys.argv[2])
def at(event):
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
totals, starts = [], []
for i in range(1, runs + 1):
    listen = float(open(f"{work}/db-{i}.log").read().split()[0])
    events = [json.loads(l) for l in open(f"{work}/events-{i}.json")]
    lines = [e for e in events if e.get("event") == "job_output"]
    ready = next(e for e in lines if e["line"].startswith("pipe: services ready"))
    first = next(e for e in lines if e["line"].startswith("$ "))
    script = float(next(e for e in lines if e["line"][:1].isdigit())["line"])
    totals.append((script - listen) * 1000)
    starts.append((at(first) - at(ready)) * 1000)
total, start = statistics.median(totals), statistics.median(starts)
print(f"listen->script {total:.0f} ms, ready->script {start:.0f} ms, "
      f"listen->ready {total - start:.0f} ms (medians of {runs})")
PY
