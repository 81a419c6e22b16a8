package platform

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopplatform/shop-operator/services/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func decodeProblem(t *testing.T, resp *http.Response) Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	var p Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecodeJSON(t *testing.T) {
	type req struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	cases := []struct {
		body   string
		status int
	}{
		{`{"name":"a","n":1}`, 0},
		{``, 400},
		{`{"name":`, 400},
		{`{"name":"a","extra":1}`, 400},
		{`{"n":"x"}`, 400},
		{`{"n":1} {"n":2}`, 400},
		{`{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413},
	}
	for _, c := range cases {
		var v req
		err := DecodeJSONReader(strings.NewReader(c.body), &v)
		got := 0
		if p, ok := err.(*Problem); ok {
			got = p.Status
		} else if err != nil {
			t.Fatalf("%q: non-problem error %v", c.body, err)
		}
		if got != c.status {
			t.Errorf("%.40q: status %d, want %d", c.body, got, c.status)
		}
	}
}

func TestHandlerRecoversPanicsAndLimitsBodies(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := DecodeJSON(r, &v); err != nil {
			WriteProblem(w, r, err)
			return
		}
		WriteJSON(w, 200, v)
	})
	mux.HandleFunc("/", NotFound)
	srv := httptest.NewServer(Handler("test", mux))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	if p := decodeProblem(t, resp); p.Status != 500 || p.Code != "internal" {
		t.Fatalf("panic: %+v", p)
	}
	big := `{"a":"` + strings.Repeat("x", 2*MaxBodyBytes) + `"}`
	resp, err = http.Post(srv.URL+"/echo", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	if p := decodeProblem(t, resp); p.Status != 413 {
		t.Fatalf("big body: %+v", p)
	}
	resp, err = http.Post(srv.URL+"/echo", "text/plain", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := decodeProblem(t, resp); p.Status != 415 {
		t.Fatalf("content type: %+v", p)
	}
	resp, err = http.Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	if p := decodeProblem(t, resp); p.Status != 404 || p.Instance != "/nope" {
		t.Fatalf("404: %+v", p)
	}
}

func TestServeAdminAndGracefulShutdown(t *testing.T) {
	cfg, err := LoadConfig("test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	var logs bytes.Buffer
	tel, err := SetupTelemetry(t.Context(), cfg, &TelemetryOptions{LogOutput: &syncWriter{w: &logs}})
	if err != nil {
		t.Fatal(err)
	}
	// Use fixed listeners so the test knows the ports.
	appLn := httptest.NewUnstartedServer(nil).Listener
	adminLn := httptest.NewUnstartedServer(nil).Listener
	cfg.HTTPAddr, cfg.AdminAddr = appLn.Addr().String(), adminLn.Addr().String()
	appLn.Close()
	adminLn.Close()

	started := make(chan struct{})
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/test/slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		WriteJSON(w, 200, map[string]string{"ok": "yes"})
	})
	ready := true
	var mu sync.Mutex
	check := Check{Name: "db", Func: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !ready {
			return io.ErrUnexpectedEOF
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, tel, mux, check) }()

	client := &http.Client{Timeout: 10 * time.Second}
	admin := "http://" + cfg.AdminAddr
	var resp *http.Response
	for i := 0; i < 100; i++ { // bounded wait for the listener
		if resp, err = client.Get(admin + "/healthz"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	if resp, _ = client.Get(admin + "/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	mu.Lock()
	ready = false
	mu.Unlock()
	if resp, _ = client.Get(admin + "/readyz"); resp.StatusCode != 503 {
		t.Fatalf("readyz not ready: %d", resp.StatusCode)
	}

	// An in-flight request completes although shutdown has begun.
	slow := make(chan *http.Response, 1)
	go func() {
		r, err := client.Get("http://" + cfg.HTTPAddr + "/api/test/slow")
		if err != nil {
			t.Error(err)
		}
		slow <- r
	}()
	<-started
	cancel()
	time.Sleep(100 * time.Millisecond) // let Shutdown start; correctness does not depend on it
	close(release)
	r := <-slow
	if r == nil || r.StatusCode != 200 {
		t.Fatalf("in-flight request was not drained: %v", r)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestMetricsEndpointServesREDMetrics(t *testing.T) {
	cfg, _ := LoadConfig("test")
	tel, err := SetupTelemetry(t.Context(), cfg, &TelemetryOptions{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/x/{id}", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 200, "ok") })
	srv := httptest.NewServer(Handler("test", mux))
	defer srv.Close()
	if _, err := http.Get(srv.URL + "/api/x/42"); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	AdminMux(tel.MetricsHandler).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"http_server_request_duration_seconds_bucket", `http_route="/api/x/{id}"`, `http_response_status_code="200"`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestVerifyToken(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	jwks := JWKS{Keys: []JWK{NewJWK("k1", pub)}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 200, jwks) }))
	defer srv.Close()
	v := NewVerifier(srv.URL, "shop-auth", "shop")

	sign := func(key ed25519.PrivateKey, kid string, c Claims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u1", Issuer: "shop-auth", Audience: jwt.ClaimStrings{"shop"},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}, Role: RoleCustomer}
	if c, err := v.VerifyToken(t.Context(), sign(priv, "k1", good)); err != nil || c.Subject != "u1" {
		t.Fatalf("good token: %v", err)
	}
	expired := good
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	wrongAud := good
	wrongAud.Audience = jwt.ClaimStrings{"other"}
	tampered := sign(priv, "k1", good)
	tampered = tampered[:len(tampered)-4] + "AAAA"
	for name, tc := range map[string]struct {
		tok  string
		code string
	}{
		"expired":   {sign(priv, "k1", expired), "token_expired"},
		"wrong key": {sign(otherPriv, "k1", good), "invalid_token"},
		"tampered":  {tampered, "invalid_token"},
		"audience":  {sign(priv, "k1", wrongAud), "invalid_token"},
		"garbage":   {"not.a.jwt", "invalid_token"},
		"none alg":  {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.", "invalid_token"},
	} {
		_, err := v.VerifyToken(t.Context(), tc.tok)
		if p, ok := err.(*Problem); !ok || p.Code != tc.code {
			t.Errorf("%s: got %v, want %s", name, err, tc.code)
		}
	}

	// Middleware: missing token, wrong role, and the token forwarded by the client.
	var forwarded string
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { forwarded = BearerToken(r) }))
	defer peer.Close()
	h := v.Require(func(w http.ResponseWriter, r *http.Request) {
		if err := CallJSON(r.Context(), NewHTTPClient(time.Second*5), "GET", peer.URL, nil, nil, nil); err != nil {
			t.Error(err)
		}
		w.WriteHeader(204)
	}, RoleCustomer)
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("missing token: %d", rec.Code)
	}
	tok := sign(priv, "k1", good)
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec = httptest.NewRecorder()
	h(rec, req)
	if rec.Code != 204 || forwarded != tok {
		t.Fatalf("valid token: %d, forwarded %q", rec.Code, forwarded)
	}
	adminOnly := v.Require(func(w http.ResponseWriter, r *http.Request) {}, RoleAdmin)
	rec = httptest.NewRecorder()
	adminOnly(rec, req)
	if rec.Code != 403 {
		t.Fatalf("wrong role: %d", rec.Code)
	}
}

func TestMigrateConcurrentReplicas(t *testing.T) {
	url := pgtest.NewDatabase(t)
	migs := fstest.MapFS{
		"001_items.sql": {Data: []byte(`CREATE TABLE items (id int PRIMARY KEY);`)},
		"002_seed.sql":  {Data: []byte(`INSERT INTO items VALUES (1), (2);`)},
	}
	var wg sync.WaitGroup
	pools := make([]*pgxpool.Pool, 4)
	errs := make([]error, 4)
	for i := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pools[i], errs[i] = OpenDB(t.Context(), url, "test", migs)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer pools[i].Close()
	}
	var n int
	if err := pools[0].QueryRow(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil || n != 2 {
		t.Fatalf("items: %d %v", n, err)
	}
	if err := pools[0].QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != 2 {
		t.Fatalf("migrations: %d %v", n, err)
	}
	bad := fstest.MapFS{"003_bad.sql": {Data: []byte(`CREATE TABLE items (id int);`)}}
	if err := Migrate(t.Context(), pools[0], "test", bad); err == nil {
		t.Fatal("bad migration applied")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestVerifierSurvivesAuthOutageAndRotates(t *testing.T) {
	pub1, priv1, _ := ed25519.GenerateKey(rand.Reader)
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	var mu sync.Mutex
	keys := JWKS{Keys: []JWK{NewJWK("k1", pub1)}}
	up := true
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		if !up {
			WriteProblem(w, r, NewProblem(503, "down", ""))
			return
		}
		WriteJSON(w, 200, keys)
	}))
	defer srv.Close()
	now := time.Now()
	v := NewVerifier(srv.URL, "shop-auth", "shop")
	v.now = func() time.Time { return now }
	sign := func(key ed25519.PrivateKey, kid string) string {
		c := Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u", Issuer: "shop-auth", Audience: jwt.ClaimStrings{"shop"},
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(24 * time.Hour))}, Role: RoleCustomer}
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(key)
		return s
	}
	if _, err := v.VerifyToken(t.Context(), sign(priv1, "k1")); err != nil {
		t.Fatal(err)
	}
	// Auth goes down and the cache ages: cached keys keep working, and
	// refetches are throttled.
	mu.Lock()
	up = false
	mu.Unlock()
	now = now.Add(time.Hour)
	for i := 0; i < 5; i++ {
		if _, err := v.VerifyToken(t.Context(), sign(priv1, "k1")); err != nil {
			t.Fatalf("stale key refused during outage: %v", err)
		}
	}
	mu.Lock()
	if fetches != 2 {
		t.Fatalf("%d fetches, want 2 (throttled)", fetches)
	}
	// Auth rotates to k2 and comes back.
	up = true
	keys = JWKS{Keys: []JWK{NewJWK("k2", pub2)}}
	mu.Unlock()
	now = now.Add(11 * time.Second)
	if _, err := v.VerifyToken(t.Context(), sign(priv2, "k2")); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
}

// Every query gets a client span carrying the statement and the pool's
// connection attributes; pool acquires get none (they are not traced, for
// cost: docs/benchmarks-services.md).
func TestDatabaseSpans(t *testing.T) {
	url := pgtest.NewDatabase(t)
	tel, rec := recordSpans(t)
	pool, err := OpenDB(t.Context(), url, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, parent := tel.TracerProvider.Tracer("test").Start(t.Context(), "parent")
	var n int
	if err := pool.QueryRow(ctx, "SELECT $1::int", 7).Scan(&n); err != nil || n != 7 {
		t.Fatalf("query: %d %v", n, err)
	}
	parent.End()
	pcfg, _ := pgxpool.ParseConfig(url)
	var query sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			continue
		}
		if strings.Contains(strings.ToLower(s.Name()), "acquire") {
			t.Errorf("pool acquire traced: %q", s.Name())
		}
		if s.Name() == "SELECT" {
			query = s
		}
	}
	if query == nil {
		t.Fatalf("no query span under the parent; spans: %d", len(rec.Ended()))
	}
	if query.SpanKind() != trace.SpanKindClient {
		t.Errorf("query span kind %v", query.SpanKind())
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range query.Attributes() {
		if _, dup := attrs[kv.Key]; dup {
			t.Errorf("attribute %s set twice", kv.Key)
		}
		attrs[kv.Key] = kv.Value
	}
	for k, want := range map[attribute.Key]string{
		"db.system.name": "postgresql",
		"db.query.text":  "SELECT $1::int",
		"server.address": pcfg.ConnConfig.Host,
		"db.namespace":   pcfg.ConnConfig.Database,
		"user.name":      pcfg.ConnConfig.User, // otelpgx's key
	} {
		if got := attrs[k].Emit(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := attrs["server.port"].AsInt64(); got != int64(pcfg.ConnConfig.Port) {
		t.Errorf("server.port = %d, want %d", got, pcfg.ConnConfig.Port)
	}
}
