#!/usr/bin/env bash
# image.sh builds the visionserve server and operator images with buildah,
# with no registry and no Docker: what `make image` runs.
#
# The images are the ones deploy/Dockerfile describes (same base release, files,
# user, environment, health check, entrypoint), assembled from parts this
# machine can make: the base is a Debian root filesystem made by mmdebstrap
# from the apt mirror (cached), the binaries are built here with the same Go
# and the same Debian release's libtesseract, ONNX Runtime comes from the npm
# package hack/setup-onnxruntime.sh checks. On a machine with registry access,
# `docker build -f deploy/Dockerfile .` (or `buildah bud`) builds the same
# images from public base images instead.
#
#   hack/image.sh                      # amd64 (the host)
#   ARCHS="amd64 arm64" hack/image.sh  # both, and one OCI image index over them
#   hack/image.sh prepare              # only fill the caches (root filesystems, syft, ONNX Runtime)
#
# Every image carries OCI labels (title, version, revision, source, licenses,
# created) and an SPDX SBOM made by syft (hack/setup-tool.sh syft) from the image's
# root filesystem: the Debian packages (dpkg database) and the Go module graph
# recorded in each binary. The SBOM is in the image
# (/usr/share/doc/visionserve/sbom.spdx.json) and beside the archives.
#
# Outputs, in OUT (default bin/image):
#   visionserve-<arch>.tar, visionserve-operator-<arch>.tar   docker-archive (podman load, ctr import)
#   visionserve-<arch>.spdx.json, visionserve-operator-<arch>.spdx.json
#   visionserve.oci.tar, visionserve-operator.oci.tar        OCI archives of the image index (several ARCHS)
#   images.txt                                              names, digests and sizes
# and in local container storage: $IMAGE:$TAG and $OPERATOR_IMAGE:$TAG (an
# image index when several ARCHS), $IMAGE:$TAG-<arch> for each arch.
#
# Environment: ARCHS (amd64 arm64), IMAGE (localhost/visionserve),
# OPERATOR_IMAGE (localhost/visionserve-operator), VERSION (git describe),
# TAG (VERSION), OUT, SYFT (an installed syft), DEBIAN_MIRROR, REFRESH_ROOTFS=1 (rebuild the cached
# root filesystems, e.g. for security updates).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/hack/containers.conf}
ARCHS=${ARCHS:-amd64}
IMAGE=${IMAGE:-localhost/visionserve}
OPERATOR_IMAGE=${OPERATOR_IMAGE:-localhost/visionserve-operator}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
TAG=${TAG:-$VERSION}
OUT=${OUT:-bin/image}
DEBIAN_SUITE=bookworm # the release of deploy/Dockerfile's debian:bookworm-slim
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org}
SERVER_PACKAGES=libtesseract5,tesseract-ocr-eng,tesseract-ocr-osd,poppler-utils,ca-certificates
cache="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/image"

t0=$SECONDS
log() { printf 'image [%4ds]: %s\n' "$((SECONDS - t0))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in buildah mmdebstrap go; do
	command -v "$tool" >/dev/null || die "$tool is needed (hack/setup-images.sh installs the Debian packages)"
done
[[ $(id -u) == 0 ]] || die "run as root: mmdebstrap --mode=root and buildah's root storage"
mkdir -p "$cache" "$OUT"
OUT=$(cd "$OUT" && pwd)

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
labels=(
	--label "org.opencontainers.image.version=$VERSION"
	--label "org.opencontainers.image.revision=$revision"
	--label "org.opencontainers.image.source=https://github.com/visionserve/visionserve"
	--label "org.opencontainers.image.url=https://github.com/visionserve/visionserve"
	--label "org.opencontainers.image.documentation=https://github.com/visionserve/visionserve/blob/main/docs/operator.md"
	--label "org.opencontainers.image.created=$created"
	--label "org.opencontainers.image.vendor=visionserve"
)

# rootfs ARCH: a cached tar of what deploy/Dockerfile's server stage starts
# from: debian:bookworm-slim (minbase) + its apt-get install + the user.
rootfs() {
	local arch=$1 recipe key tar
	recipe="$DEBIAN_SUITE $arch minbase $SERVER_PACKAGES uid65532 v1"
	key=$(sha256sum <<<"$recipe" | cut -c1-12)
	tar="$cache/rootfs-$DEBIAN_SUITE-$arch-$key.tar"
	if [[ ! -s $tar || ${REFRESH_ROOTFS:-0} == 1 ]]; then
		[[ $arch == "$(dpkg --print-architecture)" ]] || hack/setup-qemu.sh "$arch" >/dev/null
		log "making the $arch root filesystem with mmdebstrap ($SERVER_PACKAGES; first time only, a few minutes)"
		mmdebstrap --quiet --arch="$arch" --variant=minbase --mode=root --format=tar \
			--include="$SERVER_PACKAGES" \
			--customize-hook='chroot "$1" groupadd --system --gid 65532 visionserve' \
			--customize-hook='chroot "$1" useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin visionserve' \
			--customize-hook='install -d -m 0755 "$1/models" "$1/etc/visionserve"' \
			--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/usr/share/man/* "$1"/var/log/*.log' \
			"$DEBIAN_SUITE" "$tar.tmp" \
			"deb $DEBIAN_MIRROR/debian $DEBIAN_SUITE main" \
			"deb $DEBIAN_MIRROR/debian $DEBIAN_SUITE-updates main" \
			"deb $DEBIAN_MIRROR/debian-security $DEBIAN_SUITE-security main" >&2
		mv -f "$tar.tmp" "$tar"
	fi
	printf '%s\n' "$tar"
}

# operator_rootfs ARCH DIR: what gcr.io/distroless/static-debian12:nonroot
# holds that the operator uses: CA certificates (Debian's, from the server
# root filesystem, never this host's), /etc/passwd with nonroot 65532, /tmp.
operator_rootfs() {
	local server_tar=$1 dir=$2
	mkdir -p "$dir/etc/ssl/certs" "$dir/tmp" "$dir/home/nonroot"
	chmod 1777 "$dir/tmp"
	chown 65532:65532 "$dir/home/nonroot"
	tar -xf "$server_tar" -C "$dir" ./etc/ssl/certs/ca-certificates.crt
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$dir/etc/group"
}

# binaries ARCH DIR: the server (cgo: libtesseract) and the static operator,
# with deploy/Dockerfile's flags.
binaries() {
	local arch=$1 dir=$2
	local ldflags="-s -w -X github.com/visionserve/visionserve/internal/app.Version=$VERSION"
	if [[ $arch == "$(go env GOHOSTARCH)" ]]; then
		CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o "$dir/visionserve" ./cmd/visionserve
	else
		# cross: Debian's cross compiler against a sysroot of the same
		# release's -dev packages for ARCH (hack/setup-sysroot.sh)
		local sysroot triplet
		sysroot=$(hack/setup-sysroot.sh "$arch")
		case $arch in
		arm64) triplet=aarch64-linux-gnu ;;
		*) die "no cross compiler known for $arch" ;;
		esac
		CGO_ENABLED=1 GOARCH=$arch CC="$triplet-gcc --sysroot=$sysroot" CXX="$triplet-g++ --sysroot=$sysroot" \
			PKG_CONFIG_SYSROOT_DIR=$sysroot PKG_CONFIG_LIBDIR="$sysroot/usr/lib/$triplet/pkgconfig:$sysroot/usr/share/pkgconfig" \
			go build -trimpath -ldflags "$ldflags" -o "$dir/visionserve" ./cmd/visionserve
	fi
	CGO_ENABLED=0 GOARCH=$arch go build -trimpath -ldflags "-s -w" -o "$dir/visionserve-operator" ./cmd/visionserve-operator
}

# sbom CONTAINER NAME FILE: syft over the working container's root filesystem
# (dpkg database + Go build info of every binary), SPDX JSON to FILE and into
# the image.
sbom() {
	local c=$1 name=$2 file=$3 mnt
	mnt=$(buildah mount "$c")
	"$syft" scan "dir:$mnt" --quiet --source-name "$name" --source-version "$VERSION" \
		--exclude ./proc --exclude ./sys --exclude ./dev -o "spdx-json=$file"
	buildah umount "$c" >/dev/null
	buildah copy --chmod 0644 "$c" "$file" /usr/share/doc/visionserve/sbom.spdx.json >/dev/null
}

# archive REF NAME ARCH: docker-archive (keeps HEALTHCHECK; what podman load
# and ctr import take) of one image.
archive() {
	local ref=$1 file=$2
	rm -f "$file"
	buildah push --quiet "$ref" "docker-archive:$file:$ref" >/dev/null
}

if [[ ${1:-} == prepare ]]; then
	for arch in $ARCHS; do
		rootfs "$arch" >/dev/null
		hack/setup-onnxruntime.sh --arch "$arch" >/dev/null
		[[ $arch == "$(go env GOHOSTARCH)" ]] || hack/setup-sysroot.sh "$arch" >/dev/null
	done
	hack/setup-tool.sh syft >/dev/null
	log "caches ready"
	exit 0
fi

syft=${SYFT:-$(hack/setup-tool.sh syft)}
: >"$OUT/images.txt.tmp"
for arch in $ARCHS; do
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	log "$arch: building the binaries ($VERSION)"
	binaries "$arch" "$work"
	ort=$(hack/setup-onnxruntime.sh --arch "$arch")
	tar=$(rootfs "$arch")

	# ---- server ----
	ref="$IMAGE:$TAG-$arch"
	log "$arch: server image $ref"
	# docker format from the start: the OCI image configuration has no field
	# for HEALTHCHECK (buildah config would warn that it drops it)
	c=$(buildah from --format docker --arch "$arch" scratch)
	buildah add --quiet "$c" "$tar" / >/dev/null
	buildah copy --quiet --chmod 0755 "$c" "$work/visionserve" /usr/local/bin/visionserve >/dev/null
	buildah copy --quiet --chmod 0644 "$c" "$ort" /usr/local/lib/visionserve/libonnxruntime.so.1 >/dev/null
	# deploy/Dockerfile's server stage, instruction by instruction
	buildah config --arch "$arch" --os linux \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env VISIONSERVE_ONNXRUNTIME_LIB=/usr/local/lib/visionserve/libonnxruntime.so.1 \
		--env OMP_THREAD_LIMIT=1 \
		--user 65532:65532 --workingdir /tmp --port 8080 \
		--healthcheck "CMD /bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 && printf \"GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n\" >&3 && head -n 1 <&3 | grep -q \" 200 \"'" \
		--healthcheck-interval 30s --healthcheck-timeout 5s --healthcheck-start-period 2m --healthcheck-retries 3 \
		--entrypoint '["/usr/local/bin/visionserve"]' --cmd 'serve --addr :8080' \
		"${labels[@]}" \
		--label "org.opencontainers.image.title=visionserve" \
		--label "org.opencontainers.image.description=visionserve inference server: OCR (Tesseract 5), faces and ONNX models" \
		--label "org.opencontainers.image.licenses=Apache-2.0" \
		--label "org.opencontainers.image.base.name=docker.io/library/debian:$DEBIAN_SUITE-slim" \
		--label "io.visionserve.sbom=/usr/share/doc/visionserve/sbom.spdx.json" \
		"$c"
	sbom "$c" visionserve "$OUT/visionserve-$arch.spdx.json"
	# docker format: the OCI image config has no field for HEALTHCHECK
	buildah commit --quiet --format docker --rm "$c" "$ref" >/dev/null
	archive "$ref" "$OUT/visionserve-$arch.tar"

	# ---- operator ----
	oref="$OPERATOR_IMAGE:$TAG-$arch"
	log "$arch: operator image $oref"
	operator_rootfs "$tar" "$work/operator-root"
	c=$(buildah from --arch "$arch" scratch)
	buildah copy --quiet "$c" "$work/operator-root" / >/dev/null
	buildah copy --quiet --chmod 0755 "$c" "$work/visionserve-operator" /visionserve-operator >/dev/null
	buildah config --arch "$arch" --os linux \
		--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
		--user 65532:65532 --workingdir /home/nonroot \
		--entrypoint '["/visionserve-operator"]' \
		"${labels[@]}" \
		--label "org.opencontainers.image.title=visionserve-operator" \
		--label "org.opencontainers.image.description=Kubernetes operator for visionserve: VisionService, autoscaling on QPS and confidence, model canaries" \
		--label "org.opencontainers.image.licenses=Apache-2.0" \
		--label "io.visionserve.sbom=/usr/share/doc/visionserve/sbom.spdx.json" \
		"$c"
	sbom "$c" visionserve-operator "$OUT/visionserve-operator-$arch.spdx.json"
	buildah commit --quiet --format docker --rm "$c" "$oref" >/dev/null
	archive "$oref" "$OUT/visionserve-operator-$arch.tar"

	for r in "$ref" "$oref"; do
		size=$(podman image inspect --format '{{.Size}}' "$r")
		printf '%s\t%s\t%s MB\t%s\n' "$r" "$(podman image inspect --format '{{.Digest}}' "$r")" "$((size / 1000000))" "$arch" >>"$OUT/images.txt.tmp"
	done
	rm -rf "$work"
	trap - EXIT
done

# ---- names without the arch: the image itself, or an index over the arches ----
set -- $ARCHS
for name in "$IMAGE" "$OPERATOR_IMAGE"; do
	base=$(basename "$name")
	buildah rmi "$name:$TAG" >/dev/null 2>&1 || buildah manifest rm "$name:$TAG" >/dev/null 2>&1 || true
	if (($# == 1)); then
		buildah tag "$name:$TAG-$1" "$name:$TAG"
		continue
	fi
	buildah manifest create "$name:$TAG" >/dev/null
	for arch in "$@"; do
		# no --arch/--os: the index takes each platform from the image's own
		# configuration, so the check below sees a mix-up instead of hiding it
		buildah manifest add "$name:$TAG" "containers-storage:$name:$TAG-$arch" >/dev/null
	done
	got=$(buildah manifest inspect "$name:$TAG" | sed -n 's/.*"os": *"\([^"]*\)".*/\1/p;s/.*"architecture": *"\([^"]*\)".*/\1/p' | sort | xargs)
	want=$(printf 'linux\n%s\n' "$@" | sort | xargs)
	[[ $got == "$want" ]] || die "image index $name:$TAG has platforms [$got], want [$want]"
	rm -f "$OUT/$base.oci.tar"
	buildah manifest push --quiet --all --format oci "$name:$TAG" "oci-archive:$OUT/$base.oci.tar:$TAG" >/dev/null
	log "image index $name:$TAG ($*) -> $OUT/$base.oci.tar"
done
mv -f "$OUT/images.txt.tmp" "$OUT/images.txt"
log "done:"
column -t -s $'\t' "$OUT/images.txt" >&2
