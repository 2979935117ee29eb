#!/usr/bin/env bash
# setup-images.sh installs the Debian packages that build and run the images
# without Docker or a registry (hack/image.sh, make image-smoke): buildah,
# podman (with the CNI plugins and iptables for its bridge network) and
# mmdebstrap. Missing ones only; a no-op when all are there. The arm64
# extras (qemu-user-static, the cross compiler) are installed by
# hack/setup-qemu.sh and hack/setup-sysroot.sh when first needed.
set -euo pipefail
need=()
for p in buildah:/usr/bin/buildah podman:/usr/bin/podman mmdebstrap:/usr/bin/mmdebstrap \
	containernetworking-plugins:/usr/lib/cni/bridge iptables:/usr/sbin/iptables uidmap:/usr/bin/newuidmap; do
	[[ -x ${p#*:} ]] || need+=("${p%%:*}")
done
if ((${#need[@]})); then
	echo "setup-images: installing ${need[*]} (Debian)" >&2
	sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
