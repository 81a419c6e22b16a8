# Included by the top-level Makefile. The OLM bundle in bundle/ (manifests/,
# metadata/, bundle.Dockerfile) is generated from config/ by hack/bundle, its
# own Go module because operator-framework/api pins an older Kubernetes API.
#
#   make bundle            # regenerate bundle/ for $(VERSION) and $(IMG)
#   make bundle-validate   # operator-framework/api validators; fails when bundle/ is stale
#   docker build -f bundle/bundle.Dockerfile -t $(BUNDLE_IMG) bundle/

BUNDLE_IMG ?= ghcr.io/shopplatform/shop-operator-bundle:$(VERSION)

.PHONY: bundle
bundle: ## Generate the OLM bundle in bundle/ from config/ (needs kubectl for kustomize).
	cd hack/bundle && go run . -root $(CURDIR) -version $(VERSION) -image $(IMG)

.PHONY: bundle-validate
bundle-validate: ## Validate bundle/ with operator-framework/api and fail when it is stale.
	cd hack/bundle && go test $(GO_TEST_FLAGS) ./...
