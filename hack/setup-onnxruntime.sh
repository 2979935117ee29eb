#!/usr/bin/env bash
# setup-onnxruntime.sh installs the ONNX Runtime shared library that
# internal/engine/onnx loads, and prints its path on stdout.
#
# The library comes from the npm package onnxruntime-node, which bundles a
# plain CPU build of libonnxruntime for each platform. We only `npm pack` the
# package (no install, so none of its postinstall scripts run), check the
# tarball against the integrity pinned below, and extract the one file we need
# into the user cache:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/onnxruntime/<version>/libonnxruntime.so.1
#
# Nothing is written into the repository. Running the script again is a no-op
# that prints the same path. The Go side (onnx.LibraryPath) looks for the
# library in this order: explicit config, $VISIONSERVE_ONNXRUNTIME_LIB, then
# the cache path above; keep ORT_VERSION in step with onnx.RuntimeVersion.
#
# With --arch amd64|arm64 it installs that platform's library from the same
# package (for images of another architecture, hack/image.sh) into
# <version>/linux-<arch>/libonnxruntime.so.1 instead.
#
# Usage: hack/setup-onnxruntime.sh            # prints the library path
#        export VISIONSERVE_ONNXRUNTIME_LIB="$(hack/setup-onnxruntime.sh)"
#        hack/setup-onnxruntime.sh --arch arm64
set -euo pipefail

ORT_VERSION=1.30.0
# sha512 integrity of onnxruntime-node-1.30.0.tgz as published on the npm registry.
ORT_INTEGRITY='sha512-twhs1C2C/BFkz1yc5OY0KIU2GUq6DURO7hD4bx5Q2Qy3nAMJwRXW8xU3NVczE29VA9lolLOYepoD8fjTGOfIqw=='

log() { printf 'setup-onnxruntime: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) arch=x64 ;;
Linux/aarch64 | Linux/arm64) arch=arm64 ;;
*) die "unsupported platform $(uname -s)/$(uname -m); only Linux x86_64 and arm64 are packaged here" ;;
esac
host_arch=$arch
case "${1:-}/${2:-}" in
/) ;;
--arch/amd64 | --arch/x64) arch=x64 ;;
--arch/arm64 | --arch/aarch64) arch=arm64 ;;
*) die "usage: setup-onnxruntime.sh [--arch amd64|arm64]" ;;
esac

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
dest_dir="$cache_root/visionserve/onnxruntime/$ORT_VERSION"
lib="$dest_dir/libonnxruntime.so.1"
if [[ $arch != "$host_arch" ]]; then
	dest_dir="$dest_dir/linux-$arch"
	lib="$dest_dir/libonnxruntime.so.1"
fi

if [[ -s "$lib" ]]; then
	printf '%s\n' "$lib"
	exit 0
fi

command -v tar >/dev/null || die "tar is needed"
. "$(dirname "$0")/lib/npm-pack.sh"

mkdir -p "$dest_dir"
work="$(mktemp -d "$dest_dir/.setup.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "fetching onnxruntime-node@$ORT_VERSION (about 110 MB) with npm pack"
tgz=$(npm_pack_verified onnxruntime-node "$ORT_VERSION" "$ORT_INTEGRITY" "$work") || die "onnxruntime-node@$ORT_VERSION not fetched"

member="package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
tar -xzf "$tgz" -C "$work" "$member" || die "$member not found in the package"
[[ -s "$work/$member" ]] || die "$member is empty"

# Rename within the same directory so a concurrent run never sees half a file.
chmod 0644 "$work/$member"
mv -f "$work/$member" "$lib"
log "installed ONNX Runtime $ORT_VERSION ($arch)"
printf '%s\n' "$lib"
