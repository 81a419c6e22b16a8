package frontend

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// The storefront's calls carry the W3C trace context of the page request and
// the shopper's token, through platform's instrumented client.
func TestCallsCarryTraceContextAndToken(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	shop := newFakeShop()
	var mu sync.Mutex
	seen := map[string][2]string{} // path -> traceparent, authorization
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = [2]string{r.Header.Get("Traceparent"), r.Header.Get("Authorization")}
		mu.Unlock()
		shop.ServeHTTP(w, r)
	}))
	defer back.Close()
	srv, err := New(Options{AuthURL: back.URL, CatalogURL: back.URL, OrdersURL: back.URL, Client: platform.NewHTTPClient(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(platform.Handler("frontend", srv))
	defer front.Close()

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	shop.users["ada@example.com"] = "correct horse"
	resp, err := c.PostForm(front.URL+"/login", map[string][]string{"email": {"ada@example.com"}, "password": {"correct horse"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("GET", front.URL+"/orders", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("orders page: %s", resp.Status)
	}
	mu.Lock()
	got := seen["/api/orders"]
	mu.Unlock()
	if !strings.Contains(got[0], traceID) {
		t.Errorf("orders call traceparent %q does not continue trace %s", got[0], traceID)
	}
	if got[1] != "Bearer at-ada@example.com" {
		t.Errorf("orders call Authorization %q, want the shopper's token", got[1])
	}
	var server, client bool
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID {
			continue
		}
		switch s.SpanKind().String() {
		case "server":
			server = true
		case "client":
			client = true
		}
	}
	if !server || !client {
		t.Errorf("spans in the trace: server %v, client %v; want both", server, client)
	}
}
