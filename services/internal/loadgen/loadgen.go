// Package loadgen is the testing profile's load generator: at a fixed rate it
// runs a weighted mix of shopper scenarios (browse, search, cart, checkout)
// against the storefront and the APIs, as users it registers itself, and
// reports every scenario's count, outcome and latency as metrics
// ("performance test metrics"). The pacing and bounds are package loadtest's.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopplatform/shop-operator/services/internal/loadtest"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// Scenarios, in the order of DefaultMix.
const (
	Browse   = "browse"   // storefront home page, then a product page
	Search   = "search"   // catalog search API
	Cart     = "cart"     // add to the storefront cart, then view it
	Checkout = "checkout" // orders API checkout of one item with the success card
)

// DefaultMix weighs the scenarios like a shop's traffic: mostly looking.
const DefaultMix = "browse=60,search=20,cart=15,checkout=5"

// Outcomes of a scenario (label outcome).
const (
	OK          = "ok"
	ClientError = "client_error" // 4xx: e.g. out_of_stock, an expired token
	ServerError = "server_error" // 5xx
	Transport   = "transport"    // no answer: refused, timeout
)

// Config is one load generator's setting.
type Config struct {
	URLs URLs
	Rate float64 // scenarios per second (LOADGEN_RPS, default 5)
	// Duration bounds the run (LOADGEN_DURATION); 0 runs until ctx ends.
	Duration    time.Duration
	Mix         []Weighted // LOADGEN_MIX, default DefaultMix
	Concurrency int        // LOADGEN_CONCURRENCY, default from the rate
	Users       int        // shoppers registered at start (LOADGEN_USERS, default Concurrency)
}

// Weighted is one scenario's share of the mix.
type Weighted struct {
	Scenario string
	Weight   int
}

// ConfigFromEnv reads the load generator's environment.
func ConfigFromEnv() (Config, error) {
	var c Config
	var err error
	if c.URLs, err = URLsFromEnv(); err != nil {
		return c, err
	}
	if c.Rate, err = platform.EnvFloat("LOADGEN_RPS", 5, 0.01, 10000); err != nil {
		return c, err
	}
	if c.Duration, err = platform.EnvDuration("LOADGEN_DURATION", 0); err != nil {
		return c, err
	}
	if c.Mix, err = ParseMix(platform.Env("LOADGEN_MIX", DefaultMix)); err != nil {
		return c, err
	}
	for k, p := range map[string]*int{"LOADGEN_CONCURRENCY": &c.Concurrency, "LOADGEN_USERS": &c.Users} {
		if v := platform.Env(k, ""); v != "" {
			if *p, err = strconv.Atoi(v); err != nil || *p < 1 || *p > 1000 {
				return c, fmt.Errorf("%s: want 1..1000, got %q", k, v)
			}
		}
	}
	return c, nil
}

// ParseMix reads "browse=60,search=20,..."; unnamed scenarios get weight 0.
func ParseMix(s string) ([]Weighted, error) {
	var out []Weighted
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("LOADGEN_MIX: want scenario=weight pairs like %q, got %q", DefaultMix, part)
		}
		switch name {
		case Browse, Search, Cart, Checkout:
		default:
			return nil, fmt.Errorf("LOADGEN_MIX: unknown scenario %q (want browse, search, cart or checkout)", name)
		}
		out = append(out, Weighted{name, n})
		total += n
	}
	if total == 0 {
		return nil, errors.New("LOADGEN_MIX: the weights add up to 0")
	}
	return out, nil
}

func pick(mix []Weighted, r *rand.Rand) string {
	total := 0
	for _, w := range mix {
		total += w.Weight
	}
	n := r.IntN(total)
	for _, w := range mix {
		if n < w.Weight {
			return w.Scenario
		}
		n -= w.Weight
	}
	return mix[len(mix)-1].Scenario
}

// Metrics are the load generator's instruments.
type Metrics struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
}

// NewMetrics creates the instruments: shop_loadgen_requests_total{scenario,
// outcome} and shop_loadgen_request_duration_seconds{scenario} in Prometheus.
func NewMetrics(m metric.Meter) (*Metrics, error) {
	req, err := m.Int64Counter("shop.loadgen.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Load generator scenarios run, by scenario and outcome (ok, client_error, server_error, transport)."))
	if err != nil {
		return nil, err
	}
	dur, err := m.Float64Histogram("shop.loadgen.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Load generator scenario latency, by scenario."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		return nil, err
	}
	return &Metrics{requests: req, duration: dur}, nil
}

func (m *Metrics) record(ctx context.Context, scenario string, d time.Duration, err error) {
	s := attribute.String("scenario", scenario)
	m.requests.Add(ctx, 1, metric.WithAttributes(s, attribute.String("outcome", Outcome(err))))
	m.duration.Record(ctx, d.Seconds(), metric.WithAttributes(s))
}

// Outcome classifies a scenario's error.
func Outcome(err error) string {
	var p *platform.Problem
	switch {
	case err == nil:
		return OK
	case errors.As(err, &p) && p.Status >= 500:
		return ServerError
	case errors.As(err, &p):
		return ClientError
	}
	return Transport
}

// shopper is one worker's identity and browser.
type shopper struct {
	email, password, token string
	browser                *http.Client // cookie jar: the storefront cart
}

// Generator runs the scenarios.
type Generator struct {
	cfg      Config
	api      *Client
	metrics  *Metrics
	shoppers []*shopper
	skus     []string
	runID    string
}

// errConfig marks what no retry can fix.
var errConfig = errors.New("loadgen: Rate and Mix are required")

// newWhenReachable calls New until the shop answers (a shop's pods start in
// any order; the load generator waits for the others rather than crash
// looping), with a backoff from first to most between attempts, until ctx ends.
func newWhenReachable(ctx context.Context, cfg Config, m *Metrics, first, most time.Duration) (*Generator, error) {
	wait := first
	for {
		g, err := New(ctx, cfg, m)
		if err == nil || errors.Is(err, errConfig) {
			return g, err
		}
		slog.WarnContext(ctx, "waiting for the shop", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, most)
	}
}

// New registers the shoppers and reads the catalog once.
func New(ctx context.Context, cfg Config, m *Metrics) (*Generator, error) {
	if cfg.Rate <= 0 || len(cfg.Mix) == 0 {
		return nil, errConfig
	}
	if cfg.Concurrency == 0 {
		// Enough workers for the rate at a 200ms average scenario.
		cfg.Concurrency = min(max(int(cfg.Rate/5), 4), 256)
	}
	if cfg.Users == 0 {
		cfg.Users = cfg.Concurrency
	}
	ctx, span := tracer.Start(ctx, "loadgen setup")
	defer span.End()
	g := &Generator{cfg: cfg, metrics: m, runID: strconv.FormatInt(time.Now().UnixNano(), 36),
		api: &Client{URLs: cfg.URLs, HTTP: platform.NewHTTPClient(15 * time.Second)}}
	products, err := g.api.Products(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("loadgen: read the catalog: %w", err)
	}
	for _, p := range products {
		g.skus = append(g.skus, p.SKU)
	}
	if len(g.skus) == 0 {
		return nil, errors.New("loadgen: the catalog is empty")
	}
	for i := range cfg.Users {
		s := &shopper{email: fmt.Sprintf("loadgen-%s-%d@loadgen.invalid", g.runID, i), password: "loadgen-" + g.runID}
		if err := g.api.Register(ctx, s.email, s.password); err != nil {
			return nil, fmt.Errorf("loadgen: register shopper %d: %w", i, err)
		}
		if err := g.login(ctx, s); err != nil {
			return nil, err
		}
		jar, _ := cookiejar.New(nil)
		s.browser = &http.Client{Jar: jar, Timeout: 15 * time.Second, Transport: g.api.HTTP.Transport}
		g.shoppers = append(g.shoppers, s)
	}
	return g, nil
}

func (g *Generator) login(ctx context.Context, s *shopper) error {
	t, err := g.api.Login(ctx, s.email, s.password)
	if err != nil {
		return fmt.Errorf("loadgen: login %s: %w", s.email, err)
	}
	s.token = t.Access
	return nil
}

// Run sends load until the duration or ctx ends. Without a duration it runs
// in hour-long rounds until ctx ends.
func (g *Generator) Run(ctx context.Context) (loadtest.Result, error) {
	for {
		d := g.cfg.Duration
		if d == 0 {
			d = time.Hour
		}
		res, err := loadtest.Run(ctx, loadtest.Config{
			Name:        "loadgen",
			Concurrency: g.cfg.Concurrency,
			Requests:    max(1, min(1_000_000, int(g.cfg.Rate*d.Seconds())+1)),
			Duration:    d,
			Rate:        g.cfg.Rate,
			Do:          g.do,
		})
		if err != nil || g.cfg.Duration > 0 || ctx.Err() != nil {
			return res, err
		}
		slog.Info("loadgen round", "result", res.String())
	}
}

func (g *Generator) do(ctx context.Context, worker, seq int) error {
	r := rand.New(rand.NewPCG(uint64(seq), uint64(worker)))
	s := g.shoppers[worker%len(g.shoppers)]
	scenario := pick(g.cfg.Mix, r)
	sku := g.skus[r.IntN(len(g.skus))]
	// One root span per scenario: its requests are children, so a trace
	// is one shopper action, and the collector's probe filter (root client
	// spans) never mistakes the load for readiness checks.
	ctx, span := tracer.Start(ctx, "loadgen "+scenario, trace.WithAttributes(attribute.String("loadgen.scenario", scenario)))
	defer span.End()
	t0 := time.Now()
	var err error
	switch scenario {
	case Browse:
		if err = g.api.Page(ctx, s.browser, "/", nil); err == nil {
			err = g.api.Page(ctx, s.browser, "/products/"+url.PathEscape(sku), nil)
		}
	case Search:
		_, err = g.api.Products(ctx, searchTerms[r.IntN(len(searchTerms))])
	case Cart:
		if err = g.api.Page(ctx, s.browser, "/cart/add", url.Values{"sku": {sku}, "quantity": {"1"}}); err == nil {
			// Keep the cart small: empty the line again.
			err = g.api.Page(ctx, s.browser, "/cart/update", url.Values{"sku": {sku}, "quantity": {"0"}})
		}
	case Checkout:
		key := fmt.Sprintf("loadgen-%s-%d", g.runID, seq)
		_, err = g.api.Checkout(ctx, s.token, key, sku, SuccessCard())
		var p *platform.Problem
		if errors.As(err, &p) && p.Status == http.StatusUnauthorized {
			// The access token expired: sign in again for the next time.
			_ = g.login(ctx, s)
		}
	}
	if ctx.Err() != nil && isCancel(err) {
		return err // cut off by the time bound: not a result
	}
	g.metrics.record(context.WithoutCancel(ctx), scenario, time.Since(t0), err)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

var tracer = otel.Tracer("github.com/shopplatform/shop-operator/services/internal/loadgen")

func isCancel(err error) bool {
	var ne net.Error
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// searchTerms are what the load's shoppers type into the search box.
var searchTerms = []string{"book", "mug", "shirt", "coffee", "lamp", "pen", "go", "blue", "zzz-nothing"}

// Run is `shopd loadgen`: telemetry (Prometheus /metrics on ADMIN_ADDR,
// OTLP when configured), register, run, report, exit.
func Run(ctx context.Context, pc platform.Config) error {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return err
	}
	tel, err := platform.SetupTelemetry(ctx, pc, nil)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	admin := platform.NewServer(pc.AdminAddr, platform.AdminMux(tel.MetricsHandler))
	ln, err := net.Listen("tcp", pc.AdminAddr)
	if err != nil {
		return fmt.Errorf("listen ADMIN_ADDR: %w", err)
	}
	go func() { _ = admin.Serve(ln) }()
	defer admin.Close()

	m, err := NewMetrics(tel.MeterProvider.Meter("github.com/shopplatform/shop-operator/services/internal/loadgen"))
	if err != nil {
		return err
	}
	slog.Info("loadgen starting", "rate", cfg.Rate, "duration", cfg.Duration.String(), "admin_addr", ln.Addr().String())
	g, err := newWhenReachable(ctx, cfg, m, time.Second, 15*time.Second)
	if err != nil {
		return err
	}
	res, err := g.Run(ctx)
	slog.Info("loadgen done", "result", res.String())
	if err != nil || ctx.Err() != nil {
		return err
	}
	if cfg.Duration > 0 {
		// Bounded run done: stay up (serving /metrics) until stopped, so a
		// Deployment neither restarts the load nor loses the last scrape.
		<-ctx.Done()
	}
	return nil
}
