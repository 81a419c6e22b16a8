// Package synthetic is the synthetic checkout ("integration test results"):
// one run registers a throwaway shopper, browses the storefront and the
// catalog, buys one item with the success test card, finds the order in the
// shopper's history, and cleans up what the APIs allow (refund the charge
// when PAYMENT_URL is set and reachable, sign out; auth has no account
// deletion). Each run records its result and every step's duration as
// metrics, pushed over OTLP by `shopd synthetic` (a CronJob pod is not
// scraped), and fails with a non-zero exit code.
package synthetic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"

	"github.com/shopplatform/shop-operator/services/internal/loadgen"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// Steps of a run, in order (label step).
var Steps = []string{"register", "login", "browse", "checkout", "verify", "cleanup"}

// Results (label result).
const (
	Pass = "pass"
	Fail = "fail"
)

// Metrics are the synthetic check's instruments.
type Metrics struct {
	runs        metric.Int64Counter
	step        metric.Float64Gauge
	lastSuccess metric.Float64Gauge
}

// NewMetrics creates shop_synthetic_runs_total{result},
// shop_synthetic_step_duration_seconds{step} (the last run's, a gauge: one
// run is one sample) and shop_synthetic_last_success_timestamp_seconds.
func NewMetrics(m metric.Meter) (*Metrics, error) {
	runs, err := m.Int64Counter("shop.synthetic.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Synthetic checkout runs by result (pass, fail)."))
	if err != nil {
		return nil, err
	}
	step, err := m.Float64Gauge("shop.synthetic.step.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of each step of the last synthetic checkout run."))
	if err != nil {
		return nil, err
	}
	last, err := m.Float64Gauge("shop.synthetic.last_success.timestamp", metric.WithUnit("s"),
		metric.WithDescription("Unix time of the last passing synthetic checkout run."))
	if err != nil {
		return nil, err
	}
	return &Metrics{runs: runs, step: step, lastSuccess: last}, nil
}

// Report is one run's outcome.
type Report struct {
	Result   string
	Steps    map[string]time.Duration // the steps that ran
	FailedAt string                   // the failing step, if any
	OrderID  string
	Err      error
	// CleanupErr is what could not be cleaned up; it does not fail the run
	// (the shop works; the leftovers are a test account and a test charge).
	CleanupErr error
	Refunded   bool // the charge was refunded
}

// Check runs the synthetic checkout once and records it on m.
func Check(ctx context.Context, urls loadgen.URLs, m *Metrics) Report {
	ctx, span := otel.Tracer("github.com/shopplatform/shop-operator/services/internal/synthetic").Start(ctx, "synthetic checkout")
	defer span.End()
	api := &loadgen.Client{URLs: urls, HTTP: platform.NewHTTPClient(20 * time.Second)}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: api.HTTP.Transport}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	email, password := "synthetic-"+id+"@synthetic.invalid", "synthetic-"+id
	rep := Report{Result: Pass, Steps: map[string]time.Duration{}}

	var (
		tokens loadgen.Tokens
		sku    string
		order  loadgen.Order
	)
	steps := []struct {
		name string
		run  func() error
	}{
		{"register", func() error { return api.Register(ctx, email, password) }},
		{"login", func() (err error) { tokens, err = api.Login(ctx, email, password); return err }},
		{"browse", func() error {
			if err := api.Page(ctx, browser, "/", nil); err != nil {
				return err
			}
			products, err := api.Products(ctx, "")
			if err != nil {
				return err
			}
			// The product with the most stock: the check must not fail
			// because one item sold out.
			best := slices.MaxFunc(append(products, loadgen.Product{}), func(a, b loadgen.Product) int { return a.Stock - b.Stock })
			if best.Stock < 1 {
				return errors.New("no product in stock")
			}
			sku = best.SKU
			return api.Page(ctx, browser, "/products/"+url.PathEscape(sku), nil)
		}},
		{"checkout", func() (err error) {
			order, err = api.Checkout(ctx, tokens.Access, "synthetic-"+id, sku, loadgen.SuccessCard())
			if err == nil && order.Status != "confirmed" {
				err = fmt.Errorf("order %s is %s, want confirmed", order.ID, order.Status)
			}
			return err
		}},
		{"verify", func() error {
			history, err := api.Orders(ctx, tokens.Access)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(history, func(o loadgen.Order) bool { return o.ID == order.ID && o.Status == "confirmed" }) {
				return fmt.Errorf("order %s is not in the shopper's history as confirmed", order.ID)
			}
			return nil
		}},
	}
	for _, s := range steps {
		t0 := time.Now()
		err := s.run()
		rep.Steps[s.name] = time.Since(t0)
		if err != nil {
			rep.Result, rep.FailedAt, rep.Err = Fail, s.name, fmt.Errorf("%s: %w", s.name, err)
			break
		}
	}
	if order.ID != "" {
		rep.OrderID = order.ID
	}
	// Clean up whatever exists, even after a failure. The account itself
	// stays: auth has no delete (the .invalid domain marks it).
	t0 := time.Now()
	var cleanErr error
	if order.PaymentID != "" && urls.Payment != "" {
		cleanErr = api.Refund(ctx, tokens.Access, order.PaymentID)
		rep.Refunded = cleanErr == nil
	}
	if tokens.Refresh != "" {
		cleanErr = errors.Join(cleanErr, api.Logout(ctx, tokens.Refresh))
	}
	rep.Steps["cleanup"] = time.Since(t0)
	rep.CleanupErr = cleanErr

	rctx := context.WithoutCancel(ctx)
	for name, d := range rep.Steps {
		m.step.Record(rctx, d.Seconds(), metric.WithAttributes(attribute.String("step", name)))
	}
	m.runs.Add(rctx, 1, metric.WithAttributes(attribute.String("result", rep.Result)))
	if rep.Result == Pass {
		m.lastSuccess.Record(rctx, float64(time.Now().UnixNano())/1e9)
	} else {
		span.SetStatus(codes.Error, rep.Err.Error())
	}
	span.SetAttributes(attribute.String("synthetic.result", rep.Result), attribute.String("synthetic.failed_step", rep.FailedAt))
	return rep
}

// Run is `shopd synthetic`: one check, metrics flushed over OTLP, exit code
// 0 on pass and 1 on failure.
func Run(ctx context.Context, pc platform.Config) error {
	urls, err := loadgen.URLsFromEnv()
	if err != nil {
		return err
	}
	if pc.OTLPEndpoint == "" {
		slog.Warn("OTEL_EXPORTER_OTLP_ENDPOINT is not set: the result is only logged")
	}
	tel, err := platform.SetupTelemetry(ctx, pc, nil)
	if err != nil {
		return err
	}
	m, err := NewMetrics(tel.MeterProvider.Meter("github.com/shopplatform/shop-operator/services/internal/synthetic"))
	if err != nil {
		return err
	}
	rep := Check(ctx, urls, m)
	attrs := []any{"result", rep.Result, "order_id", rep.OrderID}
	for _, s := range Steps {
		if d, ok := rep.Steps[s]; ok {
			attrs = append(attrs, s+"_ms", d.Milliseconds())
		}
	}
	if rep.CleanupErr != nil {
		slog.Warn("synthetic checkout could not clean up", "err", rep.CleanupErr.Error())
	}
	if rep.Err != nil {
		slog.Error("synthetic checkout failed", append(attrs, "failed_step", rep.FailedAt, "err", rep.Err.Error())...)
	} else {
		slog.Info("synthetic checkout passed", attrs...)
	}
	// Shutdown flushes the metrics to the collector before the pod ends.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(sctx); err != nil {
		slog.Warn("telemetry flush failed", "err", err)
	}
	return rep.Err
}
