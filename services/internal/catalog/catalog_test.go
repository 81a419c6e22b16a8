package catalog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/auth"
	"github.com/shopplatform/shop-operator/services/internal/pgtest"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	t        *testing.T
	srv      *httptest.Server
	svc      *Service
	issuer   *auth.Issuer
	customer string
	other    string
	admin    string
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, CacheOptions{}) }

func newEnvWith(t *testing.T, co CacheOptions) *env {
	t.Helper()
	db, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "catalog", Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	iss := auth.NewIssuer(key, "shop-auth", "shop", time.Minute)
	svc := NewWithCache(db, iss.Verifier(), co)
	e := &env{t: t, svc: svc, issuer: iss}
	e.customer, _ = iss.Issue("user-1", "c@example.com", "customer")
	e.other, _ = iss.Issue("user-2", "o@example.com", "customer")
	e.admin, _ = iss.Issue("admin-1", "a@example.com", "admin")
	e.srv = httptest.NewServer(platform.Handler("catalog", svc.Routes()))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	if s, ok := body.(string); ok {
		r = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		e.t.Errorf("%s %s: error without problem JSON: %s", method, path, data)
	}
	return resp.StatusCode, data
}

func (e *env) expect(method, path, token string, body any, status int, code string) []byte {
	e.t.Helper()
	got, data := e.do(method, path, token, body)
	if got != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, data)
	}
	if code != "" {
		var p platform.Problem
		json.Unmarshal(data, &p)
		if p.Code != code {
			e.t.Fatalf("%s %s: code %q, want %q: %s", method, path, p.Code, code, data)
		}
	}
	return data
}

func (e *env) stock(sku string) int {
	var p Product
	json.Unmarshal(e.expect("GET", "/api/catalog/products/"+sku, "", nil, 200, ""), &p)
	return p.Stock
}

type page struct {
	Products []Product `json:"products"`
	Next     string    `json:"next_page_token"`
}

func TestListPaginationFilterSearch(t *testing.T) {
	e := newEnv(t)
	seen := map[string]bool{}
	token := ""
	for i := 0; i < 20; i++ { // bounded
		var p page
		json.Unmarshal(e.expect("GET", "/api/catalog/products?page_size=7&page_token="+token, "", nil, 200, ""), &p)
		for _, pr := range p.Products {
			if seen[pr.SKU] {
				t.Fatalf("%s on two pages", pr.SKU)
			}
			seen[pr.SKU] = true
		}
		if p.Next == "" {
			break
		}
		token = p.Next
	}
	if len(seen) < 30 {
		t.Fatalf("seed has %d products, want a few dozen", len(seen))
	}
	var p page
	json.Unmarshal(e.expect("GET", "/api/catalog/products?category=books&page_size=100", "", nil, 200, ""), &p)
	if len(p.Products) == 0 {
		t.Fatal("no books")
	}
	for _, pr := range p.Products {
		if pr.Category != "books" {
			t.Fatalf("category filter leaked %s", pr.SKU)
		}
	}
	json.Unmarshal(e.expect("GET", "/api/catalog/products?q=ESPRESSO", "", nil, 200, ""), &p)
	if len(p.Products) != 1 || p.Products[0].Name != "Espresso Machine" {
		t.Fatalf("search: %+v", p.Products)
	}
	json.Unmarshal(e.expect("GET", "/api/catalog/products?q=100%25", "", nil, 200, ""), &p)
	if len(p.Products) != 0 {
		t.Fatalf("%% was not escaped: %+v", p.Products)
	}
	var cats struct{ Categories []Category }
	json.Unmarshal(e.expect("GET", "/api/catalog/categories", "", nil, 200, ""), &cats)
	if len(cats.Categories) != 6 || cats.Categories[0].Count == 0 {
		t.Fatalf("categories %+v", cats)
	}
	for _, q := range []string{"page_size=0", "page_size=101", "page_size=x", "page_token=!!", "category=Bad Cat", "q=" + strings.Repeat("a", 101)} {
		e.expect("GET", "/api/catalog/products?"+strings.ReplaceAll(q, " ", "%20"), "", nil, 422, "validation_failed")
	}
	e.expect("GET", "/api/catalog/products/NOPE-1", "", nil, 404, "not_found")
}

func TestAdminCRUDAndAuthz(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"sku": "NEW-1", "name": "New", "description": "d", "price": "12.50", "currency": "EUR", "category": "garden-tools", "image_url": "/images/x.svg", "stock": 3}
	e.expect("POST", "/api/catalog/products", "", body, 401, "missing_token")
	e.expect("POST", "/api/catalog/products", e.customer, body, 403, "forbidden")
	e.expect("POST", "/api/catalog/products", e.customer[:len(e.customer)-2]+"xx", body, 401, "invalid_token")
	expired := *e.issuer
	expired.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	old, _ := expired.Issue("admin-1", "a@example.com", "admin")
	e.expect("POST", "/api/catalog/products", old, body, 401, "token_expired")

	var p Product
	json.Unmarshal(e.expect("POST", "/api/catalog/products", e.admin, body, 201, ""), &p)
	if p.PriceMinor != 1250 || p.Stock != 3 {
		t.Fatalf("created %+v", p)
	}
	e.expect("POST", "/api/catalog/products", e.admin, body, 409, "sku_exists")
	var cats struct{ Categories []Category }
	json.Unmarshal(e.expect("GET", "/api/catalog/categories", "", nil, 200, ""), &cats)
	found := false
	for _, c := range cats.Categories {
		found = found || (c.Slug == "garden-tools" && c.Name == "Garden tools")
	}
	if !found {
		t.Fatalf("new category missing: %+v", cats)
	}

	for field, v := range map[string]any{"sku": "bad sku", "name": "", "currency": "eur", "price": "1.234", "category": "Bad", "stock": -1, "image_url": "a b"} {
		b := map[string]any{}
		for k, x := range body {
			b[k] = x
		}
		b["sku"] = "V-1"
		b[field] = v
		data := e.expect("POST", "/api/catalog/products", e.admin, b, 422, "validation_failed")
		if !strings.Contains(string(data), `"field":"`+field+`"`) {
			t.Errorf("%s: %s", field, data)
		}
	}
	e.expect("POST", "/api/catalog/products", e.admin, `{"sku":"X-1","price_minor":-5}`, 422, "validation_failed")
	e.expect("POST", "/api/catalog/products", e.admin, `{"sku":"X-1","unknown":1}`, 400, "malformed_json")

	upd := map[string]any{"name": "Renamed", "price_minor": 999, "currency": "EUR", "category": "books", "stock": 10}
	json.Unmarshal(e.expect("PUT", "/api/catalog/products/NEW-1", e.admin, upd, 200, ""), &p)
	if p.Name != "Renamed" || e.stock("NEW-1") != 10 {
		t.Fatalf("updated %+v", p)
	}
	e.expect("PUT", "/api/catalog/products/NOPE", e.admin, upd, 404, "not_found")
	delete(upd, "stock")
	e.expect("PUT", "/api/catalog/products/NEW-1", e.admin, upd, 422, "validation_failed")
	e.expect("DELETE", "/api/catalog/products/NEW-1", e.customer, nil, 403, "forbidden")
	e.expect("DELETE", "/api/catalog/products/NEW-1", e.admin, nil, 204, "")
	e.expect("DELETE", "/api/catalog/products/NEW-1", e.admin, nil, 404, "not_found")
}

func TestReservationLifecycle(t *testing.T) {
	e := newEnv(t)
	before := e.stock("BOOK-001")
	req := ReserveRequest{OrderID: "o-1", Items: []Item{{SKU: "BOOK-001", Quantity: 2}, {SKU: "TOYS-001", Quantity: 1}, {SKU: "BOOK-001", Quantity: 1}}}
	e.expect("POST", "/api/catalog/reservations", "", req, 401, "missing_token")
	var res Reservation
	json.Unmarshal(e.expect("POST", "/api/catalog/reservations", e.customer, req, 201, ""), &res)
	if res.Status != "held" || len(res.Items) != 2 || res.TotalMinor != 3*3999+3900 || res.Currency != "EUR" {
		t.Fatalf("reservation %+v", res)
	}
	if got := e.stock("BOOK-001"); got != before-3 {
		t.Fatalf("stock %d, want %d", got, before-3)
	}
	// Same order id again: the same reservation, no second decrement.
	var again Reservation
	json.Unmarshal(e.expect("POST", "/api/catalog/reservations", e.customer, req, 200, ""), &again)
	if again.ID != res.ID || e.stock("BOOK-001") != before-3 {
		t.Fatal("a repeated reservation took stock twice")
	}
	e.expect("POST", "/api/catalog/reservations", e.other, req, 409, "order_id_taken")
	// Another user cannot see or release it.
	e.expect("GET", "/api/catalog/reservations/"+res.ID, e.other, nil, 404, "not_found")
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/release", e.other, nil, 404, "not_found")
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/release", e.customer, nil, 200, "")
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/release", e.customer, nil, 200, "") // idempotent
	if got := e.stock("BOOK-001"); got != before {
		t.Fatalf("release: stock %d, want %d", got, before)
	}
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/commit", e.customer, nil, 409, "reservation_released")

	json.Unmarshal(e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "o-2", Items: []Item{{SKU: "BOOK-001", Quantity: 1}}}, 201, ""), &res)
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/commit", e.customer, nil, 200, "")
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/commit", e.admin, nil, 200, "")
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/release", e.customer, nil, 409, "reservation_committed")
	if e.stock("BOOK-001") != before-1 {
		t.Fatal("commit changed stock")
	}
}

func TestReservationErrors(t *testing.T) {
	e := newEnv(t)
	before := e.stock("BOOK-001")
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "o", Items: []Item{{SKU: "BOOK-001", Quantity: 1}, {SKU: "NOPE-9", Quantity: 1}}}, 404, "unknown_sku")
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "o", Items: []Item{{SKU: "BOOK-001", Quantity: 1}, {SKU: "TOYS-001", Quantity: 100}}}, 409, "out_of_stock")
	if e.stock("BOOK-001") != before {
		t.Fatal("a failed reservation kept stock")
	}
	for _, body := range []any{
		ReserveRequest{OrderID: "", Items: []Item{{SKU: "BOOK-001", Quantity: 1}}},
		ReserveRequest{OrderID: "o", Items: nil},
		ReserveRequest{OrderID: "o", Items: []Item{{SKU: "BOOK-001", Quantity: 0}}},
		ReserveRequest{OrderID: "o", Items: []Item{{SKU: "BOOK-001", Quantity: 101}}},
		ReserveRequest{OrderID: "o", Items: []Item{{SKU: "bad sku", Quantity: 1}}},
	} {
		e.expect("POST", "/api/catalog/reservations", e.customer, body, 422, "validation_failed")
	}
	e.expect("POST", "/api/catalog/reservations", e.customer, `{"order_id":"o","items":[{"sku":"A","quantity":"1"}]}`, 400, "malformed_json")
	e.expect("POST", "/api/catalog/reservations/not-a-uuid/commit", e.customer, nil, 404, "not_found")
	// Mixed currencies are refused and leave stock alone.
	e.expect("POST", "/api/catalog/products", e.admin, map[string]any{"sku": "USD-1", "name": "Dollar thing", "price_minor": 100, "currency": "USD", "category": "books", "stock": 5}, 201, "")
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "o", Items: []Item{{SKU: "BOOK-001", Quantity: 1}, {SKU: "USD-1", Quantity: 1}}}, 422, "mixed_currency")
	if e.stock("BOOK-001") != before || e.stock("USD-1") != 5 {
		t.Fatal("mixed-currency reservation kept stock")
	}
}

// 50 concurrent reservations for 10 items in stock: exactly 10 succeed.
func TestConcurrentReservationsNeverOversell(t *testing.T) {
	e := newEnv(t)
	e.expect("POST", "/api/catalog/products", e.admin, map[string]any{"sku": "HOT-1", "name": "Hot item", "price_minor": 100, "currency": "EUR", "category": "toys", "stock": 10}, 201, "")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two SKUs in opposite order in half of the requests: no deadlock either.
			items := []Item{{SKU: "HOT-1", Quantity: 1}, {SKU: "BOOK-002", Quantity: 1}}
			if i%2 == 0 {
				items[0], items[1] = items[1], items[0]
			}
			got, _ := e.do("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: fmt.Sprintf("c-%d", i), Items: items})
			mu.Lock()
			codes[got]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[201] != 10 || codes[409] != 40 {
		t.Fatalf("outcomes %v, want 10x201 and 40x409", codes)
	}
	if s := e.stock("HOT-1"); s != 0 {
		t.Fatalf("stock %d, want 0", s)
	}
	// The database itself refuses negative stock.
	if _, err := e.svc.db.Exec(t.Context(), `UPDATE products SET stock = -1 WHERE sku='HOT-1'`); err == nil {
		t.Fatal("negative stock accepted")
	}
}

func TestSweepExpiredReleasesStock(t *testing.T) {
	e := newEnv(t)
	before := e.stock("BOOK-003")
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "old", Items: []Item{{SKU: "BOOK-003", Quantity: 2}}}, 201, "")
	if n, err := e.svc.SweepExpired(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("fresh hold swept: %d %v", n, err)
	}
	if _, err := e.svc.db.Exec(t.Context(), `UPDATE reservations SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.SweepExpired(t.Context(), time.Hour); err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if e.stock("BOOK-003") != before {
		t.Fatal("stock not returned")
	}
}
