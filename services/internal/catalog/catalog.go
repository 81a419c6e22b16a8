// Package catalog is the product catalog: listing, search, admin CRUD and
// stock reservations that cannot oversell (the database enforces stock >= 0).
package catalog

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the embedded schema migrations and seed data.
func Migrations() fs.FS { f, _ := fs.Sub(migrationFiles, "migrations"); return f }

// Service is the catalog HTTP API.
type Service struct {
	db        *pgxpool.Pool
	verify    *platform.Verifier
	conflicts metric.Int64Counter
	reserved  metric.Int64Counter
	cache     *bodyCache
}

// New builds the service with the default read cache (CacheOptions{}).
func New(db *pgxpool.Pool, verify *platform.Verifier) *Service {
	return NewWithCache(db, verify, CacheOptions{})
}

// NewWithCache builds the service with the given read cache options.
func NewWithCache(db *pgxpool.Pool, verify *platform.Verifier, co CacheOptions) *Service {
	m := otel.Meter("github.com/shopplatform/shop-operator/services/catalog")
	conflicts, _ := m.Int64Counter("shop.stock.reservation.conflicts",
		metric.WithDescription("Reservations refused because stock was insufficient."), metric.WithUnit("{reservation}"))
	reserved, _ := m.Int64Counter("shop.stock.reservations",
		metric.WithDescription("Reservation state changes by operation (reserve, release, commit)."), metric.WithUnit("{reservation}"))
	return &Service{db: db, verify: verify, conflicts: conflicts, reserved: reserved, cache: newBodyCache(co)}
}

// Routes returns the API mux.
func (s *Service) Routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /api/catalog/products", s.list)
	m.HandleFunc("GET /api/catalog/products/{sku}", s.get)
	m.HandleFunc("GET /api/catalog/categories", s.categories)
	m.HandleFunc("POST /api/catalog/products", platform.RequireAudited(s.verify, s.create, platform.RoleAdmin))
	m.HandleFunc("PUT /api/catalog/products/{sku}", platform.RequireAudited(s.verify, s.update, platform.RoleAdmin))
	m.HandleFunc("DELETE /api/catalog/products/{sku}", platform.RequireAudited(s.verify, s.delete, platform.RoleAdmin))
	m.HandleFunc("POST /api/catalog/reservations", platform.RequireAudited(s.verify, s.reserve))
	m.HandleFunc("GET /api/catalog/reservations/{id}", platform.RequireAudited(s.verify, s.getReservation))
	m.HandleFunc("POST /api/catalog/reservations/{id}/release", platform.RequireAudited(s.verify, s.release))
	m.HandleFunc("POST /api/catalog/reservations/{id}/commit", platform.RequireAudited(s.verify, s.commit))
	m.HandleFunc("/", platform.NotFound)
	return m
}

// Product is a catalog entry. Price is in minor units of Currency.
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

// ProductInput is the admin create/update body. Price may be given as
// price_minor or as a decimal string in price ("19.99").
type ProductInput struct {
	SKU         string  `json:"sku"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	PriceMinor  *int64  `json:"price_minor"`
	Price       *string `json:"price"`
	Currency    string  `json:"currency"`
	Category    string  `json:"category"`
	ImageURL    string  `json:"image_url"`
	Stock       *int    `json:"stock"`
}

var (
	skuRE      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	categoryRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
)

// Validate checks the input and returns the product it describes.
func (in *ProductInput) Validate() (*Product, error) {
	var errs []platform.FieldError
	bad := func(f, m string) { errs = append(errs, platform.FieldError{Field: f, Message: m}) }
	p := &Product{SKU: in.SKU, Name: strings.TrimSpace(in.Name), Description: strings.TrimSpace(in.Description),
		Currency: in.Currency, Category: in.Category, ImageURL: strings.TrimSpace(in.ImageURL)}
	if !skuRE.MatchString(p.SKU) {
		bad("sku", "must be 1 to 64 letters, digits, - or _")
	}
	if n := utf8.RuneCountInString(p.Name); n < 1 || n > 200 || !utf8.ValidString(p.Name) {
		bad("name", "must be 1 to 200 characters")
	}
	if utf8.RuneCountInString(p.Description) > 5000 || !utf8.ValidString(p.Description) {
		bad("description", "must be at most 5000 characters")
	}
	if !platform.ValidCurrency(p.Currency) {
		bad("currency", "must be three upper-case letters, e.g. EUR")
	}
	switch {
	case in.PriceMinor == nil && in.Price == nil:
		bad("price_minor", "is required")
	case in.PriceMinor != nil && *in.PriceMinor < 0:
		bad("price_minor", "must not be negative")
	case in.PriceMinor != nil:
		p.PriceMinor = *in.PriceMinor
	}
	if in.Price != nil && platform.ValidCurrency(p.Currency) {
		v, err := platform.ParseMoney(*in.Price, p.Currency)
		if err != nil {
			bad("price", err.Error())
		} else if in.PriceMinor != nil && v != *in.PriceMinor {
			bad("price", "disagrees with price_minor")
		} else {
			p.PriceMinor = v
		}
	}
	if !categoryRE.MatchString(p.Category) {
		bad("category", "must be a lower-case slug like books or home-office")
	}
	if len(p.ImageURL) > 1000 || strings.ContainsAny(p.ImageURL, " \"<>") {
		bad("image_url", "must be a URL of at most 1000 characters")
	}
	if in.Stock != nil {
		if *in.Stock < 0 || *in.Stock > 1_000_000 {
			bad("stock", "must be 0 to 1000000")
		} else {
			p.Stock = *in.Stock
		}
	}
	if len(errs) > 0 {
		return nil, platform.ValidationProblem(errs...)
	}
	return p, nil
}

const productCols = `sku, name, description, price_minor, currency, category, image_url, stock`

func scanProduct(row pgx.Row) (*Product, error) {
	var p Product
	err := row.Scan(&p.SKU, &p.Name, &p.Description, &p.PriceMinor, &p.Currency, &p.Category, &p.ImageURL, &p.Stock)
	return &p, err
}

var errNotFound = platform.NewProblem(http.StatusNotFound, "not_found", "no such product")

// ListQuery is the parsed query string of GET /api/catalog/products.
type ListQuery struct {
	PageSize int
	After    string
	Category string
	Q        string
}

// ParseListQuery validates the list parameters.
func ParseListQuery(page, token, category, q string) (ListQuery, error) {
	lq := ListQuery{PageSize: 20, Category: category, Q: strings.TrimSpace(q)}
	var errs []platform.FieldError
	if page != "" {
		n, err := strconv.Atoi(page)
		if err != nil || n < 1 || n > 100 {
			errs = append(errs, platform.FieldError{Field: "page_size", Message: "must be 1 to 100"})
		}
		lq.PageSize = n
	}
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !skuRE.Match(b) {
			errs = append(errs, platform.FieldError{Field: "page_token", Message: "is not a token from a previous page"})
		}
		lq.After = string(b)
	}
	if category != "" && !categoryRE.MatchString(category) {
		errs = append(errs, platform.FieldError{Field: "category", Message: "must be a category slug"})
	}
	if utf8.RuneCountInString(lq.Q) > 100 || !utf8.ValidString(lq.Q) {
		errs = append(errs, platform.FieldError{Field: "q", Message: "must be at most 100 characters"})
	}
	if len(errs) > 0 {
		return lq, platform.ValidationProblem(errs...)
	}
	return lq, nil
}

// listPage is the body of GET /api/catalog/products (fields in the order
// the former map encoding gave them).
type listPage struct {
	NextPageToken string    `json:"next_page_token"`
	Products      []Product `json:"products"`
}

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	lq, err := ParseListQuery(v.Get("page_size"), v.Get("page_token"), v.Get("category"), v.Get("q"))
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	key := "list\x00" + strconv.Itoa(lq.PageSize) + "\x00" + lq.After + "\x00" + lq.Category + "\x00" + lq.Q
	body, gen := s.cache.get(key)
	if body == nil {
		if body, err = s.listBody(r.Context(), lq); err != nil {
			platform.WriteProblem(w, r, err)
			return
		}
		s.cache.put(key, gen, body)
	}
	writeBody(w, body)
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// listBody queries and encodes one listing page.
func (s *Service) listBody(ctx context.Context, lq ListQuery) ([]byte, error) {
	like := ""
	if lq.Q != "" {
		like = "%" + likeEscaper.Replace(lq.Q) + "%"
	}
	rows, err := s.db.Query(ctx, `SELECT `+productCols+` FROM products
		WHERE sku > $1 AND ($2 = '' OR category = $2) AND ($3 = '' OR name ILIKE $3 OR description ILIKE $3)
		ORDER BY sku LIMIT $4`, lq.After, lq.Category, like, lq.PageSize+1)
	if err != nil {
		return nil, err
	}
	products := make([]Product, 0, lq.PageSize+1)
	var p Product
	_, err = pgx.ForEachRow(rows, []any{&p.SKU, &p.Name, &p.Description, &p.PriceMinor, &p.Currency, &p.Category, &p.ImageURL, &p.Stock},
		func() error { products = append(products, p); return nil })
	if err != nil {
		return nil, err
	}
	page := listPage{Products: products}
	if len(products) > lq.PageSize {
		page.Products = products[:lq.PageSize]
		page.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(page.Products[lq.PageSize-1].SKU))
	}
	return encodeJSON(page)
}

// encodeJSON encodes v as platform.WriteJSON does (with the trailing newline).
func encodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	key := "product\x00" + sku
	body, gen := s.cache.get(key)
	if body == nil {
		p, err := scanProduct(s.db.QueryRow(r.Context(), `SELECT `+productCols+` FROM products WHERE sku=$1`, sku))
		if errors.Is(err, pgx.ErrNoRows) {
			err = errNotFound
		}
		if err == nil {
			body, err = encodeJSON(p)
		}
		if err != nil {
			platform.WriteProblem(w, r, err)
			return
		}
		s.cache.put(key, gen, body)
	}
	writeBody(w, body)
}

// Category is a category with the number of its products.
type Category struct {
	Slug  string `json:"slug"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func (s *Service) categories(w http.ResponseWriter, r *http.Request) {
	const key = "categories"
	body, gen := s.cache.get(key)
	if body == nil {
		var err error
		if body, err = s.categoriesBody(r.Context()); err != nil {
			platform.WriteProblem(w, r, err)
			return
		}
		s.cache.put(key, gen, body)
	}
	writeBody(w, body)
}

func (s *Service) categoriesBody(ctx context.Context) ([]byte, error) {
	rows, err := s.db.Query(ctx, `SELECT c.slug, c.name, count(p.sku)::int FROM categories c
		LEFT JOIN products p ON p.category = c.slug GROUP BY c.slug, c.name HAVING count(p.sku) > 0 ORDER BY c.name`)
	if err != nil {
		return nil, err
	}
	cats, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Category])
	if err != nil {
		return nil, err
	}
	if cats == nil {
		cats = []Category{}
	}
	return encodeJSON(struct {
		Categories []Category `json:"categories"`
	}{cats})
}

func (s *Service) upsertCategory(ctx context.Context, tx pgx.Tx, slug string) error {
	name := strings.ReplaceAll(slug, "-", " ")
	name = strings.ToUpper(name[:1]) + name[1:]
	_, err := tx.Exec(ctx, `INSERT INTO categories (slug, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, slug, name)
	return err
}

func (s *Service) decodeProduct(r *http.Request) (*Product, error) {
	var in ProductInput
	if err := platform.DecodeJSON(r, &in); err != nil {
		return nil, err
	}
	if sku := r.PathValue("sku"); sku != "" {
		if in.SKU != "" && in.SKU != sku {
			return nil, platform.ValidationProblem(platform.FieldError{Field: "sku", Message: "differs from the SKU in the path"})
		}
		in.SKU = sku
	}
	if r.Method == http.MethodPut && in.Stock == nil {
		return nil, platform.ValidationProblem(platform.FieldError{Field: "stock", Message: "is required"})
	}
	return in.Validate()
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	p, err := s.decodeProduct(r)
	if err == nil {
		err = pgx.BeginFunc(r.Context(), s.db, func(tx pgx.Tx) error {
			if err := s.upsertCategory(r.Context(), tx, p.Category); err != nil {
				return err
			}
			_, err := tx.Exec(r.Context(), `INSERT INTO products (`+productCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
				p.SKU, p.Name, p.Description, p.PriceMinor, p.Currency, p.Category, p.ImageURL, p.Stock)
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
				return platform.NewProblem(http.StatusConflict, "sku_exists", "a product with this SKU exists")
			}
			return err
		})
		s.cache.invalidate()
	}
	auditAdmin(r, "product_create", p, err)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusCreated, p)
}

func (s *Service) update(w http.ResponseWriter, r *http.Request) {
	p, err := s.decodeProduct(r)
	if err == nil {
		err = pgx.BeginFunc(r.Context(), s.db, func(tx pgx.Tx) error {
			if err := s.upsertCategory(r.Context(), tx, p.Category); err != nil {
				return err
			}
			tag, err := tx.Exec(r.Context(), `UPDATE products SET name=$2, description=$3, price_minor=$4, currency=$5,
				category=$6, image_url=$7, stock=$8, updated_at=now() WHERE sku=$1`,
				p.SKU, p.Name, p.Description, p.PriceMinor, p.Currency, p.Category, p.ImageURL, p.Stock)
			if err == nil && tag.RowsAffected() == 0 {
				return errNotFound
			}
			return err
		})
		s.cache.invalidate()
	}
	auditAdmin(r, "product_update", p, err)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, p)
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request) {
	tag, err := s.db.Exec(r.Context(), `DELETE FROM products WHERE sku=$1`, r.PathValue("sku"))
	s.cache.invalidate()
	if err == nil && tag.RowsAffected() == 0 {
		err = errNotFound
	}
	auditAdmin(r, "product_delete", nil, err)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// auditAdmin records an admin change of the catalog as an audit record
// (platform.Audit): the admin's user id, the product's SKU, success or
// failure with the problem's code.
func auditAdmin(r *http.Request, action string, p *Product, err error) {
	actor, target := "unknown", r.PathValue("sku")
	if c, ok := platform.ClaimsFrom(r.Context()); ok {
		actor = c.Subject
	}
	if p != nil {
		target = p.SKU
	}
	if target == "" {
		target = "unknown"
	}
	if err == nil {
		platform.Audit(r.Context(), actor, action, target, "success")
		return
	}
	reason := "internal"
	var problem *platform.Problem
	if errors.As(err, &problem) {
		reason = problem.Code
	}
	platform.Audit(r.Context(), actor, action, target, "failure", "reason", reason)
}

// Item is one line of a reservation request.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// ReserveRequest is the body of POST /api/catalog/reservations.
type ReserveRequest struct {
	OrderID string `json:"order_id"`
	Items   []Item `json:"items"`
}

// Validate checks the request and merges repeated SKUs; items come back
// sorted by SKU so that concurrent reservations lock rows in one order.
func (req *ReserveRequest) Validate() error {
	var errs []platform.FieldError
	if req.OrderID == "" || len(req.OrderID) > 100 {
		errs = append(errs, platform.FieldError{Field: "order_id", Message: "must be 1 to 100 characters"})
	}
	if len(req.Items) == 0 || len(req.Items) > 50 {
		errs = append(errs, platform.FieldError{Field: "items", Message: "must hold 1 to 50 items"})
	}
	merged := map[string]int{}
	for i, it := range req.Items {
		if !skuRE.MatchString(it.SKU) {
			errs = append(errs, platform.FieldError{Field: fmt.Sprintf("items[%d].sku", i), Message: "is not a valid SKU"})
		}
		if it.Quantity < 1 || it.Quantity > 100 {
			errs = append(errs, platform.FieldError{Field: fmt.Sprintf("items[%d].quantity", i), Message: "must be 1 to 100"})
		}
		merged[it.SKU] += it.Quantity
	}
	if len(errs) > 0 {
		return platform.ValidationProblem(errs...)
	}
	req.Items = req.Items[:0]
	for sku, q := range merged {
		if q > 100 {
			return platform.ValidationProblem(platform.FieldError{Field: "items", Message: "at most 100 of one SKU"})
		}
		req.Items = append(req.Items, Item{SKU: sku, Quantity: q})
	}
	sort.Slice(req.Items, func(i, j int) bool { return req.Items[i].SKU < req.Items[j].SKU })
	return nil
}

// ReservedItem is a reserved line with the price at reservation time.
type ReservedItem struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
	Currency       string `json:"currency"`
}

// Reservation holds stock for an order until committed or released.
type Reservation struct {
	ID         string         `json:"id"`
	OrderID    string         `json:"order_id"`
	Status     string         `json:"status"`
	Items      []ReservedItem `json:"items"`
	TotalMinor int64          `json:"total_minor"`
	Currency   string         `json:"currency"`
	CreatedAt  time.Time      `json:"created_at"`
	userID     string
}

func (s *Service) reserve(w http.ResponseWriter, r *http.Request) {
	c, _ := platform.ClaimsFrom(r.Context())
	var req ReserveRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if err := req.Validate(); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	res, created, err := s.Reserve(r.Context(), c.Subject, req)
	if err != nil {
		var p *platform.Problem
		if errors.As(err, &p) && p.Code == "out_of_stock" {
			s.conflicts.Add(r.Context(), 1)
		}
		platform.WriteProblem(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.reserved.Add(r.Context(), 1, metric.WithAttributes(attribute.String("operation", "reserve")))
	}
	platform.WriteJSON(w, status, res)
}

// Reserve takes stock for every item in one transaction, or for none. A
// repeated order_id returns the existing reservation (created=false).
func (s *Service) Reserve(ctx context.Context, userID string, req ReserveRequest) (res *Reservation, created bool, err error) {
	if existing, err := s.reservationByOrder(ctx, req.OrderID); err == nil {
		if existing.userID != userID {
			return nil, false, platform.NewProblem(http.StatusConflict, "order_id_taken", "the order id belongs to another reservation")
		}
		return existing, false, nil
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, err
	}
	res = &Reservation{OrderID: req.OrderID, Status: "held"}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var short []platform.FieldError
		var unknown []string
		for i, it := range req.Items {
			var ri = ReservedItem{SKU: it.SKU, Quantity: it.Quantity}
			// Conditional decrement: takes the row lock, never goes below zero.
			err := tx.QueryRow(ctx, `UPDATE products SET stock = stock - $2, updated_at = now()
				WHERE sku = $1 AND stock >= $2 RETURNING name, price_minor, currency`, it.SKU, it.Quantity).
				Scan(&ri.Name, &ri.UnitPriceMinor, &ri.Currency)
			if errors.Is(err, pgx.ErrNoRows) {
				var left int
				if err := tx.QueryRow(ctx, `SELECT stock FROM products WHERE sku=$1`, it.SKU).Scan(&left); errors.Is(err, pgx.ErrNoRows) {
					unknown = append(unknown, it.SKU)
				} else if err != nil {
					return err
				} else {
					short = append(short, platform.FieldError{Field: fmt.Sprintf("items[%d].quantity", i), Message: fmt.Sprintf("only %d of %s left", left, it.SKU)})
				}
				continue
			} else if err != nil {
				return err
			}
			if res.Currency == "" {
				res.Currency = ri.Currency
			} else if res.Currency != ri.Currency {
				return platform.NewProblem(http.StatusUnprocessableEntity, "mixed_currency", "all items of an order must share one currency")
			}
			res.Items = append(res.Items, ri)
			res.TotalMinor += ri.UnitPriceMinor * int64(ri.Quantity)
		}
		if len(unknown) > 0 {
			return platform.NewProblem(http.StatusNotFound, "unknown_sku", "no such product: "+strings.Join(unknown, ", "))
		}
		if len(short) > 0 {
			p := platform.NewProblem(http.StatusConflict, "out_of_stock", "not enough stock")
			p.Errors = short
			return p
		}
		if err := tx.QueryRow(ctx, `INSERT INTO reservations (order_id, user_id, status, total_minor, currency)
			VALUES ($1, $2, 'held', $3, $4) RETURNING id::text, created_at`, req.OrderID, userID, res.TotalMinor, res.Currency).
			Scan(&res.ID, &res.CreatedAt); err != nil {
			return err
		}
		for _, it := range res.Items {
			if _, err := tx.Exec(ctx, `INSERT INTO reservation_items (reservation_id, sku, name, quantity, unit_price_minor, currency)
				VALUES ($1, $2, $3, $4, $5, $6)`, res.ID, it.SKU, it.Name, it.Quantity, it.UnitPriceMinor, it.Currency); err != nil {
				return err
			}
		}
		return nil
	})
	s.cache.invalidate() // stock shown on listings changed
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		// The same order reserved concurrently: the other transaction won.
		return s.Reserve(ctx, userID, req)
	}
	if err != nil {
		return nil, false, err
	}
	return res, true, nil
}

func (s *Service) loadReservation(ctx context.Context, q pgx.Tx, where string, arg any) (*Reservation, error) {
	var row pgx.Row
	const cols = `SELECT id::text, order_id, user_id, status, total_minor, currency, created_at FROM reservations WHERE `
	if q != nil {
		row = q.QueryRow(ctx, cols+where+" FOR UPDATE", arg)
	} else {
		row = s.db.QueryRow(ctx, cols+where, arg)
	}
	var res Reservation
	if err := row.Scan(&res.ID, &res.OrderID, &res.userID, &res.Status, &res.TotalMinor, &res.Currency, &res.CreatedAt); err != nil {
		return nil, err
	}
	var rows pgx.Rows
	var err error
	const icols = `SELECT sku, name, quantity, unit_price_minor, currency FROM reservation_items WHERE reservation_id=$1 ORDER BY sku`
	if q != nil {
		rows, err = q.Query(ctx, icols, res.ID)
	} else {
		rows, err = s.db.Query(ctx, icols, res.ID)
	}
	if err != nil {
		return nil, err
	}
	res.Items, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ReservedItem])
	return &res, err
}

func (s *Service) reservationByOrder(ctx context.Context, orderID string) (*Reservation, error) {
	return s.loadReservation(ctx, nil, "order_id=$1", orderID)
}

var errNoReservation = platform.NewProblem(http.StatusNotFound, "not_found", "no such reservation")

// owned loads a reservation the caller may see (owner or admin).
func owned(c *platform.Claims, res *Reservation, err error) (*Reservation, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoReservation
	}
	if err != nil {
		return nil, err
	}
	if res.userID != c.Subject && c.Role != platform.RoleAdmin {
		return nil, errNoReservation
	}
	return res, nil
}

func (s *Service) getReservation(w http.ResponseWriter, r *http.Request) {
	c, _ := platform.ClaimsFrom(r.Context())
	res, err := s.loadReservation(r.Context(), nil, "id::text=$1", r.PathValue("id"))
	if res, err = owned(c, res, err); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, res)
}

// transition moves a held reservation to status "to"; released returns the stock.
func (s *Service) transition(w http.ResponseWriter, r *http.Request, to string) {
	c, _ := platform.ClaimsFrom(r.Context())
	var out *Reservation
	changed := false
	err := pgx.BeginFunc(r.Context(), s.db, func(tx pgx.Tx) error {
		res, err := s.loadReservation(r.Context(), tx, "id::text=$1", r.PathValue("id"))
		if res, err = owned(c, res, err); err != nil {
			return err
		}
		out = res
		switch res.Status {
		case to:
			return nil // idempotent
		case "held":
		default:
			return platform.NewProblem(http.StatusConflict, "reservation_"+res.Status, "the reservation is already "+res.Status)
		}
		if to == "released" {
			for _, it := range res.Items {
				if _, err := tx.Exec(r.Context(), `UPDATE products SET stock = stock + $2, updated_at = now() WHERE sku=$1`, it.SKU, it.Quantity); err != nil {
					return err
				}
			}
		}
		if _, err := tx.Exec(r.Context(), `UPDATE reservations SET status=$2, updated_at=now() WHERE id::text=$1`, res.ID, to); err != nil {
			return err
		}
		res.Status, changed = to, true
		return nil
	})
	if changed && to == "released" {
		s.cache.invalidate()
	}
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if changed {
		op := map[string]string{"released": "release", "committed": "commit"}[to]
		s.reserved.Add(r.Context(), 1, metric.WithAttributes(attribute.String("operation", op)))
	}
	platform.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) release(w http.ResponseWriter, r *http.Request) { s.transition(w, r, "released") }
func (s *Service) commit(w http.ResponseWriter, r *http.Request)  { s.transition(w, r, "committed") }

// HoldTTL is how long a held reservation lives before SweepExpired releases
// it (an orders replica died mid-checkout).
const HoldTTL = 15 * time.Minute

// SweepExpired releases held reservations older than ttl and returns their stock.
func (s *Service) SweepExpired(ctx context.Context, ttl time.Duration) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE reservations SET status='released', updated_at=now()
			WHERE status='held' AND created_at < now() - $1::interval RETURNING id`, ttl.String())
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE products p SET stock = p.stock + i.q, updated_at = now()
			FROM (SELECT sku, sum(quantity) AS q FROM reservation_items WHERE reservation_id::text = ANY($1) GROUP BY sku) i
			WHERE p.sku = i.sku`, ids)
		return err
	})
	if n > 0 {
		s.cache.invalidate()
		s.reserved.Add(ctx, int64(n), metric.WithAttributes(attribute.String("operation", "expire")))
	}
	return n, err
}

// Run is `shopd catalog`.
func Run(ctx context.Context, cfg platform.Config) error {
	tel, err := platform.SetupTelemetry(ctx, cfg, nil)
	if err != nil {
		return err
	}
	if cfg.AuthJWKSURL == "" {
		return errors.New("catalog needs AUTH_URL or AUTH_JWKS_URL to verify tokens")
	}
	db, err := platform.OpenDB(ctx, cfg.DatabaseURL, "catalog", Migrations())
	if err != nil {
		return err
	}
	defer db.Close()
	svc := New(db, platform.NewVerifier(cfg.AuthJWKSURL, cfg.AuthIssuer, cfg.AuthAudience))
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n, err := svc.SweepExpired(ctx, HoldTTL); err != nil && ctx.Err() == nil {
				slog.Warn("releasing expired reservations", "err", err)
			} else if n > 0 {
				slog.Info("released expired reservations", "count", n)
			}
		}
	}()
	return platform.Serve(ctx, cfg, tel, svc.Routes(), platform.PingCheck(db))
}
