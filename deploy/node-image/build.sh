#!/usr/bin/env bash
# Builds a Node.js base image FROM scratch out of the host's node binary and npm,
# for machines that cannot pull images (deploy/Dockerfile then builds on it with
# --build-arg NODE_IMAGE=local/node:20).
#
#   deploy/node-image/build.sh [image]      # default local/node:20
#   FORCE=1 deploy/node-image/build.sh      # rebuild even if the image exists
#   NODE_BIN=/path/node NPM_DIR=/path/npm ...   # another node binary / npm package
#
# An existing image is reused unless it was built from another node version.
set -euo pipefail

image="${1:-local/node:20}"
bin="${NODE_BIN:-$(command -v node || true)}"
[[ -n "$bin" && -x "$bin" ]] || { echo "node-image: no node binary found; install Node.js 20" >&2; exit 1; }
bin="$(readlink -f "$bin")"
version="$("$bin" --version)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# npm is a JS package next to node: where `npm` resolves (…/lib/node_modules/npm/bin/npm-cli.js).
npm_dir="${NPM_DIR:-}"
if [[ -z "$npm_dir" ]] && command -v npm >/dev/null 2>&1; then
  npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
fi
[[ -n "$npm_dir" && -f "$npm_dir/bin/npm-cli.js" ]] || { echo "node-image: npm not found (set NPM_DIR)" >&2; exit 1; }

if [[ "${FORCE:-0}" != 1 ]] && built="$(docker image inspect -f '{{index .Config.Labels "org.presence.node-version"}}' "$image" 2>/dev/null)"; then
  if [[ "$built" == "$version" ]]; then
    echo "node-image: $image exists with node $version (FORCE=1 to rebuild)"
    exit 0
  fi
  echo "node-image: $image has node ${built:-?}, the host has $version: rebuilding"
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules" "$root/etc/ssl/certs" "$root/tmp" "$root/root" "$ctx/home/node"
cp "$bin" "$root/usr/local/bin/node"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
cp "$here/Dockerfile" "$ctx/Dockerfile"

# Every absolute path ldd prints (`libc.so.6 => /lib/...` and the bare loader
# `/lib64/ld-linux-x86-64.so.2`), copied with its directory, links resolved.
ldd "$bin" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# Users: root and the non-root `node` (1000:1000) the official image has too.
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
node:x:1000:1000:node:/home/node:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
node:x:1000:
nogroup:x:65534:
GROUP
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
chmod 1777 "$root/tmp"
chmod 0755 "$ctx/home/node" "$root/root"

# The legacy builder's deprecation notice is noise here: show output only on failure.
if ! out="$(docker build -q --build-arg "NODE_VERSION=${version#v}" -t "$image" "$ctx" 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
echo "node-image: built $image from node $version and npm $("$bin" -p "require('$npm_dir/package.json').version")"
