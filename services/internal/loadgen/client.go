package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// URLs are the base URLs of the storefront and the APIs a shopper calls.
type URLs struct {
	Frontend, Auth, Catalog, Orders string
	Payment                         string // optional: refunds when cleaning up
}

// URLsFromEnv reads FRONTEND_URL, AUTH_URL, CATALOG_URL, ORDERS_URL and PAYMENT_URL.
func URLsFromEnv() (URLs, error) {
	trim := func(k string) string { return strings.TrimRight(platform.Env(k, ""), "/") }
	u := URLs{Frontend: trim("FRONTEND_URL"), Auth: trim("AUTH_URL"), Catalog: trim("CATALOG_URL"), Orders: trim("ORDERS_URL"), Payment: trim("PAYMENT_URL")}
	var missing []string
	for k, v := range map[string]string{"FRONTEND_URL": u.Frontend, "AUTH_URL": u.Auth, "CATALOG_URL": u.Catalog, "ORDERS_URL": u.Orders} {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return u, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return u, nil
}

// SuccessCard is the test card that always succeeds (docs/services.md),
// valid for three more years.
func SuccessCard() Card {
	return Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123", Name: "Test Shopper"}
}

// Card is a payment card as the orders API takes it.
type Card struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
	Name     string `json:"name"`
}

// Product is the part of a catalog product a shopper looks at.
type Product struct {
	SKU   string `json:"sku"`
	Stock int    `json:"stock"`
}

// Tokens are a login's tokens.
type Tokens struct {
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
}

// Order is the part of an order a shopper checks.
type Order struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	PaymentID string `json:"payment_id"`
}

// Client calls the shop as a shopper would: JSON APIs with platform's
// instrumented client (client spans, trace context), the storefront's pages
// with a cookie jar per client.
type Client struct {
	URLs URLs
	HTTP *http.Client
}

func (c *Client) call(ctx context.Context, method, u, token, idemKey string, in, out any) error {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if idemKey != "" {
		h.Set("Idempotency-Key", idemKey)
	}
	return platform.CallJSON(ctx, c.HTTP, method, u, h, in, out)
}

// Register creates an account; Login signs in.
func (c *Client) Register(ctx context.Context, email, password string) error {
	return c.call(ctx, http.MethodPost, c.URLs.Auth+"/api/auth/register", "", "",
		map[string]string{"email": email, "password": password, "name": "Load Shopper"}, nil)
}

func (c *Client) Login(ctx context.Context, email, password string) (Tokens, error) {
	var t Tokens
	err := c.call(ctx, http.MethodPost, c.URLs.Auth+"/api/auth/login", "", "",
		map[string]string{"email": email, "password": password}, &t)
	return t, err
}

// Logout revokes the refresh token.
func (c *Client) Logout(ctx context.Context, refresh string) error {
	return c.call(ctx, http.MethodPost, c.URLs.Auth+"/api/auth/logout", "", "", map[string]string{"refresh_token": refresh}, nil)
}

// Products lists the first page of products matching q ("" for all).
func (c *Client) Products(ctx context.Context, q string) ([]Product, error) {
	var out struct {
		Products []Product `json:"products"`
	}
	u := c.URLs.Catalog + "/api/catalog/products?page_size=50"
	if q != "" {
		u += "&q=" + url.QueryEscape(q)
	}
	err := c.call(ctx, http.MethodGet, u, "", "", nil, &out)
	return out.Products, err
}

// Checkout buys quantity one of sku.
func (c *Client) Checkout(ctx context.Context, token, idemKey, sku string, card Card) (Order, error) {
	var o Order
	err := c.call(ctx, http.MethodPost, c.URLs.Orders+"/api/orders/checkout", token, idemKey, map[string]any{
		"items": []map[string]any{{"sku": sku, "quantity": 1}},
		"card":  card,
	}, &o)
	return o, err
}

// Orders lists the shopper's orders, newest first.
func (c *Client) Orders(ctx context.Context, token string) ([]Order, error) {
	var out struct {
		Orders []Order `json:"orders"`
	}
	err := c.call(ctx, http.MethodGet, c.URLs.Orders+"/api/orders", token, "", nil, &out)
	return out.Orders, err
}

// Refund refunds what is left of a charge.
func (c *Client) Refund(ctx context.Context, token, chargeID string) error {
	return c.call(ctx, http.MethodPost, c.URLs.Payment+"/api/payments/charges/"+url.PathEscape(chargeID)+"/refunds", token, "refund-"+chargeID, map[string]any{}, nil)
}

// Page fetches a storefront page (GET) or submits a form (POST when form is
// not nil) and fails on any status other than 2xx (redirects are followed).
func (c *Client) Page(ctx context.Context, hc *http.Client, path string, form url.Values) error {
	method, body := http.MethodGet, ""
	if form != nil {
		method, body = http.MethodPost, form.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URLs.Frontend+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return platform.NewProblem(resp.StatusCode, "page_error", fmt.Sprintf("%s %s: %s", method, path, resp.Status))
	}
	return nil
}
