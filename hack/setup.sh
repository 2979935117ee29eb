#!/usr/bin/env bash
# Installs what visionserve needs to build and run on Debian/Ubuntu, and
# only what is missing: Tesseract 5 with its English, orientation and
# Simplified Chinese models, Leptonica, pkg-config, a C compiler, protoc (for make generate
# and its check in hack/lint.sh), poppler-utils (pdftoppm rasterises PDF
# pages for jobs), and openssl and zip (the signing and import tests make
# SM2 and RSA keys, certificates and vendor zips with them). The
# output-format tests (internal/render) also need the real consumers of
# those formats: qpdf, xmllint (libxml2-utils) with the XHTML DTDs
# (w3c-sgml-lib), pdftotext (poppler-utils) and, for the side by side
# comparison, OCRmyPDF. Safe to run again.
set -euo pipefail

need=()
# tesseract-ocr-chi-sim: Simplified Chinese (the ocr-chi-sim default
# package, lang=chi_sim, and the photographed-pages evaluation).
for pkg in libtesseract-dev libleptonica-dev tesseract-ocr-eng tesseract-ocr-osd tesseract-ocr-chi-sim pkg-config gcc protobuf-compiler poppler-utils openssl zip qpdf libxml2-utils w3c-sgml-lib ocrmypdf; do
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
