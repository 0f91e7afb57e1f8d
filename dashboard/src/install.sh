#!/bin/sh
# HoneyBee sensor installer, served by the dashboard at /install.sh. The line that runs it
# (`honeybee token create --install-command`, or the dashboard's Enrol page) is:
#
#   curl -fsS --proto =https -k --pinnedpubkey 'sha256//PIN' 'https://HOST:PORT/install.sh' \
#     | sh -s -- --server 'https://HOST:PORT' --pin 'sha256//PIN' --sha256 HEX --token 'hbt1…'
#
# Trust: curl checks the dashboard's TLS key against the pin in the line (-k only skips
# the public-CA check a self-signed dashboard cannot pass; the pin is stricter). The
# package is then fetched with the same pin and installed only if its SHA-256 is the one
# in the line, so a tampered package on the server, a mirror or a proxy is refused. The
# token enrols over QUIC and checks the core's CA against the pin the token carries.
#
# Run as root. Needs curl, sha256sum and dpkg; starts the unit when systemd runs.
# HONEYBEE_AGENT_DATA_DIR moves the agent's data directory (default /var/lib/honeybee-agent).
# Without systemd running, it installs and enrols, then says how to start the agent.
set -eu

die() {
	echo "honeybee install: $*" >&2
	exit 1
}

# Everything runs from main, called on the last line: a download cut short runs nothing.
main() {
	server=
	pin=
	sha=
	token=
	core=
	while [ $# -gt 0 ]; do
		[ $# -ge 2 ] || die "$1 needs a value"
		case "$1" in
		--server) server=$2 ;;
		--pin) pin=$2 ;;
		--sha256) sha=$2 ;;
		--token) token=$2 ;;
		--core) core=$2 ;;
		*) die "unknown argument $1 (known: --server --pin --sha256 --token --core)" ;;
		esac
		shift 2
	done
	[ -n "$server" ] && [ -n "$pin" ] && [ -n "$sha" ] && [ -n "$token" ] ||
		die "usage: sh -s -- --server https://HOST:PORT --pin sha256//PIN --sha256 HEX --token TOKEN"
	case "$server" in
	https://*) ;;
	*) die "--server must be an https:// URL" ;;
	esac
	case "$pin" in
	sha256//*) ;;
	*) die "--pin must be sha256//BASE64" ;;
	esac
	case "$sha" in
	*[!0-9a-f]*) die "--sha256 must be 64 lowercase hex digits" ;;
	esac
	[ ${#sha} -eq 64 ] || die "--sha256 must be 64 lowercase hex digits"
	[ "$(id -u)" -eq 0 ] || die "run this as root (the line pipes into sh; use sudo sh if you are not root)"
	for tool in curl sha256sum dpkg; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install $tool)"
	done
	data_dir=${HONEYBEE_AGENT_DATA_DIR:-/var/lib/honeybee-agent}

	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT INT TERM
	deb="$tmp/honeybee-agent.deb"

	echo "honeybee install: downloading the agent package from $server"
	curl -fsS --proto =https -k --pinnedpubkey "$pin" -o "$deb" "$server/install/honeybee-agent.deb" ||
		die "download failed (is the dashboard at $server, with the key the pin names?)"
	got=$(sha256sum "$deb" | cut -d ' ' -f 1)
	[ "$got" = "$sha" ] ||
		die "the package's SHA-256 is $got but the command expects $sha: refusing to install it"

	echo "honeybee install: installing the package (SHA-256 $sha)"
	dpkg -i "$deb" || die "dpkg -i failed"

	if [ -e "$data_dir/agent.toml" ]; then
		echo "honeybee install: $data_dir is already enrolled; keeping it (the token is not used)"
	else
		echo "honeybee install: enrolling with the core"
		if [ -n "$core" ]; then
			runuser -u honeybee -- honeybee-agent enroll --token "$token" --data-dir "$data_dir" --core "$core" ||
				die "enrolment failed"
		else
			runuser -u honeybee -- honeybee-agent enroll --token "$token" --data-dir "$data_dir" ||
				die "enrolment failed"
		fi
	fi

	# systemd's own test for "booted with systemd" (a container may have systemctl
	# without it running); the variable is for tests.
	if [ -d "${HONEYBEE_SYSTEMD_RUNTIME:-/run/systemd/system}" ]; then
		systemctl enable --now honeybee-agent.service || die "systemctl could not start honeybee-agent"
		echo "honeybee install: done; the sensor runs as honeybee-agent.service (journalctl -u honeybee-agent)"
	else
		echo "honeybee install: done; no systemd here: start it with"
		echo "  runuser -u honeybee -- honeybee-agent run --data-dir $data_dir"
	fi
}

main "$@"
