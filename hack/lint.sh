#!/usr/bin/env bash
# Static checks: formatting, vet, staticcheck, a tidy go.mod, an OpenAPI lint of the
# published API description, generated code up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "lint: gofmt needed:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
# staticcheck's default checks (bugs, deprecated APIs, dead code), pinned
# and cached by hack/setup-staticcheck.sh.
"$(hack/setup-staticcheck.sh)" ./...
# go.mod and go.sum must be tidy; -diff prints what tidying would change
# and leaves both files alone. It also wants go.sum in tidy's order, which
# `go mod tidy` keeps as it is when only the order differs (a merge):
# `go mod tidy -diff | patch -p1` applies the diff.
if ! tidy=$(go mod tidy -diff 2>&1); then
  echo "lint: go.mod/go.sum are not tidy; apply this with go mod tidy -diff | patch -p1 and commit the result:" >&2
  printf '%s\n' "$tidy" >&2
  exit 1
fi
# The published API description must pass a real OpenAPI linter: Redocly
# CLI's recommended rules (pinned, installed into ~/.cache by
# hack/setup-redocly.sh). Errors fail; warnings are printed.
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  node "$(hack/setup-redocly.sh)" lint --format=stylish internal/httpapi/openapi.json
# Generated code must be what the committed .proto files generate.
hack/generate.sh --check
echo "lint: ok" >&2
