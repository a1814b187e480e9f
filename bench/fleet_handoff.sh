#!/usr/bin/env bash
# The time from a job's needs finishing to an agent claiming it: two `pipe agent` processes
# share one private PostgreSQL (started here as bench/fleet.sh does) and run a chain of jobs
# through the fleet's queue; the figure is each job's claim time minus the end of its need's
# attempt, from the queue's attempt rows (both stamped by the database's clock), split by
# whether the same agent or the other one claimed it. The local backend, so that no container
# start is in the figure (a Docker job adds its container's start, see bench/run.sh).
#   bench/fleet_handoff.sh
#   CHAIN=100 BACKEND=docker PIPE=target/release/pipe bench/fleet_handoff.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
CHAIN=${CHAIN:-40}
BACKEND=${BACKEND:-local}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "bench needs PostgreSQL's server (apt-get install postgresql)" >&2; exit 1; }
pipe_binary
[ "$BACKEND" = docker ] && busybox_image

work=$(mktemp -d)
pids=()
as_db() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  as_db "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_db "$bin/initdb" --auth=trust --username=pipe --no-sync -D "$work/data" >/dev/null
as_db "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
url="postgres://pipe@127.0.0.1:$port/pipe"
"$bin/psql" -q -h 127.0.0.1 -p "$port" -U pipe -d postgres -c "CREATE DATABASE pipe"
psql_() { "$bin/psql" -qtA -h 127.0.0.1 -p "$port" -U pipe -d pipe -c "$1"; }

# A repository whose second commit holds the chain (the first is a job of its own, run while
# the agents start).
g() { git -c user.name=b -c user.email=b@example.com -c commit.gpgsign=false "$@"; }
mkdir -p "$work/repo" "$work/objects"
g -C "$work/repo" init -q -b main
image=""
[ "$BACKEND" = docker ] && image="image: $IMAGE"
printf '%s\njobs:\n  hello:\n    script: [echo hello]\n' "$image" > "$work/repo/pipe.yml"
g -C "$work/repo" add . && g -C "$work/repo" commit -qm first
g clone -q --bare "$work/repo" "$work/bare.git"
for a in a b; do
  cat > "$work/$a.toml" <<EOF
data_dir = "$a"
listen = "127.0.0.1:0"
backend = "$BACKEND"
store = "$url"
objects = "file://$work/objects"
[[repos]]
name = "web"
url = "bare.git"
poll = "100ms"
EOF
  (cd "$work" && NO_COLOR=1 exec "$PIPE" agent --config "$a.toml" 2>"$work/$a.log") &
  pids+=($!)
done
until [ "$(psql_ "SELECT count(*) FROM fleet_agents" 2>/dev/null || echo 0)" -ge 2 ]; do sleep 0.2; done

{
  echo "$image"
  echo "jobs:"
  echo "  c0:"
  echo "    script: [echo 0]"
  for i in $(seq 1 $((CHAIN - 1))); do
    printf '  c%d:\n    needs: [c%d]\n    script: [echo %d]\n' "$i" $((i - 1)) "$i"
  done
} > "$work/repo/pipe.yml"
g -C "$work/repo" commit -qam chain
g -C "$work/repo" push -q "$work/bare.git" main
commit=$(g -C "$work/repo" rev-parse HEAD)
state() { psql_ "SELECT state FROM runs WHERE project = 'web' AND commit_sha = '$commit'"; }
until [ "$(state)" = passed ] || [ "$(state)" = failed ]; do sleep 0.5; done
[ "$(state)" = passed ] || { echo "the chain failed" >&2; cat "$work"/a.log "$work"/b.log >&2; exit 1; }

echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), $(nproc) CPUs, a chain of $CHAIN jobs over 2 agents, $BACKEND backend"
printf 'claimed by\thand-offs\tp50 ms\tp99 ms\tmax ms\n'
psql_ "
  WITH h AS (
    SELECT CASE WHEN a.agent = p.agent THEN 'same agent' ELSE 'other agent' END AS who,
           EXTRACT(EPOCH FROM a.claimed_at - p.ended_at) * 1000 AS ms
    FROM fleet_jobs j
    JOIN runs r ON r.project = j.project AND r.id = j.run_id AND r.commit_sha = '$commit'
    JOIN fleet_needs n ON n.job = j.id
    JOIN fleet_attempts a ON a.job = j.id AND a.outcome = 'passed'
    JOIN fleet_attempts p ON p.job = n.needs AND p.outcome = 'passed'
  )
  SELECT who, count(*),
         round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
         round(max(ms)::numeric, 1)
  FROM h GROUP BY who ORDER BY who" | tr '|' '\t'
