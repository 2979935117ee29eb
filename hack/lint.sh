#!/usr/bin/env bash
# Static checks: formatting, vet, and a tidy go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "lint: gofmt needed:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
cp go.mod /tmp/go.mod.lint.$$ && cp go.sum /tmp/go.sum.lint.$$
go mod tidy
if ! diff -q go.mod /tmp/go.mod.lint.$$ >/dev/null || ! diff -q go.sum /tmp/go.sum.lint.$$ >/dev/null; then
  echo "lint: go mod tidy changed go.mod/go.sum; commit the tidy result" >&2
  git --no-pager diff -- go.mod go.sum >&2 || true
  exit 1
fi
rm -f /tmp/go.mod.lint.$$ /tmp/go.sum.lint.$$
# Generated code must be what the committed .proto files generate.
hack/generate.sh --check
echo "lint: ok" >&2
