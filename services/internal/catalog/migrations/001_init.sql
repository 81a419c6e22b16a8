CREATE TABLE categories (
    slug text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    name text NOT NULL
);

CREATE TABLE products (
    sku         text PRIMARY KEY CHECK (sku ~ '^[A-Za-z0-9_-]{1,64}$'),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    price_minor bigint NOT NULL CHECK (price_minor >= 0),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    category    text NOT NULL REFERENCES categories(slug),
    image_url   text NOT NULL DEFAULT '',
    -- Overselling is impossible: the database refuses negative stock.
    stock       integer NOT NULL CHECK (stock >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_category ON products(category, sku);

CREATE TABLE reservations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id    text NOT NULL UNIQUE,
    user_id     text NOT NULL,
    status      text NOT NULL CHECK (status IN ('held', 'released', 'committed')),
    total_minor bigint NOT NULL,
    currency    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reservations_held ON reservations(created_at) WHERE status = 'held';

CREATE TABLE reservation_items (
    reservation_id   uuid NOT NULL REFERENCES reservations(id) ON DELETE CASCADE,
    sku              text NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL,
    currency         text NOT NULL,
    PRIMARY KEY (reservation_id, sku)
);
