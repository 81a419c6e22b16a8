package payment

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// FuzzChargeRequest: charge bodies never panic; a valid one has a
// Luhn-valid digits-only card and a positive amount.
func FuzzChargeRequest(f *testing.F) {
	f.Add(`{"amount_minor":100,"currency":"EUR","card":{"number":"4242 4242 4242 4242","exp_month":12,"exp_year":2099,"cvc":"123"}}`)
	f.Add(`{"amount_minor":-1,"currency":"eur","card":{"number":"4242-4242","exp_month":13,"exp_year":1,"cvc":"12345"}}`)
	f.Add(`{"amount_minor":1,"currency":"EUR","card":{"number":"٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢","exp_month":1,"exp_year":2099,"cvc":"000"}}`)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		var req ChargeRequest
		err := platform.DecodeJSONReader(strings.NewReader(body), &req)
		if err == nil {
			err = req.Validate(now)
		}
		if err != nil {
			var p *platform.Problem
			if !errors.As(err, &p) || p.Status < 400 || p.Status > 499 {
				t.Fatalf("not a 4xx problem: %v", err)
			}
			return
		}
		if !Luhn(req.Card.Number) || req.AmountMinor <= 0 || len(last4(req.Card.Number)) != 4 || strings.Trim(req.Card.Number, "0123456789") != "" {
			t.Fatalf("invalid charge passed: %+v", req)
		}
		_ = req.fingerprint()
	})
}
