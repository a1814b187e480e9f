#!/usr/bin/env bash
# pipe agent: (1) a signed GitHub webhook's arrival -> its first job's container created (Docker
# events), (2) GET /api/runs?limit=10000 over 10,000 recorded runs (hyperfine), (3) a printed log
# line -> the SSE client (local backend, the job prints its own clock). Loopback only.
# Usage: bench/agent.sh   (PIPE=path/to/pipe to time another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
need hyperfine
need curl
need sqlite3
need openssl
need python3
pipe_binary
busybox_image

work=$(mktemp -d)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
git() { command git -c user.name=b -c user.email=b@example.com -c commit.gpgsign=false "$@"; }

git init -q -b main "$work/src"
cat > "$work/src/pipe.yml" <<YAML
jobs:
  hello:
    image: $IMAGE
    script: [echo hello]
YAML
git -C "$work/src" add . && git -C "$work/src" commit -qm first
git clone -q --bare "$work/src" "$work/bare.git"
secret=bench-secret-0123456789
token=bench-token-0123456789
start_agent() { # backend
  cat > "$work/agent.toml" <<TOML
data_dir = "data"
listen = "127.0.0.1:0"
open_reads = true
backend = "$1"
[[repos]]
name = "web"
url = "bare.git"
github_secret = "$secret"
[[tokens]]
name = "bench"
token = "$token"
TOML
  rm -f "$work/data/agent.addr"
  (cd "$work" && exec "$PIPE" agent --config agent.toml 2>>"$work/agent.log") &
  agent_pid=$!
  until [ -s "$work/data/agent.addr" ]; do sleep 0.05; done
  addr=$(cat "$work/data/agent.addr")
}
stop_agent() { kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=; }

echo "== webhook -> first container created (Docker)"
start_agent docker
for i in 1 2 3 4 5; do
  git -C "$work/src" commit -q --allow-empty -m "bench $i"
  git -C "$work/src" push -q "$work/bare.git" main
  sha=$(git -C "$work/src" rev-parse HEAD)
  body="{\"ref\":\"refs/heads/main\",\"after\":\"$sha\",\"repository\":{\"name\":\"web\"}}"
  sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
  events="$work/events-$i"
  docker events --filter type=container --filter event=create --filter label=dev.pipe.pid="$agent_pid" \
    --format '{{.TimeNano}}' > "$events" &
  events_pid=$!
  sleep 0.5 # let docker events subscribe before the delivery (setup, not a measurement)
  sent=$(date +%s%N)
  curl -s -o /dev/null -X POST "http://$addr/hooks/github" -H "X-GitHub-Event: push" \
    -H "X-GitHub-Delivery: bench-$i-$$" -H "X-Hub-Signature-256: $sig" --data-binary "$body"
  until [ -s "$events" ]; do sleep 0.01; done
  kill "$events_pid"; wait "$events_pid" 2>/dev/null || true
  created=$(head -1 "$events")
  echo "delivery $i: first container created $(( (created - sent) / 1000000 )) ms after the webhook was sent"
  until curl -s "http://$addr/api/runs?repo=web&limit=1" | grep -q '"state":"passed"\|"state":"failed"'; do sleep 0.05; done
done
stop_agent

echo "== GET /api/runs?limit=10000 over 10,000 runs"
db="$work/data/repos/web/.pipe/pipe.db"
sqlite3 "$db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  INSERT INTO runs (pipeline_name, pipeline_file, pipeline_sha256, commit_sha, branch, tags, changed_paths, trigger, state, started_at, ended_at)
  SELECT pipeline_name, pipeline_file, pipeline_sha256, commit_sha, branch, tags, changed_paths, trigger, state, started_at, ended_at
  FROM runs, n WHERE runs.id = 1 LIMIT 10000;"
start_agent local
echo "runs listed: $(curl -s "http://$addr/api/runs?limit=10000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
hyperfine -N --warmup 3 --runs 30 "curl -s -o /dev/null http://$addr/api/runs?limit=10000"
# The agent's own CPU time per listing (user + system, from /proc): on a machine shared with
# other work it says what the wall-clock figure cannot.
cpu() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
before=$(cpu)
for _ in $(seq 1 50); do curl -s -o /dev/null "http://$addr/api/runs?limit=10000"; done
echo "the agent's CPU time per listing: $(( ($(cpu) - before) * 1000 / $(getconf CLK_TCK) / 50 )) ms (50 listings)"

echo "== a log line printed -> read from SSE (local backend)"
cat > "$work/src/pipe.yml" <<'YAML'
jobs:
  clock:
    script:
      - for i in $(seq 1 40); do echo "t=$(date +%s%N)"; sleep 0.1; done
YAML
git -C "$work/src" commit -qam clock && git -C "$work/src" push -q "$work/bare.git" main
curl -s -o /dev/null -X POST -H "Authorization: Bearer $token" "http://$addr/api/repos/web/runs" -d '{"branch":"main"}'
until id=$(curl -s "http://$addr/api/runs?repo=web&limit=1&state=running" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["run_id"] if r else "")') && [ -n "$id" ]; do sleep 0.05; done
until curl -s "http://$addr/api/repos/web/runs/$id" | grep -q '"job":"clock".*"status":"running"'; do sleep 0.02; done
curl -s -N "http://$addr/api/repos/web/runs/$id/jobs/clock/log" | python3 -c '
import sys, time
lat = []
for line in sys.stdin:
    now = time.time_ns()
    if line.startswith("data: t="):
        lat.append((now - int(line[8:].strip())) / 1e6)
    if line.startswith("event: end"):
        break
# The lines printed before the client connected arrive at once: only those after count.
lat = lat[5:]
lat.sort()
print(f"SSE line latency over {len(lat)} lines: median {lat[len(lat)//2]:.1f} ms, max {lat[-1]:.1f} ms")
'
stop_agent
