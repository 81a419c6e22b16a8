package orders

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
	"github.com/shopplatform/shop-operator/services/internal/catalog"
	"github.com/shopplatform/shop-operator/services/internal/payment"
	"github.com/shopplatform/shop-operator/services/internal/pgtest"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// stack is catalog, payment and orders on real Postgres, each behind the
// production middleware on its own loopback server.
type stack struct {
	t                     *testing.T
	catalog, payment, srv *httptest.Server
	orders                *Service
	pay                   *payment.Service
	issuer                *auth.Issuer
	user, other, admin    string
}

func newStack(t *testing.T, payOpts payment.Options, client *http.Client) *stack {
	t.Helper()
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
	ordDB, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "orders", Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ordDB.Close)
	s := &stack{t: t, issuer: iss}
	s.catalog = httptest.NewServer(platform.Handler("catalog", catalog.New(catDB, v).Routes()))
	t.Cleanup(s.catalog.Close)
	s.pay = payment.New(payDB, v, payOpts)
	s.payment = httptest.NewServer(platform.Handler("payment", s.pay.Routes()))
	t.Cleanup(s.payment.Close)
	s.orders = New(ordDB, v, Options{CatalogURL: s.catalog.URL, PaymentURL: s.payment.URL, Client: client})
	s.srv = httptest.NewServer(platform.Handler("orders", s.orders.Routes()))
	t.Cleanup(s.srv.Close)
	s.user, _ = iss.Issue("u1", "u1@example.com", "customer")
	s.other, _ = iss.Issue("u2", "u2@example.com", "customer")
	s.admin, _ = iss.Issue("a1", "a1@example.com", "admin")
	return s
}

func (s *stack) do(base, method, path, token, key string, body any) (*http.Response, []byte) {
	var r io.Reader
	if str, ok := body.(string); ok {
		r = strings.NewReader(str)
	} else if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Error(err)
		return &http.Response{}, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func (s *stack) expect(token, key string, body any, status int, code string) []byte {
	s.t.Helper()
	resp, data := s.do(s.srv.URL, "POST", "/api/orders/checkout", token, key, body)
	if resp.StatusCode != status {
		s.t.Fatalf("checkout: %d, want %d: %s", resp.StatusCode, status, data)
	}
	if code != "" {
		var p platform.Problem
		if json.Unmarshal(data, &p); p.Code != code || resp.Header.Get("Content-Type") != "application/problem+json" {
			s.t.Fatalf("checkout: want %s, got %s", code, data)
		}
	}
	return data
}

func (s *stack) stock(sku string) int {
	s.t.Helper()
	_, data := s.do(s.catalog.URL, "GET", "/api/catalog/products/"+sku, "", "", nil)
	var p catalog.Product
	if err := json.Unmarshal(data, &p); err != nil {
		s.t.Fatal(err)
	}
	return p.Stock
}

func (s *stack) orderList(token string) []Order {
	_, data := s.do(s.srv.URL, "GET", "/api/orders", token, "", nil)
	var l struct{ Orders []Order }
	json.Unmarshal(data, &l)
	return l.Orders
}

func checkoutReq(card string, items ...Item) CheckoutRequest {
	if len(items) == 0 {
		items = []Item{{SKU: "BOOK-001", Quantity: 2}, {SKU: "TOYS-006", Quantity: 1}}
	}
	return CheckoutRequest{Items: items, Card: Card{Number: card, ExpMonth: 12, ExpYear: time.Now().Year() + 1, CVC: "123", Name: "Ada"}}
}

func TestCheckoutHappyPathAndHistory(t *testing.T) {
	s := newStack(t, payment.Options{}, nil)
	before := s.stock("BOOK-001")
	var o Order
	json.Unmarshal(s.expect(s.user, "key-1", checkoutReq(payment.CardSuccess), 201, ""), &o)
	if o.Status != "confirmed" || o.TotalMinor != 2*3999+1999 || o.Currency != "EUR" || o.CardLast4 != "4242" || o.PaymentID == "" || len(o.Items) != 2 {
		t.Fatalf("order %+v", o)
	}
	if s.stock("BOOK-001") != before-2 {
		t.Fatal("stock not taken")
	}
	// Same key: the same order, not a second one.
	resp, data := s.do(s.srv.URL, "POST", "/api/orders/checkout", s.user, "key-1", checkoutReq(payment.CardSuccess))
	var again Order
	json.Unmarshal(data, &again)
	if resp.StatusCode != 200 || again.ID != o.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay %d %s", resp.StatusCode, data)
	}
	if s.stock("BOOK-001") != before-2 {
		t.Fatal("a replay took stock again")
	}
	s.expect(s.user, "key-1", checkoutReq(payment.CardSuccess, Item{SKU: "BOOK-001", Quantity: 1}), 409, "idempotency_key_reused")

	list := s.orderList(s.user)
	if len(list) != 1 || list[0].ID != o.ID {
		t.Fatalf("history %+v", list)
	}
	if len(s.orderList(s.other)) != 0 {
		t.Fatal("history leaked to another user")
	}
	if resp, _ := s.do(s.srv.URL, "GET", "/api/orders/"+o.ID, s.other, "", nil); resp.StatusCode != 404 {
		t.Fatalf("other user's order: %d", resp.StatusCode)
	}
	if resp, _ := s.do(s.srv.URL, "GET", "/api/orders/"+o.ID, s.admin, "", nil); resp.StatusCode != 200 {
		t.Fatalf("admin: %d", resp.StatusCode)
	}
	if resp, _ := s.do(s.srv.URL, "GET", "/api/orders/nope", s.user, "", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown order: %d", resp.StatusCode)
	}
	// The charge is one charge of the order's total.
	resp, data = s.do(s.payment.URL, "GET", "/api/payments/charges/"+o.PaymentID, s.user, "", nil)
	var ch payment.Charge
	json.Unmarshal(data, &ch)
	if resp.StatusCode != 200 || ch.AmountMinor != o.TotalMinor || ch.RefundedMinor != 0 {
		t.Fatalf("charge %s", data)
	}
}

func TestCheckoutValidationAndAuthz(t *testing.T) {
	s := newStack(t, payment.Options{}, nil)
	s.expect("", "k", checkoutReq(payment.CardSuccess), 401, "missing_token")
	s.expect(s.user[:len(s.user)-4]+"AAAA", "k", checkoutReq(payment.CardSuccess), 401, "invalid_token")
	old := *s.issuer
	old.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	expired, _ := old.Issue("u1", "u1@example.com", "customer")
	s.expect(expired, "k", checkoutReq(payment.CardSuccess), 401, "token_expired")
	s.expect(s.user, "", checkoutReq(payment.CardSuccess), 422, "validation_failed")
	s.expect(s.user, "k", checkoutReq(payment.CardSuccess, Item{SKU: "BOOK-001", Quantity: 0}), 422, "validation_failed")
	s.expect(s.user, "k", CheckoutRequest{Card: checkoutReq(payment.CardSuccess).Card}, 422, "validation_failed")
	bad := checkoutReq("4242")
	s.expect(s.user, "k", bad, 422, "validation_failed")
	s.expect(s.user, "k", `{"items":[],"card":{},"coupon":"X"}`, 400, "malformed_json")
	// Payment's own validation (Luhn) fails after the reservation: compensated.
	before := s.stock("BOOK-001")
	s.expect(s.user, "luhn", checkoutReq("4242424242424241"), 422, "validation_failed")
	if s.stock("BOOK-001") != before {
		t.Fatal("stock kept after a refused card")
	}
	s.expect(s.user, "unknown", checkoutReq(payment.CardSuccess, Item{SKU: "NOPE-1", Quantity: 1}), 404, "unknown_sku")
	s.expect(s.user, "toomany", checkoutReq(payment.CardSuccess, Item{SKU: "BOOK-001", Quantity: 100}), 409, "out_of_stock")
	if s.stock("BOOK-001") != before {
		t.Fatal("stock changed by failed checkouts")
	}
}

func TestSagaCompensatesOnDeclineAndTimeout(t *testing.T) {
	s := newStack(t, payment.Options{ProviderTimeout: 100 * time.Millisecond}, nil)
	before := s.stock("BOOK-001")
	s.expect(s.user, "d1", checkoutReq(payment.CardDeclined), 402, "card_declined")
	s.expect(s.user, "d1", checkoutReq(payment.CardDeclined), 402, "card_declined") // replayed
	s.expect(s.user, "i1", checkoutReq(payment.CardInsufficient), 402, "insufficient_funds")
	s.expect(s.user, "t1", checkoutReq(payment.CardTimeout), 504, "provider_timeout")
	if s.stock("BOOK-001") != before {
		t.Fatalf("stock %d after failed payments, want %d", s.stock("BOOK-001"), before)
	}
	list := s.orderList(s.user)
	if len(list) != 3 {
		t.Fatalf("want 3 failed orders, got %+v", list)
	}
	for _, o := range list {
		if o.Status != "failed" || o.FailureReason == "" || o.PaymentID != "" {
			t.Fatalf("order %+v", o)
		}
	}
}

// Payment never answers: orders gives up (its own client timeout, asking
// again with the same key), releases the stock and records the failure.
func TestSagaCompensatesWhenPaymentDoesNotAnswer(t *testing.T) {
	s := newStack(t, payment.Options{}, nil)
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close finish
	s.orders.opts.PaymentURL = hung.URL
	s.orders.opts.PaymentClient = platform.NewHTTPClient(300 * time.Millisecond)
	before := s.stock("BOOK-001")
	s.expect(s.user, "slow", checkoutReq(payment.CardSuccess), 503, "payment_unavailable")
	if s.stock("BOOK-001") != before {
		t.Fatal("stock not released")
	}
	list := s.orderList(s.user)
	if len(list) != 1 || list[0].Status != "failed" || list[0].PaymentID != "" {
		t.Fatalf("orders %+v", list)
	}
}

func TestCatalogDown(t *testing.T) {
	s := newStack(t, payment.Options{}, platform.NewHTTPClient(2*time.Second))
	s.catalog.Close()
	s.expect(s.user, "down", checkoutReq(payment.CardSuccess), 503, "catalog_unavailable")
	if l := s.orderList(s.user); len(l) != 1 || l[0].Status != "failed" {
		t.Fatalf("orders %+v", l)
	}
}

// 50 concurrent checkouts for 10 items in stock: exactly 10 succeed.
func TestConcurrentCheckoutsNeverOversell(t *testing.T) {
	s := newStack(t, payment.Options{}, nil)
	admin := s.admin
	resp, data := s.do(s.catalog.URL, "POST", "/api/catalog/products", admin, "", map[string]any{
		"sku": "LIMITED-1", "name": "Limited", "price_minor": 1000, "currency": "EUR", "category": "toys", "stock": 10})
	if resp.StatusCode != 201 {
		t.Fatalf("create: %s", data)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, _ := s.issuer.Issue(fmt.Sprintf("buyer-%d", i), "b@example.com", "customer")
			resp, _ := s.do(s.srv.URL, "POST", "/api/orders/checkout", tok, fmt.Sprintf("k-%d", i), checkoutReq(payment.CardSuccess, Item{SKU: "LIMITED-1", Quantity: 1}))
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[201] != 10 || codes[409] != 40 {
		t.Fatalf("outcomes %v, want 10x201 and 40x409", codes)
	}
	if st := s.stock("LIMITED-1"); st != 0 {
		t.Fatalf("stock %d, want 0", st)
	}
	var confirmed int
	s.orders.db.QueryRow(t.Context(), `SELECT count(*) FROM orders WHERE status='confirmed'`).Scan(&confirmed)
	if confirmed != 10 {
		t.Fatalf("%d confirmed orders", confirmed)
	}
}

func TestFailStale(t *testing.T) {
	s := newStack(t, payment.Options{}, nil)
	if _, err := s.orders.db.Exec(t.Context(), `INSERT INTO orders (id, user_id, idempotency_key, request_hash, status, saga_step, requested, updated_at)
		VALUES (gen_random_uuid(), 'u1', 'k', 'h', 'pending', 'reserved', '[]', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if n, err := s.orders.FailStale(t.Context()); err != nil || n != 1 {
		t.Fatalf("FailStale: %d %v", n, err)
	}
	if l := s.orderList(s.user); len(l) != 1 || l[0].Status != "failed" || l[0].FailureReason != "checkout_abandoned" {
		t.Fatalf("orders %+v", l)
	}
}
