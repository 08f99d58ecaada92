-- Row-level security on the saga tables, the same rule as every tenant table: the application
-- role (requests: POST /v1/orders inserts the saga in its tenant's transaction) sees and writes
-- only the rows of the tenant its transaction set in `app.tenant_id`; the worker role (the engine's
-- claims and transitions, operators) works across tenants through an explicit permissive policy.
-- FORCE binds the tables' owner too.
--
-- `saga_history` gets the tenant of its saga as a column of its own: the first event is written by
-- the statement that inserts the saga, which cannot see that row from a policy's subquery.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- A constant default makes the column NOT NULL without a table scan under lock; events whose saga
-- was deleted by hand keep the empty tenant: no tenant sees them, the worker does.
ALTER TABLE saga_history ADD COLUMN tenant_id text NOT NULL DEFAULT '';
UPDATE saga_history h SET tenant_id = s.tenant_id FROM saga s WHERE s.id = h.saga_id;

ALTER TABLE saga ENABLE ROW LEVEL SECURITY;
ALTER TABLE saga FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON saga
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY background_work ON saga TO longship_worker
    USING (true) WITH CHECK (true);

ALTER TABLE saga_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE saga_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON saga_history
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY background_work ON saga_history TO longship_worker
    USING (true) WITH CHECK (true);
