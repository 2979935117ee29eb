#!/usr/bin/env bash
# Regenerates the committed Go code of every .proto under proto/ (today
# proto/inference, the Open Inference Protocol, and proto/visionserve/v1,
# the OCR and face services; a new file is picked up when git sees it) with
# protoc (Debian's protobuf-compiler) and the Go plugins at the versions
# pinned below, installed with `go install` into bin/tools. Imports are
# relative to proto/ (import "visionserve/v1/geometry.proto").
#
#   hack/generate.sh          # rewrite the generated files in place
#   hack/generate.sh --check  # regenerate into a scratch directory and fail
#                             # if the result differs from what is committed
#                             # (hack/lint.sh runs this, so CI fails on drift)
#
# The generated files name the protoc and plugin versions in their headers,
# so a different protoc also shows up as a difference: use the one
# hack/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12     # google.golang.org/protobuf, as in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2  # google.golang.org/grpc/cmd/protoc-gen-go-grpc

check=false
if [[ "${1:-}" == "--check" ]]; then check=true; fi

command -v protoc >/dev/null || { echo "generate: protoc not found; run hack/setup.sh (Debian package protobuf-compiler)" >&2; exit 1; }

tools="$PWD/bin/tools"
want_go="$tools/protoc-gen-go-$PROTOC_GEN_GO_VERSION"
want_grpc="$tools/protoc-gen-go-grpc-$PROTOC_GEN_GO_GRPC_VERSION"
if [[ ! -x "$want_go" || ! -x "$want_grpc" ]]; then
  echo "generate: installing protoc-gen-go $PROTOC_GEN_GO_VERSION and protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION into bin/tools" >&2
  scratch=$(mktemp -d)
  GOBIN="$scratch" GOFLAGS=-mod=mod go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  GOBIN="$scratch" GOFLAGS=-mod=mod go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  mkdir -p "$tools"
  mv "$scratch/protoc-gen-go" "$want_go"
  mv "$scratch/protoc-gen-go-grpc" "$want_grpc"
  rm -rf "$scratch"
fi
# protoc finds plugins by name on PATH; give it the pinned ones only.
plugins=$(mktemp -d)
trap 'rm -rf "$plugins" ${out:+"$out"}' EXIT
ln -s "$want_go" "$plugins/protoc-gen-go"
ln -s "$want_grpc" "$plugins/protoc-gen-go-grpc"

out=$(mktemp -d)
protos=$(cd proto && git ls-files --cached --others --exclude-standard '*.proto')
(cd proto && PATH="$plugins:$PATH" protoc -I . \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  $protos)

if $check; then
  status=0
  while IFS= read -r f; do
    rel=${f#"$out"/}
    if ! cmp -s "$f" "proto/$rel"; then
      echo "generate: proto/$rel is stale; run make generate and commit the result" >&2
      diff -u "proto/$rel" "$f" | head -40 >&2 || true
      status=1
    fi
  done < <(find "$out" -name '*.go' | sort)
  while IFS= read -r f; do
    if [[ ! -f "$out/${f#proto/}" ]]; then
      echo "generate: $f has no .proto source any more; delete it" >&2
      status=1
    fi
  done < <(git ls-files 'proto/*.pb.go')
  if ((status == 0)); then echo "generate: generated code is up to date" >&2; fi
  exit $status
fi
(cd "$out" && find . -name '*.go' -print0) | while IFS= read -r -d '' f; do
  mkdir -p "proto/$(dirname "$f")"
  cp "$out/$f" "proto/$f"
done
echo "generate: ok" >&2
