package catalog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// TestAdminChangesAreAudited creates a product without a token and as a
// customer (refused), then creates, updates and deletes it as an admin, and
// deletes it again, with the services' real telemetry: each is one audit
// record with the common fields (platform.AuditFields), the user as actor, the
// SKU (or the refused route) as target and the request's trace id.
func TestAdminChangesAreAudited(t *testing.T) {
	records := captureAudit(t)
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
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, rec := range records() {
		for _, f := range platform.AuditFields {
			if s, _ := rec[f].(string); s == "" {
				t.Errorf("audit record without %s: %v", f, rec)
			}
		}
		if id, _ := rec["trace_id"].(string); !hexID.MatchString(id) {
			t.Errorf("audit record with trace_id %q: %v", id, rec)
		}
		key := rec["actor"].(string) + " " + rec["action"].(string) + " " + rec["target"].(string) + " " + rec["outcome"].(string)
		if reason, ok := rec["reason"].(string); ok {
			key += " " + reason
		}
		got = append(got, key)
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

// captureAudit installs the services' telemetry with the log going to a
// buffer and returns a function that reads the audit records logged so far.
func captureAudit(t *testing.T) func() []map[string]any {
	t.Helper()
	cfg, err := platform.LoadConfig("catalog")
	if err != nil {
		t.Fatal(err)
	}
	w := &syncBuffer{}
	prev := slog.Default()
	tel, err := platform.SetupTelemetry(t.Context(), cfg, &platform.TelemetryOptions{LogOutput: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tel.Shutdown(context.Background())
		slog.SetDefault(prev)
	})
	return func() []map[string]any {
		var out []map[string]any
		sc := bufio.NewScanner(w.reader())
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["audit"] == true {
				out = append(out, rec)
			}
		}
		return out
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) reader() io.Reader {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.NewReader(bytes.Clone(b.buf.Bytes()))
}
