-- Batches of several tenants in one transaction (libs/tenant/migrations/0003_tenant_set.sql):
-- accounts, payments and tombstones also admit the rows of the tenants in `app.tenant_ids`.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE POLICY tenant_set ON accounts
    USING (tenant_id = ANY (app_tenant_set()))
    WITH CHECK (tenant_id = ANY (app_tenant_set()));
CREATE POLICY tenant_set ON payments
    USING (tenant_id = ANY (app_tenant_set()))
    WITH CHECK (tenant_id = ANY (app_tenant_set()));
CREATE POLICY tenant_set ON payment_tombstones
    USING (tenant_id = ANY (app_tenant_set()))
    WITH CHECK (tenant_id = ANY (app_tenant_set()));
