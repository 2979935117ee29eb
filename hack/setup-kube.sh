#!/usr/bin/env bash
# setup-kube.sh builds the Kubernetes components (apiserver, controller-manager,
# scheduler, kubelet, proxy) from the k8s.io/kubernetes Go module into ONE
# multi-call binary (hack/kube), caches it and prints its path:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/kube/<key>/kube
#
# <key> is a digest of hack/kube/go.mod, hack/kube/go.sum, main.go and the Go
# version, so a change to any of them builds anew and nothing stale is reused.
# The envtest suites use its kube-apiserver (hack/setup-envtest.sh links it),
# the local cluster all of it (hack/cluster.sh): CI builds Kubernetes once.
#
# The first build takes 10 to 15 minutes on 2 busy cores (about 5 with a warm
# Go build cache) and about 400 MB of module downloads from the Go module
# proxy; afterwards the script checks `kube apiserver --version` and returns at
# once. Running it again is a no-op that prints the same path.
#
# Usage: kube=$(hack/setup-kube.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' hack/kube/go.mod)
K8S_VERSION=${K8S_VERSION#v}

log() { printf 'setup-kube: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -n $K8S_VERSION ]] || die "hack/kube/go.mod does not require k8s.io/kubernetes"
key=$( (cat hack/kube/go.mod hack/kube/go.sum hack/kube/main.go; go env GOVERSION) | sha256sum | cut -c1-16)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/kube/$key"
bin="$dir/kube"
mkdir -p "$dir"

if [[ ! -x $bin ]] || ! "$bin" apiserver --version 2>/dev/null | grep -qx "Kubernetes v$K8S_VERSION"; then
	log "building Kubernetes v$K8S_VERSION (apiserver, controller-manager, scheduler, kubelet, proxy) from k8s.io/kubernetes into $dir (first time only; 10-15 minutes on 2 cores)"
	tmp=$(mktemp "$dir/.kube.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	start=$SECONDS
	pkg=k8s.io/component-base/version
	minor=${K8S_VERSION#*.}; minor=${minor%%.*}
	(cd hack/kube && CGO_ENABLED=0 nice -n 19 go build -trimpath -o "$tmp" \
		-ldflags "-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" .) ||
		die "building the kube binary failed"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin" # same directory: a concurrent run never sees half a file
	log "built $bin in $((SECONDS - start))s"
fi
printf '%s\n' "$bin"
