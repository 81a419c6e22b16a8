package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// FuzzRegisterRequest: registration bodies never panic; a valid one has a
// normalised email and bounded fields.
func FuzzRegisterRequest(f *testing.F) {
	f.Add(`{"email":"Ada@Example.com","password":"correct horse","name":"Ada"}`)
	f.Add(`{"email":"a@b","password":"x","name":""}`)
	f.Add(`{"email":"\"a b\"@example.com","password":"12345678","name":"\u0000"}`)
	f.Add(`{"email":"Ada <a@b.co>","password":"12345678","name":"A"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req RegisterRequest
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
		if req.Email != strings.ToLower(req.Email) || !strings.Contains(req.Email, "@") || len(req.Password) < 8 || req.Name == "" {
			t.Fatalf("invalid registration passed: %+v", req)
		}
	})
}
