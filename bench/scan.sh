#!/usr/bin/env bash
# Benchmarks pipe's secrets scanner against detect-secrets (speed and recall).
#
#   bench/scan.sh                  # pipe measured through tests/scan_bench.rs (library API)
#   PIPE=target/release/pipe bench/scan.sh   # pipe measured through `pipe scan`
#
# 1. Generates (deterministically, under $WORK, default /tmp/pipe-scan-bench) a ~10 MB tree of
#    ~1,000 source-like files and a ~200 MB one of ~20,000 files, both with the fake-credential
#    corpus planted (bench/scan_gen.py). Trees are reused; REGEN=1 rebuilds them.
# 2. Times `detect-secrets scan --all-files` and pipe on the 10 MB tree (hyperfine, warm cache).
# 3. Times pipe alone on the 200 MB tree and reports MB/s.
# 4. Compares recall and false positives of both on tests/fixtures/secrets (the fake corpus and
#    the contexts corpus, where pipe's false positives count at high and critical) and the 10 MB
#    tree (bench/scan_recall.py). Recall on gitleaks' own rule tests is bench/scan_gitleaks.py's.
# Needs hyperfine (Debian package) and detect-secrets (PyPI); installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${WORK:-/tmp/pipe-scan-bench}
SMALL=$WORK/tree-10mb
LARGE=$WORK/tree-200mb
DS_RUNS=${DS_RUNS:-3}
PIPE_RUNS=${PIPE_RUNS:-20}
mkdir -p "$WORK"

if ! command -v hyperfine >/dev/null; then
  apt-get install -y -qq hyperfine >/dev/null
fi
if ! command -v detect-secrets >/dev/null; then
  python3 -m pip install --quiet detect-secrets==1.5.0
fi

gen() { # dir files megabytes
  if [ "${REGEN:-0}" = 1 ] || [ ! -d "$1" ] || [ ! -f "$1.planted.json" ]; then
    python3 bench/scan_gen.py "$1" --files "$2" --megabytes "$3"
  fi
}
gen "$SMALL" 1000 10
gen "$LARGE" 20000 200

# pipe_cmd TREE: a shell command that scans TREE with pipe, output discarded by the caller.
# pipe_jsonl TREE FILE: writes pipe's findings on TREE as JSON lines.
if [ -n "${PIPE:-}" ]; then
  PIPE=$(realpath "$PIPE")
  # From inside the tree, so findings name paths relative to it, as the recall script expects
  # (`pipe scan DIR` names them from the current directory: DIR/…).
  pipe_cmd() { echo "cd $1 && $PIPE scan ."; }
  pipe_jsonl() { (cd "$1" && "$PIPE" scan --output json .) >"$2" || [ $? = 1 ]; }
  pipe_label="pipe scan ($PIPE)"
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
  BIN=$(cargo test --release --quiet --test scan_bench --no-run --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "scan_bench":
        print(m["executable"])')
  pipe_cmd() { echo "env PIPE_SCAN_BENCH_DIR=$1 PIPE_SCAN_BENCH_EXTERNAL=1 $BIN --ignored --exact secrets_throughput --quiet"; }
  pipe_jsonl() { PIPE_SCAN_BENCH_DIR=$1 PIPE_SCAN_BENCH_EXTERNAL=1 PIPE_SCAN_BENCH_JSONL=$2 "$BIN" --ignored --exact secrets_throughput --quiet >/dev/null; }
  pipe_label="scan_secrets via tests/scan_bench.rs"
fi

megabytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.1f", s / 1e6}'; }
mean() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$1"; }

echo "== speed on $SMALL ($(megabytes "$SMALL") MB, $(find "$SMALL" -type f | wc -l) files)"
hyperfine --warmup 1 --runs "$DS_RUNS" --export-json "$WORK/ds-small.json" \
  -n detect-secrets "cd $SMALL && detect-secrets scan --all-files . >/dev/null"
# -i: pipe exits 1 when it finds something, which it does here.
hyperfine -i --warmup 3 --runs "$PIPE_RUNS" --export-json "$WORK/pipe-small.json" \
  -n "$pipe_label" "$(pipe_cmd "$SMALL") >/dev/null"
ds_s=$(mean "$WORK/ds-small.json")
pipe_s=$(mean "$WORK/pipe-small.json")

echo "== speed on $LARGE ($(megabytes "$LARGE") MB, $(find "$LARGE" -type f | wc -l) files), pipe only"
hyperfine -i --warmup 2 --runs 10 --export-json "$WORK/pipe-large.json" \
  -n "$pipe_label" "$(pipe_cmd "$LARGE") >/dev/null"
large_s=$(mean "$WORK/pipe-large.json")

echo "== recall and false positives"
CORPUS=$REPO/tests/fixtures/secrets/fake-corpus
(cd "$CORPUS" && detect-secrets scan --all-files . >"$WORK/ds-corpus.json")
(cd "$SMALL" && detect-secrets scan --all-files . >"$WORK/ds-small-report.json")
pipe_jsonl "$CORPUS" "$WORK/pipe-corpus.jsonl"
pipe_jsonl "$SMALL" "$WORK/pipe-small.jsonl"
EXPECTED=$REPO/tests/fixtures/secrets/EXPECTED.json
python3 bench/scan_recall.py "$EXPECTED" --detect-secrets "$WORK/ds-corpus.json" --label "corpus, detect-secrets"
python3 bench/scan_recall.py "$EXPECTED" --pipe "$WORK/pipe-corpus.jsonl" --label "corpus, pipe"
CONTEXTS=$REPO/tests/fixtures/secrets/contexts
(cd "$CONTEXTS" && detect-secrets scan --all-files . >"$WORK/ds-contexts.json")
pipe_jsonl "$CONTEXTS" "$WORK/pipe-contexts.jsonl"
python3 bench/scan_recall.py "$CONTEXTS.json" --detect-secrets "$WORK/ds-contexts.json" --label "contexts, detect-secrets" --quiet
python3 bench/scan_recall.py "$CONTEXTS.json" --pipe "$WORK/pipe-contexts.jsonl" --serious high --label "contexts, pipe (high+)"
python3 bench/scan_recall.py "$SMALL.planted.json" --detect-secrets "$WORK/ds-small-report.json" --label "10 MB tree, detect-secrets"
python3 bench/scan_recall.py "$SMALL.planted.json" --pipe "$WORK/pipe-small.jsonl" --label "10 MB tree, pipe"

echo "== summary"
python3 - "$ds_s" "$pipe_s" "$large_s" "$(megabytes "$SMALL")" "$(megabytes "$LARGE")" <<'EOF'
import sys
ds, pipe, large, small_mb, large_mb = map(float, sys.argv[1:])
print(f"10 MB tree:  detect-secrets {ds:.2f} s, pipe {pipe * 1e3:.1f} ms ({small_mb / pipe:.0f} MB/s): pipe is {ds / pipe:.0f}x faster")
print(f"200 MB tree: pipe {large * 1e3:.0f} ms = {large_mb / large:.0f} MB/s")
EOF
