package frontend

import (
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

type homeData struct {
	Query, Category, CategoryName string
	Categories                    []Category
	Products                      []Product
	Next, Self                    string
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 100 {
		q = q[:100]
	}
	cat := strings.TrimSpace(r.URL.Query().Get("category"))
	if len(cat) > 64 {
		cat = cat[:64]
	}
	tok := r.URL.Query().Get("page_token")
	if len(tok) > 512 {
		tok = ""
	}
	var (
		page    productPage
		cats    []Category
		pErr    error
		catsErr error
		wg      sync.WaitGroup
	)
	wg.Go(func() { page, pErr = s.b.listProducts(r.Context(), cat, q, tok, s.pageSize) })
	wg.Go(func() { cats, catsErr = s.b.categories(r.Context()) })
	wg.Wait()
	if pErr != nil {
		s.backendError(w, r, pErr, "the products")
		return
	}
	if catsErr != nil {
		s.log.WarnContext(r.Context(), "categories unavailable", "err", catsErr)
	}
	d := homeData{Query: q, Category: cat, Categories: cats, Products: page.Products, Self: r.URL.RequestURI()}
	for _, c := range cats {
		if c.Slug == cat {
			d.CategoryName = c.Name
		}
	}
	if cat != "" && d.CategoryName == "" {
		d.CategoryName = cat
	}
	if page.NextPageToken != "" {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		if cat != "" {
			v.Set("category", cat)
		}
		v.Set("page_token", page.NextPageToken)
		d.Next = "/?" + v.Encode()
	}
	title := "All products"
	if q != "" {
		title = "Search: " + q
	} else if d.CategoryName != "" {
		title = d.CategoryName
	}
	s.render(w, r, http.StatusOK, "home", pageData{Title: title, Nav: "home", Flash: flash(r), Data: d})
}

// flash is a short message carried in the query after a redirect, from a
// fixed list (never echoing arbitrary text).
func flash(r *http.Request) string {
	switch r.URL.Query().Get("m") {
	case "added":
		return "Added to your cart."
	case "welcome":
		return "Welcome! Your account is ready."
	case "loggedin":
		return "You are logged in."
	case "loggedout":
		return "You have logged out."
	case "updated":
		return "Your cart was updated."
	}
	return ""
}

type productData struct{ Product Product }

func (s *Server) productPage(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	if !skuPattern.MatchString(sku) {
		s.errorPage(w, r, http.StatusNotFound, "Product not found", "We could not find that product. It may have been removed.", "")
		return
	}
	p, err := s.b.product(r.Context(), sku)
	if err != nil {
		s.backendError(w, r, err, "this product")
		return
	}
	s.render(w, r, http.StatusOK, "product", pageData{Title: p.Name, Flash: flash(r), Data: productData{Product: p}})
}

func formInt(r *http.Request, key string, def int) (int, bool) {
	v := strings.TrimSpace(r.PostFormValue(key))
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 1000 {
		return 0, false
	}
	return n, true
}

func (s *Server) cartAdd(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "We could not read that form", "Please go back and try again.", "")
		return
	}
	sku := r.PostFormValue("sku")
	qty, ok := formInt(r, "quantity", 1)
	if !ok || qty < 1 {
		s.errorPage(w, r, http.StatusBadRequest, "Check the quantity", "The quantity must be a whole number of at least 1.", "")
		return
	}
	// Check that the product exists and has stock before it goes in the cart.
	p, err := s.b.product(r.Context(), sku)
	if err != nil {
		s.backendError(w, r, err, "this product")
		return
	}
	c := s.sig.readCart(r)
	if c[sku]+qty > p.Stock {
		s.render(w, r, http.StatusConflict, "error", pageData{Title: "Not enough stock", Data: errorData{
			Heading:  "Not enough stock",
			Message:  fmt.Sprintf("Only %d of %s are available, and your cart would hold %d.", max(p.Stock, 0), p.Name, c[sku]+qty),
			Back:     "/products/" + url.PathEscape(sku),
			BackText: "Back to " + p.Name,
		}})
		return
	}
	if err := c.Add(sku, qty); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "We could not add that", sentence(err.Error()), "")
		return
	}
	s.sig.writeCart(w, c, s.secure)
	back := safeNext(r.PostFormValue("return"))
	if back == "/" && r.PostFormValue("return") == "" {
		back = "/cart"
	}
	http.Redirect(w, r, withParam(back, "m", "added"), http.StatusSeeOther)
}

func withParam(path, k, v string) string {
	u, err := url.Parse(path)
	if err != nil {
		return "/"
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.RequestURI()
}

func (s *Server) cartUpdate(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "We could not read that form", "Please go back and try again.", "")
		return
	}
	qty, ok := formInt(r, "quantity", 0)
	if !ok {
		s.errorPage(w, r, http.StatusBadRequest, "Check the quantity", "The quantity must be a whole number from 0 to 99.", "")
		return
	}
	c := s.sig.readCart(r)
	if err := c.Set(r.PostFormValue("sku"), qty); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "We could not update your cart", sentence(err.Error()), "")
		return
	}
	s.sig.writeCart(w, c, s.secure)
	http.Redirect(w, r, "/cart?m=updated", http.StatusSeeOther)
}

type cartLine struct {
	Product  Product
	Quantity int
	Subtotal int64
	Problem  string
}

type cartData struct {
	Lines          []cartLine
	Total          int64
	Currency       string
	IdempotencyKey string
	CardName, Exp  string
}

// loadCart reads every line's product from the catalog (prices come from
// there, never from the cookie). Lines whose product is gone are dropped.
func (s *Server) loadCart(ctx context.Context, c Cart) (cartData, error) {
	skus := c.SKUs()
	prods := make([]Product, len(skus))
	errs := make([]error, len(skus))
	var wg sync.WaitGroup
	for i, sku := range skus {
		wg.Go(func() { prods[i], errs[i] = s.b.product(ctx, sku) })
	}
	wg.Wait()
	var d cartData
	for i, sku := range skus {
		if errs[i] != nil {
			if p, ok := asProblem(errs[i]); ok && p.Status == http.StatusNotFound {
				delete(c, sku)
				continue
			}
			return d, errs[i]
		}
		p := prods[i]
		l := cartLine{Product: p, Quantity: c[sku], Subtotal: p.PriceMinor * int64(c[sku])}
		if p.Stock < c[sku] {
			l.Problem = fmt.Sprintf("Only %d left in stock", max(p.Stock, 0))
		}
		d.Lines = append(d.Lines, l)
		d.Total += l.Subtotal
		if d.Currency == "" {
			d.Currency = p.Currency
		}
	}
	return d, nil
}

func (s *Server) cartPage(w http.ResponseWriter, r *http.Request) {
	c := s.sig.readCart(r)
	n := len(c)
	d, err := s.loadCart(r.Context(), c)
	if err != nil {
		s.backendError(w, r, err, "your cart")
		return
	}
	if len(c) != n {
		s.sig.writeCart(w, c, s.secure)
	}
	s.render(w, r, http.StatusOK, "cart", pageData{Title: "Your cart", Nav: "cart", Flash: flash(r), CartCount: c.Count(), Data: d})
}

type authForm struct{ Email, Name, Next string }

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", pageData{Title: "Log in", Data: authForm{Next: safeNextOrEmpty(r.URL.Query().Get("next"))}})
}

func (s *Server) registerPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "register", pageData{Title: "Create an account", Data: authForm{Next: safeNextOrEmpty(r.URL.Query().Get("next"))}})
}

func safeNextOrEmpty(n string) string {
	if n == "" {
		return ""
	}
	if v := safeNext(n); v != "/" {
		return v
	}
	return ""
}

func validEmail(e string) bool {
	if len(e) > 254 {
		return false
	}
	a, err := mail.ParseAddress(e)
	return err == nil && a.Address == e && strings.Contains(e, "@")
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "We could not read that form", "Please go back and try again.", "")
		return
	}
	f := authForm{Email: strings.TrimSpace(r.PostFormValue("email")), Next: safeNextOrEmpty(r.PostFormValue("next"))}
	pw := r.PostFormValue("password")
	var errs []string
	if !validEmail(f.Email) {
		errs = append(errs, "Enter your email address, like name@example.com.")
	}
	if pw == "" {
		errs = append(errs, "Enter your password.")
	}
	if len(errs) == 0 {
		t, err := s.b.login(r.Context(), f.Email, pw)
		if err == nil {
			s.setSession(w, t, f.Email)
			http.Redirect(w, r, withParam(safeNext(f.Next), "m", "loggedin"), http.StatusSeeOther)
			return
		}
		errs = append(errs, authMessage(err, "log you in"))
	}
	s.render(w, r, http.StatusUnprocessableEntity, "login", pageData{Title: "Log in", Errors: errs, Data: f})
}

func (s *Server) registerSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "We could not read that form", "Please go back and try again.", "")
		return
	}
	f := authForm{Email: strings.TrimSpace(r.PostFormValue("email")), Name: strings.TrimSpace(r.PostFormValue("name")), Next: safeNextOrEmpty(r.PostFormValue("next"))}
	pw := r.PostFormValue("password")
	var errs []string
	if !validEmail(f.Email) {
		errs = append(errs, "Enter a valid email address, like name@example.com.")
	}
	if len(pw) < 8 {
		errs = append(errs, "Choose a password of at least 8 characters.")
	} else if len(pw) > 128 {
		errs = append(errs, "Choose a password of at most 128 characters.")
	}
	if f.Name == "" {
		errs = append(errs, "Enter your name.")
	} else if len(f.Name) > 100 {
		errs = append(errs, "Your name can be at most 100 characters.")
	}
	if len(errs) == 0 {
		err := s.b.register(r.Context(), f.Email, pw, f.Name)
		if err == nil {
			t, lerr := s.b.login(r.Context(), f.Email, pw)
			if lerr == nil {
				s.setSession(w, t, f.Email)
				http.Redirect(w, r, withParam(safeNext(f.Next), "m", "welcome"), http.StatusSeeOther)
				return
			}
			err = lerr
		}
		errs = append(errs, authMessage(err, "create your account"))
	}
	s.render(w, r, http.StatusUnprocessableEntity, "register", pageData{Title: "Create an account", Errors: errs, Data: f})
}

// authMessage turns an auth service problem into one sentence for a form.
func authMessage(err error, doing string) string {
	p, ok := asProblem(err)
	if !ok || p.Unreachable || p.Status >= 500 {
		return "We could not " + doing + " right now because a service is unavailable. Please try again in a moment."
	}
	switch p.Status {
	case http.StatusUnauthorized:
		return "That email and password do not match. Check them and try again."
	case http.StatusConflict:
		return "An account with that email already exists. Log in instead."
	case http.StatusTooManyRequests, http.StatusLocked, http.StatusForbidden:
		return "Too many failed attempts. Wait a few minutes and try again."
	}
	if len(p.Errors) > 0 {
		var msgs []string
		for _, e := range p.Errors {
			msgs = append(msgs, strings.TrimPrefix(e.Field+": ", ": ")+e.Message)
		}
		return "Check your details: " + sentence(strings.Join(msgs, "; "))
	}
	if p.Detail != "" {
		return sentence(p.Detail)
	}
	return "We could not " + doing + ". Check your details and try again."
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(refreshCookie); err == nil && c.Value != "" {
		at := ""
		if a, err := r.Cookie(accessCookie); err == nil {
			at = a.Value
		}
		if err := s.b.logout(r.Context(), at, c.Value); err != nil {
			s.log.WarnContext(r.Context(), "logout at auth failed; cookies cleared anyway", "err", err)
		}
	}
	s.clearSession(w)
	http.Redirect(w, r, "/?m=loggedout", http.StatusSeeOther)
}

func (s *Server) checkoutPage(w http.ResponseWriter, r *http.Request) {
	if s.accessToken(w, r) == "" {
		s.toLogin(w, r)
		return
	}
	c := s.sig.readCart(r)
	if len(c) == 0 {
		http.Redirect(w, r, "/cart", http.StatusSeeOther)
		return
	}
	d, err := s.loadCart(r.Context(), c)
	if err != nil {
		s.backendError(w, r, err, "your cart")
		return
	}
	// A new key per rendered form: a double submit of this form reuses it,
	// so the orders service charges once.
	d.IdempotencyKey = newKey()
	s.render(w, r, http.StatusOK, "checkout", pageData{Title: "Checkout", Nav: "cart", Data: d})
}

func validKey(k string) bool {
	if len(k) < 16 || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return false
		}
	}
	return true
}

// parseCard validates the card form; it never logs or echoes the number.
func parseCard(r *http.Request, now time.Time) (cardInput, string, []string) {
	var errs []string
	var c cardInput
	c.Name = strings.TrimSpace(r.PostFormValue("cc_name"))
	if len(c.Name) > 100 {
		errs = append(errs, "The name on the card can be at most 100 characters.")
	}
	num := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, r.PostFormValue("cc_number"))
	if len(num) < 12 || len(num) > 19 || strings.IndexFunc(num, func(r rune) bool { return !unicode.IsDigit(r) || r > '9' }) >= 0 {
		errs = append(errs, "Enter the card number: 12 to 19 digits.")
	} else if !luhn(num) {
		errs = append(errs, "That card number is not valid. Check it and try again.")
	}
	c.Number = num
	exp := strings.TrimSpace(r.PostFormValue("cc_exp"))
	mm, yy, ok := strings.Cut(strings.ReplaceAll(exp, " ", ""), "/")
	m, err1 := strconv.Atoi(mm)
	y, err2 := strconv.Atoi(yy)
	switch {
	case !ok || err1 != nil || err2 != nil || m < 1 || m > 12 || (len(yy) != 2 && len(yy) != 4):
		errs = append(errs, "Enter the expiry date as MM/YY, for example 12/30.")
	default:
		if len(yy) == 2 {
			y += 2000
		}
		if y < now.Year() || (y == now.Year() && m < int(now.Month())) {
			errs = append(errs, "That card has expired.")
		}
		c.ExpMonth, c.ExpYear = m, y
	}
	cvc := strings.TrimSpace(r.PostFormValue("cc_cvc"))
	if len(cvc) < 3 || len(cvc) > 4 || strings.IndexFunc(cvc, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		errs = append(errs, "Enter the 3 or 4 digit security code from the back of the card.")
	}
	c.CVC = cvc
	return c, exp, errs
}

func luhn(num string) bool {
	sum := 0
	double := false
	for i := len(num) - 1; i >= 0; i-- {
		d := int(num[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func (s *Server) checkoutSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "We could not read that form", "Please go back and try again.", "")
		return
	}
	key := r.PostFormValue("idempotency_key")
	if !validKey(key) {
		key = newKey()
	}
	// A form submitted again after its order was placed (back button, double
	// click that outran the first answer) leads to that order.
	if id := s.lastOrder(r, key); id != "" {
		http.Redirect(w, r, "/orders/"+url.PathEscape(id)+"?placed=1", http.StatusSeeOther)
		return
	}
	c := s.sig.readCart(r)
	if len(c) == 0 {
		http.Redirect(w, r, "/cart", http.StatusSeeOther)
		return
	}
	card, exp, errs := parseCard(r, time.Now())
	d, err := s.loadCart(r.Context(), c)
	if err != nil {
		s.backendError(w, r, err, "your cart")
		return
	}
	d.CardName, d.Exp = card.Name, exp
	if len(errs) > 0 {
		// Nothing was sent: the same key stays valid for the corrected form.
		d.IdempotencyKey = key
		s.render(w, r, http.StatusUnprocessableEntity, "checkout", pageData{Title: "Checkout", Nav: "cart", Errors: errs, Data: d})
		return
	}
	req := checkoutRequest{Card: card}
	for _, sku := range c.SKUs() {
		req.Items = append(req.Items, checkoutItem{SKU: sku, Quantity: c[sku]})
	}
	var o Order
	loggedIn, err := s.withToken(w, r, func(ctx context.Context, tok string) error {
		var e error
		// The same key already in flight (a double submit): wait for the
		// first to finish and take its answer, bounded.
		for range 20 {
			o, e = s.b.checkout(ctx, tok, key, req)
			if p, ok := asProblem(e); !ok || p.Code != "checkout_in_progress" {
				return e
			}
			select {
			case <-ctx.Done():
				return e
			case <-time.After(250 * time.Millisecond):
			}
		}
		return e
	})
	if !loggedIn {
		s.toLogin(w, r)
		return
	}
	if err == nil {
		s.sig.writeCart(w, Cart{}, s.secure)
		s.setLastOrder(w, key, o.ID)
		http.Redirect(w, r, "/orders/"+url.PathEscape(o.ID)+"?placed=1", http.StatusSeeOther)
		return
	}
	msg, status := checkoutMessage(err)
	s.log.InfoContext(r.Context(), "checkout refused", "status", status, "err", err)
	// A new key: the next attempt (another card) is a new checkout.
	d.IdempotencyKey = newKey()
	s.render(w, r, status, "checkout", pageData{Title: "Checkout", Nav: "cart", CartCount: c.Count(), Errors: []string{msg}, Data: d})
}

// checkoutMessage explains a failed checkout to the shopper, from the
// problem's stable code first (docs/services.md), then its status.
func checkoutMessage(err error) (string, int) {
	p, ok := asProblem(err)
	if !ok || p.Unreachable {
		return "We could not complete your order because a service is unavailable. You have not been charged. Please try again in a moment.", http.StatusServiceUnavailable
	}
	switch p.Code {
	case "card_declined":
		return "Your card was declined. You have not been charged and nothing was ordered. Please check the details or use another card.", http.StatusPaymentRequired
	case "insufficient_funds":
		return "Your card was declined for insufficient funds. You have not been charged and nothing was ordered. Please use another card.", http.StatusPaymentRequired
	case "provider_timeout":
		return "The payment provider did not answer in time. You have not been charged and nothing was ordered. Please try again.", http.StatusGatewayTimeout
	case "out_of_stock":
		return "Some items in your cart are no longer in stock in the quantity you chose. Nothing was ordered. Update your cart and try again.", http.StatusConflict
	case "unknown_sku":
		return "A product in your cart is no longer sold. Nothing was ordered. Update your cart and try again.", http.StatusConflict
	case "checkout_in_progress":
		return "This order is already being processed. Check your order history before trying again.", http.StatusConflict
	case "validation_failed":
		msg := "Some details were not accepted"
		var fields []string
		for _, e := range p.Errors {
			if strings.HasPrefix(e.Field, "card") {
				fields = append(fields, "the card details ("+e.Message+")")
			} else {
				fields = append(fields, e.Message)
			}
		}
		if len(fields) > 0 {
			msg += ": " + strings.Join(fields, "; ")
		}
		return sentence(msg + ". You have not been charged"), http.StatusUnprocessableEntity
	}
	switch {
	case p.Status == http.StatusPaymentRequired:
		return "Your card was declined. You have not been charged and nothing was ordered. Please use another card.", http.StatusPaymentRequired
	case p.Status == http.StatusGatewayTimeout:
		return "The payment provider did not answer in time. You have not been charged and nothing was ordered. Please try again.", http.StatusGatewayTimeout
	case p.Status >= 500:
		return "We could not complete your order because a service is unavailable. You have not been charged. Please try again in a moment.", http.StatusServiceUnavailable
	case p.Status == http.StatusConflict:
		return "This order could not be placed as it is. Check your cart and your order history, then try again.", http.StatusConflict
	case p.Status == http.StatusTooManyRequests:
		return "Too many attempts. Please wait a moment and try again.", http.StatusTooManyRequests
	}
	if p.Detail != "" {
		return "We could not place your order: " + sentence(p.Detail), http.StatusUnprocessableEntity
	}
	return "We could not place your order. Check your details and try again.", http.StatusUnprocessableEntity
}

type ordersData struct{ Orders []Order }

func (s *Server) ordersPage(w http.ResponseWriter, r *http.Request) {
	var list []Order
	ok, err := s.withToken(w, r, func(ctx context.Context, tok string) error {
		var e error
		list, e = s.b.listOrders(ctx, tok)
		return e
	})
	if !ok {
		s.toLogin(w, r)
		return
	}
	if err != nil {
		s.backendError(w, r, err, "your orders")
		return
	}
	s.render(w, r, http.StatusOK, "orders", pageData{Title: "My orders", Nav: "orders", Data: ordersData{Orders: list}})
}

type orderData struct {
	Order      Order
	JustPlaced bool
}

func (s *Server) orderPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if len(id) == 0 || len(id) > 64 || !skuPattern.MatchString(id) {
		s.errorPage(w, r, http.StatusNotFound, "Order not found", "We could not find that order.", "")
		return
	}
	var o Order
	ok, err := s.withToken(w, r, func(ctx context.Context, tok string) error {
		var e error
		o, e = s.b.order(ctx, tok, id)
		return e
	})
	if !ok {
		s.toLogin(w, r)
		return
	}
	if err != nil {
		s.backendError(w, r, err, "this order")
		return
	}
	title := "Order " + shortID(o.ID)
	placed := r.URL.Query().Get("placed") == "1"
	if placed {
		title = "Order confirmed"
	}
	s.render(w, r, http.StatusOK, "order", pageData{Title: title, Nav: "orders", Data: orderData{Order: o, JustPlaced: placed}})
}
