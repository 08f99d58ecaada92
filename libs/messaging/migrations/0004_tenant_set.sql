-- Batches of several tenants in one transaction (libs/tenant/migrations/0003_tenant_set.sql): the
-- outbox and the inbox also admit the rows of the tenants in `app.tenant_ids`, so a batch run as
-- the application role can record its events.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE POLICY tenant_set ON outbox
    USING (tenant_id = ANY (app_tenant_set()))
    WITH CHECK (tenant_id = ANY (app_tenant_set()));
CREATE POLICY tenant_set ON inbox
    USING (tenant_id = ANY (app_tenant_set()))
    WITH CHECK (tenant_id = ANY (app_tenant_set()));
