#!/usr/bin/env bash
# Runs every test. This is what `make test` and CI (.ci/run) call.
#
# Tests that need the shared models and data (../shared, or
# $VISIONSERVE_SHARED) skip without them on a developer machine and fail
# when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
export VISIONSERVE_SHARED=${VISIONSERVE_SHARED:-$(cd .. && pwd)/shared}

step() { printf '\n=== %s\n' "$*" >&2; }

step "dependencies"
hack/setup.sh
# The ONNX engine's tests load the library the setup script caches
# (~/.cache/visionserve/onnxruntime); it prints the path.
VISIONSERVE_ONNXRUNTIME_LIB=${VISIONSERVE_ONNXRUNTIME_LIB:-$(hack/setup-onnxruntime.sh)}
export VISIONSERVE_ONNXRUNTIME_LIB
# The shared gallery store's tests start their own PostgreSQL servers in
# temporary directories (internal/gallery/pgtest); this finds or installs
# the server binaries.
VISIONSERVE_PG_BIN=${VISIONSERVE_PG_BIN:-$(hack/setup-postgres.sh)}
export VISIONSERVE_PG_BIN
# The operator's envtest suites run a real kube-apiserver (built from source
# once, cached in ~/.cache/visionserve/envtest) and Debian's etcd.
KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(hack/setup-envtest.sh)}
export KUBEBUILDER_ASSETS

step "lint"
hack/lint.sh
hack/generate-operator.sh --check

step "tests (unit, integration, e2e with the real engine)"
go test -count=1 -timeout 20m ./...

step "race detector (-short: the long real-data evaluations already ran above)"
go test -count=1 -race -short -timeout 20m $(go list ./... | grep -v /test/e2e)

step "fuzz the image decoder briefly"
go test ./internal/imageio -run '^$' -fuzz FuzzDecode -fuzztime "${FUZZTIME:-30s}"

step "fuzz the inference-protocol request decoders briefly"
go test ./internal/oip -run '^$' -fuzz FuzzDecodeRequest -fuzztime "${FUZZTIME_OIP:-10s}"
go test ./internal/grpcapi -run '^$' -fuzz FuzzDecodeInfer -fuzztime "${FUZZTIME_OIP:-10s}"

step "fuzz the credential and job request parsers briefly"
for target in "auth FuzzVerifyJWT" "auth FuzzParseJWKS" "jobs FuzzParseRequest"; do
  set -- $target
  go test "./internal/$1" -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZTIME_PARSERS:-10s}"
done

echo >&2
echo "test: all passed" >&2
