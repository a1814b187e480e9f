#!/usr/bin/env bash
# What masking secrets costs on a flood of output: one job printing `seq 1 3000000` (21 MB of
# log), run with no secret and with three (one of them a multi-line key), whose values and
# their encoded forms are all looked for in every byte. Prints both medians and the ratio
# (hyperfine) and the same for CPU time; the target is under 10%.
#   bench/mask.sh             # Docker (scripts/docker-up.sh) and hyperfine
#   BACKEND=local bench/mask.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
BACKEND=${BACKEND:-docker}
. bench/common.sh

need hyperfine
pipe_binary

[ "$BACKEND" = docker ] && busybox_image

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plain" "$work/masked"
printf 'image: %s\njobs:\n  flood: {script: [seq 1 3000000]}\n' "$IMAGE" > "$work/plain/pipe.yml"
printf 'image: %s\njobs:\n  flood: {secrets: [BENCH_TOKEN, BENCH_PASSWORD, BENCH_KEY], script: [seq 1 3000000]}\n' \
  "$IMAGE" > "$work/masked/pipe.yml"
export BENCH_TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyz
export BENCH_PASSWORD='correct horse battery staple'
BENCH_KEY=$(printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\n%s\n%s\n-----END OPENSSH PRIVATE KEY-----' \
  b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW \
  QyNTUxOQAAACBHk0Vb6n1vK3nq5mXlqfQkWmM0l1ZpA7c2mP3n0ZlN2QAAAJgAAAAAAAAA)
export BENCH_KEY

hyperfine --runs "$RUNS" --warmup 1 --export-json "$work/result.json" \
  -n 'no secrets' "cd $work/plain && CI=true $PIPE run --backend $BACKEND --pull never --no-reuse >/dev/null" \
  -n '3 secrets masked' "cd $work/masked && CI=true $PIPE run --backend $BACKEND --pull never --no-reuse >/dev/null"

python3 - "$work/result.json" <<'PY'
import json, sys
results = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
plain, masked = results["no secrets"], results["3 secrets masked"]
wall = lambda r: r["median"]
# CPU time (user + system of pipe and what it ran) stays fair on a busy machine, where the
# wall time is mostly other processes.
cpu = lambda r: r["user"] + r["system"]
for name, f in (("median wall", wall), ("mean CPU", cpu)):
    print(f"{name}: no secrets {f(plain):.3f} s, 3 secrets masked {f(masked):.3f} s, "
          f"masking costs {100 * (f(masked) / f(plain) - 1):+.1f}%")
PY
