package frontend

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

const (
	cartCookie     = "shop_cart"
	maxCartLines   = 20
	maxLineQty     = 99
	cartCookieLife = 30 * 24 * time.Hour
)

// skuPattern bounds what the storefront accepts as a SKU before it reaches a
// backend: letters, digits, dashes, underscores and dots, at most 64.
var skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Cart is the shopper's cart: SKU -> quantity. It lives in a cookie signed
// with HMAC-SHA256, so a shopper cannot forge lines (prices are always read
// from the catalog, never from the cookie).
type Cart map[string]int

// Lines returns the cart's SKUs in a stable order.
func (c Cart) SKUs() []string {
	skus := make([]string, 0, len(c))
	for s := range c {
		skus = append(skus, s)
	}
	sort.Strings(skus)
	return skus
}

// Count is the number of items in the cart.
func (c Cart) Count() int {
	n := 0
	for _, q := range c {
		n += q
	}
	return n
}

// Add adds qty of sku, bounded per line and per cart.
func (c Cart) Add(sku string, qty int) error {
	if !skuPattern.MatchString(sku) {
		return errors.New("unknown product")
	}
	if qty < 1 {
		return errors.New("quantity must be at least 1")
	}
	if _, ok := c[sku]; !ok && len(c) >= maxCartLines {
		return errors.New("your cart is full")
	}
	n := c[sku] + qty
	if n > maxLineQty {
		n = maxLineQty
	}
	c[sku] = n
	return nil
}

// Set sets the quantity of sku; zero removes the line.
func (c Cart) Set(sku string, qty int) error {
	if !skuPattern.MatchString(sku) {
		return errors.New("unknown product")
	}
	switch {
	case qty <= 0:
		delete(c, sku)
	case qty > maxLineQty:
		c[sku] = maxLineQty
	default:
		if _, ok := c[sku]; !ok && len(c) >= maxCartLines {
			return errors.New("your cart is full")
		}
		c[sku] = qty
	}
	return nil
}

// signer signs and verifies cookie values.
type signer struct{ key []byte }

func (s signer) sign(payload []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s signer) verify(v string) ([]byte, bool) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > 4096 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil, false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write(payload)
	if !hmac.Equal(got, m.Sum(nil)) {
		return nil, false
	}
	return payload, true
}

// readCart returns the cart from the request; a missing, tampered or
// malformed cookie yields an empty cart.
func (s signer) readCart(r *http.Request) Cart {
	c := Cart{}
	ck, err := r.Cookie(cartCookie)
	if err != nil {
		return c
	}
	payload, ok := s.verify(ck.Value)
	if !ok {
		return c
	}
	var raw map[string]int
	if json.Unmarshal(payload, &raw) != nil {
		return c
	}
	for sku, q := range raw {
		if len(c) >= maxCartLines {
			break
		}
		if skuPattern.MatchString(sku) && q > 0 {
			c[sku] = min(q, maxLineQty)
		}
	}
	return c
}

func (s signer) writeCart(w http.ResponseWriter, c Cart, secure bool) {
	if len(c) == 0 {
		http.SetCookie(w, &http.Cookie{Name: cartCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
		return
	}
	payload, _ := json.Marshal(map[string]int(c))
	http.SetCookie(w, &http.Cookie{
		Name: cartCookie, Value: s.sign(payload), Path: "/",
		MaxAge: int(cartCookieLife / time.Second), HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	})
}

func base64RawURL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
