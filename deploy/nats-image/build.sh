#!/usr/bin/env bash
# Builds a NATS image FROM scratch out of the host's nats-server binary (Debian's
# package: `apt-get install nats-server`), for machines that cannot pull images.
#
#   deploy/nats-image/build.sh [image]      # default local/nats:2.9
#   FORCE=1 deploy/nats-image/build.sh      # rebuild even if the image exists
#   NATS_SERVER_BIN=/path/nats-server ...   # another binary
set -euo pipefail

image="${1:-local/nats:2.9}"
bin="${NATS_SERVER_BIN:-/usr/sbin/nats-server}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "nats-image: $image exists (FORCE=1 to rebuild)"
  exit 0
fi
[[ -x "$bin" ]] || { echo "nats-image: $bin not found; apt-get install nats-server" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs"
cp "$bin" "$ctx/nats-server"
cp "$here/Dockerfile" "$ctx/Dockerfile"

# Every absolute path ldd prints (`libc.so.6 => /lib/...` and the bare loader
# `/lib64/ld-linux-x86-64.so.2`), copied with its directory, links resolved.
ldd "$bin" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done

# The legacy builder's deprecation notice is noise here: show output only on failure.
if ! out="$(docker build -q -t "$image" "$ctx" 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
echo "nats-image: built $image from $("$bin" --version)"
