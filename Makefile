# visionserve — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/visionserve/visionserve/internal/app.Version=$(VERSION)
export VISIONSERVE_SHARED ?= $(abspath ../shared)

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## install missing system dependencies (Tesseract, Leptonica, pkg-config)
	hack/setup.sh

.PHONY: build
build: ## build bin/visionserve
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/visionserve ./cmd/visionserve

.PHONY: operator
operator: ## build bin/visionserve-operator (the Kubernetes operator)
	$(GO) build -trimpath -o bin/visionserve-operator ./cmd/visionserve-operator

.PHONY: image
image: ## build the server and operator images with buildah, labels and SBOMs, into bin/image (ARCHS="amd64 arm64": both and an OCI image index)
	hack/image.sh

.PHONY: image-smoke
image-smoke: ## build and run the server image under podman, read-only root, non-root: health, OCR CER, faces (ARCH=arm64: under qemu)
	hack/fleet-test.sh smoke $(or $(ARCH),amd64)

.PHONY: e2e-cluster
e2e-cluster: ## build the images and run them on a local single-node Kubernetes: operator, chart, scaling, rollout, canaries, disruption
	hack/fleet-test.sh cluster

.PHONY: quickstart
quickstart: ## install, build, start the server on 127.0.0.1:8080 and show a real OCR result
	hack/quickstart.sh

.PHONY: test
test: ## run every test: lint, unit, integration and e2e with the real engine, race detector, a short fuzz
	hack/test.sh

.PHONY: lint
lint: ## gofmt, go vet, go mod tidy check
	hack/lint.sh

.PHONY: fuzz
fuzz: ## fuzz the image decoder for FUZZTIME (default 5m)
	$(GO) test ./internal/imageio -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-5m}

.PHONY: bench
bench: ## throughput: server vs engine in-process vs one tesseract process per image (ratios)
	$(GO) test ./test/e2e -run '^$$' -bench BenchmarkThroughput -benchtime 1x -count 1 -timeout 30m

.PHONY: bench-ann
bench-ann: ## ANN index: 1,000,000 random unit vectors (d=128), recall@10, latency, build time, memory (slow)
	nice -n 19 $(GO) test ./internal/gallery/ann -run '^$$' -bench HNSWRandom -benchtime 1x -timeout 6h -v

.PHONY: face-eval
face-eval: ## face accuracy on ../shared/data/face: verification AUC, FAR/FRR at the default threshold, identification top-1
	$(GO) test ./internal/face -run TestIntegrationEvaluate -count 1 -v

.PHONY: generate
generate: ## regenerate the committed generated code: gRPC/protobuf in proto/ (protoc), the operator's deepcopy, CRD and RBAC (controller-gen)
	hack/generate.sh
	hack/generate-operator.sh

.PHONY: clean
clean: ## remove build outputs
	rm -rf bin
