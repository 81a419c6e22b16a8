# Shop operator. `make demo` runs the platform and a Shop on a local cluster
# with a real node; `make test` runs every test. Both install or build what
# they need.

VERSION ?= 0.1.0
IMG ?= ghcr.io/shopplatform/shop-operator:$(VERSION)
SERVICES_IMG ?= ghcr.io/shopplatform/shopd:$(VERSION)
LDFLAGS := -X github.com/shopplatform/shop-operator/internal/version.Version=$(VERSION)

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GO_TEST_FLAGS ?= -count=1
# -trimpath: what is built does not depend on the checkout's path, so a fresh
# clone (CI) reuses the build cache the last one filled.
export GOFLAGS := $(strip $(GOFLAGS) -trimpath)

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: api-docs
api-docs: manifests ## Regenerate docs/api-reference.md from the CRD.
	go test ./internal/apidocs -run TestReferenceIsCurrent -update

.PHONY: verify-generated
verify-generated: manifests generate bundle ## Fail when generated files (deepcopy, CRD, RBAC, OLM bundle) are stale.
	@git diff --exit-code -- api config bundle || { echo "generated files are stale: run 'make manifests generate bundle' and commit"; exit 1; }

.PHONY: fmt vet
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')
vet: ## go vet both modules (and the chaos runs, which `make test` does not run, so they still build); fail on unformatted Go.
	go vet ./...
	go vet -tags chaos ./test/live
	@files=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$files" ]; then echo "gofmt would change: $$files (make fmt)"; exit 1; fi

##@ Test

include hack/otelcol/otelcol.mk
include hack/images/images.mk
include hack/bundle/bundle.mk

.PHONY: test
test: verify-generated vet test-operator test-services test-images bundle-validate test-live ## Run every test (unit, golden, kube-score lint, envtest, e2e, services, images, bundle, the real node).

.PHONY: kube-binaries
kube-binaries: ## Build (once, cached by version) kube-apiserver, etcd, controller-manager, scheduler and kwok.
	hack/kube-binaries.sh cluster

.PHONY: test-tools
test-tools: kube-binaries otelcol postgres local-image-debs kube-score ## Everything the operator tests run: Kubernetes binaries, otelcol, Jaeger, promtool, amtool, Postgres, busybox, kube-score.
	hack/prometheus-tools.sh

.PHONY: kube-score
kube-score: ## Build (once, cached by version) kube-score, the linter test/lint runs over every profile's render.
	hack/kube-score.sh

.PHONY: postgres
postgres: ## Install Debian's postgresql-15 when missing (the tests' throwaway servers, test/contract's databases).
	$(MAKE) -C services postgres

.PHONY: node-tools
node-tools: ## Build (once, cached by version) what a real node runs: kubelet, kube-proxy, containerd, runc, CNI plugins, CoreDNS, ...
	hack/kube-binaries.sh node
	hack/node-binaries.sh

# The controllers suite runs its tests in a random order (-shuffle=on): none
# may depend on another having run before it (what reads the whole suite's
# doing runs after m.Run in its TestMain).
.PHONY: test-operator
test-operator: test-tools ## Operator tests: real API server, real CRDs, otelcol, promtool, a local cluster with kwok nodes.
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh cluster | tail -1)" SHOP_OTELCOL="$(SHOP_OTELCOL)" SHOP_JAEGER="$(SHOP_JAEGER)" SHOP_E2E=1 \
		go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v -e '/controllers$$' -e '/test/live$$')
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh cluster | tail -1)" go test $(GO_TEST_FLAGS) -shuffle=on ./controllers

LIVE_TIMEOUT ?= 45m

.PHONY: test-live
test-live: node-tools ## The platform on a real node: pods run, a shopper checks out in Chromium, the trace and logs arrive (needs root).
	$(MAKE) -C services browser-deps
	# -parallel 3: TestDemo, TestNodeRunsPodsAndServices and TestShop all at
	# once (they mostly wait on pods and probes; the default is GOMAXPROCS).
	SHOP_E2E=1 go test $(GO_TEST_FLAGS) -parallel 3 -timeout $(LIVE_TIMEOUT) -v ./test/live

# The long runs (TestChaos*, built with -tags chaos) are bounded and kept out
# of `make test`, which has a short case of each kind.
.PHONY: chaos
chaos: node-tools ## The long fault runs on a real node, out of `make test` (about 35 min): a payment alert fires, is delivered and resolves.
	SHOP_E2E=1 go test $(GO_TEST_FLAGS) -tags chaos -timeout 65m -v -run '^TestChaos' ./test/live

.PHONY: test-services
test-services: otelcol ## The commerce services' tests (real Postgres, real browser, the real collector).
	SHOP_OTELCOL="$(SHOP_OTELCOL)" $(MAKE) -C services test

##@ Run

DEMO_FLAGS ?=

.PHONY: demo
demo: ## Run the platform and the development Shop on a local cluster with a real node; serve its storefront (DEMO_FLAGS=--nodes=kwok: fake nodes).
	go run -ldflags "$(LDFLAGS)" ./cmd/shopctl demo $(DEMO_FLAGS)

.PHONY: storefront
storefront: ## Run the five services against a throwaway Postgres.
	$(MAKE) -C services storefront

.PHONY: run
run: ## Run the operator against the cluster in KUBECONFIG.
	go run -ldflags "$(LDFLAGS)" ./cmd/manager

##@ Build

.PHONY: build
build: ## Build the manager and shopctl.
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/manager ./cmd/manager
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/shopctl ./cmd/shopctl

.PHONY: docker-build
docker-build: ## Build the operator and services images (needs a container engine; `make images` needs none).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .
	$(MAKE) -C services image VERSION=$(VERSION) IMG=$(SERVICES_IMG)

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml.
	mkdir -p dist
	kubectl kustomize config/default > dist/install.yaml

##@ Deploy

.PHONY: install
install: manifests ## Install the CRD into the cluster in KUBECONFIG.
	kubectl apply --server-side -f config/crd/bases

.PHONY: deploy
deploy: manifests ## Install the operator into the cluster in KUBECONFIG.
	kubectl apply --server-side -k config/default

$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
