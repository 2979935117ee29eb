#!/usr/bin/env bash
# setup-qemu.sh ARCH makes this (amd64) host run ARCH binaries through
# qemu-user-static: what mmdebstrap needs to make a foreign root filesystem and
# podman to run a foreign image. It installs Debian's qemu-user-static when
# missing, mounts binfmt_misc if nothing has, and registers the interpreter
# with the F flag (opened now, so it works inside containers and chroots).
# Idempotent; prints the interpreter's path.
set -euo pipefail
arch=${1:?usage: setup-qemu.sh ARCH (arm64)}
case $arch in
arm64) qarch=aarch64 ;;
*) echo "setup-qemu: unsupported architecture $arch" >&2; exit 1 ;;
esac
log() { printf 'setup-qemu: %s\n' "$*" >&2; }

if [[ ! -e /usr/libexec/qemu-binfmt/$qarch-binfmt-P && ! -e /usr/bin/qemu-$qarch-static ]]; then
	log "installing qemu-user-static (Debian)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
bm=/proc/sys/fs/binfmt_misc
if [[ ! -e $bm/register ]]; then
	mount -t binfmt_misc binfmt_misc "$bm"
fi
if [[ ! -e $bm/qemu-$qarch ]]; then
	conf=/usr/lib/binfmt.d/qemu-$qarch.conf
	[[ -s $conf ]] || { log "error: $conf missing (qemu-user-static)"; exit 1; }
	# Debian's line ends in flags OPF... keep them and make sure F is there
	line=$(grep -v '^#' "$conf" | head -n1)
	[[ $line == *F ]] || line+=F
	printf '%s' "$line" >"$bm/register"
	log "registered qemu-$qarch with binfmt_misc"
fi
interp=$(awk '/^interpreter/ {print $2}' "$bm/qemu-$qarch")
printf '%s\n' "$interp"
