// Package platform is the one small package the commerce services share:
// configuration from the environment, OpenTelemetry setup, the HTTP servers,
// RFC 9457 problem responses, Postgres access with embedded migrations, JWT
// verification against the auth service's JWKS and an instrumented HTTP client.
package platform

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Version is the build version, set with -ldflags "-X .../platform.Version=v1.2.3".
var Version = "dev"

// Config is everything the services read from the environment. The names are
// the operator's contract; see docs/services.md.
type Config struct {
	Service     string // auth, catalog, orders, payment, frontend
	HTTPAddr    string // HTTP_ADDR, default :8080
	AdminAddr   string // ADMIN_ADDR, default :9090
	LogLevel    slog.Level
	DatabaseURL string // DATABASE_URL; empty means pgx's PG* variables

	AuthURL, CatalogURL, OrdersURL, PaymentURL string
	AuthJWKSURL                                string // default $AUTH_URL/.well-known/jwks.json
	AuthIssuer                                 string // default shop-auth
	AuthAudience                               string // default shop

	OTLPEndpoint string // OTEL_EXPORTER_OTLP_ENDPOINT; empty disables OTLP export
	OTLPProtocol string // grpc (default) or http/protobuf
	ServiceName  string // OTEL_SERVICE_NAME, default Service
	Environment  string // DEPLOYMENT_ENVIRONMENT
	PodName      string // K8S_POD_NAME
	Namespace    string // K8S_NAMESPACE_NAME
	NodeName     string // K8S_NODE_NAME
	ShopName     string // SHOP_NAME
}

// LoadConfig reads the environment for the named service.
func LoadConfig(service string) (Config, error) {
	c := Config{
		Service:      service,
		HTTPAddr:     Env("HTTP_ADDR", ":8080"),
		AdminAddr:    Env("ADMIN_ADDR", ":9090"),
		DatabaseURL:  Getenv("DATABASE_URL"),
		AuthURL:      strings.TrimRight(Getenv("AUTH_URL"), "/"),
		CatalogURL:   strings.TrimRight(Getenv("CATALOG_URL"), "/"),
		OrdersURL:    strings.TrimRight(Getenv("ORDERS_URL"), "/"),
		PaymentURL:   strings.TrimRight(Getenv("PAYMENT_URL"), "/"),
		AuthIssuer:   Env("AUTH_ISSUER", "shop-auth"),
		AuthAudience: Env("AUTH_AUDIENCE", "shop"),
		OTLPEndpoint: Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"),
		OTLPProtocol: Env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
		ServiceName:  Env("OTEL_SERVICE_NAME", service),
		Environment:  Getenv("DEPLOYMENT_ENVIRONMENT"),
		PodName:      Getenv("K8S_POD_NAME"),
		Namespace:    Getenv("K8S_NAMESPACE_NAME"),
		NodeName:     Getenv("K8S_NODE_NAME"),
		ShopName:     Getenv("SHOP_NAME"),
	}
	c.AuthJWKSURL = Getenv("AUTH_JWKS_URL")
	if c.AuthJWKSURL == "" && c.AuthURL != "" {
		c.AuthJWKSURL = c.AuthURL + "/.well-known/jwks.json"
	}
	lvl, err := ParseLogLevel(Env("LOG_LEVEL", "info"))
	if err != nil {
		return c, err
	}
	c.LogLevel = lvl
	switch c.OTLPProtocol {
	case "grpc", "http/protobuf":
	default:
		return c, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: unsupported %q (want grpc or http/protobuf)", c.OTLPProtocol)
	}
	return c, nil
}

// ParseLogLevel accepts debug, info, warn and error.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("LOG_LEVEL: unknown level %q (want debug, info, warn or error)", s)
}

// Env returns the variable or def when it is unset or empty.
func Env(key, def string) string {
	if v := Getenv(key); v != "" {
		return v
	}
	return def
}

// EnvBool parses true/false (also 1/0, yes/no); unset means false.
func EnvBool(key string) (bool, error) {
	v := Getenv(key)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%s: want true or false, got %q", key, v)
}

// EnvDuration parses a Go duration such as "250ms"; unset means def.
func EnvDuration(key string, def time.Duration) (time.Duration, error) {
	v := Getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: want a non-negative Go duration like 250ms, got %q", key, v)
	}
	return d, nil
}

// EnvFloat parses a float within [min, max]; unset means def.
func EnvFloat(key string, def, min, max float64) (float64, error) {
	v := Getenv(key)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < min || f > max {
		return 0, fmt.Errorf("%s: want a number in [%g, %g], got %q", key, min, max, v)
	}
	return f, nil
}
