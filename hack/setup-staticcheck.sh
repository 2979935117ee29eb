#!/usr/bin/env bash
# setup-staticcheck.sh installs staticcheck (honnef.co/go/tools), the
# linter hack/lint.sh runs after go vet, and prints its path. The version
# is pinned below; `go install` checks the module against the Go checksum
# database. It is built once into the user cache:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/tools/staticcheck-<version>/staticcheck
#
# Running it again is a no-op that prints the same path.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2

dir="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/tools/staticcheck-$STATICCHECK_VERSION"
bin="$dir/staticcheck"
if [[ ! -x "$bin" ]]; then
  printf 'setup-staticcheck: installing staticcheck %s into %s\n' "$STATICCHECK_VERSION" "$dir" >&2
  mkdir -p "$dir"
  GOBIN="$dir" GOFLAGS=-mod=mod go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
printf '%s\n' "$bin"
