-- The order service's database: orders (tenant data, under row-level security). The platform's
-- tables (outbox and inbox, sagas) come from the libraries' own schemas (libs/*/migrations),
-- applied before these.

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL,
    customer_id      text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 64),
    status           text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_cents      bigint NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
    items            jsonb NOT NULL,
    failure_reason   text CHECK (failure_reason IN ('insufficient_stock', 'unknown_sku', 'payment_declined', 'currency_mismatch', 'timeout',
                                                      'operator_cancelled', 'amount_out_of_range')),
    idempotency_key  text,
    request_hash     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_tenant_idempotency_key UNIQUE (tenant_id, idempotency_key),
    CONSTRAINT orders_terminal_reason CHECK ((status = 'CANCELLED') = (failure_reason IS NOT NULL))
);
-- keyset pagination, newest first (ids are UUID v7, so id order is creation order)
CREATE INDEX orders_tenant_id_desc ON orders (tenant_id, id DESC);
CREATE INDEX orders_tenant_status_id_desc ON orders (tenant_id, status, id DESC);

ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON orders
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO longship_app;
