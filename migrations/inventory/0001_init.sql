-- The inventory service's database: products and reservations (tenant data, under row-level
-- security). The platform's tables (outbox and inbox) come from the libraries' own schemas
-- (libs/*/migrations), applied before these.

CREATE TABLE products (
    tenant_id    text NOT NULL,
    sku          text NOT NULL CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}$'),
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    price_cents  bigint NOT NULL CHECK (price_cents >= 1),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    on_hand      bigint NOT NULL CONSTRAINT products_on_hand_non_negative CHECK (on_hand >= 0),
    reserved     bigint NOT NULL DEFAULT 0 CONSTRAINT products_reserved_non_negative CHECK (reserved >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sku),
    -- the code checks this first; the constraint is the last line of defence against overselling
    CONSTRAINT products_reserved_within_on_hand CHECK (reserved <= on_hand)
);

-- One row per order that ever reached this service. TOMBSTONE records a Release that arrived
-- before (or instead of) its Reserve, so a late Reserve is refused.
CREATE TABLE reservations (
    tenant_id        text NOT NULL,
    order_id         uuid NOT NULL,
    status           text NOT NULL CHECK (status IN ('RESERVED', 'RELEASED', 'COMMITTED', 'EXPIRED', 'TOMBSTONE')),
    currency         text CHECK (currency ~ '^[A-Z]{3}$'),
    -- [{"sku": "...", "quantity": 2, "unit_price_cents": 1250}]
    lines            jsonb NOT NULL DEFAULT '[]',
    idempotency_key  text,
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id),
    CONSTRAINT reservations_reserved_expires CHECK (status <> 'RESERVED' OR (expires_at IS NOT NULL AND currency IS NOT NULL))
);
CREATE INDEX reservations_expiry ON reservations (expires_at) WHERE status = 'RESERVED';

ALTER TABLE products ENABLE ROW LEVEL SECURITY;
ALTER TABLE products FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON products
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON reservations
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- The expiry sweep has to find due reservations of every tenant. The application role cannot (and
-- must not) read across tenants, so it calls this function, which runs as the schema owner and
-- returns only keys; each reservation is then released in its own tenant-scoped transaction.
-- FORCE ROW LEVEL SECURITY binds the owner too, so the owner gets a read-only policy of its own
-- (the owner can alter the table anyway, so this widens nothing).
DO $$ BEGIN
  EXECUTE format('CREATE POLICY expiry_sweep ON reservations FOR SELECT TO %I USING (true)', current_user);
END $$;

CREATE FUNCTION expired_reservations(p_limit int)
RETURNS TABLE (tenant_id text, order_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT r.tenant_id, r.order_id
    FROM public.reservations r
    WHERE r.status = 'RESERVED' AND r.expires_at <= now()
    ORDER BY r.expires_at
    LIMIT p_limit
$$;
REVOKE ALL ON FUNCTION expired_reservations(int) FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON products, reservations TO longship_app;
GRANT EXECUTE ON FUNCTION expired_reservations(int) TO longship_app;
