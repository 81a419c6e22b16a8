# Included by the top-level Makefile. OCI image tarballs of the operator and
# shopd without a container engine, the way ko builds them (hack/images, its own
# Go module so go-containerregistry stays out of the operator's go.mod).
#
#   make images                 # dist/images/shop-operator-$(VERSION).tar, shopd-$(VERSION).tar (+ .digest)
#   make local-images           # every image of the local cluster's node: dist/local-images/*.tar + images.json
#   make test-images            # image config matches what the Deployments expect; digests reproducible;
#                               # the local images, the pause program and the Postgres entrypoint, for real
#
# Every timestamp in the images is SOURCE_DATE_EPOCH: by default the time of
# the last commit, so one commit and one VERSION give one digest. The local
# images use LOCAL_IMAGES_EPOCH (0, as ko does) instead, so that a new commit
# does not invalidate the cached third-party images.

IMAGES_DIR ?= $(CURDIR)/dist/images
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LOCAL_IMAGES_DIR ?= $(CURDIR)/dist/local-images
LOCAL_IMAGES_EPOCH ?= 0
# The add-on binaries of the node (hack/node-binaries.sh); like SHOP_OTELCOL
# and SHOP_JAEGER (otelcol.mk) a shell substitution, run only in a recipe.
SHOP_NODE_BIN ?= $$($(CURDIR)/hack/node-binaries.sh | tail -1)

.PHONY: images
images: ## Build the operator and shopd images as OCI tarballs in dist/images (no container engine needed).
	cd hack/images && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) go run . -root $(CURDIR) -version $(VERSION) -out $(IMAGES_DIR)

# The Debian packages the local images are made of and their tests run:
# busybox-static (/bin/busybox) and postgresql-15; skopeo reads the archives
# in the tests. Installed only when missing.
.PHONY: local-image-debs
local-image-debs: ## Install busybox-static, postgresql-15 and skopeo (Debian) when missing.
	@missing=""; \
	[ -x /bin/busybox ] || missing="$$missing busybox-static"; \
	[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql-15"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing Debian packages:$$missing"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

.PHONY: local-images
local-images: local-image-debs ## Build every image the local cluster's node needs into dist/local-images (+ images.json); third-party images are cached.
	cd hack/images && SOURCE_DATE_EPOCH=$(LOCAL_IMAGES_EPOCH) go run . -local -root $(CURDIR) -version $(VERSION) \
		-out $(LOCAL_IMAGES_DIR) -node-bin "$(SHOP_NODE_BIN)" -jaeger "$(SHOP_JAEGER)" -otelcol "$(SHOP_OTELCOL)"

.PHONY: test-images
test-images: local-image-debs ## Test the image tarballs: user, entrypoint, labels, static binaries, reproducible digests; the local images for real.
	cd hack/images && SHOP_NODE_BIN="$(SHOP_NODE_BIN)" SHOP_JAEGER="$(SHOP_JAEGER)" SHOP_OTELCOL="$(SHOP_OTELCOL)" \
		go test $(GO_TEST_FLAGS) -timeout 30m ./...
