#!/usr/bin/env bash
# setup-sysroot.sh ARCH prepares what cross-compiling the server (cgo:
# libtesseract) for ARCH needs on this amd64 Debian host, and prints the
# sysroot's path:
#
# - Debian's cross compiler (gcc-aarch64-linux-gnu), installed when missing;
# - a sysroot: the same Debian release for ARCH with libtesseract-dev,
#   libleptonica-dev and libc6-dev, made by mmdebstrap (maintainer scripts run
#   under qemu-user-static, hack/setup-qemu.sh) and cached in
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/sysroot/<suite>-<arch>-<key>.
#
# The host's own package database is left alone (no dpkg
# --add-architecture). hack/image.sh uses it as
#   CC="aarch64-linux-gnu-gcc --sysroot=DIR" PKG_CONFIG_SYSROOT_DIR=DIR ...
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: setup-sysroot.sh ARCH (arm64)}
case $arch in
arm64) cross=gcc-aarch64-linux-gnu triplet=aarch64-linux-gnu ;;
*) echo "setup-sysroot: unsupported architecture $arch" >&2; exit 1 ;;
esac
suite=bookworm
packages=libtesseract-dev,libleptonica-dev,libc6-dev
mirror=${DEBIAN_MIRROR:-http://deb.debian.org}
log() { printf 'setup-sysroot: %s\n' "$*" >&2; }

if ! command -v "$triplet-gcc" >/dev/null; then
	log "installing $cross (Debian)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$cross" >/dev/null
fi
key=$(sha256sum <<<"$suite $arch $packages v1" | cut -c1-12)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/sysroot/$suite-$arch-$key"
if [[ ! -e $dir/.complete ]]; then
	hack/setup-qemu.sh "$arch" >/dev/null
	log "making the $arch sysroot ($packages) with mmdebstrap (first time only, a few minutes)"
	rm -rf "$dir"
	mkdir -p "$(dirname "$dir")"
	mmdebstrap --quiet --arch="$arch" --variant=minbase --mode=root --format=directory \
		--include="$packages" "$suite" "$dir" \
		"deb $mirror/debian $suite main" "deb $mirror/debian $suite-updates main" \
		"deb $mirror/debian-security $suite-security main" >&2
	touch "$dir/.complete"
fi
printf '%s\n' "$dir"
