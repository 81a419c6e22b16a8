package workloads

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/render"
)

// JWT issuer and audience shared by auth (which signs) and every verifier.
const (
	AuthIssuer   = "shop-auth"
	AuthAudience = "shop"
)

// configMap holds the settings every service shares; pods read it with envFrom.
func configMap(in render.Input) *corev1.ConfigMap {
	data := map[string]string{
		"HTTP_ADDR":               fmt.Sprintf(":%d", render.HTTPPort),
		"ADMIN_ADDR":              fmt.Sprintf(":%d", render.AdminPort),
		"AUTH_URL":                in.ServiceURL(render.Auth),
		"CATALOG_URL":             in.ServiceURL(render.Catalog),
		"ORDERS_URL":              in.ServiceURL(render.Orders),
		"PAYMENT_URL":             in.ServiceURL(render.Payment),
		"AUTH_JWKS_URL":           in.ServiceURL(render.Auth) + "/.well-known/jwks.json",
		"AUTH_ISSUER":             AuthIssuer,
		"AUTH_AUDIENCE":           AuthAudience,
		"SHOP_NAME":               in.Shop.Name,
		"DEPLOYMENT_ENVIRONMENT":  string(in.Spec.Environment),
		"OTEL_TRACES_SAMPLER":     "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG": samplerRatio(in),
	}
	if ep := in.OTLPEndpoint(); ep != "" {
		data["OTEL_EXPORTER_OTLP_ENDPOINT"] = ep
		data["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
	}
	return &corev1.ConfigMap{ObjectMeta: in.ObjectMeta(in.Name("config"), "config"), Data: data}
}

// samplerRatio is the head-sampling ratio of the services. With tail sampling
// the collector decides on whole traces, so the services keep everything.
func samplerRatio(in render.Input) string {
	c := in.Spec.Observability.Collector
	ratio := 1.0
	if !ptr.Deref(c.TailSampling, false) {
		ratio = float64(ptr.Deref(c.SamplingPercentage, 100)) / 100
	}
	s := strconv.FormatFloat(ratio, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0" // 1.0, 0.0: read as ratios, not counts
	}
	return s
}

// checksum is a stable hash of v (maps marshal with sorted keys).
func checksum(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and bytes always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
