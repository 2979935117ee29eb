#!/usr/bin/env bash
# Installs what visionserve needs to build and run on Debian/Ubuntu, and
# only what is missing: Tesseract 5 with its English, orientation and
# Simplified Chinese models, Leptonica, pkg-config, a C compiler, protoc
# (for make generate and its check in hack/lint.sh) and poppler-utils
# (pdftoppm rasterises PDF pages for jobs). Safe to run again.
set -euo pipefail

need=()
for pkg in libtesseract-dev libleptonica-dev tesseract-ocr-eng tesseract-ocr-osd tesseract-ocr-chi-sim pkg-config gcc protobuf-compiler poppler-utils; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    need+=("$pkg")
  fi
done

if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go is not installed. Install Go $(sed -n 's/^go //p' "$(dirname "$0")/../go.mod") or newer from https://go.dev/dl/ and put it on PATH." >&2
  exit 1
fi
want=$(sed -n 's/^go //p' "$(dirname "$0")/../go.mod")
have=$(go env GOVERSION | sed 's/^go//')
if [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]]; then
  echo "setup: Go $have is older than the $want that go.mod needs." >&2
  exit 1
fi
echo "setup: ok (tesseract $(pkg-config --modversion tesseract), $(go env GOVERSION))" >&2
