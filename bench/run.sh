#!/usr/bin/env bash
# Benchmarks pipe against the floor: the same containers started with the plain `docker run`
# CLI as soon as their needs finish. Prints medians and ratios (hyperfine).
#   bench/run.sh            # needs a Docker engine (scripts/docker-up.sh) and hyperfine
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
IMAGE=pipe-test/busybox:1

command -v hyperfine >/dev/null || { echo "bench needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
cargo build --release --quiet
PIPE=$PWD/target/release/pipe
[ -n "${CARGO_TARGET_DIR:-}" ] && PIPE=$CARGO_TARGET_DIR/release/pipe

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' > "$ctx/Dockerfile"
  docker build -q -t "$IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The fan-out: 1 → 8 → 1.
mkdir -p "$work/fanout"
{
  echo "image: $IMAGE"
  echo "jobs:"
  echo "  first: {stage: build, script: [echo first]}"
  echo "  mid: {stage: test, matrix: {N: [1, 2, 3, 4, 5, 6, 7, 8]}, script: [echo mid \$N]}"
  echo "  last: {stage: deploy, script: [echo last]}"
} > "$work/fanout/pipe.yml"
cat > "$work/fanout-docker.sh" <<SH
docker run --rm $IMAGE sh -ec 'echo first' >/dev/null
for n in 1 2 3 4 5 6 7 8; do docker run --rm -e N=\$n $IMAGE sh -ec 'echo mid \$N' >/dev/null & done
wait
docker run --rm $IMAGE sh -ec 'echo last' >/dev/null
SH

# The chain: 6 jobs, each needing the one before.
mkdir -p "$work/chain"
{
  echo "image: $IMAGE"
  echo "jobs:"
  echo "  j1: {needs: [], script: [echo 1]}"
  for i in 2 3 4 5 6; do echo "  j$i: {needs: [j$((i - 1))], script: [echo $i]}"; done
} > "$work/chain/pipe.yml"
cat > "$work/chain-docker.sh" <<SH
for i in 1 2 3 4 5 6; do docker run --rm $IMAGE sh -ec "echo \$i" >/dev/null; done
SH

# A generated 2,000-job pipeline for `pipe validate`.
mkdir -p "$work/big"
{
  echo "image: $IMAGE"
  echo "jobs:"
  for i in $(seq 0 1999); do
    if [ "$i" -eq 0 ]; then echo "  j0: {stage: build, script: [echo 0]}"
    else echo "  j$i: {stage: test, needs: [j$((i / 2))], env: {N: '$i'}, timeout: 5m, script: [echo \$N, make test]}"; fi
  done
} > "$work/big/pipe.yml"

# The same number of jobs over the five stages without `needs`: every job waits for every job
# of the earlier stages (1.6 million dependencies).
mkdir -p "$work/stages"
{
  echo "image: $IMAGE"
  echo "jobs:"
  stages=(build test security-scan deploy release)
  for i in $(seq 0 1999); do echo "  j$i: {stage: ${stages[$((i * 5 / 2000))]}, script: [echo $i]}"; done
} > "$work/stages/pipe.yml"

# pipe's jobs are isolated from each other (network `pipe-jobs`, inter-container traffic off),
# which costs each container with a network of its own some setup. So the floor is measured
# twice: plain `docker run` on the default bridge (jobs can reach each other), and the same
# containers on the isolated network pipe uses.
docker network inspect pipe-jobs >/dev/null 2>&1 || (cd "$work/chain" && $PIPE run --pull never >/dev/null)
for case in fanout chain; do
  sed 's/docker run --rm /docker run --rm --network pipe-jobs /' "$work/$case-docker.sh" > "$work/$case-isolated.sh"
done

bench() { # name, pipe command, floor command, isolated floor command
  hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/$1.json" \
    -n "pipe $1" "$2" -n "docker CLI $1" "$3" -n "isolated $1" "$4" >/dev/null
  python3 - "$work/$1.json" "$1" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
name = sys.argv[2]
p, d, i = r[f"pipe {name}"], r[f"docker CLI {name}"], r[f"isolated {name}"]
print(f"{name:8} pipe {p:6.3f} s   docker CLI {d:6.3f} s   ratio {p / d:4.2f}x   "
      f"docker CLI isolated {i:6.3f} s   ratio {p / i:4.2f}x  (median of runs)")
PY
}

bench fanout "cd $work/fanout && $PIPE run --pull never >/dev/null" "sh $work/fanout-docker.sh" "sh $work/fanout-isolated.sh"
bench chain "cd $work/chain && $PIPE run --pull never >/dev/null" "sh $work/chain-docker.sh" "sh $work/chain-isolated.sh"
for case in big stages; do
  hyperfine --style basic --warmup 2 --runs 20 --export-json "$work/validate-$case.json" "cd $work/$case && $PIPE validate" >/dev/null
  python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['results'][0]['median']; print(f'validate 2,000 jobs ({sys.argv[2]}): {m*1000:.1f} ms (median)')" "$work/validate-$case.json" "$([ $case = big ] && echo needs || echo 'stage order only')"
done
