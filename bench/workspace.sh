#!/usr/bin/env bash
# What the per-job workspace costs on a large tree: overlay volumes (the default) against
# copying the tree for every job (PIPE_NO_OVERLAY=1, the fallback), 8 parallel jobs.
#   bench/workspace.sh      # needs a Docker engine and hyperfine; SIZE_MB (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-5}
IMAGE=pipe-test/busybox:1
cargo build --release --quiet
PIPE=${CARGO_TARGET_DIR:-$PWD/target}/release/pipe
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "build the test image first (cargo test builds it)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
# SIZE_MB in 10,000 files spread over 100 folders.
python3 - "$work/src" "$SIZE_MB" <<'PY'
import os, sys
root, size_mb = sys.argv[1], int(sys.argv[2])
per_file = size_mb * 1024 * 1024 // 10000
block = (b"0123456789abcdef" * (per_file // 16 + 1))[:per_file]
for d in range(100):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d}/f{f}.txt", "wb") as fh:
            fh.write(block)
PY
{
  echo "image: $IMAGE"
  echo "jobs:"
  echo "  job: {matrix: {N: [1, 2, 3, 4, 5, 6, 7, 8]}, script: ['test -f src/d99/f99.txt', 'echo \$N > mine.txt']}"
} > "$work/pipe.yml"

hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/ws.json" \
  -n overlay "cd $work && $PIPE run --pull never --no-reuse >/dev/null" \
  -n copy "cd $work && PIPE_NO_OVERLAY=1 $PIPE run --pull never --no-reuse >/dev/null" >/dev/null
python3 - "$work/ws.json" "$SIZE_MB" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"{sys.argv[2]} MB tree, 8 parallel jobs: overlay {r['overlay']:.2f} s, copy per job {r['copy']:.2f} s "
      f"({r['copy'] / r['overlay']:.1f}x slower); both include the one snapshot copy per run")
PY
