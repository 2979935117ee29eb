#!/usr/bin/env bash
# setup-envtest.sh prepares the control plane the envtest suites run against
# (a real kube-apiserver and etcd) and prints the directory holding both, for
# KUBEBUILDER_ASSETS:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/envtest/k8s-<version>/{kube-apiserver,etcd}
#
# - kube-apiserver is the multi-call Kubernetes binary that hack/setup-kube.sh
#   builds once from the k8s.io/kubernetes Go module (hack/kube, a separate
#   module, so the main go.mod never requires k8s.io/kubernetes) and caches; the
#   directory holds a link to it named kube-apiserver. The local cluster
#   (hack/cluster.sh) runs the same binary, so Kubernetes is built once.
# - etcd is Debian's etcd-server (3.4), installed when missing; the cache
#   directory holds a symlink to /usr/bin/etcd.
#
# Nothing is written into the repository. Running the script again is a no-op
# that prints the same path. Keep K8S_VERSION in step with hack/kube/go.mod.
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

# kube-apiserver: a link to the multi-call binary, built once per version.
grep -q "k8s.io/kubernetes v$K8S_VERSION\$" hack/kube/go.mod ||
	die "hack/kube/go.mod does not require k8s.io/kubernetes v$K8S_VERSION"
kube=$(hack/setup-kube.sh) || die "hack/setup-kube.sh failed"
ln -sfn "$kube" "$dir/kube-apiserver"
"$dir/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes v$K8S_VERSION" ||
	die "$dir/kube-apiserver --version is not Kubernetes v$K8S_VERSION"
printf '%s\n' "$dir"
