#!/usr/bin/env bash
# setup-postgres.sh installs the PostgreSQL server binaries that the tests
# of the shared gallery store start (internal/gallery/pgtest: initdb and
# pg_ctl in a temporary directory on 127.0.0.1; nothing is started here,
# and the machine's own clusters are left alone). It installs the Debian
# package only when no server binaries are found, and prints their
# directory, which the tests read from $VISIONSERVE_PG_BIN.
#
# Usage: export VISIONSERVE_PG_BIN="$(hack/setup-postgres.sh)"
set -euo pipefail

log() { printf 'setup-postgres: %s\n' "$*" >&2; }

find_bin() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then printf '%s\n' "$d"; return 0; fi
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then printf '%s\n' "$d"; return 0; fi
	done
	return 1
}

if ! dir=$(find_bin); then
	log "installing the Debian package postgresql (server binaries for the tests)"
	sudo=""
	if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
	$sudo apt-get update -qq
	# The package's own cluster (and the service that would keep it
	# running) is not wanted: tests run their own short-lived servers.
	$sudo mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/visionserve-tests.conf >/dev/null
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
	dir=$(find_bin) || { log "error: postgresql installed but no initdb found"; exit 1; }
fi
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
	log "error: running as root, and there is no postgres user to run test servers as (PostgreSQL refuses root)"
	exit 1
fi
log "ok ($("$dir/postgres" --version))"
printf '%s\n' "$dir"
