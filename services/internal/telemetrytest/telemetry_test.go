package telemetrytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopplatform/shop-operator/services/internal/auth"
	"github.com/shopplatform/shop-operator/services/internal/catalog"
	"github.com/shopplatform/shop-operator/services/internal/orders"
	"github.com/shopplatform/shop-operator/services/internal/payment"
	"github.com/shopplatform/shop-operator/services/internal/pgtest"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestCheckoutIsOneTraceWithCorrelatedLogs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	logs := &syncBuf{}
	cfg, err := platform.LoadConfig("orders")
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogLevel = -4 // debug
	tel, err := platform.SetupTelemetry(t.Context(), cfg, &platform.TelemetryOptions{LogOutput: logs, SpanProcessors: []sdktrace.SpanProcessor{rec}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })

	// The stack is built after the providers are installed, as in main.
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	iss := auth.NewIssuer(key, "shop-auth", "shop", time.Minute)
	v := iss.Verifier()
	catDB, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "catalog", catalog.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(catDB.Close)
	payDB, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "payment", payment.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(payDB.Close)
	ordDB, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "orders", orders.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ordDB.Close)
	// Record the baggage header that reaches the catalog through orders.
	var bagMu sync.Mutex
	var catalogBaggage []string
	catRoutes := catalog.New(catDB, v).Routes()
	catSrv := httptest.NewServer(platform.Handler("catalog", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bagMu.Lock()
		catalogBaggage = append(catalogBaggage, r.Header.Get("baggage"))
		bagMu.Unlock()
		catRoutes.ServeHTTP(w, r)
	})))
	t.Cleanup(catSrv.Close)
	paySrv := httptest.NewServer(platform.Handler("payment", payment.New(payDB, v, payment.Options{}).Routes()))
	t.Cleanup(paySrv.Close)
	ordSrv := httptest.NewServer(platform.Handler("orders", orders.New(ordDB, v, orders.Options{CatalogURL: catSrv.URL, PaymentURL: paySrv.URL}).Routes()))
	t.Cleanup(ordSrv.Close)

	// The caller (the storefront in production) starts the trace.
	member, _ := baggage.NewMember("shop.session", "s-42")
	bag, _ := baggage.New(member)
	ctx, root := otel.Tracer("test").Start(baggage.ContextWithBaggage(t.Context(), bag), "storefront checkout")
	traceID := root.SpanContext().TraceID()
	tok, _ := iss.Issue("u1", "u1@example.com", "customer")
	body, _ := json.Marshal(orders.CheckoutRequest{Items: []orders.Item{{SKU: "BOOK-001", Quantity: 1}},
		Card: orders.Card{Number: payment.CardSuccess, ExpMonth: 12, ExpYear: time.Now().Year() + 1, CVC: "123"}})
	req, _ := http.NewRequestWithContext(platform.WithToken(ctx, tok), "POST", ordSrv.URL+"/api/orders/checkout", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "telemetry-1")
	resp, err := platform.NewHTTPClient(10 * time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("checkout %d", resp.StatusCode)
	}
	root.End()

	// Server spans end just after their response is written: wait (bounded) for the orders one.
	var spans []sdktrace.ReadOnlySpan
	for i := 0; i < 100; i++ {
		spans = rec.Ended()
		if hasSpan(spans, "POST /api/orders/checkout", trace.SpanKindServer) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	inTrace := map[string]int{}
	dbSpans := 0
	for _, s := range spans {
		if s.SpanContext().TraceID() != traceID {
			continue
		}
		inTrace[s.SpanKind().String()+" "+s.Name()]++
		if strings.Contains(s.InstrumentationScope().Name, "otelpgx") {
			dbSpans++
		}
	}
	for _, want := range []string{
		"server POST /api/orders/checkout",
		"server POST /api/catalog/reservations",
		"server POST /api/catalog/reservations/{id}/commit",
		"server POST /api/payments/charges",
		"internal storefront checkout",
		"client provider.authorize",
	} {
		if inTrace[want] == 0 {
			t.Errorf("trace lacks span %q; has %v", want, inTrace)
		}
	}
	if inTrace["client HTTP POST"] < 3 {
		t.Errorf("want client spans for every outbound call, got %v", inTrace)
	}
	if dbSpans < 5 {
		t.Errorf("want database spans of all three services in the trace, got %d", dbSpans)
	}
	// Every service's spans are children within this one trace: no orphan roots besides ours.
	for _, s := range spans {
		if s.SpanContext().TraceID() == traceID && !s.Parent().IsValid() && s.Name() != "storefront checkout" {
			t.Errorf("span %q starts its own root", s.Name())
		}
	}

	bagMu.Lock()
	for _, b := range catalogBaggage {
		if !strings.Contains(b, "shop.session=s-42") {
			t.Errorf("baggage not propagated through orders to catalog: %q", b)
		}
	}
	if len(catalogBaggage) == 0 {
		t.Error("catalog saw no request")
	}
	bagMu.Unlock()

	// Log lines written while serving carry the same trace ID.
	found := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		msg, _ := line["msg"].(string)
		if route, _ := line["route"].(string); msg == "request" && line["trace_id"] == traceID.String() {
			found[route] = true
		}
		if msg == "order confirmed" || msg == "charge" {
			if line["trace_id"] != traceID.String() || line["span_id"] == nil {
				t.Errorf("log %q has trace_id %v, want %s", msg, line["trace_id"], traceID)
			}
			found[msg] = true
		}
	}
	for _, route := range []string{"POST /api/orders/checkout", "POST /api/catalog/reservations", "POST /api/payments/charges", "POST /api/catalog/reservations/{id}/commit"} {
		if !found[route] {
			t.Errorf("no access log line for %s with the trace's id", route)
		}
	}
	if !found["order confirmed"] || !found["charge"] {
		t.Fatalf("log lines missing: %s", logs.String())
	}

	// /metrics serves the RED and business metrics, with exemplars in OpenMetrics.
	mreq := httptest.NewRequest("GET", "/metrics", nil)
	mreq.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	mrec := httptest.NewRecorder()
	platform.AdminMux(tel.MetricsHandler).ServeHTTP(mrec, mreq)
	metrics := mrec.Body.String()
	for _, want := range []string{
		`shop_orders_placed_total{`, `shop_order_value_bucket{`, `shop_payments_total{`, `shop_checkouts_total{`,
		`http_server_request_duration_seconds_bucket{`, `http_route="/api/orders/checkout"`, `http_client_request_duration_seconds_bucket{`,
		`trace_id="` + traceID.String() + `"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The remaining business metrics: logins (good and bad), registrations,
	// a reservation conflict and a refund.
	authDB, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "auth", auth.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(authDB.Close)
	authSrv := httptest.NewServer(platform.Handler("auth", auth.New(authDB, iss).Routes()))
	t.Cleanup(authSrv.Close)
	hc := platform.NewHTTPClient(10 * time.Second)
	call := func(base, method, path, token string, in, out any) error {
		ctx := t.Context()
		if token != "" {
			ctx = platform.WithToken(ctx, token)
		}
		return platform.CallJSON(ctx, hc, method, base+path, http.Header{"Idempotency-Key": {"m-" + path}}, in, out)
	}
	if err := call(authSrv.URL, "POST", "/api/auth/register", "", map[string]string{"email": "m@example.com", "password": "password1", "name": "M"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := call(authSrv.URL, "POST", "/api/auth/login", "", map[string]string{"email": "m@example.com", "password": "password1"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := call(authSrv.URL, "POST", "/api/auth/login", "", map[string]string{"email": "m@example.com", "password": "wrong-one"}, nil); err == nil {
		t.Fatal("bad login accepted")
	}
	if err := call(catSrv.URL, "POST", "/api/catalog/reservations", tok, map[string]any{"order_id": "x", "items": []map[string]any{{"sku": "BOOK-001", "quantity": 100}}}, nil); err == nil {
		t.Fatal("oversized reservation accepted")
	}
	var ch payment.Charge
	if err := call(paySrv.URL, "POST", "/api/payments/charges", tok, map[string]any{"amount_minor": 100, "currency": "EUR",
		"card": map[string]any{"number": payment.CardSuccess, "exp_month": 12, "exp_year": time.Now().Year() + 1, "cvc": "123"}}, &ch); err != nil {
		t.Fatal(err)
	}
	if err := call(paySrv.URL, "POST", "/api/payments/charges/"+ch.ID+"/refunds", tok, nil, nil); err != nil {
		t.Fatal(err)
	}
	mrec = httptest.NewRecorder()
	platform.AdminMux(tel.MetricsHandler).ServeHTTP(mrec, httptest.NewRequest("GET", "/metrics", nil))
	metrics = mrec.Body.String()
	for _, want := range []string{
		`shop_auth_logins_total{`, `shop_auth_registrations_total{`,
		`shop_stock_reservation_conflicts_total{`, `shop_payment_refunds_total{`, `service_name="orders"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, outcome := range []string{"success", "failure"} {
		if !hasSeries(metrics, "shop_auth_logins_total{", `outcome="`+outcome+`"`) {
			t.Errorf("no login series with outcome %s", outcome)
		}
	}
	if f := os.Getenv("METRICS_DUMP"); f != "" {
		os.WriteFile(f, []byte(metrics), 0o644)
	}
}

func hasSpan(spans []sdktrace.ReadOnlySpan, name string, kind trace.SpanKind) bool {
	for _, s := range spans {
		if s.Name() == name && s.SpanKind() == kind {
			return true
		}
	}
	return false
}

func hasSeries(metrics, prefix, label string) bool {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, label) {
			return true
		}
	}
	return false
}
