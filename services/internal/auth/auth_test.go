package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/pgtest"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	t      *testing.T
	srv    *httptest.Server
	svc    *Service
	issuer *Issuer
	logs   *bytes.Buffer
	mu     *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := platform.OpenDB(t.Context(), pgtest.NewDatabase(t), "auth", Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	iss := NewIssuer(key, "shop-auth", "shop", time.Minute)
	svc := New(db, iss)
	e := &env{t: t, svc: svc, issuer: iss, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(lockedWriter{e.mu, e.logs}, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	e.srv = httptest.NewServer(platform.Handler("auth", svc.Routes()))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(method, path, token string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	if s, ok := body.(string); ok {
		r = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func (e *env) expect(resp *http.Response, data []byte, status int, code string) {
	e.t.Helper()
	if resp.StatusCode != status {
		e.t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, data)
	}
	if code != "" {
		var p platform.Problem
		if resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(data, &p) != nil || p.Code != code {
			e.t.Fatalf("want problem %s, got %s %s", code, resp.Header.Get("Content-Type"), data)
		}
	}
}

func (e *env) register(email, pw string) User {
	resp, data := e.do("POST", "/api/auth/register", "", RegisterRequest{Email: email, Password: pw, Name: "Ada"})
	e.expect(resp, data, 201, "")
	var u User
	json.Unmarshal(data, &u)
	return u
}

func (e *env) login(email, pw string) Tokens {
	resp, data := e.do("POST", "/api/auth/login", "", map[string]string{"email": email, "password": pw})
	e.expect(resp, data, 200, "")
	var tk Tokens
	json.Unmarshal(data, &tk)
	return tk
}

func TestRegisterLoginMeRefreshLogout(t *testing.T) {
	e := newEnv(t)
	u := e.register("Ada@Example.com", "correct horse")
	if u.Email != "ada@example.com" || u.Role != "customer" || u.ID == "" {
		t.Fatalf("user %+v", u)
	}
	tk := e.login("ada@example.com", "correct horse")
	if tk.TokenType != "Bearer" || tk.ExpiresIn != 60 {
		t.Fatalf("tokens %+v", tk)
	}
	resp, data := e.do("GET", "/api/auth/me", tk.AccessToken, nil)
	e.expect(resp, data, 200, "")
	var me User
	json.Unmarshal(data, &me)
	if me.ID != u.ID {
		t.Fatalf("me %+v", me)
	}
	// Refresh rotates: the old refresh token stops working.
	resp, data = e.do("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": tk.RefreshToken})
	e.expect(resp, data, 200, "")
	var tk2 Tokens
	json.Unmarshal(data, &tk2)
	resp, data = e.do("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": tk.RefreshToken})
	e.expect(resp, data, 401, "invalid_refresh_token")
	// Logout revokes.
	resp, data = e.do("POST", "/api/auth/logout", "", map[string]string{"refresh_token": tk2.RefreshToken})
	e.expect(resp, data, 204, "")
	resp, data = e.do("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": tk2.RefreshToken})
	e.expect(resp, data, 401, "invalid_refresh_token")

	// JWKS verifies the access token through the network path.
	v := platform.NewVerifier(e.srv.URL+"/.well-known/jwks.json", "shop-auth", "shop")
	if c, err := v.VerifyToken(t.Context(), tk2.AccessToken); err != nil || c.Subject != u.ID || c.Email != u.Email {
		t.Fatalf("jwks verify: %v", err)
	}
	// Nothing secret in the logs.
	e.mu.Lock()
	logs := e.logs.String()
	e.mu.Unlock()
	for _, secret := range []string{"correct horse", tk.RefreshToken, tk.AccessToken, tk2.AccessToken} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a secret leaked into the logs")
		}
	}
	if !strings.Contains(logs, `"action":"login"`) || !strings.Contains(logs, `"outcome":"success"`) {
		t.Fatalf("no audit line: %s", logs)
	}
}

func TestRegisterValidation(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		body   any
		status int
		code   string
	}{
		{RegisterRequest{Email: "nope", Password: "longenough", Name: "A"}, 422, "validation_failed"},
		{RegisterRequest{Email: "a@b.co", Password: "short", Name: "A"}, 422, "validation_failed"},
		{RegisterRequest{Email: "a@b.co", Password: "longenough", Name: ""}, 422, "validation_failed"},
		{RegisterRequest{Email: "a@b.co", Password: strings.Repeat("x", 129), Name: "A"}, 422, "validation_failed"},
		{`{"email":"a@b.co","password":"longenough","name":"A","role":"admin"}`, 400, "malformed_json"},
		{`{"email":`, 400, "malformed_json"},
		{`[]`, 400, "malformed_json"},
	}
	for _, c := range cases {
		resp, data := e.do("POST", "/api/auth/register", "", c.body)
		e.expect(resp, data, c.status, c.code)
	}
	e.register("a@b.co", "longenough")
	resp, data := e.do("POST", "/api/auth/register", "", RegisterRequest{Email: "A@b.co", Password: "longenough", Name: "B"})
	e.expect(resp, data, 409, "email_taken")
}

func TestLoginFailuresLockout(t *testing.T) {
	e := newEnv(t)
	e.register("bob@example.com", "s3cret-pass")
	resp, data := e.do("POST", "/api/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "x"})
	e.expect(resp, data, 401, "invalid_credentials")
	for i := 0; i < MaxFailures; i++ {
		resp, data = e.do("POST", "/api/auth/login", "", map[string]string{"email": "bob@example.com", "password": "wrong"})
		e.expect(resp, data, 401, "invalid_credentials")
	}
	// Locked now, even with the right password.
	resp, data = e.do("POST", "/api/auth/login", "", map[string]string{"email": "bob@example.com", "password": "s3cret-pass"})
	e.expect(resp, data, 429, "too_many_attempts")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// After the lock expires the right password works again.
	e.svc.now = func() time.Time { return time.Now().Add(LockDuration + time.Minute) }
	e.login("bob@example.com", "s3cret-pass")
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	u := e.register("carol@example.com", "password1")
	tk := e.login("carol@example.com", "password1")
	path := "/api/auth/admin/users/" + u.ID + "/role"

	resp, data := e.do("PUT", path, "", map[string]string{"role": "admin"})
	e.expect(resp, data, 401, "missing_token")
	resp, data = e.do("PUT", path, tk.AccessToken, map[string]string{"role": "admin"})
	e.expect(resp, data, 403, "forbidden")
	resp, data = e.do("GET", "/api/auth/me", tk.AccessToken[:len(tk.AccessToken)-3]+"abc", nil)
	e.expect(resp, data, 401, "invalid_token")
	expired := *e.issuer
	expired.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	old, _ := expired.Issue(u.ID, u.Email, "customer")
	resp, data = e.do("GET", "/api/auth/me", old, nil)
	e.expect(resp, data, 401, "token_expired")

	// An admin (bootstrapped) changes the role; the change is audited.
	if err := e.svc.BootstrapAdmin(t.Context(), "root@example.com", "rootpassword"); err != nil {
		t.Fatal(err)
	}
	admin := e.login("root@example.com", "rootpassword")
	resp, data = e.do("PUT", path, admin.AccessToken, map[string]string{"role": "superuser"})
	e.expect(resp, data, 422, "validation_failed")
	resp, data = e.do("PUT", "/api/auth/admin/users/00000000-0000-0000-0000-000000000000/role", admin.AccessToken, map[string]string{"role": "admin"})
	e.expect(resp, data, 404, "not_found")
	resp, data = e.do("PUT", path, admin.AccessToken, map[string]string{"role": "admin"})
	e.expect(resp, data, 200, "")
	tk = e.login("carol@example.com", "password1")
	c, err := e.issuer.Verifier().VerifyToken(context.Background(), tk.AccessToken)
	if err != nil || c.Role != "admin" {
		t.Fatalf("role not changed: %v %+v", err, c)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !strings.Contains(e.logs.String(), `"action":"role_change"`) {
		t.Fatal("role change not audited")
	}
}

func TestConcurrentRefreshRotatesOnce(t *testing.T) {
	e := newEnv(t)
	e.register("dan@example.com", "password1")
	tk := e.login("dan@example.com", "password1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(map[string]string{"refresh_token": tk.RefreshToken})
			resp, err := http.Post(e.srv.URL+"/api/auth/refresh", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d refreshes succeeded with one token, want 1", ok)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("pw")
	if err != nil || !strings.HasPrefix(h, "$argon2id$") {
		t.Fatal(h, err)
	}
	if ok, _ := CheckPassword(h, "pw"); !ok {
		t.Fatal("good password refused")
	}
	if ok, _ := CheckPassword(h, "pW"); ok {
		t.Fatal("bad password accepted")
	}
	if _, err := CheckPassword("$2a$10$garbage", "pw"); err == nil {
		t.Fatal("garbage hash accepted")
	}
}

func TestLoadSigningKey(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "key.pem")
	os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	got, err := LoadSigningKey(good)
	if err != nil || !got.Equal(key) {
		t.Fatalf("load: %v", err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ = x509.MarshalPKCS8PrivateKey(rsaKey)
	wrong := filepath.Join(dir, "rsa.pem")
	os.WriteFile(wrong, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	for _, f := range []string{wrong, garbage, filepath.Join(dir, "missing.pem")} {
		if _, err := LoadSigningKey(f); err == nil {
			t.Errorf("%s accepted", f)
		}
	}
}

func TestRefreshReuseRevokesAllSessions(t *testing.T) {
	e := newEnv(t)
	e.register("eve@example.com", "password1")
	a := e.login("eve@example.com", "password1")
	b := e.login("eve@example.com", "password1")
	resp, data := e.do("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken})
	e.expect(resp, data, 200, "")
	var a2 Tokens
	json.Unmarshal(data, &a2)
	// The rotated-out token comes back: treat it as stolen.
	resp, data = e.do("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken})
	e.expect(resp, data, 401, "invalid_refresh_token")
	for _, tok := range []string{a2.RefreshToken, b.RefreshToken} {
		resp, data = e.do("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": tok})
		e.expect(resp, data, 401, "invalid_refresh_token")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !strings.Contains(e.logs.String(), `"action":"refresh_reuse"`) {
		t.Fatal("reuse not audited")
	}
}
