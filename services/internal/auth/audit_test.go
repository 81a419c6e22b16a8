package auth

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/audittest"
)

// TestAuditRecords drives every audited auth event over HTTP with the
// services' real telemetry (the logger that adds trace_id) and checks that
// each record has the common fields (platform.AuditFields) filled, the
// request's trace id, and nothing secret.
func TestAuditRecords(t *testing.T) {
	e := newEnv(t)
	records := audittest.Capture(t, "auth")
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
	for _, rec := range records() {
		if rec["actor"] == "bootstrap" {
			continue // at start-up, outside any request: no trace
		}
		audittest.CheckFields(t, rec, true)
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
