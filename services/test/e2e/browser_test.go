// Package e2e drives Debian's Chromium (chromedp) through the storefront
// against the real services and a real Postgres, all on loopback.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopplatform/shop-operator/services/internal/devstack"
)

const chromiumPath = "/usr/bin/chromium"

// Test cards of the simulated payment provider (docs/services.md).
const (
	cardOK       = "4242 4242 4242 4242"
	cardDeclined = "4000 0000 0000 0002"
)

var (
	stackOnce sync.Once
	stack     *devstack.Stack
	stackErr  error
)

// TestMain stops the shared stack after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if stack != nil {
		if code != 0 {
			for _, s := range []string{"frontend", "orders", "payment", "catalog", "auth"} {
				fmt.Fprintf(os.Stderr, "--- %s log (tail) ---\n%s\n", s, stack.Logs(s, 25))
			}
		}
		stack.Stop()
	}
	os.Exit(code)
}

// startStack starts (once per test binary) Postgres and the five services.
func startStack(t *testing.T) *devstack.Stack {
	t.Helper()
	stackOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "e2e-bin-")
		if err != nil {
			stackErr = err
			return
		}
		defer os.RemoveAll(dir) // the running binary stays open; the file can go
		shopd, err := devstack.BuildShopd(ctx, dir)
		if err != nil {
			stackErr = err
			return
		}
		stack, stackErr = devstack.Start(ctx, devstack.Options{
			Shopd: shopd,
			Env:   []string{"LOG_LEVEL=info"},
			ServiceEnv: map[string][]string{
				"frontend": {"FRONTEND_COOKIE_SECRET=e2e-test-secret-0123456789"},
			},
		})
	})
	if stackErr != nil {
		t.Fatal(stackErr)
	}
	return stack
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// Bound the whole browser session.
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	t.Cleanup(func() { cancel(); bcancel(); acancel() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

type apiProduct struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Stock int    `json:"stock"`
}

func catalogProduct(t *testing.T, st *devstack.Stack, sku string) apiProduct {
	t.Helper()
	resp, err := http.Get(st.Services["catalog"].URL() + "/api/catalog/products/" + sku)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("catalog product %s: %s", sku, resp.Status)
	}
	var p apiProduct
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// pickProduct finds a product with a few items in stock.
func pickProduct(t *testing.T, st *devstack.Stack) apiProduct {
	t.Helper()
	resp, err := http.Get(st.Services["catalog"].URL() + "/api/catalog/products?page_size=50")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Products []apiProduct `json:"products"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	for _, p := range page.Products {
		if p.Stock >= 3 && !strings.ContainsAny(p.Name, `"'<>&`) {
			return p
		}
	}
	t.Fatalf("no product with stock in the seeded catalog (%d products)", len(page.Products))
	return apiProduct{}
}

func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return v
}

// screenshot saves the page to E2E_SCREENSHOT_DIR, when set, for a person to
// look at. It is off by default: a full-page capture can stall headless
// Chromium on a loaded machine, and the test asserts nothing about pixels.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("E2E_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", p)
}

// checkA11y checks the basics that a screen reader needs on the current
// page: one main landmark, a label for every visible form field, alt text on
// every image, one h1.
func checkA11y(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const p = [];
		if (document.querySelectorAll("main").length !== 1) p.push("main landmarks: " + document.querySelectorAll("main").length);
		if (document.querySelectorAll("h1").length !== 1) p.push("h1 count: " + document.querySelectorAll("h1").length);
		if (!document.documentElement.lang) p.push("no lang attribute");
		for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea"))
			if (!el.labels || el.labels.length === 0) p.push("unlabelled field " + (el.id || el.name));
		for (const img of document.querySelectorAll("img"))
			if (!img.hasAttribute("alt")) p.push("image without alt " + img.src);
		for (const b of document.querySelectorAll("button"))
			if (!(b.textContent.trim() || b.getAttribute("aria-label"))) p.push("button without a name");
		return p;
	})()`))
	if err != nil {
		t.Fatalf("a11y check on %s: %v", page, err)
	}
	for _, p := range problems {
		t.Errorf("accessibility, %s page: %s", page, p)
	}
}

func TestBrowserShopping(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping the browser test: %s is absent (install it with `make -C services browser-deps`, i.e. apt-get install -y chromium)", chromiumPath)
	}
	st := startStack(t)
	ctx := newBrowser(t)
	base := st.Frontend()
	prod := pickProduct(t, st)
	email := fmt.Sprintf("shopper-%d@example.com", time.Now().UnixNano())

	// Register.
	step(t, ctx, "register",
		chromedp.Navigate(base+"/register"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
	)
	checkA11y(t, ctx, "register")
	step(t, ctx, "register",
		chromedp.SendKeys(chromedp.CSS("#name"), "Ada Shopper"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("#register-submit")),
		chromedp.WaitVisible(chromedp.CSS(".who")),
	)
	if who := text(t, ctx, ".who"); !strings.Contains(who, email) {
		t.Fatalf("after registering the header says %q", who)
	}

	// Browse: search for the product, open its page, add it to the cart.
	step(t, ctx, "search",
		chromedp.SendKeys(chromedp.CSS("#q"), prod.Name),
		chromedp.Submit(chromedp.CSS("#q")),
		chromedp.WaitVisible(chromedp.CSS(`li.card[data-sku="`+prod.SKU+`"] h3 a`)),
	)
	screenshot(t, ctx, "search")
	checkA11y(t, ctx, "search results")
	step(t, ctx, "product page",
		chromedp.Click(chromedp.CSS(`li.card[data-sku="`+prod.SKU+`"] h3 a`)),
		chromedp.WaitVisible(chromedp.CSS("#add-to-cart")),
	)
	checkA11y(t, ctx, "product")
	if got := text(t, ctx, "h1"); got != prod.Name {
		t.Fatalf("product page heading %q, want %q", got, prod.Name)
	}
	step(t, ctx, "add to cart",
		chromedp.Click(chromedp.CSS("#add-to-cart")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-sku="`+prod.SKU+`"]`)),
	)
	if n := text(t, ctx, "#cart-count"); n != "1" {
		t.Fatalf("cart badge %q, want 1", n)
	}

	// Check out with the success card.
	step(t, ctx, "checkout form",
		chromedp.Click(chromedp.CSS("#checkout")),
		chromedp.WaitVisible(chromedp.CSS("#cc-number")),
		chromedp.SendKeys(chromedp.CSS("#cc-name"), "Ada Shopper"),
		chromedp.SendKeys(chromedp.CSS("#cc-number"), cardOK),
		chromedp.SendKeys(chromedp.CSS("#cc-exp"), "12/39"),
		chromedp.SendKeys(chromedp.CSS("#cc-cvc"), "123"),
	)
	screenshot(t, ctx, "checkout")
	checkA11y(t, ctx, "checkout")
	step(t, ctx, "pay",
		chromedp.Click(chromedp.CSS("#pay")),
		chromedp.WaitVisible(chromedp.CSS("#order-id")),
	)
	orderID := text(t, ctx, "#order-id")
	if h := text(t, ctx, "h1"); !strings.Contains(h, "confirmed") {
		t.Fatalf("confirmation heading %q", h)
	}
	screenshot(t, ctx, "confirmation")
	after := catalogProduct(t, st, prod.SKU)
	if after.Stock != prod.Stock-1 {
		t.Fatalf("stock after one purchase: %d, want %d", after.Stock, prod.Stock-1)
	}

	// The order is in the history.
	step(t, ctx, "history",
		chromedp.Navigate(base+"/orders"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-order="`+orderID+`"]`)),
	)
	screenshot(t, ctx, "history")
	checkA11y(t, ctx, "order history")

	// A declined card: a clear error, nothing ordered, stock unchanged.
	step(t, ctx, "add again",
		chromedp.Navigate(base+"/products/"+prod.SKU),
		chromedp.WaitVisible(chromedp.CSS("#add-to-cart")),
		chromedp.Click(chromedp.CSS("#add-to-cart")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-sku="`+prod.SKU+`"]`)),
		chromedp.Click(chromedp.CSS("#checkout")),
		chromedp.WaitVisible(chromedp.CSS("#cc-number")),
		chromedp.SendKeys(chromedp.CSS("#cc-number"), cardDeclined),
		chromedp.SendKeys(chromedp.CSS("#cc-exp"), "12/39"),
		chromedp.SendKeys(chromedp.CSS("#cc-cvc"), "123"),
		chromedp.Click(chromedp.CSS("#pay")),
		chromedp.WaitVisible(chromedp.CSS(".error-summary")),
	)
	msg := text(t, ctx, ".error-summary")
	if !strings.Contains(msg, "declined") || !strings.Contains(msg, "not been charged") {
		t.Fatalf("declined card message: %q", msg)
	}
	screenshot(t, ctx, "declined")
	checkA11y(t, ctx, "declined checkout")
	if got := catalogProduct(t, st, prod.SKU).Stock; got != after.Stock {
		t.Fatalf("stock after a declined card: %d, want %d (unchanged)", got, after.Stock)
	}
	// The history still has exactly one confirmed order; the declined
	// attempt, if listed, is marked as not placed.
	step(t, ctx, "history after decline", chromedp.Navigate(base+"/orders"), chromedp.WaitVisible(chromedp.CSS("#order-history")))
	statuses, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#order-history tbody tr td:nth-child(3)")).map(td => td.textContent.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	confirmed := 0
	for _, s := range statuses {
		switch {
		case strings.HasPrefix(s, "Confirmed"):
			confirmed++
		case strings.HasPrefix(s, "Not placed"):
		default:
			t.Errorf("unexpected order status %q in the history", s)
		}
	}
	if confirmed != 1 {
		t.Fatalf("order history statuses %q: want exactly one confirmed order", statuses)
	}
	screenshot(t, ctx, "history-after-decline")
}
