package auth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// TestAuditRecords drives every audited auth event over HTTP with the
// services' real telemetry (the logger that adds trace_id) and checks that
// each record has the common fields (platform.AuditFields) filled, the
// request's trace id, and nothing secret.
func TestAuditRecords(t *testing.T) {
	e := newEnv(t)
	records := captureAudit(t)
	u := e.register("eve@example.com", "password1")
	tk := e.login("eve@example.com", "password1")
	for i := 0; i < MaxFailures; i++ {
		resp, data := e.do("POST", "/api/auth/login", "", map[string]string{"email": "eve@example.com", "password": "wrong-one"})
		e.expect(resp, data, 401, "invalid_credentials")
	}
	resp, data := e.do("POST", "/api/auth/login", "", map[string]string{"email": "eve@example.com", "password": "password1"})
	e.expect(resp, data, 429, "too_many_attempts")
	resp, data = e.do("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": "not-a-token"})
	e.expect(resp, data, 401, "invalid_refresh_token")
	if err := e.svc.BootstrapAdmin(t.Context(), "root@example.com", "rootpassword"); err != nil {
		t.Fatal(err)
	}
	resp, data = e.do("GET", "/api/auth/me", tk.AccessToken[:len(tk.AccessToken)-3]+"abc", nil)
	e.expect(resp, data, 401, "invalid_token")
	resp, data = e.do("PUT", "/api/auth/admin/users/"+u.ID+"/role", tk.AccessToken, map[string]string{"role": "admin"})
	e.expect(resp, data, 403, "forbidden")
	admin := e.login("root@example.com", "rootpassword")
	resp, data = e.do("PUT", "/api/auth/admin/users/"+u.ID+"/role", admin.AccessToken, map[string]string{"role": "admin"})
	e.expect(resp, data, 200, "")

	want := map[string]bool{
		"register " + u.ID + " success": false, "login " + u.ID + " success": false,
		"login eve@example.com failure": false, "lockout eve@example.com locked": false,
		"login eve@example.com locked": false, "refresh unknown failure": false,
		"role_change " + u.ID + " success":                                                         false,
		"token_refused GET /api/auth/me refused anonymous invalid_token":                           false,
		"token_refused PUT /api/auth/admin/users/" + u.ID + "/role refused " + u.ID + " forbidden": false,
	}
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, rec := range records() {
		if rec["actor"] == "bootstrap" {
			continue // at start-up, outside any request: no trace
		}
		for _, f := range platform.AuditFields {
			if s, _ := rec[f].(string); s == "" {
				t.Errorf("audit record without %s: %v", f, rec)
			}
		}
		if id, _ := rec["trace_id"].(string); !hexID.MatchString(id) || id == "00000000000000000000000000000000" {
			t.Errorf("audit record with trace_id %q: %v", id, rec)
		}
		for _, secret := range []string{"password1", "wrong-one", tk.AccessToken, tk.RefreshToken, admin.AccessToken} {
			if b, _ := json.Marshal(rec); bytes.Contains(b, []byte(secret)) {
				t.Errorf("a secret in an audit record: %v", rec)
			}
		}
		key := rec["action"].(string) + " " + rec["target"].(string) + " " + rec["outcome"].(string)
		if rec["action"] == "token_refused" {
			key += " " + rec["actor"].(string) + " " + rec["reason"].(string)
		}
		if _, ok := want[key]; ok {
			want[key] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no audit record %q", k)
		}
	}
}

// captureAudit installs the services' telemetry with the log going to a
// buffer and returns a function that reads the audit records logged so far.
func captureAudit(t *testing.T) func() []map[string]any {
	t.Helper()
	cfg, err := platform.LoadConfig("auth")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	prev := slog.Default()
	tel, err := platform.SetupTelemetry(t.Context(), cfg, &platform.TelemetryOptions{LogOutput: lockedWriter{&mu, &buf}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tel.Shutdown(context.Background())
		slog.SetDefault(prev)
	})
	return func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		var out []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
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
