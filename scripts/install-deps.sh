#!/usr/bin/env bash
# Installs what WhaleWall and its tests need on Debian, as root. Idempotent: installs only what
# is missing and runs `apt-get update` at most once.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: must run as root" >&2
    exit 1
fi
if ! command -v dotnet >/dev/null 2>&1; then
    echo "install-deps: the .NET SDK is missing: 'dotnet' is not on PATH. Install the .NET 10 SDK first (https://dot.net), then re-run." >&2
    exit 1
fi

# libseccomp2: the daemon's sandbox; debootstrap + docker-compose: the image tests (base images are made
# locally, there is no image registry), systemd: systemd-analyze verifies deploy/whalewall.service
# iperf3: the datapath benchmark; postgresql: server binaries for the persistence tests (they run their own)
# prometheus: the dashboard test runs its own server against the daemon (the packaged service never starts)
wanted=(nftables libnftables1 libseccomp2 busybox-static iproute2 iptables ca-certificates util-linux tar debootstrap docker-compose systemd iperf3 postgresql prometheus)
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

# A Docker engine: keep any engine that is already there (docker-ce, docker.io, ...).
if command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ]; then
    echo "install-deps: docker engine present: $(command -v dockerd || ls /usr/sbin/dockerd /usr/bin/dockerd 2>/dev/null | head -1)"
else
    missing+=(docker.io)
fi

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: everything is installed"
    exit 0
fi

# The tests start their own PostgreSQL; do not let the package create (and start) a system cluster.
if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
fi

# The tests start their own Prometheus; the package's service must neither start nor be enabled.
# A policy-rc.d that refuses every start (exit 101) is in place for the install; it is removed
# afterwards only if this script created it.
policy_rc=/usr/sbin/policy-rc.d
created_policy_rc=0
remove_policy_rc() {
    if [ "$created_policy_rc" = 1 ]; then
        rm -f "$policy_rc"
    fi
}
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\n# install-deps (WhaleWall): no service starts during this install\nexit 101\n' >"$policy_rc"
    chmod 755 "$policy_rc"
    created_policy_rc=1
    trap remove_policy_rc EXIT
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    # The package enables its unit; undo that (works without a running systemd too).
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/prometheus ]; then
        update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
fi
remove_policy_rc
created_policy_rc=0
echo "install-deps: done"
