#!/usr/bin/env bash
# generate-operator.sh regenerates the committed generated code of the operator:
#   api/v1alpha1/zz_generated.deepcopy.go      (controller-gen object)
#   deploy/operator/crd/visionserve.io_visionservices.yaml  (controller-gen crd)
#   deploy/operator/rbac/role.yaml              (controller-gen rbac, from the reconciler's markers)
#
# controller-gen is built from hack/tools (pinned there) into the user cache
# once: ${XDG_CACHE_HOME:-~/.cache}/visionserve/tools/controller-gen-<version>.
#
# Usage: hack/generate-operator.sh           # regenerate
#        hack/generate-operator.sh --check   # regenerate, and fail if that changed anything (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -En "s#^(require)?[[:space:]]*sigs.k8s.io/controller-tools (v[^ ]+).*#\2#p" hack/tools/go.mod)
[[ -n "$version" ]] || { echo "generate: controller-tools is not pinned in hack/tools/go.mod" >&2; exit 1; }
bin="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/tools/controller-gen-$version"
if [[ ! -x "$bin" ]]; then
	echo "generate: building controller-gen $version (first time only)" >&2
	mkdir -p "$(dirname "$bin")"
	(cd hack/tools && nice -n 19 go build -trimpath -o "$bin.tmp" sigs.k8s.io/controller-tools/cmd/controller-gen)
	mv -f "$bin.tmp" "$bin"
fi

outputs=(api/v1alpha1/zz_generated.deepcopy.go deploy/operator/crd deploy/operator/rbac/role.yaml)
if [[ "${1:-}" == "--check" ]]; then
	before=$(mktemp -d)
	trap 'rm -rf "$before"' EXIT
	for o in "${outputs[@]}"; do
		[[ -e "$o" ]] && mkdir -p "$before/$(dirname "$o")" && cp -r "$o" "$before/$o"
	done
fi

"$bin" object paths=./api/...
"$bin" crd:allowDangerousTypes=true paths=./api/... output:crd:artifacts:config=deploy/operator/crd
"$bin" rbac:roleName=visionserve-operator paths=./internal/controller/... output:rbac:artifacts:config=deploy/operator/rbac

if [[ "${1:-}" == "--check" ]]; then
	for o in "${outputs[@]}"; do
		if ! diff -r "$before/$o" "$o" >/dev/null 2>&1; then
			echo "generate: $o is not up to date; run make generate and commit the result" >&2
			diff -r "$before/$o" "$o" >&2 || true
			exit 1
		fi
	done
fi
echo "generate: ok" >&2
