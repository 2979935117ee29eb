#!/usr/bin/env bash
# The quick start: install what is missing, build, start the server with
# the default model (Tesseract, English) on 127.0.0.1:8080, and show a real
# OCR result from it. The server keeps running in the background.
#
#   ./hack/quickstart.sh            # ADDR=127.0.0.1:9000 ./hack/quickstart.sh to move it
set -euo pipefail
cd "$(dirname "$0")/.."

ADDR=${ADDR:-127.0.0.1:8080}
hack/setup.sh
echo "quickstart: building bin/visionserve" >&2
make -s build

if [[ -f bin/visionserve.pid ]] && kill -0 "$(cat bin/visionserve.pid)" 2>/dev/null; then
  echo "quickstart: stopping the server started earlier (pid $(cat bin/visionserve.pid))" >&2
  kill "$(cat bin/visionserve.pid)"
  while kill -0 "$(cat bin/visionserve.pid)" 2>/dev/null; do sleep 0.1; done
fi
# --no-auth: the quick start serves 127.0.0.1 only, without credentials
# (the server logs a warning saying so). docs/security.md turns it on.
bin/visionserve serve --addr "$ADDR" --no-auth --jobs-dir bin/jobs >bin/visionserve.log 2>&1 &
echo $! >bin/visionserve.pid

for _ in $(seq 1 300); do
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
image=${VISIONSERVE_SHARED:-../shared}/data/ocr/pages/phototest.tif
if [[ ! -f "$image" ]]; then
  image=bin/demo.png
  go run ./hack/demoimage >"$image"
fi
echo "quickstart: POST $image to http://$ADDR/v1/ocr" >&2
echo "----------------------------------------------------------------"
curl -fsS -H "Content-Type: application/octet-stream" --data-binary @"$image" "http://$ADDR/v1/ocr?format=text"
echo "----------------------------------------------------------------"
cat >&2 <<MSG
quickstart: visionserve is running at http://$ADDR (pid $(cat bin/visionserve.pid), log bin/visionserve.log)
  JSON with boxes and confidences:  curl -s --data-binary @$image http://$ADDR/v1/ocr
  a PDF as a job (docs/jobs.md):     curl -s -H "Content-Type: application/pdf" --data-binary @doc.pdf http://$ADDR/v1/jobs
  metrics:                          curl -s http://$ADDR/metrics
  stop it:                          kill \$(cat bin/visionserve.pid)
MSG
