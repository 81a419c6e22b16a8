package synthetic

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shopplatform/shop-operator/services/internal/devstack"
	"github.com/shopplatform/shop-operator/services/internal/loadgen"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// The load generator and the synthetic checkout run against the real shop:
// Postgres and the five services as shopd subprocesses on loopback (devstack),
// started once for this package.
var (
	stack *devstack.Stack
	shopd string
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	dir, err := os.MkdirTemp("", "synthetic-bin-")
	if err == nil {
		shopd, err = devstack.BuildShopd(ctx, dir)
	}
	if err == nil {
		stack, err = devstack.Start(ctx, devstack.Options{Shopd: shopd, Env: []string{"LOG_LEVEL=warn"},
			ServiceEnv: map[string][]string{"frontend": {"FRONTEND_COOKIE_SECRET=synthetic-test-0123456789"}}})
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the shop:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 {
		for _, s := range []string{"frontend", "orders", "payment", "catalog", "auth"} {
			fmt.Fprintf(os.Stderr, "--- %s log (tail) ---\n%s\n", s, stack.Logs(s, 20))
		}
	}
	stack.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// urlEnv is the environment the builder gives both commands.
func urlEnv(st *devstack.Stack) []string {
	return []string{
		"FRONTEND_URL=" + st.Frontend(),
		"AUTH_URL=" + st.Services["auth"].URL(),
		"CATALOG_URL=" + st.Services["catalog"].URL(),
		"ORDERS_URL=" + st.Services["orders"].URL(),
		"PAYMENT_URL=" + st.Services["payment"].URL(),
	}
}

func urls(st *devstack.Stack) loadgen.URLs {
	return loadgen.URLs{Frontend: st.Frontend(), Auth: st.Services["auth"].URL(), Catalog: st.Services["catalog"].URL(),
		Orders: st.Services["orders"].URL(), Payment: st.Services["payment"].URL()}
}

// scrape parses a Prometheus /metrics answer.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// command runs shopd with the given subcommand and environment.
func command(ctx context.Context, sub string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, shopd, sub)
	cmd.Env = append(os.Environ(), append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=", "LOG_LEVEL=info"}, env...)...)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestShopdLoadgenReportsPerformanceMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := freeAddr(t)
	cmd := command(ctx, "loadgen", append(urlEnv(stack), "ADMIN_ADDR="+admin,
		"LOADGEN_RPS=20", "LOADGEN_DURATION=2s", "LOADGEN_MIX=browse=1,search=1,cart=1,checkout=1")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The run is bounded by LOADGEN_DURATION; then it says so and keeps
	// serving /metrics until stopped.
	done := make(chan string, 1)
	var logTail strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			logTail.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), `"msg":"loadgen done"`) {
				done <- sc.Text()
			}
		}
		close(done)
	}()
	line, ok := <-done
	if !ok {
		t.Fatalf("shopd loadgen ended before its run was done: %v\n%s", cmd.Wait(), logTail.String())
	}
	t.Log(line)
	fams := scrape(t, "http://"+admin+"/metrics")

	reqs := fams["shop_loadgen_requests_total"]
	if reqs == nil || reqs.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("no counter shop_loadgen_requests_total in %v", keys(fams))
	}
	total, byScenario := 0.0, map[string]float64{}
	for _, m := range reqs.GetMetric() {
		l := labels(m)
		if l["scenario"] == "" || l["outcome"] == "" || l["service_name"] != "loadgen" {
			t.Errorf("labels %v: want scenario, outcome and service_name=loadgen", l)
		}
		if l["outcome"] == loadgen.ServerError || l["outcome"] == loadgen.Transport {
			t.Errorf("%v: %v failures against a healthy shop", l, m.GetCounter().GetValue())
		}
		total += m.GetCounter().GetValue()
		byScenario[l["scenario"]] += m.GetCounter().GetValue()
	}
	// At most rate × duration + 1 scenarios were started.
	if total < 1 || total > 41 {
		t.Errorf("%v scenarios in a 2s run at 20/s", total)
	}
	if total >= 20 && len(byScenario) != 4 {
		t.Errorf("scenarios run: %v, want all four of an even mix", byScenario)
	}
	dur := fams["shop_loadgen_request_duration_seconds"]
	if dur == nil || dur.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no histogram shop_loadgen_request_duration_seconds in %v", keys(fams))
	}
	var count uint64
	for _, m := range dur.GetMetric() {
		if labels(m)["scenario"] == "" {
			t.Errorf("histogram series without scenario: %v", labels(m))
		}
		count += m.GetHistogram().GetSampleCount()
	}
	if float64(count) != total {
		t.Errorf("histogram counts %d scenarios, counter %v", count, total)
	}
	t.Logf("scenarios: %v", byScenario)

	// SIGTERM ends it cleanly.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shopd loadgen after SIGINT: %v\n%s", err, logTail.String())
	}
}

func keys(m map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSyntheticCheckoutPassesAndRecordsIntegrationMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pc, err := platform.LoadConfig("synthetic")
	if err != nil {
		t.Fatal(err)
	}
	pc.OTLPEndpoint = ""
	tel, err := platform.SetupTelemetry(ctx, pc, &platform.TelemetryOptions{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	m, err := NewMetrics(tel.MeterProvider.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	rep := Check(ctx, urls(stack), m)
	if rep.Err != nil || rep.CleanupErr != nil || !rep.Refunded || rep.Result != Pass || rep.OrderID == "" {
		t.Fatalf("synthetic checkout: %+v", rep)
	}
	for _, s := range Steps {
		if _, ok := rep.Steps[s]; !ok {
			t.Errorf("step %s did not run: %v", s, rep.Steps)
		}
	}

	srv := httptest.NewServer(tel.MetricsHandler)
	defer srv.Close()
	fams := scrape(t, srv.URL)
	runs := fams["shop_synthetic_runs_total"]
	if runs == nil || len(runs.GetMetric()) != 1 || labels(runs.GetMetric()[0])["result"] != Pass || runs.GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Fatalf("shop_synthetic_runs_total: %v", runs)
	}
	steps := fams["shop_synthetic_step_duration_seconds"]
	if steps == nil || steps.GetType() != dto.MetricType_GAUGE || len(steps.GetMetric()) != len(Steps) {
		t.Fatalf("shop_synthetic_step_duration_seconds: %v", steps)
	}
	for _, s := range steps.GetMetric() {
		if v := s.GetGauge().GetValue(); v <= 0 || labels(s)["step"] == "" {
			t.Errorf("step series %v = %v", labels(s), v)
		}
	}
	last := fams["shop_synthetic_last_success_timestamp_seconds"]
	if last == nil || len(last.GetMetric()) != 1 || last.GetMetric()[0].GetGauge().GetValue() < float64(before.Unix()) {
		t.Fatalf("shop_synthetic_last_success_timestamp_seconds: %v", last)
	}

	t.Logf("steps: %v", rep.Steps)
}

func TestShopdSyntheticExitCode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := command(ctx, "synthetic", urlEnv(stack)...).CombinedOutput(); err != nil {
		t.Fatalf("shopd synthetic against a healthy shop: %v\n%s", err, out)
	}
	// Orders unreachable: the run fails at checkout and exits 1.
	env := append(urlEnv(stack), "ORDERS_URL=http://"+freeAddr(t))
	out, err := command(ctx, "synthetic", env...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("shopd synthetic without orders: %v, want exit code 1\n%s", err, out)
	}
	if !strings.Contains(string(out), `"failed_step":"checkout"`) {
		t.Errorf("the failing step is not logged:\n%s", out)
	}
}
