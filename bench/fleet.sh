#!/usr/bin/env bash
# Claims per second on the fleet's queue with 1, 2, 4 and 8 claimers against one private
# PostgreSQL on this machine (Debian's `postgresql`, started here with initdb/pg_ctl on a
# loopback port, as `postgres` when run as root), and the claim latency at p50 and p99. Each
# claimer claims a job and finishes it until the queue is empty; a fresh database per row.
#   bench/fleet.sh
#   JOBS=20000 CLAIMERS="1 2 4 8 16" bench/fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2000}
CLAIMERS=${CLAIMERS:-"1 2 4 8"}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "bench needs PostgreSQL's server (apt-get install postgresql)" >&2; exit 1; }
cargo build --release --quiet --example fleet_claims
claims=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/fleet_claims

work=$(mktemp -d)
as_db() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
trap 'as_db "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_db "$bin/initdb" --auth=trust --username=pipe --no-sync -D "$work/data" >/dev/null
# Durable commits as in production (fsync on): a claim is a commit.
as_db "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null

echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), $(nproc) CPUs, $JOBS jobs per row"
printf 'claimers\tjobs\tclaims/s\tp50 ms\tp99 ms\n'
for n in $CLAIMERS; do
  db=b$n
  "$bin/psql" -q -h 127.0.0.1 -p "$port" -U pipe -d postgres -c "CREATE DATABASE $db" >/dev/null
  "$claims" "postgres://pipe@127.0.0.1:$port/$db" "$n" "$JOBS"
done
