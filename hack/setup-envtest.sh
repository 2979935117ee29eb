#!/usr/bin/env bash
# setup-envtest.sh prepares the control plane the envtest suites run against
# (a real kube-apiserver and etcd) and prints the directory holding both, for
# KUBEBUILDER_ASSETS:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/envtest/k8s-<version>/{kube-apiserver,etcd}
#
# - kube-apiserver is built from the k8s.io/kubernetes Go module by the small
#   separate module in hack/kube-apiserver (so the main go.mod never requires
#   k8s.io/kubernetes). The first build takes about 5 minutes on 2 cores; after
#   that the cached binary is reused. Only the Go module proxy is needed.
# - etcd is Debian's etcd-server (3.4), installed when missing; the cache
#   directory holds a symlink to /usr/bin/etcd.
#
# Nothing is written into the repository. Running the script again is a no-op
# that prints the same path. Keep K8S_VERSION in step with hack/kube-apiserver/go.mod.
#
# Usage: export KUBEBUILDER_ASSETS="$(hack/setup-envtest.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.31.4

log() { printf 'setup-envtest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
dir="$cache_root/visionserve/envtest/k8s-$K8S_VERSION"
mkdir -p "$dir"

# etcd from Debian.
if ! command -v etcd >/dev/null 2>&1 && [[ ! -x /usr/bin/etcd ]]; then
	log "installing etcd-server (Debian)"
	sudo=""
	if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[[ -x "$etcd_bin" ]] || die "etcd not found after installing etcd-server"
ln -sfn "$etcd_bin" "$dir/etcd"

# kube-apiserver from source, once per version.
if [[ ! -x "$dir/kube-apiserver" ]] || ! "$dir/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes v$K8S_VERSION"; then
	grep -q "k8s.io/kubernetes v$K8S_VERSION\$" hack/kube-apiserver/go.mod ||
		die "hack/kube-apiserver/go.mod does not require k8s.io/kubernetes v$K8S_VERSION"
	log "building kube-apiserver v$K8S_VERSION from k8s.io/kubernetes (first time only; about 5 minutes on 2 cores)"
	tmp=$(mktemp "$dir/.kube-apiserver.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	start=$SECONDS
	pkg=k8s.io/component-base/version
	(cd hack/kube-apiserver && CGO_ENABLED=0 nice -n 19 go build -trimpath -o "$tmp" \
		-ldflags "-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=31 -X $pkg.gitTreeState=clean" .) ||
		die "building kube-apiserver failed"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$dir/kube-apiserver" # same directory: a concurrent run never sees half a file
	log "built kube-apiserver in $((SECONDS - start))s"
fi
printf '%s\n' "$dir"
