# Sourced by the bench scripts (from the repository's root): the binary to time and the image.
IMAGE=pipe-test/busybox:1

# Stops when a tool the bench needs is missing: need TOOL [DEBIAN_PACKAGE].
need() {
  command -v "$1" >/dev/null || { echo "bench needs $1 (apt-get install ${2:-$1})" >&2; exit 1; }
}

# Sets PIPE: the binary given in PIPE, else this checkout's release build.
pipe_binary() {
  if [ -z "${PIPE:-}" ]; then
    cargo build --release --quiet
    PIPE=${CARGO_TARGET_DIR:-$PWD/target}/release/pipe
  fi
}

# The tests' tiny busybox image, built from the host's busybox: no registry is needed.
busybox_image() {
  docker image inspect "$IMAGE" >/dev/null 2>&1 && return
  local ctx
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' > "$ctx/Dockerfile"
  docker build -q -t "$IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}
