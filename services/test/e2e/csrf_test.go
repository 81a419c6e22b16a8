package e2e

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// attackPage auto-submits a checkout form to the storefront, as a hostile
// page the shopper happens to open would.
var attackPage = template.Must(template.New("attack").Parse(`<!doctype html>
<html lang="en"><head><title>Win a prize</title></head><body>
<form id="f" method="post" action="{{.}}/checkout">
<input type="hidden" name="idempotency_key" value="csrf-attack-1">
<input type="hidden" name="cc_name" value="Mallory">
<input type="hidden" name="cc_number" value="4242 4242 4242 4242">
<input type="hidden" name="cc_exp" value="12/39">
<input type="hidden" name="cc_cvc" value="123">
</form>
<script>document.getElementById("f").submit()</script>
</body></html>`))

// A page on another origin of the same site (127.0.0.1 on another port:
// SameSite=Lax cookies ARE sent, so only the origin check stands between
// it and a checkout) makes a logged-in shopper's real browser post the
// checkout form. The storefront refuses it with its 403 page, places no
// order and takes no stock.
func TestBrowserCrossOriginCheckoutRefused(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping the browser test: %s is absent (install it with `make -C services browser-deps`, i.e. apt-get install -y chromium)", chromiumPath)
	}
	st := startStack(t)
	ctx := newBrowser(t)
	base := st.Frontend()
	prod := pickProduct(t, st)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = attackPage.Execute(w, base)
	}))
	defer evil.Close()
	if !strings.HasPrefix(evil.URL, "http://127.0.0.1:") || !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("want both on 127.0.0.1 (one site, two origins): %s, %s", evil.URL, base)
	}

	email := fmt.Sprintf("victim-%d@example.com", time.Now().UnixNano())
	step(t, ctx, "register and fill the cart",
		chromedp.Navigate(base+"/register"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Victor Victim"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("#register-submit")),
		chromedp.WaitVisible(chromedp.CSS(".who")),
		chromedp.Navigate(base+"/products/"+prod.SKU),
		chromedp.WaitVisible(chromedp.CSS("#add-to-cart")),
		chromedp.Click(chromedp.CSS("#add-to-cart")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-sku="`+prod.SKU+`"]`)),
	)
	before := catalogProduct(t, st, prod.SKU).Stock

	step(t, ctx, "visit the hostile page",
		chromedp.Navigate(evil.URL+"/"),
		// The hostile page has no main landmark: this waits for the storefront's answer.
		chromedp.WaitVisible(chromedp.CSS("main h1")),
	)
	if h := text(t, ctx, "main h1"); h != "Request refused" {
		t.Fatalf("after the cross-origin post the page says %q", h)
	}
	if got := catalogProduct(t, st, prod.SKU).Stock; got != before {
		t.Fatalf("stock after a refused cross-origin checkout: %d, want %d", got, before)
	}
	step(t, ctx, "history", chromedp.Navigate(base+"/orders"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#order-history tbody tr").length`)); err != nil || n != 0 {
		t.Fatalf("orders after a refused cross-origin checkout: %d (%v)", n, err)
	}
	if who := text(t, ctx, ".who"); !strings.Contains(who, email) {
		t.Fatalf("the shopper is no longer logged in: %q", who)
	}
}
