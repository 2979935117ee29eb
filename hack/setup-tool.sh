#!/usr/bin/env bash
# setup-tool.sh NAME builds one of the Go programs the image and cluster
# scripts run, from the Go module proxy at a pinned version, caches it and
# prints its path:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/tools/<name>-<version>-<go version>/<name>
#
#   syft   github.com/anchore/syft: the SBOM of each image (hack/image.sh)
#   helm   helm.sh/helm/v3: installs deploy/helm in the local cluster (test/fleet)
#
# The first build of each takes a few minutes on 2 cores; afterwards the
# script returns at once. Nothing is written into the repository.
set -euo pipefail

name=${1:?usage: setup-tool.sh syft|helm}
case $name in
syft) pkg=github.com/anchore/syft/cmd/syft version=v1.57.2 ldflags="-X main.version=1.57.2" ;;
helm) pkg=helm.sh/helm/v3/cmd/helm version=v3.16.4 ldflags="-X helm.sh/helm/v3/internal/version.version=v3.16.4" ;;
*) echo "setup-tool: unknown tool $name (syft, helm)" >&2; exit 2 ;;
esac

log() { printf 'setup-tool: %s\n' "$*" >&2; }
dir="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/tools/$name-$version-$(go env GOVERSION)"
bin="$dir/$name"
if [[ ! -x $bin ]]; then
	log "building $name $version (first time only; a few minutes)"
	start=$SECONDS
	mkdir -p "$dir"
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	GOBIN=$tmp CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 19 go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version"
	mv -f "$tmp/$name" "$bin"
	log "built $name in $((SECONDS - start))s"
fi
printf '%s\n' "$bin"
