#!/usr/bin/env bash
# setup-browser.sh installs what the web console's browser tests need
# (internal/ui/uitest): Debian's chromium, which the tests start headless
# through the DevTools protocol (github.com/chromedp/chromedp), and the
# axe-core accessibility checker, which they inject into the console's
# page. Nothing lands in the repository:
#
#   chromium        Debian package (apt), only when no chromium is found
#   axe-core        npm pack of the pinned version below (no install, so no
#                   package scripts run), checked against its registry
#                   integrity, axe.min.js extracted to
#                   ${XDG_CACHE_HOME:-~/.cache}/visionserve/axe-core/<version>/
#
# axe-core is MPL-2.0: it is fetched for the tests, never committed or
# embedded in the binary. Running the script again is a no-op. It prints
# two lines for the shell:
#
#   eval "$(hack/setup-browser.sh)"   # exports VISIONSERVE_CHROMIUM and VISIONSERVE_AXE
set -euo pipefail

AXE_VERSION=4.11.0
# sha512 integrity of axe-core-4.11.0.tgz as published on the npm registry.
AXE_INTEGRITY='sha512-ilYanEU8vxxBexpJd8cWM4ElSQq4QctCLKih0TSfjIfCQTeyH/6zVrmIJfLPrKTKJRbiG+cfnZbQIjAlJmF1jQ=='

log() { printf 'setup-browser: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_chromium() {
	local c
	for c in chromium chromium-browser; do
		if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
	done
	return 1
}

if ! chromium=$(find_chromium); then
	log "installing the Debian package chromium (headless browser for the console's tests)"
	sudo=""
	if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
	chromium=$(find_chromium) || die "chromium installed but not found on PATH"
fi

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
axe_dir="$cache_root/visionserve/axe-core/$AXE_VERSION"
axe="$axe_dir/axe.min.js"
if [[ ! -s "$axe" ]]; then
	command -v npm >/dev/null || die "npm is needed to fetch axe-core (Debian: apt-get install npm)"
	command -v openssl >/dev/null || die "openssl is needed to check the package integrity"
	mkdir -p "$axe_dir"
	work="$(mktemp -d "$axe_dir/.setup.XXXXXX")"
	trap 'rm -rf "$work"' EXIT
	log "fetching axe-core@$AXE_VERSION with npm pack"
	(cd "$work" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null 2>"$work/npm.log") ||
		{ cat "$work/npm.log" >&2; die "npm pack axe-core@$AXE_VERSION failed"; }
	tgz="$work/axe-core-$AXE_VERSION.tgz"
	[[ -f "$tgz" ]] || die "npm pack did not produce $tgz"
	got="sha512-$(openssl dgst -sha512 -binary "$tgz" | openssl base64 -A)"
	[[ "$got" == "$AXE_INTEGRITY" ]] || die "integrity mismatch for $tgz: want $AXE_INTEGRITY, got $got"
	tar -xzf "$tgz" -C "$work" package/axe.min.js package/LICENSE
	mv "$work/package/LICENSE" "$axe_dir/LICENSE"
	mv "$work/package/axe.min.js" "$axe"
fi

log "ok ($("$chromium" --version 2>/dev/null | head -1), axe-core $AXE_VERSION)"
printf 'export VISIONSERVE_CHROMIUM=%q\n' "$chromium"
printf 'export VISIONSERVE_AXE=%q\n' "$axe"
