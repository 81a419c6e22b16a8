package payment

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// Ledger stores charges, refunds and idempotency keys: Postgres when a
// database is configured, memory otherwise (lost on restart, per replica).
type Ledger interface {
	// BeginKey claims (user, key). It returns the stored answer when the key
	// was finished before, and a 409 problem when the key is in flight or was
	// used for a different request.
	BeginKey(ctx context.Context, user, key, fingerprint string) (*Stored, error)
	FinishKey(ctx context.Context, user, key string, st Stored) error
	// AbandonKey forgets a claimed key so that a retry runs again (transient failures).
	AbandonKey(ctx context.Context, user, key string) error
	InsertCharge(ctx context.Context, c *Charge) error
	Charge(ctx context.Context, id string) (*Charge, error)
	// Refund adds amount to the charge's refunded total, failing with a 409
	// when that would exceed the charge.
	Refund(ctx context.Context, r *Refund) (*Charge, error)
}

// Stored is a finished request's answer.
type Stored struct {
	Status int
	Body   []byte
}

var (
	errKeyReused   = platform.NewProblem(http.StatusConflict, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	errKeyInFlight = platform.NewProblem(http.StatusConflict, "request_in_progress", "a request with this Idempotency-Key is still being processed")
	errNoCharge    = platform.NewProblem(http.StatusNotFound, "not_found", "no such charge")
	errOverRefund  = platform.NewProblem(http.StatusConflict, "refund_exceeds_charge", "the refund exceeds what is left of the charge")
	errNotCharged  = platform.NewProblem(http.StatusConflict, "charge_not_succeeded", "only succeeded charges can be refunded")
)

// memLedger is the in-memory ledger.
type memLedger struct {
	mu      sync.Mutex
	keys    map[[2]string]*memKey
	charges map[string]*Charge
	refunds map[string]*Refund
}

type memKey struct {
	fp     string
	stored *Stored
}

func newMemLedger() *memLedger {
	return &memLedger{keys: map[[2]string]*memKey{}, charges: map[string]*Charge{}, refunds: map[string]*Refund{}}
}

func (m *memLedger) BeginKey(_ context.Context, user, key, fp string) (*Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[[2]string{user, key}]
	if !ok {
		m.keys[[2]string{user, key}] = &memKey{fp: fp}
		return nil, nil
	}
	if k.fp != fp {
		return nil, errKeyReused
	}
	if k.stored == nil {
		return nil, errKeyInFlight
	}
	return k.stored, nil
}

func (m *memLedger) FinishKey(_ context.Context, user, key string, st Stored) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[[2]string{user, key}]; ok {
		k.stored = &st
	}
	return nil
}

func (m *memLedger) AbandonKey(_ context.Context, user, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, [2]string{user, key})
	return nil
}

func (m *memLedger) InsertCharge(_ context.Context, c *Charge) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := *c
	m.charges[c.ID] = &cp
	return nil
}

func (m *memLedger) Charge(_ context.Context, id string) (*Charge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.charges[id]
	if !ok {
		return nil, errNoCharge
	}
	cp := *c
	return &cp, nil
}

func (m *memLedger) Refund(_ context.Context, r *Refund) (*Charge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.charges[r.ChargeID]
	if !ok {
		return nil, errNoCharge
	}
	if c.Status != "succeeded" {
		return nil, errNotCharged
	}
	if r.AmountMinor == 0 {
		r.AmountMinor = c.AmountMinor - c.RefundedMinor
	}
	if r.AmountMinor <= 0 || c.RefundedMinor+r.AmountMinor > c.AmountMinor {
		return nil, errOverRefund
	}
	c.RefundedMinor += r.AmountMinor
	r.Currency = c.Currency
	m.refunds[r.ID] = r
	cp := *c
	return &cp, nil
}

// pgLedger is the Postgres ledger.
type pgLedger struct{ db *pgxpool.Pool }

func (p *pgLedger) BeginKey(ctx context.Context, user, key, fp string) (*Stored, error) {
	// Two rounds: the row may be abandoned (deleted) between the insert and the read.
	for round := 0; round < 2; round++ {
		tag, err := p.db.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, fingerprint) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, user, key, fp)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 1 {
			return nil, nil
		}
		var gotFP string
		var status *int
		var body []byte
		err = p.db.QueryRow(ctx, `SELECT fingerprint, status_code, body FROM idempotency_keys WHERE user_id=$1 AND key=$2`, user, key).Scan(&gotFP, &status, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if gotFP != fp {
			return nil, errKeyReused
		}
		if status == nil {
			return nil, errKeyInFlight
		}
		return &Stored{Status: *status, Body: body}, nil
	}
	return nil, errKeyInFlight
}

func (p *pgLedger) FinishKey(ctx context.Context, user, key string, st Stored) error {
	_, err := p.db.Exec(ctx, `UPDATE idempotency_keys SET status_code=$3, body=$4 WHERE user_id=$1 AND key=$2`, user, key, st.Status, st.Body)
	return err
}

func (p *pgLedger) AbandonKey(ctx context.Context, user, key string) error {
	_, err := p.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE user_id=$1 AND key=$2 AND status_code IS NULL`, user, key)
	return err
}

func (p *pgLedger) InsertCharge(ctx context.Context, c *Charge) error {
	_, err := p.db.Exec(ctx, `INSERT INTO charges (id, user_id, order_id, status, failure_code, amount_minor, currency, card_last4, card_brand, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`, c.ID, c.userID, c.OrderID, c.Status, c.FailureCode, c.AmountMinor, c.Currency, c.CardLast4, c.CardBrand, c.CreatedAt)
	return err
}

const chargeCols = `id::text, user_id, order_id, status, failure_code, amount_minor, refunded_minor, currency, card_last4, card_brand, created_at`

func scanCharge(row pgx.Row) (*Charge, error) {
	var c Charge
	err := row.Scan(&c.ID, &c.userID, &c.OrderID, &c.Status, &c.FailureCode, &c.AmountMinor, &c.RefundedMinor, &c.Currency, &c.CardLast4, &c.CardBrand, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoCharge
	}
	return &c, err
}

func (p *pgLedger) Charge(ctx context.Context, id string) (*Charge, error) {
	return scanCharge(p.db.QueryRow(ctx, `SELECT `+chargeCols+` FROM charges WHERE id::text=$1`, id))
}

func (p *pgLedger) Refund(ctx context.Context, r *Refund) (*Charge, error) {
	var out *Charge
	err := pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		c, err := scanCharge(tx.QueryRow(ctx, `SELECT `+chargeCols+` FROM charges WHERE id::text=$1 FOR UPDATE`, r.ChargeID))
		if err != nil {
			return err
		}
		if c.Status != "succeeded" {
			return errNotCharged
		}
		if r.AmountMinor == 0 {
			r.AmountMinor = c.AmountMinor - c.RefundedMinor
		}
		if r.AmountMinor <= 0 || c.RefundedMinor+r.AmountMinor > c.AmountMinor {
			return errOverRefund
		}
		r.Currency = c.Currency
		if _, err := tx.Exec(ctx, `UPDATE charges SET refunded_minor = refunded_minor + $2 WHERE id::text=$1`, c.ID, r.AmountMinor); err != nil {
			return err
		}
		c.RefundedMinor += r.AmountMinor
		out = c
		_, err = tx.Exec(ctx, `INSERT INTO refunds (id, charge_id, amount_minor, currency, status, created_at) VALUES ($1,$2,$3,$4,$5,$6)`,
			r.ID, c.ID, r.AmountMinor, r.Currency, r.Status, r.CreatedAt)
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23514" {
		return nil, errOverRefund
	}
	return out, err
}
