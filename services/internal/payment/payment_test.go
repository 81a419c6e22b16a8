package payment

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
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
	t           *testing.T
	srv         *httptest.Server
	svc         *Service
	issuer      *auth.Issuer
	user, other string
	admin       string
	logs        *bytes.Buffer
	mu          sync.Mutex
}

func (e *env) Write(p []byte) (int, error) { e.mu.Lock(); defer e.mu.Unlock(); return e.logs.Write(p) }

// ledgers runs f against the in-memory and the Postgres ledger.
func ledgers(t *testing.T, opts Options, f func(t *testing.T, e *env)) {
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) {
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			iss := auth.NewIssuer(key, "shop-auth", "shop", time.Minute)
			e := &env{t: t, issuer: iss, logs: &bytes.Buffer{}}
			if name == "postgres" {
				db, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "payment", Migrations())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(db.Close)
				e.svc = New(db, iss.Verifier(), opts)
			} else {
				e.svc = New(nil, iss.Verifier(), opts)
			}
			prev := slog.Default()
			slog.SetDefault(slog.New(slog.NewJSONHandler(e, nil)))
			t.Cleanup(func() { slog.SetDefault(prev) })
			e.user, _ = iss.Issue("u1", "u1@example.com", "customer")
			e.other, _ = iss.Issue("u2", "u2@example.com", "customer")
			e.admin, _ = iss.Issue("a1", "a1@example.com", "admin")
			e.srv = httptest.NewServer(platform.Handler("payment", e.svc.Routes()))
			t.Cleanup(e.srv.Close)
			f(t, e)
		})
	}
}

func (e *env) do(method, path, token, key string, body any) (*http.Response, []byte) {
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
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Error(err)
		return &http.Response{}, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func (e *env) expect(method, path, token, key string, body any, status int, code string) []byte {
	e.t.Helper()
	resp, data := e.do(method, path, token, key, body)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, data)
	}
	if code != "" {
		var p platform.Problem
		if json.Unmarshal(data, &p); p.Code != code || resp.Header.Get("Content-Type") != "application/problem+json" {
			e.t.Fatalf("%s %s: want %s, got %s", method, path, code, data)
		}
	}
	return data
}

func chargeReq(card string) ChargeRequest {
	return ChargeRequest{AmountMinor: 3998, Currency: "EUR", OrderID: "o-1", Card: Card{Number: card, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: "123"}}
}

func TestChargeIdempotentAndRefund(t *testing.T) {
	ledgers(t, Options{}, func(t *testing.T, e *env) {
		var ch Charge
		json.Unmarshal(e.expect("POST", "/api/payments/charges", e.user, "k1", chargeReq("4242 4242 4242 4242"), 201, ""), &ch)
		if ch.Status != "succeeded" || ch.CardLast4 != "4242" || ch.CardBrand != "visa" || ch.AmountMinor != 3998 {
			t.Fatalf("charge %+v", ch)
		}
		// Same key, same request: the same charge, replayed.
		resp, data := e.do("POST", "/api/payments/charges", e.user, "k1", chargeReq("4242424242424242"))
		var again Charge
		json.Unmarshal(data, &again)
		if resp.StatusCode != 201 || again.ID != ch.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %s", resp.StatusCode, data)
		}
		// Same key, different request.
		diff := chargeReq(CardSuccess)
		diff.AmountMinor = 1
		e.expect("POST", "/api/payments/charges", e.user, "k1", diff, 409, "idempotency_key_reused")
		// Keys are per user: another user's k1 is a new charge.
		var ch2 Charge
		json.Unmarshal(e.expect("POST", "/api/payments/charges", e.other, "k1", chargeReq(CardSuccess), 201, ""), &ch2)
		if ch2.ID == ch.ID {
			t.Fatal("keys leaked across users")
		}

		e.expect("GET", "/api/payments/charges/"+ch.ID, e.other, "", nil, 404, "not_found")
		e.expect("GET", "/api/payments/charges/"+ch.ID, e.admin, "", nil, 200, "")
		e.expect("POST", "/api/payments/charges/"+ch.ID+"/refunds", e.other, "", nil, 404, "not_found")
		var rf Refund
		json.Unmarshal(e.expect("POST", "/api/payments/charges/"+ch.ID+"/refunds", e.user, "r1", map[string]int64{"amount_minor": 1000}, 201, ""), &rf)
		if rf.AmountMinor != 1000 || rf.Currency != "EUR" {
			t.Fatalf("refund %+v", rf)
		}
		var rf2 Refund
		json.Unmarshal(e.expect("POST", "/api/payments/charges/"+ch.ID+"/refunds", e.user, "r1", map[string]int64{"amount_minor": 1000}, 201, ""), &rf2)
		if rf2.ID != rf.ID {
			t.Fatal("refund replay refunded twice")
		}
		e.expect("POST", "/api/payments/charges/"+ch.ID+"/refunds", e.user, "", map[string]int64{"amount_minor": 5000}, 409, "refund_exceeds_charge")
		json.Unmarshal(e.expect("POST", "/api/payments/charges/"+ch.ID+"/refunds", e.user, "", nil, 201, ""), &rf)
		if rf.AmountMinor != 2998 {
			t.Fatalf("rest refund %+v", rf)
		}
		json.Unmarshal(e.expect("GET", "/api/payments/charges/"+ch.ID, e.user, "", nil, 200, ""), &ch)
		if ch.RefundedMinor != 3998 {
			t.Fatalf("refunded %d", ch.RefundedMinor)
		}
		e.expect("POST", "/api/payments/charges/"+ch.ID+"/refunds", e.user, "", nil, 409, "refund_exceeds_charge")
		e.mu.Lock()
		defer e.mu.Unlock()
		if strings.Contains(e.logs.String(), "4242424242424242") || strings.Contains(e.logs.String(), "4242 4242") {
			t.Fatal("a card number was logged")
		}
	})
}

func TestTestCards(t *testing.T) {
	ledgers(t, Options{ProviderTimeout: 50 * time.Millisecond}, func(t *testing.T, e *env) {
		data := e.expect("POST", "/api/payments/charges", e.user, "d", chargeReq(CardDeclined), 402, "card_declined")
		// The decline is replayed, not retried.
		resp, again := e.do("POST", "/api/payments/charges", e.user, "d", chargeReq(CardDeclined))
		if resp.StatusCode != 402 || resp.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(data, again) && !strings.Contains(string(again), "card_declined") {
			t.Fatalf("decline replay %d %s", resp.StatusCode, again)
		}
		e.expect("POST", "/api/payments/charges", e.user, "i", chargeReq(CardInsufficient), 402, "insufficient_funds")
		e.expect("POST", "/api/payments/charges", e.user, "t", chargeReq(CardTimeout), 504, "provider_timeout")
		e.expect("POST", "/api/payments/charges", e.user, "other", chargeReq("5555555555554444"), 201, "")
	})
}

func TestFaultInjection(t *testing.T) {
	ledgers(t, Options{FaultErrorRatio: 1}, func(t *testing.T, e *env) {
		e.expect("POST", "/api/payments/charges", e.user, "f", chargeReq(CardSuccess), 503, "provider_unavailable")
		// The transient failure is not stored: a retry after recovery charges.
		e.svc.opts.FaultErrorRatio = 0
		e.expect("POST", "/api/payments/charges", e.user, "f", chargeReq(CardSuccess), 201, "")
	})
}

func TestChargeValidationAndAuthz(t *testing.T) {
	ledgers(t, Options{}, func(t *testing.T, e *env) {
		e.expect("POST", "/api/payments/charges", "", "k", chargeReq(CardSuccess), 401, "missing_token")
		e.expect("POST", "/api/payments/charges", e.user+"x", "k", chargeReq(CardSuccess), 401, "invalid_token")
		old := *e.issuer
		old.Now = func() time.Time { return time.Now().Add(-time.Hour) }
		expired, _ := old.Issue("u1", "u1@example.com", "customer")
		e.expect("POST", "/api/payments/charges", expired, "k", chargeReq(CardSuccess), 401, "token_expired")
		e.expect("POST", "/api/payments/charges", e.user, "", chargeReq(CardSuccess), 422, "validation_failed")
		e.expect("POST", "/api/payments/charges", e.user, strings.Repeat("k", 201), chargeReq(CardSuccess), 422, "validation_failed")
		mut := map[string]func(*ChargeRequest){
			"card.number":    func(r *ChargeRequest) { r.Card.Number = "4242424242424241" },
			"card.cvc":       func(r *ChargeRequest) { r.Card.CVC = "12a" },
			"card.exp_month": func(r *ChargeRequest) { r.Card.ExpMonth = 13 },
			"card.exp_year":  func(r *ChargeRequest) { r.Card.ExpYear = 2001 },
			"amount_minor":   func(r *ChargeRequest) { r.AmountMinor = 0 },
			"currency":       func(r *ChargeRequest) { r.Currency = "euro" },
		}
		for field, f := range mut {
			req := chargeReq(CardSuccess)
			f(&req)
			data := e.expect("POST", "/api/payments/charges", e.user, "v-"+field, req, 422, "validation_failed")
			if !strings.Contains(string(data), `"field":"`+field+`"`) {
				t.Errorf("%s: %s", field, data)
			}
		}
		e.expect("POST", "/api/payments/charges", e.user, "k", `{"amount_minor":"1"}`, 400, "malformed_json")
		e.expect("GET", "/api/payments/charges/nope", e.user, "", nil, 404, "not_found")
	})
}

// A retried charge never charges twice, even when the retries race.
func TestConcurrentSameKeyChargesOnce(t *testing.T) {
	ledgers(t, Options{FaultLatency: 20 * time.Millisecond}, func(t *testing.T, e *env) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[string]bool{}
		codes := map[int]int{}
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, data := e.do("POST", "/api/payments/charges", e.user, "same", chargeReq(CardSuccess))
				var ch Charge
				json.Unmarshal(data, &ch)
				mu.Lock()
				defer mu.Unlock()
				codes[resp.StatusCode]++
				if resp.StatusCode == 201 {
					ids[ch.ID] = true
				}
			}()
		}
		wg.Wait()
		if len(ids) != 1 || codes[201]+codes[409] != 20 {
			t.Fatalf("charges %v, codes %v: want exactly one charge", ids, codes)
		}
	})
}

func TestLuhn(t *testing.T) {
	for _, n := range []string{CardSuccess, CardDeclined, CardInsufficient, CardTimeout, "5555555555554444", "378282246310005"} {
		if !Luhn(n) {
			t.Errorf("%s should pass", n)
		}
	}
	for _, n := range []string{"", "4242424242424241", "42424242424242a2"} {
		if Luhn(n) {
			t.Errorf("%q should fail", n)
		}
	}
}
