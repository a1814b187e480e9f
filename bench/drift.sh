#!/usr/bin/env bash
# What drift costs a Docker job: the one engine call pipe makes after the job exits (GET
# /containers/ID/changes), timed with hyperfine on exited containers like a job's: one that
# changed nothing outside its workspace, and one that wrote FILES files under /etc and /usr.
# curl on the engine's socket makes the same request as pipe (curl's own start is included), beside
# an inspect of the container, the floor of any request to the engine.
#   bench/drift.sh                    # needs a Docker engine, hyperfine and curl
#   RUNS=50 FILES=1000 bench/drift.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
FILES=${FILES:-200}
SOCKET=${DOCKER_HOST:-unix:///var/run/docker.sock}
SOCKET=${SOCKET#unix://}
. bench/common.sh

need hyperfine
need curl
busybox_image

label="dev.pipe.bench=drift-$$"
clean=$(docker create --label "$label" "$IMAGE" sh -c 'mkdir -p /workspace /tmp && echo x > /workspace/out && echo y > /tmp/y')
dirty=$(docker create --label "$label" "$IMAGE" sh -c "mkdir -p /etc /usr/lib/x && for i in \$(seq $FILES); do echo \$i > /etc/f\$i; echo \$i > /usr/lib/x/g\$i; done")
trap 'docker rm -f "$clean" "$dirty" >/dev/null' EXIT
docker start -a "$clean" >/dev/null
docker start -a "$dirty" >/dev/null

changes() { echo "curl -sf --unix-socket $SOCKET http://localhost/containers/$1/changes -o /dev/null"; }
# The floor: a request the engine answers without looking at files (inspecting the container).
hyperfine -N --warmup 3 --runs "$RUNS" \
  -n "floor: inspect" "curl -sf --unix-socket $SOCKET http://localhost/containers/$clean/json -o /dev/null" \
  -n "drift, no changes" "$(changes "$clean")" \
  -n "drift, $((2 * FILES)) files in system paths" "$(changes "$dirty")"
