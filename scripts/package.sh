#!/usr/bin/env bash
# Builds the Debian packages into target/debian/ with cargo-deb (crates.io):
#   honeybee-agent_VERSION_ARCH.deb  the sensor (agents/Cargo.toml [package.metadata.deb])
#   honeybee_VERSION_ARCH.deb        core, CLI and dashboard (Cargo.toml), carrying the
#                                    agent package for the dashboard's sensor installer
# and target/debian/honeybee-agent.deb, the agent package under a fixed name.
#
# Usage: scripts/package.sh [--debug] [--no-build] [--fast]
#   --debug     package the dev-profile binaries (target/debug) instead of release ones:
#               what tests/packaging.rs does, as a release build of the workspace takes
#               many minutes on a small machine. Never ship those.
#   --no-build  package what is already built.
#   --fast      faster compression, bigger .debs.
# Needs dpkg-dev (dpkg-shlibdeps for the library dependencies); installs cargo-deb with
# `cargo install cargo-deb --locked` when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
deb_flags=()
for arg in "$@"; do
	case "$arg" in
	--debug) profile=dev ;;
	--no-build) build=0 ;;
	--fast) deb_flags+=(--fast) ;;
	*)
		echo "usage: scripts/package.sh [--debug] [--no-build] [--fast]" >&2
		exit 2
		;;
	esac
done

if ! cargo deb --version >/dev/null 2>&1; then
	echo "package.sh: installing cargo-deb" >&2
	cargo install cargo-deb --locked
fi
command -v dpkg-shlibdeps >/dev/null || {
	echo "package.sh: dpkg-shlibdeps missing: apt-get install dpkg-dev" >&2
	exit 1
}

if [ "$build" = 1 ]; then
	cargo build --profile "$profile" -p honeybee-agent --bin honeybee-agent
	cargo build --profile "$profile" -p honeybee --bin honeybee
fi

out=target/debian
mkdir -p "$out"
# cargo-deb prints the path of the package it wrote on its last line.
agent_deb=$(cargo deb -p honeybee-agent --no-build --profile "$profile" "${deb_flags[@]}" --output "$out/" | tail -n 1)
cp -f "$agent_deb" "$out/honeybee-agent.deb"
core_deb=$(cargo deb -p honeybee --no-build --profile "$profile" "${deb_flags[@]}" --output "$out/" | tail -n 1)

echo "$agent_deb"
echo "$core_deb"
