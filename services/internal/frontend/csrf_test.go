package frontend

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// postAs sends a form post with the browser's origin headers; "" leaves a
// header out.
func (h *harness) postAs(path string, form url.Values, origin, fetchSite string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if fetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", fetchSite)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A page on another site that posts the shopper's logged-in browser to the
// storefront (checkout, cart, login, logout) is refused with a 403 page and
// changes nothing; the shop's own forms keep working.
func TestCrossOriginPostsAreRefused(t *testing.T) {
	h := newHarness(t)
	h.post("/register", url.Values{"email": {"ada@example.com"}, "password": {"correct horse"}, "name": {"Ada"}})
	h.post("/cart/add", url.Values{"sku": {"MUG-1"}, "quantity": {"1"}})
	key := between(body2(t, h, "/checkout"), `name="idempotency_key" value="`, `"`)
	card := url.Values{"idempotency_key": {key}, "cc_name": {"Ada"}, "cc_number": {"4242 4242 4242 4242"}, "cc_exp": {"12/40"}, "cc_cvc": {"123"}}
	self := h.url // http://127.0.0.1:port: Origin's host equals the request's Host

	for _, c := range []struct{ name, origin, site string }{
		{"cross-site fetch metadata", "https://evil.example", "cross-site"},
		{"same-site sibling", "https://evil.shop.example", "same-site"},
		{"origin only (no fetch metadata)", "https://evil.example", ""},
		{"null origin (sandboxed frame)", "null", ""},
		{"fetch metadata wins over a same-host origin", self, "cross-site"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/checkout", "/cart/add", "/cart/update", "/logout", "/login", "/register"} {
				st, body := h.postAs(path, card, c.origin, c.site)
				if st != http.StatusForbidden {
					t.Fatalf("%s: status %d, want 403", path, st)
				}
				must(t, body, "Request refused", "sent from another site", "Nothing was changed")
			}
		})
	}
	if h.shop.charges != 0 || len(h.shop.orders) != 0 {
		t.Fatalf("a refused checkout placed %d orders", len(h.shop.orders))
	}
	if _, body := h.get("/cart"); !strings.Contains(body, `aria-label="1 items">1<`) {
		t.Fatalf("a refused post changed the cart or the session:\n%s", body)
	}
	must(t, body2(t, h, "/"), "ada@example.com") // still logged in: the cross-site logout did nothing

	// The storefront's own form, as a browser sends it, is accepted.
	st, body := h.postAs("/checkout", card, self, "same-origin")
	if st != http.StatusSeeOther && st != http.StatusOK {
		t.Fatalf("same-origin checkout: status %d:\n%s", st, body)
	}
	if h.shop.charges != 1 || len(h.shop.orders) != 1 {
		t.Fatalf("same-origin checkout placed %d orders, charged %d times", len(h.shop.orders), h.shop.charges)
	}
	// An old browser without fetch metadata, same origin; and a bookmark or
	// typed URL (Sec-Fetch-Site: none) are same-origin too.
	if st, _ := h.postAs("/cart/add", url.Values{"sku": {"MUG-1"}, "quantity": {"1"}}, self, ""); st != http.StatusOK {
		t.Fatalf("same-origin post without fetch metadata: %d", st)
	}
	if st, _ := h.postAs("/cart/add", url.Values{"sku": {"MUG-1"}, "quantity": {"1"}}, "", "none"); st != http.StatusOK {
		t.Fatalf("user-initiated post: %d", st)
	}
	// Reads are never refused, whatever their origin.
	req, _ := http.NewRequest("GET", h.url+"/", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := h.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cross-site GET: %d", resp.StatusCode)
	}
}
