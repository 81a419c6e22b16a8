// Package orders runs the checkout saga (reserve stock, charge, confirm;
// compensate on any failure) and serves order history.
package orders

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the embedded schema migrations.
func Migrations() fs.FS { f, _ := fs.Sub(migrationFiles, "migrations"); return f }

// Options configure the peers.
type Options struct {
	CatalogURL, PaymentURL string
	// Client calls the peers; NewHTTPClient(10s) when nil. It must wait
	// longer than payment's provider timeout.
	Client *http.Client
	// PaymentClient calls payment; Client when nil.
	PaymentClient *http.Client
	// StaleAfter is when a pending order is considered abandoned (default 15m).
	StaleAfter time.Duration
}

// Service is the orders HTTP API.
type Service struct {
	db       *pgxpool.Pool
	verify   *platform.Verifier
	opts     Options
	placed   metric.Int64Counter
	value    metric.Int64Histogram
	outcomes metric.Int64Counter
}

// New builds the service.
func New(db *pgxpool.Pool, verify *platform.Verifier, opts Options) *Service {
	if opts.Client == nil {
		opts.Client = platform.NewHTTPClient(10 * time.Second)
	}
	if opts.PaymentClient == nil {
		opts.PaymentClient = opts.Client
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 15 * time.Minute
	}
	m := otel.Meter("github.com/shopplatform/shop-operator/services/orders")
	placed, _ := m.Int64Counter("shop.orders.placed", metric.WithDescription("Orders confirmed."), metric.WithUnit("{order}"))
	value, _ := m.Int64Histogram("shop.order.value", metric.WithDescription("Value of confirmed orders in minor currency units."),
		metric.WithExplicitBucketBoundaries(500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000))
	outcomes, _ := m.Int64Counter("shop.checkouts", metric.WithDescription("Checkouts by outcome (confirmed or the failure code)."), metric.WithUnit("{checkout}"))
	return &Service{db: db, verify: verify, opts: opts, placed: placed, value: value, outcomes: outcomes}
}

// Routes returns the API mux.
func (s *Service) Routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /api/orders/checkout", platform.RequireAudited(s.verify, s.checkout))
	m.HandleFunc("GET /api/orders", platform.RequireAudited(s.verify, s.list))
	m.HandleFunc("GET /api/orders/{id}", platform.RequireAudited(s.verify, s.get))
	m.HandleFunc("/", platform.NotFound)
	return m
}

// Item is a requested line.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Card is passed through to payment and never stored (last four only).
type Card struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
	Name     string `json:"name,omitempty"`
}

// CheckoutRequest is the body of POST /api/orders/checkout.
type CheckoutRequest struct {
	Items []Item `json:"items"`
	Card  Card   `json:"card"`
}

// Validate checks the shape; the catalog and payment check the rest.
func (r *CheckoutRequest) Validate() error {
	var errs []platform.FieldError
	bad := func(f, m string) { errs = append(errs, platform.FieldError{Field: f, Message: m}) }
	if len(r.Items) == 0 || len(r.Items) > 50 {
		bad("items", "must hold 1 to 50 items")
	}
	for i, it := range r.Items {
		if it.SKU == "" || len(it.SKU) > 64 {
			bad(fmt.Sprintf("items[%d].sku", i), "is required")
		}
		if it.Quantity < 1 || it.Quantity > 100 {
			bad(fmt.Sprintf("items[%d].quantity", i), "must be 1 to 100")
		}
	}
	r.Card.Number = strings.NewReplacer(" ", "", "-", "").Replace(r.Card.Number)
	if n := len(r.Card.Number); n < 12 || n > 19 || strings.Trim(r.Card.Number, "0123456789") != "" {
		bad("card.number", "must be 12 to 19 digits")
	}
	if r.Card.ExpMonth < 1 || r.Card.ExpMonth > 12 {
		bad("card.exp_month", "must be 1 to 12")
	}
	if r.Card.ExpYear < 2000 || r.Card.ExpYear > 2100 {
		bad("card.exp_year", "must be a four-digit year")
	}
	if l := len(r.Card.CVC); l < 3 || l > 4 || strings.Trim(r.Card.CVC, "0123456789") != "" {
		bad("card.cvc", "must be 3 or 4 digits")
	}
	if len(errs) > 0 {
		return platform.ValidationProblem(errs...)
	}
	return nil
}

func (r *CheckoutRequest) hash() string {
	items := append([]Item(nil), r.Items...)
	sort.Slice(items, func(i, j int) bool { return items[i].SKU < items[j].SKU })
	b, _ := json.Marshal(items)
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%d|%d", b, last4(r.Card.Number), r.Card.ExpMonth, r.Card.ExpYear)
	return hex.EncodeToString(h.Sum(nil))
}

func last4(n string) string {
	if len(n) < 4 {
		return n
	}
	return n[len(n)-4:]
}

// OrderItem is a priced line of an order.
type OrderItem struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
	Currency       string `json:"currency"`
}

// Order is the public view of an order.
type Order struct {
	ID            string      `json:"id"`
	Status        string      `json:"status"`
	Items         []OrderItem `json:"items"`
	TotalMinor    int64       `json:"total_minor"`
	Currency      string      `json:"currency"`
	CardLast4     string      `json:"card_last4"`
	PaymentID     string      `json:"payment_id"`
	FailureReason string      `json:"failure_reason"`
	CreatedAt     time.Time   `json:"created_at"`

	userID, sagaStep, requestHash, reservationID string
	failure                                      *platform.Problem
}

const orderCols = `id::text, user_id, status, saga_step, request_hash, items, total_minor, currency, card_last4,
	reservation_id, payment_id, failure_status, failure_code, failure_detail, created_at`

func scanOrder(row pgx.Row) (*Order, error) {
	var o Order
	var items []byte
	var fs int
	var fc, fd string
	err := row.Scan(&o.ID, &o.userID, &o.Status, &o.sagaStep, &o.requestHash, &items, &o.TotalMinor, &o.Currency, &o.CardLast4,
		&o.reservationID, &o.PaymentID, &fs, &fc, &fd, &o.CreatedAt)
	if err != nil {
		return nil, err
	}
	_ = json.Unmarshal(items, &o.Items)
	if o.Items == nil {
		o.Items = []OrderItem{}
	}
	if o.Status == "failed" {
		o.FailureReason = fc
		o.failure = platform.NewProblem(fs, fc, fd)
	}
	return &o, nil
}

var errNoOrder = platform.NewProblem(http.StatusNotFound, "not_found", "no such order")

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	c, _ := platform.ClaimsFrom(r.Context())
	rows, err := s.db.Query(r.Context(), `SELECT `+orderCols+` FROM orders WHERE user_id=$1 ORDER BY created_at DESC LIMIT 100`, c.Subject)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Order, error) { return scanOrder(row) })
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if list == nil {
		list = []*Order{}
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"orders": list})
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	c, _ := platform.ClaimsFrom(r.Context())
	o, err := scanOrder(s.db.QueryRow(r.Context(), `SELECT `+orderCols+` FROM orders WHERE id::text=$1`, r.PathValue("id")))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && o.userID != c.Subject && c.Role != platform.RoleAdmin) {
		err = errNoOrder
	}
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, o)
}

func (s *Service) checkout(w http.ResponseWriter, r *http.Request) {
	c, _ := platform.ClaimsFrom(r.Context())
	key := r.Header.Get("Idempotency-Key")
	if key == "" || len(key) > 200 {
		platform.WriteProblem(w, r, platform.ValidationProblem(platform.FieldError{Field: "Idempotency-Key", Message: "header must be 1 to 200 characters"}))
		return
	}
	var req CheckoutRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if err := req.Validate(); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	// Claim the key: one order row per (user, key).
	id := uuid.NewString()
	requested, _ := json.Marshal(req.Items)
	tag, err := s.db.Exec(r.Context(), `INSERT INTO orders (id, user_id, idempotency_key, request_hash, status, saga_step, requested, card_last4)
		VALUES ($1, $2, $3, $4, 'pending', 'created', $5, $6) ON CONFLICT (user_id, idempotency_key) DO NOTHING`,
		id, c.Subject, key, req.hash(), requested, last4(req.Card.Number))
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if tag.RowsAffected() == 0 {
		s.replay(w, r, c.Subject, key, req.hash())
		return
	}
	// The saga continues even if the client hangs up; each call is bounded by the client timeout.
	ctx := context.WithoutCancel(r.Context())
	o, perr := s.runSaga(ctx, id, &req)
	outcome := "confirmed"
	if perr != nil {
		outcome = perr.Code
	}
	s.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
	if perr != nil {
		slog.InfoContext(ctx, "checkout failed", "order_id", id, "code", perr.Code, "detail", perr.Detail)
		platform.WriteProblem(w, r, perr)
		return
	}
	s.placed.Add(ctx, 1, metric.WithAttributes(attribute.String("currency", o.Currency)))
	s.value.Record(ctx, o.TotalMinor, metric.WithAttributes(attribute.String("currency", o.Currency)))
	slog.InfoContext(ctx, "order confirmed", "order_id", id, "total_minor", o.TotalMinor, "currency", o.Currency)
	platform.WriteJSON(w, http.StatusCreated, o)
}

func (s *Service) replay(w http.ResponseWriter, r *http.Request, user, key, hash string) {
	o, err := scanOrder(s.db.QueryRow(r.Context(), `SELECT `+orderCols+` FROM orders WHERE user_id=$1 AND idempotency_key=$2`, user, key))
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	switch {
	case o.requestHash != hash:
		platform.WriteProblem(w, r, platform.NewProblem(http.StatusConflict, "idempotency_key_reused", "this Idempotency-Key was used for a different checkout"))
	case o.Status == "pending":
		platform.WriteProblem(w, r, platform.NewProblem(http.StatusConflict, "checkout_in_progress", "this checkout is still being processed"))
	case o.Status == "failed":
		w.Header().Set("Idempotent-Replayed", "true")
		platform.WriteProblem(w, r, o.failure)
	default:
		w.Header().Set("Idempotent-Replayed", "true")
		platform.WriteJSON(w, http.StatusOK, o)
	}
}

// step records saga progress; fields are column=value pairs.
func (s *Service) step(ctx context.Context, id, step string, set map[string]any) error {
	cols := []string{"saga_step = $2", "updated_at = now()"}
	args := []any{id, step}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, set[k])
		cols = append(cols, fmt.Sprintf("%s = $%d", k, len(args)))
	}
	_, err := s.db.Exec(ctx, `UPDATE orders SET `+strings.Join(cols, ", ")+` WHERE id = $1`, args...)
	return err
}

type reservation struct {
	ID         string      `json:"id"`
	Status     string      `json:"status"`
	Items      []OrderItem `json:"items"`
	TotalMinor int64       `json:"total_minor"`
	Currency   string      `json:"currency"`
}

type charge struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	CardLast4 string `json:"card_last4"`
}

// unknownOutcome reports whether a peer call may or may not have taken effect.
func unknownOutcome(err error) bool {
	var p *platform.Problem
	if !errors.As(err, &p) {
		return true // no answer at all
	}
	if p.Code == "request_in_progress" {
		return true // payment is still working on the first attempt
	}
	return p.Status >= 500 && p.Code != "provider_timeout" && p.Code != "provider_unavailable"
}

func asProblem(err error, unavailable string) *platform.Problem {
	var p *platform.Problem
	if errors.As(err, &p) && (p.Status < 500 || p.Code == "provider_timeout" || p.Code == "provider_unavailable") {
		return platform.NewProblem(p.Status, p.Code, p.Detail)
	}
	return platform.NewProblem(http.StatusServiceUnavailable, unavailable, "a service needed for checkout is unavailable; nothing was charged")
}

// runSaga drives one checkout to confirmed or to failed-and-compensated.
func (s *Service) runSaga(ctx context.Context, id string, req *CheckoutRequest) (*Order, *platform.Problem) {
	cat, pay := s.opts.CatalogURL, s.opts.PaymentURL
	// 1. Reserve stock (idempotent by order id, so a retry cannot reserve twice).
	var res reservation
	reserveBody := map[string]any{"order_id": id, "items": req.Items}
	err := s.call(ctx, "POST", cat+"/api/catalog/reservations", nil, reserveBody, &res)
	if err != nil && unknownOutcome(err) {
		err = s.call(ctx, "POST", cat+"/api/catalog/reservations", nil, reserveBody, &res)
	}
	if err != nil {
		p := asProblem(err, "catalog_unavailable")
		if unknownOutcome(err) {
			p.Detail = "the catalog is unavailable; nothing was charged"
		}
		return nil, s.fail(ctx, id, p)
	}
	items, _ := json.Marshal(res.Items)
	if err := s.step(ctx, id, "reserved", map[string]any{"reservation_id": res.ID, "items": items, "total_minor": res.TotalMinor, "currency": res.Currency}); err != nil {
		s.compensate(ctx, id, res.ID, "")
		return nil, s.fail(ctx, id, platform.NewProblem(http.StatusInternalServerError, "internal", ""))
	}

	// 2. Charge. The key makes a repeated charge return the first outcome.
	hdr := http.Header{"Idempotency-Key": {"order-" + id}}
	chargeBody := map[string]any{"amount_minor": res.TotalMinor, "currency": res.Currency, "order_id": id, "card": req.Card}
	var ch charge
	err = s.call(ctx, "POST", pay+"/api/payments/charges", hdr, chargeBody, &ch)
	for i := 1; i < 3 && err != nil && unknownOutcome(err); i++ {
		// The answer was lost: ask again with the same key to learn the outcome.
		time.Sleep(time.Duration(200*i) * time.Millisecond)
		err = s.call(ctx, "POST", pay+"/api/payments/charges", hdr, chargeBody, &ch)
	}
	if err != nil {
		if unknownOutcome(err) {
			slog.ErrorContext(ctx, "charge outcome unknown; compensating; reconcile payment by idempotency key", "order_id", id, "idempotency_key", "order-"+id)
		}
		s.compensate(ctx, id, res.ID, "")
		p := asProblem(err, "payment_unavailable")
		return nil, s.fail(ctx, id, p)
	}
	if err := s.step(ctx, id, "charged", map[string]any{"payment_id": ch.ID, "card_last4": ch.CardLast4}); err != nil {
		s.compensate(ctx, id, res.ID, ch.ID)
		return nil, s.fail(ctx, id, platform.NewProblem(http.StatusInternalServerError, "internal", ""))
	}

	// 3. Commit the reservation (idempotent), then confirm.
	if err := s.retry(ctx, "POST", cat+"/api/catalog/reservations/"+res.ID+"/commit"); err != nil {
		s.compensate(ctx, id, res.ID, ch.ID)
		return nil, s.fail(ctx, id, asProblem(err, "catalog_unavailable"))
	}
	var o *Order
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE orders SET status='confirmed', saga_step='done', updated_at=now() WHERE id=$1`, id); err != nil {
			return err
		}
		var err error
		o, err = scanOrder(tx.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE id=$1`, id))
		return err
	})
	if err != nil {
		slog.ErrorContext(ctx, "confirming order failed after payment", "order_id", id, "err", err)
		return nil, platform.NewProblem(http.StatusInternalServerError, "internal", "")
	}
	return o, nil
}

// compensate undoes what the saga did: refund a charge, release stock.
// Both calls are idempotent and retried; what still fails is logged for
// reconciliation (the catalog also releases holds that outlive their TTL).
func (s *Service) compensate(ctx context.Context, id, reservationID, paymentID string) {
	_ = s.step(ctx, id, "compensating", nil)
	if paymentID != "" {
		err := s.retryWith(ctx, "POST", s.opts.PaymentURL+"/api/payments/charges/"+paymentID+"/refunds", http.Header{"Idempotency-Key": {"refund-order-" + id}})
		if err != nil {
			slog.ErrorContext(ctx, "compensation: refund failed; reconcile", "order_id", id, "payment_id", paymentID, "err", err)
		}
	}
	if reservationID != "" {
		if err := s.retry(ctx, "POST", s.opts.CatalogURL+"/api/catalog/reservations/"+reservationID+"/release"); err != nil {
			slog.ErrorContext(ctx, "compensation: release failed; the catalog's hold TTL will release it", "order_id", id, "reservation_id", reservationID, "err", err)
		}
	}
}

func (s *Service) fail(ctx context.Context, id string, p *platform.Problem) *platform.Problem {
	if _, err := s.db.Exec(ctx, `UPDATE orders SET status='failed', saga_step='done', failure_status=$2, failure_code=$3, failure_detail=$4,
		updated_at=now() WHERE id=$1`, id, p.Status, p.Code, p.Detail); err != nil {
		slog.ErrorContext(ctx, "recording failed order", "order_id", id, "err", err)
	}
	return p
}

// paymentUserHeader names the caller (the verified token's subject) on
// every call to payment: the mesh routes by it, so one user's charge, its
// retry and its refund reach the same payment pod and its in-memory ledger.
// Payment refuses a value other than the token's subject. The same name as
// payment.UserHeader (the services share only the platform package).
const paymentUserHeader = "X-Shop-User"

func (s *Service) call(ctx context.Context, method, url string, hdr http.Header, in, out any) error {
	c := s.opts.Client
	if strings.HasPrefix(url, s.opts.PaymentURL+"/") {
		c = s.opts.PaymentClient
		if claims, ok := platform.ClaimsFrom(ctx); ok {
			hdr = hdr.Clone()
			if hdr == nil {
				hdr = http.Header{}
			}
			hdr.Set(paymentUserHeader, claims.Subject)
		}
	}
	return platform.CallJSON(ctx, c, method, url, hdr, in, out)
}

func (s *Service) retry(ctx context.Context, method, url string) error {
	return s.retryWith(ctx, method, url, nil)
}

// retryWith tries an idempotent call up to three times on unknown outcomes.
func (s *Service) retryWith(ctx context.Context, method, url string, hdr http.Header) error {
	var err error
	for i := 0; i < 3; i++ {
		if err = s.call(ctx, method, url, hdr, nil, nil); err == nil || !unknownOutcome(err) {
			return err
		}
		time.Sleep(time.Duration(100*(i+1)) * time.Millisecond)
	}
	return err
}

// FailStale marks orders pending longer than StaleAfter (a crash mid-saga)
// as failed and logs what must be reconciled. Without the user's token the
// steps cannot be undone from here; the catalog's hold TTL returns the stock.
func (s *Service) FailStale(ctx context.Context) (int, error) {
	rows, err := s.db.Query(ctx, `UPDATE orders SET status='failed', saga_step='abandoned', failure_status=503,
		failure_code='checkout_abandoned', failure_detail='the checkout was interrupted', updated_at=now()
		WHERE status='pending' AND updated_at < now() - $1::interval RETURNING id::text, reservation_id, payment_id`, s.opts.StaleAfter.String())
	if err != nil {
		return 0, err
	}
	n := 0
	for rows.Next() {
		var id, res, pay string
		if err := rows.Scan(&id, &res, &pay); err != nil {
			return n, err
		}
		n++
		slog.ErrorContext(ctx, "abandoned checkout marked failed; reconcile", "order_id", id, "reservation_id", res, "payment_id", pay, "idempotency_key", "order-"+id)
	}
	return n, rows.Err()
}

// Run is `shopd orders`.
func Run(ctx context.Context, cfg platform.Config) error {
	tel, err := platform.SetupTelemetry(ctx, cfg, nil)
	if err != nil {
		return err
	}
	if cfg.CatalogURL == "" || cfg.PaymentURL == "" || cfg.AuthJWKSURL == "" {
		return errors.New("orders needs CATALOG_URL, PAYMENT_URL and AUTH_URL (or AUTH_JWKS_URL)")
	}
	db, err := platform.OpenDB(ctx, cfg.DatabaseURL, "orders", Migrations())
	if err != nil {
		return err
	}
	defer db.Close()
	svc := New(db, platform.NewVerifier(cfg.AuthJWKSURL, cfg.AuthIssuer, cfg.AuthAudience), Options{CatalogURL: cfg.CatalogURL, PaymentURL: cfg.PaymentURL})
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			if _, err := svc.FailStale(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("failing stale orders", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	peer := func(name, base string) platform.Check {
		hc := platform.NewHTTPClient(2 * time.Second)
		return platform.Check{Name: name, Func: func(ctx context.Context) error {
			// Any HTTP answer means the peer is up; a 404 problem for "/" is fine.
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/", nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				return fmt.Errorf("%s answered %d", name, resp.StatusCode)
			}
			return nil
		}}
	}
	return platform.Serve(ctx, cfg, tel, svc.Routes(), platform.PingCheck(db), peer("catalog", cfg.CatalogURL), peer("payment", cfg.PaymentURL))
}
