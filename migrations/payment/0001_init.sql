-- The payment service's database: customer accounts, payments and void tombstones (tenant data,
-- under row-level security). The platform's tables (outbox and inbox) come from the libraries'
-- own schemas (libs/*/migrations), applied before these.

CREATE TABLE accounts (
    tenant_id      text NOT NULL,
    customer_id    text NOT NULL CHECK (char_length(customer_id) BETWEEN 1 AND 64),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance_cents  bigint NOT NULL CONSTRAINT accounts_balance_non_negative CHECK (balance_cents >= 0),
    held_cents     bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_held_non_negative CHECK (held_cents >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id),
    -- the code checks this first; the constraint is the last line of defence against overspending
    CONSTRAINT accounts_held_within_balance CHECK (held_cents <= balance_cents)
);

-- One row per order that asked for money, including declined attempts (a repeated Authorize
-- answers the first result).
CREATE TABLE payments (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL,
    order_id         uuid NOT NULL,
    customer_id      text NOT NULL,
    amount_cents     bigint NOT NULL CHECK (amount_cents >= 0),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status           text NOT NULL CHECK (status IN ('AUTHORIZED', 'CAPTURED', 'VOIDED', 'DECLINED')),
    decline_reason   text CHECK (decline_reason IN ('insufficient_funds', 'no_account', 'currency_mismatch')),
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_tenant_order UNIQUE (tenant_id, order_id),
    CONSTRAINT payments_declined_reason CHECK ((status = 'DECLINED') = (decline_reason IS NOT NULL))
);

-- A Void that arrived before (or instead of) its Authorize: a late Authorize is refused.
CREATE TABLE payment_tombstones (
    tenant_id   text NOT NULL,
    order_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id)
);

ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON accounts
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON payments
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE payment_tombstones ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_tombstones FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON payment_tombstones
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, payments, payment_tombstones TO longship_app;
