# Included by the top-level Makefile. Builds (once, cached by the manifest's
# content outside the repo) the OpenTelemetry Collector that validates the
# collector configs the operator renders: see hack/otelcol/build.sh and
# TestValidateWithOtelcol in internal/builders/collector.
#
#   make otelcol                                   # build it
#   SHOP_OTELCOL="$(SHOP_OTELCOL)" go test ./...   # in a recipe: build if needed, then validate
#
# SHOP_OTELCOL expands to a shell substitution, so the build runs only in a
# recipe that uses it, never when make parses the Makefile.

OTELCOL_BUILD := $(CURDIR)/hack/otelcol/build.sh
SHOP_OTELCOL ?= $$($(OTELCOL_BUILD) | tail -1)

.PHONY: otelcol
otelcol: ## Build the collector that validates the rendered collector configs (cached; cold: several minutes).
	$(OTELCOL_BUILD)

# Jaeger v2 at the default image's release, to validate the config rendered
# for a deployed Jaeger (TestJaegerConfigValidates).
JAEGER_BUILD := $(CURDIR)/hack/otelcol/build-jaeger.sh
SHOP_JAEGER ?= $$($(JAEGER_BUILD) | tail -1)

.PHONY: jaeger
jaeger: ## Build Jaeger v2 to validate the rendered Jaeger configs (cached; cold: about 10 minutes).
	$(JAEGER_BUILD)
