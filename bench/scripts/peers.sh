#!/usr/bin/env bash
# Installs the honeypots HoneyBee's service benchmarks compare against (Cowrie and
# OpenCanary, from PyPI) into throwaway virtualenvs under target/bench-peers/, owned by an
# unprivileged user of their own (Cowrie refuses to run as root). Nothing here is
# committed; delete the directory to start over. Used by `honeybee-bench --only services`.
#
#   bench/scripts/peers.sh            # install (idempotent)
#   BENCH_PEERS_DIR=/some/dir bench/scripts/peers.sh
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${BENCH_PEERS_DIR:-$repo/target/bench-peers}"
user="${BENCH_PEER_USER:-honeybee-peer}"
# Pinned so figures from different runs compare the same software.
cowrie_version="3.1.4"
opencanary_version="0.9.10"

if [ "$(id -u)" -ne 0 ]; then
    echo "peers.sh: run as root (it creates the unprivileged user $user)" >&2
    exit 1
fi
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
fi

mkdir -p "$dir"
python="$(command -v python3)"

venv() { # venv NAME PACKAGE==VERSION
    local v="$dir/$1"
    if [ ! -x "$v/bin/python" ]; then
        "$python" -m venv "$v"
    fi
    "$v/bin/pip" install --quiet "$2"
}

venv cowrie-venv "cowrie==$cowrie_version"
venv opencanary-venv "opencanary==$opencanary_version"

# The peers' working directories (configs and logs are written there by the bench at
# each run); the user needs to read the venvs and write its own directories.
mkdir -p "$dir/cowrie" "$dir/opencanary"
chown -R "$user" "$dir/cowrie" "$dir/opencanary"
chmod -R a+rX "$dir"
# Every parent must be traversable by the peer user.
p="$dir"
while [ "$p" != "/" ]; do
    chmod o+x "$p" 2>/dev/null || true
    p="$(dirname "$p")"
done
echo "peers installed in $dir (user $user): cowrie $cowrie_version, opencanary $opencanary_version"
