CREATE TABLE charges (
    id             uuid PRIMARY KEY,
    user_id        text NOT NULL,
    order_id       text NOT NULL DEFAULT '',
    status         text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_code   text NOT NULL DEFAULT '',
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    refunded_minor bigint NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    currency       text NOT NULL,
    -- Only the last four digits: card numbers are never stored.
    card_last4     text NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    card_brand     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refunds (
    id           uuid PRIMARY KEY,
    charge_id    uuid NOT NULL REFERENCES charges(id),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency     text NOT NULL,
    status       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per (user, Idempotency-Key): the first request's fingerprint and,
-- once finished, its answer, replayed for every retry.
CREATE TABLE idempotency_keys (
    user_id     text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    status_code integer,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
