#!/usr/bin/env bash
# fleet-test.sh runs the tests of what deploy/ ships, for real (test/fleet):
#
#   hack/fleet-test.sh smoke [ARCH]   make image-smoke: build the images (the host's and ARCH), run ARCH's server image under podman
#   hack/fleet-test.sh cluster        make e2e-cluster: build the images, run them on a local Kubernetes
#   hack/fleet-test.sh all            both, building the images once (what hack/test.sh runs)
#
# They need root (buildah and mmdebstrap as root, the cluster's namespaces).
# On a machine that cannot run them they are skipped with the reason; under
# CI=true that is a failure, so CI cannot pass by skipping. The first run
# fills the caches under ~/.cache/visionserve (root filesystems, syft, helm,
# the Kubernetes binary): `hack/image.sh prepare` and `hack/setup-kube.sh` do
# that alone.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
arch=${2:-amd64}
export VISIONSERVE_SHARED=${VISIONSERVE_SHARED:-$(cd .. && pwd)/shared}
export TAG=${TAG:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export OUT=${OUT:-bin/image}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/hack/containers.conf}
t0=$SECONDS
step() { printf 'fleet-test [%4ds]: %s\n' "$((SECONDS - t0))" "$*" >&2; }

why=$(hack/cluster.sh check 2>&1) || {
	if [[ ${CI:-} == true ]]; then
		echo "fleet-test: CI=true and this machine cannot run the image and cluster tests: $why" >&2
		exit 1
	fi
	echo "fleet-test: SKIP (this machine cannot run them: $why); they need root and Linux namespaces" >&2
	exit 0
}
hack/setup-images.sh

images() {
	step "images ($1)"
	ARCHS=$1 hack/image.sh
}
smoke() {
	step "image smoke test ($1)"
	VISIONSERVE_IMAGE=localhost/visionserve:$TAG-$1 VISIONSERVE_IMAGE_ARCH=$([[ $1 == "$host" ]] || echo "$1") \
		go test ./test/fleet -run '^TestImageSmoke$' -count=1 -v -timeout 30m
}
cluster() {
	step "cluster e2e"
	hack/setup-tool.sh helm >/dev/null
	VISIONSERVE_IMAGE_DIR=$PWD/$OUT go test ./test/fleet -run '^TestE2ECluster$' -count=1 -v -timeout 60m
}

host=$(go env GOHOSTARCH)
case $what in
# a foreign arch is built with the host's, so $IMAGE:$TAG stays the index
# over both (built alone, it would be retagged as the foreign image)
smoke)
	if [[ $arch == "$host" ]]; then images "$arch"; else images "$host $arch"; fi
	smoke "$arch"
	;;
cluster) images amd64; cluster ;;
all) images amd64; smoke amd64; cluster ;;
*) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
step "done"
