package catalog

import (
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/audittest"
)

// TestAdminChangesAreAudited creates a product without a token and as a
// customer (refused), then creates, updates and deletes it as an admin, and
// deletes it again, with the services' real telemetry: each is one audit
// record with the common fields (platform.AuditFields), the user as actor, the
// SKU (or the refused route) as target and the request's trace id.
func TestAdminChangesAreAudited(t *testing.T) {
	records := audittest.Capture(t, "catalog")
	e := newEnv(t)
	body := map[string]any{"sku": "AUD-1", "name": "Audited", "description": "d", "price": "1.00", "currency": "EUR", "category": "books", "image_url": "/images/x.svg", "stock": 1}
	e.expect("POST", "/api/catalog/products", "", body, 401, "missing_token")
	e.expect("POST", "/api/catalog/products", e.customer, body, 403, "forbidden")
	e.expect("POST", "/api/catalog/products", e.admin, body, 201, "")
	e.expect("PUT", "/api/catalog/products/AUD-1", e.admin, map[string]any{"name": "Renamed", "price_minor": 200, "currency": "EUR", "category": "books", "stock": 2}, 200, "")
	e.expect("DELETE", "/api/catalog/products/AUD-1", e.admin, nil, 204, "")
	e.expect("DELETE", "/api/catalog/products/AUD-1", e.admin, nil, 404, "not_found")

	want := []string{"anonymous token_refused POST /api/catalog/products refused missing_token",
		"user-1 token_refused POST /api/catalog/products refused forbidden", "admin-1 product_create AUD-1 success", "admin-1 product_update AUD-1 success",
		"admin-1 product_delete AUD-1 success", "admin-1 product_delete AUD-1 failure not_found"}
	var got []string
	for _, rec := range records() {
		audittest.CheckFields(t, rec, true)
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
}
