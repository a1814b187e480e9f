#!/usr/bin/env bash
# Benchmarks pipe against the floor: the same containers started with the plain `docker run`
# CLI, each as soon as its needs finish, output to /dev/null. One invocation runs every workload
# side by side (hyperfine, medians) and prints pipe/CLI ratios and pipe's peak RSS.
#   bench/run.sh                   # needs a Docker engine (scripts/docker-up.sh) and hyperfine
#   PIPE_OLD=path bench/run.sh     # also times another pipe binary (an older build) alike
#   PIPE=path bench/run.sh         # times that binary instead of building this checkout
#   RUNS=10 ONLY="chain fan" bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
ONLY=${ONLY:-"chain fan wide wide-nonet logs cpu dag100"}
. bench/common.sh

need hyperfine
[ -x /usr/bin/time ] || { echo "bench needs GNU time for peak RSS (apt-get install time)" >&2; exit 1; }
pipe_binary
OLD=${PIPE_OLD:-}

busybox_image

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each workload: $work/NAME/pipe.yml and $work/NAME.sh, the same containers with the CLI.
RUN="docker run --rm $IMAGE"

mkdir -p "$work/chain"   # 6 jobs, each needing the one before.
{
  echo "image: $IMAGE"; echo "jobs:"
  echo "  j1: {needs: [], script: [echo 1]}"
  for i in 2 3 4 5 6; do echo "  j$i: {needs: [j$((i - 1))], script: [echo $i]}"; done
} > "$work/chain/pipe.yml"
echo "for i in 1 2 3 4 5 6; do $RUN sh -ec \"echo \$i\" >/dev/null; done" > "$work/chain.sh"

mkdir -p "$work/fan"     # 1 → 8 → 1.
{
  echo "image: $IMAGE"; echo "jobs:"
  echo "  first: {stage: build, script: [echo first]}"
  echo "  mid: {stage: test, matrix: {N: [1, 2, 3, 4, 5, 6, 7, 8]}, script: [echo mid \$N]}"
  echo "  last: {stage: deploy, script: [echo last]}"
} > "$work/fan/pipe.yml"
cat > "$work/fan.sh" <<SH
$RUN sh -ec 'echo first' >/dev/null
for n in 1 2 3 4 5 6 7 8; do docker run --rm -e N=\$n $IMAGE sh -ec 'echo mid \$N' >/dev/null & done
wait
$RUN sh -ec 'echo last' >/dev/null
SH

# 12 independent jobs that sleep: what limits them is not CPU. With and without a network.
for net in wide wide-nonet; do
  mkdir -p "$work/$net"
  {
    echo "image: $IMAGE"
    [ $net = wide-nonet ] && echo "default: {network: false}"
    echo "jobs:"
    echo "  nap: {matrix: {N: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}, script: [sleep 1]}"
  } > "$work/$net/pipe.yml"
  flag=$([ $net = wide-nonet ] && echo "--network none" || true)
  echo "for n in \$(seq 12); do docker run --rm $flag $IMAGE sh -ec 'sleep 1' >/dev/null & done; wait" > "$work/$net.sh"
done

mkdir -p "$work/logs"    # One job printing 21 MB in 3 million lines.
printf 'image: %s\njobs:\n  print: {script: [seq 1 3000000]}\n' "$IMAGE" > "$work/logs/pipe.yml"
echo "$RUN sh -ec 'seq 1 3000000' >/dev/null" > "$work/logs.sh"
mkdir -p "$work/logs10"  # The same, 10 times over (214 MB): timed once, for pipe's RSS.
printf 'image: %s\njobs:\n  print: {script: [seq 1 25000000]}\n' "$IMAGE" > "$work/logs10/pipe.yml"

mkdir -p "$work/cpu"     # 12 CPU-bound jobs, each compressing 10 MB of random data.
squeeze='head -c 10000000 /dev/urandom | gzip -1 > /dev/null'
{
  echo "image: $IMAGE"; echo "jobs:"
  echo "  squeeze: {matrix: {N: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}, script: ['$squeeze']}"
} > "$work/cpu/pipe.yml"
echo "for n in \$(seq 12); do $RUN sh -ec '$squeeze' >/dev/null & done; wait" > "$work/cpu.sh"

mkdir -p "$work/dag100"  # 100 jobs: a root, then 11 chains of 9 jobs.
{
  echo "image: $IMAGE"; echo "jobs:"
  echo "  root: {script: [echo root]}"
  for c in $(seq 11); do
    echo "  c$c-1: {needs: [root], script: [echo $c 1]}"
    for i in $(seq 2 9); do echo "  c$c-$i: {needs: [c$c-$((i - 1))], script: [echo $c $i]}"; done
  done
} > "$work/dag100/pipe.yml"
cat > "$work/dag100.sh" <<SH
$RUN sh -ec 'echo root' >/dev/null
for c in \$(seq 11); do (for i in \$(seq 9); do $RUN sh -ec "echo \$c \$i" >/dev/null; done) & done
wait
SH

# Every job runs, as the CLI's containers do: pipe would otherwise reuse the earlier runs' jobs.
NEW="$PIPE run --pull never --no-reuse"
# The jobs' network exists before the first timing (pipe makes it once per engine).
(cd "$work/chain" && $NEW >/dev/null)

# Peak RSS of one run of the command `$1` in folder `$2`, in MB.
rss() { (cd "$2" && /usr/bin/time -f %M $1 2>&1 >/dev/null | tail -1) | awk '{printf "%.0f", $1 / 1024}'; }

printf '%-11s %9s %9s %6s %9s\n' workload "CLI s" "pipe s" ratio "pipe RSS"
for name in $ONLY; do
  cmds=(-n pipe "cd $work/$name && $NEW >/dev/null" -n cli "sh $work/$name.sh")
  # An older binary may not know a key the workload uses (`network`): it is left out there.
  old=$([ -n "$OLD" ] && (cd "$work/$name" && "$OLD" validate >/dev/null 2>&1) && echo "$OLD" || true)
  [ -n "$old" ] && cmds+=(-n old "cd $work/$name && $old run --pull never --no-reuse >/dev/null")
  hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$work/$name.json" "${cmds[@]}" >/dev/null
  python3 - "$work/$name.json" "$name" "$(rss "$NEW" "$work/$name")" "${old:+$(rss "$old run --pull never --no-reuse" "$work/$name")}" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
name, rss, old_rss = sys.argv[2], sys.argv[3], sys.argv[4]
line = f"{name:11} {r['cli']:9.3f} {r['pipe']:9.3f} {r['pipe'] / r['cli']:5.2f}x {rss:>6} MB"
if "old" in r:
    line += f"   old pipe {r['old']:6.3f} s {r['old'] / r['cli']:4.2f}x {old_rss} MB"
print(line)
PY
done
if [[ " $ONLY " == *" logs "* ]]; then
  printf '%-11s %9s %9s %6s %6s MB\n' logs-214MB - - - "$(rss "$NEW" "$work/logs10")"
fi
echo "(medians of $RUNS runs; ratio = pipe / CLI; RSS = pipe's peak resident memory, one run)"
