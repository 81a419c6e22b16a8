package orders

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/payment"
)

// seen records what payment was asked, and with which X-Shop-User.
type seen struct {
	mu    sync.Mutex
	calls []string // "POST /api/payments/charges as u1"
}

func (s *seen) add(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := r.URL.Path
	if strings.HasSuffix(path, "/refunds") {
		path = "/api/payments/charges/{id}/refunds"
	}
	s.calls = append(s.calls, r.Method+" "+path+" as "+strings.Join(r.Header.Values(payment.UserHeader), ","))
}

func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Every call orders makes to payment (the charge, and the compensating
// refund) names the shopper in X-Shop-User, the key the mesh routes payment
// requests by, so both reach the pod holding that shopper's ledger. The real
// payment service (on Postgres) checks the header against the token.
func TestPaymentCallsNameTheShopper(t *testing.T) {
	s := newStack(t, payment.Options{}, nil)
	if payment.UserHeader != paymentUserHeader {
		t.Fatalf("orders sends %q, payment reads %q", paymentUserHeader, payment.UserHeader)
	}
	rec := &seen{}
	payURL, _ := url.Parse(s.payment.URL)
	pay := httputil.NewSingleHostReverseProxy(payURL)
	recorder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		pay.ServeHTTP(w, r)
	}))
	t.Cleanup(recorder.Close)
	s.orders.opts.PaymentURL = recorder.URL

	// A confirmed checkout: one charge, as u1.
	var o Order
	json.Unmarshal(s.expect(s.user, "routed-1", checkoutReq(payment.CardSuccess), 201, ""), &o)
	if got := rec.list(); len(got) != 1 || got[0] != "POST /api/payments/charges as u1" {
		t.Fatalf("payment calls %q", got)
	}

	// The catalog refuses to commit after the charge: the saga refunds,
	// and the refund names the shopper too.
	catURL, _ := url.Parse(s.catalog.URL)
	cat := httputil.NewSingleHostReverseProxy(catURL)
	noCommit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/commit") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"type":"about:blank","title":"Conflict","status":409,"code":"reservation_released","detail":"released"}`))
			return
		}
		cat.ServeHTTP(w, r)
	}))
	t.Cleanup(noCommit.Close)
	s.orders.opts.CatalogURL = noCommit.URL
	s.expect(s.other, "routed-2", checkoutReq(payment.CardSuccess), 409, "reservation_released")
	got := rec.list()[1:]
	if len(got) != 2 || got[0] != "POST /api/payments/charges as u2" || got[1] != "POST /api/payments/charges/{id}/refunds as u2" {
		t.Fatalf("payment calls of the compensated checkout %q", got)
	}
	var paymentID string
	if err := s.orders.db.QueryRow(t.Context(), `SELECT payment_id FROM orders WHERE idempotency_key='routed-2'`).Scan(&paymentID); err != nil || paymentID == "" {
		t.Fatalf("payment id of the compensated order: %q %v", paymentID, err)
	}
	resp, data := s.do(s.payment.URL, "GET", "/api/payments/charges/"+paymentID, s.other, "", nil)
	var ch payment.Charge
	json.Unmarshal(data, &ch)
	if resp.StatusCode != 200 || ch.RefundedMinor != ch.AmountMinor {
		t.Fatalf("the compensated charge: %d %s", resp.StatusCode, data)
	}
}
