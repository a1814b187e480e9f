#!/usr/bin/env bash
# What restoring a cache costs: one job whose cache (SIZE_MB in 1,000 files, default 50) is
# restored on the exact key, against the same job with nothing to restore (and so nothing to
# save), on both backends.
#   bench/cache.sh      # needs hyperfine; a Docker engine for the docker half (skipped without)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-50}
RUNS=${RUNS:-5}
. bench/common.sh
pipe_binary

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/cached" "$work/plain" "$work/cache"
# The job makes the cache's contents itself the first time (SIZE_MB in 1,000 files), and finds
# them restored afterwards.
fill="[ -d deps ] || { mkdir deps; i=0; while [ \$i -lt 1000 ]; do head -c $((SIZE_MB * 1024)) /dev/urandom > deps/f\$i; i=\$((i+1)); done; }"
for backend in local docker; do
  if [ $backend = docker ] && ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "docker: skipped (no engine or no $IMAGE; cargo test builds it)"
    continue
  fi
  printf 'image: %s\njobs:\n  build:\n    cache: {key: deps-1, paths: [deps]}\n    script: ["%s", "test -f deps/f999"]\n' "$IMAGE" "$fill" > "$work/cached/pipe.yml"
  printf 'image: %s\njobs:\n  build:\n    script: ["test ! -d deps"]\n' "$IMAGE" > "$work/plain/pipe.yml"
  rm -rf "$work/cache"/*
  (cd "$work/cached" && $PIPE run --backend $backend --pull never --no-reuse --cache-dir "$work/cache" >/dev/null)
  hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/$backend.json" \
    -n restore "cd $work/cached && $PIPE run --backend $backend --pull never --no-reuse --cache-dir $work/cache >/dev/null" \
    -n none "cd $work/plain && $PIPE run --backend $backend --pull never --no-reuse --cache-dir $work/cache >/dev/null" >/dev/null
  python3 - "$work/$backend.json" "$SIZE_MB" "$backend" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"{sys.argv[3]}: a job restoring a {sys.argv[2]} MB cache (1,000 files) {r['restore']:.2f} s, "
      f"without a cache {r['none']:.2f} s: restoring costs {r['restore'] - r['none']:.2f} s")
PY
done
