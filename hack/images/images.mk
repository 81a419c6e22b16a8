# Included by the top-level Makefile. OCI image tarballs of the operator and
# shopd without a container engine, the way ko builds them (hack/images, its own
# Go module so go-containerregistry stays out of the operator's go.mod).
#
#   make images                 # dist/images/shop-operator-$(VERSION).tar, shopd-$(VERSION).tar (+ .digest)
#   make test-images            # image config matches what the Deployments expect; digests reproducible
#
# Every timestamp in the images is SOURCE_DATE_EPOCH: by default the time of
# the last commit, so one commit and one VERSION give one digest.

IMAGES_DIR ?= $(CURDIR)/dist/images
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: images
images: ## Build the operator and shopd images as OCI tarballs in dist/images (no container engine needed).
	cd hack/images && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) go run . -root $(CURDIR) -version $(VERSION) -out $(IMAGES_DIR)

.PHONY: test-images
test-images: ## Test the image tarballs: user, entrypoint, labels, static binaries, reproducible digests.
	cd hack/images && go test $(GO_TEST_FLAGS) ./...
