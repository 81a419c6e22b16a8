-- One row per checkout. The saga's progress (saga_step) and every outcome
-- are written before the next step, so an order is never half-written.
CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    user_id         text NOT NULL,
    idempotency_key text NOT NULL,
    request_hash    text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
    saga_step       text NOT NULL,
    requested       jsonb NOT NULL,
    items           jsonb NOT NULL DEFAULT '[]',
    total_minor     bigint NOT NULL DEFAULT 0,
    currency        text NOT NULL DEFAULT '',
    card_last4      text NOT NULL DEFAULT '',
    reservation_id  text NOT NULL DEFAULT '',
    payment_id      text NOT NULL DEFAULT '',
    failure_status  integer NOT NULL DEFAULT 0,
    failure_code    text NOT NULL DEFAULT '',
    failure_detail  text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key),
    -- A confirmed order always has its payment and reservation.
    CHECK (status <> 'confirmed' OR (payment_id <> '' AND reservation_id <> ''))
);
CREATE INDEX orders_user ON orders(user_id, created_at DESC);
CREATE INDEX orders_pending ON orders(updated_at) WHERE status = 'pending';
