#!/usr/bin/env bash
# Installs what is missing (nftables, libnftables, a Docker engine), makes sure a Docker daemon
# runs, builds WhaleWall and starts the daemon in the foreground. As root, on Debian.
# Configuration comes from the environment (see README: WHALEWALL_*, DOCKER_HOST, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
export DOCKER_HOST
socket=${DOCKER_HOST#unix://}
docker_up() { /usr/bin/docker -H "$DOCKER_HOST" version >/dev/null 2>&1 || docker -H "$DOCKER_HOST" version >/dev/null 2>&1; }

if ! docker_up; then
    if [ "$DOCKER_HOST" != "unix:///var/run/docker.sock" ]; then
        echo "run: no Docker daemon answers at $DOCKER_HOST" >&2
        exit 1
    fi
    if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null; then
        echo "run: started docker.service"
    else
        echo "run: starting dockerd (log: /var/log/whalewall-dockerd.log)"
        nohup dockerd >/var/log/whalewall-dockerd.log 2>&1 </dev/null &
    fi
    for _ in $(seq 1 60); do docker_up && break; sleep 0.5; done
    docker_up || { echo "run: dockerd did not come up; see /var/log/whalewall-dockerd.log" >&2; exit 1; }
fi

dotnet build src/Host -c Release -nologo -v quiet
exec dotnet src/Host/bin/Release/net10.0/whalewall.dll run
