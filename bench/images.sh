#!/usr/bin/env bash
# What a `build_image` job adds to the engine's own build of a small context. The same context
# and Dockerfile (the classic builder, as pipe uses) are built RUNS times three ways, the
# cache busted the same way before each (a new `nonce` file that a COPY takes):
#   pipe run        a one-job pipeline: `pipe run` whole (store, snapshot, engine checks, build)
#   docker build    the docker CLI (DOCKER_BUILDKIT=0: the classic builder)
#   api build       the context tarred and posted to the engine's build API with curl: the
#                   engine's own build time and little else
# then, from pipe's JSON events, the build job's own time (job_started to job_finished) beside
# the API build's: what pipe's build path adds, without what any `pipe run` costs.
#   bench/images.sh          # needs a Docker engine, hyperfine, curl and python3; RUNS (20)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
need hyperfine
need curl
need python3
RUNS=${RUNS:-20}
SOCKET=${DOCKER_HOST:-unix:///var/run/docker.sock}
SOCKET=${SOCKET#unix://}
pipe_binary
busybox_image

work=$(mktemp -d)
label="dev.pipe.bench=images-$$"
cleanup() {
  docker images -q --filter "label=$label" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/app/src"
# A small context: a Dockerfile and about 60 KiB in 20 files.
for i in $(seq 20); do head -c 3000 /dev/urandom | base64 > "$work/app/src/f$i.txt"; done
cat > "$work/app/Dockerfile" <<DOCKERFILE
FROM $IMAGE
LABEL $label
COPY src /src
COPY nonce /nonce
RUN cat /nonce > /built
DOCKERFILE
cat > "$work/pipe.yml" <<YAML
jobs:
  image:
    build_image: {context: app, tags: ['pipe-bench/images:$$']}
YAML
echo first > "$work/app/nonce"
bust="date +%s%N > $work/app/nonce"
api="tar -C $work/app -c . | curl -sf --unix-socket $SOCKET -H 'Content-Type: application/x-tar' \
--data-binary @- 'http://localhost/build?t=pipe-bench/images-api:$$&rm=1&forcerm=1' -o /dev/null"
hyperfine --warmup 2 --runs "$RUNS" --prepare "$bust" --export-json "$work/runs.json" \
  -n "pipe run" "cd $work && $PIPE run --pull never --output json > $work/events-\$(date +%s%N).json" \
  -n "docker build" "DOCKER_BUILDKIT=0 docker build -q -t pipe-bench/images-cli:$$ $work/app > /dev/null 2>&1" \
  -n "api build" "$api"

python3 - "$work" <<'PY'
import glob, json, statistics, sys
from datetime import datetime
work = sys.argv[1]
def at(event):
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
jobs = []
for path in sorted(glob.glob(f"{work}/events-*.json")):
    events = [json.loads(l) for l in open(path) if l.strip()]
    start = next(e for e in events if e.get("event") == "job_started")
    end = next(e for e in events if e.get("event") == "job_finished")
    assert end["status"] == "passed", end
    jobs.append((at(end) - at(start)) * 1000)
results = {r["command"]: r for r in json.load(open(f"{work}/runs.json"))["results"]}
median = {name: statistics.median(r["times"]) * 1000 for name, r in results.items()}
job = statistics.median(jobs)
print(f"medians of {len(results['api build']['times'])}: pipe run {median['pipe run']:.0f} ms, "
      f"docker build {median['docker build']:.0f} ms, api build {median['api build']:.0f} ms")
print(f"the build job (job_started to job_finished, median of {len(jobs)}, warmups included): "
      f"{job:.0f} ms, {job - median['api build']:+.0f} ms over the api build; "
      f"pipe run {median['pipe run'] - median['api build']:+.0f} ms over it, "
      f"{median['pipe run'] - median['docker build']:+.0f} ms over docker build")
PY
