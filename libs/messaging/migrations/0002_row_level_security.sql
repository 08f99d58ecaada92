-- Row-level security on the outbox and the inbox, the same rule as every tenant table: the
-- application role (requests) sees and writes only the rows of the tenant its transaction set in
-- `app.tenant_id`; the worker role (the relay, consumers) works across tenants through an
-- explicit permissive policy. FORCE binds the tables' owner too.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY background_work ON outbox TO longship_worker
    USING (true) WITH CHECK (true);

ALTER TABLE inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inbox
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY background_work ON inbox TO longship_worker
    USING (true) WITH CHECK (true);
