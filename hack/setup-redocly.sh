#!/usr/bin/env bash
# setup-redocly.sh installs the Redocly CLI, the OpenAPI linter that
# hack/lint.sh runs on internal/httpapi/openapi.json, and prints the path
# of its entry point (run it with node).
#
# The npm package @redocly/cli bundles its dependencies, so the script only
# `npm pack`s the pinned version (no install, so no package scripts run),
# checks the tarball against the integrity pinned below and unpacks it
# into the user cache:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/redocly/<version>/package/bin/cli.js
#
# Nothing is written into the repository. Running it again is a no-op that
# prints the same path. Needs node >= 20.19 and npm.
#
# Usage: node "$(hack/setup-redocly.sh)" lint internal/httpapi/openapi.json
set -euo pipefail

REDOCLY_VERSION=2.77.0
# sha512 integrity of redocly-cli-2.77.0.tgz as published on the npm registry.
REDOCLY_INTEGRITY='sha512-XUa4hURDWLPG9WukIXo+UBqa9VpeTndmLI5PHu9QDkwtwH990Jsgz9nl2m1pZjsWrKFPP7avn6etRxxDbuD2Bg=='

log() { printf 'setup-redocly: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

dest_dir="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/redocly/$REDOCLY_VERSION"
cli="$dest_dir/package/bin/cli.js"
if [[ -s "$cli" ]]; then
	printf '%s\n' "$cli"
	exit 0
fi

command -v node >/dev/null || die "node >= 20.19 is needed (Debian: apt-get install nodejs npm)"
. "$(dirname "$0")/lib/npm-pack.sh"

mkdir -p "$dest_dir"
work="$(mktemp -d "$dest_dir/.setup.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "fetching @redocly/cli@$REDOCLY_VERSION with npm pack"
tgz=$(npm_pack_verified @redocly/cli "$REDOCLY_VERSION" "$REDOCLY_INTEGRITY" "$work") || die "@redocly/cli@$REDOCLY_VERSION not fetched"

tar -xzf "$tgz" -C "$work"
[[ -s "$work/package/bin/cli.js" ]] || die "the package has no bin/cli.js"
rm -rf "$dest_dir/package"
mv "$work/package" "$dest_dir/package"
log "installed $cli"
printf '%s\n' "$cli"
