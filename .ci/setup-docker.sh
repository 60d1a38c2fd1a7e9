#!/usr/bin/env bash
# Makes a Docker engine and the local NATS image available on a registry-less
# Debian machine (run as root): installs Debian's docker.io and nats-server,
# starts dockerd if none answers, builds local/nats:2.9 and clears containers
# and networks that an earlier testcontainers run left behind (no Ryuk here).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v nats-server >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io nats-server >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup-docker: starting dockerd (log: /var/log/dockerd.log)"
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then break; fi
    if (( i % 5 == 0 )); then echo "setup-docker: waiting for dockerd (${i}s)"; fi
    if (( i == 60 )); then
      echo "setup-docker: dockerd did not answer within 60 s; tail of its log:" >&2
      tail -n 30 /var/log/dockerd.log >&2 || true
      exit 1
    fi
    sleep 1
  done
fi
echo "setup-docker: docker $(docker version --format '{{.Server.Version}}') is up"

"$root/deploy/nats-image/build.sh" local/nats:2.9

docker ps -aq --filter label=org.testcontainers=true | xargs -r docker rm -f >/dev/null
docker network prune -f --filter label=org.testcontainers=true >/dev/null
