-- The order service's database: orders (tenant data, under row-level security) and the platform's
-- outbox, inbox and saga tables (infrastructure read across tenants by background workers; never
-- exposed by the API, each row still carries its tenant).

DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'longship_app') THEN
    CREATE ROLE longship_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently by another database's migration
END $$;

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL,
    customer_id      text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 64),
    status           text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_cents      bigint NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
    items            jsonb NOT NULL,
    failure_reason   text CHECK (failure_reason IN ('insufficient_stock', 'unknown_sku', 'payment_declined', 'currency_mismatch', 'timeout')),
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

-- transactional outbox (libs/messaging)
CREATE TABLE outbox (
    seq             bigserial PRIMARY KEY,
    id              uuid NOT NULL UNIQUE,
    tenant_id       text NOT NULL,
    event_type      text NOT NULL,
    schema_version  int NOT NULL DEFAULT 1,
    payload         jsonb NOT NULL,
    traceparent     text,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- consumer deduplication (libs/messaging)
CREATE TABLE inbox (
    consumer    text NOT NULL,
    event_id    uuid NOT NULL,
    tenant_id   text NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- durable sagas (libs/saga); the step log is a JSON array so a transition is one row update
CREATE TABLE saga (
    id               uuid PRIMARY KEY,
    saga_type        text NOT NULL,
    tenant_id        text NOT NULL,
    status           text NOT NULL CHECK (status IN ('RUNNING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED')),
    data             jsonb NOT NULL,
    steps            jsonb NOT NULL,
    step_index       int NOT NULL DEFAULT 0,
    failure_reason   text,
    deadline         timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    locked_until     timestamptz,
    traceparent      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saga_due ON saga (next_attempt_at) WHERE status IN ('RUNNING', 'COMPENSATING');

GRANT USAGE ON SCHEMA public TO longship_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders, outbox, inbox, saga TO longship_app;
GRANT USAGE ON SEQUENCE outbox_seq_seq TO longship_app;
