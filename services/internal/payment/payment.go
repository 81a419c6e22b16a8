// Package payment charges and refunds cards through a simulated provider,
// with idempotency keys so that a retried charge never charges twice.
package payment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the embedded schema migrations.
func Migrations() fs.FS { f, _ := fs.Sub(migrationFiles, "migrations"); return f }

// Options configure the simulated provider.
type Options struct {
	// ProviderTimeout bounds a provider call; the timeout test card waits this long.
	ProviderTimeout time.Duration
	// FaultLatency is added to every charge (PAYMENT_FAULT_LATENCY).
	FaultLatency time.Duration
	// FaultErrorRatio of charges fail with 503 provider_unavailable (PAYMENT_FAULT_ERROR_RATIO).
	FaultErrorRatio float64
}

// Service is the payment HTTP API.
type Service struct {
	ledger   Ledger
	verify   *platform.Verifier
	opts     Options
	now      func() time.Time
	outcomes metric.Int64Counter
	refunds  metric.Int64Counter
	tracer   trace.Tracer
}

// New builds the service; db may be nil (in-memory ledger).
func New(db *pgxpool.Pool, verify *platform.Verifier, opts Options) *Service {
	var l Ledger = newMemLedger()
	if db != nil {
		l = &pgLedger{db}
	}
	if opts.ProviderTimeout <= 0 {
		opts.ProviderTimeout = 3 * time.Second
	}
	m := otel.Meter("github.com/shopplatform/shop-operator/services/payment")
	outcomes, _ := m.Int64Counter("shop.payments", metric.WithDescription("Charges by outcome (succeeded, card_declined, insufficient_funds, provider_timeout, provider_unavailable)."), metric.WithUnit("{charge}"))
	refunds, _ := m.Int64Counter("shop.payment.refunds", metric.WithDescription("Refunds made."), metric.WithUnit("{refund}"))
	return &Service{ledger: l, verify: verify, opts: opts, now: time.Now, outcomes: outcomes, refunds: refunds,
		tracer: otel.Tracer("github.com/shopplatform/shop-operator/services/payment")}
}

// Routes returns the API mux.
func (s *Service) Routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /api/payments/charges", platform.RequireAudited(s.verify, routedAsCaller(s.charge)))
	m.HandleFunc("GET /api/payments/charges/{id}", platform.RequireAudited(s.verify, routedAsCaller(s.getCharge)))
	m.HandleFunc("POST /api/payments/charges/{id}/refunds", platform.RequireAudited(s.verify, routedAsCaller(s.refund)))
	m.HandleFunc("/", platform.NotFound)
	return m
}

// UserHeader carries the caller's user ID (the token's subject) so that the
// mesh sends every request of one user to one payment pod: the in-memory
// ledger is per pod, and a charge, its retry and its refund must meet the
// same one. Orders sets it; the payment DestinationRule hashes on it
// (internal/builders/mesh). Orders keeps its own copy of the name: the
// services share nothing but the platform package.
const UserHeader = "X-Shop-User"

var errUserHeader = platform.NewProblem(http.StatusBadRequest, "user_header_mismatch",
	"the "+UserHeader+" header must be the token's subject")

// routedAsCaller refuses a request whose UserHeader names someone other
// than its verified token's subject, so that the routing key cannot steer a
// request to another user's pod. A request without the header is served
// (direct callers, one replica).
func routedAsCaller(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v, ok := r.Header[http.CanonicalHeaderKey(UserHeader)]; ok {
			c, _ := platform.ClaimsFrom(r.Context())
			if len(v) != 1 || v[0] != c.Subject {
				platform.WriteProblem(w, r, errUserHeader)
				return
			}
		}
		next(w, r)
	}
}

// Card is the card in a charge request. It is never stored or logged.
type Card struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
	Name     string `json:"name,omitempty"`
}

// ChargeRequest is the body of POST /api/payments/charges.
type ChargeRequest struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	OrderID     string `json:"order_id"`
	Description string `json:"description,omitempty"`
	Card        Card   `json:"card"`
}

// Charge is a charge as answered and stored.
type Charge struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	FailureCode   string    `json:"failure_code,omitempty"`
	AmountMinor   int64     `json:"amount_minor"`
	RefundedMinor int64     `json:"refunded_minor"`
	Currency      string    `json:"currency"`
	OrderID       string    `json:"order_id"`
	CardLast4     string    `json:"card_last4"`
	CardBrand     string    `json:"card_brand"`
	CreatedAt     time.Time `json:"created_at"`
	userID        string
}

// Refund is a refund of (part of) a charge.
type Refund struct {
	ID          string    `json:"id"`
	ChargeID    string    `json:"charge_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
}

// Test cards (docs/services.md).
const (
	CardSuccess      = "4242424242424242"
	CardDeclined     = "4000000000000002"
	CardInsufficient = "4000000000009995"
	CardTimeout      = "4000000000000119"
)

// NormalizeCardNumber strips spaces and dashes.
func NormalizeCardNumber(s string) string {
	return strings.NewReplacer(" ", "", "-", "").Replace(s)
}

// Luhn reports whether the digits pass the Luhn check.
func Luhn(num string) bool {
	sum := 0
	for i := 0; i < len(num); i++ {
		d := int(num[len(num)-1-i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return len(num) > 0 && sum%10 == 0
}

func brand(num string) string {
	switch {
	case strings.HasPrefix(num, "4"):
		return "visa"
	case len(num) >= 2 && num[0] == '5' && num[1] >= '1' && num[1] <= '5', len(num) >= 2 && num[0] == '2' && num[1] >= '2' && num[1] <= '7':
		return "mastercard"
	case strings.HasPrefix(num, "34"), strings.HasPrefix(num, "37"):
		return "amex"
	}
	return "unknown"
}

// Validate checks the request against now and normalises the card number.
func (r *ChargeRequest) Validate(now time.Time) error {
	var errs []platform.FieldError
	bad := func(f, m string) { errs = append(errs, platform.FieldError{Field: f, Message: m}) }
	if r.AmountMinor <= 0 || r.AmountMinor > 100_000_000_00 {
		bad("amount_minor", "must be 1 to 10000000000")
	}
	if !platform.ValidCurrency(r.Currency) {
		bad("currency", "must be three upper-case letters, e.g. EUR")
	}
	if len(r.OrderID) > 100 || len(r.Description) > 500 {
		bad("order_id", "must be at most 100 characters")
	}
	r.Card.Number = NormalizeCardNumber(r.Card.Number)
	if n := len(r.Card.Number); n < 12 || n > 19 || !Luhn(r.Card.Number) {
		bad("card.number", "is not a valid card number")
	}
	if r.Card.ExpMonth < 1 || r.Card.ExpMonth > 12 {
		bad("card.exp_month", "must be 1 to 12")
	}
	if r.Card.ExpYear < 2000 || r.Card.ExpYear > 2100 {
		bad("card.exp_year", "must be a four-digit year")
	} else if r.Card.ExpMonth >= 1 && r.Card.ExpMonth <= 12 {
		// A card is valid through the last day of its expiry month.
		end := time.Date(r.Card.ExpYear, time.Month(r.Card.ExpMonth)+1, 1, 0, 0, 0, 0, time.UTC)
		if !now.Before(end) {
			bad("card.exp_year", "the card has expired")
		}
	}
	if l := len(r.Card.CVC); l < 3 || l > 4 || strings.Trim(r.Card.CVC, "0123456789") != "" {
		bad("card.cvc", "must be 3 or 4 digits")
	}
	if len(r.Card.Name) > 200 {
		bad("card.name", "must be at most 200 characters")
	}
	if len(errs) > 0 {
		return platform.ValidationProblem(errs...)
	}
	return nil
}

// fingerprint identifies a request for idempotency without the card number.
func (r *ChargeRequest) fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%s|%s|%s|%s|%d|%d", r.AmountMinor, r.Currency, r.OrderID, r.Description, last4(r.Card.Number), r.Card.ExpMonth, r.Card.ExpYear)
	return hex.EncodeToString(h.Sum(nil))
}

func last4(n string) string {
	if len(n) < 4 {
		return n
	}
	return n[len(n)-4:]
}

// idempotencyKey reads and checks the header.
func idempotencyKey(r *http.Request, required bool) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" && !required {
		return "", nil
	}
	if k == "" || len(k) > 200 {
		return "", platform.ValidationProblem(platform.FieldError{Field: "Idempotency-Key", Message: "header must be 1 to 200 characters"})
	}
	return k, nil
}

var (
	errDeclined     = platform.NewProblem(http.StatusPaymentRequired, "card_declined", "the card was declined")
	errInsufficient = platform.NewProblem(http.StatusPaymentRequired, "insufficient_funds", "the card was declined: insufficient funds")
	errTimeout      = platform.NewProblem(http.StatusGatewayTimeout, "provider_timeout", "the payment provider did not answer in time; nothing was charged")
	errUnavailable  = platform.NewProblem(http.StatusServiceUnavailable, "provider_unavailable", "the payment provider is unavailable; nothing was charged")
)

// provider simulates the card network.
func (s *Service) provider(ctx context.Context, card string) error {
	ctx, span := s.tracer.Start(ctx, "provider.authorize", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.opts.ProviderTimeout)
	defer cancel()
	if s.opts.FaultLatency > 0 {
		select {
		case <-time.After(s.opts.FaultLatency):
		case <-ctx.Done():
			return errTimeout
		}
	}
	if s.opts.FaultErrorRatio > 0 {
		n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
		if float64(n.Int64()) < s.opts.FaultErrorRatio*1_000_000 {
			span.SetAttributes(attribute.Bool("fault.injected", true))
			return errUnavailable
		}
	}
	switch card {
	case CardDeclined:
		return errDeclined
	case CardInsufficient:
		return errInsufficient
	case CardTimeout:
		<-ctx.Done() // the provider never answers
		return errTimeout
	}
	return nil
}

func (s *Service) charge(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, _ := platform.ClaimsFrom(ctx)
	key, err := idempotencyKey(r, true)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	var req ChargeRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if err := req.Validate(s.now()); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	stored, err := s.ledger.BeginKey(ctx, c.Subject, "charge:"+key, req.fingerprint())
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if stored != nil {
		replay(w, stored)
		return
	}
	perr := s.provider(ctx, req.Card.Number)
	outcome := "succeeded"
	var p *platform.Problem
	if errors.As(perr, &p) {
		outcome = p.Code
	}
	s.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome), attribute.String("currency", req.Currency)))
	if errors.Is(perr, errUnavailable) {
		// Transient: forget the key so that a retry is tried for real.
		_ = s.ledger.AbandonKey(context.WithoutCancel(ctx), c.Subject, "charge:"+key)
		slog.WarnContext(ctx, "charge failed", "outcome", outcome, "order_id", req.OrderID)
		platform.WriteProblem(w, r, perr)
		return
	}
	ch := &Charge{ID: uuid.NewString(), Status: "succeeded", AmountMinor: req.AmountMinor, Currency: req.Currency,
		OrderID: req.OrderID, CardLast4: last4(req.Card.Number), CardBrand: brand(req.Card.Number), CreatedAt: s.now().UTC(), userID: c.Subject}
	if perr != nil {
		ch.Status, ch.FailureCode = "failed", outcome
	}
	// Finish on a context that outlives the client so a hang-up cannot leave the key in flight.
	fctx := context.WithoutCancel(ctx)
	if err := s.ledger.InsertCharge(fctx, ch); err != nil {
		_ = s.ledger.AbandonKey(fctx, c.Subject, "charge:"+key)
		platform.WriteProblem(w, r, err)
		return
	}
	st := Stored{Status: http.StatusCreated}
	if perr != nil {
		pp := *p
		pp.Instance = r.URL.Path
		st.Status = pp.Status
		st.Body, _ = json.Marshal(&pp)
	} else {
		st.Body, _ = json.Marshal(ch)
	}
	if err := s.ledger.FinishKey(fctx, c.Subject, "charge:"+key, st); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	slog.InfoContext(ctx, "charge", "outcome", outcome, "charge_id", ch.ID, "order_id", ch.OrderID, "amount_minor", ch.AmountMinor,
		"currency", ch.Currency, "card_last4", ch.CardLast4)
	if perr != nil {
		platform.WriteProblem(w, r, perr)
		return
	}
	platform.WriteJSON(w, http.StatusCreated, ch)
}

func replay(w http.ResponseWriter, st *Stored) {
	ct := "application/json"
	if st.Status >= 400 {
		ct = "application/problem+json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(st.Status)
	_, _ = w.Write(st.Body)
}

func (s *Service) ownedCharge(ctx context.Context, id string) (*Charge, error) {
	c, _ := platform.ClaimsFrom(ctx)
	ch, err := s.ledger.Charge(ctx, id)
	if err != nil {
		return nil, err
	}
	if ch.userID != c.Subject && c.Role != platform.RoleAdmin {
		return nil, errNoCharge
	}
	return ch, nil
}

func (s *Service) getCharge(w http.ResponseWriter, r *http.Request) {
	ch, err := s.ownedCharge(r.Context(), r.PathValue("id"))
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, ch)
}

type refundRequest struct {
	AmountMinor int64 `json:"amount_minor"`
}

func (s *Service) refund(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, _ := platform.ClaimsFrom(ctx)
	key, err := idempotencyKey(r, false)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	var req refundRequest
	if r.ContentLength != 0 {
		if err := platform.DecodeJSON(r, &req); err != nil {
			platform.WriteProblem(w, r, err)
			return
		}
	}
	if req.AmountMinor < 0 {
		platform.WriteProblem(w, r, platform.ValidationProblem(platform.FieldError{Field: "amount_minor", Message: "must not be negative"}))
		return
	}
	id := r.PathValue("id")
	if _, err := s.ownedCharge(ctx, id); err != nil {
		auditRefundFailure(ctx, c.Subject, id, err)
		platform.WriteProblem(w, r, err)
		return
	}
	if key != "" {
		stored, err := s.ledger.BeginKey(ctx, c.Subject, "refund:"+key, fmt.Sprintf("%s|%d", id, req.AmountMinor))
		if err != nil {
			platform.WriteProblem(w, r, err)
			return
		}
		if stored != nil {
			replay(w, stored)
			return
		}
	}
	fctx := context.WithoutCancel(ctx)
	rf := &Refund{ID: uuid.NewString(), ChargeID: id, AmountMinor: req.AmountMinor, Status: "succeeded", CreatedAt: s.now().UTC()}
	if _, err := s.ledger.Refund(fctx, rf); err != nil {
		auditRefundFailure(ctx, c.Subject, id, err)
		if key != "" {
			_ = s.ledger.AbandonKey(fctx, c.Subject, "refund:"+key)
		}
		platform.WriteProblem(w, r, err)
		return
	}
	s.refunds.Add(ctx, 1, metric.WithAttributes(attribute.String("currency", rf.Currency)))
	if key != "" {
		body, _ := json.Marshal(rf)
		if err := s.ledger.FinishKey(fctx, c.Subject, "refund:"+key, Stored{Status: http.StatusCreated, Body: body}); err != nil {
			platform.WriteProblem(w, r, err)
			return
		}
	}
	platform.Audit(ctx, c.Subject, "refund", id, "success", "refund_id", rf.ID, "amount_minor", rf.AmountMinor)
	platform.WriteJSON(w, http.StatusCreated, rf)
}

// auditRefundFailure records a refused or failed refund with the problem's code.
func auditRefundFailure(ctx context.Context, actor, chargeID string, err error) {
	reason := "internal"
	var p *platform.Problem
	if errors.As(err, &p) {
		reason = p.Code
	}
	platform.Audit(ctx, actor, "refund", chargeID, "failure", "reason", reason)
}

// OptionsFromEnv reads the PAYMENT_* variables.
func OptionsFromEnv() (Options, error) {
	var o Options
	var err error
	if o.ProviderTimeout, err = platform.EnvDuration("PAYMENT_PROVIDER_TIMEOUT", 3*time.Second); err != nil {
		return o, err
	}
	if o.FaultLatency, err = platform.EnvDuration("PAYMENT_FAULT_LATENCY", 0); err != nil {
		return o, err
	}
	o.FaultErrorRatio, err = platform.EnvFloat("PAYMENT_FAULT_ERROR_RATIO", 0, 0, 1)
	return o, err
}

// Run is `shopd payment`.
func Run(ctx context.Context, cfg platform.Config) error {
	tel, err := platform.SetupTelemetry(ctx, cfg, nil)
	if err != nil {
		return err
	}
	opts, err := OptionsFromEnv()
	if err != nil {
		return err
	}
	if cfg.AuthJWKSURL == "" {
		return errors.New("payment needs AUTH_URL or AUTH_JWKS_URL to verify tokens")
	}
	var checks []platform.Check
	var db *pgxpool.Pool
	if cfg.DatabaseURL != "" || platform.Getenv("PGHOST") != "" {
		if db, err = platform.OpenDB(ctx, cfg.DatabaseURL, "payment", Migrations()); err != nil {
			return err
		}
		defer db.Close()
		checks = append(checks, platform.PingCheck(db))
	} else {
		slog.Warn("no database configured: payment uses an in-memory ledger (lost on restart, idempotency per replica only)")
	}
	if opts.FaultLatency > 0 || opts.FaultErrorRatio > 0 {
		slog.Warn("payment fault injection is on", "latency", opts.FaultLatency.String(), "error_ratio", opts.FaultErrorRatio)
	}
	svc := New(db, platform.NewVerifier(cfg.AuthJWKSURL, cfg.AuthIssuer, cfg.AuthAudience), opts)
	return platform.Serve(ctx, cfg, tel, svc.Routes(), checks...)
}
