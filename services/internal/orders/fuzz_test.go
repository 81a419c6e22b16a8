package orders

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// FuzzCheckoutRequest: checkout bodies never panic and validation is deterministic.
func FuzzCheckoutRequest(f *testing.F) {
	f.Add(`{"items":[{"sku":"BOOK-001","quantity":2}],"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}`)
	f.Add(`{"items":[],"card":{}}`)
	f.Add(`{"items":[{"sku":"","quantity":1e2}],"card":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req CheckoutRequest
		err := platform.DecodeJSONReader(strings.NewReader(body), &req)
		if err == nil {
			err = req.Validate()
		}
		if err != nil {
			var p *platform.Problem
			if !errors.As(err, &p) || p.Status < 400 || p.Status > 499 {
				t.Fatalf("not a 4xx problem: %v", err)
			}
			return
		}
		if req.hash() != req.hash() || len(req.Items) == 0 {
			t.Fatal("valid request without items or with an unstable hash")
		}
	})
}
