package frontend

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// The JSON shapes of the backends' answers (docs/services.md).

type Product struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceMinor  int64  `json:"price_minor"`
	Currency    string `json:"currency"`
	Category    string `json:"category"`
	ImageURL    string `json:"image_url"`
	Stock       int    `json:"stock"`
}

type productPage struct {
	Products      []Product `json:"products"`
	NextPageToken string    `json:"next_page_token"`
}

type Category struct {
	Slug  string `json:"slug"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

type categoryList struct {
	Categories []Category `json:"categories"`
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

type OrderItem struct {
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	Quantity   int    `json:"quantity"`
	PriceMinor int64  `json:"unit_price_minor"`
	Currency   string `json:"currency"`
}

type Order struct {
	ID          string      `json:"id"`
	Status      string      `json:"status"`
	TotalMinor  int64       `json:"total_minor"`
	Currency    string      `json:"currency"`
	Items       []OrderItem `json:"items"`
	CardLast4   string      `json:"card_last4"`
	CreatedAt   string      `json:"created_at"`
	FailureCode string      `json:"failure_reason"`
}

type orderList struct {
	Orders []Order `json:"orders"`
}

type checkoutItem struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type cardInput struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
	Name     string `json:"name,omitempty"`
}

type checkoutRequest struct {
	Items []checkoutItem `json:"items"`
	Card  cardInput      `json:"card"`
}

// backends groups the three services the storefront calls.
type backends struct {
	auth, catalog, orders *backend
}

func (b *backends) listProducts(ctx context.Context, category, q, pageToken string, pageSize int) (productPage, error) {
	v := url.Values{}
	if category != "" {
		v.Set("category", category)
	}
	if q != "" {
		v.Set("q", q)
	}
	if pageToken != "" {
		v.Set("page_token", pageToken)
	}
	if pageSize > 0 {
		v.Set("page_size", strconv.Itoa(pageSize))
	}
	var out productPage
	path := "/api/catalog/products"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	err := b.catalog.do(ctx, http.MethodGet, path, "", nil, nil, &out)
	return out, err
}

func (b *backends) product(ctx context.Context, sku string) (Product, error) {
	var p Product
	err := b.catalog.do(ctx, http.MethodGet, "/api/catalog/products/"+escapePath(sku), "", nil, nil, &p)
	return p, err
}

func (b *backends) categories(ctx context.Context) ([]Category, error) {
	var out categoryList
	err := b.catalog.do(ctx, http.MethodGet, "/api/catalog/categories", "", nil, nil, &out)
	return out.Categories, err
}

func (b *backends) register(ctx context.Context, email, password, name string) error {
	in := map[string]string{"email": email, "password": password, "name": name}
	return b.auth.do(ctx, http.MethodPost, "/api/auth/register", "", nil, in, nil)
}

func (b *backends) login(ctx context.Context, email, password string) (tokens, error) {
	var t tokens
	err := b.auth.do(ctx, http.MethodPost, "/api/auth/login", "", nil, map[string]string{"email": email, "password": password}, &t)
	return t, err
}

func (b *backends) refresh(ctx context.Context, refreshToken string) (tokens, error) {
	var t tokens
	err := b.auth.do(ctx, http.MethodPost, "/api/auth/refresh", "", nil, map[string]string{"refresh_token": refreshToken}, &t)
	return t, err
}

func (b *backends) logout(ctx context.Context, access, refreshToken string) error {
	return b.auth.do(ctx, http.MethodPost, "/api/auth/logout", access, nil, map[string]string{"refresh_token": refreshToken}, nil)
}

func (b *backends) me(ctx context.Context, access string) (User, error) {
	var u User
	err := b.auth.do(ctx, http.MethodGet, "/api/auth/me", access, nil, nil, &u)
	return u, err
}

func (b *backends) checkout(ctx context.Context, access, idemKey string, req checkoutRequest) (Order, error) {
	var o Order
	h := http.Header{}
	h.Set("Idempotency-Key", idemKey)
	err := b.orders.do(ctx, http.MethodPost, "/api/orders/checkout", access, h, req, &o)
	return o, err
}

func (b *backends) listOrders(ctx context.Context, access string) ([]Order, error) {
	var out orderList
	err := b.orders.do(ctx, http.MethodGet, "/api/orders", access, nil, nil, &out)
	return out.Orders, err
}

func (b *backends) order(ctx context.Context, access, id string) (Order, error) {
	var o Order
	err := b.orders.do(ctx, http.MethodGet, "/api/orders/"+escapePath(id), access, nil, nil, &o)
	return o, err
}
