// Command bench measures the shop on loopback (run by `make -C services
// bench`, never by `make test`): requests/s and p50/p99 for the catalog
// listing, the product page and a full checkout against the real services
// and Postgres; the catalog handler in-process with telemetry off and on (the
// instrumentation overhead); and a bare net/http handler (the floor). Every
// run is bounded in request count and time and targets 127.0.0.1 only.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/devstack"
	"github.com/shopplatform/shop-operator/services/internal/loadtest"
)

var (
	flagShopd   = flag.String("shopd", "", "shopd binary (default: build it)")
	flagConc    = flag.Int("c", 16, "concurrent workers")
	flagN       = flag.Int("n", 4000, "requests per read scenario (bounded by -d too)")
	flagCheckN  = flag.Int("checkout-n", 600, "checkouts (bounded by -d too)")
	flagDur     = flag.Duration("d", 20*time.Second, "time bound per scenario")
	flagRounds  = flag.Int("rounds", 3, "rounds per scenario (the median round is reported)")
	flagMode    = flag.String("mode", "all", "all | overhead (telemetry overhead in concurrent pairs, needs -db) | inproc (internal: one in-process run, JSON out)")
	flagTel     = flag.Bool("telemetry", false, "inproc: telemetry on")
	flagDB      = flag.String("db", "", "inproc: catalog database URL")
	flagWhat    = flag.String("what", "catalog", "inproc: catalog | bare")
	flagProf    = flag.String("cpuprofile", "", "inproc: write a CPU profile of the run here")
	flagMemProf = flag.String("memprofile", "", "inproc: write a heap (allocation) profile after the run here")
	flagAllocs  = flag.Bool("allocs", false, "inproc: also print heap allocations per request (whole process) to stderr")
)

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *flagMode {
	case "inproc":
		err = inproc(ctx)
	case "overhead":
		err = overhead(ctx)
	default:
		err = all(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func all(ctx context.Context) error {
	shopd := *flagShopd
	if shopd == "" {
		dir, err := os.MkdirTemp("", "bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if shopd, err = devstack.BuildShopd(ctx, dir); err != nil {
			return err
		}
	}
	const adminEmail, adminPass = "bench-admin@example.com", "bench-admin-password"
	st, err := devstack.Start(ctx, devstack.Options{
		Shopd: shopd, Log: os.Stderr,
		Env: []string{"LOG_LEVEL=warn"},
		ServiceEnv: map[string][]string{
			"auth":     {"AUTH_ADMIN_EMAIL=" + adminEmail, "AUTH_ADMIN_PASSWORD=" + adminPass},
			"frontend": {"FRONTEND_COOKIE_SECRET=bench-secret-0123456789"},
		},
	})
	if err != nil {
		return err
	}
	defer st.Stop()

	fmt.Printf("# shop load benchmarks, %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("# %s/%s, %d CPUs, GOMAXPROCS %d, %s; load driver and services share the machine\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("# workers %d, bounds: %d requests (%d checkouts) or %s per scenario and round, %d rounds\n", *flagConc, *flagN, *flagCheckN, *flagDur, *flagRounds)
	fmt.Printf("# load average before: %s\n\n", loadavg())

	c := loadtest.Client(*flagConc)
	get := func(url string) func(context.Context, int, int) error {
		return func(ctx context.Context, _, _ int) error { return fetch(ctx, c, "GET", url, nil, nil, http.StatusOK) }
	}
	var summary []loadtest.Result
	runOne := func(cfg loadtest.Config) error {
		if cfg.Concurrency == 0 {
			cfg.Concurrency = *flagConc
		}
		if cfg.Duration == 0 {
			cfg.Duration = *flagDur
		}
		var rounds []loadtest.Result
		for i := 0; i < *flagRounds; i++ {
			r, err := loadtest.Run(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Println(r)
			rounds = append(rounds, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cfg.Warmup = 0
		}
		summary = append(summary, median(rounds))
		return nil
	}
	defer func() { printSummary(summary) }()

	// A product to read and to buy: created by the admin with ample stock so
	// the checkout run never sells out.
	admin, err := login(ctx, c, st.Services["auth"].URL(), adminEmail, adminPass)
	if err != nil {
		return err
	}
	sku := "BENCH-001"
	prod := map[string]any{"sku": sku, "name": "Benchmark Widget", "description": "A product for load tests.", "price_minor": 999,
		"currency": "EUR", "category": "bench", "image_url": "/static/img/bench.svg", "stock": 1_000_000}
	if err := fetch(ctx, c, "POST", st.Services["catalog"].URL()+"/api/catalog/products", bearer(admin), prod, http.StatusCreated); err != nil {
		return fmt.Errorf("create the bench product: %w", err)
	}

	// CPU per request of the services involved (Postgres not included).
	cpuOf := func(names ...string) func() time.Duration {
		return func() time.Duration {
			d, err := st.CPUTime(names...)
			if err != nil {
				fmt.Fprintln(os.Stderr, "cpu:", err)
			}
			return d
		}
	}
	cat := st.Services["catalog"].URL()
	if err := runOne(loadtest.Config{Name: "catalog list (API, 20/page)", Requests: *flagN, Warmup: 100, CPU: cpuOf("catalog"), Do: get(cat + "/api/catalog/products?page_size=20")}); err != nil {
		return err
	}
	if err := runOne(loadtest.Config{Name: "catalog product (API)", Requests: *flagN, Warmup: 100, CPU: cpuOf("catalog"), Do: get(cat + "/api/catalog/products/" + sku)}); err != nil {
		return err
	}
	if err := runOne(loadtest.Config{Name: "catalog categories (API)", Requests: *flagN, Warmup: 100, CPU: cpuOf("catalog"), Do: get(cat + "/api/catalog/categories")}); err != nil {
		return err
	}
	fe := st.Frontend()
	if err := runOne(loadtest.Config{Name: "storefront home page (HTML)", Requests: *flagN, Warmup: 50, CPU: cpuOf("frontend", "catalog"), Do: get(fe + "/")}); err != nil {
		return err
	}
	if err := runOne(loadtest.Config{Name: "storefront product page (HTML)", Requests: *flagN, Warmup: 50, CPU: cpuOf("frontend", "catalog"), Do: get(fe + "/products/" + sku)}); err != nil {
		return err
	}

	// Full checkout: orders' saga (reserve in catalog, charge in payment,
	// commit), one shopper per worker, a new idempotency key per request.
	conc := min(*flagConc, 8)
	toks := make([]string, conc)
	for i := range toks {
		email := fmt.Sprintf("bench-%d-%d@example.com", time.Now().UnixNano(), i)
		if err := fetch(ctx, c, "POST", st.Services["auth"].URL()+"/api/auth/register", nil,
			map[string]string{"email": email, "password": "bench-password", "name": "Bench"}, http.StatusCreated); err != nil {
			return err
		}
		if toks[i], err = login(ctx, c, st.Services["auth"].URL(), email, "bench-password"); err != nil {
			return err
		}
	}
	ord := st.Services["orders"].URL() + "/api/orders/checkout"
	body := map[string]any{"items": []map[string]any{{"sku": sku, "quantity": 1}},
		"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2039, "cvc": "123", "name": "Bench"}}
	run := fmt.Sprint(time.Now().UnixNano())
	var keys, sold atomic.Int64 // keys unique across rounds; confirmed checkouts
	if err := runOne(loadtest.Config{Name: "full checkout (orders API saga)", Concurrency: conc, Requests: *flagCheckN, Warmup: 10, Duration: 2 * *flagDur,
		CPU: cpuOf("orders", "catalog", "payment", "auth"),
		Do: func(ctx context.Context, w, _ int) error {
			h := bearer(toks[w])
			h.Set("Idempotency-Key", fmt.Sprintf("bench-%s-%d", run, keys.Add(1)))
			err := fetch(ctx, c, "POST", ord, h, body, http.StatusCreated)
			if err == nil {
				sold.Add(1)
			}
			return err
		}}); err != nil {
		return err
	}
	// No overselling, no lost update: the stock fell by exactly the number
	// of confirmed checkouts (warm-up included).
	var after struct {
		Stock int64 `json:"stock"`
	}
	if err := getJSON(ctx, c, cat+"/api/catalog/products/"+sku, &after); err != nil {
		return err
	}
	if want := 1_000_000 - sold.Load(); after.Stock != want {
		fmt.Printf("STOCK MISMATCH: %d in stock after %d checkouts, want %d\n", after.Stock, sold.Load(), want)
	} else {
		fmt.Printf("stock check: %d confirmed checkouts, stock %d as expected\n", sold.Load(), after.Stock)
	}

	// In-process: the catalog handler with telemetry off and on, and the floor.
	// Separate processes, because OpenTelemetry's providers are global;
	// the variants alternate so that background load hits them alike.
	fmt.Println()
	variants := []struct{ what, tel, ratio string }{{"bare", "false", ""}, {"catalog", "false", ""}, {"catalog", "true", ""}, {"catalog", "true", "0.1"}}
	byVariant := make([][]loadtest.Result, len(variants))
	for range *flagRounds {
		for i, v := range variants {
			r, err := inprocRun(ctx, st.DBURLs["catalog"], v.what, v.tel, v.ratio)
			if err != nil {
				return err
			}
			fmt.Println(r)
			byVariant[i] = append(byVariant[i], r)
		}
	}
	for _, rs := range byVariant {
		summary = append(summary, median(rs))
	}
	return nil
}

// median is the round with the median requests/s.
func median(rs []loadtest.Result) loadtest.Result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b loadtest.Result) int { return cmp.Compare(a.RPS, b.RPS) })
	return s[len(s)/2]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func printSummary(rs []loadtest.Result) {
	if len(rs) == 0 {
		return
	}
	fmt.Printf("\n## Summary (median of %d rounds; load average now %s)\n\n", *flagRounds, loadavg())
	fmt.Println("| scenario | requests | req/s | p50 | p90 | p99 | CPU per request | errors |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		fmt.Printf("| %s | %d | %.0f | %s | %s | %s | %s | %d |\n", r.Name, r.Requests, r.RPS, round(r.P50), round(r.P90), round(r.P99), round(r.CPUPerRequest), r.Errors)
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

func inprocRun(ctx context.Context, db, what, tel, ratio string) (loadtest.Result, error) {
	self, err := os.Executable()
	if err != nil {
		return loadtest.Result{}, err
	}
	cmd := exec.CommandContext(ctx, self, "-mode=inproc", "-what="+what, "-telemetry="+tel, "-db="+db,
		fmt.Sprint("-c=", *flagConc), fmt.Sprint("-n=", *flagN), "-d="+flagDur.String())
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "OTEL_TRACES_SAMPLER=parentbased_always_on", "OTEL_TRACES_SAMPLER_ARG=")
	if ratio != "" {
		cmd.Env = append(cmd.Env, "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG="+ratio)
	}
	out, err := cmd.Output()
	if err != nil {
		return loadtest.Result{}, fmt.Errorf("in-process run %s telemetry=%s: %w", what, tel, err)
	}
	var r loadtest.Result
	return r, json.Unmarshal(out, &r)
}

func bearer(tok string) http.Header {
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return h
}

func login(ctx context.Context, c *http.Client, authURL, email, pw string) (string, error) {
	var t struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := json.Marshal(map[string]string{"email": email, "password": pw})
	req, _ := http.NewRequestWithContext(ctx, "POST", authURL+"/api/auth/login", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return "", fmt.Errorf("login %s: %s %s", email, resp.Status, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// fetch sends one request and checks the status; the body is drained so the
// connection is reused.
func fetch(ctx context.Context, c *http.Client, method, url string, h http.Header, in any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s %s", method, url, resp.Status, strings.TrimSpace(string(msg)))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func getJSON(ctx context.Context, c *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
