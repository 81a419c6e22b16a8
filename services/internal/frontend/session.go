package frontend

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	accessCookie  = "shop_at"
	refreshCookie = "shop_rt"
	userCookie    = "shop_user"
	lastCookie    = "shop_last_order"
	refreshLife   = 30 * 24 * time.Hour
)

func (s *Server) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		c.MaxAge = -1
		c.Value = ""
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	return c
}

// setSession stores the tokens (and the display name, signed) in cookies.
func (s *Server) setSession(w http.ResponseWriter, t tokens, display string) {
	life := time.Duration(t.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	http.SetCookie(w, s.cookie(accessCookie, t.AccessToken, life))
	if t.RefreshToken != "" {
		http.SetCookie(w, s.cookie(refreshCookie, t.RefreshToken, refreshLife))
	}
	if display != "" {
		http.SetCookie(w, s.cookie(userCookie, s.sig.sign([]byte(display)), refreshLife))
	}
}

func (s *Server) clearSession(w http.ResponseWriter) {
	for _, n := range []string{accessCookie, refreshCookie, userCookie, lastCookie} {
		http.SetCookie(w, s.cookie(n, "", -1))
	}
}

// userName is the signed display name, empty when logged out.
func (s *Server) userName(r *http.Request) string {
	if _, err := r.Cookie(refreshCookie); err != nil {
		if _, err := r.Cookie(accessCookie); err != nil {
			return ""
		}
	}
	c, err := r.Cookie(userCookie)
	if err != nil {
		return ""
	}
	v, ok := s.sig.verify(c.Value)
	if !ok {
		return ""
	}
	return string(v)
}

// accessToken returns a usable access token: the cookie's, or a fresh one
// from the refresh token when the access cookie has expired. Empty means the
// shopper must log in.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(accessCookie); err == nil && c.Value != "" {
		return c.Value
	}
	return s.refreshSession(w, r)
}

func (s *Server) refreshSession(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(refreshCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	t, err := s.b.refresh(r.Context(), c.Value)
	if err != nil || t.AccessToken == "" {
		if p, ok := asProblem(err); ok && (p.Status == http.StatusUnauthorized || p.Status == http.StatusBadRequest) {
			s.clearSession(w)
		}
		return ""
	}
	s.setSession(w, t, "")
	return t.AccessToken
}

// withToken runs call with the shopper's token and retries once after a
// refresh when the backend says the token is no longer valid. ok is false
// when the shopper is not logged in (the caller redirects to the login page).
func (s *Server) withToken(w http.ResponseWriter, r *http.Request, call func(ctx context.Context, token string) error) (ok bool, err error) {
	tok := s.accessToken(w, r)
	if tok == "" {
		return false, nil
	}
	err = call(r.Context(), tok)
	if p, isP := asProblem(err); isP && p.Status == http.StatusUnauthorized {
		if tok = s.refreshSession(w, r); tok == "" {
			s.clearSession(w)
			return false, nil
		}
		err = call(r.Context(), tok)
	}
	return true, err
}

func (s *Server) toLogin(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// safeNext accepts only local paths as a post-login destination.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

// setLastOrder remembers (signed) which order the checkout form with this
// idempotency key placed.
func (s *Server) setLastOrder(w http.ResponseWriter, key, orderID string) {
	http.SetCookie(w, s.cookie(lastCookie, s.sig.sign([]byte(key+" "+orderID)), time.Hour))
}

// lastOrder is the order placed with key, if this browser placed it.
func (s *Server) lastOrder(r *http.Request, key string) string {
	c, err := r.Cookie(lastCookie)
	if err != nil {
		return ""
	}
	v, ok := s.sig.verify(c.Value)
	if !ok {
		return ""
	}
	k, id, ok := strings.Cut(string(v), " ")
	if !ok || k != key || !skuPattern.MatchString(id) {
		return ""
	}
	return id
}
