package frontend

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// fakeShop is a small in-memory stand-in for auth, catalog and orders,
// served over real HTTP, for handler unit tests. The real services are
// exercised by the browser end-to-end test.
type fakeShop struct {
	mu       sync.Mutex
	products map[string]*Product
	users    map[string]string // email -> password
	orders   []Order
	keys     map[string]string // idempotency key -> order id
	charges  int
	down     bool
}

func newFakeShop() *fakeShop {
	return &fakeShop{
		products: map[string]*Product{
			"MUG-1":  {SKU: "MUG-1", Name: "Gopher Mug", Description: "A mug.", PriceMinor: 1299, Currency: "EUR", Category: "kitchen", Stock: 5},
			"TEE-1":  {SKU: "TEE-1", Name: "Gopher Tee", Description: "A tee.", PriceMinor: 2500, Currency: "EUR", Category: "apparel", Stock: 2},
			"GONE-1": {SKU: "GONE-1", Name: "Sold Out", PriceMinor: 100, Currency: "EUR", Category: "kitchen", Stock: 0},
		},
		users: map[string]string{},
		keys:  map[string]string{},
	}
}

func problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "code": code, "detail": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		problem(w, 503, "unavailable", "down for the test")
		return
	}
	auth := r.Header.Get("Authorization")
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/auth/register":
		var in map[string]string
		json.NewDecoder(r.Body).Decode(&in)
		if _, ok := f.users[in["email"]]; ok {
			problem(w, 409, "email_taken", "email already registered")
			return
		}
		f.users[in["email"]] = in["password"]
		writeJSON(w, 201, map[string]string{"id": "u1", "email": in["email"]})
	case r.Method == "POST" && r.URL.Path == "/api/auth/login":
		var in map[string]string
		json.NewDecoder(r.Body).Decode(&in)
		if pw, ok := f.users[in["email"]]; !ok || pw != in["password"] {
			problem(w, 401, "invalid_credentials", "invalid email or password")
			return
		}
		writeJSON(w, 200, tokens{AccessToken: "at-" + in["email"], RefreshToken: "rt-" + in["email"], ExpiresIn: 900})
	case r.Method == "POST" && r.URL.Path == "/api/auth/logout":
		w.WriteHeader(204)
	case r.Method == "GET" && r.URL.Path == "/api/catalog/categories":
		writeJSON(w, 200, categoryList{Categories: []Category{{Slug: "apparel", Name: "Apparel"}, {Slug: "kitchen", Name: "Kitchen"}}})
	case r.Method == "GET" && r.URL.Path == "/api/catalog/products":
		var out productPage
		for _, sku := range []string{"GONE-1", "MUG-1", "TEE-1"} {
			p := f.products[sku]
			c := r.URL.Query().Get("category")
			q := strings.ToLower(r.URL.Query().Get("q"))
			if (c == "" || p.Category == c) && (q == "" || strings.Contains(strings.ToLower(p.Name), q)) {
				out.Products = append(out.Products, *p)
			}
		}
		writeJSON(w, 200, out)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/catalog/products/"):
		p, ok := f.products[strings.TrimPrefix(r.URL.Path, "/api/catalog/products/")]
		if !ok {
			problem(w, 404, "not_found", "no such product")
			return
		}
		writeJSON(w, 200, p)
	case strings.HasPrefix(r.URL.Path, "/api/orders") && !strings.HasPrefix(auth, "Bearer at-"):
		problem(w, 401, "unauthorized", "missing token")
	case r.Method == "POST" && r.URL.Path == "/api/orders/checkout":
		key := r.Header.Get("Idempotency-Key")
		if id, ok := f.keys[key]; ok {
			for _, o := range f.orders {
				if o.ID == id {
					writeJSON(w, 200, o)
					return
				}
			}
		}
		var in checkoutRequest
		json.NewDecoder(r.Body).Decode(&in)
		if in.Card.Number == "4000000000000002" {
			problem(w, 402, "card_declined", "the card was declined")
			return
		}
		o := Order{ID: fmt.Sprintf("ord%08d", len(f.orders)+1), Status: "confirmed", Currency: "EUR", CardLast4: in.Card.Number[len(in.Card.Number)-4:], CreatedAt: "2026-11-25T18:00:00Z"}
		for _, it := range in.Items {
			p := f.products[it.SKU]
			if p == nil || p.Stock < it.Quantity {
				problem(w, 409, "out_of_stock", "insufficient stock for "+it.SKU)
				return
			}
		}
		for _, it := range in.Items {
			p := f.products[it.SKU]
			p.Stock -= it.Quantity
			o.Items = append(o.Items, OrderItem{SKU: p.SKU, Name: p.Name, Quantity: it.Quantity, PriceMinor: p.PriceMinor, Currency: "EUR"})
			o.TotalMinor += p.PriceMinor * int64(it.Quantity)
		}
		f.charges++
		f.orders = append(f.orders, o)
		f.keys[key] = o.ID
		writeJSON(w, 201, o)
	case r.Method == "GET" && r.URL.Path == "/api/orders":
		writeJSON(w, 200, orderList{Orders: f.orders})
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/orders/"):
		for _, o := range f.orders {
			if o.ID == strings.TrimPrefix(r.URL.Path, "/api/orders/") {
				writeJSON(w, 200, o)
				return
			}
		}
		problem(w, 404, "not_found", "no such order")
	default:
		problem(w, 404, "not_found", "no route")
	}
}

type harness struct {
	t    *testing.T
	shop *fakeShop
	url  string
	c    *http.Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	shop := newFakeShop()
	back := httptest.NewServer(shop)
	t.Cleanup(back.Close)
	srv, err := New(Options{AuthURL: back.URL, CatalogURL: back.URL, OrdersURL: back.URL, CookieSecret: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(srv)
	t.Cleanup(front.Close)
	jar, _ := cookiejar.New(nil)
	return &harness{t: t, shop: shop, url: front.URL, c: &http.Client{Jar: jar}}
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := h.c.Get(h.url + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) post(path string, form url.Values) (int, string, string) {
	h.t.Helper()
	resp, err := h.c.PostForm(h.url+path, form)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Request.URL.RequestURI()
}

func must(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q:\n%s", w, body)
		}
	}
}

func TestHomeListsFiltersAndSearches(t *testing.T) {
	h := newHarness(t)
	st, body := h.get("/")
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	must(t, body, "Gopher Mug", "€12.99", "Gopher Tee", "Out of stock", `<main id="main"`, `alt="Gopher Mug"`, `<label for="q">`, "Kitchen")
	_, body = h.get("/?category=apparel")
	must(t, body, "Gopher Tee")
	if strings.Contains(body, "Gopher Mug") {
		t.Error("category filter kept a kitchen product")
	}
	_, body = h.get("/?q=mug")
	must(t, body, "Results for", "Gopher Mug")
	if strings.Contains(body, "Gopher Tee") {
		t.Error("search kept a non-matching product")
	}
}

func TestProductPageAndMissingProduct(t *testing.T) {
	h := newHarness(t)
	st, body := h.get("/products/MUG-1")
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	must(t, body, "<h1>Gopher Mug</h1>", "5 in stock", `<label for="quantity">`)
	st, body = h.get("/products/NOPE-9")
	if st != 404 {
		t.Fatalf("missing product: status %d", st)
	}
	must(t, body, "Not found")
	st, _ = h.get("/products/%2e%2e%2fetc")
	if st != 404 {
		t.Fatalf("bad sku: status %d", st)
	}
}

func TestCartAddUpdateAndTamper(t *testing.T) {
	h := newHarness(t)
	st, body, _ := h.post("/cart/add", url.Values{"sku": {"MUG-1"}, "quantity": {"2"}})
	if st != 200 {
		t.Fatalf("add: %d", st)
	}
	must(t, body, "Added to your cart", "€25.98", `id="cart-count" aria-label="2 items">2<`)
	// More than the stock is refused with a clear message.
	st, body, _ = h.post("/cart/add", url.Values{"sku": {"TEE-1"}, "quantity": {"3"}})
	if st != http.StatusConflict {
		t.Fatalf("over-stock add: %d", st)
	}
	must(t, body, "Only 2 of Gopher Tee are available")
	st, body, _ = h.post("/cart/update", url.Values{"sku": {"MUG-1"}, "quantity": {"0"}})
	if st != 200 {
		t.Fatalf("update: %d", st)
	}
	must(t, body, "Your cart is empty")

	// A forged cart cookie is ignored.
	u, _ := url.Parse(h.url)
	forged := base64JSON(`{"MUG-1":3}`) + ".AAAA"
	h.c.Jar.SetCookies(u, []*http.Cookie{{Name: cartCookie, Value: forged, Path: "/"}})
	_, body = h.get("/cart")
	must(t, body, "Your cart is empty")
}

func TestRegisterLoginCheckoutHistory(t *testing.T) {
	h := newHarness(t)
	// Checkout without login goes to the login page.
	h.post("/cart/add", url.Values{"sku": {"MUG-1"}, "quantity": {"1"}})
	_, body := h.get("/checkout")
	must(t, body, "<h1>Log in</h1>", `value="/checkout"`)

	// Register validation errors are listed.
	st, body, _ := h.post("/register", url.Values{"email": {"nope"}, "password": {"short"}})
	if st != http.StatusUnprocessableEntity {
		t.Fatalf("bad register: %d", st)
	}
	must(t, body, `role="alert"`, "valid email address", "at least 8 characters")

	_, body, _ = h.post("/register", url.Values{"email": {"ada@example.com"}, "password": {"correct horse"}, "name": {"Ada"}, "next": {"/checkout"}})
	must(t, body, "Signed in as", "ada@example.com", "Card details", `name="idempotency_key"`)
	// Duplicate registration is explained.
	h2 := &harness{t: t, url: h.url, c: &http.Client{}}
	_, body, _ = h2.post("/register", url.Values{"email": {"ada@example.com"}, "name": {"Ada"}, "password": {"correct horse"}})
	must(t, body, "already exists")

	// Wrong password.
	_, body, _ = h2.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"wrong password"}})
	must(t, body, "do not match")

	key := between(body2(t, h, "/checkout"), `name="idempotency_key" value="`, `"`)
	card := url.Values{"idempotency_key": {key}, "cc_number": {"4000 0000 0000 0002"}, "cc_exp": {"12/40"}, "cc_cvc": {"123"}}
	st, body, _ = h.post("/checkout", card)
	if st != http.StatusPaymentRequired {
		t.Fatalf("declined: status %d", st)
	}
	must(t, body, "Your card was declined", "You have not been charged")
	if h.shop.products["MUG-1"].Stock != 5 {
		t.Fatal("declined card changed stock")
	}
	newKey := between(body, `name="idempotency_key" value="`, `"`)
	if newKey == key || newKey == "" {
		t.Fatal("a failed checkout must render a new idempotency key")
	}

	// Card validation errors, nothing sent.
	st, body, _ = h.post("/checkout", url.Values{"idempotency_key": {newKey}, "cc_number": {"4242 4242 4242 4241"}, "cc_exp": {"13/99"}, "cc_cvc": {"1"}})
	if st != http.StatusUnprocessableEntity {
		t.Fatalf("invalid card: %d", st)
	}
	must(t, body, "not valid", "MM/YY", "security code")
	if strings.Contains(body, "4242 4242 4242 4241") || strings.Contains(body, "4242424242424241") {
		t.Fatal("the card number was echoed")
	}

	good := url.Values{"idempotency_key": {newKey}, "cc_name": {"Ada"}, "cc_number": {"4242 4242 4242 4242"}, "cc_exp": {"12/40"}, "cc_cvc": {"123"}}
	st, body, final := h.post("/checkout", good)
	if st != 200 || !strings.HasPrefix(final, "/orders/ord") {
		t.Fatalf("checkout: %d at %s", st, final)
	}
	must(t, body, "Your order is confirmed", "card ending 4242", "€12.99")
	// A double submit of the same form charges once.
	h.post("/cart/add", url.Values{"sku": {"MUG-1"}, "quantity": {"1"}})
	h.post("/checkout", good)
	if h.shop.charges != 1 {
		t.Fatalf("double submit charged %d times", h.shop.charges)
	}
	_, body = h.get("/orders")
	must(t, body, "My orders", "#ORD00000", "Confirmed")

	// Logout clears the session.
	_, body, _ = h.post("/logout", nil)
	must(t, body, "You have logged out", "Log in")
	_, body = h.get("/orders")
	must(t, body, "<h1>Log in</h1>")
}

func TestBackendDownShowsFriendlyPage(t *testing.T) {
	h := newHarness(t)
	h.shop.down = true
	st, body := h.get("/")
	if st != http.StatusServiceUnavailable {
		t.Fatalf("status %d", st)
	}
	must(t, body, "trouble right now", "try again")
	if strings.Contains(body, "down for the test") {
		t.Fatal("backend detail leaked")
	}
	st, body = h.get("/no/such/page")
	if st != 404 {
		t.Fatalf("status %d", st)
	}
	must(t, body, "Page not found")
}

func TestSecureCookiesAndHeaders(t *testing.T) {
	shop := newFakeShop()
	back := httptest.NewServer(shop)
	defer back.Close()
	srv, err := New(Options{AuthURL: back.URL, CatalogURL: back.URL, OrdersURL: back.URL, SecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/cart/add", strings.NewReader("sku=MUG-1&quantity=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	srv.ServeHTTP(rec, req)
	ck := rec.Result().Cookies()
	if len(ck) != 1 || !ck[0].Secure || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("cart cookie: %+v", ck)
	}
	if rec.Header().Get("Content-Security-Policy") == "" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("security headers missing")
	}
	if _, err := New(Options{AuthURL: "ftp://x", CatalogURL: back.URL, OrdersURL: back.URL}); err == nil {
		t.Fatal("accepted a non-http backend URL")
	}
	if _, err := New(Options{CatalogURL: back.URL}); err == nil || !strings.Contains(err.Error(), "AUTH_URL") {
		t.Fatalf("missing URLs: %v", err)
	}
}

func TestFormatMoney(t *testing.T) {
	for _, c := range []struct {
		minor int64
		cur   string
		want  string
	}{
		{0, "EUR", "€0.00"}, {5, "USD", "$0.05"}, {123456789, "EUR", "€1,234,567.89"},
		{-250, "GBP", "-£2.50"}, {1500, "JPY", "¥1,500"}, {1999, "SEK", "19.99 SEK"},
		{12345, "KWD", "12.345 KWD"}, {-9223372036854775808, "EUR", "-€92,233,720,368,547,758.08"},
	} {
		if got := FormatMoney(c.minor, c.cur); got != c.want {
			t.Errorf("FormatMoney(%d, %s) = %q, want %q", c.minor, c.cur, got, c.want)
		}
	}
}

func FuzzCartCookie(f *testing.F) {
	s := signer{key: []byte("k")}
	f.Add(s.sign([]byte(`{"A":1}`)))
	f.Add("garbage")
	f.Add(s.sign([]byte(`{"../x":-5,"B":1000}`)))
	f.Fuzz(func(t *testing.T, v string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: cartCookie, Value: v})
		c := s.readCart(req)
		if len(c) > maxCartLines {
			t.Fatal("too many lines")
		}
		for sku, q := range c {
			if !skuPattern.MatchString(sku) || q < 1 || q > maxLineQty {
				t.Fatalf("bad line %q=%d", sku, q)
			}
		}
	})
}

func body2(t *testing.T, h *harness, path string) string {
	_, b := h.get(path)
	return b
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

func base64JSON(s string) string { return base64RawURL([]byte(s)) }

func TestReadyChecks(t *testing.T) {
	shop := newFakeShop()
	back := httptest.NewServer(shop)
	srv, err := New(Options{AuthURL: back.URL, CatalogURL: back.URL, OrdersURL: back.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range srv.ReadyChecks() {
		if err := c.Func(t.Context()); err != nil {
			t.Errorf("%s not ready while up: %v", c.Name, err)
		}
	}
	back.Close()
	for _, c := range srv.ReadyChecks() {
		if err := c.Func(t.Context()); err == nil {
			t.Errorf("%s ready while its backend is down", c.Name)
		}
	}
}

// TestFormatMoneyMatchesServices: the storefront shows every amount as the
// services mean it (platform.ParseMoney reads the shown number back to the
// same minor units), including currencies whose minor units are not two.
func TestFormatMoneyMatchesServices(t *testing.T) {
	for _, cur := range []string{"EUR", "USD", "JPY", "KWD", "UGX", "XOF", "XAF", "XPF", "RWF", "PYG", "IQD", "LYD", "CLF", "UYW"} {
		for _, minor := range []int64{0, 7, 1999, 123456789} {
			shown := FormatMoney(minor, cur)
			num := strings.TrimSpace(strings.TrimSuffix(shown, cur))
			num = strings.TrimLeft(num, "€$£¥")
			num = strings.ReplaceAll(num, ",", "")
			got, err := platform.ParseMoney(num, cur)
			if err != nil || got != minor {
				t.Errorf("FormatMoney(%d, %s) = %q, which the services read as %d (%v)", minor, cur, shown, got, err)
			}
		}
	}
}
