package payment

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/audittest"
)

// TestRefundsAreAudited: every refund, made or refused, and every refused
// token is one audit record with the common fields; the actor is the token's
// subject and the target the charge. (trace_id comes from the log handler the
// services' telemetry installs: the auth and catalog audit tests check it.)
func TestRefundsAreAudited(t *testing.T) {
	ledgers(t, Options{}, func(t *testing.T, e *env) {
		var ch Charge
		json.Unmarshal(e.expect("POST", "/api/payments/charges", e.user, "k1", chargeReq(CardSuccess), 201, ""), &ch)
		refunds := "/api/payments/charges/" + ch.ID + "/refunds"
		e.expect("POST", refunds, "", "", nil, 401, "missing_token")
		e.expect("POST", refunds, e.other, "", nil, 404, "not_found")
		e.expect("POST", refunds, e.user, "r1", map[string]int64{"amount_minor": 1000}, 201, "")
		e.expect("POST", refunds, e.user, "", map[string]int64{"amount_minor": 5000}, 409, "refund_exceeds_charge")

		want := []string{
			"anonymous token_refused POST " + refunds + " refused missing_token",
			"u2 refund " + ch.ID + " failure not_found",
			"u1 refund " + ch.ID + " success",
			"u1 refund " + ch.ID + " failure refund_exceeds_charge",
		}
		e.mu.Lock()
		logs := bytes.Clone(e.logs.Bytes())
		e.mu.Unlock()
		var got []string
		for _, rec := range audittest.Records(logs) {
			audittest.CheckFields(t, rec, false)
			got = append(got, audittest.Key(rec))
		}
		if len(got) != len(want) {
			t.Fatalf("audit records %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("audit record %d = %q, want %q", i, got[i], want[i])
			}
		}
	})
}
