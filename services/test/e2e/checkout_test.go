package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// shopper is a cookie-keeping HTTP client of the storefront (no browser).
type shopper struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newShopper(t *testing.T, base string) *shopper {
	jar, _ := cookiejar.New(nil)
	return &shopper{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (s *shopper) do(method, path string, form url.Values) (int, string, string) {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Request.URL.Path
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

// A double submit of one checkout form (same idempotency key) places one
// order and takes the stock once, against the real services.
func TestDoubleSubmitChargesOnce(t *testing.T) {
	st := startStack(t)
	prod := pickProduct(t, st)
	s := newShopper(t, st.Frontend())
	email := "double-" + time.Now().Format("150405.000000000") + "@example.com"
	if code, body, _ := s.do("POST", "/register", url.Values{"name": {"Double"}, "email": {email}, "password": {"correct horse battery"}}); code != 200 || !strings.Contains(body, "Signed in as") {
		t.Fatalf("register: %d\n%s", code, body)
	}
	if code, _, _ := s.do("POST", "/cart/add", url.Values{"sku": {prod.SKU}, "quantity": {"1"}}); code != 200 {
		t.Fatalf("add to cart: %d", code)
	}
	_, page, _ := s.do("GET", "/checkout", nil)
	key := between(page, `name="idempotency_key" value="`, `"`)
	if key == "" {
		t.Fatalf("no idempotency key in the checkout form:\n%s", page)
	}
	form := url.Values{"idempotency_key": {key}, "cc_name": {"Double"}, "cc_number": {cardOK}, "cc_exp": {"12/39"}, "cc_cvc": {"123"}}

	var wg sync.WaitGroup
	finals := make([]string, 2)
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() { codes[i], _, finals[i] = s.do("POST", "/checkout", form) })
	}
	wg.Wait()
	// Then a third, late resubmit (e.g. the back button and submit again).
	code3, _, final3 := s.do("POST", "/checkout", form)
	t.Logf("submits: %d %s, %d %s, %d %s", codes[0], finals[0], codes[1], finals[1], code3, final3)

	_, hist, _ := s.do("GET", "/orders", nil)
	if n := strings.Count(hist, "<tr data-order="); n != 1 {
		t.Fatalf("history has %d orders after a double submit, want 1:\n%s", n, hist)
	}
	if got := catalogProduct(t, st, prod.SKU).Stock; got != prod.Stock-1 {
		t.Fatalf("stock %d after a double submit, want %d", got, prod.Stock-1)
	}
	// Every submit ends on the one order: the concurrent twin waits for the
	// first (checkout_in_progress) and gets its replay; the late one is
	// recognised by its key.
	for i, f := range []string{finals[0], finals[1], final3} {
		if !strings.HasPrefix(f, "/orders/") || f != finals[0] {
			t.Errorf("submit %d ended on %q, want the order page %q", i+1, f, finals[0])
		}
	}
}
