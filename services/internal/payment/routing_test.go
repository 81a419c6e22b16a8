package payment

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// doAs sends a request with the X-Shop-User values given (none: no header).
func (e *env) doAs(method, path, token, key string, body any, users ...string) (int, platform.Problem, http.Header) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for _, u := range users {
		req.Header.Add(UserHeader, u)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var p platform.Problem
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, p, resp.Header
}

// The mesh routes payment requests by X-Shop-User. Payment refuses a header
// that is not the token's subject (400, nothing done), so the routing key
// cannot steer a request to another user's pod; the right header, or none,
// is served.
func TestUserHeaderMustBeTheTokensSubject(t *testing.T) {
	ledgers(t, Options{}, func(t *testing.T, e *env) {
		for name, users := range map[string][]string{
			"another user": {"u2"},
			"empty":        {""},
			"two values":   {"u1", "u2"},
			"case differs": {"U1"},
		} {
			st, p, _ := e.doAs("POST", "/api/payments/charges", e.user, "hk", chargeReq(CardSuccess), users...)
			if st != http.StatusBadRequest || p.Code != "user_header_mismatch" {
				t.Fatalf("%s: charge answered %d %q, want 400 user_header_mismatch", name, st, p.Code)
			}
		}
		// Nothing was charged and the key was never claimed: the first real
		// attempt is not a replay.
		st, _, h := e.doAs("POST", "/api/payments/charges", e.user, "hk", chargeReq(CardSuccess), "u1")
		if st != http.StatusCreated || h.Get("Idempotent-Replayed") != "" {
			t.Fatalf("charge with the right header: %d (replayed %q)", st, h.Get("Idempotent-Replayed"))
		}
		var ch Charge
		json.Unmarshal(e.expect("POST", "/api/payments/charges", e.user, "hk", chargeReq(CardSuccess), 201, ""), &ch)

		for _, r := range []struct{ method, path string }{
			{"GET", "/api/payments/charges/" + ch.ID},
			{"POST", "/api/payments/charges/" + ch.ID + "/refunds"},
		} {
			if st, p, _ := e.doAs(r.method, r.path, e.user, "", nil, "u2"); st != http.StatusBadRequest || p.Code != "user_header_mismatch" {
				t.Fatalf("%s %s with another user's header: %d %q", r.method, r.path, st, p.Code)
			}
			// The other user's token with the owner's header: refused before
			// the ledger is asked, whatever pod it was routed to.
			if st, p, _ := e.doAs(r.method, r.path, e.other, "", nil, "u1"); st != http.StatusBadRequest || p.Code != "user_header_mismatch" {
				t.Fatalf("%s %s as u2 routed as u1: %d %q", r.method, r.path, st, p.Code)
			}
		}
		if st, _, _ := e.doAs("POST", "/api/payments/charges/"+ch.ID+"/refunds", e.user, "rk", nil, "u1"); st != http.StatusCreated {
			t.Fatalf("refund with the right header: %d", st)
		}
		json.Unmarshal(e.expect("GET", "/api/payments/charges/"+ch.ID, e.user, "", nil, 200, ""), &ch)
		if ch.RefundedMinor != ch.AmountMinor {
			t.Fatalf("refunded %d of %d: a refused request refunded, or the right one did not", ch.RefundedMinor, ch.AmountMinor)
		}
		// An admin is routed by its own subject.
		if st, _, _ := e.doAs("GET", "/api/payments/charges/"+ch.ID, e.admin, "", nil, "a1"); st != http.StatusOK {
			t.Fatalf("admin with its own header: %d", st)
		}
	})
}
