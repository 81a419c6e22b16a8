// Package frontend is the storefront: server-rendered HTML (html/template)
// over the auth, catalog and orders services' JSON APIs.
package frontend

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the storefront handler.
type Options struct {
	AuthURL, CatalogURL, OrdersURL string
	// Client calls the backends; it should carry trace context (platform's
	// instrumented client). Nil means a plain client with a timeout.
	Client *http.Client
	// CookieSecret signs the cart and user cookies. Empty means a random
	// per-process secret (carts then do not survive a restart).
	CookieSecret []byte
	// SecureCookies sets the Secure attribute (behind TLS).
	SecureCookies bool
	// RemoteImages lets product pages load the catalog's absolute image URLs;
	// off, the storefront draws its own placeholder images (no outside fetches).
	RemoteImages bool
	ShopName     string
	PageSize     int
	Logger       *slog.Logger
}

// Server is the storefront's HTTP handler.
type Server struct {
	b        *backends
	sig      signer
	secure   bool
	remote   bool
	shopName string
	pageSize int
	log      *slog.Logger
	pages    map[string]*template.Template
	mux      *http.ServeMux
	// csrf refuses state-changing requests that a browser sent from another
	// origin (Sec-Fetch-Site, or Origin against Host): docs/security.md.
	csrf *http.CrossOriginProtection
}

// New checks the options and parses the embedded templates.
func New(o Options) (*Server, error) {
	var missing []string
	for name, v := range map[string]string{"AUTH_URL": o.AuthURL, "CATALOG_URL": o.CatalogURL, "ORDERS_URL": o.OrdersURL} {
		if v == "" {
			missing = append(missing, name)
		} else if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("frontend: %s must be an http(s) URL, got %q", name, v)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("frontend: missing %s", strings.Join(missing, ", "))
	}
	hc := o.Client
	if hc == nil {
		hc = &http.Client{Timeout: backendTimeout}
	}
	secret := o.CookieSecret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
	}
	s := &Server{
		b: &backends{
			auth:    &backend{name: "auth", base: trimBase(o.AuthURL), hc: hc},
			catalog: &backend{name: "catalog", base: trimBase(o.CatalogURL), hc: hc},
			orders:  &backend{name: "orders", base: trimBase(o.OrdersURL), hc: hc},
		},
		sig:      signer{key: secret},
		secure:   o.SecureCookies,
		remote:   o.RemoteImages,
		shopName: o.ShopName,
		pageSize: o.PageSize,
		log:      o.Logger,
		csrf:     http.NewCrossOriginProtection(),
	}
	if s.shopName == "" {
		s.shopName = "Gopher Goods"
	}
	if s.pageSize <= 0 {
		s.pageSize = 12
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) parseTemplates() error {
	funcs := template.FuncMap{
		"money":      FormatMoney,
		"imageURL":   s.imageURL,
		"shortID":    shortID,
		"statusText": statusText,
		"when":       when,
		"maxQty":     func(stock int) int { return min(stock, maxLineQty) },
		"reason":     failureText,
	}
	s.pages = map[string]*template.Template{}
	for _, p := range []string{"home", "product", "cart", "login", "register", "checkout", "order", "orders", "error"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/errors.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("frontend: template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	return nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", cacheFor(time.Hour, http.StripPrefix("/static/", http.FileServerFS(static))))
	m.HandleFunc("GET /images/{file}", s.placeholderImage)
	m.HandleFunc("GET /{$}", s.home)
	m.HandleFunc("GET /products/{sku}", s.productPage)
	m.HandleFunc("GET /cart", s.cartPage)
	m.HandleFunc("POST /cart/add", s.cartAdd)
	m.HandleFunc("POST /cart/update", s.cartUpdate)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.loginSubmit)
	m.HandleFunc("GET /register", s.registerPage)
	m.HandleFunc("POST /register", s.registerSubmit)
	m.HandleFunc("POST /logout", s.logout)
	m.HandleFunc("GET /checkout", s.checkoutPage)
	m.HandleFunc("POST /checkout", s.checkoutSubmit)
	m.HandleFunc("GET /orders", s.ordersPage)
	m.HandleFunc("GET /orders/{id}", s.orderPage)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusNotFound, "Page not found", "We could not find that page. It may have moved.", "")
	})
	s.mux = m
}

// ServeHTTP adds security headers, refuses cross-origin form posts, bounds
// form bodies and recovers panics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' https: data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'")
	if err := s.csrf.Check(r); err != nil {
		s.crossOrigin(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic in storefront handler", "panic", fmt.Sprint(v), "path", r.URL.Path)
			s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "An unexpected error happened on our side. Please try again.", "")
		}
	}()
	s.mux.ServeHTTP(w, r)
}

// crossOrigin answers a refused cross-origin POST: nothing was done, and
// the shopper is told to use the shop's own pages.
func (s *Server) crossOrigin(w http.ResponseWriter, r *http.Request, err error) {
	s.log.WarnContext(r.Context(), "cross-origin request refused", "method", r.Method, "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "host", r.Host, "reason", err.Error())
	s.errorPage(w, r, http.StatusForbidden, "Request refused",
		"This form was sent from another site, so we did not act on it. Nothing was changed. Please use the shop's own pages and try again.", "")
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d/time.Second)))
		h.ServeHTTP(w, r)
	})
}

// pageData is what every template gets.
type pageData struct {
	Title     string
	ShopName  string
	User      string
	CartCount int
	Nav       string
	Flash     string
	Errors    []string
	Data      any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, pd pageData) {
	pd.ShopName = s.shopName
	if pd.User == "" {
		pd.User = s.userName(r)
	}
	if pd.CartCount == 0 {
		pd.CartCount = s.sig.readCart(r).Count()
	}
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "layout", pd); err != nil {
		s.log.ErrorContext(r.Context(), "template failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	Heading, Message, Reference, Back, BackText string
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, msg, ref string) {
	s.render(w, r, status, "error", pageData{Title: heading, Data: errorData{Heading: heading, Message: msg, Reference: ref}})
}

// backendError turns a backend failure into a friendly page.
func (s *Server) backendError(w http.ResponseWriter, r *http.Request, err error, what string) {
	p, ok := asProblem(err)
	if !ok {
		if errors.Is(err, context.Canceled) {
			return
		}
		s.log.ErrorContext(r.Context(), "storefront call failed", "what", what, "err", err)
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "An unexpected error happened on our side. Please try again.", "")
		return
	}
	switch {
	case p.Unreachable || p.Status >= 500:
		s.log.WarnContext(r.Context(), "backend failed", "what", what, "service", p.Service, "status", p.Status, "detail", p.Detail, "unreachable", p.Unreachable)
		s.errorPage(w, r, http.StatusServiceUnavailable, "We're having trouble right now",
			"Part of the shop is temporarily unavailable, so we could not load "+what+". Please try again in a moment.", p.TraceID)
	case p.Status == http.StatusNotFound:
		s.errorPage(w, r, http.StatusNotFound, "Not found", "We could not find "+what+". It may have been removed.", "")
	case p.Status == http.StatusUnauthorized:
		s.clearSession(w)
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	case p.Status == http.StatusForbidden:
		s.errorPage(w, r, http.StatusForbidden, "Not allowed", "Your account is not allowed to see "+what+".", "")
	case p.Status == http.StatusTooManyRequests:
		s.errorPage(w, r, http.StatusTooManyRequests, "Too many requests", "Please wait a moment and try again.", "")
	default:
		msg := "We could not load " + what + "."
		if p.Detail != "" {
			msg += " " + sentence(p.Detail)
		}
		s.errorPage(w, r, http.StatusBadRequest, "We could not do that", msg, "")
	}
}

func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func shortID(id string) string {
	if len(id) > 8 {
		return "#" + strings.ToUpper(id[:8])
	}
	return "#" + strings.ToUpper(id)
}

func statusText(s string) string {
	switch strings.ToLower(s) {
	case "confirmed", "paid", "completed":
		return "Confirmed"
	case "pending", "created", "reserved":
		return "Processing"
	case "failed":
		return "Not placed"
	case "cancelled", "canceled", "compensated":
		return "Cancelled"
	case "refunded":
		return "Refunded"
	case "":
		return "Unknown"
	}
	return strings.ToUpper(s[:1]) + strings.ReplaceAll(s[1:], "_", " ")
}

func when(ts string) string {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// imageURL gives the product image to show: the catalog's own when remote
// images are allowed, a drawn placeholder otherwise.
func (s *Server) imageURL(p Product) string {
	if s.remote && strings.HasPrefix(p.ImageURL, "https://") {
		return p.ImageURL
	}
	return "/images/" + url.PathEscape(p.SKU) + ".svg"
}

var palette = []string{"#0b5cad", "#2f855a", "#b7791f", "#9b2c2c", "#6b46c1", "#2c7a7b", "#c05621", "#2d3748"}

// placeholderImage draws an SVG tile for a SKU, so pages never fetch images
// from outside the shop.
func (s *Server) placeholderImage(w http.ResponseWriter, r *http.Request) {
	sku, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
	if !ok || !skuPattern.MatchString(sku) {
		http.NotFound(w, r)
		return
	}
	h := fnv.New32a()
	h.Write([]byte(sku))
	sum := h.Sum32()
	c1 := palette[sum%uint32(len(palette))]
	c2 := palette[(sum/7)%uint32(len(palette))]
	label := strings.ToUpper(sku)
	if len(label) > 14 {
		label = label[:14]
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="360" viewBox="0 0 480 360" role="img"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="%s"/><stop offset="1" stop-color="%s"/></linearGradient></defs><rect width="480" height="360" fill="url(#g)"/><circle cx="240" cy="160" r="70" fill="#fff" fill-opacity=".18"/><text x="240" y="300" font-family="sans-serif" font-size="28" fill="#fff" text-anchor="middle">%s</text></svg>`,
		c1, c2, template.HTMLEscapeString(label))
}

// failureText explains an order's failure_reason (a problem code).
func failureText(code string) string {
	switch code {
	case "":
		return ""
	case "card_declined":
		return "card declined, not charged"
	case "insufficient_funds":
		return "insufficient funds, not charged"
	case "provider_timeout":
		return "payment provider timed out, not charged"
	case "out_of_stock":
		return "out of stock, not charged"
	case "unknown_sku":
		return "product no longer sold, not charged"
	}
	return "not charged"
}
