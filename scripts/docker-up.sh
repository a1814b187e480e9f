#!/usr/bin/env bash
# Makes sure a Docker engine answers and a static busybox exists for the test image.
# On Debian without them: installs docker.io and busybox-static, starts dockerd in the background.
set -euo pipefail

if docker info >/dev/null 2>&1 && [ -x /bin/busybox ]; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /bin/busybox ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static >/dev/null
fi
if docker info >/dev/null 2>&1; then exit 0; fi
# A dockerd killed without cleanup leaves its pid file, and a new one refuses to start.
if ! pgrep -x dockerd >/dev/null; then rm -f /var/run/docker.pid; fi
if ! pgrep -x dockerd >/dev/null; then
  # Its own session: a dockerd left in the caller's process group dies with it.
  setsid nohup dockerd >/tmp/dockerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 1
done
echo "dockerd did not answer within 60 s:" >&2
tail -n 30 /tmp/dockerd.log >&2 || true
exit 1
