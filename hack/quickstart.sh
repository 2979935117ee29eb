#!/usr/bin/env bash
# The quick start: install what is missing, build, make the system's
# Tesseract English model a signed package (a local signing key is created
# on first use, outside the repository), start the server on 127.0.0.1:8080
# serving that package, and show a real OCR result from it. The server
# keeps running in the background.
#
#   ./hack/quickstart.sh            # ADDR=127.0.0.1:9000 ./hack/quickstart.sh to move it
#
# Key and model repository: $VISIONSERVE_HOME, default
# ${XDG_DATA_HOME:-~/.local/share}/visionserve/{keys,models}.
set -euo pipefail
cd "$(dirname "$0")/.."

ADDR=${ADDR:-127.0.0.1:8080}
VISIONSERVE_HOME=${VISIONSERVE_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/visionserve}
hack/setup.sh
echo "quickstart: building bin/visionserve" >&2
make -s build

if [[ -f bin/visionserve.pid ]] && kill -0 "$(cat bin/visionserve.pid)" 2>/dev/null; then
  echo "quickstart: stopping the server started earlier (pid $(cat bin/visionserve.pid))" >&2
  kill "$(cat bin/visionserve.pid)"
  while kill -0 "$(cat bin/visionserve.pid)" 2>/dev/null; do sleep 0.1; done
fi
# Package and sign eng + osd as ocr-eng/1 (again only when they changed).
bin/visionserve model bootstrap --home "$VISIONSERVE_HOME" >&2
# A local key with the models:admin scope for the admin listener (the model
# API on 127.0.0.1:9091), created once, readable by this user only.
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
# --no-auth: the quick start serves 127.0.0.1 only, and inference without
# credentials (the server logs a warning saying so); the admin API still
# wants the key above. docs/security.md turns authentication on.
bin/visionserve serve --addr "$ADDR" --no-auth --config "$VISIONSERVE_HOME/quickstart.yaml" --jobs-dir bin/jobs \
  --models "$VISIONSERVE_HOME/models" --trust-key "$VISIONSERVE_HOME/keys/public.pem" >bin/visionserve.log 2>&1 &
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
  models and versions:              curl -s -H "Authorization: Bearer \$(cat $admin_key)" http://127.0.0.1:9091/v1/models
  model repository (signed):        $VISIONSERVE_HOME/models  (docs/model-packages.md)
  stop it:                          kill \$(cat bin/visionserve.pid)
MSG
